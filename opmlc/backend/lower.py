"""Integer IR node -> loop-nest kernel (``opmlc.backend.kernel``): one lowering per op.

``LOWER[op](node, ctx) -> Kernel``; the same kernel is rendered as VM code and as
LLVM IR, so one lowering serves both engines. Register a new op with ``@lowering``.
Semantics follow the exact references in ``opmlc.ir.intops`` (checked bit for
bit by tests/test_backend_ops.py). Defined behaviour where numpy would raise:
``gather`` and ``gather_elements`` clamp an index (after adding the axis length to a
negative one) to ``[0, dim - 1]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from opmlc.backend.kernel import (
    DTYPE_INFO,
    Addr,
    Const,
    ConvSpec,
    Expr,
    Idx,
    Kernel,
    Let,
    Load,
    Loop,
    MatSpec,
    PoolSpec,
    Stmt,
    Store,
    Var,
    add,
    cmov,
    mul,
    op,
    saturate,
    smax,
    smin,
    sub,
)
from opmlc.errors import OpmlcError
from opmlc.ir.graph import Graph, Node, TensorType
from opmlc.ir.intops import split_rq_inputs
from opmlc.ir.ops import canonical_attrs, run_ref


class LoweringError(OpmlcError):
    """An integer IR node the back end cannot lower."""


@dataclass
class Ctx:
    """What a lowering may ask: value types, addresses, constant values, tables."""

    g: Graph
    addrs: dict[str, int]
    tables: dict[str, np.ndarray] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def t(self, name: str) -> TensorType:
        return self.g.types[name]

    def addr(self, name: str) -> int:
        return self.addrs.get(name, 0)

    def const(self, name: str) -> np.ndarray | None:
        return self.g.consts.get(name)

    def table(self, key: str, arr: np.ndarray) -> int:
        """Address of a constant lowering table (placed with the constants)."""
        self.tables.setdefault(key, np.ascontiguousarray(arr))
        return self.addrs.get(key, 0)


LOWER: dict[str, Callable[[Node, Ctx], Kernel]] = {}


def lowering(*ops: str) -> Callable:
    def deco(fn: Callable[[Node, Ctx], Kernel]) -> Callable[[Node, Ctx], Kernel]:
        for o in ops:
            LOWER[o] = fn
        return fn

    return deco


def lower_node(node: Node, ctx: Ctx, name: str) -> Kernel:
    fn = LOWER.get(node.op)
    if fn is None:
        raise LoweringError(f"node {name} ({node.op} -> {', '.join(node.outputs)}): no VM/native "
                            f"lowering for op {node.op!r} yet; supported: {sorted(LOWER)}")
    node = Node(node.op, node.inputs, node.outputs, canonical_attrs(node.op, node.attrs))
    k = fn(node, ctx)
    k.name = name
    return k


# ---------------------------------------------------------------- helpers


def _itemsize(dtype: str) -> int:
    return DTYPE_INFO[dtype][0]


def _strides(shape: tuple[int, ...], itemsize: int) -> list[int]:
    out, s = [], itemsize
    for d in reversed(shape):
        out.append(s)
        s *= d
    return out[::-1]


def _bstrides(shape: tuple[int, ...], out_shape: tuple[int, ...], itemsize: int) -> list[int]:
    """Byte strides of an operand broadcast to ``out_shape`` (0 on broadcast axes)."""
    pad = (1,) * (len(out_shape) - len(shape)) + tuple(shape)
    st = _strides(pad, itemsize)
    return [0 if d == 1 and o != 1 else s for d, o, s in zip(pad, out_shape, st, strict=True)]


def _coalesce(shape: list[int], strides: list[list[int]]) -> tuple[list[int], list[list[int]]]:
    """Merge adjacent axes k, k+1 where every operand has stride[k] == stride[k+1]*n[k+1];
    drop extent-1 axes."""
    dims = [(n, [s[k] for s in strides]) for k, n in enumerate(shape) if n != 1]
    merged: list[tuple[int, list[int]]] = []
    for n, st in dims:
        if merged:
            pn, pst = merged[-1]
            if all(ps == s * n for ps, s in zip(pst, st, strict=True)):
                merged[-1] = (pn * n, st)
                continue
        merged.append((n, st))
    return [n for n, _ in merged], [[st[i] for _, st in merged] for i in range(len(strides))]


def nest(shape: list[int], body: list[Stmt]) -> list[Stmt]:
    """Loops over ``shape`` (outermost first) around ``body``; no loop for an empty shape."""
    if any(n == 0 for n in shape):
        return []
    out = list(body)
    for n in reversed(shape):
        out = [Loop(n, tuple(out))]
    return out


def _addr(base: int, strides: list[int], first_level: int = 0) -> Addr:
    return Addr(base, tuple((first_level + k, s) for k, s in enumerate(strides)))


def _scalar_const(ctx: Ctx, name: str) -> int | None:
    c = ctx.const(name)
    if c is not None and c.size >= 1 and np.all(c == c.reshape(-1)[0]):
        return int(c.reshape(-1)[0])
    return None


# ---------------------------------------------------------------- elementwise


def elementwise(node: Node, ctx: Ctx,
                fn: Callable[[list[Expr]], Expr | tuple[list[Let], Expr]],
                out_dtype: str | None = None) -> Kernel:
    """y[i] = fn(x_0[i], x_1[i], ...) over the broadcast output shape; all-equal constant
    operands become immediates."""
    out = node.outputs[0]
    ot = ctx.t(out)
    shape = list(ot.shape)
    ins = [i for i in node.inputs if i]
    strides = [_bstrides(ctx.t(i).shape, ot.shape, _itemsize(ctx.t(i).dtype)) for i in ins]
    strides.append(_strides(ot.shape, _itemsize(ot.dtype)))
    cshape, cst = _coalesce(shape, strides)
    args: list[Expr] = []
    for k, name in enumerate(ins):
        c = _scalar_const(ctx, name)
        if c is not None:
            args.append(Const(c))
        else:
            args.append(Load(ctx.t(name).dtype, _addr(ctx.addr(name), cst[k])))
    res = fn(args)
    lets, val = res if isinstance(res, tuple) else ([], res)
    store = Store(out_dtype or ot.dtype, _addr(ctx.addr(out), cst[-1]), val)
    return Kernel("", nest(cshape, [*lets, store]), parallel=True)


def _opt_input(node: Node, k: int) -> str | None:
    return node.inputs[k] if len(node.inputs) > k and node.inputs[k] else None


@lowering("q.requant")
def _requant(node: Node, ctx: Ctx) -> Kernel:
    a = node.attrs

    def f(x: list[Expr]) -> Expr:
        t = mul(sub(x[0], a["x_zp"]), x[1])
        if len(x) > 3:
            t = add(t, x[3])
        return saturate(add(op("srar", t, x[2]), a["zp"]), a["dtype"])

    return elementwise(node, ctx, f)


@lowering("q.add")
def _qadd(node: Node, ctx: Ctx) -> Kernel:
    a = node.attrs

    def f(x: list[Expr]) -> Expr:
        t = add(mul(sub(x[0], a["a_zp"]), a["a_mult"]), mul(sub(x[1], a["b_zp"]), a["b_mult"]))
        return saturate(add(op("srar", t, a["shift"]), a["zp"]), a["dtype"])

    return elementwise(node, ctx, f)


@lowering("q.mul")
def _qmul(node: Node, ctx: Ctx) -> Kernel:
    a = node.attrs

    def f(x: list[Expr]) -> Expr:
        t = mul(mul(sub(x[0], a["a_zp"]), sub(x[1], a["b_zp"])), a["mult"])
        return saturate(add(op("srar", t, a["shift"]), a["zp"]), a["dtype"])

    return elementwise(node, ctx, f)


@lowering("q.div")
def _qdiv(node: Node, ctx: Ctx) -> Kernel:
    a = node.attrs

    def f(x: list[Expr]) -> Expr:
        n, d = sub(x[0], a["a_zp"]), sub(x[1], a["b_zp"])
        if a["shift"] >= 0:
            n = op("sll", n, a["shift"])
        else:
            d = op("sll", d, -a["shift"])
        return saturate(add(op("div", n, d), a["zp"]), a["dtype"])

    return elementwise(node, ctx, f)


@lowering("q.mod")
def _qmod(node: Node, ctx: Ctx) -> Kernel:
    a = node.attrs

    def f(x: list[Expr]) -> tuple[list[Let], Expr]:
        lets = [Let("r", sub(x[0], mul(op("div", x[0], x[1]), x[1])))]
        if not a["fmod"]:
            flip = op("and", op("sltu", Const(0), Var("r")),
                      op("slt", op("xor", Var("r"), x[1]), Const(0)))
            lets.append(Let("r", cmov(add(Var("r"), x[1]), flip, Var("r"))))
        return lets, saturate(Var("r"), a["dtype"])

    return elementwise(node, ctx, f)


@lowering("q.cmp")
def _qcmp(node: Node, ctx: Ctx) -> Kernel:
    kind = node.attrs["kind"]

    def f(x: list[Expr]) -> Expr:
        a, b = x
        if kind in ("and", "or", "xor"):
            return op(kind, op("sltu", Const(0), a), op("sltu", Const(0), b))
        return {"lt": lambda: op("slt", a, b), "gt": lambda: op("slt", b, a),
                "le": lambda: op("xor", op("slt", b, a), Const(1)),
                "ge": lambda: op("xor", op("slt", a, b), Const(1)),
                "eq": lambda: op("sltu", op("xor", a, b), Const(1))}[kind]()

    return elementwise(node, ctx, f)


@lowering("q.clamp")
def _qclamp(node: Node, ctx: Ctx) -> Kernel:
    a = node.attrs
    return elementwise(node, ctx, lambda x: smin(smax(x[0], a["lo"]), a["hi"]))


@lowering("q.where")
def _qwhere(node: Node, ctx: Ctx) -> Kernel:
    return elementwise(node, ctx, lambda x: cmov(x[1], x[0], x[2]))


def isqrt_expr(u: Expr, tag: str) -> tuple[list[Let], Expr]:
    """prim.isqrt as 32 unrolled rounds (all intermediates in [0, 2^63))."""
    x, r = f"{tag}x", f"{tag}r"
    lets: list[Let] = [Let(x, smax(u, 0)), Let(r, Const(0))]
    b = 1 << 62
    for _ in range(32):
        t = f"{tag}t"
        c = f"{tag}c"
        lets.append(Let(t, add(Var(r), b)))
        lets.append(Let(c, op("slt", Var(x), Var(t))))  # c = 1 when x < t (no subtract)
        lets.append(Let(x, cmov(Var(x), Var(c), sub(Var(x), Var(t)))))
        lets.append(Let(r, add(op("sra", Var(r), 1), cmov(Const(0), Var(c), Const(b)))))
        b >>= 2
    return lets, Var(r)


@lowering("q.sqrt")
def _qsqrt(node: Node, ctx: Ctx) -> Kernel:
    a = node.attrs

    def f(x: list[Expr]) -> tuple[list[Let], Expr]:
        u = smax(sub(x[0], a["x_zp"]), 0)
        u = op("sll", u, a["shift"]) if a["shift"] >= 0 else op("srar", u, -a["shift"])
        lets, r = isqrt_expr(u, "s")
        return lets, saturate(add(r, a["zp"]), a["dtype"])

    return elementwise(node, ctx, f)


def lut_expr(x: Expr, tbase: int, tdtype: str, n: int, lo: int, k: int, tag: str
             ) -> tuple[list[Let], Expr]:
    """intops.lut_interp: i = clamp(sra(u, k), 0, n-2); r = clamp(u - sll(i, k), 0, 2^k);
    y = t[i] + srar((t[i+1] - t[i]) * r, k)."""
    u, i, t0 = f"{tag}u", f"{tag}i", f"{tag}t0"
    isz = _itemsize(tdtype)
    lets = [Let(u, sub(x, lo)),
            Let(i, smin(smax(op("sra", Var(u), k), 0), n - 2)),
            Let(t0, Load(tdtype, Addr(tbase, (), ((Var(i), isz),))))]
    t1 = Load(tdtype, Addr(tbase + isz, (), ((Var(i), isz),)))
    r = smin(smax(sub(Var(u), op("sll", Var(i), k)), 0), 1 << k)
    return lets, add(Var(t0), op("srar", mul(sub(t1, Var(t0)), r), k))


@lowering("q.lut")
def _qlut(node: Node, ctx: Ctx) -> Kernel:
    a = node.attrs
    x, table = node.inputs
    tt = ctx.t(table)

    def f(args: list[Expr]) -> tuple[list[Let], Expr]:
        lets, y = lut_expr(args[0], ctx.addr(table), tt.dtype, tt.shape[0], a["lo"],
                           a["step_bits"], "l")
        return lets, saturate(y, a["dtype"])

    sub_node = Node(node.op, (x,), node.outputs, node.attrs)
    return elementwise(sub_node, ctx, f)


# ---------------------------------------------------------------- movement


@lowering("reshape")
def _reshape(node: Node, ctx: Ctx) -> Kernel:
    out = node.outputs[0]
    if ctx.aliases.get(out) == node.inputs[0]:
        return Kernel("", [])  # same bytes: nothing to do
    return _copy_flat(ctx, node.inputs[0], out)


def _copy_flat(ctx: Ctx, src: str, dst: str) -> Kernel:
    t = ctx.t(dst)
    isz = _itemsize(t.dtype)
    body = nest([t.size], [Store(t.dtype, Addr(ctx.addr(dst), ((0, isz),)),
                                 Load(t.dtype, Addr(ctx.addr(src), ((0, isz),))))])
    return Kernel("", body, parallel=True)


def _affine(idx: np.ndarray) -> list[int] | None:
    """Element strides s with idx[i] = idx[0] + sum_d i_d * s_d, or None."""
    if idx.size == 0:
        return [0] * idx.ndim
    flat0 = int(idx.reshape(-1)[0])
    st = []
    for d in range(idx.ndim):
        if idx.shape[d] > 1:
            sl = [0] * idx.ndim
            sl[d] = 1
            st.append(int(idx[tuple(sl)]) - flat0)
        else:
            st.append(0)
    grid = np.indices(idx.shape).reshape(idx.ndim, -1)
    pred = flat0 + (np.asarray(st, np.int64)[:, None] * grid).sum(0)
    return st if np.array_equal(pred, idx.reshape(-1)) else None


def index_map(node: Node, ctx: Ctx, src: str, dst: str, idx: np.ndarray,
              fill: Expr | None = None) -> Kernel:
    """y[i] = x[idx[i]] (idx < 0: ``fill``) for a static index map ``idx`` (out shape):
    a strided loop nest when idx is affine, else a gather through a constant table."""
    st, dt = ctx.t(src), ctx.t(dst)
    isz = _itemsize(dt.dtype)
    ost = _strides(dt.shape, isz)
    aff = _affine(idx) if (idx >= 0).all() else None
    if aff is not None:
        base = ctx.addr(src) + (int(idx.reshape(-1)[0]) * isz if idx.size else 0)
        shape, (s_src, s_dst) = _coalesce(list(dt.shape), [[a * isz for a in aff], ost])
        body = nest(shape, [Store(dt.dtype, _addr(ctx.addr(dst), s_dst),
                                  Load(st.dtype, _addr(base, s_src)))])
        return Kernel("", body, parallel=True)
    tdt = "i32" if idx.size < (1 << 31) else "i64"
    key = f"{node.outputs[0]}.index"
    tb = ctx.table(key, idx.reshape(-1).astype(np.int32 if tdt == "i32" else np.int64))
    tsz = _itemsize(tdt)
    n = dt.size
    ti = Load(tdt, Addr(tb, ((0, tsz),)))
    val: Expr = Load(st.dtype, Addr(ctx.addr(src), (), ((smax(ti, 0), isz),)))
    if fill is not None:
        val = cmov(fill, op("slt", ti, 0), val)
    body = nest([n], [Store(dt.dtype, Addr(ctx.addr(dst), ((0, isz),)), val)])
    return Kernel("", body, parallel=True)


def _static_map(node: Node, ctx: Ctx, src: str, dst: str) -> np.ndarray:
    """Source flat index per output element, by running the reference on an iota."""
    st = ctx.t(src)
    iota = np.arange(st.size, dtype=np.int64).reshape(st.shape)
    return np.asarray(run_ref(node.op, [iota], node.attrs)[0])


@lowering("transpose", "slice", "expand", "tile", "depth_to_space", "space_to_depth")
def _static_movement(node: Node, ctx: Ctx) -> Kernel:
    src, dst = node.inputs[0], node.outputs[0]
    return index_map(node, ctx, src, dst, _static_map(node, ctx, src, dst))


@lowering("pad")
def _pad(node: Node, ctx: Ctx) -> Kernel:
    src, dst = node.inputs[0], node.outputs[0]
    a = node.attrs
    st = ctx.t(src)
    iota = np.arange(st.size, dtype=np.int64).reshape(st.shape)
    if a["mode"] == "constant":
        idx = np.asarray(run_ref("pad", [iota + 1], {**a, "value": 0.0})[0]) - 1
        return index_map(node, ctx, src, dst, idx, Const(int(a["value"])))
    return index_map(node, ctx, src, dst, np.asarray(run_ref("pad", [iota], a)[0]))


@lowering("concat")
def _concat(node: Node, ctx: Ctx) -> Kernel:
    ax = node.attrs["axis"]
    dst = node.outputs[0]
    dt = ctx.t(dst)
    isz = _itemsize(dt.dtype)
    ost = _strides(dt.shape, isz)
    body: list[Stmt] = []
    off = 0
    for x in node.inputs:
        xt = ctx.t(x)
        shape, (s_src, s_dst) = _coalesce(list(xt.shape), [_strides(xt.shape, isz), ost])
        body += nest(shape, [Store(dt.dtype, _addr(ctx.addr(dst) + off * ost[ax], s_dst),
                                   Load(xt.dtype, _addr(ctx.addr(x), s_src)))])
        off += xt.shape[ax]
    return Kernel("", body, parallel=True)


@lowering("split")
def _split(node: Node, ctx: Ctx) -> Kernel:
    ax = node.attrs["axis"]
    src = node.inputs[0]
    st = ctx.t(src)
    isz = _itemsize(st.dtype)
    sst = _strides(st.shape, isz)
    body: list[Stmt] = []
    off = 0
    for y in node.outputs:
        yt = ctx.t(y)
        shape, (s_src, s_dst) = _coalesce(list(yt.shape), [sst, _strides(yt.shape, isz)])
        body += nest(shape, [Store(yt.dtype, _addr(ctx.addr(y), s_dst),
                                   Load(st.dtype, _addr(ctx.addr(src) + off * sst[ax], s_src)))])
        off += yt.shape[ax]
    return Kernel("", body, parallel=True)


@lowering("gather")
def _gather(node: Node, ctx: Ctx) -> Kernel:
    """y[a, j, b] = x[a, clamp(idx[j] + (idx[j] < 0 ? dim : 0), 0, dim - 1), b]."""
    x, ind = node.inputs
    y = node.outputs[0]
    ax = node.attrs["axis"]
    xt, it, yt = ctx.t(x), ctx.t(ind), ctx.t(y)
    isz = _itemsize(xt.dtype)
    A = int(np.prod(xt.shape[:ax], dtype=np.int64))
    dim = xt.shape[ax]
    B = int(np.prod(xt.shape[ax + 1:], dtype=np.int64))
    J = it.size
    if 0 in (A, B, J):
        return Kernel("", [])
    i = Load(it.dtype, Addr(ctx.addr(ind), ((1, _itemsize(it.dtype)),)))
    lets = [Let("g", add(i, cmov(Const(dim), op("slt", i, 0), Const(0))))]
    lets.append(Let("g", smin(smax(Var("g"), 0), dim - 1)))
    src = Addr(ctx.addr(x), ((0, dim * B * isz), (2, isz)), ((Var("g"), B * isz),))
    dst = Addr(ctx.addr(y), ((0, J * B * isz), (1, B * isz), (2, isz)))
    body = [Loop(A, (Loop(J, (*lets, Loop(B, (Store(yt.dtype, dst, Load(xt.dtype, src)),)))),))]
    return Kernel("", body, parallel=True)


@lowering("gather_elements")
def _gather_elements(node: Node, ctx: Ctx) -> Kernel:
    """y[i] = x[i with the axis coordinate g], g = clamp(idx[i] + (idx[i] < 0 ? dim : 0),
    0, dim - 1) (clamped like gather); the other coordinates broadcast as in numpy."""
    x, ind = node.inputs
    y = node.outputs[0]
    xt, it, yt = ctx.t(x), ctx.t(ind), ctx.t(y)
    ax = node.attrs["axis"] % xt.rank
    shape = tuple(yt.shape)
    if yt.size == 0:
        return Kernel("", [])
    isz = _itemsize(xt.dtype)
    xs = _bstrides(xt.shape, shape, isz)
    ax_stride = _strides(xt.shape, isz)[ax]
    xs[ax] = 0
    dim = xt.shape[ax]
    i = Load(it.dtype, _addr(ctx.addr(ind), _bstrides(it.shape, shape, _itemsize(it.dtype))))
    lets = [Let("g", add(i, cmov(Const(dim), op("slt", i, 0), Const(0)))),
            Let("g", smin(smax(Var("g"), 0), dim - 1))]
    src = Addr(ctx.addr(x), _addr(0, xs).terms, ((Var("g"), ax_stride),))
    dst = _addr(ctx.addr(y), _strides(shape, _itemsize(yt.dtype)))
    return Kernel("", nest(list(shape), [*lets, Store(yt.dtype, dst, Load(xt.dtype, src))]),
                  parallel=True)


@lowering("trilu")
def _trilu(node: Node, ctx: Ctx) -> Kernel:
    """A static index map: kept elements copied, the others 0."""
    src, dst = node.inputs[0], node.outputs[0]
    st = ctx.t(src)
    iota = np.arange(st.size, dtype=np.int64).reshape(st.shape)
    idx = np.asarray(run_ref("trilu", [iota + 1], node.attrs)[0]) - 1
    return index_map(node, ctx, src, dst, idx, Const(0))


# ---------------------------------------------------------------- contractions, reductions


@lowering("q.matmul")
def _qmatmul(node: Node, ctx: Ctx) -> Kernel:
    """y[.., i, j] = bias[j] + sum_k (a[.., i, k] - a_zp) * (b[.., k, j] - b_zp)."""
    return _matmul(node, ctx, list(node.inputs), None)


@lowering("q.matmul_rq")
def _qmatmul_rq(node: Node, ctx: Ctx) -> Kernel:
    """q.matmul's loop nest with the requant + clamp epilogue applied before the store."""
    cin, rq = split_rq_inputs(list(node.inputs), node.attrs)
    return _matmul(node, ctx, cin, rq)


