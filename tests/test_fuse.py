"""The contraction + requant (+ clamp) fusion pass and the fused ops' semantics.

* q.conv_rq / q.matmul_rq references == the composition q.clamp(q.requant(q.conv(...)))
  on random operands including dtype extremes and wrapping multipliers;
* the pass fuses exactly the single-user chains and keeps everything else (pass tests
  as before / expected IR text, compared structurally);
* a compiled graph gives the same outputs fused and unfused on the reference, the
  native kernels and the VM, and the option is recorded in the artifact.
"""

from __future__ import annotations

import numpy as np
import pytest

from opmlc.backend.compile import compile_graph
from opmlc.backend.fuse import fuse_requant, fuse_residual
from opmlc.ir import Graph, Node, TensorType, parse_graph
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
#
# Pass tests as IR text (TVM Relax style): each case is a ``before`` graph and the graph
# the pass must return, ``expected``, compared structurally (Graph.__eq__: nodes, attrs,
# types, constants by content), and both are evaluated on the same input. Every case is
# the chain x -> q.conv -> q.requant (per channel) [-> q.clamp] [+ extra users] -> outputs
# over the constants of _PRELUDE (the weights by content hash: W).

W = ((np.arange(108) * 37) % 256 - 128).astype(np.int8).reshape(4, 3, 3, 3)
W.reshape(-1)[:2] = (-128, 127)  # the dtype's extremes

_PRELUDE = """graph main(%x: i8[1,3,6,6]) {
  %w: i8[4,3,3,3] = const #c3aef6f53e951b6f
  %b: i32[4] = const [-7, 1000, 3, -250000]
  %m: i64[4,1,1] = const [12345, 524288, 77, 999999]
  %s: i64[4,1,1] = const [8, 12, 19, 15]
"""

CHAIN = _PRELUDE + """
  %acc: i64[1,4,5,3] = q.conv(%x, %w, %b) {dilations=[1, 1], group=1, pads=[1, 0, 0, 1],
                                           strides=[1, 2], w_zp=0, x_zp=0}
  %y: i8[1,4,5,3] = q.requant(%acc, %m, %s) {dtype="i8", x_zp=0, zp=2}
  %z: i8[1,4,5,3] = q.clamp(%y) {hi=100, lo=0}
  return %z
}"""

CHAIN_FUSED = _PRELUDE + """
  %z: i8[1,4,5,3] = q.conv_rq(%x, %w, %b, %m, %s) {acc_zp=0, dilations=[1, 1], dtype="i8",
      group=1, has_bias=1, has_rq_bias=0, hi=100, lo=0, pads=[1, 0, 0, 1], strides=[1, 2],
      w_zp=0, x_zp=0, zp=2}
  return %z
}"""

# no clamp: lo / hi are the dtype's range (the identity)
NO_CLAMP = _PRELUDE + """
  %acc: i64[1,4,5,3] = q.conv(%x, %w, %b) {dilations=[1, 1], group=1, pads=[1, 0, 0, 1],
                                           strides=[1, 2], w_zp=0, x_zp=0}
  %y: i8[1,4,5,3] = q.requant(%acc, %m, %s) {dtype="i8", x_zp=0, zp=2}
  return %y
}"""

NO_CLAMP_FUSED = _PRELUDE + """
  %y: i8[1,4,5,3] = q.conv_rq(%x, %w, %b, %m, %s) {acc_zp=0, dilations=[1, 1], dtype="i8",
      group=1, has_bias=1, has_rq_bias=0, hi=127, lo=-128, pads=[1, 0, 0, 1],
      strides=[1, 2], w_zp=0, x_zp=0, zp=2}
  return %y
}"""

# a second user of the accumulator: nothing fuses
EXTRA_ACC_USER = _PRELUDE + """
  %acc: i64[1,4,5,3] = q.conv(%x, %w, %b) {dilations=[1, 1], group=1, pads=[1, 0, 0, 1],
                                           strides=[1, 2], w_zp=0, x_zp=0}
  %y: i8[1,4,5,3] = q.requant(%acc, %m, %s) {dtype="i8", x_zp=0, zp=2}
  %z: i8[1,4,5,3] = q.clamp(%y) {hi=100, lo=0}
  %y2: i16[1,4,5,3] = q.requant(%acc, %m, %s) {dtype="i16", x_zp=0, zp=0}
  return %z, %y2
}"""

