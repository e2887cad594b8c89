"""The contraction + requant (+ clamp) fusion pass and the fused ops' semantics.

* q.conv_rq / q.matmul_rq references == the composition q.clamp(q.requant(q.conv(...)))
  on random operands including dtype extremes and wrapping multipliers;
* the pass fuses exactly the single-user chains and keeps everything else;
* a compiled graph gives the same outputs fused and unfused on the reference, the
  native kernels and the VM, and the option is recorded in the artifact.
"""

from __future__ import annotations

import numpy as np
import pytest

import opmlc.quantize  # noqa: F401 - registers q.*
from opmlc.backend.compile import compile_graph
from opmlc.backend.fuse import fuse_requant
from opmlc.ir.graph import Graph, Node, TensorType
from opmlc.ir.ops import infer_types, run_ref
from opmlc.quantize.interp import evaluate_int, verify_int
from opmlc_runtime.engines import Program

RNG = np.random.default_rng(7)
INFO = {"i8": np.int8, "u8": np.uint8, "i16": np.int16, "i32": np.int32, "i64": np.int64}


def rand(dtype: str, shape: tuple[int, ...], extremes: bool = True) -> np.ndarray:
    info = np.iinfo(INFO[dtype])
    a = RNG.integers(info.min, info.max, shape, endpoint=True).astype(INFO[dtype])
    if extremes and a.size >= 4:
        flat = a.reshape(-1)
        flat[RNG.integers(0, a.size, a.size // 4)] = info.min
        flat[RNG.integers(0, a.size, a.size // 4)] = info.max
    return a


CONV = {"strides": [1, 2], "pads": [1, 0, 0, 1], "dilations": [1, 1], "group": 1,
        "x_zp": 3, "w_zp": -2}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", ["i8", "u8", "i16", "i32", "i64"])
def test_conv_rq_is_the_composition(seed: int, dtype: str) -> None:
    rng = np.random.default_rng(seed)
    x, w = rand("i16", (2, 3, 5, 6)), rand("i8", (4, 3, 2, 3))
    bias = rand("i64", (4,)) if seed % 2 else None
    mult = rng.integers(-(1 << 62), 1 << 62, (4, 1, 1)) if seed % 3 else np.array(
        1 << 40, np.int64)
    shift = rng.integers(0, 63, (4, 1, 1)) if seed % 2 else np.array(0, np.int64)
    rq_bias = rand("i64", (4, 1, 1)) if seed > 2 else None
    lo, hi = sorted(int(v) for v in rand(dtype, (2,), extremes=False))
    rq_attrs = {"x_zp": int(rng.integers(-9, 9)), "zp": int(rng.integers(-9, 9)),
                "dtype": dtype}
    acc = run_ref("q.conv", [x, w] + ([bias] if bias is not None else []), CONV)[0]
    y = run_ref("q.requant", [acc, mult, shift] + ([rq_bias] if rq_bias is not None else []),
                rq_attrs)[0]
    want = run_ref("q.clamp", [y], {"lo": lo, "hi": hi})[0]
    ins = [x, w] + ([bias] if bias is not None else []) + [mult, shift] + (
        [rq_bias] if rq_bias is not None else [])
    got = run_ref("q.conv_rq", ins, {**CONV, "acc_zp": rq_attrs["x_zp"], "zp": rq_attrs["zp"],
                                     "dtype": dtype, "lo": lo, "hi": hi,
                                     "has_bias": int(bias is not None),
                                     "has_rq_bias": int(rq_bias is not None)})[0]
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed", range(4))
def test_matmul_rq_is_the_composition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rand("i32", (3, 5)), rand("i16", (5, 4))
    mult, shift = rng.integers(-(1 << 62), 1 << 62, (4,)), rng.integers(0, 64, (4,))
    acc = run_ref("q.matmul", [a, b], {"a_zp": 1, "b_zp": 0})[0]
    y = run_ref("q.requant", [acc, mult, shift], {"x_zp": 2, "zp": -1, "dtype": "i16"})[0]
    want = run_ref("q.clamp", [y], {"lo": -5, "hi": 30000})[0]
    got = run_ref("q.matmul_rq", [a, b, mult, shift],
                  {"a_zp": 1, "b_zp": 0, "acc_zp": 2, "zp": -1, "dtype": "i16", "lo": -5,
                   "hi": 30000})[0]
    np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------- the pass


def _chain(clamp: bool = True, extra_acc_user: bool = False, extra_y_user: bool = False,
           acc_out: bool = False) -> Graph:
    """x -> q.conv -> q.requant (per-channel) [-> q.clamp] [+ extra users] -> outputs."""
    g = Graph()
    g.inputs = ["x"]
    g.types["x"] = TensorType("i8", (1, 3, 6, 6))
    g.consts = {"w": rand("i8", (4, 3, 3, 3)), "b": rand("i32", (4,), extremes=False),
                "m": RNG.integers(1, 1 << 20, (4, 1, 1)),
                "s": RNG.integers(8, 20, (4, 1, 1))}
    for k, v in g.consts.items():
        g.types[k] = TensorType.of(v)

    def node(op: str, ins: tuple[str, ...], out: str, attrs: dict) -> None:
        g.types[out] = infer_types(op, [g.types[i] for i in ins], attrs)[0]
        g.nodes.append(Node(op, ins, (out,), attrs))

    node("q.conv", ("x", "w", "b"), "acc", {**CONV, "x_zp": 0, "w_zp": 0})
    node("q.requant", ("acc", "m", "s"), "y", {"x_zp": 0, "zp": 2, "dtype": "i8"})
    outs = []
    if clamp:
        node("q.clamp", ("y",), "z", {"lo": 0, "hi": 100})
        outs.append("z")
    else:
        outs.append("y")
    if extra_acc_user:
        node("q.requant", ("acc", "m", "s"), "y2", {"x_zp": 0, "zp": 0, "dtype": "i16"})
        outs.append("y2")
    if extra_y_user:
        node("q.clamp", ("y",), "z2", {"lo": -5, "hi": 5})
        outs.append("z2")
    if acc_out:
        outs.append("acc")
    g.outputs = outs
    return verify_int(g)


def _ops(g: Graph) -> list[str]:
    return [n.op for n in g.nodes]


def test_pass_fuses_conv_requant_clamp() -> None:
    g = _chain()
    f = fuse_requant(g)
    assert _ops(f) == ["q.conv_rq"]
    n = f.nodes[0]
    assert n.inputs == ("x", "w", "b", "m", "s") and n.outputs == ("z",)
    assert n.attrs["lo"] == 0 and n.attrs["hi"] == 100 and n.attrs["has_bias"] == 1
    assert set(f.types) == {"x", "w", "b", "m", "s", "z"}
    x = {"x": rand("i8", (1, 3, 6, 6))}
    np.testing.assert_array_equal(evaluate_int(f, x)["z"], evaluate_int(g, x)["z"])


@pytest.mark.parametrize("kw, ops", [
    ({"clamp": False}, ["q.conv_rq"]),
    ({"extra_acc_user": True}, ["q.conv", "q.requant", "q.clamp", "q.requant"]),
    ({"extra_y_user": True}, ["q.conv_rq", "q.clamp", "q.clamp"]),
    ({"acc_out": True}, ["q.conv", "q.requant", "q.clamp"]),
])
def test_pass_fuses_only_single_user_chains(kw: dict, ops: list[str]) -> None:
    g = _chain(**kw)
    f = fuse_requant(g)
    assert _ops(f) == ops
    if kw.get("clamp") is False:  # no clamp: lo / hi are the dtype's range (identity)
        assert (f.nodes[0].attrs["lo"], f.nodes[0].attrs["hi"]) == (-128, 127)
    x = {"x": rand("i8", (1, 3, 6, 6))}
    ref, got = evaluate_int(g, x), evaluate_int(f, x)
    for o in g.outputs:
        np.testing.assert_array_equal(got[o], ref[o])


def test_compiled_fused_equals_unfused_on_every_engine() -> None:
    g = _chain(extra_y_user=True)
    fused, plain = compile_graph(g), compile_graph(g, options={"fuse": False})
    assert fused.meta["options"]["fuse"] is True and plain.meta["options"]["fuse"] is False
    assert [n["op"] for n in fused.meta["nodes"]] == ["q.conv_rq", "q.clamp", "q.clamp"]
    assert [n["op"] for n in plain.meta["nodes"]] == ["q.conv", "q.requant", "q.clamp",
                                                      "q.clamp"]
    x = {"x": rand("i8", (1, 3, 6, 6))}
    ref = evaluate_int(g, x)
    pf, pp = Program(fused), Program(plain)
    runs = [pf.run(x, "native", commit=True), pf.run(x, "vm", commit=True),
            pp.run(x, "native"), pp.run(x, "vm")]
    for r in runs:
        for o in g.outputs:
            np.testing.assert_array_equal(r.outputs[o], ref[o])
    assert runs[0].node_roots == runs[1].node_roots and runs[0].state_root == runs[1].state_root
    # fewer nodes, and the i64 accumulator is never written
    assert fused.meta["total_steps"] < plain.meta["total_steps"]


def test_plain_native_runs_reuse_the_buffer_without_restoring() -> None:
    """A plain run skips restoring the previous run's bytes: its final root must still be
    the root of a fresh run (every node rewrites all of its output bytes)."""
    g = _chain(extra_y_user=True)
    art = compile_graph(g)
    prog = Program(art)
    xs = [{"x": rand("i8", (1, 3, 6, 6))} for _ in range(3)]
    for x in xs:
        prog.run(x, "native")
    last = prog.run(xs[0], "native")
    fresh = Program(art).run(xs[0], "native", commit=True)
    assert last.state_root == fresh.state_root
    for o in g.outputs:
        np.testing.assert_array_equal(last.outputs[o], fresh.outputs[o])


@pytest.mark.parametrize("dtype", ["i8", "i16", "i32"])
def test_fused_native_conv_writes_only_its_output(dtype: str) -> None:
    """A depthwise fused conv whose row length (7 x 7 = 49) is not a multiple of the
    vector width: the native epilogue writes exactly the output bytes (none past a row)."""
    g = Graph()
    g.inputs = ["x"]
    g.types["x"] = TensorType("i32", (1, 12, 14, 14))
    g.consts = {"w": rand("i16", (12, 1, 3, 3)), "m": np.array(1, np.int64),
                "s": np.array(15, np.int64)}
    for k, v in g.consts.items():
        g.types[k] = TensorType.of(v)
    attrs = {"strides": [2, 2], "pads": [1, 1, 1, 1], "dilations": [1, 1], "group": 12,
             "x_zp": 0, "w_zp": 0, "acc_zp": 0, "zp": 0, "dtype": dtype,
             "lo": int(np.iinfo(INFO[dtype]).min), "hi": int(np.iinfo(INFO[dtype]).max),
             "has_bias": 0, "has_rq_bias": 0}
    g.types["y"] = infer_types("q.conv_rq", [g.types[i] for i in ("x", "w", "m", "s")],
                               attrs)[0]
    g.nodes.append(Node("q.conv_rq", ("x", "w", "m", "s"), ("y",), attrs))
    g.outputs = ["y"]
    prog = Program(compile_graph(verify_int(g)))
    x = {"x": rand("i32", (1, 12, 14, 14))}
    mem = prog.memory(x)
    buf = mem.buffer
    before = buf.copy()
    for parallel in (False, True):
        prog.native().run_node(0, buf.ctypes.data, parallel)
        inside = np.zeros(len(buf), bool)
        for a, n in prog.nodes[0]["writes"]:
            inside[a:a + n] = True
        assert not np.flatnonzero((buf != before) & ~inside).size
        np.testing.assert_array_equal(prog.read_outputs(mem)["y"], evaluate_int(g, x)["y"])
