"""The integer ops: registered once, here, in the IR's op registry under ``q.*`` names.

Each op's reference below is its exact semantics on int64 words, written with the
VM primitives of :mod:`opmlc.ir.prim` (spec/QUANT.md states the same
formulas with their rounding and overflow rules; the back half lowers each op
to VM code and to native kernels that must agree bit for bit).  Shared rules:

* every input element is first widened to a 64-bit word (sign- or zero-extended);
* all arithmetic wraps modulo 2^64; "sat_T" clamps to the range of the output dtype T
  (the only place a value is narrowed);
* ``srar`` rounds half toward +inf; ``div`` truncates toward zero and x / 0 = 0;
* loops have static trip counts (shapes and attributes are static).

``opmlc.ir`` imports this module (the registration is part of the IR layer), so the IR
verifier, text form and interpreters accept integer graphs without the quantizer.
Integer graphs use only these ops and the IR's MOVEMENT ops (reshape, transpose, slice,
gather, concat, ...), which are exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from opmlc.ir import prim as P
from opmlc.ir.graph import TensorType
from opmlc.ir.ops import OPS, REQUIRED, Group, register

INT_DTYPES = frozenset({"i8", "i16", "i32", "i64", "u8"})

INT_OPS: list[str] = []  # the q.* op names, in registration order


def _reg(name: str, group: Group, infer: Callable, arity: tuple[int, int | None] = (1, 1),
         attrs: dict[str, Any] | None = None, pointwise: bool = False) -> Callable:
    INT_OPS.append(name)
    return register(name, group, infer, arity, attrs, pointwise=pointwise)


def _as_dtype(infer: Callable, dtype: str | None = None, attr: str | None = None) -> Callable:
    """Wrap an IR inference function: same shapes, dtype fixed or from attribute ``attr``."""

    def f(ts: list[TensorType], a: dict[str, Any]) -> list[TensorType]:
        d = dtype or (a[attr] if attr else ts[0].dtype)
        return [TensorType(d, t.shape) for t in infer(ts, a)]

    return f


def _bcast(ts: list[TensorType], a: dict[str, Any]) -> list[TensorType]:
    return [TensorType(ts[0].dtype, np.broadcast_shapes(*(t.shape for t in ts)))]


def _bcast_first2(ts: list[TensorType], a: dict[str, Any]) -> list[TensorType]:
    return [TensorType(ts[0].dtype, np.broadcast_shapes(*(t.shape for t in ts[:2])))]


def _same(ts: list[TensorType], a: dict[str, Any]) -> list[TensorType]:
    return [ts[0]]


W = P.i64  # widen to a 64-bit word


def _out(y: np.ndarray, dtype: str) -> np.ndarray:
    return P.saturate(y, dtype)


# ---------------------------------------------------------------- exact contractions

_EXACT = 1 << 53


def _bitlen(x: np.ndarray) -> int:
    if x.size == 0:
        return 0
    m = max(int(x.max()), -int(x.min()))
    return m.bit_length()


def _limbs(x: np.ndarray, bits: int, limb: int) -> list[tuple[int, np.ndarray]]:
    """x = sum_i x_i * 2^(limb*i) (low limbs unsigned, top limb signed), as float64."""
    n = max(1, -(-(bits + 1) // limb))
    out = []
    for i in range(n):
        part = x >> (limb * i)
        if i < n - 1:
            part = part & ((1 << limb) - 1)
        out.append((limb * i, part.astype(np.float64)))
    return out


def exact_contract(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], a: np.ndarray,
                   b: np.ndarray, k: int) -> np.ndarray:
    """The int64 (mod 2^64) value of the bilinear contraction ``fn`` of a and b with at most
    ``k`` products per output, computed exactly with float64 BLAS on limbs whose partial
    sums stay below 2^53 (every partial is an exact integer)."""
    a, b = W(a), W(b)
    ba, bb = _bitlen(a), _bitlen(b)
    budget = 52 - max(1, int(k)).bit_length()
    if ba + bb <= budget:
        return np.rint(fn(a.astype(np.float64), b.astype(np.float64))).astype(np.int64)
    if bb <= budget // 2:
        la, lb = budget - bb, max(bb, 1)
    elif ba <= budget // 2:
        la, lb = max(ba, 1), budget - ba
    else:
        la = lb = budget // 2
    acc = None
    for sa, pa in _limbs(a, ba, la):
        for sb, pb in _limbs(b, bb, lb):
            part = np.rint(fn(pa, pb)).astype(np.int64)
            part = P.sll(part, sa + sb)
            acc = part if acc is None else acc + part
    return acc


# ---------------------------------------------------------------- contractions


@_reg("q.matmul", Group.CONTRACTION, _as_dtype(OPS["matmul"].infer, "i64"), (2, 3),
      {"a_zp": 0, "b_zp": 0})
def q_matmul(a: np.ndarray, b: np.ndarray, bias: np.ndarray | None = None, *, a_zp: int,
             b_zp: int) -> np.ndarray:
    """y[.., i, j] = bias[j] + sum_k (a[.., i, k] - a_zp) * (b[.., k, j] - b_zp)   (i64, wraps)."""
    y = exact_contract(np.matmul, W(a) - a_zp, W(b) - b_zp, a.shape[-1])
    return y if bias is None else y + W(bias)


@_reg("q.conv", Group.CONTRACTION, _as_dtype(OPS["conv"].infer, "i64"), (2, 3),
      {"strides": REQUIRED, "pads": REQUIRED, "dilations": REQUIRED, "group": 1,
       "x_zp": 0, "w_zp": 0})
def q_conv(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None, *, x_zp: int,
           w_zp: int, **a: Any) -> np.ndarray:
    """y[n,m,o] = bias[m] + sum_{c,j} xz[n, g*C/G + c, o*s + j*d - pad] * (w[m,c,j] - w_zp),
    xz = x - x_zp inside the image and 0 in the padding   (i64, wraps)."""
    fn = lambda xf, wf: OPS["conv"].ref(xf, wf, **a)  # noqa: E731
    y = exact_contract(fn, W(x) - x_zp, W(w) - w_zp, int(np.prod(w.shape[1:])))
    if bias is not None:
        y = y + W(bias).reshape((1, -1) + (1,) * (x.ndim - 2))
    return y


@_reg("q.einsum", Group.CONTRACTION, _as_dtype(OPS["einsum"].infer, "i64"), (2, 2),
      {"equation": REQUIRED, "a_zp": 0, "b_zp": 0})
def q_einsum(a: np.ndarray, b: np.ndarray, *, equation: str, a_zp: int, b_zp: int
             ) -> np.ndarray:
    """y = einsum(equation, a - a_zp, b - b_zp) over int64 words (sum of products, wraps)."""
    fn = lambda x, y: OPS["einsum"].ref(x, y, equation=equation)  # noqa: E731
    out_size = int(np.prod(OPS["einsum"].infer(
        [TensorType.of(a), TensorType.of(b)], {"equation": equation})[0].shape))
    k = max(1, a.size * b.size // max(out_size, 1))
    return exact_contract(fn, W(a) - a_zp, W(b) - b_zp, k)


_POOL = {"kernel_shape": REQUIRED, "strides": REQUIRED, "pads": REQUIRED,
         "dilations": REQUIRED, "ceil_mode": 0}


@_reg("q.sum_pool", Group.REDUCTION, _as_dtype(OPS["average_pool"].infer, "i64"),
      attrs={**_POOL, "x_zp": 0})
def q_sum_pool(x: np.ndarray, *, x_zp: int, kernel_shape: list[int], ceil_mode: int,
               **a: Any) -> np.ndarray:
    """y[n,c,o] = sum_j xz[n, c, o*s + j*d - pad], xz = x - x_zp in the image, 0 outside
    (explicit and ceil-mode padding)   (i64)."""
    c = x.shape[1]
    ones = np.ones((c, 1) + tuple(kernel_shape), np.int64)
    geo = OPS["average_pool"].infer([TensorType.of(x)], {**a, "kernel_shape": kernel_shape,
                                                         "ceil_mode": ceil_mode})[0]
    fn = lambda xf, wf: OPS["conv"].ref(xf, wf, group=c, **a)  # noqa: E731
    y = exact_contract(fn, _ceil_pad(W(x) - x_zp, geo.shape, kernel_shape, a), ones,
                       int(np.prod(kernel_shape)))
    return y


def _ceil_pad(x: np.ndarray, out_shape: tuple[int, ...], k: list[int], a: dict[str, Any]
              ) -> np.ndarray:
    """Zero-extend the end of each spatial axis so the conv reference yields ``out_shape``."""
    nd = len(k)
    widths = [(0, 0), (0, 0)]
    for i in range(nd):
        need = (out_shape[2 + i] - 1) * a["strides"][i] + a["dilations"][i] * (k[i] - 1) + 1
        have = x.shape[2 + i] + a["pads"][i] + a["pads"][i + nd]
        widths.append((0, max(need - have, 0)))
    return np.pad(x, widths)


@_reg("q.max_pool", Group.REDUCTION, OPS["max_pool"].infer, attrs=dict(_POOL))
def q_max_pool(x: np.ndarray, **a: Any) -> np.ndarray:
    """y[n,c,o] = max_j x[n, c, o*s + j*d - pad] over in-image positions (same dtype)."""
    return OPS["max_pool"].ref(x, **a)


# ---------------------------------------------------------------- reductions


@_reg("q.reduce_sum", Group.REDUCTION, _as_dtype(OPS["reduce_sum"].infer, "i64"),
      attrs={"axes": REQUIRED, "keepdims": 1, "x_zp": 0})
def q_reduce_sum(x: np.ndarray, *, axes: list[int], keepdims: int, x_zp: int) -> np.ndarray:
    """y = sum over axes of (x - x_zp)   (i64, wraps)."""
    return np.sum(W(x) - x_zp, axis=tuple(axes), keepdims=bool(keepdims), dtype=np.int64)


@_reg("q.reduce_max", Group.REDUCTION, OPS["reduce_max"].infer,
      attrs={"axes": REQUIRED, "keepdims": 1})
def q_reduce_max(x: np.ndarray, *, axes: list[int], keepdims: int) -> np.ndarray:
    """y = max over axes of x (same dtype)."""
    return np.max(x, axis=tuple(axes), keepdims=bool(keepdims))


@_reg("q.argmax", Group.REDUCTION, OPS["argmax"].infer,
      attrs={"axis": REQUIRED, "keepdims": 1, "select_last_index": 0})
def q_argmax(x: np.ndarray, **a: Any) -> np.ndarray:
    """y = index of the max along axis (first, or last if select_last_index), i64."""
    return OPS["argmax"].ref(x, **a)


# ---------------------------------------------------------------- elementwise


@_reg("q.requant", Group.ELEMENTWISE, _as_dtype(_bcast, attr="dtype"), (3, 4),
      {"x_zp": 0, "zp": 0, "dtype": REQUIRED}, pointwise=True)
def q_requant(x: np.ndarray, mult: np.ndarray, shift: np.ndarray,
              bias: np.ndarray | None = None, *, x_zp: int, zp: int, dtype: str) -> np.ndarray:
    """y = sat_T(srar((x - x_zp) * mult + bias, shift) + zp)  (mult, shift, bias broadcast)."""
    t = P.mul(W(x) - x_zp, mult)
    if bias is not None:
        t = t + W(bias)
    return _out(P.srar(t, shift) + zp, dtype)


_ADD_ATTRS = {"a_zp": 0, "b_zp": 0, "a_mult": 1, "b_mult": 1, "shift": 0, "zp": 0,
              "dtype": REQUIRED}


@_reg("q.add", Group.ELEMENTWISE, _as_dtype(_bcast, attr="dtype"), (2, 2), _ADD_ATTRS,
      pointwise=True)
def q_add(a: np.ndarray, b: np.ndarray, *, a_zp: int, b_zp: int, a_mult: int, b_mult: int,
          shift: int, zp: int, dtype: str) -> np.ndarray:
    """y = sat_T(srar((a - a_zp) * a_mult + (b - b_zp) * b_mult, shift) + zp)."""
    t = P.mul(W(a) - a_zp, a_mult) + P.mul(W(b) - b_zp, b_mult)
    return _out(P.srar(t, shift) + zp, dtype)


@_reg("q.mul", Group.ELEMENTWISE, _as_dtype(_bcast, attr="dtype"), (2, 2),
      {"a_zp": 0, "b_zp": 0, "mult": 1, "shift": 0, "zp": 0, "dtype": REQUIRED},
      pointwise=True)
def q_mul(a: np.ndarray, b: np.ndarray, *, a_zp: int, b_zp: int, mult: int, shift: int,
          zp: int, dtype: str) -> np.ndarray:
    """y = sat_T(srar((a - a_zp) * (b - b_zp) * mult, shift) + zp)."""
    t = P.mul(P.mul(W(a) - a_zp, W(b) - b_zp), mult)
    return _out(P.srar(t, shift) + zp, dtype)


@_reg("q.div", Group.ELEMENTWISE, _as_dtype(_bcast, attr="dtype"), (2, 2),
      {"a_zp": 0, "b_zp": 0, "shift": 0, "zp": 0, "dtype": REQUIRED}, pointwise=True)
def q_div(a: np.ndarray, b: np.ndarray, *, a_zp: int, b_zp: int, shift: int, zp: int,
          dtype: str) -> np.ndarray:
    """n = a - a_zp, d = b - b_zp; shift >= 0: n = sll(n, shift) else d = sll(d, -shift);
    y = sat_T(div(n, d) + zp)   (truncating; d == 0 gives 0)."""
    n, d = W(a) - a_zp, W(b) - b_zp
    if shift >= 0:
        n = P.sll(n, shift)
    else:
        d = P.sll(d, -shift)
    return _out(P.div(n, d) + zp, dtype)


@_reg("q.mod", Group.ELEMENTWISE, _as_dtype(_bcast, attr="dtype"), (2, 2),
      {"fmod": 0, "dtype": REQUIRED}, pointwise=True)
def q_mod(a: np.ndarray, b: np.ndarray, *, fmod: int, dtype: str) -> np.ndarray:
    """r = a - div(a, b) * b (the sign of a; b = 0 gives a); fmod = 0: r = r + b when r != 0
    and r, b differ in sign (the sign of b, as Python's %); y = sat_T(r)."""
    aw, bw = W(a), W(b)
    r = aw - P.mul(P.div(aw, bw), bw)
    if not fmod:
        r = np.where((r != 0) & ((r ^ bw) < 0), r + bw, r)
    return _out(r, dtype)


CMP_KINDS = ("eq", "lt", "le", "gt", "ge", "and", "or", "xor")


@_reg("q.cmp", Group.ELEMENTWISE,
      lambda ts, a: [TensorType("u8", np.broadcast_shapes(*(t.shape for t in ts)))], (2, 2),
      {"kind": REQUIRED}, pointwise=True)
def q_cmp(a: np.ndarray, b: np.ndarray, *, kind: str) -> np.ndarray:
    """y = (a kind b) ? 1 : 0 (u8) on signed words: eq, lt, le, gt, ge; and / or / xor of
    (a != 0) and (b != 0). not x = q.cmp(x, 0) {kind: eq}."""
    aw, bw = W(a), W(b)
    fn = {"eq": np.equal, "lt": np.less, "le": np.less_equal, "gt": np.greater,
          "ge": np.greater_equal}.get(kind)
    if fn is not None:
        return fn(aw, bw).astype(np.uint8)
    la, lb = aw != 0, bw != 0
    return {"and": la & lb, "or": la | lb, "xor": la ^ lb}[kind].astype(np.uint8)


@_reg("q.sqrt", Group.ELEMENTWISE, _as_dtype(_same, attr="dtype"),
      attrs={"x_zp": 0, "shift": 0, "zp": 0, "dtype": REQUIRED}, pointwise=True)
def q_sqrt(x: np.ndarray, *, x_zp: int, shift: int, zp: int, dtype: str) -> np.ndarray:
    """u = max(x - x_zp, 0); u = shift >= 0 ? sll(u, shift) : srar(u, -shift);
    y = sat_T(isqrt(u) + zp)."""
    u = P.max_(W(x) - x_zp, 0)
    u = P.sll(u, shift) if shift >= 0 else P.srar(u, -shift)
    return _out(P.isqrt(u) + zp, dtype)


def lut_interp(x: np.ndarray, table: np.ndarray, lo: int, step_bits: int) -> np.ndarray:
    """The interpolated table lookup shared by q.lut and q.softmax (int64, unsaturated)::

        u = x - lo;  i = min(max(sra(u, k), 0), N - 2);  r = min(max(u - sll(i, k), 0), 2^k)
        y = t[i] + srar((t[i+1] - t[i]) * r, k)
    """
    t = W(table)
    n, k = t.shape[0], step_bits
    u = W(x) - lo
    i = P.min_(P.max_(P.sra(u, k), 0), n - 2)
    r = P.min_(P.max_(u - P.sll(i, k), 0), 1 << k)
    t0, t1 = t[i], t[i + 1]
    return t0 + P.srar(P.mul(t1 - t0, r), k)


@_reg("q.lut", Group.NONLINEAR, lambda ts, a: [TensorType(a["dtype"], ts[0].shape)], (2, 2),
      {"lo": REQUIRED, "step_bits": REQUIRED, "dtype": REQUIRED}, pointwise=True)
def q_lut(x: np.ndarray, table: np.ndarray, *, lo: int, step_bits: int, dtype: str
          ) -> np.ndarray:
    """y = sat_T(lut_interp(x, table, lo, step_bits)): piecewise-linear table, knots every
    2^step_bits input units from lo, clamped to the first/last knot outside."""
    return _out(lut_interp(x, table, lo, step_bits), dtype)


@_reg("q.clamp", Group.ELEMENTWISE, _same, attrs={"lo": REQUIRED, "hi": REQUIRED},
      pointwise=True)
def q_clamp(x: np.ndarray, *, lo: int, hi: int) -> np.ndarray:
    """y = min(max(x, lo), hi) (same dtype; lo <= hi within its range)."""
    return np.minimum(np.maximum(W(x), lo), hi).astype(x.dtype)


@_reg("q.where", Group.ELEMENTWISE,
      lambda ts, a: [TensorType(ts[1].dtype, np.broadcast_shapes(*(t.shape for t in ts)))],
      (3, 3), pointwise=True)
def q_where(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """y = c != 0 ? a : b (cmov; a and b have the same dtype)."""
    return np.where(W(c) != 0, a, b).astype(a.dtype)


# ---------------------------------------------------------------- composites along an axis


@_reg("q.softmax", Group.NONLINEAR, lambda ts, a: [TensorType(a["dtype"], ts[0].shape)],
      (2, 3), {"axis": REQUIRED, "lo": REQUIRED, "step_bits": REQUIRED,
               "out_bits": REQUIRED, "zp": 0, "dtype": REQUIRED})
def q_softmax(x: np.ndarray, table: np.ndarray, keep: np.ndarray | None = None, *, axis: int,
              lo: int, step_bits: int, out_bits: int, zp: int, dtype: str) -> np.ndarray:
    """m = max_axis x; e = lut_interp(x - m, table, lo, step_bits); s = sum_axis e;
    y = sat_T(div(sll(e, out_bits) + sra(s, 1), s) + zp)   (e >= 0, s > 0: rounds half up).

    With ``keep`` (u8, broadcast to x): k = keep != 0; m = max_axis (k ? x : -2^63);
    e = k ? lut_interp(x - m, ...) : 0 (x - m wraps); the rest as above, so a masked
    position is exactly zp (real 0) and a row with nothing kept (s = 0) is all zp.
    """
    xw = W(x)
    if keep is None:
        d = xw - np.max(xw, axis=axis, keepdims=True)
        e = lut_interp(d, table, lo, step_bits)
    else:
        k = np.broadcast_to(W(keep) != 0, xw.shape)
        m = np.max(np.where(k, xw, np.int64(-(1 << 63))), axis=axis, keepdims=True)
        with np.errstate(over="ignore"):
            d = xw - m
        e = np.where(k, lut_interp(d, table, lo, step_bits), np.int64(0))
    s = np.sum(e, axis=axis, keepdims=True, dtype=np.int64)
    return _out(P.div(P.sll(e, out_bits) + P.sra(s, 1), s) + zp, dtype)


_NORM_ATTRS = {"axis": REQUIRED, "x_zp": 0, "pre": 0, "eps": REQUIRED, "norm_bits": 16,
               "sd_bits": 8, "shift": REQUIRED, "zp": 0, "dtype": REQUIRED}


def _normalize(x: np.ndarray, axis: int, x_zp: int, pre: int, eps: int, norm_bits: int,
               sd_bits: int, center: bool) -> np.ndarray:
    axes = tuple(range(axis, x.ndim))
    n = int(np.prod(x.shape[axis:]))
    a = P.srar(W(x) - x_zp, pre)
    if center:
        mu = P.div(np.sum(a, axis=axes, keepdims=True, dtype=np.int64), n)
        a = a - mu
    v = P.div(np.sum(P.mul(a, a), axis=axes, keepdims=True, dtype=np.int64), n)
    sd = P.isqrt(P.sll(v, 2 * sd_bits) + eps)
    return P.div(P.sll(a, norm_bits + sd_bits), sd)


@_reg("q.layer_norm", Group.NONLINEAR, lambda ts, a: [TensorType(a["dtype"], ts[0].shape)],
      (3, 3), dict(_NORM_ATTRS))
def q_layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, *, axis: int, x_zp: int,
                 pre: int, eps: int, norm_bits: int, sd_bits: int, shift: int, zp: int,
                 dtype: str) -> np.ndarray:
    """Over the trailing axes axis..rank-1 (n elements):
    a = srar(x - x_zp, pre); a = a - div(sum a, n); v = div(sum a*a, n);
    sd = isqrt(sll(v, 2*sd_bits) + eps); z = div(sll(a, norm_bits + sd_bits), sd);
    y = sat_T(srar(z * gamma + beta, shift) + zp)."""
    z = _normalize(x, axis, x_zp, pre, eps, norm_bits, sd_bits, True)
    return _out(P.srar(P.mul(z, gamma) + W(beta), shift) + zp, dtype)


@_reg("q.rms_norm", Group.NONLINEAR, lambda ts, a: [TensorType(a["dtype"], ts[0].shape)],
      (2, 2), dict(_NORM_ATTRS))
def q_rms_norm(x: np.ndarray, gamma: np.ndarray, *, axis: int, x_zp: int, pre: int, eps: int,
               norm_bits: int, sd_bits: int, shift: int, zp: int, dtype: str) -> np.ndarray:
    """As q.layer_norm without centring and without beta:
    y = sat_T(srar(z * gamma, shift) + zp)."""
    z = _normalize(x, axis, x_zp, pre, eps, norm_bits, sd_bits, False)
    return _out(P.srar(P.mul(z, gamma), shift) + zp, dtype)


# ---------------------------------------------------------------- fused contractions
#
# Made by the back end's fusion pass (opmlc/backend/fuse.py), never by the quantizer: a
# contraction whose i64 accumulator's only user is a q.requant (whose output's only user
# may be a q.clamp) becomes one node. The reference is literally the composition.

_RQ_ATTRS = {"acc_zp": 0, "zp": 0, "dtype": REQUIRED, "lo": REQUIRED, "hi": REQUIRED,
             "has_bias": 0, "has_rq_bias": 0}


def split_rq_inputs(ins: list, a: dict[str, Any]) -> tuple[list, list]:
    """(contraction inputs, requant inputs) of a fused node: x, w[, bias] | mult, shift[,
    rq_bias] (``has_bias`` / ``has_rq_bias`` say which optional ones are present)."""
    n = 2 + int(a.get("has_bias", 0))
    return list(ins[:n]), list(ins[n:])


def _rq_infer(base: str) -> Callable:
    def f(ts: list[TensorType], a: dict[str, Any]) -> list[TensorType]:
        cts, _ = split_rq_inputs(ts, a)
        return [TensorType(a["dtype"], OPS[base].infer(cts, a)[0].shape)]

    return f


def _rq_epilogue(acc: np.ndarray, rq: list[np.ndarray], a: dict[str, Any]) -> np.ndarray:
    y = q_requant(acc, *rq, x_zp=a["acc_zp"], zp=a["zp"], dtype=a["dtype"])
    return q_clamp(y, lo=a["lo"], hi=a["hi"])


_CONV_ATTRS = {"strides": REQUIRED, "pads": REQUIRED, "dilations": REQUIRED, "group": 1,
               "x_zp": 0, "w_zp": 0}


@_reg("q.conv_rq", Group.CONTRACTION, _rq_infer("q.conv"), (4, 6),
      {**_CONV_ATTRS, **_RQ_ATTRS})
def q_conv_rq(*ins: np.ndarray, **a: Any) -> np.ndarray:
    """y = q.clamp(q.requant(q.conv(x, w[, bias]), mult, shift[, rq_bias]) {x_zp: acc_zp,
    zp, dtype}) {lo, hi}   (inputs x, w[, bias], mult, shift[, rq_bias])."""
    cin, rq = split_rq_inputs(list(ins), a)
    acc = q_conv(*cin, **{k: a[k] for k in _CONV_ATTRS})
    return _rq_epilogue(acc, rq, a)


@_reg("q.matmul_rq", Group.CONTRACTION, _rq_infer("q.matmul"), (4, 6),
      {"a_zp": 0, "b_zp": 0, **_RQ_ATTRS})
def q_matmul_rq(*ins: np.ndarray, **a: Any) -> np.ndarray:
    """y = q.clamp(q.requant(q.matmul(a, b[, bias]), mult, shift[, rq_bias]) {x_zp: acc_zp,
    zp, dtype}) {lo, hi}   (inputs a, b[, bias], mult, shift[, rq_bias])."""
    cin, rq = split_rq_inputs(list(ins), a)
    acc = q_matmul(*cin, a_zp=a["a_zp"], b_zp=a["b_zp"])
    return _rq_epilogue(acc, rq, a)


# q.conv_rq whose output's only user is a same-shape q.add (and that add's only user may
# be a q.clamp): the residual block of a ResNet, one node (opmlc/backend/fuse.py).
_ADD_RES_ATTRS = {"res_a": 0, "add_a_zp": 0, "add_b_zp": 0, "add_a_mult": 1, "add_b_mult": 1,
                  "add_shift": 0, "add_zp": 0, "add_dtype": REQUIRED, "add_lo": REQUIRED,
                  "add_hi": REQUIRED}


def _conv_rq_add_infer(ts: list[TensorType], a: dict[str, Any]) -> list[TensorType]:
    return [TensorType(a["add_dtype"], _rq_infer("q.conv")(ts[:-1], a)[0].shape)]


@_reg("q.conv_rq_add", Group.CONTRACTION, _conv_rq_add_infer, (5, 7),
      {**_CONV_ATTRS, **_RQ_ATTRS, **_ADD_RES_ATTRS})
def q_conv_rq_add(*ins: np.ndarray, **a: Any) -> np.ndarray:
    """c = q.conv_rq(x, w[, bias], mult, shift[, rq_bias]) {conv and rq attrs};
    y = q.clamp(q.add(c, r) {add_*}) {add_lo, add_hi}, or q.add(r, c) when res_a
    (inputs: q.conv_rq's, then the residual r, of y's shape)."""
    c = q_conv_rq(*ins[:-1], **{k: a[k] for k in (*_CONV_ATTRS, *_RQ_ATTRS)})
    x0, x1 = (ins[-1], c) if a["res_a"] else (c, ins[-1])
    s = q_add(x0, x1, a_zp=a["add_a_zp"], b_zp=a["add_b_zp"], a_mult=a["add_a_mult"],
              b_mult=a["add_b_mult"], shift=a["add_shift"], zp=a["add_zp"],
              dtype=a["add_dtype"])
    return q_clamp(s, lo=a["add_lo"], hi=a["add_hi"])


# ---------------------------------------------------------------- sampling (generation)

SPLITMIX_GAMMA = 0x9E3779B97F4A7C15
SPLITMIX_M1 = 0xBF58476D1CE4E5B9
SPLITMIX_M2 = 0x94D049BB133111EB


def splitmix64(seed: object, counter: int) -> np.ndarray:
    """The counter-th output (counter = 0, 1, ...) of a SplitMix64 stream keyed by ``seed``::

        z = seed + (counter + 1) * 0x9E3779B97F4A7C15          (mod 2^64)
        z = (z ^ srl(z, 30)) * 0xBF58476D1CE4E5B9
        z = (z ^ srl(z, 27)) * 0x94D049BB133111EB
        r = z ^ srl(z, 31)

    Stateless (a pure function of seed and counter), so any step of a generation can be
    replayed alone."""
    z = P.add(W(seed), P.i64((counter + 1) * SPLITMIX_GAMMA))
    z = P.mul(P.xor(z, P.srl(z, 30)), P.i64(SPLITMIX_M1))
    z = P.mul(P.xor(z, P.srl(z, 27)), P.i64(SPLITMIX_M2))
    return P.xor(z, P.srl(z, 31))


def _sample_infer(ts: list[TensorType], a: dict[str, Any]) -> list[TensorType]:
    return [TensorType("i64", ts[0].shape[:-1])]


@_reg("q.sample", Group.NONLINEAR, _sample_infer, (3, 3),
      {"lo": REQUIRED, "step_bits": REQUIRED, "top_k": 0, "counter": REQUIRED})
def q_sample(x: np.ndarray, table: np.ndarray, seed: np.ndarray, *, lo: int, step_bits: int,
             top_k: int, counter: int) -> np.ndarray:
    """Draw an index along the last axis of codes ``x`` (one draw per row), i64.

    With V = the row length and K = top_k (0 or >= V: K = V)::

        m = max_v x_v
        K = V: t = -2^63 (every v is kept); else
        t = 2^63 - 1;  repeat K times:             # t := the K-th largest x (with repeats)
            c = #{v : x_v >= t};  n = max{x_v : x_v < t} (-2^63 if none)
            t = c < K ? n : t
        r = K - #{v : x_v > t}                     # how many x_v == t to keep, first first
        keep_v = x_v > t  or  (x_v == t and #{u < v : x_u == t} < r)
        w_v = keep_v ? lut_interp(x_v - m, table, lo, step_bits) : 0
        S = sum_v w_v                              (> 0: the first maximum is kept)
        R = mod(srl(splitmix64(seed, counter), 1), S)
        y = min{v : w_0 + ... + w_v > R}

    ``table`` holds exp(d * scale / temperature) at the knots d <= 0 (the temperature is
    folded into it); ``seed`` is a one-element i64 input of the program (every row of a
    batch uses the same draw R)."""
    xs = W(x)
    V = xs.shape[-1]
    K = V if top_k <= 0 or top_k >= V else int(top_k)
    rows = xs.reshape(-1, V)
    u = P.srl(splitmix64(W(seed).reshape(-1)[0], counter), 1)
    out = np.zeros(rows.shape[0], np.int64)
    for j, row in enumerate(rows):
        m = row.max()
        t = np.int64(P.INT64_MIN)  # K = V: every v is kept (the rounds would end at min x)
        if K < V:
            t = np.int64(P.INT64_MAX)
            for _ in range(K):
                c = int(np.count_nonzero(row >= t))
                below = row[row < t]
                n = below.max() if below.size else np.int64(P.INT64_MIN)
                t = n if c < K else t
        eq = row == t
        r = K - int(np.count_nonzero(row > t))
        keep = (row > t) | (eq & (np.cumsum(eq) - eq < r))
        w = np.where(keep, lut_interp(row - m, table, lo, step_bits), 0).astype(np.int64)
        acc = np.cumsum(w, dtype=np.int64)
        s = acc[-1]
        R = u - P.mul(P.div(u, s), s)
        out[j] = int(np.argmax(acc > R))
    return out.reshape(xs.shape[:-1])


MOVEMENT_OK = frozenset(
    n for n, d in OPS.items() if d.group is Group.MOVEMENT and not n.startswith("q."))


def is_int_op(op: str) -> bool:
    """True for ops allowed in an integer graph: the q.* ops and the IR's movement ops."""
    return op in INT_OPS or op in MOVEMENT_OK


def log2_floor(x: float) -> int:
    return math.floor(math.log2(x))


__all__ = ["INT_OPS", "INT_DTYPES", "MOVEMENT_OK", "is_int_op", "exact_contract", "lut_interp",
           "split_rq_inputs", "splitmix64"]