def _matmul(node: Node, ctx: Ctx, cin: list[str], rq: list[str] | None) -> Kernel:
    a_name, b_name = cin[0], cin[1]
    bias = cin[2] if len(cin) > 2 else None
    at, bt, yt = ctx.t(a_name), ctx.t(b_name), ctx.t(node.outputs[0])
    a_shape, b_shape = list(at.shape), list(bt.shape)
    if len(a_shape) == 1:
        a_shape = [1] + a_shape
    if len(b_shape) == 1:
        b_shape = b_shape + [1]
    M, K = a_shape[-2:]
    N = b_shape[-1]
    batch = list(np.broadcast_shapes(tuple(a_shape[:-2]), tuple(b_shape[:-2])))
    asz, bsz, ysz = _itemsize(at.dtype), _itemsize(bt.dtype), _itemsize(yt.dtype)
    a_st = _bstrides(tuple(a_shape[:-2]) + (M, K), tuple(batch) + (M, K), asz)
    b_st = _bstrides(tuple(b_shape[:-2]) + (K, N), tuple(batch) + (K, N), bsz)
    y_st = _strides(tuple(batch) + (M, N), ysz)
    nb = len(batch)
    za, zb = node.attrs["a_zp"], node.attrs["b_zp"]
    # levels: batch..., i, j, k
    a_addr = Addr(ctx.addr(a_name), tuple((lv, a_st[lv]) for lv in range(nb))
                  + ((nb, a_st[nb]), (nb + 2, a_st[nb + 1])))
    b_addr = Addr(ctx.addr(b_name), tuple((lv, b_st[lv]) for lv in range(nb))
                  + ((nb + 2, b_st[nb]), (nb + 1, b_st[nb + 1])))
    y_addr = Addr(ctx.addr(node.outputs[0]), tuple((lv, y_st[lv]) for lv in range(nb + 2)))
    init: Expr = Const(0)
    if bias is not None:
        bs = _bstrides(ctx.t(bias).shape, (N,), _itemsize(ctx.t(bias).dtype))
        c = _scalar_const(ctx, bias)
        init = Const(c) if c is not None else Load(
            ctx.t(bias).dtype, Addr(ctx.addr(bias), ((nb + 1, bs[0]),)))
    prod = mul(sub(Load(at.dtype, a_addr), za), sub(Load(bt.dtype, b_addr), zb))
    inner = Loop(K, (Let("acc", add(Var("acc"), prod)),))
    val: Expr = Var("acc")
    if rq is not None:
        full = tuple(batch) + (M, N)

        def param(name: str) -> Expr:
            pshape = list(ctx.t(name).shape)
            pshape = [1] * (len(yt.shape) - len(pshape)) + pshape
            if len(at.shape) == 1:
                pshape.insert(len(pshape) - (0 if len(bt.shape) == 1 else 1), 1)
            if len(bt.shape) == 1:
                pshape.append(1)
            bs = _bstrides(tuple(pshape), full, _itemsize(ctx.t(name).dtype))
            return _param_load(ctx, name, tuple((lv, bs[lv]) for lv in range(nb + 2)))

        val = rq_epilogue(Var("acc"), [param(p) for p in rq], node.attrs)
    body = nest(batch + [M, N], [Let("acc", init), inner, Store(yt.dtype, y_addr, val)])
    k = Kernel("", body, parallel=True)
    if body and bsz == b_st[nb + 1] and N > 1:  # b contiguous along j: the vector kernel
        k.native = MatSpec(
            batch=tuple(batch), rows=M, cols=N, red=K, a=Load(at.dtype, a_addr), a_zp=int(za),
            b=Load(bt.dtype, b_addr), b_zp=int(zb), init=init, value=val, y=y_addr,
            y_dtype=yt.dtype, bound=_dmax(at.dtype, za) * _dmax(bt.dtype, zb))
    return k


