"""ONNX op handlers, one per (op, first opset whose semantics it serves).

``HANDLERS[op_type][since] = fn`` where ``fn(ctx, node, ins) -> list[V]``;
an ONNX node of opset ``v`` uses the handler with the largest ``since <= v``.
Versioned handlers are named for the opset they serve (``Softmax_1``,
``Softmax_13``).  Handlers lower ONNX semantics onto the canonical IR ops in
:mod:`opmlc.ir.ops` (shape operands become static attributes; Gemm becomes
matmul/add; Flatten/Squeeze/Unsqueeze become reshape; ...).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import helper

from opmlc.frontend.context import Const, Ctx, OnnxNode, V
from opmlc.ir.graph import DTYPES, dtype_name

Handler = Callable[[Ctx, OnnxNode, list[V | None]], list[V | None]]
HANDLERS: dict[str, dict[int, Handler]] = {}


def handles(op_type: str, since: int = 1) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        HANDLERS.setdefault(op_type, {})[since] = fn
        return fn

    return deco


def lookup(op_type: str, opset: int) -> Handler | None:
    """The handler serving ``op_type`` at ``opset``; for an op without one that ONNX
    defines by a function (Attention, RotaryEmbedding, ...), the function's expansion;
    None if unsupported."""
    versions = HANDLERS.get(op_type, {})
    ok = [v for v in versions if v <= opset]
    if ok:
        return versions[max(ok)]
    return _expand_function if _has_function(op_type, opset) else None


@functools.cache
def _has_function(op_type: str, opset: int) -> bool:
    return _function_proto(op_type, opset, "", None, []) is not None


def _axis(a: int, rank: int) -> int:
    return a + rank if a < 0 else a


def _ints(v: np.ndarray) -> list[int]:
    return [int(x) for x in np.asarray(v).reshape(-1)]


ONNX_DTYPES = {
    1: "f32", 2: "u8", 3: "i8", 4: "u16", 5: "i16", 6: "i32", 7: "i64", 9: "bool",
    10: "f16", 11: "f64", 12: "u32", 13: "u64",
}


def ir_dtype(ctx: Ctx, onnx_type: int) -> str:
    if onnx_type not in ONNX_DTYPES:
        name = helper.tensor_dtype_to_string(onnx_type)
        raise ctx.unsupported(f"element type {name} is not supported")
    return ONNX_DTYPES[onnx_type]


# ------------------------------------------------------------------ elementwise


def _binary(op: str) -> Handler:
    def handler(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
        return [ctx.emit(op, [ins[0], ins[1]])]

    return handler


for _onnx, _ir in [("Add", "add"), ("Sub", "sub"), ("Mul", "mul"), ("Div", "div"),
                   ("Pow", "pow"), ("Equal", "equal"), ("Less", "less"),
                   ("Greater", "greater"), ("LessOrEqual", "less_or_equal"),
                   ("GreaterOrEqual", "greater_or_equal"), ("And", "and"), ("Or", "or"),
                   ("Xor", "xor"), ("PRelu", "prelu")]:
    handles(_onnx, 7)(_binary(_ir))


@handles("Mod", 10)
def Mod_10(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    return [ctx.emit("mod", [ins[0], ins[1]], fmod=n.attrs.get("fmod", 0))]


def _variadic(op: str, mean: bool = False) -> Handler:
    """Sum/Max/Min/Mean(x1..xk) = fold of the binary op (then / k for Mean)."""

    def handler(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
        acc = ins[0]
        for x in ins[1:]:
            acc = ctx.emit(op, [acc, x])
        if mean:
            acc = ctx.emit("div", [acc, ctx.scalar(len(ins), acc)])
        return [acc]

    return handler


handles("Sum", 8)(_variadic("add"))
handles("Max", 8)(_variadic("max"))
handles("Min", 8)(_variadic("min"))
handles("Mean", 8)(_variadic("add", mean=True))

_UNARY = {
    "Relu": "relu", "Neg": "neg", "Abs": "abs", "Floor": "floor", "Ceil": "ceil",
    "Round": "round", "Sign": "sign", "Not": "not", "Exp": "exp", "Log": "log",
    "Tanh": "tanh", "Sigmoid": "sigmoid", "Erf": "erf", "Sin": "sin", "Cos": "cos",
    "Tan": "tan", "Asin": "asin", "Acos": "acos", "Atan": "atan", "Sinh": "sinh",
    "Cosh": "cosh", "Asinh": "asinh", "Acosh": "acosh", "Atanh": "atanh", "Sqrt": "sqrt",
    "Reciprocal": "reciprocal", "Softplus": "softplus", "Softsign": "softsign",
    "HardSwish": "hard_swish", "Mish": "mish",
}
# unary ops with attributes: ONNX attr names equal the IR attr names
_UNARY_ATTRS = {"LeakyRelu": "leaky_relu", "Elu": "elu", "Selu": "selu",
                "HardSigmoid": "hard_sigmoid", "Gelu": "gelu"}


def _unary(op: str) -> Handler:
    def handler(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
        return [ctx.emit(op, [ins[0]], **n.attrs)]

    return handler


for _onnx, _ir in {**_UNARY, **_UNARY_ATTRS}.items():
    handles(_onnx, 6)(_unary(_ir))


@handles("Identity", 1)
def Identity_1(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    return [ins[0]]


@handles("Dropout", 1)
def Dropout_1(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """Inference: y = x, mask = all true."""
    if len(ins) > 2 and ins[2] is not None:
        training = ctx.need_const(ins[2], "Dropout training_mode")
        ratio = ctx.need_const(ins[1], "Dropout ratio") if len(ins) > 1 and ins[1] is not None \
            else np.asarray(0.5)
        if bool(training) and float(np.asarray(ratio).reshape(-1)[0]) != 0.0:
            raise ctx.unsupported("training_mode=1 with a ratio > 0 (random masks)")
    mask = Const(np.ones(ctx.shape(ins[0]), np.bool_), ctx.base)
    return [ins[0], mask]


@handles("Cast", 6)
def Cast_6(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    to = ir_dtype(ctx, n.attrs["to"])
    if to == ctx.type(ins[0]).dtype:
        return [ins[0]]
    return [ctx.emit("cast", [ins[0]], to=to)]


@handles("CastLike", 15)
def CastLike_15(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    to = ctx.type(ins[1]).dtype
    return [ins[0] if to == ctx.type(ins[0]).dtype else ctx.emit("cast", [ins[0]], to=to)]


@handles("Clip", 6)
def Clip_6(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    return [ctx.emit("clip", [ins[0]], min=n.attrs.get("min", -3.4028234663852886e38),
                     max=n.attrs.get("max", 3.4028234663852886e38))]


@handles("Clip", 11)
def Clip_11(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """y = min(max(x, lo), hi); constant bounds become attributes, others max/min nodes."""
    x = ins[0]
    lo = ins[1] if len(ins) > 1 else None
    hi = ins[2] if len(ins) > 2 else None
    if all(b is None or isinstance(b, Const) for b in (lo, hi)):
        attrs = {}
        if lo is not None:
            attrs["min"] = float(lo.value)
        if hi is not None:
            attrs["max"] = float(hi.value)
        return [ctx.emit("clip", [x], **attrs)]
    if lo is not None:
        x = ctx.emit("max", [x, lo])
    if hi is not None:
        x = ctx.emit("min", [x, hi])
    return [x]


@handles("Where", 9)
def Where_9(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    return [ctx.emit("where", [ins[0], ins[1], ins[2]])]


@handles("BatchNormalization", 7)
def BatchNormalization_7(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """Inference form: y = (x - mean) / sqrt(var + eps) * scale + B along axis 1."""
    if n.attrs.get("spatial", 1) != 1:
        raise ctx.unsupported("only spatial BatchNormalization is supported")
    if n.attrs.get("training_mode", 0):
        return _batch_norm_training(ctx, n, ins)
    if len([o for o in n.outputs if o]) > 1:
        raise ctx.unsupported("training outputs (running mean/var) need training_mode=1")
    y = ctx.emit("batch_norm", list(ins[:5]), epsilon=n.attrs.get("epsilon", 1e-5))
    return [y]


def _batch_norm_training(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """Batch statistics over every axis but 1: y = (x - m) / sqrt(v + eps) * scale + B,
    running mean / var = input * momentum + batch * (1 - momentum) (v: population)."""
    x, scale, bias, mean, var = ins[:5]
    shape = ctx.shape(x)
    axes = [a for a in range(len(shape)) if a != 1]
    dt = ctx.type(x).np_dtype
    eps, mom = n.attrs.get("epsilon", 1e-5), n.attrs.get("momentum", 0.9)

    def c(v: float, tag: str) -> Const:
        return Const(np.asarray(v, dt), ctx.base + tag)

    ch = (shape[1],) + (1,) * (len(shape) - 2)
    m = ctx.emit("reduce_mean", [x], axes=axes, keepdims=1)
    d = ctx.emit("sub", [x, m])
    v = ctx.emit("reduce_mean", [ctx.emit("mul", [d, d])], axes=axes, keepdims=1)
    inv = ctx.emit("reciprocal", [ctx.emit("sqrt", [ctx.emit("add", [v, c(eps, ".eps")])])])
    y = ctx.emit("add", [ctx.emit("mul", [ctx.emit("mul", [d, inv]), ctx.reshape(scale, ch)]),
                         ctx.reshape(bias, ch)])
    bm, bv = ctx.reshape(m, (shape[1],)), ctx.reshape(v, (shape[1],))
    run_m = ctx.emit("add", [ctx.emit("mul", [mean, c(mom, ".mom")]),
                             ctx.emit("mul", [bm, c(1 - mom, ".mom1")])])
    run_v = ctx.emit("add", [ctx.emit("mul", [var, c(mom, ".mom")]),
                             ctx.emit("mul", [bv, c(1 - mom, ".mom1")])])
    return [y, run_m, run_v]


@handles("QuantizeLinear", 10)
def QuantizeLinear_10(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """y = saturate(round(x / scale) + zero_point); zero_point defaults to uint8 0."""
    if n.attrs.get("block_size", 0):
        raise ctx.unsupported("blocked quantization (block_size) is not supported")
    zp = ins[2] if len(ins) > 2 and ins[2] is not None else None
    if zp is None:
        dt = ir_dtype(ctx, n.attrs["output_dtype"]) if n.attrs.get("output_dtype") else "u8"
        zp = Const(np.zeros((), DTYPES[dt] if dt in ("u8", "i8", "u16", "i16") else np.uint8),
                   ctx.base)
    axis = _axis(n.attrs.get("axis", 1), len(ctx.shape(ins[0])))
    return [ctx.emit("quantize_linear", [ins[0], ins[1], zp], axis=axis)]


@handles("DequantizeLinear", 10)
def DequantizeLinear_10(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """y = (x - zero_point) * scale."""
    if n.attrs.get("block_size", 0):
        raise ctx.unsupported("blocked quantization (block_size) is not supported")
    zp = ins[2] if len(ins) > 2 and ins[2] is not None else None
    if zp is None:
        zp = Const(np.zeros((), ctx.type(ins[0]).np_dtype), ctx.base)
    axis = _axis(n.attrs.get("axis", 1), len(ctx.shape(ins[0])))
    return [ctx.emit("dequantize_linear", [ins[0], ins[1], zp], axis=axis)]


# ------------------------------------------------------------------ nonlinear along an axis


def _coerce_2d(op: str) -> Handler:
    """Opset < 13 softmax family: apply on x reshaped to (prod(:axis), prod(axis:))."""

    def handler(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
        x = ins[0]
        shape = ctx.shape(x)
        axis = _axis(n.attrs.get("axis", 1), len(shape))
        if axis == len(shape) - 1:
            return [ctx.emit(op, [x], axis=axis)]
        flat = ctx.reshape(x, (math.prod(shape[:axis]), math.prod(shape[axis:])))
        return [ctx.reshape(ctx.emit(op, [flat], axis=1), shape)]

    return handler


def _softmax_13(op: str) -> Handler:
    def handler(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
        axis = _axis(n.attrs.get("axis", -1), len(ctx.shape(ins[0])))
        return [ctx.emit(op, [ins[0]], axis=axis)]

    return handler


Softmax_1 = handles("Softmax", 1)(_coerce_2d("softmax"))
Softmax_13 = handles("Softmax", 13)(_softmax_13("softmax"))
LogSoftmax_1 = handles("LogSoftmax", 1)(_coerce_2d("log_softmax"))
LogSoftmax_13 = handles("LogSoftmax", 13)(_softmax_13("log_softmax"))


@handles("LRN", 1)
def LRN_1(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    return [ctx.emit("lrn", [ins[0]], **n.attrs)]


@handles("LayerNormalization", 17)
def LayerNormalization_17(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """y = (x - mean) / sqrt(var + eps) * scale + B over axes axis..; Mean/InvStdDev optional."""
    x, scale = ins[0], ins[1]
    rank = len(ctx.shape(x))
    axis = _axis(n.attrs.get("axis", -1), rank)
    eps = n.attrs.get("epsilon", 1e-5)
    bias = ins[2] if len(ins) > 2 and ins[2] is not None else Const(
        np.zeros(ctx.shape(scale), ctx.type(scale).np_dtype), ctx.base + ".bias")
    if len([o for o in n.outputs if o]) == 1:
        return [ctx.emit("layer_norm", [x, scale, bias], axis=axis, epsilon=eps)]
    # statistics requested too: decompose (Mean and InvStdDev keep reduced dims as 1)
    axes = list(range(axis, rank))
    mean = ctx.emit("reduce_mean", [x], axes=axes, keepdims=1)
    d = ctx.emit("sub", [x, mean])
    var = ctx.emit("reduce_mean", [ctx.emit("mul", [d, d])], axes=axes, keepdims=1)
    inv = ctx.emit("reciprocal", [ctx.emit("sqrt", [ctx.emit("add", [var, ctx.scalar(eps, x)])])])
    y = ctx.emit("add", [ctx.emit("mul", [ctx.emit("mul", [d, inv]), scale]), bias])
    return [y, mean, inv]


@handles("RMSNormalization", 23)
def RMSNormalization_23(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    axis = _axis(n.attrs.get("axis", -1), len(ctx.shape(ins[0])))
    return [ctx.emit("rms_norm", [ins[0], ins[1]], axis=axis,
                     epsilon=n.attrs.get("epsilon", 1e-5))]


@handles("InstanceNormalization", 6)
def InstanceNormalization_6(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """y = (x - mean) / sqrt(var + eps) * scale[c] + B[c], mean / var over the spatial axes
    of each (n, c): layer_norm over axes 2.. (unit gamma, zero beta), then the per-channel
    scale and bias broadcast as [C, 1, ...]."""
    x, scale, bias = ins[0], ins[1], ins[2]
    shape = ctx.shape(x)
    if len(shape) < 3:
        raise ctx.unsupported("InstanceNormalization needs an input of rank >= 3")
    dt = ctx.type(x).np_dtype
    sp = tuple(shape[2:])
    y = ctx.emit("layer_norm", [x, Const(np.ones(sp, dt), ctx.base + ".one"),
                                Const(np.zeros(sp, dt), ctx.base + ".zero")],
                 axis=2, epsilon=n.attrs.get("epsilon", 1e-5))
    ch = (shape[1],) + (1,) * len(sp)
    y = ctx.emit("mul", [y, ctx.reshape(scale, ch)])
    return [ctx.emit("add", [y, ctx.reshape(bias, ch)])]


# ------------------------------------------------------------------ contraction


@handles("MatMul", 1)
def MatMul_1(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    return [ctx.emit("matmul", [ins[0], ins[1]])]


@handles("Gemm", 7)
def Gemm_7(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """y = alpha * A' @ B' + beta * C; alpha/beta folded into constant B / C when possible."""
    a, b = ins[0], ins[1]
    c = ins[2] if len(ins) > 2 else None
    alpha, beta = n.attrs.get("alpha", 1.0), n.attrs.get("beta", 1.0)
    if n.attrs.get("transA", 0):
        a = ctx.emit("transpose", [a], perm=[1, 0])
    if n.attrs.get("transB", 0):
        b = ctx.emit("transpose", [b], perm=[1, 0])
    if alpha != 1.0 and isinstance(b, Const):
        b, alpha = ctx.emit("mul", [b, ctx.scalar(alpha, b)]), 1.0
    y = ctx.emit("matmul", [a, b])
    if alpha != 1.0:
        y = ctx.emit("mul", [y, ctx.scalar(alpha, y)])
    if c is not None and beta != 0.0:
        if beta != 1.0:
            c = ctx.emit("mul", [c, ctx.scalar(beta, c)])
        y = ctx.emit("add", [y, c])
    return [y]


@handles("Einsum", 12)
def Einsum_12(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    return [ctx.emit("einsum", list(ins), equation=n.attrs["equation"].replace(" ", ""))]


def _spatial_attrs(ctx: Ctx, n: OnnxNode, in_shape: tuple[int, ...],
                   kernel: list[int]) -> dict[str, Any]:
    """strides / dilations / explicit pads, with auto_pad resolved (SAME_*: out = ceil(in/s))."""
    nd = len(kernel)
    strides = list(n.attrs.get("strides", [1] * nd))
    dil = list(n.attrs.get("dilations", [1] * nd))
    pads = list(n.attrs.get("pads", [0] * (2 * nd)))
    auto = n.attrs.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        for i in range(nd):
            size = in_shape[2 + i]
            out = -(-size // strides[i])
            total = max((out - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1 - size, 0)
            small = total // 2
            pads[i], pads[i + nd] = ((small, total - small) if auto == "SAME_UPPER"
                                     else (total - small, small))
    elif auto == "VALID":
        pads = [0] * (2 * nd)
    return {"strides": strides, "dilations": dil, "pads": pads}


@handles("Conv", 1)
def Conv_1(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    x, w = ins[0], ins[1]
    kernel = list(ctx.shape(w)[2:])
    attrs = _spatial_attrs(ctx, n, ctx.shape(x), kernel)
    args = [x, w] + ([ins[2]] if len(ins) > 2 and ins[2] is not None else [])
    return [ctx.emit("conv", args, group=n.attrs.get("group", 1), **attrs)]


def _pool(op: str) -> Handler:
    def handler(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
        kernel = list(n.attrs["kernel_shape"])
        attrs = _spatial_attrs(ctx, n, ctx.shape(ins[0]), kernel)
        attrs.update(kernel_shape=kernel, ceil_mode=n.attrs.get("ceil_mode", 0))
        if len([o for o in n.outputs if o]) > 1:  # with Indices: float engine only
            return list(ctx.emit_n("max_pool_indices", [ins[0]], {
                **attrs, "storage_order": n.attrs.get("storage_order", 0)}))
        if op == "average_pool":
            attrs["count_include_pad"] = n.attrs.get("count_include_pad", 0)
        return [ctx.emit(op, [ins[0]], **attrs)]

    return handler


handles("MaxPool", 1)(_pool("max_pool"))
handles("AveragePool", 1)(_pool("average_pool"))


def _global_pool(op: str) -> Handler:
    def handler(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
        rank = len(ctx.shape(ins[0]))
        return [ctx.emit(op, [ins[0]], axes=list(range(2, rank)), keepdims=1)]

    return handler


handles("GlobalAveragePool", 1)(_global_pool("reduce_mean"))
handles("GlobalMaxPool", 1)(_global_pool("reduce_max"))


# ------------------------------------------------------------------ reductions

_REDUCE = {"ReduceSum": "reduce_sum", "ReduceMean": "reduce_mean", "ReduceMax": "reduce_max",
           "ReduceMin": "reduce_min", "ReduceProd": "reduce_prod", "ReduceL1": "reduce_l1",
           "ReduceL2": "reduce_l2", "ReduceSumSquare": "reduce_sum_square",
           "ReduceLogSum": "reduce_log_sum", "ReduceLogSumExp": "reduce_log_sum_exp"}


def _reduce(op: str, axes_as_input: bool) -> Handler:
    """Axes from the attribute (old opsets) or the optional 2nd input; empty = all axes,
    or identity when noop_with_empty_axes=1."""

    def handler(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
        x = ins[0]
        rank = len(ctx.shape(x))
        if axes_as_input:
            given = ins[1] if len(ins) > 1 and ins[1] is not None else None
            axes = _ints(ctx.need_const(given, "reduction axes")) if given is not None else []
        else:
            axes = list(n.attrs.get("axes", []))
        if not axes:
            if n.attrs.get("noop_with_empty_axes", 0):
                return [x]
            axes = list(range(rank))
        axes = sorted({_axis(a, rank) for a in axes})
        return [ctx.emit(op, [x], axes=axes, keepdims=n.attrs.get("keepdims", 1))]

    return handler


for _onnx, _ir in _REDUCE.items():
    handles(_onnx, 1)(_reduce(_ir, False))
    handles(_onnx, 13 if _onnx == "ReduceSum" else 18)(_reduce(_ir, True))


def _arg(op: str) -> Handler:
    def handler(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
        axis = _axis(n.attrs.get("axis", 0), len(ctx.shape(ins[0])))
        return [ctx.emit(op, [ins[0]], axis=axis, keepdims=n.attrs.get("keepdims", 1),
                         select_last_index=n.attrs.get("select_last_index", 0))]

    return handler


handles("ArgMax", 1)(_arg("argmax"))
handles("ArgMin", 1)(_arg("argmin"))


# ------------------------------------------------------------------ data movement


@handles("Reshape", 5)
def Reshape_5(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """Target shape: 0 copies the input dim (unless allowzero=1), -1 is inferred."""
    x = ins[0]
    shape = _ints(ctx.need_const(ins[1], "Reshape's shape"))
    src = ctx.shape(x)
    if not n.attrs.get("allowzero", 0):
        shape = [src[i] if d == 0 else d for i, d in enumerate(shape)]
    if -1 in shape:
        known = math.prod(d for d in shape if d != -1)
        shape[shape.index(-1)] = math.prod(src) // known if known else 0
    return [ctx.reshape(x, shape)]


@handles("Flatten", 1)
def Flatten_1(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    shape = ctx.shape(ins[0])
    axis = _axis(n.attrs.get("axis", 1), len(shape))
    return [ctx.reshape(ins[0], (math.prod(shape[:axis]), math.prod(shape[axis:])))]


def _squeeze(ctx: Ctx, x: V, axes: list[int] | None) -> V:
    shape = ctx.shape(x)
    if axes is None:
        axes = [i for i, d in enumerate(shape) if d == 1]
    axes = {_axis(a, len(shape)) for a in axes}
    return ctx.reshape(x, [d for i, d in enumerate(shape) if i not in axes])


def _unsqueeze(ctx: Ctx, x: V, axes: list[int]) -> V:
    shape = list(ctx.shape(x))
    rank = len(shape) + len(axes)
    for a in sorted(_axis(a, rank) for a in axes):
        shape.insert(a, 1)
    return ctx.reshape(x, shape)


@handles("Squeeze", 1)
def Squeeze_1(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    return [_squeeze(ctx, ins[0], n.attrs.get("axes"))]


@handles("Squeeze", 13)
def Squeeze_13(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    axes = None
    if len(ins) > 1 and ins[1] is not None:
        axes = _ints(ctx.need_const(ins[1], "Squeeze axes"))
    return [_squeeze(ctx, ins[0], axes)]


@handles("Unsqueeze", 1)
def Unsqueeze_1(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    return [_unsqueeze(ctx, ins[0], list(n.attrs["axes"]))]


@handles("Unsqueeze", 13)
def Unsqueeze_13(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    return [_unsqueeze(ctx, ins[0], _ints(ctx.need_const(ins[1], "Unsqueeze axes")))]


@handles("Transpose", 1)
def Transpose_1(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    rank = len(ctx.shape(ins[0]))
    perm = [_axis(p, rank) for p in n.attrs.get("perm", list(range(rank))[::-1])]
    if perm == list(range(rank)):
        return [ins[0]]
    return [ctx.emit("transpose", [ins[0]], perm=perm)]


@handles("Concat", 4)
def Concat_4(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    vals = [v for v in ins if v is not None]
    axis = _axis(n.attrs["axis"], len(ctx.shape(vals[0])))
    if len(vals) == 1:
        return [vals[0]]
    return [ctx.emit("concat", vals, axis=axis)]


def _split(ctx: Ctx, n: OnnxNode, x: V, sizes: list[int] | None) -> list[V | None]:
    shape = ctx.shape(x)
    axis = _axis(n.attrs.get("axis", 0), len(shape))
    dim = shape[axis]
    if sizes is None:
        k = n.attrs.get("num_outputs", len(n.outputs))
        chunk = -(-dim // k)
        sizes = [min(chunk, dim - i * chunk) for i in range(k)]
    if len(sizes) == 1:
        return [x]
    return list(ctx.emit_n("split", [x], {"axis": axis, "sizes": sizes}))


@handles("Split", 2)
def Split_2(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    return _split(ctx, n, ins[0], list(n.attrs["split"]) if "split" in n.attrs else None)


@handles("Split", 13)
def Split_13(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    sizes = None
    if len(ins) > 1 and ins[1] is not None:
        sizes = _ints(ctx.need_const(ins[1], "Split sizes"))
    return _split(ctx, n, ins[0], sizes)


def _slice(ctx: Ctx, x: V, starts: list[int], ends: list[int], axes: list[int] | None,
           steps: list[int] | None) -> V:
    """Canonical per-axis (start, end, step), clamped as ONNX Slice specifies."""
    shape = ctx.shape(x)
    rank = len(shape)
    axes = list(range(len(starts))) if axes is None else [_axis(a, rank) for a in axes]
    steps = [1] * len(starts) if steps is None else steps
    s_all, e_all, k_all = [0] * rank, list(shape), [1] * rank
    for a, s, e, k in zip(axes, starts, ends, steps, strict=True):
        d = shape[a]
        s = s + d if s < 0 else s
        e = e + d if e < 0 else e
        if k > 0:
            s, e = min(max(s, 0), d), min(max(e, 0), d)
        else:
            s, e = min(max(s, 0), d - 1), min(max(e, -1), d - 1)
        s_all[a], e_all[a], k_all[a] = s, e, k
    if s_all == [0] * rank and e_all == list(shape) and k_all == [1] * rank:
        return x
    return ctx.emit("slice", [x], starts=s_all, ends=e_all, steps=k_all)


@handles("Slice", 1)
def Slice_1(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    return [_slice(ctx, ins[0], list(n.attrs["starts"]), list(n.attrs["ends"]),
                   n.attrs.get("axes"), None)]


@handles("Slice", 10)
def Slice_10(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    def opt(i: int, what: str) -> list[int] | None:
        return _ints(ctx.need_const(ins[i], what)) if len(ins) > i and ins[i] is not None \
            else None

    starts, ends = opt(1, "Slice starts"), opt(2, "Slice ends")
    return [_slice(ctx, ins[0], starts, ends, opt(3, "Slice axes"), opt(4, "Slice steps"))]


@handles("Gather", 1)
def Gather_1(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    axis = _axis(n.attrs.get("axis", 0), len(ctx.shape(ins[0])))
    return [ctx.emit("gather", [ins[0], ins[1]], axis=axis)]


@handles("GatherElements", 11)
def GatherElements_11(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    axis = _axis(n.attrs.get("axis", 0), len(ctx.shape(ins[0])))
    return [ctx.emit("gather_elements", [ins[0], ins[1]], axis=axis)]


@handles("ArrayFeatureExtractor", 1)
def ArrayFeatureExtractor_1(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """ai.onnx.ml: y = x[..., indices.flatten()] (a 1-D x gives shape [1, k])."""
    x, idx = ins[0], ins[1]
    k = math.prod(ctx.shape(idx))
    idx = ctx.reshape(idx, [k])
    shape = ctx.shape(x)
    y = ctx.emit("gather", [x, idx], axis=len(shape) - 1)
    return [ctx.reshape(y, [1, k]) if len(shape) == 1 else y]


@handles("Expand", 8)
def Expand_8(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """y = x broadcast with the target shape (numpy rules, both ways)."""
    target = _ints(ctx.need_const(ins[1], "Expand shape"))
    shape = list(np.broadcast_shapes(ctx.shape(ins[0]), tuple(target)))
    if tuple(shape) == ctx.shape(ins[0]):
        return [ins[0]]
    return [ctx.emit("expand", [ins[0]], shape=shape)]


@handles("Tile", 6)
def Tile_6(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    return [ctx.emit("tile", [ins[0]], repeats=_ints(ctx.need_const(ins[1], "Tile repeats")))]


@handles("Pad", 2)
def Pad_2(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    return [ctx.emit("pad", [ins[0]], pads=list(n.attrs["pads"]),
                     mode=n.attrs.get("mode", "constant"), value=n.attrs.get("value", 0.0))]


@handles("Pad", 11)
def Pad_11(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """pads (begin..., end...) for the listed axes (all by default); constant value input."""
    rank = len(ctx.shape(ins[0]))
    given = _ints(ctx.need_const(ins[1], "Pad pads"))
    value = 0.0
    if len(ins) > 2 and ins[2] is not None:
        v = ctx.need_const(ins[2], "Pad constant_value")
        value = float(v.reshape(-1)[0]) if v.size else 0.0
    axes = list(range(rank))
    if len(ins) > 3 and ins[3] is not None:
        axes = [_axis(a, rank) for a in _ints(ctx.need_const(ins[3], "Pad axes"))]
    pads = [0] * (2 * rank)
    k = len(axes)
    for j, a in enumerate(axes):
        pads[a], pads[a + rank] = given[j], given[j + k]
    return [ctx.emit("pad", [ins[0]], pads=pads, mode=n.attrs.get("mode", "constant"),
                     value=value)]


@handles("Trilu", 14)
def Trilu_14(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    k = 0
    if len(ins) > 1 and ins[1] is not None:
        k = int(ctx.need_const(ins[1], "Trilu k"))
    return [ctx.emit("trilu", [ins[0]], upper=n.attrs.get("upper", 1), k=k)]


@handles("DepthToSpace", 1)
def DepthToSpace_1(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    return [ctx.emit("depth_to_space", [ins[0]], blocksize=n.attrs["blocksize"],
                     mode=n.attrs.get("mode", "DCR"))]


@handles("SpaceToDepth", 1)
def SpaceToDepth_1(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    return [ctx.emit("space_to_depth", [ins[0]], blocksize=n.attrs["blocksize"],
                     mode=n.attrs.get("mode", "DCR"))]


@handles("ConvTranspose", 1)
def ConvTranspose_1(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """y = conv(pad(zero_insert(x, strides)), w') with w'[m, c, j] = w[c, m, k - 1 - j] per
    group (the transposed convolution as a plain one): zeros between input pixels, the
    kernel's reach minus the pads around them, stride 1.  Pads and the output size follow
    the ONNX reference (explicit pads, auto_pad SAME_*, output_shape, output_padding)."""
    x, w = ins[0], ins[1]
    b = ins[2] if len(ins) > 2 and ins[2] is not None else None
    xs, ws = ctx.shape(x), ctx.shape(w)
    nd = len(xs) - 2
    a = n.attrs
    g = a.get("group", 1)
    k = list(ws[2:])
    s = list(a.get("strides", [1] * nd))
    d = list(a.get("dilations", [1] * nd))
    opad = list(a.get("output_padding", [0] * nd))[:nd]
    full = [s[i] * (xs[2 + i] - 1) + opad[i] + (k[i] - 1) * d[i] + 1 for i in range(nd)]
    auto = a.get("auto_pad", "NOTSET")
    out = list(a["output_shape"])[-nd:] if "output_shape" in a else None
    if "pads" in a or auto not in ("SAME_UPPER", "SAME_LOWER"):
        pads = list(a.get("pads", [0] * (2 * nd)))
        begin = pads[:nd]
        if out is None:
            out = [full[i] - pads[i] - pads[i + nd] for i in range(nd)]
    else:
        out = out or [xs[2 + i] * s[i] for i in range(nd)]
        tot = [full[i] - out[i] for i in range(nd)]
        begin = [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in tot]
    if any(o <= 0 for o in out):
        raise ctx.unsupported(f"ConvTranspose output size {out} is empty; check pads and "
                              "output_shape")
    # w (C, M/g, *k) -> (M, C/g, *k), flipped along every spatial axis
    c, mg = ws[0], ws[1]
    wt = ctx.reshape(w, (g, c // g, mg) + tuple(k))
    wt = ctx.emit("transpose", [wt], perm=[0, 2, 1] + list(range(3, 3 + nd)))
    wt = ctx.reshape(wt, (g * mg, c // g) + tuple(k))
    wt = ctx.emit("slice", [wt], starts=[0, 0] + [e - 1 for e in k],
                  ends=[g * mg, c // g] + [-1] * nd, steps=[1, 1] + [-1] * nd)
    # zero insertion: (N, C, h, 1, w, 1, ...) padded to (N, C, h, s, w, s, ...)
    z = x
    if any(v > 1 for v in s):
        inter = list(xs[:2]) + [v for i in range(nd) for v in (xs[2 + i], 1)]
        z = ctx.reshape(z, inter)
        zp = [0] * (2 * len(inter))
        for i in range(nd):
            zp[len(inter) + 3 + 2 * i] = s[i] - 1
        z = ctx.emit("pad", [z], pads=zp, mode="constant", value=0.0)
        z = ctx.reshape(z, list(xs[:2]) + [xs[2 + i] * s[i] for i in range(nd)])
    pz = [0] * (2 * (nd + 2))
    for i in range(nd):
        reach = (k[i] - 1) * d[i]
        length = xs[2 + i] * s[i]  # the zero-inserted length, with s - 1 trailing zeros
        pz[2 + i] = reach - begin[i]
        pz[nd + 4 + i] = out[i] - (length - (s[i] - 1)) - pz[2 + i] + reach - (s[i] - 1)
    if any(pz):
        z = ctx.emit("pad", [z], pads=pz, mode="constant", value=0.0)
    args = [z, wt] + ([b] if b is not None else [])
    return [ctx.emit("conv", args, group=g, strides=[1] * nd, dilations=d, pads=[0] * (2 * nd))]


def _resize_attrs(ctx: Ctx, n: OnnxNode, x: V, scales: np.ndarray | None,
                  sizes: np.ndarray | None, roi: np.ndarray | None) -> dict[str, Any]:
    """Full-rank static sizes, scales and roi of a Resize (axes, keep_aspect_ratio_policy
    resolved as in the ONNX reference)."""
    shape = ctx.shape(x)
    r = len(shape)
    a = n.attrs
    axes = [_axis(v, r) for v in a["axes"]] if "axes" in a else list(range(r))
    if a.get("antialias", 0) and a.get("mode", "nearest") == "nearest":
        raise ctx.unsupported("antialias=1 with mode=nearest is not defined; use linear "
                              "or cubic")
    if sizes is not None and sizes.size:
        out = list(shape)
        for i, ax in enumerate(axes):
            out[ax] = int(sizes.reshape(-1)[i])
        sc = [out[i] / shape[i] if shape[i] else 1.0 for i in range(r)]
        policy = a.get("keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            pick = min if policy == "not_larger" else max
            v = pick(sc[ax] for ax in axes)
            sc = [v if i in axes else 1.0 for i in range(r)]
            out = [int(v * shape[i] + 0.5) if i in axes else shape[i] for i in range(r)]
    elif scales is not None and scales.size:
        sc = [1.0] * r
        for i, ax in enumerate(axes):
            sc[ax] = float(scales.reshape(-1)[i])
        out = [int(np.floor(sc[i] * shape[i])) for i in range(r)]
    else:
        raise ctx.unsupported("Resize needs scales or sizes")
    rv: list[float] = []
    if roi is not None and roi.size and a.get("coordinate_transformation_mode") == \
            "tf_crop_and_resize":
        full = [0.0] * r + [1.0] * r
        vals = [float(v) for v in roi.reshape(-1)]
        k = len(axes)
        for i, ax in enumerate(axes):
            full[ax], full[r + ax] = vals[i], vals[k + i]
        rv = full
    attrs = {"sizes": out, "scales": sc, "roi": rv, "mode": a.get("mode", "nearest")}
    for key in ("coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a",
                "exclude_outside", "extrapolation_value", "antialias"):
        if key in a:
            attrs[key] = a[key]
    if attrs["mode"] not in ("nearest", "linear", "cubic"):
        raise ctx.unsupported(f"Resize mode {attrs['mode']!r} (use nearest, linear or cubic)")
    return attrs


def _opt_const(ctx: Ctx, ins: list[V | None], i: int, what: str) -> np.ndarray | None:
    return ctx.need_const(ins[i], what) if len(ins) > i and ins[i] is not None else None


@handles("Resize", 10)
def Resize_10(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """Opset 10: scales only; asymmetric coordinates, nearest rounds down (as Upsample)."""
    mode = n.attrs.get("mode", "nearest")
    n = OnnxNode(n.op_type, n.name, n.opset, {"mode": mode, "nearest_mode": "floor",
                 "coordinate_transformation_mode": "asymmetric"}, n.outputs)
    attrs = _resize_attrs(ctx, n, ins[0], _opt_const(ctx, ins, 1, "Resize scales"), None, None)
    return [ctx.emit("resize", [ins[0]], **attrs)]


handles("Upsample", 9)(Resize_10)


@handles("Upsample", 7)
def Upsample_7(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    scales = np.asarray(n.attrs["scales"], np.float32)
    m = OnnxNode(n.op_type, n.name, n.opset, {"mode": n.attrs.get("mode", "nearest"),
                 "nearest_mode": "floor", "coordinate_transformation_mode": "asymmetric"},
                 n.outputs)
    attrs = _resize_attrs(ctx, m, ins[0], scales, None, None)
    return [ctx.emit("resize", [ins[0]], **attrs)]


@handles("Resize", 11)
def Resize_11(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """X, roi, scales, sizes (constants); every later opset's attributes (axes,
    keep_aspect_ratio_policy, antialias, half_pixel_symmetric) are served here too."""
    roi = _opt_const(ctx, ins, 1, "Resize roi")
    scales = _opt_const(ctx, ins, 2, "Resize scales")
    sizes = _opt_const(ctx, ins, 3, "Resize sizes")
    attrs = _resize_attrs(ctx, n, ins[0], scales, sizes, roi)
    return [ctx.emit("resize", [ins[0]], **attrs)]


def _topk(ctx: Ctx, n: OnnxNode, x: V, k: int) -> list[V | None]:
    shape = ctx.shape(x)
    axis = _axis(n.attrs.get("axis", -1), len(shape))
    if not 0 <= k <= shape[axis]:
        raise ctx.unsupported(f"TopK k={k} is outside 0..{shape[axis]} (the axis length)")
    return list(ctx.emit_n("topk", [x], {"axis": axis, "k": k,
                                         "largest": n.attrs.get("largest", 1)}))


@handles("TopK", 1)
def TopK_1(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    return _topk(ctx, n, ins[0], int(n.attrs["k"]))


@handles("TopK", 10)
def TopK_10(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """k from a constant input; values and indices sorted (equal values: lower index
    first), whatever ``sorted`` says (an unsorted result may be in any order)."""
    return _topk(ctx, n, ins[0], int(ctx.need_const(ins[1], "TopK k").reshape(-1)[0]))


def _reduction(ctx: Ctx, n: OnnxNode) -> str:
    red = n.attrs.get("reduction", "none")
    if red not in ("none", "add", "mul", "max", "min"):
        raise ctx.unsupported(f"reduction {red!r} (use none, add, mul, max or min)")
    return red


@handles("ScatterElements", 11)
def ScatterElements_11(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    axis = _axis(n.attrs.get("axis", 0), len(ctx.shape(ins[0])))
    return [ctx.emit("scatter_elements", [ins[0], ins[1], ins[2]], axis=axis,
                     reduction=_reduction(ctx, n))]


handles("Scatter", 9)(ScatterElements_11)


@handles("ScatterND", 11)
def ScatterND_11(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    return [ctx.emit("scatter_nd", [ins[0], ins[1], ins[2]], reduction=_reduction(ctx, n))]


# ------------------------------------------------------------------ losses, one-hot, scans


def _nll(ctx: Ctx, n: OnnxNode, logp: V, target: V, weight: V | None) -> V:
    """loss[n, d] = -logp[n, t, d] * w[t] (0 where t = ignore_index), t = target[n, d];
    reduction none, sum, or mean = sum / sum of the weights taken: gathers, where, sums."""
    dt = ctx.type(logp).np_dtype
    tshape = ctx.shape(target)
    ii = n.attrs.get("ignore_index")
    t, ignored = target, None
    if ii is not None:
        ignored = ctx.emit("equal", [t, Const(np.asarray(ii, ctx.type(t).np_dtype),
                                               ctx.base + ".ii")])
        t = ctx.emit("where", [ignored, Const(np.zeros((), ctx.type(t).np_dtype),
                                               ctx.base + ".t0"), t])
    picked = ctx.emit("gather_elements", [logp, _unsqueeze(ctx, t, [1])], axis=1)
    picked = ctx.reshape(picked, tshape)
    if weight is not None:
        w: V = ctx.emit("gather", [weight, t], axis=0)
    else:
        w = Const(np.ones(tshape, dt), ctx.base + ".w")
    if ignored is not None:
        w = ctx.emit("where", [ignored, Const(np.zeros((), dt), ctx.base + ".w0"), w])
    loss = ctx.emit("neg", [ctx.emit("mul", [picked, w])])
    red = n.attrs.get("reduction", "mean")
    if red == "none":
        return loss
    axes = list(range(len(tshape)))
    total = ctx.emit("reduce_sum", [loss], axes=axes, keepdims=0)
    if red == "sum":
        return total
    if red != "mean":
        raise ctx.unsupported(f"reduction {red!r} (use none, sum or mean)")
    return ctx.emit("div", [total, ctx.emit("reduce_sum", [w], axes=axes, keepdims=0)])


@handles("NegativeLogLikelihoodLoss", 12)
def NegativeLogLikelihoodLoss_12(ctx: Ctx, n: OnnxNode, ins: list[V | None]
                                 ) -> list[V | None]:
    w = ins[2] if len(ins) > 2 and ins[2] is not None else None
    return [_nll(ctx, n, ins[0], ins[1], w)]


@handles("SoftmaxCrossEntropyLoss", 12)
def SoftmaxCrossEntropyLoss_12(ctx: Ctx, n: OnnxNode, ins: list[V | None]
                               ) -> list[V | None]:
    """loss = NLL(log_softmax(scores, axis 1), labels, weights); log_prob optional."""
    logp = ctx.emit("log_softmax", [ins[0]], axis=1)
    w = ins[2] if len(ins) > 2 and ins[2] is not None else None
    return [_nll(ctx, n, logp, ins[1], w), logp]


def _iota_along(ctx: Ctx, n_: int, axis: int, rank: int) -> Const:
    shape = [1] * rank
    shape[axis] = n_
    return Const(np.arange(n_, dtype=np.int64).reshape(shape), ctx.base + ".iota")


@handles("Hardmax", 13)
def Hardmax_13(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """y = 1 at the first maximum along axis, else 0: argmax == iota."""
    x = ins[0]
    shape = ctx.shape(x)
    axis = _axis(n.attrs.get("axis", -1), len(shape))
    am = ctx.emit("argmax", [x], axis=axis, keepdims=1, select_last_index=0)
    hit = ctx.emit("equal", [am, _iota_along(ctx, shape[axis], axis, len(shape))])
    dt = ctx.type(x).np_dtype
    return [ctx.emit("where", [hit, Const(np.ones((), dt), ctx.base + ".one"),
                               Const(np.zeros((), dt), ctx.base + ".zero")])]


@handles("Hardmax", 1)
def Hardmax_1(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    x = ins[0]
    shape = ctx.shape(x)
    axis = _axis(n.attrs.get("axis", 1), len(shape))
    flat = ctx.reshape(x, (math.prod(shape[:axis]), math.prod(shape[axis:])))
    m = OnnxNode(n.op_type, n.name, n.opset, {"axis": 1}, n.outputs)
    return [ctx.reshape(Hardmax_13(ctx, m, [flat])[0], shape)]


@handles("OneHot", 9)
def OneHot_9(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """y = (index (+ depth if negative) == iota along the new axis) ? on : off."""
    idx = ins[0]
    depth = int(np.asarray(ctx.need_const(ins[1], "OneHot depth")).reshape(-1)[0])
    values = ins[2]
    rank = len(ctx.shape(idx)) + 1
    axis = _axis(n.attrs.get("axis", -1), rank)
    it = ctx.type(idx).np_dtype
    if it.kind == "f":
        idx = ctx.emit("cast", [ctx.emit("floor", [idx])], to="i64")
        it = np.dtype(np.int64)
    neg = ctx.emit("less", [idx, Const(np.zeros((), it), ctx.base + ".z")])
    idx = ctx.emit("where", [neg, ctx.emit("add", [idx, Const(np.asarray(depth, it),
                                                                ctx.base + ".d")]), idx])
    idx = ctx.emit("cast", [idx], to="i64") if it != np.int64 else idx
    hit = ctx.emit("equal", [_unsqueeze(ctx, idx, [axis]),
                             _iota_along(ctx, depth, axis, rank)])
    if isinstance(values, Const):
        vs: list[V] = [Const(values.value.reshape(-1)[k:k + 1], ctx.base + f".v{k}")
                       for k in (0, 1)]
    else:
        vs = ctx.emit_n("split", [values], {"axis": 0, "sizes": [1, 1]})
    return [ctx.emit("where", [hit, ctx.reshape(vs[1], ()), ctx.reshape(vs[0], ())])]


@handles("LpNormalization", 1)
def LpNormalization_1(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """y = x / ||x||_p along axis (p = 1 or 2)."""
    x = ins[0]
    axis = _axis(n.attrs.get("axis", -1), len(ctx.shape(x)))
    p = n.attrs.get("p", 2)
    if p not in (1, 2):
        raise ctx.unsupported(f"LpNormalization p={p} (use 1 or 2)")
    norm = ctx.emit("reduce_l2" if p == 2 else "reduce_l1", [x], axes=[axis], keepdims=1)
    zero = Const(np.zeros((), ctx.type(x).np_dtype), ctx.base + ".zero")
    return [ctx.emit("where", [ctx.emit("equal", [norm, zero]), zero,
                               ctx.emit("div", [x, norm])])]


@handles("CenterCropPad", 18)
def CenterCropPad_18(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """Crop (start (in - out) // 2) or zero-pad (before (out - in) // 2) each listed axis."""
    x = ins[0]
    shape = list(ctx.shape(x))
    r = len(shape)
    want = _ints(ctx.need_const(ins[1], "CenterCropPad shape"))
    axes = [_axis(a, r) for a in n.attrs.get("axes", list(range(r)))]
    starts, ends, pads = [0] * r, list(shape), [0] * (2 * r)
    for ax, w in zip(axes, want, strict=True):
        if w < shape[ax]:
            starts[ax] = (shape[ax] - w) // 2
            ends[ax] = starts[ax] + w
        elif w > shape[ax]:
            pads[ax] = (w - shape[ax]) // 2
            pads[ax + r] = w - shape[ax] - pads[ax]
    if starts != [0] * r or ends != shape:
        x = ctx.emit("slice", [x], starts=starts, ends=ends, steps=[1] * r)
    if any(pads):
        x = ctx.emit("pad", [x], pads=pads, mode="constant", value=0.0)
    return [x]


@handles("Compress", 9)
def Compress_9(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """A constant condition: y = gather of the selected positions (of x flattened when
    there is no axis)."""
    x = ins[0]
    cond = np.asarray(ctx.need_const(ins[1], "Compress condition")).reshape(-1).astype(bool)
    if "axis" in n.attrs:
        axis = _axis(n.attrs["axis"], len(ctx.shape(x)))
    else:
        x, axis = ctx.reshape(x, (math.prod(ctx.shape(x)),)), 0
    sel = np.nonzero(cond[:ctx.shape(x)[axis]])[0].astype(np.int64)
    if sel.size == 0:
        raise ctx.unsupported("Compress selects nothing (an empty tensor)")
    return [ctx.emit("gather", [x, Const(sel, ctx.base + ".sel")], axis=axis)]


@handles("CumSum", 11)
def CumSum_11(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """y = x @ T along axis, T the constant (inclusive / exclusive, forward / reverse)
    triangle of ones: a matmul with a constant weight."""
    x = ins[0]
    shape = ctx.shape(x)
    r = len(shape)
    axis = _axis(int(np.asarray(ctx.need_const(ins[1], "CumSum axis")).reshape(-1)[0]), r)
    d = shape[axis]
    i, j = np.indices((d, d))
    keep = (i >= j) if n.attrs.get("reverse", 0) else (i <= j)
    if n.attrs.get("exclusive", 0):
        keep &= i != j
    tri = Const(keep.astype(ctx.type(x).np_dtype), ctx.base + ".tri")
    if axis == r - 1:
        return [ctx.emit("matmul", [x, tri])]
    perm = [k for k in range(r) if k != axis] + [axis]
    y = ctx.emit("matmul", [ctx.emit("transpose", [x], perm=perm), tri])
    return [ctx.emit("transpose", [y], perm=list(np.argsort(perm)))]


@handles("CumProd", 26)
def CumProd_26(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    axis = _axis(int(np.asarray(ctx.need_const(ins[1], "CumProd axis")).reshape(-1)[0]),
                 len(ctx.shape(ins[0])))
    return [ctx.emit("cumprod", [ins[0]], axis=axis, exclusive=n.attrs.get("exclusive", 0),
                     reverse=n.attrs.get("reverse", 0))]


for _onnx, _ir in [("BitwiseAnd", "bitwise_and"), ("BitwiseOr", "bitwise_or"),
                   ("BitwiseXor", "bitwise_xor")]:
    handles(_onnx, 18)(_binary(_ir))


@handles("BitwiseNot", 18)
def BitwiseNot_18(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    return [ctx.emit("bitwise_not", [ins[0]])]


@handles("BitShift", 11)
def BitShift_11(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    return [ctx.emit("bit_shift", [ins[0], ins[1]], direction=n.attrs["direction"])]


@handles("IsInf", 10)
def IsInf_10(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    return [ctx.emit("is_inf", [ins[0]], detect_positive=n.attrs.get("detect_positive", 1),
                     detect_negative=n.attrs.get("detect_negative", 1))]


@handles("IsNaN", 9)
def IsNaN_9(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    return [ctx.emit("is_nan", [ins[0]])]


def _dft(ctx: Ctx, n: OnnxNode, x: V, length: int | None, axis: int) -> list[V | None]:
    shape = ctx.shape(x)
    axis = _axis(axis, len(shape))
    if axis == len(shape) - 1:
        raise ctx.unsupported("DFT along the last (real / imaginary) axis")
    if length is None:
        inv_real = n.attrs.get("inverse", 0) and n.attrs.get("onesided", 0)
        length = 2 * (shape[axis] - 1) if inv_real else shape[axis]
    return [ctx.emit("dft", [x], axis=axis, length=length,
                     inverse=n.attrs.get("inverse", 0), onesided=n.attrs.get("onesided", 0))]


@handles("DFT", 17)
def DFT_17(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    length = _opt_const(ctx, ins, 1, "DFT dft_length")
    return _dft(ctx, n, ins[0], None if length is None else int(length.reshape(-1)[0]),
                n.attrs.get("axis", 1))


@handles("DFT", 20)
def DFT_20(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    length = _opt_const(ctx, ins, 1, "DFT dft_length")
    axis = _opt_const(ctx, ins, 2, "DFT axis")
    return _dft(ctx, n, ins[0], None if length is None else int(length.reshape(-1)[0]),
                -2 if axis is None else int(axis.reshape(-1)[0]))


@handles("LpPool", 11)
def LpPool_11(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """y = (sum over the window of |x|^p)^(1/p), zeros outside: a conv of |x|^p with a
    kernel of ones on (N*C, 1, ...), then pow 1/p."""
    x = ins[0]
    shape = ctx.shape(x)
    kernel = list(n.attrs["kernel_shape"])
    if n.attrs.get("ceil_mode", 0):
        raise ctx.unsupported("LpPool ceil_mode=1")
    attrs = _spatial_attrs(ctx, n, shape, kernel)
    p = float(n.attrs.get("p", 2))
    a = ctx.emit("abs", [x])
    dt = ctx.type(x).np_dtype
    ap = ctx.emit("mul", [a, a]) if p == 2 else ctx.emit("pow", [a, Const(np.asarray(p, dt),
                                                                           ctx.base + ".p")])
    flat = ctx.reshape(ap, (shape[0] * shape[1], 1) + tuple(shape[2:]))
    ones = Const(np.ones([1, 1] + kernel, dt), ctx.base + ".ones")
    s = ctx.emit("conv", [flat, ones], group=1, **attrs)
    s = ctx.reshape(s, tuple(shape[:2]) + ctx.shape(s)[2:])
    if p == 2:
        return [ctx.emit("sqrt", [s])]
    return [ctx.emit("pow", [s, Const(np.asarray(1.0 / p, dt), ctx.base + ".r")])]


# ------------------------------------------------------------------ control flow (folded)


@handles("If", 1)
def If_1(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """A constant condition: the taken branch's nodes inlined (outer values in scope)."""
    cond = ctx.need_const(ins[0], "If condition")
    branch = n.attrs["then_branch" if bool(np.asarray(cond).reshape(-1)[0]) else "else_branch"]
    return ctx.inline(branch, {})


@handles("Loop", 1)
def Loop_1(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """A constant trip count (and a condition that stays constant): the body unrolled,
    iteration by iteration; scan outputs stacked along a new first axis."""
    body = n.attrs["body"]
    m = ins[0] if ins and ins[0] is not None else None
    trips = int(ctx.need_const(m, "Loop trip count").reshape(-1)[0]) if m is not None else None
    cond = ins[1] if len(ins) > 1 and ins[1] is not None else None
    go = True if cond is None else bool(ctx.need_const(cond, "Loop condition").reshape(-1)[0])
    if trips is None:
        raise ctx.unsupported("a Loop without a constant trip count cannot be unrolled")
    carried = list(ins[2:])
    n_carried = len(carried)
    names = [i.name for i in body.input]
    scans: list[list[V]] = [[] for _ in range(len(body.output) - 1 - n_carried)]
    i = 0
    while i < trips and go:
        binds: dict[str, V] = {names[0]: Const(np.asarray(i, np.int64), ctx.base + ".i")}
        if len(names) > 1:
            binds[names[1]] = Const(np.asarray(go), ctx.base + ".cond")
        binds.update(dict(zip(names[2:], carried, strict=True)))
        outs = ctx.inline(body, binds)
        c = outs[0]
        if not isinstance(c, Const):
            raise ctx.unsupported("the Loop body's condition depends on run-time data; only "
                                  "constant conditions are unrolled")
        go = bool(np.asarray(c.value).reshape(-1)[0])
        carried = outs[1:1 + n_carried]
        for k, v in enumerate(outs[1 + n_carried:]):
            scans[k].append(v)
        i += 1
    stacked: list[V | None] = []
    for k, vs in enumerate(scans):
        if not vs:
            raise ctx.unsupported(f"Loop scan output {k} has no iterations (empty tensor)")
        rows = [ctx.reshape(v, (1,) + ctx.shape(v)) for v in vs]
        stacked.append(rows[0] if len(rows) == 1 else ctx.emit("concat", rows, axis=0))
    return carried + stacked


@handles("GridSample", 16)
def GridSample_16(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """Opset 16 names the modes bilinear / bicubic; 20 on linear / cubic (and N-d)."""
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(n.attrs.get("mode", "linear"),
                                                          n.attrs.get("mode", "linear"))
    if mode == "cubic" and len(ctx.shape(ins[0])) != 4:
        raise ctx.unsupported("cubic GridSample is defined for 2-d images only")
    return [ctx.emit("grid_sample", [ins[0], ins[1]], mode=mode,
                     padding_mode=n.attrs.get("padding_mode", "zeros"),
                     align_corners=n.attrs.get("align_corners", 0))]


_RNN_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
_RNN_ACTS = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}


def _recurrent(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """RNN / GRU / LSTM over the static sequence (float engine; default activations)."""
    a = n.attrs
    kind = n.op_type
    direction = a.get("direction", "forward")
    nd = 2 if direction == "bidirectional" else 1
    acts = [s.decode() if isinstance(s, bytes) else s for s in a.get("activations", [])]
    if acts and [v.lower() for v in acts] != [v.lower() for v in _RNN_ACTS[kind] * nd]:
        raise ctx.unsupported(f"{kind} activations {acts}: only the defaults "
                              f"{_RNN_ACTS[kind]} are supported")
    if a.get("clip") is not None or a.get("input_forget", 0):
        raise ctx.unsupported(f"{kind} clip / input_forget are not supported")
    x, w, r = ins[0], ins[1], ins[2]
    hs = ctx.shape(r)[-1]
    layout = a.get("layout", 0)
    xs = ctx.shape(x)
    batch = xs[0] if layout else xs[1]
    dt = ctx.type(x).np_dtype

    def opt(i: int, shape: tuple[int, ...]) -> V:
        if len(ins) > i and ins[i] is not None:
            return ins[i]
        return Const(np.zeros(shape, dt), ctx.base + f".z{i}")

    g = _RNN_GATES[kind]
    hshape = (batch, nd, hs) if layout else (nd, batch, hs)
    args = [x, w, r, opt(3, (nd, 2 * g * hs)), opt(5, hshape),
            opt(6, hshape) if kind == "LSTM" else Const(np.zeros(hshape, dt), ctx.base + ".c"),
            opt(7, (nd, 3 * hs)) if kind == "LSTM" else Const(np.zeros((nd, 3 * hs), dt),
                                                               ctx.base + ".p")]
    return list(ctx.emit_n("rnn", args, {"kind": kind.lower(), "hidden_size": hs,
                                         "direction": direction, "layout": layout,
                                         "linear_before_reset": a.get("linear_before_reset",
                                                                      0)}))


for _op in _RNN_GATES:
    handles(_op, 7)(_recurrent)


# ------------------------------------------------------------------ integer and quantized ops


@handles("Shrink", 9)
def Shrink_9(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    return [ctx.emit("shrink", [ins[0]], bias=n.attrs.get("bias", 0.0),
                     lambd=n.attrs.get("lambd", 0.5))]


@handles("BitCast", 26)
def BitCast_26(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    to = ir_dtype(ctx, n.attrs["to"])
    if DTYPES[to].itemsize != ctx.type(ins[0]).np_dtype.itemsize:
        raise ctx.unsupported(f"BitCast to {to}: the element widths differ")
    return [ctx.emit("bitcast", [ins[0]], to=to)]


@handles("Det", 11)
def Det_11(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    return [ctx.emit("det", [ins[0]])]


@handles("QLinearMatMul", 10)
def QLinearMatMul_10(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    return [ctx.emit("qlinear_matmul", list(ins[:8]))]


def _zero_point(ctx: Ctx, ins: list[V | None], i: int, like: V) -> V:
    if len(ins) > i and ins[i] is not None:
        return ins[i]
    return Const(np.zeros((), ctx.type(like).np_dtype), ctx.base + f".zp{i}")


@handles("MatMulInteger", 10)
def MatMulInteger_10(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    za, zb = _zero_point(ctx, ins, 2, ins[0]), _zero_point(ctx, ins, 3, ins[1])
    if len(ctx.shape(za)) == 1 and ctx.shape(za)[0] > 1:  # per row of a
        za = ctx.reshape(za, (ctx.shape(za)[0], 1))
    return [ctx.emit("matmul_integer", [ins[0], ins[1], za, zb])]


@handles("ConvInteger", 10)
def ConvInteger_10(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """y = conv(x - x_zp, w - w_zp) in int32 (zeros in the padding)."""
    x, w = ins[0], ins[1]
    xz, wz = _zero_point(ctx, ins, 2, x), _zero_point(ctx, ins, 3, w)
    nd = len(ctx.shape(w)) - 2
    if ctx.shape(wz) and math.prod(ctx.shape(wz)) > 1:
        wz = ctx.reshape(wz, (math.prod(ctx.shape(wz)),) + (1,) * (nd + 1))
    x32 = ctx.emit("sub", [ctx.emit("cast", [x], to="i32"), ctx.emit("cast", [xz], to="i32")])
    w32 = ctx.emit("sub", [ctx.emit("cast", [w], to="i32"), ctx.emit("cast", [wz], to="i32")])
    attrs = _spatial_attrs(ctx, n, ctx.shape(x), list(ctx.shape(w)[2:]))
    return [ctx.emit("conv", [x32, w32], group=n.attrs.get("group", 1), **attrs)]


@handles("ReverseSequence", 10)
def ReverseSequence_10(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """Constant sequence lengths: a gather through the constant index map
    y[t, b] = x[t < len[b] ? len[b] - 1 - t : t, b]."""
    x = ins[0]
    shape = ctx.shape(x)
    lens = _ints(ctx.need_const(ins[1], "ReverseSequence sequence_lens"))
    ta, ba = n.attrs.get("time_axis", 0), n.attrs.get("batch_axis", 1)
    idx = np.arange(math.prod(shape)).reshape(shape)
    src = idx.copy()
    for b, ln in enumerate(lens):
        sl = [slice(None)] * len(shape)
        sl[ba] = slice(b, b + 1)
        part = np.take(idx[tuple(sl)], np.arange(ln)[::-1], axis=ta)
        sl[ta] = slice(0, ln)
        src[tuple(sl)] = part
    flat = ctx.reshape(x, (math.prod(shape),))
    y = ctx.emit("gather", [flat, Const(src.reshape(-1).astype(np.int64), ctx.base + ".map")],
                 axis=0)
    return [ctx.reshape(y, shape)]


@handles("GatherND", 11)
def GatherND_11(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """y[j] = x[batch(j), idx[j, 0], ..., idx[j, k-1], ...]: the flat row
    sum_d (idx[j, d] (+ dim if negative)) * stride_d (+ the batch row) gathered from x
    viewed as (rows, rest); the gather clamps a row out of range."""
    x, idx = ins[0], ins[1]
    xs, js = ctx.shape(x), ctx.shape(idx)
    bd = n.attrs.get("batch_dims", 0)
    k = js[-1]
    lead = js[:-1]
    rows = math.prod(xs[:bd + k])
    rest = xs[bd + k:]
    it = ctx.type(idx).np_dtype
    pos: V | None = None
    for d in range(bd + k):
        stride = math.prod(xs[d + 1:bd + k])
        if d < bd:
            shape = [1] * len(lead)
            shape[d] = xs[d]
            c: V = Const((np.arange(xs[d]) * stride).reshape(shape).astype(it), ctx.base + ".b")
        else:
            j = d - bd
            c = ctx.reshape(ctx.emit("slice", [idx], starts=[0] * len(lead) + [j],
                                     ends=list(lead) + [j + 1], steps=[1] * len(js)), lead)
            neg = ctx.emit("less", [c, Const(np.zeros((), it), ctx.base + ".z")])
            c = ctx.emit("where", [neg, ctx.emit("add", [c, Const(np.asarray(xs[d], it),
                                                                   ctx.base + ".n")]), c])
            if stride != 1:
                c = ctx.emit("mul", [c, Const(np.asarray(stride, it), ctx.base + ".s")])
        pos = c if pos is None else ctx.emit("add", [pos, c])
    if pos is None:
        raise ctx.unsupported("GatherND with empty index tuples")
    if ctx.shape(pos) != tuple(lead):
        pos = ctx.emit("expand", [pos], shape=list(lead))
    table = ctx.reshape(x, (rows,) + tuple(rest))
    return [ctx.emit("gather", [table, pos], axis=0)]


@handles("Scan", 9)
def Scan_9(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """The body unrolled over the (static) scan axis: state carried, the scan inputs sliced
    at each step (reversed by direction 1), the scan outputs stacked along their axes."""
    body = n.attrs["body"]
    m = n.attrs["num_scan_inputs"]
    states, xs = list(ins[:len(ins) - m]), list(ins[len(ins) - m:])
    n_out = len(body.output) - len(states)
    in_axes = list(n.attrs.get("scan_input_axes", [0] * m))
    in_dirs = list(n.attrs.get("scan_input_directions", [0] * m))
    out_axes = list(n.attrs.get("scan_output_axes", [0] * n_out))
    out_dirs = list(n.attrs.get("scan_output_directions", [0] * n_out))
    in_axes = [_axis(a, len(ctx.shape(x))) for a, x in zip(in_axes, xs, strict=True)]
    lengths = {ctx.shape(x)[a] for a, x in zip(in_axes, xs, strict=True)}
    if len(lengths) != 1:
        raise ctx.unsupported(f"Scan inputs of different lengths {sorted(lengths)}")
    steps = lengths.pop()
    names = [i.name for i in body.input]
    outs: list[list[V]] = [[] for _ in range(n_out)]
    for t in range(steps):
        binds: dict[str, V] = dict(zip(names, states, strict=False))
        for k, (x, a, d) in enumerate(zip(xs, in_axes, in_dirs, strict=True)):
            shape = ctx.shape(x)
            i = steps - 1 - t if d else t
            sl = ctx.emit("slice", [x], starts=[i if j == a else 0 for j in range(len(shape))],
                          ends=[i + 1 if j == a else e for j, e in enumerate(shape)],
                          steps=[1] * len(shape))
            binds[names[len(states) + k]] = ctx.reshape(sl, shape[:a] + shape[a + 1:])
        res = ctx.inline(body, binds)
        states = res[:len(states)]
        for k, v in enumerate(res[len(states):]):
            outs[k].append(v)
    stacked: list[V | None] = []
    for vs, a, d in zip(outs, out_axes, out_dirs, strict=True):
        if d:
            vs = vs[::-1]
        rank = len(ctx.shape(vs[0])) + 1
        a = _axis(a, rank)
        rows = [_unsqueeze(ctx, v, [a]) for v in vs]
        stacked.append(rows[0] if len(rows) == 1 else ctx.emit("concat", rows, axis=a))
    return list(states) + stacked


@handles("Col2Im", 18)
def Col2Im_18(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    img = _ints(ctx.need_const(ins[1], "Col2Im image_shape"))
    blk = _ints(ctx.need_const(ins[2], "Col2Im block_shape"))
    nd = len(img)
    return [ctx.emit("col2im", [ins[0]], image_shape=img, block_shape=blk,
                     dilations=list(n.attrs.get("dilations", [1] * nd)),
                     pads=list(n.attrs.get("pads", [0] * (2 * nd))),
                     strides=list(n.attrs.get("strides", [1] * nd)))]


@handles("TensorScatter", 24)
def TensorScatter_24(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """present = past with update written at rows write_indices[b] + s along axis (mod the
    cache length when circular): scatter_elements with the computed row indices."""
    past, upd = ins[0], ins[1]
    ps, us = ctx.shape(past), ctx.shape(upd)
    axis = _axis(n.attrs.get("axis", -2), len(ps))
    wi = ins[2] if len(ins) > 2 and ins[2] is not None else Const(
        np.zeros((ps[0],), np.int64), ctx.base + ".wi")
    shape = [1] * len(ps)
    shape[0] = ps[0]
    rows = ctx.reshape(wi, shape)
    it = ctx.type(wi).np_dtype
    iota = [1] * len(ps)
    iota[axis] = us[axis]
    rows = ctx.emit("add", [rows, Const(np.arange(us[axis], dtype=it).reshape(iota),
                                        ctx.base + ".s")])
    if n.attrs.get("mode", "linear") == "circular":
        rows = ctx.emit("mod", [rows, Const(np.asarray(ps[axis], it), ctx.base + ".m")],
                        fmod=0)
    rows = ctx.emit("expand", [rows], shape=list(us))
    return [ctx.emit("scatter_elements", [past, rows, upd], axis=axis, reduction="none")]


@handles("MaxUnpool", 9)
def MaxUnpool_9(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """y = zeros with y.flat[indices] = x (a scatter into the flat output), padded at the
    end to output_shape when it is given."""
    x, idx = ins[0], ins[1]
    xs = ctx.shape(x)
    k = list(n.attrs["kernel_shape"])
    nd = len(k)
    s = list(n.attrs.get("strides", [1] * nd))
    p = list(n.attrs.get("pads", [0] * (2 * nd)))
    inferred = list(xs[:2]) + [(xs[2 + i] - 1) * s[i] - (p[i] + p[i + nd]) + k[i]
                               for i in range(nd)]
    total = math.prod(inferred)
    zeros = Const(np.zeros((total,), ctx.type(x).np_dtype), ctx.base + ".zeros")
    flat = ctx.emit("scatter_elements", [zeros, ctx.reshape(idx, (math.prod(xs),)),
                                         ctx.reshape(x, (math.prod(xs),))], axis=0,
                    reduction="none")
    y = ctx.reshape(flat, inferred)
    if len(ins) > 2 and ins[2] is not None:
        want = _ints(ctx.need_const(ins[2], "MaxUnpool output_shape"))
        pads = [0] * len(want) + [w - i for w, i in zip(want, inferred, strict=True)]
        if any(pads):
            y = ctx.emit("pad", [y], pads=pads, mode="constant", value=0.0)
    return [y]


@handles("Binarizer", 1)
def Binarizer_1(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """ai.onnx.ml: y = x > threshold ? 1 : 0."""
    x = ins[0]
    dt = ctx.type(x).np_dtype
    hit = ctx.emit("greater", [x, Const(np.asarray(n.attrs.get("threshold", 0.0), dt),
                                        ctx.base + ".t")])
    return [ctx.emit("where", [hit, Const(np.ones((), dt), ctx.base + ".one"),
                               Const(np.zeros((), dt), ctx.base + ".zero")])]


@handles("STFT", 17)
def STFT_17(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """Frames of the signal (a constant gather), times the window, then a DFT per frame."""
    sig = ins[0]
    step = int(np.asarray(ctx.need_const(ins[1], "STFT frame_step")).reshape(-1)[0])
    win = ins[2] if len(ins) > 2 and ins[2] is not None else None
    flen = _opt_const(ctx, ins, 3, "STFT frame_length")
    length = int(flen.reshape(-1)[0]) if flen is not None else ctx.shape(win)[0]
    shape = ctx.shape(sig)  # (batch, T, 1 or 2)
    frames = (shape[1] - length) // step + 1
    idx = (np.arange(frames)[:, None] * step + np.arange(length)[None, :]).astype(np.int64)
    f = ctx.emit("gather", [sig, Const(idx, ctx.base + ".frames")], axis=1)
    if win is not None:
        f = ctx.emit("mul", [f, ctx.reshape(win, (1, 1, length, 1))])
    onesided = n.attrs.get("onesided", 1) if shape[-1] == 1 else 0
    return [ctx.emit("dft", [f], axis=2, length=length, inverse=0, onesided=onesided)]


@handles("Scan", 8)
def Scan_8(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """Opset 8: axis 0 of every input is a batch; each batch row scans (along its axis 0)
    as opset 9 does, the results stacked again along the batch axis."""
    if ins and ins[0] is not None:
        lens = _ints(ctx.need_const(ins[0], "Scan sequence_lens"))
        full = {ctx.shape(x)[1] for x in ins[len(ins) - n.attrs["num_scan_inputs"]:]}
        if any(v not in full for v in lens):
            raise ctx.unsupported("Scan sequence_lens shorter than the inputs")
    vals = list(ins[1:])
    batch = ctx.shape(vals[0])[0]
    m = n.attrs["num_scan_inputs"]
    inner = OnnxNode(n.op_type, n.name, 9, {
        "body": n.attrs["body"], "num_scan_inputs": m,
        "scan_input_directions": list(n.attrs.get("directions", [0] * m))}, n.outputs)
    rows = []
    for b in range(batch):
        parts = []
        for v in vals:
            shape = ctx.shape(v)
            sl = ctx.emit("slice", [v], starts=[b] + [0] * (len(shape) - 1),
                          ends=[b + 1] + list(shape[1:]), steps=[1] * len(shape))
            parts.append(ctx.reshape(sl, shape[1:]))
        rows.append(Scan_9(ctx, inner, parts))
    out: list[V | None] = []
    for k in range(len(rows[0])):
        vs = [_unsqueeze(ctx, r[k], [0]) for r in rows]
        out.append(vs[0] if len(vs) == 1 else ctx.emit("concat", vs, axis=0))
    return out


@handles("DeformConv", 19)
def DeformConv_19(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """2-d DeformConv (float op deform_conv); absent bias 0, absent mask 1."""
    x, w, off = ins[0], ins[1], ins[2]
    if len(ctx.shape(x)) != 4:
        raise ctx.unsupported("DeformConv is supported for 2-d images only")
    dt = ctx.type(x).np_dtype
    m = ctx.shape(w)[0]
    og = n.attrs.get("offset_group", 1)
    kh, kw = ctx.shape(w)[2:]
    b = ins[3] if len(ins) > 3 and ins[3] is not None else Const(np.zeros((m,), dt),
                                                                  ctx.base + ".b")
    mask = ins[4] if len(ins) > 4 and ins[4] is not None else Const(
        np.ones((ctx.shape(off)[0], og * kh * kw) + ctx.shape(off)[2:], dt), ctx.base + ".m")
    return [ctx.emit("deform_conv", [x, w, off, b, mask],
                     strides=list(n.attrs.get("strides", [1, 1])),
                     pads=list(n.attrs.get("pads", [0, 0, 0, 0])),
                     dilations=list(n.attrs.get("dilations", [1, 1])),
                     group=n.attrs.get("group", 1), offset_group=og)]


@handles("RoiAlign", 10)
def RoiAlign_10(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """Float op roi_align; opset 16+ defaults to half_pixel, opset 10 to output_half_pixel."""
    default = "half_pixel" if n.opset >= 16 else "output_half_pixel"
    a = n.attrs
    return [ctx.emit("roi_align", [ins[0], ins[1], ins[2]],
                     output_height=a.get("output_height", 1),
                     output_width=a.get("output_width", 1),
                     sampling_ratio=a.get("sampling_ratio", 0),
                     spatial_scale=a.get("spatial_scale", 1.0), mode=a.get("mode", "avg"),
                     half_pixel=int(a.get("coordinate_transformation_mode", default)
                                    == "half_pixel"))]


@handles("MelWeightMatrix", 17)
def MelWeightMatrix_17(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """A constant (every operand is): the triangular mel filter bank of ONNX's reference,
    bins at floor((dft_length + 1) * hz / sample_rate)."""
    bins, length, rate = (int(np.asarray(ctx.need_const(v, "MelWeightMatrix operand"))
                              .reshape(-1)[0]) for v in ins[:3])
    lo, hi = (float(np.asarray(ctx.need_const(v, "MelWeightMatrix operand")).reshape(-1)[0])
              for v in ins[3:5])
    mel_lo = 2595 * np.log1p(lo / 700) / np.log(10)
    mel_hi = 2595 * np.log1p(hi / 700) / np.log(10)
    f = np.arange(bins + 2) * ((mel_hi - mel_lo) / (bins + 2)) + mel_lo
    f = (((length + 1) * (700 * np.expm1(f / 2595 * np.log(10)))) // rate).astype(int)
    out = np.zeros((length // 2 + 1, bins))
    for i in range(bins):
        a, c, b = f[i], f[i + 1], f[i + 2]
        if c == a:
            out[c, i] = 1
        else:
            for j in range(a, c + 1):
                out[j, i] = (j - a) / (c - a)
        for j in range(c, b):
            out[j, i] = (b - j) / (b - c)
    dt = ir_dtype(ctx, n.attrs["output_datatype"]) if "output_datatype" in n.attrs else "f32"
    return [Const(out.astype(DTYPES[dt]), ctx.base)]


@handles("TfIdfVectorizer", 9)
def TfIdfVectorizer_9(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    a = n.attrs
    if "pool_strings" in a:
        raise ctx.unsupported("TfIdfVectorizer over strings (pool_strings)")
    return [ctx.emit("tfidf", [ins[0]], max_gram_length=a["max_gram_length"],
                     min_gram_length=a["min_gram_length"],
                     max_skip_count=a["max_skip_count"], mode=a["mode"],
                     ngram_counts=list(a["ngram_counts"]),
                     ngram_indexes=list(a["ngram_indexes"]),
                     pool_int64s=list(a["pool_int64s"]),
                     weights=list(a.get("weights", [])))]


# ------------------------------------------------------------------ ops defined by an ONNX function


def _function_proto(op_type: str, opset: int, domain: str, node: Any,
                    types: list[Any]) -> Any:
    """The FunctionProto that ONNX defines ``op_type`` by at ``opset`` (static, or built
    for this node and its input types), or None."""
    from onnx import FunctionProto, defs

    try:
        schema = defs.get_schema(op_type, opset, domain)
    except (defs.SchemaError, TypeError):  # TypeError: an opset beyond a C int (a bad file)
        return None
    fv = [v for v in schema.function_opset_versions if v <= opset]
    cv = [v for v in schema.context_dependent_function_opset_versions if v <= opset]
    f = FunctionProto()
    if cv and (not fv or max(cv) >= max(fv)):
        if node is None:
            return f  # a marker: the op has one
        f.ParseFromString(schema.get_context_dependent_function_with_opset_version(
            max(cv), node.SerializeToString(), [t.SerializeToString() for t in types]))
        return f
    if fv:
        f.ParseFromString(schema.get_function_with_opset_version(max(fv)))
        return f
    return None


def _onnx_type(ctx: Ctx, v: V) -> Any:
    t = ctx.type(v)
    code = {d: c for c, d in ONNX_DTYPES.items()}[t.dtype]
    return helper.make_tensor_type_proto(code, list(t.shape))


def _expand_function(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """An op without a handler that ONNX defines by a function: its body, with the node's
    attributes substituted, inlined like a subgraph (names prefixed by the node's)."""
    from onnx import AttributeProto, defs

    domain = n.domain
    names = [f"{n.name}/in{i}" if v is not None else "" for i, v in enumerate(ins)]
    attrs = dict(n.attrs)
    schema = defs.get_schema(n.op_type, n.opset, domain)
    for k, a in schema.attributes.items():
        if k not in attrs and a.default_value and a.default_value.type:
            attrs[k] = helper.get_attribute_value(a.default_value)
    node = helper.make_node(n.op_type, names, list(n.outputs), domain=domain or None,
                            **{k: v.encode() if isinstance(v, str) else v
                               for k, v in attrs.items()})
    f = _function_proto(n.op_type, n.opset, domain, node,
                        [_onnx_type(ctx, v) if v is not None else helper.make_tensor_type_proto(
                            1, None) for v in ins])
    amap = {a.name: a for a in node.attribute}
    pre = f"{n.name}/{n.op_type}/"

    def rename(x: str) -> str:
        return pre + x if x else ""

    def expand(fnode: Any) -> Any:
        new = onnx.NodeProto()
        new.CopyFrom(fnode)
        new.ClearField("input")
        new.ClearField("output")
        new.ClearField("attribute")
        new.input.extend(rename(x) for x in fnode.input)
        new.output.extend(rename(x) for x in fnode.output)
        for a in fnode.attribute:
            if a.ref_attr_name:
                if a.ref_attr_name in amap:
                    b = AttributeProto()
                    b.CopyFrom(amap[a.ref_attr_name])
                    b.name = a.name
                    new.attribute.append(b)
            else:
                b = AttributeProto()
                b.CopyFrom(a)
                if a.type == AttributeProto.GRAPH:
                    b.g.CopyFrom(subgraph(a.g))
                elif a.type == AttributeProto.GRAPHS:
                    raise ctx.unsupported("a function body with a list of subgraphs")
                new.attribute.append(b)
        return new

    def subgraph(g: Any) -> Any:  # every name prefixed, as in the body
        new = onnx.GraphProto()
        new.CopyFrom(g)
        for vi in list(new.input) + list(new.output):
            vi.name = rename(vi.name)
        for t in new.initializer:
            t.name = rename(t.name)
        new.ClearField("node")
        new.node.extend(expand(x) for x in g.node)
        return new

    want = [k for k, o in enumerate(n.outputs) if o and k < len(f.output)]
    outs = [helper.make_tensor_value_info(rename(f.output[k]), 0, None) for k in want]
    graph = helper.make_graph([expand(x) for x in f.node], f"{n.op_type}_body", [], outs)
    binds = {rename(fi): v for fi, v in zip(f.input, ins, strict=False) if v is not None}
    opsets = {DOMAINS_OF.get(o.domain, o.domain): o.version for o in f.opset_import}
    res = dict(zip(want, ctx.inline(graph, binds, opsets), strict=True))
    return [res.get(k) for k in range(len(n.outputs))]


DOMAINS_OF = {"": "", "ai.onnx": ""}


# ------------------------------------------------------------------ compile-time only (folded)


def _const_from_tensor_attr(ctx: Ctx, t: Any) -> np.ndarray:
    from onnx import numpy_helper

    ir_dtype(ctx, t.data_type)
    return numpy_helper.to_array(t)


@handles("Constant", 1)
def Constant_1(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    a = n.attrs
    if "value" in a:
        arr = _const_from_tensor_attr(ctx, a["value"])
    elif "value_float" in a:
        arr = np.asarray(a["value_float"], np.float32)
    elif "value_floats" in a:
        arr = np.asarray(a["value_floats"], np.float32)
    elif "value_int" in a:
        arr = np.asarray(a["value_int"], np.int64)
    elif "value_ints" in a:
        arr = np.asarray(a["value_ints"], np.int64)
    else:
        raise ctx.unsupported(f"Constant with attributes {sorted(a)} (string/sparse)")
    return [Const(arr, n.outputs[0])]


@handles("Shape", 1)
def Shape_1(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """Static shapes make Shape a constant: shape(x)[start:end]."""
    shape = ctx.shape(ins[0])
    start, end = n.attrs.get("start", 0), n.attrs.get("end", len(shape))
    return [Const(np.asarray(shape[start:end] if "end" in n.attrs else shape[start:],
                             np.int64), ctx.base)]


@handles("Size", 1)
def Size_1(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    return [Const(np.asarray(math.prod(ctx.shape(ins[0])), np.int64), ctx.base)]


@handles("ConstantOfShape", 9)
def ConstantOfShape_9(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    shape = _ints(ctx.need_const(ins[0], "ConstantOfShape's shape"))
    value = np.zeros(1, np.float32)
    if "value" in n.attrs:
        value = _const_from_tensor_attr(ctx, n.attrs["value"]).reshape(-1)
    return [Const(np.full(shape, value[0], value.dtype), ctx.base)]


@handles("Range", 11)
def Range_11(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    """y = start, start + delta, ... while < limit (> for negative delta)."""
    start, limit, delta = (np.asarray(ctx.need_const(v, "Range operands")).reshape(())
                           for v in ins[:3])
    count = max(int(np.ceil((limit - start) / delta)), 0)
    y = (start + np.arange(count) * delta).astype(start.dtype)
    return [Const(y, ctx.base)]


@handles("EyeLike", 9)
def EyeLike_9(ctx: Ctx, n: OnnxNode, ins: list[V | None]) -> list[V | None]:
    t = ctx.type(ins[0])
    dt = ir_dtype(ctx, n.attrs["dtype"]) if "dtype" in n.attrs else t.dtype
    arr = np.eye(t.shape[0], t.shape[1], n.attrs.get("k", 0), dtype=DTYPES[dt])
    return [Const(arr, ctx.base)]


def supported_ops() -> dict[str, int]:
    """ONNX op type -> lowest opset served."""
    return {op: min(v) for op, v in HANDLERS.items()}


__all__ = ["HANDLERS", "lookup", "supported_ops", "ir_dtype", "ONNX_DTYPES", "dtype_name"]
