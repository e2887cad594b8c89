"""Properties over shapes, attributes and values: ref == native == VM for every op.

Each example builds a one- or two-node integer graph from drawn shapes, attributes and
values, compiles it, and checks (``backend_util.check_graph``): the exact integer
reference, the native kernels and the VM give the same bytes for every tensor, the same
node roots and final root, and the reference read back from the artifact equals
``evaluate_int`` on the graph itself. Small shapes keep the VM fast.
"""

from __future__ import annotations

import numpy as np
import pytest
from backend_util import check_graph
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opmlc.ir.graph import Graph, Node, TensorType
from opmlc.ir.intops import CMP_KINDS
from opmlc.ir.ops import canonical_attrs, infer_types
from opmlc.quantize.interp import verify_int

SETTINGS = settings(max_examples=10, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DTYPES = ("i8", "u8", "i16", "i32", "i64")
NP = {"i8": np.int8, "u8": np.uint8, "i16": np.int16, "i32": np.int32, "i64": np.int64}


def values(data: st.DataObject, dtype: str, shape: tuple[int, ...], lo: int | None = None,
           hi: int | None = None) -> np.ndarray:
    info = np.iinfo(NP[dtype])
    lo = info.min if lo is None else max(lo, info.min)
    hi = info.max if hi is None else min(hi, info.max)
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    # mix the extremes in: saturation and wrapping paths
    a = rng.integers(lo, hi, shape, endpoint=True, dtype=np.int64)
    if a.size:
        edge = rng.random(shape) < 0.15
        a = np.where(edge, rng.choice([lo, hi], shape), a)
    return a.astype(NP[dtype])


def shapes(data: st.DataObject, rank: tuple[int, int] = (0, 3), dim: tuple[int, int] = (1, 4)
           ) -> tuple[int, ...]:
    r = data.draw(st.integers(*rank), label="rank")
    return tuple(data.draw(st.integers(*dim), label="dim") for _ in range(r))


def bcast_of(data: st.DataObject, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that broadcasts to ``shape``: a suffix with some dims set to 1."""
    k = data.draw(st.integers(0, len(shape)), label="suffix")
    sub = shape[len(shape) - k:]
    return tuple(1 if data.draw(st.booleans(), label="one") else d for d in sub)


def one_node(op: str, inputs: dict[str, np.ndarray], attrs: dict,
             consts: dict[str, np.ndarray] | None = None, args: tuple[str, ...] = (),
             n_out: int = 1) -> tuple[Graph, dict[str, np.ndarray]]:
    g = Graph()
    for k, v in inputs.items():
        g.inputs.append(k)
        g.types[k] = TensorType.of(v)
    for k, v in (consts or {}).items():
        g.consts[k] = v
        g.types[k] = TensorType.of(v)
    args = args or tuple(inputs)
    outs = tuple(f"y{k}" for k in range(n_out))
    attrs = canonical_attrs(op, attrs)
    for o, t in zip(outs, infer_types(op, [g.types[a] for a in args], attrs), strict=True):
        g.types[o] = t
    g.nodes.append(Node(op, args, outs, attrs))
    g.outputs = list(outs)
    return verify_int(g), inputs


# ---------------------------------------------------------------- elementwise


@SETTINGS
@given(data=st.data(), kind=st.sampled_from(["mod", "mod_f", *CMP_KINDS]))
def test_mod_cmp(data: st.DataObject, kind: str) -> None:
    """q.mod (both sign rules, zero divisors, MIN / -1) and q.cmp, extremes mixed in."""
    out = shapes(data)
    sa, sb = bcast_of(data, out), bcast_of(data, out)
    da, db = data.draw(st.sampled_from(DTYPES)), data.draw(st.sampled_from(DTYPES))
    a, b = values(data, da, sa), values(data, db, sb)
    if kind.startswith("mod"):
        attrs = {"fmod": int(kind == "mod_f"),
                 "dtype": data.draw(st.sampled_from(["i8", "i16", "i32", "i64", "u8"]))}
        check_graph(*one_node("q.mod", {"a": a, "b": b}, attrs))
    else:
        check_graph(*one_node("q.cmp", {"a": a, "b": b}, {"kind": kind}))


@SETTINGS
@given(data=st.data(), op=st.sampled_from(["q.add", "q.mul", "q.div"]))
def test_binary_broadcast(data: st.DataObject, op: str) -> None:
    out = shapes(data)
    sa, sb = bcast_of(data, out), bcast_of(data, out)
    if data.draw(st.booleans(), label="swap"):
        sa, sb = sb, sa
    da, db = data.draw(st.sampled_from(DTYPES)), data.draw(st.sampled_from(DTYPES))
    zp = st.integers(-200, 200)
    attrs: dict = {"a_zp": data.draw(zp), "b_zp": data.draw(zp), "zp": data.draw(zp),
                   "dtype": data.draw(st.sampled_from(["i8", "i16", "i32", "u8"]))}
    if op == "q.add":
        attrs.update(a_mult=data.draw(st.integers(-(1 << 15), 1 << 15)),
                     b_mult=data.draw(st.integers(-(1 << 15), 1 << 15)),
                     shift=data.draw(st.integers(0, 40)))
    elif op == "q.mul":
        attrs.update(mult=data.draw(st.integers(-(1 << 20), 1 << 20)),
                     shift=data.draw(st.integers(0, 62)))
    else:
        attrs["shift"] = data.draw(st.integers(-20, 20))
    a, b = values(data, da, sa), values(data, db, sb)
    if sa == out and data.draw(st.booleans(), label="const_b"):
        # a constant operand (all-equal constants become immediates)
        c = np.full(sb, int(b.reshape(-1)[0]) if b.size else 1, NP[db])
        check_graph(*one_node(op, {"a": a}, attrs, {"b": c}, ("a", "b")))
    else:
        check_graph(*one_node(op, {"a": a, "b": b}, attrs))


@SETTINGS
@given(data=st.data())
def test_requant_per_channel(data: st.DataObject) -> None:
    shape = shapes(data, (1, 3))
    ch = (shape[-1],) if data.draw(st.booleans()) else (1,)
    x = values(data, data.draw(st.sampled_from(["i32", "i64"])), shape, -(1 << 40), 1 << 40)
    consts = {"m": values(data, "i64", ch, -(1 << 31), 1 << 31),
              "s": values(data, "i64", ch, 0, 63)}
    args = ("x", "m", "s")
    if data.draw(st.booleans(), label="bias"):
        consts["b"] = values(data, "i64", ch, -(1 << 40), 1 << 40)
        args += ("b",)
    attrs = {"x_zp": data.draw(st.integers(-100, 100)), "zp": data.draw(st.integers(-9, 9)),
             "dtype": data.draw(st.sampled_from(["i8", "u8", "i16", "i32"]))}
    check_graph(*one_node("q.requant", {"x": x}, attrs, consts, args))


@SETTINGS
@given(data=st.data())
def test_unary_clamp_sqrt_lut_where(data: st.DataObject) -> None:
    shape = shapes(data, (0, 3))
    dt = data.draw(st.sampled_from(DTYPES))
    x = values(data, dt, shape)
    lo, hi = sorted(data.draw(st.integers(-(1 << 20), 1 << 20)) for _ in range(2))
    check_graph(*one_node("q.clamp", {"x": x}, {"lo": lo, "hi": hi}))
    check_graph(*one_node("q.sqrt", {"x": x}, {
        "x_zp": data.draw(st.integers(-50, 50)), "shift": data.draw(st.integers(-8, 8)),
        "zp": data.draw(st.integers(-5, 5)), "dtype": data.draw(st.sampled_from(DTYPES))}))
    n = data.draw(st.integers(2, 33), label="knots")
    table = values(data, data.draw(st.sampled_from(["i16", "i32"])), (n,), -30000, 30000)
    check_graph(*one_node("q.lut", {"x": x}, {
        "lo": data.draw(st.integers(-5000, 0)), "step_bits": data.draw(st.integers(0, 10)),
        "dtype": data.draw(st.sampled_from(["i8", "i16", "i32"]))}, {"t": table}, ("x", "t")))
    c = values(data, "u8", bcast_of(data, shape), 0, 1)
    b = values(data, dt, bcast_of(data, shape))
    check_graph(*one_node("q.where", {"c": c, "a": x, "b": b}, {}))


# ---------------------------------------------------------------- movement


@SETTINGS
@given(data=st.data())
def test_transpose_slice_expand_tile(data: st.DataObject) -> None:
    shape = shapes(data, (1, 4))
    dt = data.draw(st.sampled_from(DTYPES))
    x = values(data, dt, shape)
    perm = data.draw(st.permutations(range(len(shape))))
    check_graph(*one_node("transpose", {"x": x}, {"perm": list(perm)}))
    starts, ends, steps = [], [], []
    for d in shape:
        step = data.draw(st.sampled_from([1, 2, 3, -1, -2]))
        s, e = data.draw(st.integers(0, d - 1)), data.draw(st.integers(-1, d))
        if step > 0:
            s, e = min(s, max(e, 0)), max(s, e)
        else:
            s, e = max(s, e), min(s, e)
        starts.append(s), ends.append(e), steps.append(step)
    y = x[tuple(slice(s, e if e >= 0 else None, k) for s, e, k in zip(starts, ends, steps,
                                                                      strict=True))]
    if y.size:
        check_graph(*one_node("slice", {"x": x}, {"starts": starts, "ends": ends,
                                                  "steps": steps}))
    small = values(data, dt, bcast_of(data, shape))
    check_graph(*one_node("expand", {"x": small}, {"shape": list(shape)}))
    reps = [data.draw(st.integers(1, 3)) for _ in shape]
    check_graph(*one_node("tile", {"x": x}, {"repeats": reps}))


@SETTINGS
@given(data=st.data(), mode=st.sampled_from(["constant", "edge", "reflect"]))
def test_pad(data: st.DataObject, mode: str) -> None:
    shape = shapes(data, (1, 3), (2, 4))
    x = values(data, data.draw(st.sampled_from(DTYPES)), shape)
    hi = [d - 1 if mode == "reflect" else 3 for d in shape]
    pads = [data.draw(st.integers(0, h)) for h in hi] + [data.draw(st.integers(0, h)) for h in hi]
    value = float(data.draw(st.integers(-100, 100))) if mode == "constant" else 0.0
    if x.dtype == np.uint8:
        value = abs(value)
    check_graph(*one_node("pad", {"x": x}, {"pads": pads, "mode": mode, "value": value}))


@SETTINGS
@given(data=st.data())
def test_concat_split(data: st.DataObject) -> None:
    shape = shapes(data, (1, 3))
    dt = data.draw(st.sampled_from(DTYPES))
    ax = data.draw(st.integers(0, len(shape) - 1))
    parts = {}
    for k in range(data.draw(st.integers(1, 4))):
        s = list(shape)
        s[ax] = data.draw(st.integers(1, 3))
        parts[f"x{k}"] = values(data, dt, tuple(s))
    check_graph(*one_node("concat", parts, {"axis": ax}))
    x = values(data, dt, shape)
    cuts = sorted(data.draw(st.sets(st.integers(1, shape[ax] - 1))) if shape[ax] > 1 else [])
    sizes = np.diff([0, *cuts, shape[ax]]).tolist()
    check_graph(*one_node("split", {"x": x}, {"axis": ax, "sizes": sizes}, n_out=len(sizes)))


@SETTINGS
@given(data=st.data())
def test_gather_and_gather_elements(data: st.DataObject) -> None:
    shape = shapes(data, (1, 3))
    dt = data.draw(st.sampled_from(DTYPES))
    x = values(data, dt, shape)
    ax = data.draw(st.integers(0, len(shape) - 1))
    d = shape[ax]
    ish = shapes(data, (0, 2))
    idt = data.draw(st.sampled_from(["i32", "i64"]))
    i = values(data, idt, ish, -d, d - 1)
    check_graph(*one_node("gather", {"x": x, "i": i}, {"axis": ax}))
    # the IR reference (numpy take_along_axis) needs the other dims equal
    esh = tuple(data.draw(st.integers(1, 4)) if k == ax else n for k, n in enumerate(shape))
    e = values(data, idt, esh, -d, d - 1)
    check_graph(*one_node("gather_elements", {"x": x, "i": e}, {"axis": ax}))


@SETTINGS
@given(data=st.data())
def test_trilu_depth_space(data: st.DataObject) -> None:
    shape = shapes(data, (2, 4))
    dt = data.draw(st.sampled_from(DTYPES))
    x = values(data, dt, shape)
    check_graph(*one_node("trilu", {"x": x}, {"upper": data.draw(st.integers(0, 1)),
                                              "k": data.draw(st.integers(-3, 3))}))
    b = data.draw(st.integers(1, 2))
    mode = data.draw(st.sampled_from(["DCR", "CRD"]))
    c, h, w = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3)), data.draw(
        st.integers(1, 3))
    z = values(data, dt, (1, c * b * b, h, w))
    check_graph(*one_node("depth_to_space", {"x": z}, {"blocksize": b, "mode": mode}))
    z = values(data, dt, (1, c, h * b, w * b))
    check_graph(*one_node("space_to_depth", {"x": z}, {"blocksize": b, "mode": mode}))


# ---------------------------------------------------------------- reductions and windows


@SETTINGS
@given(data=st.data())
def test_reductions(data: st.DataObject) -> None:
    shape = shapes(data, (1, 4))
    dt = data.draw(st.sampled_from(DTYPES))
    x = values(data, dt, shape, -3 if data.draw(st.booleans()) else None,
               3 if data.draw(st.booleans()) else None)  # ties for argmax
    axes = sorted(data.draw(st.sets(st.integers(0, len(shape) - 1), min_size=1)))
    keep = data.draw(st.integers(0, 1))
    check_graph(*one_node("q.reduce_sum", {"x": x}, {"axes": axes, "keepdims": keep,
                                                     "x_zp": data.draw(st.integers(-9, 9))}))
    check_graph(*one_node("q.reduce_max", {"x": x}, {"axes": axes, "keepdims": keep}))
    check_graph(*one_node("q.argmax", {"x": x}, {
        "axis": data.draw(st.integers(0, len(shape) - 1)), "keepdims": keep,
        "select_last_index": data.draw(st.integers(0, 1))}))


def _window(data: st.DataObject, nd: int, size: tuple[int, ...]) -> dict:
    k = [data.draw(st.integers(1, min(3, s))) for s in size]
    d = [data.draw(st.integers(1, 2)) if (k[i] - 1) * 2 < size[i] else 1 for i in range(nd)]
    pads = [data.draw(st.integers(0, k[i] - 1)) for i in range(nd)] + [
        data.draw(st.integers(0, k[i] - 1)) for i in range(nd)]
    return {"kernel_shape": k, "strides": [data.draw(st.integers(1, 3)) for _ in range(nd)],
            "pads": pads, "dilations": d}


@SETTINGS
@given(data=st.data(), nd=st.integers(1, 2))
def test_pools(data: st.DataObject, nd: int) -> None:
    size = tuple(data.draw(st.integers(1, 6)) for _ in range(nd))
    x = values(data, data.draw(st.sampled_from(DTYPES)), (data.draw(st.integers(1, 2)),
                                                          data.draw(st.integers(1, 3))) + size)
    a = _window(data, nd, size)
    a["ceil_mode"] = data.draw(st.integers(0, 1))
    check_graph(*one_node("q.max_pool", {"x": x}, a))
    check_graph(*one_node("q.sum_pool", {"x": x}, {**a, "x_zp": data.draw(st.integers(-9, 9))}))


@SETTINGS
@given(data=st.data(), nd=st.integers(1, 2))
def test_conv(data: st.DataObject, nd: int) -> None:
    size = tuple(data.draw(st.integers(1, 6)) for _ in range(nd))
    G = data.draw(st.integers(1, 3))
    Cg, Mg = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))
    x = values(data, data.draw(st.sampled_from(["i8", "u8", "i16", "i32"])),
               (data.draw(st.integers(1, 2)), G * Cg) + size)
    a = _window(data, nd, size)
    w = values(data, data.draw(st.sampled_from(["i8", "i16"])), (G * Mg, Cg) + tuple(
        a.pop("kernel_shape")))
    a.update(group=G, x_zp=data.draw(st.integers(-9, 9)), w_zp=data.draw(st.integers(-9, 9)))
    consts, args = {"w": w}, ("x", "w")
    if data.draw(st.booleans(), label="bias"):
        consts["b"] = values(data, "i32", (G * Mg,))
        args += ("b",)
    check_graph(*one_node("q.conv", {"x": x}, a, consts, args))


@SETTINGS
@given(data=st.data())
def test_matmul_einsum_shapes(data: st.DataObject) -> None:
    M, K, N = (data.draw(st.integers(1, 4)) for _ in range(3))
    batch = shapes(data, (0, 2), (1, 3))
    ba = tuple(1 if data.draw(st.booleans()) else d for d in batch)
    a = values(data, data.draw(st.sampled_from(["i8", "u8", "i16"])), ba + (M, K))
    b = values(data, data.draw(st.sampled_from(["i8", "i16", "i32"])), batch + (K, N))
    zp = {"a_zp": data.draw(st.integers(-9, 9)), "b_zp": data.draw(st.integers(-9, 9))}
    check_graph(*one_node("q.matmul", {"a": a, "b": b}, zp))
    out = "".join(data.draw(st.permutations("ij")))
    eq = data.draw(st.sampled_from([f"ik,kj->{out}", f"ik,jk->{out}", f"ki,kj->{out}",
                                    "ik,kj", "kj,ki"]))  # implicit: output letters sorted
    sa = {"i": M, "k": K, "j": N}
    lhs, rhs = eq.split("->")[0].split(",")
    ea = values(data, "i8", tuple(sa[c] for c in lhs))
    eb = values(data, "i16", tuple(sa[c] for c in rhs))
    check_graph(*one_node("q.einsum", {"a": ea, "b": eb}, {"equation": eq, **zp}))


# ---------------------------------------------------------------- composites


@SETTINGS
@given(data=st.data())
def test_softmax(data: st.DataObject) -> None:
    shape = shapes(data, (1, 3), (1, 5))
    x = values(data, data.draw(st.sampled_from(["i16", "i32"])), shape, -5000, 5000)
    n = data.draw(st.integers(2, 20), label="knots")
    table = np.sort(values(data, "i32", (n,), 0, 1 << 30))
    check_graph(*one_node("q.softmax", {"x": x}, {
        "axis": data.draw(st.integers(0, len(shape) - 1)), "lo": -(n - 1) * 256,
        "step_bits": 8, "out_bits": data.draw(st.integers(8, 16)), "zp": 0,
        "dtype": data.draw(st.sampled_from(["i16", "i32"]))}, {"t": table}, ("x", "t")))


@SETTINGS
@given(data=st.data())
def test_softmax_masked(data: st.DataObject) -> None:
    """keep mask broadcast over any axes (rows fully masked included): ref == native == VM."""
    shape = shapes(data, (1, 3), (1, 5))
    x = values(data, data.draw(st.sampled_from(["i8", "i32"])), shape, -5000, 5000)
    keep = values(data, "u8", bcast_of(data, shape), 0, 1)
    n = data.draw(st.integers(2, 20), label="knots")
    table = np.sort(values(data, "i32", (n,), 0, 1 << 30))
    check_graph(*one_node("q.softmax", {"x": x, "k": keep}, {
        "axis": data.draw(st.integers(0, len(shape) - 1)), "lo": -(n - 1) * 256,
        "step_bits": 8, "out_bits": data.draw(st.integers(8, 16)), "zp": -3,
        "dtype": data.draw(st.sampled_from(["i8", "i32"]))}, {"t": table}, ("x", "t", "k")))


@settings(SETTINGS, max_examples=16)
@given(data=st.data(), op=st.sampled_from(["q.layer_norm", "q.rms_norm"]))
def test_norms(data: st.DataObject, op: str) -> None:
    shape = shapes(data, (1, 3), (1, 6))
    x = values(data, data.draw(st.sampled_from(["i8", "i16", "i32"])), shape, -(1 << 20),
               1 << 20)
    axis = data.draw(st.integers(0, len(shape) - 1))
    inner = shape[axis:]
    gsh = bcast_of(data, inner)  # any broadcast of gamma / beta over the row
    consts = {"g": values(data, "i16", gsh)}
    args = ("x", "g")
    if op == "q.layer_norm":
        consts["b"] = values(data, "i32", gsh)
        args += ("b",)
    attrs = {"axis": axis, "x_zp": data.draw(st.integers(-9, 9)),
             "pre": data.draw(st.integers(0, 4)), "eps": data.draw(st.integers(0, 9)),
             "norm_bits": data.draw(st.integers(4, 14)), "sd_bits": data.draw(st.integers(2, 8)),
             "shift": data.draw(st.integers(0, 16)), "zp": data.draw(st.integers(-3, 3)),
             "dtype": data.draw(st.sampled_from(["i8", "i16", "i32"]))}
    check_graph(*one_node(op, {"x": x}, attrs, consts, args))


@pytest.mark.parametrize("seed", range(3))
def test_chain_of_ops_every_tensor(seed: int) -> None:
    """A small multi-node graph with activation reuse and an aliasing reshape."""
    rng = np.random.default_rng(seed)
    g = Graph()
    g.inputs = ["x"]
    g.types["x"] = TensorType("i8", (2, 3, 4))
    g.consts["w"] = rng.integers(-128, 128, (4, 5)).astype(np.int8)
    g.consts["m"] = np.array([int(rng.integers(1, 1 << 20))], np.int64)
    g.consts["s"] = np.array([int(rng.integers(8, 24))], np.int64)
    for c in ("w", "m", "s"):
        g.types[c] = TensorType.of(g.consts[c])
    nodes = [("q.matmul", ("x", "w"), "a", {"a_zp": 1, "b_zp": 0}),
             ("q.requant", ("a", "m", "s"), "b", {"x_zp": 0, "zp": 0, "dtype": "i16"}),
             ("reshape", ("b",), "c", {"shape": [6, 5]}),
             ("transpose", ("c",), "d", {"perm": [1, 0]}),
             ("q.clamp", ("d",), "e", {"lo": -300, "hi": 300}),
             ("q.reduce_max", ("e",), "f", {"axes": [1], "keepdims": 0}),
             ("q.argmax", ("e",), "y", {"axis": 0, "keepdims": 0})]
    for op, ins, out, attrs in nodes:
        attrs = canonical_attrs(op, attrs)
        g.types[out] = infer_types(op, [g.types[i] for i in ins], attrs)[0]
        g.nodes.append(Node(op, ins, (out,), attrs))
    g.outputs = ["f", "y"]
    verify_int(g)
    x = rng.integers(-128, 128, (2, 3, 4)).astype(np.int8)
    check_graph(g, {"x": x})