def _dmax(dtype: str, zp: int) -> int:
    """max |v - zp| over the values v of dtype."""
    size, signed = DTYPE_INFO[dtype]
    lo, hi = (-(1 << (8 * size - 1)), (1 << (8 * size - 1)) - 1) if signed else (
        0, (1 << (8 * size)) - 1)
    return max(abs(lo - zp), abs(hi - zp))


def _param_load(ctx: Ctx, name: str, terms: tuple[tuple[int, int], ...]) -> Expr:
    """A requant parameter at the output index: an immediate when it is an all-equal
    constant, else a load with the given (level, byte stride) terms."""
    c = _scalar_const(ctx, name)
    if c is not None:
        return Const(c)
    return Load(ctx.t(name).dtype, Addr(ctx.addr(name), terms))


def rq_epilogue(acc: Expr, params: list[Expr], a: dict) -> Expr:
    """The q.requant + q.clamp of a fused contraction on its i64 sum ``acc``:
    min(max(sat_T(srar((acc - acc_zp) * mult + rq_bias, shift) + zp), lo), hi) — the same
    scalar ops as the q.requant and q.clamp lowerings."""
    mult, shift = params[0], params[1]
    t = mul(sub(acc, a["acc_zp"]), mult)
    if len(params) > 2:
        t = add(t, params[2])
    y = saturate(add(op("srar", t, shift), a["zp"]), a["dtype"])
    return smin(smax(y, a["lo"]), a["hi"])


