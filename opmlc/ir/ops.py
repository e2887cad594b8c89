"""The op registry: one entry per IR op, in one place.

Each :class:`OpDef` holds the op's group, its attribute schema (name -> default,
``REQUIRED`` if none), its input arity, its shape/type inference and its float
reference semantics (numpy).  Passes ask about groups, not names::

    ELEMENTWISE  pointwise, broadcasting, exact in fixed point up to rounding
                 (add, mul, relu, clip, where, cast, batch_norm, ...)
    NONLINEAR    needs an approximation in fixed point: transcendental pointwise
                 ops (exp, tanh, erf, sqrt, ...) and normalisations along an axis
                 (softmax, layer_norm, lrn)
    REDUCTION    reduce_* over axes, argmax/argmin, windowed pools
    MOVEMENT     data movement, no arithmetic (reshape, transpose, slice, gather, ...)
    CONTRACTION  sums of products (matmul, conv, einsum)

IR attributes are canonical and static: axes are non-negative, shape-like
operands that ONNX passes as tensors (Reshape's shape, Slice's starts, ...) are
attributes resolved by the frontend, and every attribute is present (defaults
filled by :func:`canonical_attrs`).
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from opmlc.ir.graph import DTYPES, TensorType, dtype_name


class Group(enum.Enum):
    ELEMENTWISE = "elementwise"
    NONLINEAR = "nonlinear"
    REDUCTION = "reduction"
    MOVEMENT = "movement"
    CONTRACTION = "contraction"


REQUIRED = object()  # attribute default marker: the attribute must be given

Infer = Callable[[list[TensorType], dict[str, Any]], list[TensorType]]
Ref = Callable[..., Any]


@dataclass(frozen=True)
class OpDef:
    """Everything about one IR op.

    ``arity`` = (min, max) inputs (max None = variadic); ``pointwise``: output
    element i depends only on input elements at i (after broadcasting);
    ``ref(*arrays, **attrs)`` returns one array or a tuple (multi-output ops);
    ``num_outputs(attrs)`` says how many.
    """

    name: str
    group: Group
    attrs: dict[str, Any]
    arity: tuple[int, int | None]
    infer: Infer
    ref: Ref
    pointwise: bool = False
    num_outputs: Callable[[dict[str, Any]], int] = lambda attrs: 1


OPS: dict[str, OpDef] = {}


def register(
    name: str,
    group: Group,
    infer: Infer,
    arity: tuple[int, int | None] = (1, 1),
    attrs: dict[str, Any] | None = None,
    pointwise: bool = False,
    num_outputs: Callable[[dict[str, Any]], int] | None = None,
) -> Callable[[Ref], Ref]:
    """Decorator: register ``fn`` as the float reference of op ``name``."""

    def deco(fn: Ref) -> Ref:
        assert name not in OPS, f"op {name} registered twice"
        OPS[name] = OpDef(
            name, group, dict(attrs or {}), arity, infer, fn, pointwise,
            num_outputs or (lambda a: 1),
        )
        return fn

    return deco


def ops_in_group(group: Group) -> frozenset[str]:
    """Names of the registered ops of ``group``."""
    return frozenset(n for n, d in OPS.items() if d.group is group)


def canonical_attrs(op: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """``attrs`` with defaults filled in; raises KeyError/ValueError on unknown/missing."""
    schema = OPS[op].attrs
    unknown = set(attrs) - set(schema)
    if unknown:
        raise ValueError(f"op {op}: unknown attributes {sorted(unknown)}")
    out = {}
    for k, default in schema.items():
        if k in attrs:
            out[k] = attrs[k]
        elif default is REQUIRED:
            raise ValueError(f"op {op}: missing attribute {k!r}")
        else:
            out[k] = default
    return out


def infer_types(op: str, in_types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    """Output types of ``op`` applied to ``in_types`` (attrs canonical)."""
    return OPS[op].infer(in_types, attrs)


def run_ref(op: str, arrays: Sequence[np.ndarray], attrs: dict[str, Any]) -> list[np.ndarray]:
    """Float reference: the outputs of ``op`` on ``arrays`` as a list."""
    out = OPS[op].ref(*arrays, **attrs)
    return list(out) if isinstance(out, tuple) else [out]


# ---------------------------------------------------------------- inference helpers


def _broadcast(ts: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    """y: dtype of first input, shape = numpy broadcast of all input shapes."""
    return [TensorType(ts[0].dtype, np.broadcast_shapes(*(t.shape for t in ts)))]


def _broadcast_bool(ts: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    return [TensorType("bool", np.broadcast_shapes(*(t.shape for t in ts)))]


def _same(ts: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    return [ts[0]]


def _zeros_view(t: TensorType) -> np.ndarray:
    """A zero-strided all-zeros array of type ``t`` (no allocation)."""
    return np.broadcast_to(np.zeros((), t.np_dtype), t.shape)


def _by_eval(op: str) -> Infer:
    """Infer by running the reference on zero views (for cheap data-movement ops)."""

    def infer(ts: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
        outs = run_ref(op, [_zeros_view(t) for t in ts], attrs)
        return [TensorType.of(np.asarray(o)) for o in outs]

    return infer


def _int_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer division truncating toward zero (C semantics, as ONNX Div)."""
    q = np.abs(a) // np.where(b == 0, 1, np.abs(b))
    return np.where((a < 0) != (b < 0), -q, q).astype(np.result_type(a, b))


# ---------------------------------------------------------------- elementwise

_BINARY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "min": np.minimum,
    "max": np.maximum,
}
for _name, _fn in _BINARY.items():
    register(_name, Group.ELEMENTWISE, _broadcast, (2, 2), pointwise=True)(
        lambda a, b, _fn=_fn: _fn(a, b)
    )


@register("div", Group.ELEMENTWISE, _broadcast, (2, 2), pointwise=True)
def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """y = a / b (ints: truncated toward zero)."""
    if a.dtype.kind in "iu":
        return _int_div(a, b)
    return a / b


@register("mod", Group.ELEMENTWISE, _broadcast, (2, 2), {"fmod": 0}, pointwise=True)
def _mod(a: np.ndarray, b: np.ndarray, fmod: int) -> np.ndarray:
    """fmod=1: y = a - b*trunc(a/b) (sign of a); fmod=0: sign of b (integers)."""
    return np.fmod(a, b) if fmod else np.mod(a, b)


_COMPARE = {
    "equal": np.equal,
    "less": np.less,
    "less_or_equal": np.less_equal,
    "greater": np.greater,
    "greater_or_equal": np.greater_equal,
    "and": np.logical_and,
    "or": np.logical_or,
    "xor": np.logical_xor,
}
for _name, _fn in _COMPARE.items():
    register(_name, Group.ELEMENTWISE, _broadcast_bool, (2, 2), pointwise=True)(
        lambda a, b, _fn=_fn: _fn(a, b)
    )


