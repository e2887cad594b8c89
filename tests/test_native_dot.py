"""The int8 dot-product conv kernels (convgen.dot_plan / gen_conv_dot): 8-bit x and w
summed as u8 x s8 groups of four k in i32 lanes (AVX-512 VNNI vpdpbusd where the host
has it, the runtime's plain vector definition elsewhere), zero points corrected in i64.
ref == native (VNNI and the forced fallback, 1 and 2 threads) == VM, on the kernel's
edges: tile remainders (rows % 16, columns % 16), K not a multiple of 4, channel counts
1..67, zero points at the extremes, u8 weights, depthwise and grouped convs, fused
requant epilogues."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_native import _rand, conv_graph

from opmlc.backend.compile import compile_graph
from opmlc.backend.convgen import DMR, DNR, DPBUSD_DECL, DW_MARK, dot_plan
from opmlc.ir.graph import Graph, Node, TensorType
from opmlc.ir.ops import canonical_attrs, infer_types
from opmlc.quantize.interp import evaluate_int, verify_int
from opmlc_runtime import native
from opmlc_runtime.engines import Program


def _with_requant(g, rng: np.random.Generator, M: int, nd: int,
                  clamp: tuple[int, int] | None, dtype: str):
    """g's conv followed by a per-channel q.requant (and q.clamp): fused to q.conv_rq."""
    g.nodes = [Node(g.nodes[0].op, g.nodes[0].inputs, ("acc",), g.nodes[0].attrs)]
    g.types["acc"] = g.types.pop("y")
    g.consts["m"] = rng.integers(1, 1 << 20, (M,) + (1,) * nd).astype(np.int64)
    g.consts["s"] = rng.integers(8, 24, (M,) + (1,) * nd).astype(np.int64)
    for k in ("m", "s"):
        g.types[k] = TensorType.of(g.consts[k])
    ra = canonical_attrs("q.requant", {"x_zp": int(rng.integers(-50, 50)),
                                       "zp": int(rng.integers(-5, 5)), "dtype": dtype})
    out = "y" if clamp is None else "r"
    g.types[out] = infer_types("q.requant", [g.types[a] for a in ("acc", "m", "s")], ra)[0]
    g.nodes.append(Node("q.requant", ("acc", "m", "s"), (out,), ra))
    if clamp is not None:
        ca = canonical_attrs("q.clamp", {"lo": clamp[0], "hi": clamp[1]})
        g.types["y"] = infer_types("q.clamp", [g.types["r"]], ca)[0]
        g.nodes.append(Node("q.clamp", ("r",), ("y",), ca))
    return verify_int(g)


def _with_residual(g, rng: np.random.Generator, res_a: bool, clamp: bool):
    """g (ending in a requant or clamp of a conv) followed by q.add with a residual input
    of the same shape (and a q.clamp): fused to q.conv_rq_add."""
    y = g.outputs[0]
    g.nodes = [Node(n.op, n.inputs, tuple("c" if o == y else o for o in n.outputs), n.attrs)
               for n in g.nodes]
    g.types["c"] = g.types.pop(y)
    t = g.types["c"]
    g.inputs.append("res")
    g.types["res"] = TensorType(t.dtype, t.shape)
    aa = canonical_attrs("q.add", {"a_zp": int(rng.integers(-9, 9)), "b_zp": 2,
                                   "a_mult": int(rng.integers(1, 1 << 12)),
                                   "b_mult": -int(rng.integers(1, 1 << 12)), "shift": 11,
                                   "zp": -3, "dtype": t.dtype})
    ins = ("res", "c") if res_a else ("c", "res")
    out = "sum" if clamp else y
    g.types[out] = infer_types("q.add", [g.types[a] for a in ins], aa)[0]
    g.nodes.append(Node("q.add", ins, (out,), aa))
    if clamp:
        ca = canonical_attrs("q.clamp", {"lo": -7, "hi": 100})
        g.types[y] = infer_types("q.clamp", [g.types["sum"]], ca)[0]
        g.nodes.append(Node("q.clamp", ("sum",), (y,), ca))
    return verify_int(g)


def run_native(prog_art, x: dict, threads: int, vnni: str) -> object:
    """One native run with a fresh JIT under OPMLC_VNNI=vnni and the given thread count."""
    import os

    old = os.environ.get("OPMLC_VNNI")
    os.environ["OPMLC_VNNI"] = vnni
    try:
        native.set_threads(threads)
        prog = Program(prog_art)
        r = prog.run(x, "native", trace=True)
        assert prog.native().vnni == (vnni == "1" and native.vnni())
        return r
    finally:
        native.set_threads(None)
        if old is None:
            del os.environ["OPMLC_VNNI"]
        else:
            os.environ["OPMLC_VNNI"] = old