def _reduce(node: Node, ctx: Ctx, axes: list[int], init: Expr,
            step: Callable[[Expr, Expr], Expr], out_dtype: str) -> Kernel:
    """y[outer] = fold(step, x[outer, reduced]) with the reduced axes innermost."""
    x, y = node.inputs[0], node.outputs[0]
    xt = ctx.t(x)
    isz = _itemsize(xt.dtype)
    xs = _strides(xt.shape, isz)
    keep = [d for d in range(xt.rank) if d not in axes]
    red = [d for d in range(xt.rank) if d in axes]
    ysz = _itemsize(out_dtype)
    ys = _strides(tuple(xt.shape[d] for d in keep), ysz)
    xk = len(keep)
    x_addr = Addr(ctx.addr(x), tuple((k, xs[d]) for k, d in enumerate(keep))
                  + tuple((xk + k, xs[d]) for k, d in enumerate(red)))
    y_addr = Addr(ctx.addr(y), tuple((k, ys[k]) for k in range(xk)))
    inner = nest([xt.shape[d] for d in red], [Let("acc", step(Var("acc"), Load(xt.dtype,
                                                                              x_addr)))])
    body = nest([xt.shape[d] for d in keep], [Let("acc", init), *inner,
                                               Store(out_dtype, y_addr, Var("acc"))])
    return Kernel("", body, parallel=True)


