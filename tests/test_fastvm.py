"""The fast VM (runtime/fastvm.py) against the reference stepper, which is the definition.

Every comparison is on the full state: pc, step, status, registers, the memory bytes
and the memory and state roots, after runs to exact step budgets (stopping inside
blocks, resuming from there). Sources of programs: the hand-checked ISA case table
(tests/isa_cases.py), directed fault / self-modifying / sparse-memory programs,
hypothesis random programs over every opcode and fault, and the compiled kernels of
the test models (engine "vm" == "native" == "stepper").
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from isa_cases import CASES, Case, build, check

from opmlc_runtime import fastvm
from opmlc_runtime.asm import assemble
from opmlc_runtime.isa import INSTRUCTIONS, MASK, Fmt, Status, encode
from opmlc_runtime.merkle import Memory
from opmlc_runtime.stepper import VM

ROOT = Path(__file__).resolve().parent.parent


def fast_of(ref: VM) -> fastvm.FastVM:
    """A fast VM in the same state as ``ref`` (own copy of memory)."""
    vm = fastvm.FastVM(ref.mem.copy(), ref.core.pc)
    vm.core = ref.core.copy()
    return vm


def assert_same(ref: VM, fast: fastvm.FastVM, what: str = "") -> None:
    """Full-state equality: core fields, every memory byte, memory root, state root."""
    r, f = ref.core, fast.core
    assert (f.pc, f.step, f.status, f.depth) == (r.pc, r.step, r.status, r.depth), \
        f"{what}: fast (pc {f.pc:#x}, step {f.step}, status {f.status}) != reference " \
        f"(pc {r.pc:#x}, step {r.step}, status {r.status})"
    assert f.regs == r.regs, f"{what}: registers differ"
    n = min(max(ref.mem.allocated, fast.mem.allocated), ref.mem.size)
    assert fast.mem.read(0, n) == ref.mem.read(0, n), f"{what}: memory bytes differ"
    assert fast.mem.root() == ref.mem.root(), f"{what}: memory roots differ"
    assert fast.encode() == ref.encode() and fast.root() == ref.root(), what


def run_both(ref: VM, fast: fastvm.FastVM, budgets: list[int | None], what: str = "") -> None:
    for b in budgets:
        n_ref = ref.run(b)
        n_fast = fast.run(b)
        assert n_fast == n_ref, f"{what}: run({b}) took {n_fast} steps, reference {n_ref}"
        assert_same(ref, fast, f"{what} after run({b})")


# --------------------------------------------------------------------------------------
# The ISA case table: hand-computed expectations, every opcode and fault
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_isa_case(case: Case) -> None:
    ref = build(case)
    fast = fast_of(ref)
    pre_root, witness = fast.root(), fast.witness()
    assert witness == ref.witness()
    assert fast.run(case.steps) == ref.run(case.steps)
    check(case, fast, pre_root, witness)  # the hand-written expectation
    assert_same(ref, fast, case.id)


# --------------------------------------------------------------------------------------
# Directed programs: each fault kind, halt, r0, code stores, sparse memory, growth
# --------------------------------------------------------------------------------------

BIG = 1 << 63

DIRECTED = {
    # name: (assembly, depth, final status)
    "align": ("addi r1, r0, 3\n addi r2, r0, 1\n ld r2, 0(r1)\n halt", 8, Status.FAULT_ALIGN),
    "align-store": ("addi r1, r0, 514\n sw r1, 0(r1)\n halt", 8, Status.FAULT_ALIGN),
    "addr": ("addi r1, r0, 2040\n ld r2, 8(r1)\n halt", 6, Status.FAULT_ADDR),
    "addr-store": ("addi r1, r0, -8\n sd r1, 0(r1)\n halt", 40, Status.FAULT_ADDR),
    "illegal-opcode": ("addi r1, r0, 1\n .dword 0x0000000000000000", 8, Status.FAULT_ILLEGAL),
    "pc-misaligned": ("addi r1, r0, 4\n jalr r2, 0(r1)\n halt", 8, Status.FAULT_PC),
    "pc-out-of-memory": ("addi r1, r0, 1\n slli r1, r1, 20\n jalr r0, 0(r1)\n halt", 12,
                         Status.FAULT_PC),
    "branch-out": ("addi r1, r0, 1\n beq r1, r1, 0x100000\n halt", 10, Status.FAULT_PC),
    "r0": ("addi r0, r0, 5\n add r1, r0, r0\n lih r0, 7\n addi r2, r0, 3\n halt", 8,
           Status.HALTED),
    # beyond the dense buffer: the buffer grows, then loads see the store
    "grow": ("addi r1, r0, 1\n slli r1, r1, 16\n sd r1, 8(r1)\n ld r2, 8(r1)\n"
             " sw r2, 0(r1)\n lwu r3, 0(r1)\n halt", 20, Status.HALTED),
    # the top of a 2^64-byte memory (sparse leaves)
    "sparse": ("addi r1, r0, -16\n addi r2, r0, 77\n sd r2, 0(r1)\n ld r3, 0(r1)\n"
               " sb r2, 15(r1)\n lbu r4, 15(r1)\n lb r5, 8(r1)\n halt", 59, Status.HALTED),
    # a loop of loads / stores / ALU ops with a call and return
    "loop-call": ("""
        li r10, 12
        la r11, buf
    loop:
        ld r5, 0(r11)
        addi r5, r5, 3
        mul r6, r5, r10
        srari r6, r6, 2
        add r12, r12, r6
        sd r5, 0(r11)
        jal r1, fn
        addi r10, r10, -1
        bne r10, r0, loop
        halt
    fn: sw r12, 8(r11)
        jalr r0, 0(r1)
        .align 8
    buf: .dword 5, 0
    """, 9, Status.HALTED),
    # self-modifying: the loop body's `addi r5, r5, 1` becomes `addi r5, r5, 100`
    "self-modify": ("""
        li r10, 6
        la r1, patch
        ld r2, 0(r1)
        la r3, target
    loop:
    target:
        addi r5, r5, 1
        addi r10, r10, -1
        addi r4, r0, 3
        bne r10, r4, skip
        sd r2, 0(r3)
    skip:
        bne r10, r0, loop
        halt
        .align 8
    patch: addi r5, r5, 100
    """, 8, Status.HALTED),
}


@pytest.mark.parametrize("name", list(DIRECTED))
def test_directed_every_stop(name: str) -> None:
    """Stops at every exact step (0..end, one run each, plus a resume in one-step and
    three-step slices), on the full state."""
    src, depth, status = DIRECTED[name]
    img = assemble(src)
    ref = VM.from_image(img, depth)
    total = ref.run(10_000)
    assert ref.core.status == status, f"{name}: the program ends {Status(ref.core.status).name}"
    for t in range(total + 2):
        ref = VM.from_image(img, depth)
        fast = fastvm.FastVM.from_image(img, depth)
        run_both(ref, fast, [t, 1, None], f"{name} stop at {t}")
    ref, fast = VM.from_image(img, depth), fastvm.FastVM.from_image(img, depth)
    run_both(ref, fast, [3] * (total // 3 + 2), f"{name} in slices of 3")


def test_self_modifying_code_is_retranslated() -> None:
    src, depth, _ = DIRECTED["self-modify"]
    fast = fastvm.FastVM.from_image(assemble(src), depth)
    fast.run()
    assert fast.core.regs[5] == 3 + 3 * 100  # three iterations before the patch, three after
    assert fast.stats["jit_steps"] > 0


def test_fast_path_is_taken() -> None:
    """A hot loop runs in translated code, not on the stepper (the figure is not only
    right but fast)."""
    img = assemble(DIRECTED["loop-call"][0])
    fast = fastvm.FastVM.from_image(img, 9)
    fast.run()
    assert fast.core.status == Status.HALTED
    assert fast.stats["ref_steps"] <= 2 and fast.stats["jit_steps"] > 120


def test_run_to_and_interface() -> None:
    img = assemble(DIRECTED["loop-call"][0])
    fast = fastvm.FastVM.from_image(img, 9)
    ref = VM.from_image(img, 9)
    assert fast.running
    assert fast.run_to(61) == 61 and fast.core.step == 61
    ref.run(61)
    assert_same(ref, fast, "run_to")
    other = fast.copy()
    assert other.run_to(100) == 39
    assert fast.core.step == 61  # the copy is independent
    ref.run(39)
    assert_same(ref, other, "copy then run_to")
    with pytest.raises(ValueError, match="cannot run back"):
        other.run_to(10)
    fast.step()
    ref2 = VM.from_image(img, 9)
    ref2.run(62)
    assert_same(ref2, fast, "step")
    assert fast.witness() == ref2.witness()
    fast.run()
    assert not fast.running and fast.run(5) == 0


def test_malformed_state_is_refused() -> None:
    fast = fastvm.FastVM.from_image(assemble("halt"), 8)
    fast.core.regs[0] = 1
    with pytest.raises(ValueError, match="norm:state-valid"):
        fast.run(1)


# --------------------------------------------------------------------------------------
# hypothesis: random programs over every opcode and every fault kind
# --------------------------------------------------------------------------------------

OPCODES = [i.opcode for i in INSTRUCTIONS]
CONTROL = [i.opcode for i in INSTRUCTIONS if i.fmt in (Fmt.BRANCH, Fmt.JAL, Fmt.JALR)]
DEPTHS = (5, 6, 9, 13, 24, 59)


@st.composite
def programs(draw) -> tuple[bytes, int, list[int], list[int | None]]:
    """(image, depth, registers, budgets). Half the programs are "wild" (any opcode
    byte, register fields up to 255, any immediate and register value: faults of every
    kind come quickly); the others are "tame" (legal opcodes, registers r0..r7 holding
    data addresses and small numbers, small immediates) so they run long enough for
    loops, loads and stores to go through the translated code."""
    n = draw(st.integers(1, 24))
    depth = draw(st.sampled_from(DEPTHS))
    size = 32 << depth
    wild = draw(st.booleans())
    branch = st.integers(-n, n).map(lambda k: 8 * k)
    special = st.sampled_from([0, 1, 3, 4, 31, 32, 63, 64, 65, -1, -8, -64, 2**31 - 1,
                               -(2**31), 512, 1024, 4096])
    if wild:
        reg = st.one_of(st.integers(0, 6), st.integers(0, 31), st.integers(32, 255))
        imm = st.one_of(st.integers(-24, 24), branch, special,
                        st.integers(-(2**31), 2**31 - 1))
        opcode = st.one_of(st.sampled_from(OPCODES), st.sampled_from(CONTROL),
                           st.integers(0, 255))
    else:
        reg = st.integers(0, 7)
        imm = st.one_of(st.integers(-4, 4).map(lambda k: 8 * k), st.integers(-3, 3),
                        branch, special)
        opcode = st.sampled_from(OPCODES)
    words = [encode(draw(opcode), draw(reg), draw(reg), draw(reg), draw(imm))
             for _ in range(n)]
    if draw(st.booleans()):
        words.append(encode(0x50))  # halt
    code = b"".join(words)
    data = draw(st.binary(min_size=0, max_size=96))
    base = -(-len(code) // 64) * 64 + 64  # data addresses: after the code, aligned
    data_addr = st.integers(0, 12).map(lambda k: base + 8 * k)
    if wild:
        values = st.one_of(
            st.integers(0, 64), st.integers(0, 8 * n).map(lambda a: a & ~7),  # code
            data_addr,
            st.sampled_from([size - 8, size - 1, size, 4096 - 8, 4096, 1 << 16, BIG,
                             MASK - 7, MASK, 1 << 32]),
            st.integers(0, MASK))
    else:
        values = st.one_of(data_addr, st.integers(-8, 8), st.integers(0, 8 * n)
                           .map(lambda a: a & ~7))
    regs = [0] + [draw(values) & MASK for _ in range(31)]
    budgets = draw(st.lists(st.one_of(st.integers(0, 40), st.integers(0, 400),
                                      st.just(None)), min_size=1, max_size=4))
    image = code + bytes(base - len(code)) + data
    return image, depth, regs, budgets


def _machines(image: bytes, depth: int, regs: list[int]) -> tuple[VM, fastvm.FastVM]:
    ref = VM.from_image(image, depth)
    ref.core.regs = list(regs)
    fast = fastvm.FastVM.from_image(image, depth)
    fast.core.regs = list(regs)
    return ref, fast


def _bounded(budgets: list[int | None]) -> list[int]:
    return [2000 if b is None else b for b in budgets]  # random loops may not end


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_random_programs(prog) -> None:
    image, depth, regs, budgets = prog
    ref, fast = _machines(image, depth, regs)
    run_both(ref, fast, _bounded(budgets), "random program")


@pytest.mark.slow
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_random_programs_many(prog) -> None:
    image, depth, regs, budgets = prog
    ref, fast = _machines(image, depth, regs)
    run_both(ref, fast, _bounded(budgets), "random program")


def test_random_programs_reach_every_fault() -> None:
    """The generator is not toothless: over a fixed sample, every status shows up."""
    seen = set()

    @settings(max_examples=150, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(programs())
    def collect(prog) -> None:
        image, depth, regs, budgets = prog
        ref = VM.from_image(image, depth)
        ref.core.regs = list(regs)
        ref.run(sum(_bounded(budgets)))
        seen.add(Status(ref.core.status))

    collect()
    assert seen == set(Status), f"statuses never reached: {set(Status) - seen}"


# --------------------------------------------------------------------------------------
# Translation cache, memory reporting, layering
# --------------------------------------------------------------------------------------


def test_disk_cache_second_load_skips_compile(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OPMLC_CACHE_DIR", str(tmp_path))
    img = assemble("addi r1, r0, 9\n back: addi r1, r1, -1\n bne r1, r0, back\n halt")
    words, leaders = fastvm.discover(_mem(img), 0)
    fastvm.clear_cache()
    first = fastvm.get_segment(words, leaders)
    assert not first.cache_hit and any(p.name.startswith("fastvm-") for p in tmp_path.iterdir())
    fastvm.clear_cache()
    second = fastvm.get_segment(words, leaders)
    assert second.cache_hit
    fast = fastvm.FastVM.from_image(img, 8)
    assert fast.run() == 1 + 9 * 2 + 1 and fast.core.status == Status.HALTED


def _mem(img: bytes, depth: int = 8) -> Memory:
    m = Memory(depth)
    m.load_image(0, img)
    return m


def test_roots_follow_translated_stores() -> None:
    """Roots asked between runs see every store the native code made (dirty leaves)."""
    img = assemble(DIRECTED["loop-call"][0])
    ref, fast = VM.from_image(img, 9), fastvm.FastVM.from_image(img, 9)
    for _ in range(30):
        run_both(ref, fast, [17], "roots between runs")
    assert fast.stats["jit_steps"] > 0


def test_runtime_does_not_import_the_compiler() -> None:
    code = ("import sys, opmlc_runtime.fastvm as f; "
            "vm = f.FastVM.from_image(bytes.fromhex('5000000000000000'), 6); vm.run(); "
            "bad = [m for m in sys.modules if m == 'opmlc' or m.startswith('opmlc.')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT,
                   env={**os.environ, "PYTHONPATH": ""})


# --------------------------------------------------------------------------------------
# Compiled kernels of the test models
# --------------------------------------------------------------------------------------

MODELS = ROOT / "models"


def _program(model: str, scheme: str):
    from opmlc.api import compile  # noqa: A004 - the public name
    from opmlc_runtime.engines import Program

    return Program(compile(str(MODELS / f"{model}.onnx"), scheme=scheme))


def _inputs(prog, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {s["name"]: (rng.uniform(-1, 1, s["shape"]).astype(np.float32) if s.get("quant")
                        else rng.integers(0, 50, s["shape"]).astype(np.int64))
            for s in prog.inputs}


def _barriers(prog) -> list[int]:
    return [int(n["entry"]) for n in prog.nodes] + [prog.halt_pc]


def _engines_agree(prog, x, stepper: bool) -> None:
    vm = prog.run(x, engine="vm", trace=True, capture=True)
    nat = prog.run(x, engine="native", trace=True, capture=True)
    assert vm.engine == "vm" and len(vm.node_roots) == len(prog.nodes)
    assert vm.initial_root == nat.initial_root
    for k, (a, b) in enumerate(zip(vm.node_roots, nat.node_roots, strict=True)):
        assert a == b, f"node {k} ({prog.nodes[k]['name']}): fast VM and native S_k differ"
    assert vm.state_root == nat.state_root and vm.steps == nat.steps
    assert vm.tensors == nat.tensors
    for name in vm.outputs:
        np.testing.assert_array_equal(vm.outputs[name], nat.outputs[name])
    if stepper:
        st_ = prog.run(x, engine="stepper", trace=True)
        assert st_.engine == "stepper"
        assert st_.node_roots == vm.node_roots and st_.state_root == vm.state_root


def _random_stops(prog, x, n_stops: int, seed: int) -> None:
    """One reference pass over the whole program; the fast VM runs to random exact steps
    (inside nodes) and to every node boundary, the full state compared at each."""
    total = int(prog.nodes[-1]["step_end"]) + 1
    rng = np.random.default_rng(seed)
    stops = sorted(set(rng.integers(0, total + 1, n_stops).tolist())
                   | {int(n["step_end"]) for n in prog.nodes} | {total})
    ref = VM(prog.memory(x), pc=prog.entry)
    fast = fastvm.FastVM(prog.memory(x), prog.entry, _barriers(prog))
    for t in stops:
        want = t - ref.core.step
        assert ref.run(want) == want
        assert fast.run_to(t) == want
        assert_same(ref, fast, f"stop at step {t}")
    fresh = fastvm.FastVM(prog.memory(x), prog.entry, _barriers(prog))
    fresh.run_to(stops[len(stops) // 2])
    ref2 = VM(prog.memory(x), pc=prog.entry)
    ref2.run(stops[len(stops) // 2])
    assert_same(ref2, fresh, "fresh run_to")


@pytest.mark.parametrize("scheme", ["fixed", "int8"])
def test_digits_mlp_engines_and_stops(scheme: str) -> None:
    prog = _program("digits_mlp_sklearn", scheme)
    x = _inputs(prog)
    _engines_agree(prog, x, stepper=True)
    _random_stops(prog, x, 12, seed=1)


@pytest.mark.parametrize("scheme", ["fixed", "int8"])
def test_digits_cnn_fast_vm_equals_native(scheme: str) -> None:
    prog = _program("digits_cnn", scheme)
    _engines_agree(prog, _inputs(prog), stepper=False)


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["fixed", "int8"])
def test_digits_cnn_stepper_and_stops(scheme: str) -> None:
    prog = _program("digits_cnn", scheme)
    x = _inputs(prog, seed=3)
    _engines_agree(prog, x, stepper=True)
    _random_stops(prog, x, 25, seed=2)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["gpt2_tiny", "llama_tiny"])
@pytest.mark.parametrize("scheme", ["fixed", "int8"])
def test_tiny_transformers_fast_vm_equals_native(model: str, scheme: str) -> None:
    prog = _program(model, scheme)
    _engines_agree(prog, _inputs(prog), stepper=False)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["gpt2_tiny", "llama_tiny"])
def test_tiny_transformers_stops_inside_nodes(model: str) -> None:
    """Random exact stops inside random nodes, each checked against the stepper run
    from the node's start boundary S_{k-1} (materialised by the fast VM, whose S_k
    roots equal the native engine's) for a bounded number of steps."""
    prog = _program(model, "fixed")
    x = _inputs(prog)
    nat = prog.run(x, engine="native", trace=True)
    rng = np.random.default_rng(5)
    fast = fastvm.FastVM(prog.memory(x), prog.entry, _barriers(prog))
    ks = sorted(rng.choice(len(prog.nodes), 6, replace=False).tolist())
    for k in ks:
        start = int(prog.nodes[k]["step_end"]) - int(prog.nodes[k]["steps"])
        fast.run_to(start)
        if k:
            assert fast.root() == nat.node_roots[k - 1]
        ref = VM.__new__(VM)
        ref.mem, ref.core = fast.mem.copy(), fast.core.copy()
        probe = fast.copy()
        steps = int(prog.nodes[k]["steps"])
        for t in sorted(rng.integers(0, min(steps, 20_000) + 1, 4).tolist()):
            ref.run(start + t - ref.core.step)
            probe.run_to(start + t)
            assert_same(ref, probe, f"node {k} step {t}")