def assert_engines_agree(art, x: dict, ref: np.ndarray,
                         configs=((1, "1"), (2, "1"), (2, "0"))) -> None:
    """y == ref on native under each (threads, OPMLC_VNNI) config and, when the program
    is small, on the VM; every node root and the final root the same everywhere."""
    runs = [run_native(art, x, t, v) for t, v in configs]
    for r in runs:
        np.testing.assert_array_equal(r.outputs["y"], ref)
        assert r.node_roots == runs[0].node_roots and r.state_root == runs[0].state_root
    if art.meta["total_steps"] < 3_000_000:
        vm = Program(art).run(x, "vm", trace=True)
        np.testing.assert_array_equal(vm.outputs["y"], ref)
        assert vm.node_roots == runs[0].node_roots and vm.state_root == runs[0].state_root


@st.composite
def _window(draw, nd: int):
    """(kernel, strides, dilations, pads, input shape) of an nd-dimensional conv: kernels
    1..3, strides and dilations 1..2, pads 0..2, x at least one window wide."""
    kern = [draw(st.integers(1, 3)) for _ in range(nd)]
    s = [draw(st.integers(1, 2)) for _ in range(nd)]
    d = [draw(st.integers(1, 2)) for _ in range(nd)]
    pads = [draw(st.integers(0, 2)) for _ in range(2 * nd)]
    H = [max(draw(st.integers(1, 9 if nd == 2 else 40)),
             d[i] * (kern[i] - 1) + 1 - pads[i] - pads[nd + i]) for i in range(nd)]
    return kern, s, d, pads, H


@st.composite
def dot_case(draw):
    nd = draw(st.integers(1, 2))
    depthwise = draw(st.booleans())
    G = draw(st.integers(1, 3))
    Cg = 1 if depthwise else draw(st.sampled_from([1, 2, 3, 5, 16, 17, 31, 64, 67]))
    Mg = 1 if depthwise else draw(st.sampled_from([1, 3, 15, 16, 17, 33, 67]))
    if depthwise:
        G = draw(st.integers(1, 67))
    kern, s, d, pads, H = draw(_window(nd))
    xd, wd = draw(st.sampled_from(["i8", "u8"])), draw(st.sampled_from(["i8", "u8"]))
    xlo, xhi = (-128, 127) if xd == "i8" else (0, 255)
    wlo, whi = (-128, 127) if wd == "i8" else (0, 255)
    return dict(nd=nd, N=draw(st.integers(1, 2)), G=G, Cg=Cg, Mg=Mg, kern=kern, s=s, d=d,
                pads=pads, H=H, xd=xd, wd=wd,
                x_zp=draw(st.sampled_from([xlo, xhi, 0, 3])),
                w_zp=draw(st.sampled_from([0, 0, wlo, whi, -1])),
                bias=draw(st.sampled_from([None, "i32", "i64"])),
                rq=draw(st.sampled_from([None, "i8", "u8", "clamp"])),
                res=draw(st.sampled_from([None, "a", "b", "a+clamp", "b+clamp"])),
                extreme=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)))


def _build(c: dict):
    rng = np.random.default_rng(c["seed"])
    M = c["G"] * c["Mg"]
    x_t = TensorType(c["xd"], (c["N"], c["G"] * c["Cg"], *c["H"]))
    w = _rand(rng, c["wd"], (M, c["Cg"], *c["kern"]))
    x = _rand(rng, c["xd"], x_t.shape)
    if c["extreme"]:  # every product at the bound: the i32 sums at their largest
        info_x, info_w = np.iinfo(x.dtype), np.iinfo(w.dtype)
        x[...] = info_x.max if c["x_zp"] <= 0 else info_x.min
        w[...] = info_w.min if c["w_zp"] >= 0 else info_w.max
    bias = None if c["bias"] is None else _rand(rng, c["bias"], (M,))
    attrs = {"strides": c["s"], "pads": c["pads"], "dilations": c["d"], "group": c["G"],
             "x_zp": c["x_zp"], "w_zp": c["w_zp"]}
    g = conv_graph(x_t, w, bias, attrs)
    if c["rq"] is not None:
        dt = "i8" if c["rq"] == "clamp" else c["rq"]
        g = _with_requant(g, rng, M, c["nd"], (-20, 90) if c["rq"] == "clamp" else None, dt)
        if c.get("res"):
            g = _with_residual(g, rng, c["res"][0] == "a", c["res"].endswith("clamp"))
            r = g.types["res"]
            return g, {"x": x, "res": _rand(rng, r.dtype, r.shape)}
    return g, {"x": x}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c=dot_case())