# a second user of the requant's output: conv + requant fuse, both clamps stay
EXTRA_Y_USER = _PRELUDE + """
  %acc: i64[1,4,5,3] = q.conv(%x, %w, %b) {dilations=[1, 1], group=1, pads=[1, 0, 0, 1],
                                           strides=[1, 2], w_zp=0, x_zp=0}
  %y: i8[1,4,5,3] = q.requant(%acc, %m, %s) {dtype="i8", x_zp=0, zp=2}
  %z: i8[1,4,5,3] = q.clamp(%y) {hi=100, lo=0}
  %z2: i8[1,4,5,3] = q.clamp(%y) {hi=5, lo=-5}
  return %z, %z2
}"""

EXTRA_Y_USER_FUSED = _PRELUDE + """
  %y: i8[1,4,5,3] = q.conv_rq(%x, %w, %b, %m, %s) {acc_zp=0, dilations=[1, 1], dtype="i8",
      group=1, has_bias=1, has_rq_bias=0, hi=127, lo=-128, pads=[1, 0, 0, 1],
      strides=[1, 2], w_zp=0, x_zp=0, zp=2}
  %z: i8[1,4,5,3] = q.clamp(%y) {hi=100, lo=0}
  %z2: i8[1,4,5,3] = q.clamp(%y) {hi=5, lo=-5}
  return %z, %z2
}"""

# the accumulator is a graph output: nothing fuses
ACC_OUT = _PRELUDE + """
  %acc: i64[1,4,5,3] = q.conv(%x, %w, %b) {dilations=[1, 1], group=1, pads=[1, 0, 0, 1],
                                           strides=[1, 2], w_zp=0, x_zp=0}
  %y: i8[1,4,5,3] = q.requant(%acc, %m, %s) {dtype="i8", x_zp=0, zp=2}
  %z: i8[1,4,5,3] = q.clamp(%y) {hi=100, lo=0}
  return %z, %acc
}"""


# a residual block: conv_rq -> add(residual) -> clamp, with the residual as the add's a
RESIDUAL = """graph main(%x: i8[1,3,6,6], %r: i8[1,4,5,3]) {
  %w: i8[4,3,3,3] = const #c3aef6f53e951b6f
  %b: i32[4] = const [-7, 1000, 3, -250000]
  %m: i64[4,1,1] = const [12345, 524288, 77, 999999]
  %s: i64[4,1,1] = const [8, 12, 19, 15]
  %acc: i64[1,4,5,3] = q.conv(%x, %w, %b) {dilations=[1, 1], group=1, pads=[1, 0, 0, 1],
                                           strides=[1, 2], w_zp=0, x_zp=0}
  %y: i8[1,4,5,3] = q.requant(%acc, %m, %s) {dtype="i8", x_zp=0, zp=2}
  %z: i8[1,4,5,3] = q.clamp(%y) {hi=100, lo=0}
  %t: i8[1,4,5,3] = q.add(%r, %z) {a_mult=3000, a_zp=-5, b_mult=-2500, b_zp=2,
                                   dtype="i8", shift=12, zp=1}
  %u: i8[1,4,5,3] = q.clamp(%t) {hi=120, lo=-3}
  return %u
}"""

RESIDUAL_FUSED = """graph main(%x: i8[1,3,6,6], %r: i8[1,4,5,3]) {
  %w: i8[4,3,3,3] = const #c3aef6f53e951b6f
  %b: i32[4] = const [-7, 1000, 3, -250000]
  %m: i64[4,1,1] = const [12345, 524288, 77, 999999]
  %s: i64[4,1,1] = const [8, 12, 19, 15]
  %u: i8[1,4,5,3] = q.conv_rq_add(%x, %w, %b, %m, %s, %r) {acc_zp=0, add_a_mult=3000,
      add_a_zp=-5, add_b_mult=-2500, add_b_zp=2, add_dtype="i8", add_hi=120, add_lo=-3,
      add_shift=12, add_zp=1, dilations=[1, 1], dtype="i8", group=1, has_bias=1,
      has_rq_bias=0, hi=100, lo=0, pads=[1, 0, 0, 1], res_a=1, strides=[1, 2], w_zp=0,
      x_zp=0, zp=2}
  return %u
}"""


