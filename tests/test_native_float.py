"""The exact-float conv kernels (convgen.float_plan / gen_conv_float): blocks of KC
products summed in f64 (f32) lanes are exact when KC * max|x - x_zp| * max|w - w_zp| <=
2^53 (2^24), so the native bytes equal the integer reference and the VM's. Exercised at
the bound itself: every x at its dtype's extreme and every weight at the extreme of the
constant, with K spanning several KC slices, under 1 and 2 threads."""

from __future__ import annotations

import numpy as np
import pytest
from test_native import _rand, conv_graph, run_threads

from opmlc.backend.compile import compile_graph
from opmlc.backend.convgen import float_plan
from opmlc.backend.kernel import ConvSpec
from opmlc.ir.graph import TensorType
from opmlc.quantize.interp import evaluate_int
from opmlc_runtime.engines import Program


def _sp(x_dtype: str, x_zp: int, wmax: int | None, Cg: int = 64, kern=(3, 3), O=(7, 7),
        Mg: int = 64) -> ConvSpec:
    """A conv description with what float_plan reads (addresses and the rest nominal)."""
    nd = len(kern)
    return ConvSpec(batch=1, channels=Cg, groups=1, out_per_group=Mg, in_per_group=Cg,
                    kernel_shape=tuple(kern), in_shape=tuple(O), out_shape=tuple(O),
                    strides=(1,) * nd, dilations=(1,) * nd, pads=(0,) * nd,
                    x_addr=0, x_dtype=x_dtype, x_zp=x_zp, w_addr=0, w_dtype="i64", w_zp=0,
                    w_absmax=wmax, y_addr=0, y_dtype="i64")


def test_float_plan_rule() -> None:
    """fixed scheme (i32 x i16): f64, 128 products per block (2^31 * 2^15 * 128 = 2^53);
    int8 (i8 - zp, |w| <= 127): f32, 256 per block; i64 activations or a weight bound
    that leaves blocks under 32 products: the i64 lanes."""
    fp = float_plan(_sp("i32", 0, 32768))
    assert (fp.elem_type, fp.k_block) == ("double", 128)
    assert float_plan(_sp("i32", 0, 32767)).k_block == 128
    fp = float_plan(_sp("i8", -128, 127))
    assert (fp.elem_type, fp.k_block) == ("float", 256)
    assert float_plan(_sp("i64", 0, 127)) is None
    assert float_plan(_sp("i32", 0, 1 << 20)) is None
    assert float_plan(_sp("i32", 0, None)) is None
    assert float_plan(_sp("i32", 1, 1 << 17, Cg=1, kern=(2, 2))).k_block == 4  # K = 4


_SLOW = pytest.mark.slow  # each replays a conv on the Python VM (seconds)
CASES = [
    # x dtype, x_zp, w dtype, Cg, kern, extreme x, extreme w   (K > KC: several slices)
    ("i32", 0, "i16", 15, [3, 3], np.iinfo(np.int32).min, -(1 << 15)),
    ("i32", 0, "i16", 15, [3, 3], np.iinfo(np.int32).max, (1 << 15) - 1),
    pytest.param("i8", 127, "i8", 30, [3, 3], -128, 127, marks=_SLOW),
    pytest.param("i8", -128, "i8", 30, [3, 3], 127, -128, marks=_SLOW),
    pytest.param("u8", 0, "i8", 12, [5, 5], 255, -128, marks=_SLOW),
    pytest.param("i16", 0, "i8", 40, [3, 3], -(1 << 15), -128, marks=_SLOW),
]


@pytest.mark.parametrize("xd,x_zp,wd,Cg,kern,xv,wv", CASES)
@pytest.mark.parametrize("fill", ["extreme", "random"])
def test_conv_float_exact_at_the_bound(xd, x_zp, wd, Cg, kern, xv, wv, fill) -> None:
    """Every product at the bound (same sign, so the block sums reach KC * PB exactly) or
    random values with a few extremes: ref == native (1 and 2 threads) == VM, same roots."""
    rng = np.random.default_rng(Cg + len(fill))
    M = 3
    x_t = TensorType(xd, (1, Cg, 4, 4))
    w = np.full((M, Cg, *kern), wv, dtype=_rand(rng, wd, (1,)).dtype)
    x = {"x": np.full(x_t.shape, xv, dtype=_rand(rng, xd, (1,)).dtype)}
    if fill == "random":
        w = _rand(rng, wd, w.shape)
        w.reshape(-1)[::7] = wv
        x["x"] = _rand(rng, xd, x_t.shape)
        x["x"].reshape(-1)[::5] = xv
    pad = kern[0] // 2
    attrs = {"strides": [1, 1], "pads": [pad] * 4, "dilations": [1, 1], "group": 1,
             "x_zp": x_zp, "w_zp": 0}
    g = conv_graph(x_t, w, _rand(rng, "i64", (M,)), attrs)
    sp = _sp(xd, x_zp, int(np.abs(w.astype(np.int64)).max()), Cg, kern, O=(4, 4), Mg=M)
    fp = float_plan(sp)
    assert fp is not None and fp.k_block < Cg * int(np.prod(kern))  # several slices
    ref = evaluate_int(g, x)["y"]
    prog = Program(compile_graph(g))
    runs = run_threads(prog, x, (1, 2))
    for r in runs:
        np.testing.assert_array_equal(r.outputs["y"], ref)
        assert r.node_roots == runs[0].node_roots
    vm = prog.run(x, "vm", trace=True)
    np.testing.assert_array_equal(vm.outputs["y"], ref)
    assert vm.node_roots == runs[0].node_roots and vm.state_root == runs[0].state_root


def test_conv_float_row_blocks_and_column_tails() -> None:
    """Many row blocks (Mg not a multiple of 8), column tails (P % 16 != 0), groups and
    a batch: every thread count gives the reference bytes."""
    rng = np.random.default_rng(5)
    x_t = TensorType("i32", (2, 6, 13, 11))
    w = _rand(rng, "i16", (2 * 37, 3, 3, 3))
    attrs = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "group": 2,
             "x_zp": 0, "w_zp": 0}
    g = conv_graph(x_t, w, _rand(rng, "i64", (74,)), attrs)
    x = {"x": _rand(rng, "i32", x_t.shape)}
    ref = evaluate_int(g, x)["y"]
    prog = Program(compile_graph(g))
    assert "fmuladd" in prog.art.llvm_ir
    for r in run_threads(prog, x, (1, 2, 5)):
        np.testing.assert_array_equal(r.outputs["y"], ref)


def test_conv_float_parts_aligned_for_odd_k() -> None:
    """int8-like f32 kernel with K = 27 (an odd weight slice): every thread's scratch
    starts 64-byte aligned (a misaligned part faulted on the aligned vector loads)."""
    rng = np.random.default_rng(9)
    x_t = TensorType("i8", (1, 3, 40, 40))
    w = _rand(rng, "i8", (16, 3, 3, 3))
    attrs = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "group": 1,
             "x_zp": -3, "w_zp": 0}
    g = conv_graph(x_t, w, None, attrs)
    x = {"x": _rand(rng, "i8", x_t.shape)}
    ref = evaluate_int(g, x)["y"]
    prog = Program(compile_graph(g))
    for r in run_threads(prog, x, (1, 2, 3)):
        np.testing.assert_array_equal(r.outputs["y"], ref)
