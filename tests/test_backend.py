"""Back end infrastructure: memory plan, VM codegen step counts, engines.

Whole models: test_models_e2e.py; the CLI and API: test_api.py; ops: test_backend_ops.py
and test_backend_hypothesis.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opmlc.backend.compile import compile_graph
from opmlc.backend.kernel import Addr, Const, Idx, Kernel, Let, Load, Loop, Store, Var, add, op
from opmlc.backend.memplan import plan_memory
from opmlc.backend.vmgen import gen_node, halt
from opmlc.ir.graph import Graph, Node, TensorType
from opmlc.quantize.interp import evaluate_int
from opmlc_runtime.engines import Program
from opmlc_runtime.isa import NUM_REGS, Status
from opmlc_runtime.stepper import VM

MODELS = Path(__file__).resolve().parent.parent / "models"


def chain_graph(n: int = 4, size: int = 16) -> Graph:
    """x -> t0 -> t1 -> ... -> y: clamp chain (each value dies after its one reader)."""
    g = Graph()
    g.inputs = ["x"]
    g.types["x"] = TensorType("i16", (size,))
    prev = "x"
    for k in range(n):
        out = "y" if k == n - 1 else f"t{k}"
        g.nodes.append(Node("q.clamp", (prev,), (out,), {"lo": -k - 100, "hi": 100 + k}))
        g.types[out] = TensorType("i16", (size,))
        prev = out
    g.outputs = ["y"]
    return g


# ---------------------------------------------------------------- memory plan


def test_memplan_order_alignment_and_reuse() -> None:
    g = chain_graph(6, 40)
    g.consts["w"] = np.arange(5, dtype=np.int8)
    g.types["w"] = TensorType("i8", (5,))
    plan = plan_memory(g, 100)
    regs = sorted(plan.values.values(), key=lambda r: r.address)
    kinds = [r.kind for r in regs]
    assert kinds[0] == "const" and kinds[1] == "input" and kinds[-1] == "output"
    assert all(r.address % 32 == 0 for r in regs)
    assert plan.values["w"].address == 128  # code rounded up to a leaf
    # a chain needs only two activation buffers, whatever its length
    assert plan.act_bytes == 2 * 96 and plan.act_naive == 5 * 96
    assert 32 << plan.depth >= plan.total > 32 << (plan.depth - 1)


def test_memplan_live_values_never_overlap() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        g = Graph()
        g.inputs = ["x"]
        g.types["x"] = TensorType("i32", (4,))
        names = ["x"]
        for k in range(12):
            a, b = rng.choice(names, 2)
            out = f"v{k}"
            g.nodes.append(Node("q.where", (a, a, b), (out,), {}))
            g.types[out] = TensorType("i32", (int(rng.integers(1, 9)),) if False else (4,))
            names.append(out)
        g.outputs = [names[-1]]
        plan = plan_memory(g, 0)
        last = {}
        for k, n in enumerate(g.nodes):
            for i in n.inputs:
                last[i] = k
        live = {}
        for k, n in enumerate(g.nodes):
            o = n.outputs[0]
            live[o] = (k, last.get(o, k))
        for p, (f1, l1) in live.items():
            for q, (f2, l2) in live.items():
                if p < q and not (l1 < f2 or l2 < f1):
                    r1, r2 = plan.values[p], plan.values[q]
                    assert (r1.address + r1.nbytes <= r2.address
                            or r2.address + r2.nbytes <= r1.address), (p, q)


# ---------------------------------------------------------------- VM codegen


def run_kernel(k: Kernel, mem_init: dict[int, bytes], depth: int = 12) -> tuple[VM, int]:
    nc = gen_node(k, 0)
    vm = VM.from_image(nc.code + halt(), depth)
    for addr, data in mem_init.items():
        vm.mem.write(addr, data)
    vm.run(max_steps=nc.steps)
    return vm, nc.steps


def test_step_count_matches_the_stepper_and_boundary_is_canonical() -> None:
    # y[i, j] = x[i, j] * 3 + i - j, over a 3 x 5 nest, 64-bit constants included
    big = 0x1234_5678_9ABC_DEF0
    body = [Loop(3, (Loop(5, (Store("i64", Addr(0x800, ((0, 40), (1, 8))),
                                    add(add(op("mul", Load("i32", Addr(0x400, ((0, 20), (1, 4)))),
                                                   3), op("sub", Idx(0), Idx(1))),
                                        op("xor", Const(big), Const(big)))),)),)),
            Let("a", Const(big)), Store("i64", Addr(0x900), Var("a"))]
    x = np.arange(15, dtype=np.int32) - 7
    k = Kernel("t", body)
    vm, steps = run_kernel(k, {0x400: x.tobytes()})
    nc = gen_node(k, 0)
    assert vm.core.pc == len(nc.code), "exactly `steps` steps end at the exit"
    assert vm.core.regs == [0] * NUM_REGS and vm.core.status == Status.RUNNING
    vm.run(max_steps=1)
    assert vm.core.status == Status.HALTED
    got = np.frombuffer(vm.mem.read(0x800, 120), np.int64).reshape(3, 5)
    i, j = np.indices((3, 5))
    np.testing.assert_array_equal(got, x.reshape(3, 5) * 3 + i - j)
    assert int.from_bytes(vm.mem.read(0x900, 8), "little") == big


def test_wide_addresses_above_4gib() -> None:
    """64-bit addresses: stream bases and strides beyond 32 bits (sparse memory)."""
    hi = 5 << 32
    body = [Loop(4, (Store("i64", Addr(hi, ((0, 1 << 33),)), add(Idx(0), 7)),))]
    vm, _ = run_kernel(Kernel("t", body), {}, depth=40)
    for i in range(4):
        assert int.from_bytes(vm.mem.read(hi + i * (1 << 33), 8), "little") == i + 7
    assert vm.core.regs == [0] * NUM_REGS


def test_kernel_without_data_branches() -> None:
    """The only branches in generated code are the loop back-edges (bne c, r0)."""
    from opmlc_runtime.isa import BY_OPCODE, decode

    g = chain_graph(3)
    art = compile_graph(g)
    code = art.image[: art.meta["code"]["halt"]]
    for k in range(0, len(code), 8):
        d = decode(code[k: k + 8])
        ins = BY_OPCODE[d.opcode]
        if ins.fmt.name in ("BRANCH", "JAL", "JALR"):
            assert ins.mnemonic == "bne" and d.rs2 == 0 and d.imm < 0


# ---------------------------------------------------------------- engines


def test_chain_engines_agree_and_roots_are_static() -> None:
    g = chain_graph(4)
    prog = Program(compile_graph(g))
    x = {"x": np.arange(-8, 8, dtype=np.int16) * 30}
    ref = evaluate_int(g, x)["y"]
    nat, vm = prog.run(x, "native", trace=True), prog.run(x, "vm", trace=True)
    np.testing.assert_array_equal(nat.outputs["y"], ref)
    assert nat.node_roots == vm.node_roots and len(nat.node_roots) == 4
    assert nat.state_root == vm.state_root
    assert vm.steps == prog.art.meta["total_steps"]
    # without --commit the final root is the same
    assert prog.run(x, "native").state_root == nat.state_root


def test_input_errors_are_clear() -> None:
    from opmlc_runtime.engines import InputError

    prog = Program(compile_graph(chain_graph(2)))
    with pytest.raises(InputError, match="missing input 'x'"):
        prog.run({}, "native")
    with pytest.raises(InputError, match="shape"):
        prog.run({"x": np.zeros((3,), np.int16)}, "native")
    with pytest.raises(InputError, match="does not fit"):
        prog.run({"x": np.full((16,), 1 << 20, np.int64)}, "native")
    with pytest.raises(InputError, match=r"unknown input 'z'; the model takes x: i16\[16\]"):
        prog.run({"x": np.zeros((16,), np.int16), "z": np.zeros(1)}, "vm")
    with pytest.raises(InputError, match="not a numeric array"):
        prog.run({"x": np.array(["a"] * 16)}, "native")


def test_replay_gives_the_engines_roots() -> None:
    """Writing each node's outputs in order reproduces every boundary state."""
    g = chain_graph(3)
    prog = Program(compile_graph(g))
    x = {"x": np.arange(16, dtype=np.int16) - 8}
    env = evaluate_int(g, x, return_all=True)
    rep = prog.replay(x, {o: env[o] for n in g.nodes for o in n.outputs}, trace=True)
    vm = prog.run(x, "vm", trace=True, capture=True)
    assert rep.node_roots == vm.node_roots and rep.state_root == vm.state_root
    assert rep.steps == vm.steps and rep.initial_root == vm.initial_root
    assert vm.tensors["t0"] == env["t0"].astype("<i2").tobytes()
    bad = {o: env[o] for n in g.nodes for o in n.outputs}
    bad["t1"] = bad["t1"] + 1
    assert prog.replay(x, bad, trace=True).node_roots[1] != vm.node_roots[1]