@lowering("q.reduce_sum")
def _qreduce_sum(node: Node, ctx: Ctx) -> Kernel:
    z = node.attrs["x_zp"]
    return _reduce(node, ctx, list(node.attrs["axes"]), Const(0),
                   lambda acc, v: add(acc, sub(v, z)), ctx.t(node.outputs[0]).dtype)


@lowering("q.reduce_max")
def _qreduce_max(node: Node, ctx: Ctx) -> Kernel:
    """y = max over axes, starting from the dtype's minimum (the result of an empty set)."""
    nbytes, signed = DTYPE_INFO[ctx.t(node.inputs[0]).dtype]
    lowest = -(1 << (8 * nbytes - 1)) if signed else 0
    return _reduce(node, ctx, list(node.attrs["axes"]), Const(lowest), smax,
                   ctx.t(node.outputs[0]).dtype)


@lowering("q.argmax")
def _qargmax(node: Node, ctx: Ctx) -> Kernel:
    """best = x[0]; for j: take = last ? x[j] >= best : x[j] > best."""
    x, y = node.inputs[0], node.outputs[0]
    ax = node.attrs["axis"]
    last = node.attrs["select_last_index"]
    xt = ctx.t(x)
    isz = _itemsize(xt.dtype)
    A = int(np.prod(xt.shape[:ax], dtype=np.int64))
    n = xt.shape[ax]
    B = int(np.prod(xt.shape[ax + 1:], dtype=np.int64))
    v = Load(xt.dtype, Addr(ctx.addr(x), ((0, n * B * isz), (1, isz), (2, B * isz))))
    take = op("slt", Var("best"), Var("v")) if not last else op("slt", Var("v"),
                                                                 Var("best"))
    if last:
        take = op("xor", take, 1)
    inner = Loop(n, (Let("v", v), Let("t", take), Let("best", cmov(Var("v"), Var("t"),
                                                                   Var("best"))),
                     Let("arg", cmov(Idx(2), Var("t"), Var("arg")))))
    y_addr = Addr(ctx.addr(y), ((0, B * 8), (1, 8)))
    body = nest([A, B], [Let("best", Const(-(1 << 63))), Let("arg", Const(0)), inner,
                         Store("i64", y_addr, Var("arg"))])
    return Kernel("", body, parallel=True)


__all__ = ["Ctx", "LOWER", "LoweringError", "add_epilogue", "elementwise", "index_map",
           "lower_node", "lowering", "nest", "rq_epilogue"]


# ---------------------------------------------------------------- windows (conv, pools)


def _window(ctx: Ctx, x: str, first: int, o_levels: list[int], j_levels: list[int],
            kern: list[int], a: dict, chan: list[tuple[int, int]]) -> tuple[Expr, Expr | None]:
    """(load of x[n, channel, o*s + j*d - pad], validity or None) for a window op.

    ``chan``: (level, multiplier) terms of the channel index; level 0 is the batch.
    Out-of-image positions (padding, ceil mode) are clamped for the address and reported
    by the validity expression ``and_i sltu(p_i, H_i)`` (1 inside, 0 outside)."""
    xt = ctx.t(x)
    isz = _itemsize(xt.dtype)
    xs = _strides(xt.shape, isz)
    nd = len(kern)
    terms = [(0, xs[0])] + [(lv, m * xs[1]) for lv, m in chan]
    dyn: list[tuple[Expr, int]] = []
    valid: Expr | None = None
    for i in range(nd):
        s, d, pad = a["strides"][i], a["dilations"][i], a["pads"][i]
        h = xt.shape[2 + i]
        o_max = (ctx.t(first).shape[2 + i] - 1) * s
        inside = pad == 0 and o_max + (kern[i] - 1) * d < h
        if inside:  # every position is in the image: a plain strided address
            terms += [(o_levels[i], s * xs[2 + i]), (j_levels[i], d * xs[2 + i])]
            continue
        p = add(add(mul(Idx(o_levels[i]), s), mul(Idx(j_levels[i]), d)), -pad)
        ok = op("sltu", p, h)
        valid = ok if valid is None else op("and", valid, ok)
        dyn.append((smin(smax(p, 0), h - 1), xs[2 + i]))
    return Load(xt.dtype, Addr(ctx.addr(x), tuple(terms), tuple(dyn))), valid


def _absmax(c: np.ndarray | None, zp: int) -> int | None:
    """max |c - zp| of a constant (None if not a constant): bounds exact float sums."""
    if c is None or c.size == 0:
        return None
    return int(np.abs(c.astype(np.int64) - zp).max())


def _rowsum(c: np.ndarray | None) -> tuple[int, ...] | None:
    """sum of each output channel's constant weights (None if not a constant): the zero
    point corrections of the native int8 dot-product kernels (convgen.dot_plan)."""
    if c is None or c.size == 0:
        return None
    return tuple(int(v) for v in c.astype(np.int64).reshape(c.shape[0], -1).sum(axis=1))


@lowering("q.conv")
def _qconv(node: Node, ctx: Ctx) -> Kernel:
    """Loops n, g, mm, o..., c, j... (m = g * M/G + mm, x channel = g * C/G + c)."""
    return _conv(node, ctx, list(node.inputs), None)


@lowering("q.conv_rq")
def _qconv_rq(node: Node, ctx: Ctx) -> Kernel:
    """q.conv's loop nest with the requant + clamp epilogue applied before the store; the
    native description carries the epilogue (per output channel parameters only)."""
    cin, rq = split_rq_inputs(list(node.inputs), node.attrs)
    return _conv(node, ctx, cin, rq)


@lowering("q.conv_rq_add")
def _qconv_rq_add(node: Node, ctx: Ctx) -> Kernel:
    """q.conv_rq's loop nest whose epilogue then adds the residual (q.add's formula) and
    clamps (q.clamp's), before the one store; the native description carries it too."""
    cin, rq = split_rq_inputs(list(node.inputs[:-1]), node.attrs)
    return _conv(node, ctx, cin, rq, node.inputs[-1])


def add_epilogue(v: Expr, r: Expr, a: dict) -> Expr:
    """q.add then q.clamp of a fused residual block (the q.add and q.clamp lowerings'
    scalar ops): v is the conv_rq value, r the residual; ``res_a``: r is the add's a."""
    x0, x1 = (r, v) if a["res_a"] else (v, r)
    t = add(mul(sub(x0, a["add_a_zp"]), a["add_a_mult"]),
            mul(sub(x1, a["add_b_zp"]), a["add_b_mult"]))
    y = saturate(add(op("srar", t, a["add_shift"]), a["add_zp"]), a["add_dtype"])
    return smin(smax(y, a["add_lo"]), a["add_hi"])


