"""Per-op table: single-node ONNX models through the float engine vs onnxruntime.

Each record: (ONNX op, input shapes (float32 unless a dtype is given), attributes,
constant inputs (initializers), opset).  Both sides run the same model.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from opmlc.onnx_backend import prepare


class Rec(NamedTuple):
    op: str
    inputs: list[tuple[int, ...] | tuple[tuple[int, ...], Any]]
    attrs: dict[str, Any] = {}
    consts: list[np.ndarray] = []
    opset: int = 17
    n_out: int = 1


def i64(*v: int) -> np.ndarray:
    return np.asarray(v, np.int64)


S = (2, 3, 4)
RECORDS: dict[str, Rec] = {
    # elementwise
    "add_bcast": Rec("Add", [S, (4,)]),
    "sub": Rec("Sub", [S, S]),
    "mul": Rec("Mul", [S, (3, 1)]),
    "div": Rec("Div", [S, S]),
    "pow": Rec("Pow", [S], consts=[np.float32(2.0)]),
    "min3": Rec("Min", [S, S, (4,)]),
    "max": Rec("Max", [S, S]),
    "sum3": Rec("Sum", [S, S, S]),
    "mean": Rec("Mean", [S, S]),
    "neg": Rec("Neg", [S]), "abs": Rec("Abs", [S]), "relu": Rec("Relu", [S]),
    "leaky": Rec("LeakyRelu", [S], {"alpha": 0.2}),
    "clip11": Rec("Clip", [S], consts=[np.float32(-0.5), np.float32(0.5)]),
    "clip6": Rec("Clip", [S], {"min": -0.3, "max": 0.2}, opset=10),
    "where": Rec("Where", [((2, 3, 4), np.bool_), S, S]),
    "less": Rec("Less", [S, S]), "greater": Rec("Greater", [S, S]),
    "equal_int": Rec("Equal", [(S, np.int64), (S, np.int64)]),
    "not": Rec("Not", [(S, np.bool_)]),
    "cast_i64": Rec("Cast", [S], {"to": TensorProto.INT64}),
    "prelu": Rec("PRelu", [(1, 3, 4, 4)], consts=[np.full((3, 1, 1), 0.25, np.float32)]),
    # nonlinear
    "exp": Rec("Exp", [S]), "log": Rec("Log", [S]), "tanh": Rec("Tanh", [S]),
    "sigmoid": Rec("Sigmoid", [S]), "erf": Rec("Erf", [S]), "sqrt": Rec("Sqrt", [S]),
    "reciprocal": Rec("Reciprocal", [S]), "sin": Rec("Sin", [S]), "cos": Rec("Cos", [S]),
    "softmax13": Rec("Softmax", [S], {"axis": 1}, opset=13),
    "softmax11": Rec("Softmax", [S], {"axis": 1}, opset=11),
    "logsoftmax": Rec("LogSoftmax", [S], {"axis": -1}),
    "layernorm": Rec("LayerNormalization", [S], {"axis": -1},
                     consts=[np.linspace(0.5, 1.5, 4, dtype=np.float32),
                             np.linspace(-1, 1, 4, dtype=np.float32)]),
    "lrn": Rec("LRN", [(1, 6, 5, 5)], {"size": 3}),
    "gelu": Rec("Gelu", [S], opset=20),
    "batchnorm": Rec("BatchNormalization", [(2, 3, 4, 4)], {"epsilon": 1e-3},
                     consts=[np.float32([1, 2, 3]), np.float32([0, 1, -1]),
                             np.float32([0.1, 0.2, 0.3]), np.float32([1, 0.5, 2])]),
    # reductions
    "reducemean13": Rec("ReduceMean", [S], {"axes": [1], "keepdims": 0}, opset=13),
    "reducemean18": Rec("ReduceMean", [S], {"keepdims": 1}, consts=[i64(-1)], opset=18),
    "reducesum13": Rec("ReduceSum", [S], consts=[i64(0, 2)], opset=13),
    "reducemax": Rec("ReduceMax", [S], {"axes": [2]}, opset=13),
    "reducemin": Rec("ReduceMin", [S], {"axes": [0, 1]}, opset=13),
    "argmax": Rec("ArgMax", [S], {"axis": 1, "keepdims": 0}),
    "maxpool": Rec("MaxPool", [(1, 2, 7, 7)], {"kernel_shape": [3, 3], "strides": [2, 2],
                                               "pads": [1, 1, 1, 1]}),
    "maxpool_ceil": Rec("MaxPool", [(1, 2, 8, 8)], {"kernel_shape": [3, 3], "strides": [2, 2],
                                                    "ceil_mode": 1}),
    "avgpool": Rec("AveragePool", [(1, 2, 7, 7)], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
    "avgpool_incl": Rec("AveragePool", [(1, 2, 7, 7)], {"kernel_shape": [2, 2], "strides": [2, 2],
                                                        "pads": [1, 1, 0, 0],
                                                        "count_include_pad": 1}),
    "globalavgpool": Rec("GlobalAveragePool", [(1, 3, 5, 5)]),
    # contraction
    "matmul": Rec("MatMul", [(2, 3, 4), (4, 5)]),
    "matmul_batched": Rec("MatMul", [(2, 3, 4), (2, 4, 5)]),
    "gemm": Rec("Gemm", [(3, 4)], {"transB": 1, "alpha": 0.5, "beta": 2.0},
                consts=[np.ones((5, 4), np.float32) * 0.3, np.arange(5, dtype=np.float32)]),
    "conv": Rec("Conv", [(1, 3, 9, 9), (4, 3, 3, 3), (4,)], {"pads": [1, 1, 1, 1],
                                                             "strides": [2, 2]}),
    "conv_group": Rec("Conv", [(1, 4, 6, 6), (6, 2, 3, 3)], {"group": 2}),
    "conv_depthwise": Rec("Conv", [(1, 4, 6, 6), (4, 1, 3, 3)], {"group": 4,
                                                                 "auto_pad": "SAME_UPPER"}),
    "conv_dilated1d": Rec("Conv", [(2, 3, 10), (2, 3, 3)], {"dilations": [2]}),
    "einsum": Rec("Einsum", [(2, 3, 4), (2, 4, 5)], {"equation": "bij,bjk->bik"}, opset=12),
    # data movement
    "reshape": Rec("Reshape", [S], consts=[i64(0, -1)]),
    "flatten": Rec("Flatten", [(2, 3, 4, 5)], {"axis": 2}),
    "transpose": Rec("Transpose", [S], {"perm": [2, 0, 1]}),
    "squeeze13": Rec("Squeeze", [(2, 1, 4)], consts=[i64(1)], opset=13),
    "squeeze11": Rec("Squeeze", [(2, 1, 4)], {"axes": [1]}, opset=11),
    "unsqueeze13": Rec("Unsqueeze", [S], consts=[i64(0, -1)], opset=13),
    "concat": Rec("Concat", [S, (2, 1, 4)], {"axis": 1}),
    "split13": Rec("Split", [(2, 6)], {"axis": 1}, consts=[i64(2, 4)], opset=13, n_out=2),
    "split18": Rec("Split", [(2, 7)], {"axis": 1, "num_outputs": 3}, opset=18, n_out=3),
    "slice": Rec("Slice", [(5, 6)], consts=[i64(1, -1), i64(4, 1), i64(0, 1), i64(2, -2)]),
    "slice9": Rec("Slice", [(5, 6)], {"starts": [1], "ends": [100], "axes": [1]}, opset=9),
    "gather": Rec("Gather", [(5, 4), ((2, 3), np.int64)], {"axis": 0}),
    "expand": Rec("Expand", [(3, 1)], consts=[i64(2, 3, 4)]),
    "tile": Rec("Tile", [(2, 3)], consts=[i64(2, 2)]),
    "pad": Rec("Pad", [(2, 3)], {"mode": "reflect"}, consts=[i64(1, 1, 1, 1)]),
    "pad_const": Rec("Pad", [(2, 3)], consts=[i64(0, 2, 1, 0), np.float32(1.5)]),
    "trilu": Rec("Trilu", [(4, 5)], {"upper": 0}, consts=[np.asarray(1, np.int64)]),
    "identity": Rec("Identity", [S]),
    "dropout": Rec("Dropout", [S], opset=13),
}


def _inputs(rec: Rec, rng: np.random.Generator) -> tuple[list, dict[str, np.ndarray]]:
    vis, feed = [], {}
    for k, spec in enumerate(rec.inputs):
        shape, dt = (spec, np.float32) if not spec or isinstance(spec[0], int) else spec
        name = f"in{k}"
        if dt == np.bool_:
            arr = rng.random(shape) > 0.5
        elif np.dtype(dt).kind == "i":
            arr = rng.integers(0, 3, shape).astype(dt)
        else:
            arr = (rng.random(shape) * 2 + 0.1).astype(dt)  # positive: log/sqrt defined
            if rec.op not in ("Log", "Sqrt", "Reciprocal", "Pow", "Div"):
                arr -= 1.1
        feed[name] = arr
        vis.append(helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(arr.dtype), shape))
    return vis, feed


def _model(rec: Rec, rng: np.random.Generator):  # noqa: ANN202
    vis, feed = _inputs(rec, rng)
    inits = [numpy_helper.from_array(np.asarray(c), f"c{k}") for k, c in enumerate(rec.consts)]
    names = [v.name for v in vis] + [t.name for t in inits]
    outs = [f"out{k}" for k in range(rec.n_out)]
    node = helper.make_node(rec.op, names, outs, **rec.attrs)
    graph = helper.make_graph([node], rec.op, vis,
                              [helper.make_empty_tensor_value_info(o) for o in outs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", rec.opset)])
    model.ir_version = 8
    return model, feed


@pytest.mark.parametrize("key", sorted(RECORDS))
def test_op_vs_onnxruntime(key: str) -> None:
    rec = RECORDS[key]
    model, feed = _model(rec, np.random.default_rng(0))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, feed)
    got = prepare(model, engine="float").run(feed)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