def test_dot_conv_bit_exact(c: dict) -> None:
    """Random 8-bit q.conv / q.conv_rq on the dot-product kernel: ref == native with VNNI
    (1 and 2 threads) == native with the plain fallback == the VM, every root the same."""
    g, x = _build(c)
    ref = evaluate_int(g, x)["y"]
    art = compile_graph(g)
    # one input channel per group: the depthwise stencil (tests/test_native_dw.py), else
    # the dot-product kernel
    assert (DW_MARK if c["Cg"] == 1 else DPBUSD_DECL) in art.llvm_ir
    fused = "q.conv_rq_add" if c["rq"] and c.get("res") else "q.conv_rq" if c["rq"] else "q.conv"
    assert [n["op"] for n in art.meta["nodes"]] == [fused]
    assert_engines_agree(art, x, ref)


def test_dot_plan_rule() -> None:
    """8-bit x and w with constant weights and a representable padding byte: the dot
    kernel; 16-bit operands, zero points whose padding byte leaves u8, or K * 255 * 128 >=
    2^31: another kernel."""
    from test_native_float import _sp

    base = dict(w_dtype="i8", w_rowsum=(0,) * 4)
    sp = _sp("i8", -128, 127, Cg=4, Mg=4)
    assert dot_plan(sp) is None  # w i64
    from dataclasses import replace

    sp = replace(sp, **base)
    assert dot_plan(sp) is not None and dot_plan(sp).x_zp_u8 == 0
    assert dot_plan(replace(sp, x_zp=127)).x_zp_u8 == 255
    assert dot_plan(replace(sp, x_dtype="u8", x_zp=256)) is None
    assert dot_plan(replace(sp, x_dtype="i16")) is None
    assert dot_plan(replace(sp, w_rowsum=None)) is None
    big = replace(sp, in_per_group=65794, kernel_shape=(1, 1))
    assert dot_plan(big) is None
    assert dot_plan(replace(big, in_per_group=65793)) is not None
    assert DNR == 16 and DMR == 16


def test_runtime_declaration_matches() -> None:
    """The primitive the compiler declares is the one the runtime defines."""
    assert DPBUSD_DECL == native.DPBUSD_DECL
    ir = native.with_primitives(DPBUSD_DECL, False)
    assert "define internal" in ir and "vpdpbusd" not in ir
    assert "vpdpbusd" in native.with_primitives(DPBUSD_DECL, True)


@pytest.mark.parametrize("Cg,Mg,H", [(64, 64, 9), (67, 17, 7), (3, 35, 11)])
def test_dot_conv_resnet_like(Cg: int, Mg: int, H: int) -> None:
    """3x3 padded conv_rq with more columns than one panel: VNNI == fallback == ref."""
    c = dict(nd=2, N=1, G=1, Cg=Cg, Mg=Mg, kern=[3, 3], s=[1, 1], d=[1, 1],
             pads=[1, 1, 1, 1], H=[H, H], xd="i8", wd="i8", x_zp=-128, w_zp=0, bias="i32",
             rq="clamp", extreme=False, seed=Cg)
    g, x = _build(c)
    ref = evaluate_int(g, x)["y"]
    art = compile_graph(g)
    for t, v in ((1, "1"), (3, "1"), (2, "0")):
        np.testing.assert_array_equal(run_native(art, x, t, v).outputs["y"], ref)