def _conv(node: Node, ctx: Ctx, cin: list[str], rq: list[str] | None,
          res: str | None = None) -> Kernel:
    x, w = cin[0], cin[1]
    bias = cin[2] if len(cin) > 2 else None
    y = node.outputs[0]
    a = node.attrs
    xt, wt, yt = ctx.t(x), ctx.t(w), ctx.t(y)
    G = a["group"]
    M, Cg = wt.shape[0], wt.shape[1]
    Mg = M // G
    kern = list(wt.shape[2:])
    nd = len(kern)
    osh = list(yt.shape[2:])
    o_lv = [3 + i for i in range(nd)]
    c_lv = 3 + nd
    j_lv = [4 + nd + i for i in range(nd)]
    val, valid = _window(ctx, x, y, o_lv, j_lv, kern, a, [(1, Cg), (c_lv, 1)])
    v = sub(val, a["x_zp"])
    if valid is not None:
        v = cmov(v, valid, 0)
    wsz = _itemsize(wt.dtype)
    ws = _strides(wt.shape, wsz)
    w_addr = Addr(ctx.addr(w), ((1, Mg * ws[0]), (2, ws[0]), (c_lv, ws[1]))
                  + tuple((j_lv[i], ws[2 + i]) for i in range(nd)))
    wv = sub(Load(wt.dtype, w_addr), a["w_zp"])
    ysz = _itemsize(yt.dtype)
    ys = _strides(yt.shape, ysz)
    y_addr = Addr(ctx.addr(y), ((0, ys[0]), (1, Mg * ys[1]), (2, ys[1]))
                  + tuple((o_lv[i], ys[2 + i]) for i in range(nd)))
    init: Expr = Const(0)
    if bias is not None:
        bt = ctx.t(bias)
        init = Load(bt.dtype, Addr(ctx.addr(bias), ((1, Mg * _itemsize(bt.dtype)),
                                                    (2, _itemsize(bt.dtype)))))
    inner = nest([Cg] + kern, [Let("acc", add(Var("acc"), mul(v, wv)))])
    val: Expr = Var("acc")
    row_epi: Expr | None = None
    if rq is not None:
        vm_params, row_params = [], []
        for p in rq:
            bs = _bstrides(ctx.t(p).shape, yt.shape, _itemsize(ctx.t(p).dtype))
            vm_params.append(_param_load(ctx, p, ((0, bs[0]), (1, Mg * bs[1]), (2, bs[1]))
                                         + tuple((o_lv[i], bs[2 + i]) for i in range(nd))))
            per_row = all(b == 0 or yt.shape[ax] == 1 for ax, b in enumerate(bs)
                          if ax != 1)
            row_params.append(_param_load(ctx, p, ((0, bs[1]),)) if per_row else None)
        val = rq_epilogue(Var("acc"), vm_params, a)
        if all(p is not None for p in row_params):  # level 0 = the output channel m
            row_epi = rq_epilogue(Var("acc"), row_params, a)
        if res is not None:  # the residual at y's index; natively the lanes' Var("res")
            rt = ctx.t(res)
            rsz = _itemsize(rt.dtype)
            rs = _strides(rt.shape, rsz)
            r_addr = Addr(ctx.addr(res), ((0, rs[0]), (1, Mg * rs[1]), (2, rs[1]))
                          + tuple((o_lv[i], rs[2 + i]) for i in range(nd)))
            val = add_epilogue(val, Load(rt.dtype, r_addr), a)
            if row_epi is not None:
                row_epi = add_epilogue(row_epi, Var("res"), a)
    body = nest([xt.shape[0], G, Mg] + osh, [Let("acc", init), *inner,
                                             Store(yt.dtype, y_addr, val)])
    k = Kernel("", body, parallel=True)
    if body and (rq is None and yt.dtype == "i64" or row_epi is not None):
        k.native = ConvSpec(
            batch=xt.shape[0], channels=xt.shape[1], groups=G, out_per_group=Mg,
            in_per_group=Cg, kernel_shape=tuple(kern), in_shape=tuple(xt.shape[2:]),
            out_shape=tuple(osh), strides=tuple(a["strides"]),
            dilations=tuple(a["dilations"]), pads=tuple(a["pads"][:nd]),
            x_addr=ctx.addr(x), x_dtype=xt.dtype, x_zp=int(a["x_zp"]),
            w_addr=ctx.addr(w), w_dtype=wt.dtype, w_zp=int(a["w_zp"]),
            w_absmax=_absmax(ctx.const(w), a["w_zp"]), y_addr=ctx.addr(y), y_dtype=yt.dtype,
            bias_addr=ctx.addr(bias) if bias is not None else None,
            bias_dtype=ctx.t(bias).dtype if bias is not None else None, epilogue=row_epi,
            w_rowsum=_rowsum(ctx.const(w)),
            res_addr=ctx.addr(res) if res is not None else None,
            res_dtype=ctx.t(res).dtype if res is not None else None)
    return k


def _pool(node: Node, ctx: Ctx, init: Expr, step: Callable[[Expr, Expr, Expr | None], Expr]
          ) -> Kernel:
    x, y = node.inputs[0], node.outputs[0]
    a = node.attrs
    yt = ctx.t(y)
    kern = list(a["kernel_shape"])
    nd = len(kern)
    o_lv = [2 + i for i in range(nd)]
    j_lv = [2 + nd + i for i in range(nd)]
    val, valid = _window(ctx, x, y, o_lv, j_lv, kern, a, [(1, 1)])
    ysz = _itemsize(yt.dtype)
    ys = _strides(yt.shape, ysz)
    y_addr = Addr(ctx.addr(y), tuple((lv, ys[lv]) for lv in range(2 + nd)))
    inner = nest(kern, [Let("acc", step(Var("acc"), val, valid))])
    body = nest(list(yt.shape), [Let("acc", init), *inner, Store(yt.dtype, y_addr, Var("acc"))])
    return Kernel("", body, parallel=True)


@lowering("q.max_pool")
def _qmax_pool(node: Node, ctx: Ctx) -> Kernel:
    lo = -(1 << 63)
    k = _pool(node, ctx, Const(lo), lambda acc, v, ok: smax(
        acc, v if ok is None else cmov(v, ok, lo)))
    x, y, a = node.inputs[0], node.outputs[0], node.attrs
    xt, yt = ctx.t(x), ctx.t(y)
    nd = len(a["kernel_shape"])
    if k.body:
        k.native = PoolSpec(
            batch=xt.shape[0], channels=xt.shape[1], kernel_shape=tuple(a["kernel_shape"]),
            in_shape=tuple(xt.shape[2:]), out_shape=tuple(yt.shape[2:]),
            strides=tuple(a["strides"]), dilations=tuple(a["dilations"]),
            pads=tuple(a["pads"][:nd]), x_addr=ctx.addr(x), x_dtype=xt.dtype,
            y_addr=ctx.addr(y), y_dtype=yt.dtype)
    return k