def _where_infer(ts: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    return [TensorType(ts[1].dtype, np.broadcast_shapes(*(t.shape for t in ts)))]


@register("where", Group.ELEMENTWISE, _where_infer, (3, 3), pointwise=True)
def _where(c: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """y = c ? x : y."""
    return np.where(c, x, y)


@register("not", Group.ELEMENTWISE, _same, pointwise=True)
def _not(x: np.ndarray) -> np.ndarray:
    return np.logical_not(x)


_UNARY_EXACT: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "neg": np.negative,
    "abs": np.abs,
    "relu": lambda x: np.maximum(x, np.zeros((), x.dtype)),
    "floor": np.floor,
    "ceil": np.ceil,
    "round": np.round,  # round half to even, as ONNX Round
    "sign": np.sign,
    "identity": lambda x: x.copy(),
}
for _name, _fn in _UNARY_EXACT.items():
    register(_name, Group.ELEMENTWISE, _same, pointwise=True)(lambda x, _fn=_fn: _fn(x))


@register("leaky_relu", Group.ELEMENTWISE, _same, attrs={"alpha": 0.01}, pointwise=True)
def _leaky_relu(x: np.ndarray, alpha: float) -> np.ndarray:
    """y = x if x >= 0 else alpha * x."""
    return np.where(x >= 0, x, x * x.dtype.type(alpha))


@register("prelu", Group.ELEMENTWISE, _broadcast, (2, 2), pointwise=True)
def _prelu(x: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """y = x if x >= 0 else slope * x (slope broadcast to x)."""
    return np.where(x >= 0, x, x * slope).astype(x.dtype)


@register("clip", Group.ELEMENTWISE, _same, attrs={"min": -math.inf, "max": math.inf},
          pointwise=True)
def _clip(x: np.ndarray, min: float, max: float) -> np.ndarray:
    """y = min(max(x, min), max); bounds converted to x's dtype."""
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        lo = info.min if min == -math.inf else int(min)
        hi = info.max if max == math.inf else int(max)
        return np.minimum(np.maximum(x, lo), hi).astype(x.dtype)
    return np.minimum(np.maximum(x, x.dtype.type(min)), x.dtype.type(max))


@register("cast", Group.ELEMENTWISE, lambda ts, a: [TensorType(a["to"], ts[0].shape)],
          attrs={"to": REQUIRED}, pointwise=True)
def _cast(x: np.ndarray, to: str) -> np.ndarray:
    """y = x converted to dtype ``to`` (floats to ints truncate toward zero)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return x.astype(DTYPES[to])


@register("batch_norm", Group.ELEMENTWISE, _same, (5, 5), {"epsilon": 1e-5})
def _batch_norm(x, scale, bias, mean, var, epsilon: float) -> np.ndarray:
    """y = (x - mean[c]) / sqrt(var[c] + epsilon) * scale[c] + bias[c], c = axis 1."""
    shp = (-1,) + (1,) * (x.ndim - 2)
    inv = (scale / np.sqrt(var + var.dtype.type(epsilon))).reshape(shp)
    return ((x - mean.reshape(shp)) * inv + bias.reshape(shp)).astype(x.dtype)


def _qparam_shape(x: np.ndarray, p: np.ndarray, axis: int) -> np.ndarray:
    """Per-axis quantisation parameter reshaped to broadcast along ``axis`` of x."""
    if p.ndim == 0 or (p.size == 1 and x.ndim <= axis):  # one value: per tensor
        return p.reshape(())
    shp = [1] * x.ndim
    shp[axis] = -1
    return p.reshape(shp)


@register("quantize_linear", Group.ELEMENTWISE,
          lambda ts, a: [TensorType(ts[2].dtype, ts[0].shape)], (3, 3), {"axis": 1})
def _quantize_linear(x, scale, zero_point, axis: int) -> np.ndarray:
    """y = saturate(round_half_even(x / scale) + zero_point) in zero_point's dtype."""
    s = _qparam_shape(x, scale, axis)
    z = _qparam_shape(x, zero_point, axis).astype(np.int64)
    q = np.round(x.astype(np.float32) / s.astype(np.float32)).astype(np.int64) + z
    info = np.iinfo(zero_point.dtype)
    return np.clip(q, info.min, info.max).astype(zero_point.dtype)


@register("dequantize_linear", Group.ELEMENTWISE,
          lambda ts, a: [TensorType(ts[1].dtype, ts[0].shape)], (3, 3), {"axis": 1})
def _dequantize_linear(x, scale, zero_point, axis: int) -> np.ndarray:
    """y = (x - zero_point) * scale, in scale's dtype."""
    s = _qparam_shape(x, scale, axis)
    z = _qparam_shape(x, zero_point, axis).astype(np.int64)
    return ((x.astype(np.int64) - z).astype(s.dtype) * s).astype(scale.dtype)


@register("hard_sigmoid", Group.ELEMENTWISE, _same, attrs={"alpha": 0.2, "beta": 0.5},
          pointwise=True)
def _hard_sigmoid(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """y = clamp(alpha * x + beta, 0, 1)."""
    t = x.dtype.type
    return np.clip(x * t(alpha) + t(beta), t(0), t(1))


# ---------------------------------------------------------------- nonlinear pointwise


def _erf(x: np.ndarray) -> np.ndarray:
    """erf elementwise via math.erf (float64, exact to the last bit of libm)."""
    return np.vectorize(math.erf, otypes=[np.float64])(x).astype(x.dtype)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """y = 1 / (1 + exp(-x)), evaluated stably for both signs."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


_UNARY_NONLINEAR: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "exp": np.exp,
    "log": np.log,
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "erf": _erf,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "asin": np.arcsin,
    "acos": np.arccos,
    "atan": np.arctan,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "asinh": np.arcsinh,
    "acosh": np.arccosh,
    "atanh": np.arctanh,
    "sqrt": np.sqrt,
    "reciprocal": np.reciprocal,
    "softplus": lambda x: np.logaddexp(np.zeros((), x.dtype), x),
    "softsign": lambda x: x / (1 + np.abs(x)),
    "hard_swish": lambda x: x * np.clip(x / 6 + x.dtype.type(0.5), 0, 1).astype(x.dtype),
    "mish": lambda x: x * np.tanh(np.logaddexp(np.zeros((), x.dtype), x)),
}
for _name, _fn in _UNARY_NONLINEAR.items():
    register(_name, Group.NONLINEAR, _same, pointwise=True)(
        lambda x, _fn=_fn: np.asarray(_fn(x)).astype(x.dtype, copy=False)
    )


@register("pow", Group.NONLINEAR, _broadcast, (2, 2), pointwise=True)
def _pow(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """z = x ** y in x's dtype."""
    if x.dtype.kind in "iu":
        return np.power(x.astype(np.int64), y.astype(np.int64)).astype(x.dtype)
    return np.power(x, y.astype(x.dtype)).astype(x.dtype)


@register("elu", Group.NONLINEAR, _same, attrs={"alpha": 1.0}, pointwise=True)
def _elu(x: np.ndarray, alpha: float) -> np.ndarray:
    """y = x if x > 0 else alpha * (exp(x) - 1)."""
    return np.where(x > 0, x, x.dtype.type(alpha) * np.expm1(np.minimum(x, 0))).astype(x.dtype)


@register("selu", Group.NONLINEAR, _same,
          attrs={"alpha": 1.6732632423543772, "gamma": 1.0507009873554805}, pointwise=True)
def _selu(x: np.ndarray, alpha: float, gamma: float) -> np.ndarray:
    """y = gamma * (x if x > 0 else alpha * (exp(x) - 1))."""
    t = x.dtype.type
    return (t(gamma) * np.where(x > 0, x, t(alpha) * np.expm1(np.minimum(x, 0)))).astype(x.dtype)


@register("gelu", Group.NONLINEAR, _same, attrs={"approximate": "none"}, pointwise=True)
def _gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    """none: y = x/2 (1 + erf(x/sqrt 2)); tanh: y = x/2 (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)))."""
    x64 = x.astype(np.float64)
    if approximate == "tanh":
        y = 0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64**3)))
    else:
        y = 0.5 * x64 * (1 + _erf(x64 / math.sqrt(2)))
    return y.astype(x.dtype)


# ---------------------------------------------------------------- nonlinear along an axis


