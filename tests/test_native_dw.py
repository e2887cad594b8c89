"""The depthwise stencil kernel (convgen.dw_plan / gen_conv_dw): a conv with one input
channel per group, computed per output plane from a zero-bordered copy of x - x_zp, in
i32 lanes when every sum is bounded below 2^31 (8-bit operands) and in wrapping i64 lanes
otherwise (the fixed scheme's i32 x and i16 w). ref == native (1 and 2 threads) == VM on
the kernel's edges: output widths around the 16-column vector, strides 1..4, dilations,
asymmetric pads, kernels up to 7x7, channel multipliers (Mg > 1), one-channel x with many
outputs, zero points and products at the extremes, bias, fused requant, clamp and
residual epilogues; and the rule that picks the kernel."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_backend_hypothesis import one_node
from test_native import _rand
from test_native_dot import _build, assert_engines_agree

from opmlc.backend.compile import compile_graph
from opmlc.backend.convgen import DW_MARK, DW_MAX_PLANE, DWL, dw_plan
from opmlc.quantize.interp import evaluate_int


@st.composite
def dw_case(draw, wide: bool):
    nd = draw(st.sampled_from([1, 2, 2]))
    kern = [draw(st.integers(1, 7 if nd == 1 else 5)) for _ in range(nd)]
    s = [draw(st.integers(1, 4)) for _ in range(nd)]
    d = [draw(st.integers(1, 2)) for _ in range(nd)]
    pads = [draw(st.integers(0, 3)) for _ in range(2 * nd)]
    # widths around one and two vectors of DWL output columns
    W = draw(st.sampled_from([1, 2, 7, DWL - 1, DWL, DWL + 1, 2 * DWL + 3]))
    H = [draw(st.integers(1, 7)), W] if nd == 2 else [W]
    H = [max(H[i], d[i] * (kern[i] - 1) + 1 - pads[i] - pads[nd + i]) for i in range(nd)]
    if wide:  # the fixed scheme's operands
        xd, wd = "i32", draw(st.sampled_from(["i16", "i8"]))
        x_zp, w_zp = draw(st.sampled_from([0, 0, 5])), 0
    else:
        xd, wd = draw(st.sampled_from(["i8", "u8"])), draw(st.sampled_from(["i8", "u8"]))
        xlo, xhi = (-128, 127) if xd == "i8" else (0, 255)
        wlo, whi = (-128, 127) if wd == "i8" else (0, 255)
        x_zp = draw(st.sampled_from([xlo, xhi, 0, 3]))
        w_zp = draw(st.sampled_from([0, wlo, whi, -1]))
    one_channel = draw(st.booleans())
    G = 1 if one_channel else draw(st.integers(1, 19))
    Mg = draw(st.sampled_from([1, 2, 3] if not one_channel else [1, 5, 17]))
    rq = None if wide else draw(st.sampled_from([None, "i8", "u8", "clamp"]))
    return dict(nd=nd, N=draw(st.integers(1, 2)), G=G, Cg=1, Mg=Mg, kern=kern, s=s, d=d,
                pads=pads, H=H, xd=xd, wd=wd, x_zp=x_zp, w_zp=w_zp,
                bias=draw(st.sampled_from([None, "i32", "i64"])), rq=rq,
                res=draw(st.sampled_from([None, "a", "b+clamp"])) if rq else None,
                extreme=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)))


def _check(c: dict, wide: bool) -> None:
    g, x = _build(c)
    ref = evaluate_int(g, x)["y"]
    art = compile_graph(g)
    assert DW_MARK in art.llvm_ir  # the stencil, not the im2col kernels
    wants = "<16 x i64>" if wide else "<16 x i32>"
    assert f"mul {wants}" in art.llvm_ir
    assert_engines_agree(art, x, ref, ((1, "1"), (2, "1")))  # no dot product: no VNNI


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c=dw_case(wide=False))
def test_dw_int8_bit_exact(c: dict) -> None:
    """8-bit depthwise / one-channel convs in i32 lanes: ref == native == VM."""
    _check(c, wide=False)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c=dw_case(wide=True))
def test_dw_wide_bit_exact(c: dict) -> None:
    """i32 x (the fixed scheme's activations) in wrapping i64 lanes: ref == native == VM,
    extreme inputs included (sums past 2^31)."""
    _check(c, wide=True)


def test_dw_plan_rule() -> None:
    """One input channel per group, 1-D or 2-D, K <= 64 taps, strides <= 4 and a scratch
    plane <= 1 MiB: the stencil; i32 lanes exactly when K max|x - x_zp| max|w - w_zp| <
    2^31."""
    from test_native_float import _sp

    sp = replace(_sp("i8", -128, 127, Cg=1, Mg=1), w_dtype="i8", w_zp=0, w_absmax=127)
    p = dw_plan(sp)
    assert p is not None and not p.wide
    assert dw_plan(replace(sp, in_per_group=2)) is None
    assert dw_plan(replace(sp, strides=(5,) * len(sp.strides))) is None
    assert dw_plan(replace(sp, kernel_shape=(9, 8))) is None  # 72 taps
    assert dw_plan(replace(sp, kernel_shape=(8, 8))) is not None
    assert dw_plan(replace(sp, kernel_shape=(1, 1, 1))) is None  # 3-D
    # K * 255 * wb < 2^31 decides the lanes
    k = sp.reduction
    lim = -(-(1 << 31) // (k * 255))
    assert not dw_plan(replace(sp, w_absmax=lim - 1)).wide
    assert dw_plan(replace(sp, w_absmax=lim)).wide
    assert dw_plan(replace(sp, x_dtype="i32", x_zp=0, w_absmax=1)).wide
    big = replace(sp, in_shape=(2000, 2000), out_shape=(2000, 2000))
    assert dw_plan(big) is None and DW_MAX_PLANE < 2000 * 2000 * 4


@st.composite
def pool_case(draw):
    nd = draw(st.sampled_from([1, 2, 2]))
    kern = [draw(st.integers(1, 4)) for _ in range(nd)]
    s = [draw(st.integers(1, 3)) for _ in range(nd)]
    d = [draw(st.integers(1, 2)) for _ in range(nd)]
    pads = [draw(st.integers(0, kern[i % nd] - 1)) for i in range(2 * nd)]  # ONNX: < kernel
    W = draw(st.sampled_from([1, 3, DWL - 1, DWL, DWL + 1, 2 * DWL + 5]))
    H = [draw(st.integers(1, 9)), W] if nd == 2 else [W]
    H = [max(H[i], d[i] * (kern[i] - 1) + 1) for i in range(nd)]
    return dict(nd=nd, kern=kern, s=s, d=d, pads=pads, H=H,
                N=draw(st.integers(1, 2)), C=draw(st.integers(1, 5)),
                dtype=draw(st.sampled_from(["i8", "u8", "i16", "i32", "i64"])),
                ceil=draw(st.integers(0, 1)), seed=draw(st.integers(0, 2**32 - 1)))


def _pool_graph(c: dict):
    rng = np.random.default_rng(c["seed"])
    x = _rand(rng, c["dtype"], (c["N"], c["C"], *c["H"]))
    return one_node("q.max_pool", {"x": x}, {
        "kernel_shape": c["kern"], "strides": c["s"], "dilations": c["d"], "pads": c["pads"],
        "ceil_mode": c["ceil"]})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c=pool_case())
def test_max_pool_stencil(c: dict) -> None:
    """q.max_pool on the native stencil (gen_pool_max) when every window holds a position
    inside x, on the loop nest otherwise: ref == native (1 and 2 threads) == VM, every
    root, for every dtype, padding, dilation, stride and ceil mode."""
    from opmlc.backend.convgen import POOL_MARK, pool_plan
    from opmlc.backend.kernel import PoolSpec
    from opmlc_runtime.engines import Program

    g, x = _pool_graph(c)
    ref = evaluate_int(g, x)["y0"]
    art = compile_graph(g)
    nd = c["nd"]
    yshape = g.types["y0"].shape
    spec = PoolSpec(batch=c["N"], channels=c["C"], kernel_shape=tuple(c["kern"]),
                    in_shape=tuple(c["H"]), out_shape=tuple(yshape[2:]),
                    strides=tuple(c["s"]), dilations=tuple(c["d"]), pads=tuple(c["pads"][:nd]),
                    x_addr=0, x_dtype=c["dtype"], y_addr=0, y_dtype=c["dtype"])
    stencil = pool_plan(spec) is not None
    assert (POOL_MARK in art.llvm_ir) is stencil
    runs = []
    for t in (1, 2):
        from opmlc_runtime import native

        native.set_threads(t)
        try:
            runs.append(Program(art).run(x, "native", trace=True))
        finally:
            native.set_threads(None)
    vm = Program(art).run(x, "vm", trace=True)
    for r in (*runs, vm):
        np.testing.assert_array_equal(r.outputs["y0"], ref)
        assert (r.node_roots, r.state_root) == (vm.node_roots, vm.state_root)


def test_max_pool_resnet_stem() -> None:
    """ResNet's 3x3 / 2 max pool over 64 x 112 x 112 int8 (split over the threads by the
    driver): the stencil, ref == native at 1 and 2 threads."""
    c = dict(nd=2, kern=[3, 3], s=[2, 2], d=[1, 1], pads=[1, 1, 1, 1], H=[112, 112], N=1,
             C=64, dtype="i8", ceil=0, seed=7)
    g, x = _pool_graph(c)
    ref = evaluate_int(g, x)["y0"]
    art = compile_graph(g)
    assert "icmp sgt <16 x i32>" in art.llvm_ir
    from opmlc_runtime import native
    from opmlc_runtime.engines import Program

    for t in (1, 2):
        native.set_threads(t)
        try:
            prog = Program(art)
            assert prog._split_flags() == b"\x01"  # noqa: SLF001
            np.testing.assert_array_equal(prog.run(x, "native").outputs["y0"], ref)
        finally:
            native.set_threads(None)