def matmul_graph(c: dict):
    """(q.matmul [+ q.requant] graph, inputs) of a case: a (batch, M, K) of c["ad"], b
    (K, N) of c["bd"] (per batch when c["bbatch"]), constant unless c["bconst"] is false,
    b_zp c["b_zp"] (default b's u8 -> s8 offset), a bias when c["bias"], a per-column
    requant to c["rq"] (True: i8) when set, every product at its bound with c["extreme"]."""
    rng = np.random.default_rng(c["seed"])
    a = _rand(rng, c["ad"], (*c["batch"], c["M"], c["K"]))
    b = _rand(rng, c["bd"], ((*c["batch"],) if c["bbatch"] else ()) + (c["K"], c["N"]))
    if c.get("extreme"):  # every product at the bound: the i32 sums at their largest
        a[...] = np.iinfo(a.dtype).max if c["a_zp"] <= 0 else np.iinfo(a.dtype).min
        b[...] = np.iinfo(b.dtype).min
    g = Graph()
    g.inputs, g.types["a"] = ["a"], TensorType.of(a)
    x = {"a": a}
    if c.get("bconst", True):
        g.consts["b"] = b
    else:
        g.inputs.append("b")
        x["b"] = b
    g.types["b"] = TensorType.of(b)
    args = ["a", "b"]
    if c["bias"]:
        g.consts["bias"] = _rand(rng, "i32", (c["N"],))
        g.types["bias"] = TensorType.of(g.consts["bias"])
        args.append("bias")
    b_zp = c.get("b_zp", 128 if c["bd"] == "u8" else 0)
    ma = canonical_attrs("q.matmul", {"a_zp": c["a_zp"], "b_zp": b_zp})
    out = "acc" if c["rq"] else "y"
    g.types[out] = infer_types("q.matmul", [g.types[n] for n in args], ma)[0]
    g.nodes = [Node("q.matmul", tuple(args), (out,), ma)]
    if c["rq"]:
        g.consts["m"] = rng.integers(1, 1 << 20, (c["N"],)).astype(np.int64)
        g.consts["s"] = np.array(14, np.int64)
        for k in ("m", "s"):
            g.types[k] = TensorType.of(g.consts[k])
        dt = c["rq"] if isinstance(c["rq"], str) else "i8"
        ra = canonical_attrs("q.requant", {"x_zp": 3, "zp": -2, "dtype": dt})
        g.types["y"] = infer_types("q.requant", [g.types[n] for n in ("acc", "m", "s")],
                                   ra)[0]
        g.nodes.append(Node("q.requant", ("acc", "m", "s"), ("y",), ra))
    g.outputs = ["y"]
    return verify_int(g), x


@st.composite
def matmul_case(draw):
    K = draw(st.sampled_from([1, 3, 4, 17, 64, 130]))
    N = draw(st.sampled_from([2, 3, 15, 16, 17, 33, 40, 64, 65, 130, 256, 300]))
    M = draw(st.integers(1, 3))
    batch = draw(st.sampled_from([(), (2,), (1, 2)]))
    ad = draw(st.sampled_from(["i8", "u8", "i16", "i32"]))
    bd = draw(st.sampled_from(["i8", "u8", "i16", "i64"]))
    return dict(K=K, N=N, M=M, batch=batch, ad=ad, bd=bd,
                bbatch=draw(st.booleans()), a_zp=draw(st.sampled_from([0, -128, 127, 5])),
                b_zp=draw(st.sampled_from([0, -1, 255])), bias=draw(st.booleans()),
                rq=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c=matmul_case())
def test_vector_matmul_bit_exact(c: dict) -> None:
    """q.matmul / q.matmul_rq on the 64- or 256-column strip kernel (convgen.gen_matmul): strip
    tails, broadcast batches, i32 lanes (bounded sums) and i64 lanes (wide dtypes), bias
    and per-column requant parameters: ref == native (1 and 2 threads) == VM."""
    from unittest import mock

    from opmlc.backend import convgen

    g, x = matmul_graph(c)
    ref = evaluate_int(g, x)["y"]
    with mock.patch.object(convgen, "mat_dot_plan", lambda ms: None):  # 8-bit too
        art = compile_graph(g)
    assert DPBUSD_DECL not in art.llvm_ir
    assert "masked.load.v64" in art.llvm_ir or "masked.load.v256" in art.llvm_ir
    assert_engines_agree(art, x, ref, ((1, "1"), (2, "1")))


@pytest.mark.parametrize("xd,res_a,clamp", [("i8", False, True), ("i16", True, True),
                                            ("i32", False, False), ("i64", True, True)])