@lowering("q.sum_pool")
def _qsum_pool(node: Node, ctx: Ctx) -> Kernel:
    z = node.attrs["x_zp"]
    return _pool(node, ctx, Const(0), lambda acc, v, ok: add(
        acc, sub(v, z) if ok is None else cmov(sub(v, z), ok, 0)))


# ---------------------------------------------------------------- axis composites


def _axis_split(shape: tuple[int, ...], axis: int) -> tuple[int, int, int]:
    A = int(np.prod(shape[:axis], dtype=np.int64))
    B = int(np.prod(shape[axis + 1:], dtype=np.int64))
    return A, shape[axis], B


@lowering("q.softmax")
def _qsoftmax(node: Node, ctx: Ctx) -> Kernel:
    """Per (outer, inner) row: m = max; s = sum lut(x - m); y = sat(div(sll(lut(x - m),
    out_bits) + sra(s, 1), s) + zp) (the lut is recomputed rather than stored: no scratch
    memory). With a keep mask: loops over every non-axis dimension (the mask broadcasts
    freely), masked positions drop out of the max (cmov to -2^63) and of e (cmov to 0)."""
    if len(node.inputs) > 2:
        return _qsoftmax_masked(node, ctx)
    x, table = node.inputs
    y = node.outputs[0]
    a = node.attrs
    xt, tt, yt = ctx.t(x), ctx.t(table), ctx.t(y)
    A, n, B = _axis_split(xt.shape, a["axis"])
    xsz, ysz = _itemsize(xt.dtype), _itemsize(yt.dtype)
    xv = Load(xt.dtype, Addr(ctx.addr(x), ((0, n * B * xsz), (1, xsz), (2, B * xsz))))
    y_addr = Addr(ctx.addr(y), ((0, n * B * ysz), (1, ysz), (2, B * ysz)))

    def e(tag: str) -> tuple[list[Let], Expr]:
        return lut_expr(sub(xv, Var("m")), ctx.addr(table), tt.dtype, tt.shape[0], a["lo"],
                        a["step_bits"], tag)

    l1, e1 = e("a")
    l2, e2 = e("b")
    num = add(op("sll", e2, a["out_bits"]), op("sra", Var("s"), 1))
    out = saturate(add(op("div", num, Var("s")), a["zp"]), a["dtype"])
    body = nest([A, B], [
        Let("m", Const(-(1 << 63))), Loop(n, (Let("m", smax(Var("m"), xv)),)),
        Let("s", Const(0)), Loop(n, (*l1, Let("s", add(Var("s"), e1)))),
        Loop(n, (*l2, Store(yt.dtype, y_addr, out)))])
    return Kernel("", body, parallel=True)


def _qsoftmax_masked(node: Node, ctx: Ctx) -> Kernel:
    x, table, keep = node.inputs
    y = node.outputs[0]
    a = node.attrs
    xt, tt, yt, kt = ctx.t(x), ctx.t(table), ctx.t(y), ctx.t(keep)
    axis = a["axis"]
    outer = [ax for ax in range(xt.rank) if ax != axis]
    inner = len(outer)  # the loop level of the softmax axis

    def addr(name: str, st: list[int]) -> Addr:
        return Addr(ctx.addr(name), tuple((lv, st[ax]) for lv, ax in enumerate(outer))
                    + ((inner, st[axis]),))

    xv = Load(xt.dtype, addr(x, _strides(xt.shape, _itemsize(xt.dtype))))
    kv = Load(kt.dtype, addr(keep, _bstrides(kt.shape, xt.shape, _itemsize(kt.dtype))))
    y_addr = addr(y, _strides(yt.shape, _itemsize(yt.dtype)))
    n = xt.shape[axis]

    def e(tag: str) -> tuple[list[Let], Expr]:
        lets, v = lut_expr(sub(xv, Var("m")), ctx.addr(table), tt.dtype, tt.shape[0],
                           a["lo"], a["step_bits"], tag)
        return lets, cmov(v, kv, Const(0))

    l1, e1 = e("a")
    l2, e2 = e("b")
    num = add(op("sll", e2, a["out_bits"]), op("sra", Var("s"), 1))
    out = saturate(add(op("div", num, Var("s")), a["zp"]), a["dtype"])
    body = nest([xt.shape[ax] for ax in outer], [
        Let("m", Const(-(1 << 63))),
        Loop(n, (Let("m", smax(Var("m"), cmov(xv, kv, Const(-(1 << 63))))),)),
        Let("s", Const(0)), Loop(n, (*l1, Let("s", add(Var("s"), e1)))),
        Loop(n, (*l2, Store(yt.dtype, y_addr, out)))])
    # every row (all the non-axis levels) is independent: split them, not just the batch
    return Kernel("", body, parallel=True, collapse=len(outer))


@lowering("q.layer_norm", "q.rms_norm")
def _qnorm(node: Node, ctx: Ctx) -> Kernel:
    """intops._normalize over the trailing axes, then sat(srar(z * gamma (+ beta), shift)
    + zp); a, z are recomputed per pass (no scratch memory)."""
    x, gamma = node.inputs[0], node.inputs[1]
    beta = node.inputs[2] if node.op == "q.layer_norm" else None
    y = node.outputs[0]
    a = node.attrs
    xt, yt = ctx.t(x), ctx.t(y)
    ax = a["axis"]
    A = int(np.prod(xt.shape[:ax], dtype=np.int64))
    inner_shape = tuple(xt.shape[ax:])
    n = int(np.prod(inner_shape, dtype=np.int64))
    xsz, ysz = _itemsize(xt.dtype), _itemsize(yt.dtype)
    center = node.op == "q.layer_norm"

    def a_of(xv: Expr) -> Expr:
        av = op("srar", sub(xv, a["x_zp"]), a["pre"])
        return sub(av, Var("mu")) if center else av

    # the sums run over the n elements of a row as one flat loop (level 1)
    xv = Load(xt.dtype, Addr(ctx.addr(x), ((0, n * xsz), (1, xsz))))
    av = op("srar", sub(xv, a["x_zp"]), a["pre"])
    ac = a_of(xv)
    # the output pass runs over the row's axes (levels 1..), coalesced with gamma / beta
    # broadcast strides, so any broadcast of gamma / beta over the row is addressed exactly
    params = [p for p in (gamma, beta) if p is not None and _scalar_const(ctx, p) is None]
    pst = [_bstrides(ctx.t(p).shape, inner_shape, _itemsize(ctx.t(p).dtype)) for p in params]
    shp, sts = _coalesce(list(inner_shape), [_strides(inner_shape, xsz),
                                             _strides(inner_shape, ysz), *pst])
    pass_x = Load(xt.dtype, _addr(ctx.addr(x), [n * xsz] + sts[0]))

    def per_elem(name: str) -> Expr:
        c = _scalar_const(ctx, name)
        if c is not None:
            return Const(c)
        return Load(ctx.t(name).dtype, _addr(ctx.addr(name), [0] + sts[2 + params.index(name)]))

    lets, sd = isqrt_expr(add(op("sll", Var("v"), 2 * a["sd_bits"]), a["eps"]), "q")
    z = op("div", op("sll", a_of(pass_x), a["norm_bits"] + a["sd_bits"]), Var("sd"))
    t = mul(z, per_elem(gamma))
    if beta is not None:
        t = add(t, per_elem(beta))
    out = saturate(add(op("srar", t, a["shift"]), a["zp"]), a["dtype"])
    y_addr = _addr(ctx.addr(y), [n * ysz] + sts[1])
    row: list[Stmt] = []
    if center:
        row += [Let("mu", Const(0)), Loop(n, (Let("mu", add(Var("mu"), av)),)),
                Let("mu", op("div", Var("mu"), n))]
    row += [Let("v", Const(0)), Loop(n, (Let("v", add(Var("v"), mul(ac, ac))),)),
            Let("v", op("div", Var("v"), n)), *lets, Let("sd", sd),
            *nest(shp, [Store(yt.dtype, y_addr, out)])]
    return Kernel("", nest([A], row), parallel=True)


