"""Integer ops that read their input at computed positions: ``q.resize`` (static taps with
exact integer weights) and ``q.topk`` (k rounds of selection).

Registered in the op registry like :mod:`opmlc.ir.intops` (``opmlc.ir`` imports this
module after it); the same shared rules hold (64-bit words, ``srar`` rounds half up,
``sat_T`` narrows).  The scatters (``scatter_elements``, ``scatter_nd``) and the other
movement ops need no integer twin: on integer codes their float references are exact.
spec/QUANT.md ("Resize", "TopK", "Scatter") states the same formulas.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from opmlc.ir import prim as P
from opmlc.ir.graph import TensorType
from opmlc.ir.intops import INT_OPS
from opmlc.ir.ops import _RESIZE_ATTRS, OPS, REQUIRED, Group, register, resize_axis_taps

RESIZE_FRAC_BITS = 12  # fraction bits of each axis' integer interpolation weights


def _reg(name: str, group: Group, infer: Any, attrs: dict[str, Any], n_out: int = 1) -> Any:
    INT_OPS.append(name)
    return register(name, group, infer, (1, 1), attrs, num_outputs=lambda a: n_out)


def resize_weights(c: np.ndarray, frac_bits: int) -> np.ndarray:
    """Integer weights of one axis: w = floor(c * 2^F + 1/2) per tap, then the row's
    remainder 2^F - sum(w) added to its largest weight (the first of equal ones), so every
    row sums to exactly 2^F."""
    w = np.floor(c * 2.0**frac_bits + 0.5).astype(np.int64)
    if w.size:
        top = np.argmax(c, axis=1)
        w[np.arange(w.shape[0]), top] += (1 << frac_bits) - w.sum(axis=1)
    return w


def resize_int_taps(in_shape: tuple[int, ...], a: dict[str, Any]
                    ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, int]:
    """The taps of a q.resize over the axes from the first resized one (``first``) on:
    (first, idx [n_out, T] flat offsets into one input block x[o, ...] of the axes
    first.., weights [n_out, T] (products of the axes' integer weights), extrapolated
    [n_out] bool, shift S = sum of the resized axes' fraction bits).  Axes before
    ``first`` are copied (the identity); nearest axes have one tap of weight 1 (F = 0)."""
    r = len(in_shape)
    out = list(a["sizes"])
    taps = [resize_axis_taps(in_shape[d], out[d], d, a) for d in range(r)]
    first = next((d for d in range(r) if taps[d] is not None), r)
    fb = 0 if a["mode"] == "nearest" else a["frac_bits"]
    per_axis = []
    shift = 0
    for d in range(first, r):
        t = taps[d]
        if t is None:
            n = out[d]
            per_axis.append((np.arange(n)[:, None], np.ones((n, 1), np.int64),
                             np.zeros(n, np.bool_)))
            continue
        idx, c, ext = t
        per_axis.append((idx, resize_weights(c, fb), ext))
        shift += fb
    in_st = [math.prod(in_shape[d + 1:]) for d in range(first, r)]
    n_out = math.prod(out[first:])
    tcount = math.prod(p[0].shape[1] for p in per_axis)
    flat_idx = np.zeros((n_out, tcount), np.int64)
    flat_w = np.ones((n_out, tcount), np.int64)
    flat_ext = np.zeros(n_out, np.bool_)
    grids = np.indices(out[first:]).reshape(r - first, n_out)
    for k, combo in enumerate(itertools.product(*(range(p[0].shape[1]) for p in per_axis))):
        for j, (t, p) in enumerate(zip(combo, per_axis, strict=True)):
            o = grids[j]
            flat_idx[:, k] += p[0][o, t] * in_st[j]
            flat_w[:, k] *= p[1][o, t]
    for j, p in enumerate(per_axis):
        flat_ext |= p[2][grids[j]]
    return first, flat_idx, flat_w, flat_ext, shift


_Q_RESIZE_ATTRS = {k: v for k, v in _RESIZE_ATTRS.items() if k != "extrapolation_value"}
_Q_RESIZE_ATTRS.update(frac_bits=RESIZE_FRAC_BITS, x_zp=0, zp=0, fill=0, dtype=REQUIRED)


@_reg("q.resize", Group.NONLINEAR,
      lambda ts, a: [TensorType(a["dtype"], tuple(a["sizes"]))], attrs=_Q_RESIZE_ATTRS)
def q_resize(x: np.ndarray, **a: Any) -> np.ndarray:
    """y[o, p] = sat_T(srar(sum_t w[p, t] * (x[o, idx[p, t]] - x_zp), S) + zp), or ``fill``
    where an axis extrapolates; o over the copied leading axes, p over the rest
    (:func:`resize_int_taps`)."""
    first, idx, w, ext, shift = resize_int_taps(x.shape, a)
    outer = math.prod(x.shape[:first])
    xb = P.i64(x).reshape(outer, -1)
    acc = np.zeros((outer, idx.shape[0]), np.int64)
    for t in range(idx.shape[1]):
        acc = P.add(acc, P.mul(P.sub(xb[:, idx[:, t]], a["x_zp"]), w[None, :, t]))
    y = P.add(P.srar(acc, shift), a["zp"])
    y = np.where(ext[None, :], a["fill"], y)
    return P.saturate(y, a["dtype"]).reshape(a["sizes"])


@_reg("q.topk", Group.REDUCTION, OPS["topk"].infer,
      attrs={"axis": REQUIRED, "k": REQUIRED, "largest": 1}, n_out=2)
def q_topk(x: np.ndarray, **a: Any) -> tuple[np.ndarray, np.ndarray]:
    """(values, i64 indices) of the k largest (smallest) codes along axis, sorted; equal
    codes: the lower index first."""
    return OPS["topk"].ref(x, **a)


__all__ = ["RESIZE_FRAC_BITS", "q_resize", "q_topk", "resize_int_taps", "resize_weights"]