def test_conv_rq_add_every_kernel(xd: str, res_a: bool, clamp: bool) -> None:
    """conv -> requant -> add(residual) [-> clamp] fuses to one q.conv_rq_add node on the
    dot-product (i8), exact-float (i16, i32) and loop-nest (i64) kernels: ref == native
    (1 and 3 threads, the fallback) == VM, every root."""
    c = dict(nd=2, N=2, G=1, Cg=5, Mg=19, kern=[3, 3], s=[1, 1], d=[1, 1],
             pads=[1, 1, 1, 1], H=[6, 7], xd=xd, wd="i8", x_zp=-3, w_zp=0, bias="i32",
             rq="clamp", extreme=False, seed=11,
             res=("a" if res_a else "b") + ("+clamp" if clamp else ""))
    g, x = _build(c)
    ref = evaluate_int(g, x)["y"]
    art = compile_graph(g)
    assert [n["op"] for n in art.meta["nodes"]] == ["q.conv_rq_add"]
    runs = [run_native(art, x, t, v) for t, v in ((1, "1"), (3, "1"), (2, "0"))]
    for r in runs:
        np.testing.assert_array_equal(r.outputs["y"], ref)
        assert r.node_roots == runs[0].node_roots
    vm = Program(art).run(x, "vm", trace=True)
    np.testing.assert_array_equal(vm.outputs["y"], ref)
    assert vm.node_roots == runs[0].node_roots and vm.state_root == runs[0].state_root


@st.composite
def dot16_case(draw):
    """i16 x and w (the fixed scheme's --act-dtype i16 against its weights), Cg >= 2 (one
    channel per group is the depthwise stencil's)."""
    nd = draw(st.integers(1, 2))
    kern, s, d, pads, H = draw(_window(nd))
    return dict(nd=nd, N=draw(st.integers(1, 2)), G=draw(st.integers(1, 3)),
                Cg=draw(st.sampled_from([2, 3, 5, 16, 17, 33])),
                Mg=draw(st.sampled_from([1, 3, 7, 8, 9, 17, 33])), kern=kern, s=s, d=d,
                pads=pads, H=H, xd="i16", wd="i16",
                x_zp=draw(st.sampled_from([0, 0, -32768, 32767, 5])),
                w_zp=draw(st.sampled_from([0, 0, -32768, 32767, -1])),
                bias=draw(st.sampled_from([None, "i32", "i64"])),
                rq=draw(st.sampled_from([None, "i16", "i8", "clamp"])),
                res=draw(st.sampled_from([None, "a", "b+clamp"])),
                extreme=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c=dot16_case())
def test_dot16_conv_bit_exact(c: dict) -> None:
    """Random i16 q.conv / q.conv_rq on the 16-bit dot-product kernel (x and w split into
    bytes, gen_conv_dot16): ref == native with VNNI (1 and 2 threads) == the plain fallback
    == the VM, every root the same; extreme inputs put every partial sum at its bound."""
    from opmlc.backend.convgen import dot16_plan  # noqa: F401 - the kernel under test

    g, x = _build(c)
    ref = evaluate_int(g, x)["y"]
    art = compile_graph(g)
    assert DPBUSD_DECL in art.llvm_ir and "ashr <32 x i16>" in art.llvm_ir  # the split
    assert_engines_agree(art, x, ref)


def test_dot16_plan_rule() -> None:
    """i16 x and i16 constant w with 2 K 255 * 128 < 2^31 and the group's split weights
    within D16_MAX_W: the 16-bit kernel; 8-bit or i32 operands or unknown weights: not."""
    from dataclasses import replace

    from test_native_float import _sp

    from opmlc.backend.convgen import D16_MAX_W, dot16_plan

    sp = replace(_sp("i16", 0, 32767, Cg=4, Mg=4), w_dtype="i16", w_rowsum=(1, 2, 3, 4))
    p = dot16_plan(sp)
    assert p is not None and p.x_zp_u16 == 32768
    assert p.corr == tuple(-32768 * r for r in (1, 2, 3, 4))
    assert dot16_plan(replace(sp, w_zp=2)).corr[0] == sp.reduction * 32768 * 2 - 32768
    assert dot16_plan(replace(sp, x_dtype="i32")) is None
    assert dot16_plan(replace(sp, w_dtype="i8")) is None
    assert dot16_plan(replace(sp, w_rowsum=None)) is None
    k_max = -(-(1 << 31) // (2 * 255 * 128))  # the first K that could overflow
    assert dot16_plan(replace(sp, in_per_group=(k_max - 1) // 9 // 1, kernel_shape=(3, 3))
                      ) is not None
    assert dot16_plan(replace(sp, in_per_group=k_max, kernel_shape=(1, 1))) is None
    big = replace(sp, out_per_group=D16_MAX_W // 64 + 1, in_per_group=32, kernel_shape=(1, 1))
    assert dot16_plan(big) is None