def _masked_infer(ts: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    """y: the type of x; an optional keep mask must broadcast to x's shape."""
    if len(ts) > 1 and np.broadcast_shapes(ts[0].shape, ts[1].shape) != ts[0].shape:
        raise ValueError(f"keep mask {ts[1]} does not broadcast to {ts[0]}")
    return [ts[0]]


@register("softmax", Group.NONLINEAR, _masked_infer, (1, 2), attrs={"axis": REQUIRED})
def _softmax(x: np.ndarray, keep: np.ndarray | None = None, *, axis: int) -> np.ndarray:
    """y = exp(x - max_axis x) / sum_axis exp(x - max_axis x).

    With ``keep`` (broadcast to x): masked positions (keep == 0) are exactly 0 and take no
    part in the max or the sum; a row with every position masked is all 0.
    """
    if keep is None:
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        return (e / np.sum(e, axis=axis, keepdims=True)).astype(x.dtype)
    k = np.broadcast_to(np.asarray(keep) != 0, x.shape)
    m = np.max(np.where(k, x, -np.inf), axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    with np.errstate(invalid="ignore", over="ignore"):
        e = np.where(k, np.exp(np.where(k, x - m, 0)), 0)
        s = np.sum(e, axis=axis, keepdims=True)
        return np.where(s > 0, e / np.where(s > 0, s, 1), 0).astype(x.dtype)


@register("log_softmax", Group.NONLINEAR, _same, attrs={"axis": REQUIRED})
def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """y = x - max - log(sum_axis exp(x - max))."""
    d = x - np.max(x, axis=axis, keepdims=True)
    return (d - np.log(np.sum(np.exp(d), axis=axis, keepdims=True))).astype(x.dtype)


@register("layer_norm", Group.NONLINEAR, _same, (3, 3), {"axis": REQUIRED, "epsilon": 1e-5})
def _layer_norm(x, scale, bias, axis: int, epsilon: float) -> np.ndarray:
    """y = (x - mean) / sqrt(var + epsilon) * scale + bias, statistics over axes axis..rank-1."""
    axes = tuple(range(axis, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    d = x - mean
    var = (d * d).mean(axis=axes, keepdims=True)
    return (d / np.sqrt(var + x.dtype.type(epsilon)) * scale + bias).astype(x.dtype)


@register("rms_norm", Group.NONLINEAR, _same, (2, 2), {"axis": REQUIRED, "epsilon": 1e-5})
def _rms_norm(x, scale, axis: int, epsilon: float) -> np.ndarray:
    """y = x / sqrt(mean(x^2) + epsilon) * scale, mean over axes axis..rank-1."""
    axes = tuple(range(axis, x.ndim))
    ms = (x * x).mean(axis=axes, keepdims=True)
    return (x / np.sqrt(ms + x.dtype.type(epsilon)) * scale).astype(x.dtype)


@register("lrn", Group.NONLINEAR, _same,
          attrs={"size": REQUIRED, "alpha": 1e-4, "beta": 0.75, "bias": 1.0})
def _lrn(x, size: int, alpha: float, beta: float, bias: float) -> np.ndarray:
    """y[c] = x[c] / (bias + alpha/size * sum_{c' in [c-(size-1)//2, c+size//2]} x[c']^2)^beta."""
    sq = np.square(x)
    lo, hi = (size - 1) // 2, size // 2
    pad = [(0, 0)] * x.ndim
    pad[1] = (lo, hi)
    sqp = np.pad(sq, pad)
    acc = np.zeros_like(x)
    for k in range(size):  # loop over the window (size ~5), not over elements
        acc += sqp[:, k:k + x.shape[1]]
    t = x.dtype.type
    return (x / (t(bias) + t(alpha) / t(size) * acc) ** t(beta)).astype(x.dtype)


# ---------------------------------------------------------------- reductions


def _reduce_infer(ts: list[TensorType], a: dict[str, Any]) -> list[TensorType]:
    shape = [
        1 if i in a["axes"] else d
        for i, d in enumerate(ts[0].shape)
        if a["keepdims"] or i not in a["axes"]
    ]
    return [TensorType(ts[0].dtype, tuple(shape))]


_REDUCE: dict[str, Callable[..., np.ndarray]] = {
    "reduce_sum": lambda x, ax, kd: np.sum(x, axis=ax, keepdims=kd),
    "reduce_mean": lambda x, ax, kd: np.mean(x, axis=ax, keepdims=kd),
    "reduce_max": lambda x, ax, kd: np.max(x, axis=ax, keepdims=kd, initial=_lowest(x)),
    "reduce_min": lambda x, ax, kd: np.min(x, axis=ax, keepdims=kd, initial=_highest(x)),
    "reduce_prod": lambda x, ax, kd: np.prod(x, axis=ax, keepdims=kd),
    "reduce_l1": lambda x, ax, kd: np.sum(np.abs(x), axis=ax, keepdims=kd),
    "reduce_l2": lambda x, ax, kd: np.sqrt(np.sum(np.square(x), axis=ax, keepdims=kd)),
    "reduce_sum_square": lambda x, ax, kd: np.sum(np.square(x), axis=ax, keepdims=kd),
    "reduce_log_sum": lambda x, ax, kd: np.log(np.sum(x, axis=ax, keepdims=kd)),
    "reduce_log_sum_exp": lambda x, ax, kd: _logsumexp(x, ax, kd),
}


def _lowest(x: np.ndarray) -> Any:
    return -np.inf if x.dtype.kind == "f" else (np.iinfo(x.dtype).min if x.dtype.kind in "iu"
                                                else False)


def _highest(x: np.ndarray) -> Any:
    return np.inf if x.dtype.kind == "f" else (np.iinfo(x.dtype).max if x.dtype.kind in "iu"
                                               else True)


def _logsumexp(x: np.ndarray, ax: tuple[int, ...], kd: bool) -> np.ndarray:
    if x.size == 0:
        return np.log(np.sum(np.exp(x), axis=ax, keepdims=kd))
    m = np.max(x, axis=ax, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    s = np.log(np.sum(np.exp(x - m), axis=ax, keepdims=True)) + m
    return s if kd else np.squeeze(s, axis=ax)


for _name, _fn in _REDUCE.items():
    register(_name, Group.REDUCTION, _reduce_infer,
             attrs={"axes": REQUIRED, "keepdims": 1})(
        lambda x, axes, keepdims, _fn=_fn: np.asarray(
            _fn(x, tuple(axes), bool(keepdims))).astype(x.dtype, copy=False)
    )


def _arg_infer(ts: list[TensorType], a: dict[str, Any]) -> list[TensorType]:
    (t,) = _reduce_infer(ts, {"axes": [a["axis"]], "keepdims": a["keepdims"]})
    return [TensorType("i64", t.shape)]


def _arg(fn: Callable[..., np.ndarray], x, axis: int, keepdims: int,
         select_last_index: int) -> np.ndarray:
    if select_last_index:
        flipped = np.flip(x, axis)
        idx = x.shape[axis] - 1 - fn(flipped, axis=axis, keepdims=True)
    else:
        idx = fn(x, axis=axis, keepdims=True)
    idx = idx.astype(np.int64)
    return idx if keepdims else np.squeeze(idx, axis=axis)


_ARG_ATTRS = {"axis": REQUIRED, "keepdims": 1, "select_last_index": 0}
register("argmax", Group.REDUCTION, _arg_infer, attrs=_ARG_ATTRS)(
    lambda x, **a: _arg(np.argmax, x, **a))
register("argmin", Group.REDUCTION, _arg_infer, attrs=_ARG_ATTRS)(
    lambda x, **a: _arg(np.argmin, x, **a))


# ---------------------------------------------------------------- windows (pool, conv)


def _window_out(n: int, k: int, s: int, d: int, pb: int, pe: int, ceil_mode: int) -> int:
    """Output length of a sliding window; ceil_mode drops a last window starting in the end pad."""
    span = n + pb + pe - d * (k - 1) - 1
    if not ceil_mode:
        return span // s + 1
    out = -(-span // s) + 1
    if (out - 1) * s >= n + pb:
        out -= 1
    return out


def _pool_geometry(shape: Sequence[int], a: dict[str, Any]) -> list[int]:
    nd = len(a["kernel_shape"])
    pads = a["pads"]
    return [
        _window_out(shape[2 + i], a["kernel_shape"][i], a["strides"][i], a["dilations"][i],
                    pads[i], pads[i + nd], a.get("ceil_mode", 0))
        for i in range(nd)
    ]


def _windows(xp: np.ndarray, out: Sequence[int], k: Sequence[int], s: Sequence[int],
             d: Sequence[int]) -> np.ndarray:
    """View of windows: shape (N, C, *out, *k), element = xp[n, c, o*s + j*d] (no copy)."""
    nd = len(k)
    st = xp.strides
    shape = xp.shape[:2] + tuple(out) + tuple(k)
    strides = st[:2] + tuple(st[2 + i] * s[i] for i in range(nd)) + tuple(
        st[2 + i] * d[i] for i in range(nd))
    return np.lib.stride_tricks.as_strided(xp, shape, strides, writeable=False)


def _pad_for_windows(x: np.ndarray, out: Sequence[int], a: dict[str, Any], value: float
                     ) -> np.ndarray:
    """Pad spatial dims by pads, plus extra at the end so every window fits (ceil_mode)."""
    nd = len(a["kernel_shape"])
    widths = [(0, 0), (0, 0)]
    for i in range(nd):
        need = (out[i] - 1) * a["strides"][i] + a["dilations"][i] * (a["kernel_shape"][i] - 1) + 1
        pb = a["pads"][i]
        pe = max(need - x.shape[2 + i] - pb, 0)
        widths.append((pb, pe))
    return np.pad(x, widths, constant_values=value)


def _pool_infer(ts: list[TensorType], a: dict[str, Any]) -> list[TensorType]:
    t = ts[0]
    return [TensorType(t.dtype, t.shape[:2] + tuple(_pool_geometry(t.shape, a)))]


_POOL_ATTRS = {"kernel_shape": REQUIRED, "strides": REQUIRED, "pads": REQUIRED,
               "dilations": REQUIRED, "ceil_mode": 0}


def empty_window(n_out: int, h: int, k: int, s: int, d: int, pad: int) -> int | None:
    """The first of ``n_out`` window positions along an axis of length ``h`` (kernel k,
    stride s, dilation d, padding ``pad`` before) with no tap o s - pad + j d inside
    [0, h), or None: every window holds a position of the input."""
    for o in range(n_out):
        if not any(0 <= o * s - pad + j * d < h for j in range(k)):
            return o
    return None


def _max_pool_infer(ts: list[TensorType], a: dict[str, Any]) -> list[TensorType]:
    """_pool_infer, refusing a window that lies wholly in the padding: its max is of
    nothing (onnxruntime refuses pads that reach past the kernel the same way)."""
    out = _pool_infer(ts, a)
    nd = len(a["kernel_shape"])
    for i in range(nd):
        h, k, s, d, pad = (ts[0].shape[2 + i], a["kernel_shape"][i], a["strides"][i],
                           a["dilations"][i], a["pads"][i])
        o = empty_window(out[0].shape[2 + i], h, k, s, d, pad)
        if o is not None:
            raise ValueError(
                f"max_pool: output {o} along spatial axis {i} has a window wholly in "
                f"the padding (input {h}, kernel {k}, stride {s}, dilation {d}, pads "
                f"{list(a['pads'])}); give pads smaller than the kernel")
    return out


@register("max_pool", Group.REDUCTION, _max_pool_infer, attrs=_POOL_ATTRS)
def _max_pool(x: np.ndarray, **a: Any) -> np.ndarray:
    """y[n,c,o] = max_j x[n, c, o*s + j*d - pad_begin] over in-range positions."""
    out = _pool_geometry(x.shape, a)
    low = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    w = _windows(_pad_for_windows(x, out, a, low), out, a["kernel_shape"], a["strides"],
                 a["dilations"])
    nd = len(out)
    return w.max(axis=tuple(range(-nd, 0))).astype(x.dtype)


@register("average_pool", Group.REDUCTION, _pool_infer,
          attrs={**_POOL_ATTRS, "count_include_pad": 0})
def _average_pool(x: np.ndarray, count_include_pad: int, **a: Any) -> np.ndarray:
    """y = sum of window / count; count includes explicit pads iff count_include_pad."""
    out = _pool_geometry(x.shape, a)
    nd = len(out)
    axes = tuple(range(-nd, 0))
    k, s, d = a["kernel_shape"], a["strides"], a["dilations"]
    total = _windows(_pad_for_windows(x, out, a, 0), out, k, s, d).sum(axis=axes)
    # count: ones over the input (or input + explicit pads), zero in the ceil-mode extra pad
    ones = np.ones((1, 1) + x.shape[2:], x.dtype)
    if count_include_pad:
        pads = a["pads"]
        ones = np.pad(ones, [(0, 0), (0, 0)] + [(pads[i], pads[i + nd]) for i in range(nd)],
                      constant_values=1)
        a = {**a, "pads": [0] * (2 * nd)}
    count = _windows(_pad_for_windows(ones, out, a, 0), out, k, s, d).sum(axis=axes)
    return (total / count).astype(x.dtype)


def _conv_infer(ts: list[TensorType], a: dict[str, Any]) -> list[TensorType]:
    x, w = ts[0], ts[1]
    geo = _pool_geometry(x.shape, {**a, "kernel_shape": list(w.shape[2:])})
    return [TensorType(x.dtype, (x.shape[0], w.shape[0]) + tuple(geo))]


@register("conv", Group.CONTRACTION, _conv_infer, (2, 3),
          {"strides": REQUIRED, "pads": REQUIRED, "dilations": REQUIRED, "group": 1})
def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, **a: Any) -> np.ndarray:
    """y[n,m,o] = b[m] + sum_{c,j} x[n, g*C/G + c, o*s + j*d - pad] * w[m, c, j], g = m // (M/G)."""
    k = list(w.shape[2:])
    a = {**a, "kernel_shape": k}
    out = _pool_geometry(x.shape, a)
    win = _windows(_pad_for_windows(x, out, a, 0), out, k, a["strides"], a["dilations"])
    g, nd = a["group"], len(k)
    n, c = x.shape[:2]
    m = w.shape[0]
    if g == 1:
        # contract (C, *k): BLAS matmul over the window view
        y = np.tensordot(win, w, axes=([1] + list(range(2 + nd, 2 + 2 * nd)),
                                       list(range(1, 2 + nd))))
        y = np.moveaxis(y, -1, 1)
    elif c == g and m == g:
        # depthwise: loop over kernel taps (few), vectorised over pixels
        y = np.zeros((n, m) + tuple(out), np.result_type(x, w))
        wf = w.reshape(m, -1)
        for t, idx in enumerate(np.ndindex(*k)):
            y += win[(...,) + idx] * wf[:, t].reshape((1, m) + (1,) * nd)
    else:
        cg, mg = c // g, m // g
        parts = []
        for gi in range(g):
            wi = win[:, gi * cg:(gi + 1) * cg]
            wg = w[gi * mg:(gi + 1) * mg]
            yi = np.tensordot(wi, wg, axes=([1] + list(range(2 + nd, 2 + 2 * nd)),
                                            list(range(1, 2 + nd))))
            parts.append(np.moveaxis(yi, -1, 1))
        y = np.concatenate(parts, axis=1)
    if b is not None:
        y = y + b.reshape((1, m) + (1,) * nd)
    return np.ascontiguousarray(y, dtype=x.dtype)


# ---------------------------------------------------------------- contraction


def _matmul_infer(ts: list[TensorType], a: dict[str, Any]) -> list[TensorType]:
    x, w = ts[0].shape, ts[1].shape
    xs, ws = (x if len(x) > 1 else (1,) + x), (w if len(w) > 1 else w + (1,))
    batch = np.broadcast_shapes(xs[:-2], ws[:-2])
    if xs[-1] != ws[-2]:
        raise ValueError(f"matmul: inner dims differ: {x} @ {w}")
    shape = tuple(batch) + (xs[-2], ws[-1])
    if len(x) == 1:
        shape = shape[:-2] + shape[-1:]
    if len(w) == 1:
        shape = shape[:-1]
    return [TensorType(ts[0].dtype, shape)]


@register("matmul", Group.CONTRACTION, _matmul_infer, (2, 2))
def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """y[..., i, j] = sum_k a[..., i, k] * b[..., k, j] (numpy matmul semantics)."""
    return np.matmul(a, b)


def _einsum_infer(ts: list[TensorType], a: dict[str, Any]) -> list[TensorType]:
    # size-1 stand-ins give the output rank and broadcast dims cheaply; then fill real sizes
    eq = a["equation"].replace(" ", "")
    lhs, _, rhs = eq.partition("->")
    terms = lhs.split(",")
    sizes: dict[str, int] = {}
    ell: tuple[int, ...] = ()
    for term, t in zip(terms, ts, strict=True):
        n_ell = t.rank - len(term.replace("...", ""))
        pre, _, post = term.partition("...")
        for ch, dim in zip(pre, t.shape, strict=False):
            sizes[ch] = max(sizes.get(ch, 1), dim)
        for ch, dim in zip(post, t.shape[len(pre) + n_ell:], strict=False):
            sizes[ch] = max(sizes.get(ch, 1), dim)
        if "..." in term:
            ell = np.broadcast_shapes(ell, t.shape[len(pre):len(pre) + n_ell])
    if not rhs and "->" not in eq:
        letters = "".join(c for c in lhs if c.isalpha())
        rhs = ("..." if "..." in lhs else "") + "".join(
            sorted(c for c in set(letters) if letters.count(c) == 1))
    pre, _, post = rhs.partition("...")
    shape = [sizes[c] for c in pre] + (list(ell) if "..." in rhs else []) + [sizes[c] for c in post]
    return [TensorType(ts[0].dtype, tuple(shape))]


@register("einsum", Group.CONTRACTION, _einsum_infer, (1, None), {"equation": REQUIRED})
def _einsum(*xs: np.ndarray, equation: str) -> np.ndarray:
    """y = numpy einsum(equation, *xs)."""
    return np.asarray(np.einsum(equation, *xs, optimize=len(xs) > 2)).astype(xs[0].dtype)


# ---------------------------------------------------------------- data movement


def _movement(name: str, arity: tuple[int, int | None] = (1, 1),
              attrs: dict[str, Any] | None = None,
              num_outputs: Callable[[dict[str, Any]], int] | None = None
              ) -> Callable[[Ref], Ref]:
    return register(name, Group.MOVEMENT, _by_eval(name), arity, attrs, num_outputs=num_outputs)


@register("reshape", Group.MOVEMENT,
          lambda ts, a: [TensorType(ts[0].dtype, tuple(a["shape"]))], attrs={"shape": REQUIRED})
def _reshape(x: np.ndarray, shape: list[int]) -> np.ndarray:
    """y = x viewed with static shape ``shape`` (same element count, C order)."""
    return x.reshape(shape)


@register("expand", Group.MOVEMENT,
          lambda ts, a: [TensorType(ts[0].dtype, tuple(a["shape"]))], attrs={"shape": REQUIRED})
def _expand(x: np.ndarray, shape: list[int]) -> np.ndarray:
    """y = x broadcast to ``shape``."""
    return np.broadcast_to(x, shape).copy()


@register("transpose", Group.MOVEMENT,
          lambda ts, a: [TensorType(ts[0].dtype, tuple(ts[0].shape[p] for p in a["perm"]))],
          attrs={"perm": REQUIRED})
def _transpose(x: np.ndarray, perm: list[int]) -> np.ndarray:
    """y[i_perm[0], ...] = x[i_0, ...]: output axis k is input axis perm[k]."""
    return np.transpose(x, perm)


@_movement("slice", attrs={"starts": REQUIRED, "ends": REQUIRED, "steps": REQUIRED})
def _slice(x: np.ndarray, starts: list[int], ends: list[int], steps: list[int]) -> np.ndarray:
    """y = x[s0:e0:k0, s1:e1:k1, ...]: one clamped triple per axis (end -1 = before index 0)."""
    return x[tuple(slice(s, e if e >= 0 else None, k)
                   for s, e, k in zip(starts, ends, steps, strict=True))]


@register("concat", Group.MOVEMENT,
          lambda ts, a: [TensorType(ts[0].dtype, ts[0].shape[:a["axis"]] + (
              sum(t.shape[a["axis"]] for t in ts),) + ts[0].shape[a["axis"] + 1:])],
          (1, None), {"axis": REQUIRED})
def _concat(*xs: np.ndarray, axis: int) -> np.ndarray:
    """y = concatenation of xs along ``axis``."""
    return np.concatenate(xs, axis=axis)


def _split_infer(ts: list[TensorType], a: dict[str, Any]) -> list[TensorType]:
    t, ax = ts[0], a["axis"]
    return [TensorType(t.dtype, t.shape[:ax] + (s,) + t.shape[ax + 1:]) for s in a["sizes"]]


@register("split", Group.MOVEMENT, _split_infer, attrs={"axis": REQUIRED, "sizes": REQUIRED},
          num_outputs=lambda a: len(a["sizes"]))
def _split(x: np.ndarray, axis: int, sizes: list[int]) -> tuple[np.ndarray, ...]:
    """y_i = x[..., o_i : o_i + sizes[i], ...] along ``axis``, o_i = sum(sizes[:i])."""
    cuts = np.cumsum(sizes)[:-1]
    return tuple(np.split(x, cuts, axis=axis))


def clamp_index(idx: np.ndarray, dim: int) -> np.ndarray:
    """g = clamp(i + (i < 0 ? dim : 0), 0, dim - 1): the defined meaning of an index out of
    range (spec/QUANT.md, "Movement ops"), shared bit for bit by every engine's lowering."""
    i = np.asarray(idx).astype(np.int64)
    return np.clip(np.where(i < 0, i + dim, i), 0, max(dim - 1, 0))


@_movement("gather", (2, 2), {"axis": REQUIRED})
def _gather(x: np.ndarray, idx: np.ndarray, axis: int) -> np.ndarray:
    """y[a.., j.., b..] = x[a.., clamp_index(idx[j..], dim), b..] along ``axis``."""
    return np.take(x, clamp_index(idx, x.shape[axis]), axis=axis)


@_movement("gather_elements", (2, 2), {"axis": REQUIRED})
def _gather_elements(x: np.ndarray, idx: np.ndarray, axis: int) -> np.ndarray:
    """y[i] = x[i with axis-coordinate replaced by clamp_index(idx[i], dim)]."""
    return np.take_along_axis(x, clamp_index(idx, x.shape[axis]), axis=axis)


@_movement("pad", attrs={"pads": REQUIRED, "mode": "constant", "value": 0.0})
def _pad(x: np.ndarray, pads: list[int], mode: str, value: float) -> np.ndarray:
    """y = x padded by pads[i] before / pads[i+rank] after axis i (constant, reflect or edge)."""
    r = x.ndim
    neg = [(-min(pads[i], 0), -min(pads[i + r], 0)) for i in range(r)]
    x = x[tuple(slice(b, x.shape[i] - e) for i, (b, e) in enumerate(neg))]  # negative pads crop
    widths = [(max(pads[i], 0), max(pads[i + r], 0)) for i in range(r)]
    if mode == "constant":
        return np.pad(x, widths, constant_values=np.asarray(value).astype(x.dtype))
    return np.pad(x, widths, mode={"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode])


@_movement("tile", attrs={"repeats": REQUIRED})
def _tile(x: np.ndarray, repeats: list[int]) -> np.ndarray:
    """y = x repeated repeats[i] times along axis i."""
    return np.tile(x, repeats)


@_movement("trilu", attrs={"upper": 1, "k": 0})
def _trilu(x: np.ndarray, upper: int, k: int) -> np.ndarray:
    """upper: keep x[..., i, j] where j - i >= k; lower: where j - i <= k; else 0."""
    return np.triu(x, k) if upper else np.tril(x, k)


@_movement("depth_to_space", attrs={"blocksize": REQUIRED, "mode": "DCR"})
def _depth_to_space(x: np.ndarray, blocksize: int, mode: str) -> np.ndarray:
    """Rearrange (N, C*b*b, H, W) -> (N, C, H*b, W*b); mode DCR or CRD as in ONNX."""
    n, c, h, w = x.shape
    b = blocksize
    if mode == "DCR":
        t = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        t = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    return t.reshape(n, c // (b * b), h * b, w * b)


@_movement("space_to_depth", attrs={"blocksize": REQUIRED, "mode": "DCR"})
def _space_to_depth(x: np.ndarray, blocksize: int, mode: str) -> np.ndarray:
    """Rearrange (N, C, H*b, W*b) -> (N, C*b*b, H, W), inverse of depth_to_space ``mode``."""
    n, c, h, w = x.shape
    b = blocksize
    perm = (0, 3, 5, 1, 2, 4) if mode == "DCR" else (0, 1, 3, 5, 2, 4)
    t = x.reshape(n, c, h // b, b, w // b, b).transpose(perm)
    return t.reshape(n, c * b * b, h // b, w // b)


# ---------------------------------------------------------------- resize, top-k, scatter


def _resize_coeffs(mode: str, ratio: float, scale: float, a: float, nearest_mode: str,
                   antialias: int) -> np.ndarray:
    """The interpolation weights of one output position (ONNX Resize's kernels)."""
    if mode == "nearest":
        if float(ratio).is_integer():
            return np.array([0.0, 1.0])
        up = {"round_prefer_floor": ratio > 0.5, "round_prefer_ceil": ratio >= 0.5,
              "floor": False, "ceil": True}[nearest_mode]
        return np.array([0.0, 1.0]) if up else np.array([1.0, 0.0])
    if mode == "linear":
        if not antialias:
            return np.array([1 - ratio, ratio])
        s = min(scale, 1.0)
        start = int(np.floor(-1 / s) + 1)
        c = np.clip(1 - np.abs((np.arange(start, 2 - start) - ratio) * s), 0, 1)
        return c / c.sum()
    if not antialias:  # cubic
        r1, r0 = ratio + 1, 1 - ratio
        return np.array([((a * r1 - 5 * a) * r1 + 8 * a) * r1 - 4 * a,
                         ((a + 2) * ratio - (a + 3)) * ratio * ratio + 1,
                         ((a + 2) * r0 - (a + 3)) * r0 * r0 + 1,
                         ((a * (r0 + 1) - 5 * a) * (r0 + 1) + 8 * a) * (r0 + 1) - 4 * a])
    s = min(scale, 1.0)

    def k(x: float) -> float:
        x = abs(x)
        if x <= 1:
            return (a + 2) * x**3 - (a + 3) * x**2 + 1
        return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a if x < 2 else 0.0

    i0 = int(np.floor(-2 / s) + 1)
    c = np.array([k(s * (i - ratio)) for i in range(i0, 2 - i0)])
    return c / c.sum()


def resize_axis_taps(n_in: int, n_out: int, axis: int, a: dict[str, Any]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """One axis of a resize: (idx [n_out, T] in 0..n_in-1, weights [n_out, T] float64,
    extrapolated [n_out] bool), or None when the axis is the identity (ONNX's rule: scale 1,
    same size, trivial roi).  Nearest modes keep the single tap of weight 1."""
    scale = float(a["scales"][axis])
    r = len(a["scales"])
    roi = a["roi"]
    lo, hi = (float(roi[axis]), float(roi[axis + r])) if roi else (0.0, 1.0)
    if math.isclose(scale, 1.0) and n_out == n_in and (
            not roi or (math.isclose(lo, 0.0) and math.isclose(hi, 1.0))):
        return None
    coord, out_w = a["coordinate_transformation_mode"], scale * n_in
    y = np.arange(n_out, dtype=np.float64)
    extrap = np.zeros(n_out, np.bool_)
    if coord == "align_corners":
        x = np.zeros(n_out) if out_w == 1 else y * (n_in - 1) / (out_w - 1)
    elif coord == "asymmetric":
        x = y / scale
    elif coord == "tf_crop_and_resize":
        x = (np.full(n_out, (hi - lo) * (n_in - 1) / 2) if out_w == 1
             else y * (hi - lo) * (n_in - 1) / (out_w - 1)) + lo * (n_in - 1)
        extrap = (x < 0) | (x > n_in - 1)
    elif coord == "pytorch_half_pixel":
        x = np.full(n_out, -0.5) if out_w == 1 else (y + 0.5) / scale - 0.5
    elif coord == "half_pixel":
        x = (y + 0.5) / scale - 0.5
    elif coord == "half_pixel_symmetric":
        x = n_in / 2 * (1 - n_out / out_w) + (y + 0.5) / scale - 0.5
    else:
        raise ValueError(f"resize: unknown coordinate_transformation_mode {coord!r}")
    xi = np.floor(x).astype(np.int64)
    ratios = np.where(x == xi, 1.0, x - xi)
    coeffs = np.stack([_resize_coeffs(a["mode"], float(t), scale, a["cubic_coeff_a"],
                                      a["nearest_mode"], a["antialias"]) for t in ratios]
                      ) if n_out else np.zeros((0, 2))
    n = coeffs.shape[1]
    pad = -(-n // 2)
    xp = x + pad
    p = np.floor(xp).astype(np.int64)
    frac = xp - p
    if n % 2 == 0:
        off = np.where(frac == 0, -(n // 2), -(n // 2) + 1)
    else:
        off = np.where(frac <= 0.5, -((n - 1) // 2), -((n - 1) // 2) + 1)
    idx = (p + off)[:, None] + np.arange(n)[None, :] - pad
    if a["exclude_outside"]:
        coeffs = np.where((idx < 0) | (idx >= n_in), 0.0, coeffs)
        tot = coeffs.sum(axis=-1, keepdims=True)
        coeffs = coeffs / np.where(tot == 0, 1.0, tot)
    idx = np.clip(idx, 0, n_in - 1)
    if a["mode"] == "nearest":  # one tap: the neighbour of weight 1
        pick = np.argmax(coeffs, axis=1)[:, None] if n_out else np.zeros((0, 1), np.int64)
        idx = np.take_along_axis(idx, pick, 1)
        coeffs = np.ones(idx.shape)
    return idx, coeffs, extrap


def _resize_infer(ts: list[TensorType], a: dict[str, Any]) -> list[TensorType]:
    return [TensorType(ts[0].dtype, tuple(a["sizes"]))]


_RESIZE_ATTRS = {"sizes": REQUIRED, "scales": REQUIRED, "roi": [], "mode": "nearest",
                 "coordinate_transformation_mode": "half_pixel",
                 "nearest_mode": "round_prefer_floor", "cubic_coeff_a": -0.75,
                 "exclude_outside": 0, "extrapolation_value": 0.0, "antialias": 0}


@register("resize", Group.NONLINEAR, _resize_infer, attrs=_RESIZE_ATTRS)
def _resize(x: np.ndarray, **a: Any) -> np.ndarray:
    """ONNX Resize with static output ``sizes`` and per-axis ``scales`` (all axes): per
    axis y[o] = sum_t w[o, t] * x[idx[o, t]] (:func:`resize_axis_taps`), axis after axis in
    float64; extrapolation_value where any axis is extrapolated; cast back to x's dtype."""
    res = x.astype(np.float64)
    ext = np.zeros(tuple(a["sizes"]), np.bool_)
    for ax in range(x.ndim):
        taps = resize_axis_taps(x.shape[ax], a["sizes"][ax], ax, a)
        if taps is None:
            continue
        idx, w, e = taps
        g = np.take(res, idx, axis=ax)
        wshape = (1,) * ax + w.shape + (1,) * (x.ndim - ax - 1)
        res = (g * w.reshape(wshape)).sum(axis=ax + 1)
        ext |= e.reshape((1,) * ax + (-1,) + (1,) * (x.ndim - ax - 1))
    res = np.where(ext, a["extrapolation_value"], res)
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        res = np.clip(np.rint(res), info.min, info.max)
    return res.astype(x.dtype)


def _topk_infer(ts: list[TensorType], a: dict[str, Any]) -> list[TensorType]:
    shape = list(ts[0].shape)
    shape[a["axis"]] = a["k"]
    return [TensorType(ts[0].dtype, tuple(shape)), TensorType("i64", tuple(shape))]


def topk_order(x: np.ndarray, axis: int, k: int, largest: int) -> np.ndarray:
    """Indices of the k largest (smallest) along ``axis``; equal values: lower index first
    (a stable sort of the value ranks, exact for every dtype)."""
    _, rank = np.unique(x, return_inverse=True)
    key = rank.reshape(x.shape).astype(np.int64)
    order = np.argsort(-key if largest else key, axis=axis, kind="stable")
    return np.take(order, np.arange(k), axis=axis)


@register("topk", Group.REDUCTION, _topk_infer,
          attrs={"axis": REQUIRED, "k": REQUIRED, "largest": 1}, num_outputs=lambda a: 2)
def _topk(x: np.ndarray, axis: int, k: int, largest: int) -> tuple[np.ndarray, np.ndarray]:
    """(values, indices) of the k largest (largest=1) or smallest elements along ``axis``,
    sorted; equal values: the lower index first (ONNX TopK)."""
    idx = topk_order(x, axis, k, largest).astype(np.int64)
    return np.take_along_axis(x, idx, axis=axis), idx


def _scatter_apply(y: np.ndarray, pos: np.ndarray, upd: np.ndarray, reduction: str) -> None:
    """y.flat[pos[j]] = combine(y.flat[pos[j]], upd[j]) for j in order (later writes win)."""
    flat = y.reshape(-1)
    fn = {"none": lambda o, v: v, "add": lambda o, v: o + v, "mul": lambda o, v: o * v,
          "max": max, "min": min}[reduction]
    wrap = np.iinfo(y.dtype) if y.dtype.kind in "iu" else None
    for p, u in zip(pos.reshape(-1).tolist(), upd.reshape(-1).tolist(), strict=True):
        v = fn(flat[p].item(), u)
        if wrap is not None:  # integers wrap in the element type (the kernels' stores)
            v = (int(v) - wrap.min) % (1 << wrap.bits) + wrap.min
        flat[p] = v


def scatter_elements_positions(shape: tuple[int, ...], idx: np.ndarray, axis: int
                               ) -> np.ndarray:
    """Flat positions in data of ScatterElements' updates (indices clamped as gather's)."""
    g = clamp_index(idx, shape[axis])
    coords = list(np.indices(idx.shape))
    coords[axis] = g
    return np.ravel_multi_index(tuple(coords), shape) if idx.size else np.zeros(idx.shape,
                                                                               np.int64)


def scatter_nd_positions(shape: tuple[int, ...], idx: np.ndarray) -> np.ndarray:
    """Flat element offsets of each ScatterND slice start (indices clamped as gather's);
    shape idx.shape[:-1]."""
    k = idx.shape[-1]
    st = np.asarray([math.prod(shape[d + 1:]) for d in range(k)], np.int64)
    g = np.stack([clamp_index(idx[..., d], shape[d]) for d in range(k)], -1) if k else idx
    return (g.astype(np.int64) * st).sum(-1)


@_movement("scatter_elements", (3, 3), {"axis": REQUIRED, "reduction": "none"})
def _scatter_elements(x: np.ndarray, idx: np.ndarray, upd: np.ndarray, axis: int,
                      reduction: str) -> np.ndarray:
    """y = x; then for each j in row-major order: y[j with the axis coordinate replaced by
    clamp_index(idx[j])] = combine(that, upd[j]) (none: upd[j]; add, mul, max, min)."""
    y = np.array(x, copy=True)
    _scatter_apply(y, scatter_elements_positions(x.shape, idx, axis), upd, reduction)
    return y


@_movement("scatter_nd", (3, 3), {"reduction": "none"})
def _scatter_nd(x: np.ndarray, idx: np.ndarray, upd: np.ndarray, reduction: str) -> np.ndarray:
    """y = x; then for each index tuple j in row-major order: the slice
    y[clamp(idx[j, 0]), ..., clamp(idx[j, k-1]), ...] = combine(it, upd[j])."""
    y = np.array(x, copy=True)
    k = idx.shape[-1]
    inner = math.prod(x.shape[k:])
    pos = scatter_nd_positions(x.shape, idx)[..., None] + np.arange(inner)
    _scatter_apply(y, pos, upd, reduction)
    return y


# ---------------------------------------------------------------- integer bit ops, scans, tests
# (float engine only: the quantizer has no rule for them and says so)


def _bitwise(name: str, fn: Callable[..., np.ndarray], arity: int = 2) -> None:
    register(name, Group.ELEMENTWISE, _broadcast if arity == 2 else _same, (arity, arity))(
        lambda *xs: fn(*xs).astype(xs[0].dtype))


_bitwise("bitwise_and", np.bitwise_and)
_bitwise("bitwise_or", np.bitwise_or)
_bitwise("bitwise_xor", np.bitwise_xor)
_bitwise("bitwise_not", np.invert, 1)


@register("bit_shift", Group.ELEMENTWISE, _broadcast, (2, 2), {"direction": REQUIRED})
def _bit_shift(x: np.ndarray, n: np.ndarray, direction: str) -> np.ndarray:
    """y = x << n (LEFT, on the bits) or x >> n (RIGHT, arithmetic for signed types); a
    shift outside [0, width) gives 0 (-1 for a negative x shifted right)."""
    x, n = np.broadcast_arrays(x, n)
    bits = x.dtype.itemsize * 8
    bad = (n < 0) | (n >= bits)
    k = np.where(bad, 0, n).astype(np.uint64)
    u = np.dtype(f"u{x.dtype.itemsize}")
    if direction == "LEFT":
        y = np.left_shift(x.view(u) if x.dtype.kind == "i" else x, k.astype(u)).view(x.dtype)
        return np.where(bad, 0, y).astype(x.dtype)
    y = np.right_shift(x, k.astype(x.dtype))
    return np.where(bad, np.where(x < 0, -1, 0), y).astype(x.dtype)


@register("cumprod", Group.REDUCTION, _same, attrs={"axis": REQUIRED, "exclusive": 0,
                                                    "reverse": 0})
def _cumprod(x: np.ndarray, axis: int, exclusive: int, reverse: int) -> np.ndarray:
    """y[i] = prod of x[j] for j <= i along axis (j < i: exclusive; j >= i: reverse)."""
    v = np.flip(x, axis) if reverse else x
    y = np.cumprod(v, axis=axis, dtype=x.dtype)
    if exclusive:
        y = np.concatenate([np.ones_like(np.take(y, [0], axis)),
                            np.take(y, np.arange(x.shape[axis] - 1), axis)], axis)
    return np.flip(y, axis) if reverse else y


def _bool_same(ts: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    return [TensorType("bool", ts[0].shape)]


@register("is_inf", Group.ELEMENTWISE, _bool_same,
          attrs={"detect_positive": 1, "detect_negative": 1})
def _is_inf(x: np.ndarray, detect_positive: int, detect_negative: int) -> np.ndarray:
    return (np.isposinf(x) & bool(detect_positive)) | (np.isneginf(x) & bool(detect_negative))


@register("is_nan", Group.ELEMENTWISE, _bool_same)
def _is_nan(x: np.ndarray) -> np.ndarray:
    return np.isnan(x)


def _dft_infer(ts: list[TensorType], a: dict[str, Any]) -> list[TensorType]:
    shape = list(ts[0].shape)
    n = a["length"]
    irfft = a["inverse"] and a["onesided"]
    shape[a["axis"]] = n // 2 + 1 if a["onesided"] and not irfft else n
    shape[-1] = 1 if irfft else 2
    return [TensorType(ts[0].dtype, tuple(shape))]


@register("dft", Group.CONTRACTION, _dft_infer,
          attrs={"axis": REQUIRED, "length": REQUIRED, "inverse": 0, "onesided": 0})
def _dft(x: np.ndarray, axis: int, length: int, inverse: int, onesided: int) -> np.ndarray:
    """The discrete Fourier transform of x (last axis: 1 real or 2 real/imaginary) along
    ``axis`` over ``length`` points (zero-padded or cut), as ONNX DFT; inverse + onesided
    is the inverse real transform (one real output)."""
    c = x[..., 0] + 1j * x[..., 1] if x.shape[-1] == 2 else x[..., 0]  # x's precision
    if inverse and onesided:
        return np.fft.irfft(c, n=length, axis=axis)[..., None].astype(x.dtype)
    y = (np.fft.ifft if inverse else np.fft.fft)(c, n=length, axis=axis)
    if onesided:
        y = np.take(y, np.arange(length // 2 + 1), axis=axis)
    return np.stack([y.real, y.imag], -1).astype(x.dtype)


def _reflect(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflect v by the near border until it lies in [lo, hi] (GridSample's rule)."""
    rng = hi - lo
    below, above = v < lo, v > hi
    dx = np.where(below, lo - v, np.where(above, v - hi, 0.0))
    k = np.floor(dx / rng) if rng > 0 else np.zeros_like(dx)
    r = dx - k * rng
    even = (k % 2) == 0
    out = np.where(below, np.where(even, lo + r, hi - r), v)
    return np.where(above, np.where(even, hi - r, lo + r), out)


def _grid_sample_infer(ts: list[TensorType], a: dict[str, Any]) -> list[TensorType]:
    return [TensorType(ts[0].dtype, ts[0].shape[:2] + ts[1].shape[1:-1])]


@register("grid_sample", Group.NONLINEAR, _grid_sample_infer, (2, 2),
          {"mode": "linear", "padding_mode": "zeros", "align_corners": 0})
def _grid_sample(x: np.ndarray, grid: np.ndarray, mode: str, padding_mode: str,
                 align_corners: int) -> np.ndarray:
    """y[n, c, o] = interpolation (nearest, linear, cubic with a = -0.75) of x[n, c] at the
    point grid[n, o] (normalised to [-1, 1], last axis x, y, z = the spatial axes
    reversed), outside points by padding_mode (zeros, border, reflection): ONNX GridSample,
    separable over the spatial axes."""
    dims = x.shape[2:]
    r = len(dims)
    taps = []
    for d in range(r):
        n_ = dims[d]
        g = grid[..., r - 1 - d].astype(np.float32)
        v = ((g + 1) / 2 * (n_ - 1) if align_corners else ((g + 1) * n_ - 1) / 2).astype(
            np.float32).astype(np.float64)
        if mode == "nearest":
            v = np.rint(v)
        lo, hi = (0.0, n_ - 1.0) if align_corners else (-0.5, n_ - 0.5)
        out = (v < lo) | (v > hi)
        if padding_mode == "border":
            v = np.where(out, np.clip(v, 0, n_ - 1), v)
        elif padding_mode == "reflection":
            v = np.where(out, _reflect(v, lo, hi), v)

        def at(i: np.ndarray, n_: int = n_, lo: float = lo, hi: float = hi
               ) -> tuple[np.ndarray, np.ndarray]:
            if padding_mode == "zeros":
                return (i >= 0) & (i < n_), np.clip(i, 0, n_ - 1)
            if padding_mode == "border":
                return np.ones(i.shape, np.bool_), np.clip(i, 0, n_ - 1)
            j = np.trunc(_reflect(i.astype(np.float64), lo, hi)).astype(np.int64)
            return np.ones(i.shape, np.bool_), np.clip(j, 0, n_ - 1)

        if mode == "nearest":
            axis_taps = [(np.trunc(v).astype(np.int64), np.ones(v.shape))]
        else:
            x0 = np.floor(v)
            t = np.abs(v - x0)
            x0 = x0.astype(np.int64)
            if mode == "linear":
                axis_taps = [(x0, 1 - t), (x0 + 1, t)]
            else:
                a = -0.75
                cs = [((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
                      ((a + 2) * t - (a + 3)) * t * t + 1,
                      ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1,
                      ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a]
                axis_taps = [(x0 + k - 1, cs[k]) for k in range(4)]
        taps.append([(*at(i), w) for i, w in axis_taps])
    nidx = np.arange(x.shape[0]).reshape((-1,) + (1,) * (grid.ndim - 2))
    y = np.zeros(grid.shape[:-1] + (x.shape[1],))
    for combo in itertools.product(*taps):
        ok = np.logical_and.reduce([c[0] for c in combo])
        w = np.prod([c[2] for c in combo], axis=0)
        vals = np.moveaxis(x, 1, -1)[(nidx,) + tuple(c[1] for c in combo)]
        y += np.where(ok, w, 0.0)[..., None] * vals
    return np.moveaxis(y, -1, 1).astype(x.dtype)


def _sig(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _rnn_pass(kind: str, xs: np.ndarray, w: np.ndarray, r: np.ndarray, b: np.ndarray,
              h: np.ndarray, c: np.ndarray, p: np.ndarray, lbr: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One direction over the sequence xs (T, B, I): the ONNX RNN / GRU / LSTM cell with
    the default activations."""
    wb, rb = np.split(b, 2)
    ys = []
    for x in xs:
        if kind == "rnn":
            h = np.tanh(x @ w.T + h @ r.T + wb + rb)
        elif kind == "gru":
            wz, wr, wh = np.split(w, 3)
            rz, rr, rh = np.split(r, 3)
            bz, br, bh = np.split(wb, 3)
            qz, qr, qh = np.split(rb, 3)
            z = _sig(x @ wz.T + h @ rz.T + bz + qz)
            rg = _sig(x @ wr.T + h @ rr.T + br + qr)
            if lbr:
                hh = np.tanh(x @ wh.T + rg * (h @ rh.T + qh) + bh)
            else:
                hh = np.tanh(x @ wh.T + (rg * h) @ rh.T + bh + qh)
            h = (1 - z) * hh + z * h
        else:
            pi, po, pf = np.split(p, 3)
            i, o, f, g = np.split(x @ w.T + h @ r.T + wb + rb, 4, -1)
            i = _sig(i + pi * c)
            f = _sig(f + pf * c)
            c = f * c + i * np.tanh(g)
            o = _sig(o + po * c)
            h = o * np.tanh(c)
        ys.append(h)
    return np.stack(ys), h, c


def _rnn_infer(ts: list[TensorType], a: dict[str, Any]) -> list[TensorType]:
    x, w = ts[0].shape, ts[1].shape
    nd, hs = w[0], a["hidden_size"]
    t, b = (x[1], x[0]) if a["layout"] else (x[0], x[1])
    y = (b, t, nd, hs) if a["layout"] else (t, nd, b, hs)
    yh = (b, nd, hs) if a["layout"] else (nd, b, hs)
    n = 3 if a["kind"] == "lstm" else 2
    return [TensorType(ts[0].dtype, y)] + [TensorType(ts[0].dtype, yh)] * (n - 1)


@register("rnn", Group.NONLINEAR, _rnn_infer, (7, 7),
          {"kind": REQUIRED, "hidden_size": REQUIRED, "direction": "forward", "layout": 0,
           "linear_before_reset": 0},
          num_outputs=lambda a: 3 if a["kind"] == "lstm" else 2)
def _rnn(x: np.ndarray, w: np.ndarray, r: np.ndarray, b: np.ndarray, h0: np.ndarray,
         c0: np.ndarray, p: np.ndarray, kind: str, hidden_size: int, direction: str,
         layout: int, linear_before_reset: int) -> tuple[np.ndarray, ...]:
    """ONNX RNN / GRU / LSTM (``kind``) with the default activations over the whole
    sequence: (Y, Y_h[, Y_c]); b, h0, c0, p are given (zeros where the model has none)."""
    dt = x.dtype
    x, h0, c0 = (x.astype(np.float64), h0.astype(np.float64), c0.astype(np.float64))
    if layout:
        x, h0, c0 = np.swapaxes(x, 0, 1), np.swapaxes(h0, 0, 1), np.swapaxes(c0, 0, 1)
    outs = []
    for d in range(w.shape[0]):
        back = direction == "reverse" or d == 1
        xs = np.flip(x, 0) if back else x
        y, h, c = _rnn_pass(kind, xs, w[d].astype(np.float64), r[d].astype(np.float64),
                            b[d].astype(np.float64), h0[d], c0[d], p[d].astype(np.float64),
                            linear_before_reset)
        outs.append((np.flip(y, 0) if back else y, h, c))
    y = np.stack([o[0] for o in outs], 1)
    yh = np.stack([o[1] for o in outs], 0)
    yc = np.stack([o[2] for o in outs], 0)
    if layout:
        y, yh, yc = np.transpose(y, (2, 0, 1, 3)), np.swapaxes(yh, 0, 1), np.swapaxes(yc, 0, 1)
    res = (y.astype(dt), yh.astype(dt))
    return res + (yc.astype(dt),) if kind == "lstm" else res


@register("shrink", Group.ELEMENTWISE, _same, attrs={"bias": 0.0, "lambd": 0.5}, pointwise=True)
def _shrink(x: np.ndarray, bias: float, lambd: float) -> np.ndarray:
    """y = x + bias if x < -lambd, x - bias if x > lambd, else 0."""
    return np.where(x < -lambd, x + bias, np.where(x > lambd, x - bias, 0)).astype(x.dtype)


@register("bitcast", Group.ELEMENTWISE, lambda ts, a: [TensorType(a["to"], ts[0].shape)],
          attrs={"to": REQUIRED})
def _bitcast(x: np.ndarray, to: str) -> np.ndarray:
    """The same bytes read as element type ``to`` (of the same width)."""
    return np.array(x, copy=True).view(DTYPES[to]).reshape(x.shape)


@register("det", Group.NONLINEAR, lambda ts, a: [TensorType(ts[0].dtype, ts[0].shape[:-2])])
def _det(x: np.ndarray) -> np.ndarray:
    """Determinants of the trailing square matrices."""
    return np.asarray(np.linalg.det(x)).astype(x.dtype)


def _qlinear_matmul_infer(ts: list[TensorType], a: dict[str, Any]) -> list[TensorType]:
    (t,) = _matmul_infer([ts[0], ts[3]], a)
    return [TensorType(ts[7].dtype, t.shape)]


@register("qlinear_matmul", Group.CONTRACTION, _qlinear_matmul_infer, (8, 8))
def _qlinear_matmul(a, sa, za, b, sb, zb, sy, zy) -> np.ndarray:  # noqa: ANN001
    """y = sat(rint((a - za) @ (b - zb) * sa * sb / sy) + zy) (ONNX QLinearMatMul)."""
    c = np.matmul(a.astype(np.int32) - za.astype(np.int32), b.astype(np.int32)
                  - zb.astype(np.int32))
    d = c * (sa * sb / sy) + zy
    info = np.iinfo(zy.dtype)
    return np.clip(np.rint(d), info.min, info.max).astype(zy.dtype)


@register("matmul_integer", Group.CONTRACTION,
          lambda ts, a: [TensorType("i32", _matmul_infer(ts[:2], a)[0].shape)], (4, 4))
def _matmul_integer(a, b, za, zb) -> np.ndarray:  # noqa: ANN001
    """y = (a - za) @ (b - zb) in int32 (ONNX MatMulInteger)."""
    return np.matmul(a.astype(np.int32) - za.astype(np.int32),
                     b.astype(np.int32) - zb.astype(np.int32))


def _col2im_infer(ts: list[TensorType], a: dict[str, Any]) -> list[TensorType]:
    k = math.prod(a["block_shape"])
    return [TensorType(ts[0].dtype, (ts[0].shape[0], ts[0].shape[1] // k)
                       + tuple(a["image_shape"]))]


@register("col2im", Group.CONTRACTION, _col2im_infer,
          attrs={"image_shape": REQUIRED, "block_shape": REQUIRED, "dilations": REQUIRED,
                 "pads": REQUIRED, "strides": REQUIRED})
def _col2im(x: np.ndarray, image_shape: list[int], block_shape: list[int],
            dilations: list[int], pads: list[int], strides: list[int]) -> np.ndarray:
    """y[n, c, p] = sum of x[n, c * K + j, l] over the blocks j and window positions l
    with l * stride - pad_begin + j * dilation = p (ONNX Col2Im)."""
    nd = len(image_shape)
    k = math.prod(block_shape)
    n, ck, _ = x.shape
    c = ck // k
    cols = [(image_shape[i] + pads[i] + pads[i + nd] - (dilations[i] * (block_shape[i] - 1)
                                                         + 1)) // strides[i] + 1
            for i in range(nd)]
    y = np.zeros((n, c) + tuple(image_shape), np.float64)
    xs = x.reshape(n, c, k, -1).astype(np.float64)
    for j, off in enumerate(np.ndindex(*block_shape)):
        for li, lpos in enumerate(np.ndindex(*cols)):
            p = [lpos[i] * strides[i] - pads[i] + off[i] * dilations[i] for i in range(nd)]
            if all(0 <= p[i] < image_shape[i] for i in range(nd)):
                y[(slice(None), slice(None)) + tuple(p)] += xs[:, :, j, li]
    return y.astype(x.dtype)


def _max_pool_idx_infer(ts: list[TensorType], a: dict[str, Any]) -> list[TensorType]:
    (t,) = _pool_infer(ts, a)
    return [t, TensorType("i64", t.shape)]


@register("max_pool_indices", Group.REDUCTION, _max_pool_idx_infer,
          attrs={**_POOL_ATTRS, "storage_order": 0}, num_outputs=lambda a: 2)
def _max_pool_indices(x: np.ndarray, storage_order: int, **a: Any
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(max_pool(x), the flat index into x of each window's first maximum; storage_order 1
    counts the spatial axes column-major)."""
    out = _pool_geometry(x.shape, a)
    low = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    k, s, d = a["kernel_shape"], a["strides"], a["dilations"]
    nd = len(out)
    w = _windows(_pad_for_windows(x, out, a, low), out, k, s, d)
    flat = w.reshape(w.shape[:2 + nd] + (-1,))
    j = np.argmax(flat, axis=-1)
    offs = np.unravel_index(j, tuple(k))
    grid = np.indices(tuple(out))
    pos = [grid[i] * s[i] + offs[i] * d[i] - a["pads"][i] for i in range(nd)]
    sp = x.shape[2:]
    if storage_order:
        lin = sum(pos[i] * math.prod(sp[:i]) for i in range(nd))
    else:
        lin = sum(pos[i] * math.prod(sp[i + 1:]) for i in range(nd))
    base = (np.arange(x.shape[0])[:, None] * x.shape[1] + np.arange(x.shape[1])[None, :]) \
        * math.prod(sp)
    idx = base.reshape(base.shape + (1,) * nd) + lin
    return flat.max(axis=-1).astype(x.dtype), idx.astype(np.int64)


def _deform_conv_infer(ts: list[TensorType], a: dict[str, Any]) -> list[TensorType]:
    return [TensorType(ts[0].dtype, (ts[0].shape[0], ts[1].shape[0]) + ts[2].shape[2:])]


@register("deform_conv", Group.CONTRACTION, _deform_conv_infer, (5, 5),
          {"strides": REQUIRED, "pads": REQUIRED, "dilations": REQUIRED, "group": 1,
           "offset_group": 1})
def _deform_conv(x: np.ndarray, w: np.ndarray, off: np.ndarray, b: np.ndarray,
                 mask: np.ndarray, strides: list[int], pads: list[int], dilations: list[int],
                 group: int, offset_group: int) -> np.ndarray:
    """2-d deformable convolution (ONNX DeformConv): tap (i, j) of output (oh, ow) samples
    x bilinearly (zeros outside) at (oh*s - pad + i*d + dh, ow*s - pad + j*d + dw), the
    offsets per offset group, times the mask; then a grouped conv sum plus bias."""
    n, c, ih, iw = x.shape
    m, cg, kh, kw = w.shape
    oh, ow = off.shape[2:]
    og = offset_group
    off = off.reshape(n, og, kh, kw, 2, oh, ow).astype(np.float64)
    msk = mask.reshape(n, og, kh, kw, oh, ow).astype(np.float64)
    grp = np.arange(c) // (c // og)
    i = np.arange(kh).reshape(kh, 1, 1, 1)
    j = np.arange(kw).reshape(1, kw, 1, 1)
    yy = np.arange(oh).reshape(1, 1, oh, 1)
    xx = np.arange(ow).reshape(1, 1, 1, ow)
    ph = (yy * strides[0] - pads[0] + i * dilations[0])[None, None] + off[:, :, :, :, 0][:, grp]
    pw = (xx * strides[1] - pads[1] + j * dilations[1])[None, None] + off[:, :, :, :, 1][:, grp]
    h0, w0 = np.floor(ph).astype(np.int64), np.floor(pw).astype(np.int64)
    th, tw = ph - h0, pw - w0
    ni = np.arange(n).reshape(n, 1, 1, 1, 1, 1)
    ci = np.arange(c).reshape(1, c, 1, 1, 1, 1)
    val = np.zeros(ph.shape)
    xf = x.astype(np.float64)
    for dh, wh in ((0, 1 - th), (1, th)):
        for dw, ww in ((0, 1 - tw), (1, tw)):
            hh, wq = h0 + dh, w0 + dw
            ok = (hh >= 0) & (hh < ih) & (wq >= 0) & (wq < iw)
            v = xf[ni, ci, np.clip(hh, 0, ih - 1), np.clip(wq, 0, iw - 1)]
            val += np.where(ok, v, 0.0) * wh * ww
    val *= msk[:, grp]
    y = np.zeros((n, m, oh, ow))
    mg = m // group
    for g in range(group):
        vs = val[:, g * cg:(g + 1) * cg]
        y[:, g * mg:(g + 1) * mg] = np.einsum("ncijyx,mcij->nmyx", vs,
                                               w[g * mg:(g + 1) * mg].astype(np.float64))
    return (y + b.reshape(1, m, 1, 1)).astype(x.dtype)


def _roi_align_infer(ts: list[TensorType], a: dict[str, Any]) -> list[TensorType]:
    return [TensorType(ts[0].dtype, (ts[1].shape[0], ts[0].shape[1], a["output_height"],
                                     a["output_width"]))]


@register("roi_align", Group.REDUCTION, _roi_align_infer, (3, 3),
          {"output_height": 1, "output_width": 1, "sampling_ratio": 0,
           "spatial_scale": 1.0, "mode": "avg", "half_pixel": 1})
def _roi_align(x: np.ndarray, rois: np.ndarray, bidx: np.ndarray, output_height: int,
               output_width: int, sampling_ratio: int, spatial_scale: float, mode: str,
               half_pixel: int) -> np.ndarray:
    """ONNX RoiAlign: per roi and bin, the average (or max of the weighted corners) of
    bilinear samples on a grid of sampling_ratio (or ceil(bin size)) points per axis."""
    n_, c, h, w = x.shape
    oh, ow = output_height, output_width
    y = np.zeros((rois.shape[0], c, oh, ow))
    off = 0.5 if half_pixel else 0.0
    for r in range(rois.shape[0]):
        x0, y0, x1, y1 = (float(v) * spatial_scale - off for v in rois[r])
        rw, rh = x1 - x0, y1 - y0
        if not half_pixel:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / oh, rw / ow
        gh = sampling_ratio if sampling_ratio > 0 else int(np.ceil(rh / oh))
        gw = sampling_ratio if sampling_ratio > 0 else int(np.ceil(rw / ow))
        count = max(gh * gw, 1)
        img = x[int(bidx[r])].astype(np.float64).reshape(c, -1)
        for ph in range(oh):
            for pw in range(ow):
                vals = []
                for iy in range(gh):
                    yy = y0 + ph * bh + (iy + 0.5) * bh / gh
                    for ix in range(gw):
                        xx = x0 + pw * bw + (ix + 0.5) * bw / gw
                        if yy < -1.0 or yy > h or xx < -1.0 or xx > w:
                            vals.append(np.zeros((4, c)))
                            continue
                        yv, xv = max(yy, 0.0), max(xx, 0.0)
                        yl, xl = int(yv), int(xv)
                        if yl >= h - 1:
                            yl = yhi = h - 1
                            yv = yl
                        else:
                            yhi = yl + 1
                        if xl >= w - 1:
                            xl = xhi = w - 1
                            xv = xl
                        else:
                            xhi = xl + 1
                        ly, lx = yv - yl, xv - xl
                        hy, hx = 1 - ly, 1 - lx
                        vals.append(np.stack([hy * hx * img[:, yl * w + xl],
                                              hy * lx * img[:, yl * w + xhi],
                                              ly * hx * img[:, yhi * w + xl],
                                              ly * lx * img[:, yhi * w + xhi]]))
                if not vals:
                    continue
                v = np.stack(vals)  # (samples, 4, c)
                y[r, :, ph, pw] = v.sum(axis=(0, 1)) / count if mode == "avg" else \
                    v.max(axis=1).max(axis=0)
    return y.astype(x.dtype)


def _tfidf_infer(ts: list[TensorType], a: dict[str, Any]) -> list[TensorType]:
    n = max(a["ngram_indexes"]) + 1
    return [TensorType("f32", (n,) if ts[0].rank < 2 else (ts[0].shape[0], n))]


@register("tfidf", Group.REDUCTION, _tfidf_infer,
          attrs={"max_gram_length": REQUIRED, "min_gram_length": REQUIRED,
                 "max_skip_count": REQUIRED, "mode": REQUIRED, "ngram_counts": REQUIRED,
                 "ngram_indexes": REQUIRED, "pool_int64s": REQUIRED, "weights": []})
def _tfidf(x: np.ndarray, max_gram_length: int, min_gram_length: int, max_skip_count: int,
           mode: str, ngram_counts: list[int], ngram_indexes: list[int],
           pool_int64s: list[int], weights: list[float]) -> np.ndarray:
    """ONNX TfIdfVectorizer over integer rows: counts of the pool's n-grams (sizes
    min..max, items skip distance 1..max_skip_count + 1 apart; unigrams counted once),
    weighted TF / IDF / TFIDF."""
    grams: dict[tuple[int, ...], int] = {}
    gid, size = 1, 1
    for i, start in enumerate(ngram_counts):
        end = ngram_counts[i + 1] if i + 1 < len(ngram_counts) else len(pool_int64s)
        for g in range((end - start) // size):
            if min_gram_length <= size <= max_gram_length:
                grams[tuple(pool_int64s[start + g * size:start + (g + 1) * size])] = gid
            gid += 1
        size += 1
    width = max(ngram_indexes) + 1
    rows = x.reshape(1, -1) if x.ndim < 2 else x
    freq = np.zeros((rows.shape[0], width), np.int64)
    for r, row in enumerate(rows.tolist()):
        first = min_gram_length
        for k in range(1, max_skip_count + 2):
            for s0 in range(len(row)):
                if s0 + k * (first - 1) >= len(row):
                    break
                for sz in range(max(first, 1), max_gram_length + 1):
                    if s0 + k * (sz - 1) >= len(row):
                        break
                    hit = grams.get(tuple(row[s0:s0 + k * (sz - 1) + 1:k]))
                    if hit is not None:
                        freq[r, ngram_indexes[hit - 1]] += 1
            if first == 1:
                first = 2
                if first > max_gram_length:
                    break
    w = np.asarray(weights, np.float64) if weights else None
    if mode == "TF":
        y = freq.astype(np.float64)
    elif mode == "IDF":
        y = np.where(freq > 0, w if w is not None else 1.0, 0.0)
    else:
        y = freq * w if w is not None else freq.astype(np.float64)
    return y.astype(np.float32).reshape(_tfidf_infer([TensorType.of(x)], {
        "ngram_indexes": ngram_indexes})[0].shape)


def op_names() -> list[str]:
    """All registered op names, sorted."""
    return sorted(OPS)


__all__ = [
    "OPS", "OpDef", "Group", "REQUIRED", "register", "ops_in_group", "canonical_attrs",
    "infer_types", "run_ref", "op_names", "dtype_name",
]