def test_pass_fuses_residual_add_clamp() -> None:
    """conv_rq -> add -> clamp becomes one q.conv_rq_add (the composition: the same
    outputs) on the reference and on every engine."""
    g = _ir(RESIDUAL)
    f = fuse_residual(fuse_requant(g))
    assert f == _ir(RESIDUAL_FUSED)
    x = {"x": rand("i8", (1, 3, 6, 6)), "r": rand("i8", (1, 4, 5, 3))}
    ref, got = evaluate_int(g, x), evaluate_int(f, x)
    np.testing.assert_array_equal(got["u"], ref["u"])
    art = compile_graph(g)
    assert [n["op"] for n in art.meta["nodes"]] == ["q.conv_rq_add"]
    runs = [Program(art).run(x, e, trace=True) for e in ("native", "vm")]
    for r in runs:
        np.testing.assert_array_equal(r.outputs["u"], ref["u"])
    assert runs[0].node_roots == runs[1].node_roots and runs[0].state_root == runs[1].state_root


def _ir(text: str) -> Graph:
    """The verified integer graph of IR text (hashed constants: the weights W)."""
    return verify_int(parse_graph(text, consts={"w": W}))


def _ops(g: Graph) -> list[str]:
    return [n.op for n in g.nodes]


def _same_outputs(before: Graph, after: Graph) -> None:
    x = {"x": rand("i8", (1, 3, 6, 6))}
    ref, got = evaluate_int(before, x), evaluate_int(after, x)
    for o in before.outputs:
        np.testing.assert_array_equal(got[o], ref[o])


def test_pass_fuses_conv_requant_clamp() -> None:
    g = _ir(CHAIN)
    f = fuse_requant(g)
    assert f == _ir(CHAIN_FUSED)
    assert _ops(f) == ["q.conv_rq"]
    n = f.nodes[0]
    assert n.inputs == ("x", "w", "b", "m", "s") and n.outputs == ("z",)
    assert n.attrs["lo"] == 0 and n.attrs["hi"] == 100 and n.attrs["has_bias"] == 1
    assert set(f.types) == {"x", "w", "b", "m", "s", "z"}
    _same_outputs(g, f)


@pytest.mark.parametrize("before, expected, ops", [
    pytest.param(NO_CLAMP, NO_CLAMP_FUSED, ["q.conv_rq"], id="no_clamp"),
    pytest.param(EXTRA_ACC_USER, EXTRA_ACC_USER, ["q.conv", "q.requant", "q.clamp",
                                                  "q.requant"], id="extra_acc_user"),
    pytest.param(EXTRA_Y_USER, EXTRA_Y_USER_FUSED, ["q.conv_rq", "q.clamp", "q.clamp"],
                 id="extra_y_user"),
    pytest.param(ACC_OUT, ACC_OUT, ["q.conv", "q.requant", "q.clamp"], id="acc_out"),
])
def test_pass_fuses_only_single_user_chains(before: str, expected: str, ops: list[str]) -> None:
    g = _ir(before)
    f = fuse_requant(g)
    assert f == _ir(expected)
    assert _ops(f) == ops
    if before == NO_CLAMP:  # no clamp: lo / hi are the dtype's range (identity)
        assert (f.nodes[0].attrs["lo"], f.nodes[0].attrs["hi"]) == (-128, 127)
    _same_outputs(g, f)


def test_compiled_fused_equals_unfused_on_every_engine() -> None:
    g = _ir(EXTRA_Y_USER)
    fused, plain = compile_graph(g), compile_graph(g, options={"fuse": False})
    assert fused.meta["options"]["fuse"] is True and plain.meta["options"]["fuse"] is False
    assert [n["op"] for n in fused.meta["nodes"]] == ["q.conv_rq", "q.clamp", "q.clamp"]
    assert [n["op"] for n in plain.meta["nodes"]] == ["q.conv", "q.requant", "q.clamp",
                                                      "q.clamp"]
    x = {"x": rand("i8", (1, 3, 6, 6))}
    ref = evaluate_int(g, x)
    pf, pp = Program(fused), Program(plain)
    runs = [pf.run(x, "native", trace=True), pf.run(x, "vm", trace=True),
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
    g = _ir(EXTRA_Y_USER)
    art = compile_graph(g)
    prog = Program(art)
    xs = [{"x": rand("i8", (1, 3, 6, 6))} for _ in range(3)]
    for x in xs:
        prog.run(x, "native")
    last = prog.run(xs[0], "native")
    fresh = Program(art).run(xs[0], "native", trace=True)
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
