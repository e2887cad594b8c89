"""Lowerings of the ops that read or write at computed positions: ``q.resize`` (constant
tap tables), ``q.topk`` (k rounds of selection in registers) and the scatters
(``scatter_elements``, ``scatter_nd``: a copy, then the updates in order through
data-dependent store addresses).

Registered into ``lower.LOWER`` on import (``backend/compile.py`` imports this module).
Static trip counts, no data-dependent branches: choices are ``cmov`` and index clamps.
"""

from __future__ import annotations

import math

import numpy as np

from opmlc.backend.kernel import (
    Addr,
    Const,
    Expr,
    Idx,
    Kernel,
    Let,
    Load,
    Loop,
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
from opmlc.backend.lower import Ctx, _addr, _itemsize, _strides, lowering, nest
from opmlc.ir.graph import Node
from opmlc.ir.intops_index import resize_int_taps


@lowering("q.resize")
def _qresize(node: Node, ctx: Ctx) -> Kernel:
    """y[o, p] = sat(srar(sum_t w[p, t] * (x[o, idx[p, t]] - x_zp), S) + zp) (fill where
    extrapolated): idx, w (and the extrapolation flags) are constant tables per output
    position p of the resized block; o runs over the copied leading axes."""
    x, y = node.inputs[0], node.outputs[0]
    a = node.attrs
    xt, yt = ctx.t(x), ctx.t(y)
    if yt.size == 0:
        return Kernel("", [])
    first, idx, w, ext, shift = resize_int_taps(xt.shape, a)
    outer = math.prod(xt.shape[:first])
    n_out, taps = idx.shape
    xsz, ysz = _itemsize(xt.dtype), _itemsize(yt.dtype)
    in_block = math.prod(xt.shape[first:])
    ti = ctx.table(f"{y}.taps", idx.reshape(-1).astype(np.int32))
    i = Load("i32", Addr(ti, ((1, taps * 4), (2, 4))))
    src = Load(xt.dtype, Addr(ctx.addr(x), ((0, in_block * xsz),), ((Var("i"), xsz),)))
    if np.all(w == 1) and taps == 1:  # nearest: a copy through the index table
        term: Expr = sub(src, a["x_zp"])
    else:
        tw = ctx.table(f"{y}.weights", w.reshape(-1))
        term = mul(sub(src, a["x_zp"]), Load("i64", Addr(tw, ((1, taps * 8), (2, 8)))))
    inner = Loop(taps, (Let("i", i), Let("acc", add(Var("acc"), term))))
    val = saturate(add(op("srar", Var("acc"), shift), a["zp"]), a["dtype"])
    if ext.any():
        te = ctx.table(f"{y}.extrapolated", ext.astype(np.uint8))
        val = cmov(Const(a["fill"]), Load("u8", Addr(te, ((1, 1),))), val)
    store = Store(yt.dtype, Addr(ctx.addr(y), ((0, n_out * ysz), (1, ysz))), val)
    body = nest([outer, n_out], [Let("acc", Const(0)), inner, store])
    return Kernel("", body, parallel=True)


def _eq(a: Expr, b: Expr) -> Expr:
    return op("sltu", op("xor", a, b), 1)


@lowering("q.topk")
def _qtopk(node: Node, ctx: Ctx) -> Kernel:
    """Round r picks, among the elements ranked after the previous pick (p_v, p_i) in the
    order (value descending, index ascending), the first largest: an element (v, i) is a
    candidate iff v < p_v or (v = p_v and i > p_i); it is taken iff it is a candidate and
    v > best (or nothing is taken yet).  For smallest, v is the negated code."""
    x = node.inputs[0]
    vals, inds = node.outputs
    a = node.attrs
    ax, k, largest = a["axis"], a["k"], a["largest"]
    xt, vt = ctx.t(x), ctx.t(vals)
    if vt.size == 0:
        return Kernel("", [])
    A = math.prod(xt.shape[:ax])
    n = xt.shape[ax]
    B = math.prod(xt.shape[ax + 1:])
    xsz, vsz = _itemsize(xt.dtype), _itemsize(vt.dtype)
    v: Expr = Load(xt.dtype, Addr(ctx.addr(x), ((0, n * B * xsz), (1, xsz), (3, B * xsz))))
    if not largest:
        v = sub(0, v)
    cand = op("or", op("slt", Var("v"), Var("pv")),
              op("and", _eq(Var("v"), Var("pv")), op("slt", Var("pi"), Idx(3))))
    take = op("and", cand, op("or", op("slt", Var("bv"), Var("v")), op("xor", Var("found"), 1)))
    scan = Loop(n, (Let("v", v), Let("t", take),
                    Let("bv", cmov(Var("v"), Var("t"), Var("bv"))),
                    Let("bi", cmov(Idx(3), Var("t"), Var("bi"))),
                    Let("found", op("or", Var("found"), Var("t")))))
    out_v = Var("bv") if largest else sub(0, Var("bv"))
    rounds = Loop(k, (
        Let("bv", Const(-(1 << 63))), Let("bi", Const(0)), Let("found", Const(0)), scan,
        Store(vt.dtype, Addr(ctx.addr(vals), ((0, k * B * vsz), (1, vsz), (2, B * vsz))),
              out_v),
        Store("i64", Addr(ctx.addr(inds), ((0, k * B * 8), (1, 8), (2, B * 8))), Var("bi")),
        Let("pv", Var("bv")), Let("pi", Var("bi"))))
    body = nest([A, B], [Let("pv", Const((1 << 63) - 1)), Let("pi", Const(-1)), rounds])
    return Kernel("", body, parallel=True)


def _combine(red: str, old: Expr, new: Expr) -> Expr:
    """A scatter's update rule on 64-bit words (the store narrows: integers wrap)."""
    return {"none": lambda: new, "add": lambda: add(old, new), "mul": lambda: mul(old, new),
            "max": lambda: smax(old, new), "min": lambda: smin(old, new)}[red]()


def _clamped(i: Expr, dim: int) -> list[Let]:
    """g = clamp(i + (i < 0 ? dim : 0), 0, dim - 1): gather's rule for an index."""
    return [Let("g", add(i, cmov(Const(dim), op("slt", i, 0), Const(0)))),
            Let("g", smin(smax(Var("g"), 0), dim - 1))]


def _copy(ctx: Ctx, src: str, dst: str) -> list[Stmt]:
    t = ctx.t(dst)
    isz = _itemsize(t.dtype)
    return nest([t.size], [Store(t.dtype, Addr(ctx.addr(dst), ((0, isz),)),
                                 Load(t.dtype, Addr(ctx.addr(src), ((0, isz),))))])


@lowering("scatter_elements")
def _scatter_elements(node: Node, ctx: Ctx) -> Kernel:
    """y = x; then for each update j in row-major order: y[j with the axis coordinate
    g = clamp(idx[j])] = combine(y[...], upd[j]).  Sequential (later updates win)."""
    x, ind, upd = node.inputs
    y = node.outputs[0]
    xt, it, ut = ctx.t(x), ctx.t(ind), ctx.t(upd)
    ax, red = node.attrs["axis"], node.attrs["reduction"]
    body = _copy(ctx, x, y)
    if it.size:
        isz = _itemsize(xt.dtype)
        ys = _strides(xt.shape, isz)
        terms = [s if d != ax else 0 for d, s in enumerate(ys)]
        dst = Addr(ctx.addr(y), _addr(0, terms).terms, ((Var("g"), ys[ax]),))
        i = Load(it.dtype, _addr(ctx.addr(ind), _strides(it.shape, _itemsize(it.dtype))))
        u = Load(ut.dtype, _addr(ctx.addr(upd), _strides(ut.shape, _itemsize(ut.dtype))))
        body += nest(list(it.shape), [*_clamped(i, xt.shape[ax]),
                                      Store(xt.dtype, dst, _combine(red, Load(xt.dtype, dst),
                                                                    u))])
    return Kernel("", body)


@lowering("scatter_nd")
def _scatter_nd(node: Node, ctx: Ctx) -> Kernel:
    """y = x; then for each index tuple j in row-major order: the slice at
    (clamp(idx[j, 0]), ..., clamp(idx[j, k-1])) = combine(it, upd[j]).  Sequential."""
    x, ind, upd = node.inputs
    y = node.outputs[0]
    xt, it, ut = ctx.t(x), ctx.t(ind), ctx.t(upd)
    red = node.attrs["reduction"]
    body = _copy(ctx, x, y)
    k = it.shape[-1]
    lead = list(it.shape[:-1])
    inner = math.prod(xt.shape[k:])
    if math.prod(lead) and inner:
        isz, iisz = _itemsize(xt.dtype), _itemsize(it.dtype)
        q = len(lead)
        ist = _strides(it.shape, iisz)
        lets: list[Stmt] = [Let("o", Const(0))]
        for d in range(k):
            i = Load(it.dtype, Addr(ctx.addr(ind) + d * iisz,
                                    tuple((lv, ist[lv]) for lv in range(q))))
            lets += _clamped(i, xt.shape[d])
            lets.append(Let("o", add(Var("o"), mul(Var("g"), math.prod(xt.shape[d + 1:])))))
        dst = Addr(ctx.addr(y), ((q, isz),), ((Var("o"), isz),))
        ust = _strides(ut.shape, _itemsize(ut.dtype))
        u = Load(ut.dtype, Addr(ctx.addr(upd), tuple((lv, ust[lv]) for lv in range(q))
                                + ((q, _itemsize(ut.dtype)),)))
        body += nest(lead, [*lets, Loop(inner, (Store(xt.dtype, dst, _combine(
            red, Load(xt.dtype, dst), u)),))])
    return Kernel("", body)


__all__: list[str] = []