@lowering("q.einsum")
def _qeinsum(node: Node, ctx: Ctx) -> Kernel:
    """y[out letters] = sum over the other letters of (a - a_zp) * (b - b_zp)."""
    eq = node.attrs["equation"].replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    specs = lhs.split(",")
    if not arrow:  # implicit output: the letters used once, in alphabetical order
        letters = lhs.replace(",", "")
        rhs = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    if "." in eq or len(specs) != 2:
        raise LoweringError(f"q.einsum {eq!r}: only two-operand equations without '...' "
                            "are lowered")
    a_name, b_name = node.inputs
    y = node.outputs[0]
    dims: dict[str, int] = {}
    for spec, nm in zip(specs, (a_name, b_name), strict=True):
        for ch, d in zip(spec, ctx.t(nm).shape, strict=True):
            dims[ch] = max(dims.get(ch, 1), d)
    red = [ch for ch in dict.fromkeys(specs[0] + specs[1]) if ch not in rhs]
    order = list(rhs) + red
    level = {ch: k for k, ch in enumerate(order)}

    def addr_of(nm: str, spec: str) -> Addr:
        t = ctx.t(nm)
        st = _strides(t.shape, _itemsize(t.dtype))
        terms: dict[int, int] = {}
        for ch, d, s in zip(spec, t.shape, st, strict=True):
            if d != 1 or dims[ch] == 1:
                terms[level[ch]] = terms.get(level[ch], 0) + s
        return Addr(ctx.addr(nm), tuple(sorted(terms.items())))

    za, zb = node.attrs["a_zp"], node.attrs["b_zp"]
    prod = mul(sub(Load(ctx.t(a_name).dtype, addr_of(a_name, specs[0])), za),
               sub(Load(ctx.t(b_name).dtype, addr_of(b_name, specs[1])), zb))
    yt = ctx.t(y)
    ys = _strides(yt.shape, _itemsize(yt.dtype))
    y_addr = Addr(ctx.addr(y), tuple((k, ys[k]) for k in range(len(rhs))))
    inner = nest([dims[ch] for ch in red], [Let("acc", add(Var("acc"), prod))])
    body = nest([dims[ch] for ch in rhs], [Let("acc", Const(0)), *inner,
                                           Store(yt.dtype, y_addr, Var("acc"))])
    return Kernel("", body, parallel=True)


# ---------------------------------------------------------------- sampling (generation)


@lowering("q.sample")
def _qsample(node: Node, ctx: Ctx) -> Kernel:
    """intops.q_sample per row: a max pass, K threshold rounds (top_k < V), a count pass,
    the weight-sum pass, the SplitMix64 draw and the selection pass (keep_v and w_v are
    recomputed in each pass rather than stored: no scratch memory; the selection counts
    the prefix sums <= R, which is the first v whose prefix sum exceeds R). Variable names
    are reused across passes: a VM kernel holds each name in a register for the node."""
    from opmlc.ir.intops import SPLITMIX_GAMMA, SPLITMIX_M1, SPLITMIX_M2

    x, table, seed = node.inputs
    y = node.outputs[0]
    a = node.attrs
    xt, tt = ctx.t(x), ctx.t(table)
    V = xt.shape[-1]
    A = int(np.prod(xt.shape[:-1], dtype=np.int64))
    K = V if a["top_k"] <= 0 or a["top_k"] >= V else int(a["top_k"])
    isz = _itemsize(xt.dtype)
    lo_w, hi_w = -(1 << 63), (1 << 63) - 1

    def xv(level: int) -> Expr:  # x[row, v] with the row at level 0 and v at ``level``
        return Load(xt.dtype, Addr(ctx.addr(x), ((0, V * isz), (level, isz))))

    lets, e = lut_expr(sub(Var("xv"), Var("m")), ctx.addr(table), tt.dtype, tt.shape[0],
                       a["lo"], a["step_bits"], "l")
    kept_weight = [  # w = keep_v ? lut(x_v - m) : 0, then r counts the kept ties down
        Let("xv", xv(1)), Let("gt", op("slt", Var("t"), Var("xv"))),
        Let("eq", op("xor", op("or", Var("gt"), op("slt", Var("xv"), Var("t"))), 1)),
        *lets,
        Let("w", cmov(e, op("or", Var("gt"), op("and", Var("eq"), op("slt", 0, Var("r")))),
                      0)),
        Let("r", sub(Var("r"), Var("eq")))]
    body: list[Stmt] = [Let("m", Const(lo_w)), Loop(V, (Let("m", smax(Var("m"), xv(1))),))]
    if K < V:  # acc counts x >= t, s is the largest x below t
        body += [Let("t", Const(hi_w)), Loop(K, (
            Let("acc", Const(0)), Let("s", Const(lo_w)),
            Loop(V, (Let("xv", xv(2)), Let("gt", op("slt", Var("xv"), Var("t"))),
                     Let("acc", add(Var("acc"), op("xor", Var("gt"), 1))),
                     Let("s", smax(Var("s"), cmov(Var("xv"), Var("gt"), Const(lo_w)))))),
            Let("t", cmov(Var("s"), op("slt", Var("acc"), K), Var("t")))))]
    else:
        body += [Let("t", Const(lo_w))]
    seed_v = Load("i64", Addr(ctx.addr(seed)))
    body += [
        Let("g", Const(0)), Loop(V, (Let("g", add(Var("g"), op("slt", Var("t"), xv(1)))),)),
        Let("r", sub(K, Var("g"))), Let("s", Const(0)),
        Loop(V, (*kept_weight, Let("s", add(Var("s"), Var("w"))))),
        Let("R", add(seed_v, Const((a["counter"] + 1) * SPLITMIX_GAMMA))),
        Let("R", mul(op("xor", Var("R"), op("srl", Var("R"), 30)), Const(SPLITMIX_M1))),
        Let("R", mul(op("xor", Var("R"), op("srl", Var("R"), 27)), Const(SPLITMIX_M2))),
        Let("R", op("srl", op("xor", Var("R"), op("srl", Var("R"), 31)), 1)),
        Let("R", sub(Var("R"), mul(op("div", Var("R"), Var("s")), Var("s")))),
        Let("r", sub(K, Var("g"))), Let("acc", Const(0)), Let("tok", Const(0)),
        Loop(V, (*kept_weight, Let("acc", add(Var("acc"), Var("w"))),
                 Let("tok", add(Var("tok"), op("xor", op("slt", Var("R"), Var("acc")), 1))))),
        Store("i64", Addr(ctx.addr(y), ((0, 8),)), Var("tok"))]
    return Kernel("", nest([A], body), parallel=False)
