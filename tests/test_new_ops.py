"""ConvTranspose, Resize, TopK, ScatterElements / ScatterND and folded If / Loop end to end:
the float IR against onnx's reference evaluator, the integer model near the float one, and
the compiled program bit-exact on every engine (ref == native == VM, every tensor)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from backend_util import check_engines, check_graph
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from opmlc import api
from opmlc.errors import OpmlcError
from opmlc.frontend import import_onnx
from opmlc.ir import Graph, Node, TensorType, evaluate
from opmlc.ir.ops import canonical_attrs, infer_types
from opmlc.quantize import QuantizeError, quantize

R = np.random.default_rng(11)
F = TensorProto.FLOAT


def _model(nodes: list, inputs: dict[str, tuple], outputs: dict[str, tuple],
           inits: dict[str, np.ndarray] | None = None, opset: int = 18) -> onnx.ModelProto:
    def vi(name: str, spec: tuple) -> onnx.ValueInfoProto:
        shape, dt = spec if len(spec) == 2 and isinstance(spec[0], tuple) else (spec, F)
        return helper.make_tensor_value_info(name, dt, list(shape))

    g = helper.make_graph(nodes, "g", [vi(k, v) for k, v in inputs.items()],
                          [vi(k, v) for k, v in outputs.items()],
                          [numpy_helper.from_array(v, k) for k, v in (inits or {}).items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _reference(model: onnx.ModelProto, feed: dict[str, np.ndarray], ort: bool = False
               ) -> list[np.ndarray]:
    if ort:
        import onnxruntime

        return onnxruntime.InferenceSession(model.SerializeToString(),
                                            providers=["CPUExecutionProvider"]).run(None, feed)
    return ReferenceEvaluator(model).run(None, feed)


def _check(model: onnx.ModelProto, feed: dict[str, np.ndarray], atol: float,
           scheme: str = "fixed", exact: tuple[str, ...] = (), ort: bool = False) -> None:
    """float IR == onnx's reference evaluator (or onnxruntime); integer outputs within atol
    of it (``exact``: equal); ref == native == vm on the compiled program."""
    want = _reference(model, feed, ort)
    names = [o.name for o in model.graph.output]
    g = import_onnx(model)
    got = evaluate(g, feed)
    for n, w in zip(names, want, strict=True):
        np.testing.assert_allclose(got[n], w, rtol=1e-5, atol=1e-5, err_msg=f"float {n}")
    m = api.Model(api.compile(model, scheme=scheme, calibration={
        k: np.stack([v, v * 0.5]) for k, v in feed.items() if v.dtype.kind == "f"} or None))
    ref = check_engines(m, feed)
    out = m.dequantize(ref.outputs)
    for n, w in zip(names, want, strict=True):
        if n in exact:
            np.testing.assert_array_equal(out[n], w, err_msg=f"int {n}")
        else:
            np.testing.assert_allclose(out[n], w, rtol=0, atol=atol, err_msg=f"int {n}")


@pytest.mark.parametrize(("attrs", "w_shape", "x_shape"), [
    ({"strides": [2, 1], "pads": [1, 0, 0, 1], "output_padding": [1, 0]}, (2, 3, 3, 3),
     (1, 2, 5, 4)),
    ({"group": 2, "dilations": [2, 1], "strides": [1, 2], "auto_pad": "SAME_UPPER"},
     (4, 1, 2, 3), (1, 4, 3, 3)),
    ({"strides": [3], "output_shape": [9]}, (1, 2, 2), (2, 1, 3)),
], ids=["stride_pad_outpad", "group_dilation_same", "output_shape_1d"])
def test_conv_transpose(attrs: dict, w_shape: tuple, x_shape: tuple) -> None:
    w = R.normal(size=w_shape).astype(np.float32)
    b = R.normal(size=(w_shape[1] * attrs.get("group", 1),)).astype(np.float32)
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], **attrs)
    probe = _model([node], {"x": x_shape}, {"y": ()}, {"w": w, "b": b})
    x = R.normal(size=x_shape).astype(np.float32)
    shape = _reference(probe, {"x": x}, ort=True)[0].shape
    _check(_model([node], {"x": x_shape}, {"y": shape}, {"w": w, "b": b}), {"x": x}, 1e-3,
           ort=True)


@pytest.mark.parametrize(("attrs", "scales", "sizes", "scheme", "atol"), [
    ({"mode": "nearest", "nearest_mode": "round_prefer_ceil"}, None, [1, 2, 7, 3], "fixed",
     0.0),
    ({"mode": "linear"}, [1, 1, 2.0, 1.5], None, "fixed", 1e-4),
    ({"mode": "linear", "coordinate_transformation_mode": "align_corners"}, None,
     [1, 2, 3, 9], "int8", 0.05),
    ({"mode": "cubic", "exclude_outside": 1, "cubic_coeff_a": -0.5}, [1, 1, 0.8, 1.7], None,
     "fixed", 3e-4),
    ({"mode": "linear", "antialias": 1, "axes": [3]}, [0.6], None, "fixed", 1e-4),
    ({"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize",
      "extrapolation_value": 2.5}, None, [1, 2, 4, 4], "fixed", 1e-4),
], ids=["nearest_ceil", "linear_half_pixel", "linear_align_int8", "cubic_exclude",
        "linear_antialias_axis", "crop_extrapolate"])
def test_resize(attrs: dict, scales: list | None, sizes: list | None, scheme: str,
                atol: float) -> None:
    x = np.round(R.normal(size=(1, 2, 4, 5)) * 4).astype(np.float32) / 4
    inits = {"roi": np.array([0, 0, -0.2, 0.1, 1, 1, 0.9, 1.3], np.float32)}
    if scales is not None:
        inits["scales"] = np.array(scales, np.float32)
        names = ["x", "roi", "scales"]
    else:
        inits["sizes"] = np.array(sizes, np.int64)
        names = ["x", "roi", "", "sizes"]
    node = helper.make_node("Resize", names, ["y"], **attrs)
    probe = _model([node], {"x": x.shape}, {"y": ()}, inits)
    shape = ReferenceEvaluator(probe).run(None, {"x": x})[0].shape
    _check(_model([node], {"x": x.shape}, {"y": shape}, inits), {"x": x}, atol, scheme)


@pytest.mark.parametrize(("axis", "k", "largest"), [(1, 3, 1), (0, 2, 0), (-1, 5, 0)])
def test_topk(axis: int, k: int, largest: int) -> None:
    """Ties (values on a 0.5 grid) come out lowest index first, as onnx's reference."""
    x = (R.integers(-3, 4, (4, 6)) / 2).astype(np.float32)
    node = helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=axis, largest=largest)
    ax = axis % 2
    shape = tuple(k if d == ax else n for d, n in enumerate(x.shape))
    m = _model([node], {"x": x.shape}, {"v": shape, "i": (shape, TensorProto.INT64)},
               {"k": np.array([k], np.int64)})
    _check(m, {"x": x}, 0.0, exact=("v", "i"))


@pytest.mark.parametrize(("op", "reduction", "idx"), [
    ("ScatterElements", "none", np.array([[0, -1], [2, 0], [0, 1]], np.int64)),
    ("ScatterElements", "max", np.array([[1, 1], [3, 3], [2, 0]], np.int64)),
    ("ScatterND", "add", np.array([[1], [-4], [1]], np.int64)),
    ("ScatterND", "none", np.array([[0, 2], [3, 1]], np.int64)),
])
def test_scatter(op: str, reduction: str, idx: np.ndarray) -> None:
    """norm:scatter-order: duplicate and negative indices, updates applied in order."""
    data = (R.integers(-8, 8, (4, 3)) / 4).astype(np.float32)
    if op == "ScatterElements":
        upd_shape = idx.shape
        attrs = {"axis": 0, "reduction": reduction}
    else:
        upd_shape = idx.shape[:-1] + data.shape[idx.shape[-1]:]
        attrs = {"reduction": reduction}
    upd = (R.integers(-8, 8, upd_shape) / 4).astype(np.float32)
    node = helper.make_node(op, ["x", "i", "u"], ["y"], **attrs)
    m = _model([node], {"x": data.shape, "u": upd_shape}, {"y": data.shape}, {"i": idx})
    _check(m, {"x": data, "u": upd}, 1e-5)


def test_scatter_mul_refused_by_name() -> None:
    node = helper.make_node("ScatterElements", ["x", "i", "u"], ["y"], reduction="mul")
    m = _model([node], {"x": (3,), "u": (2,)}, {"y": (3,)}, {"i": np.array([0, 2])})
    with pytest.raises(QuantizeError, match=r"scatter_elements -> y: reduction 'mul'"):
        quantize(import_onnx(m))


def test_if_constant_condition_inlined() -> None:
    then = helper.make_graph([helper.make_node("Relu", ["x"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", F, [2, 3])])
    other = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", F, [2, 3])])
    for cond, op in ((True, "relu"), (False, "mul")):
        node = helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)
        m = _model([node], {"x": (2, 3)}, {"y": (2, 3)}, {"c": np.array(cond)})
        assert [n.op for n in import_onnx(m).nodes] == [op if op == "relu" else "neg"]
        _check(m, {"x": R.normal(size=(2, 3)).astype(np.float32)}, 1e-5)


def _loop_body() -> onnx.GraphProto:
    """(i, cond, acc) -> (cond, acc + x * i, acc): a carried sum and a scan output."""
    nodes = [helper.make_node("Cast", ["i"], ["fi"], to=F),
             helper.make_node("Mul", ["x", "fi"], ["xi"]),
             helper.make_node("Add", ["acc", "xi"], ["acc_out"]),
             helper.make_node("Identity", ["acc"], ["scan"]),
             helper.make_node("Identity", ["cond"], ["cond_out"])]
    return helper.make_graph(nodes, "body", [
        helper.make_tensor_value_info("i", TensorProto.INT64, []),
        helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        helper.make_tensor_value_info("acc", F, [3])], [
        helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
        helper.make_tensor_value_info("acc_out", F, [3]),
        helper.make_tensor_value_info("scan", F, [3])])


def test_loop_constant_trip_count_unrolled() -> None:
    node = helper.make_node("Loop", ["m", "c", "a0"], ["acc", "scans"], body=_loop_body())
    m = _model([node], {"x": (3,), "a0": (3,)}, {"acc": (3,), "scans": (4, 3)},
               {"m": np.array(4, np.int64), "c": np.array(True)})
    _check(m, {"x": R.normal(size=3).astype(np.float32),
               "a0": R.normal(size=3).astype(np.float32)}, 1e-4)


def test_loop_run_time_trip_count_is_a_clear_error() -> None:
    node = helper.make_node("Loop", ["m", "", "a0"], ["acc", "scans"], body=_loop_body(),
                            name="the_loop")
    m = _model([node], {"x": (3,), "a0": (3,), "m": ((), TensorProto.INT64)},
               {"acc": (3,), "scans": (4, 3)})
    with pytest.raises(OpmlcError, match=r"the_loop.*Loop trip count must be a compile-time"):
        import_onnx(m)


def test_resize_bad_mode_names_the_node() -> None:
    node = helper.make_node("Resize", ["x", "", "s"], ["y"], mode="nearest", antialias=1,
                            name="rs")
    m = _model([node], {"x": (1, 1, 2, 2)}, {"y": (1, 1, 4, 4)},
               {"s": np.array([1, 1, 2, 2], np.float32)})
    with pytest.raises(OpmlcError, match=r"rs.*antialias=1 with mode=nearest"):
        import_onnx(m)


def _q_resize_graph(shape: tuple, sizes: list, mode: str, coord: str, dtype: str,
                    zp: int) -> Graph:
    g = Graph()
    g.inputs = ["x"]
    g.types["x"] = TensorType(dtype, shape)
    a = canonical_attrs("q.resize", {
        "sizes": sizes, "scales": [o / i for o, i in zip(sizes, shape, strict=True)],
        "mode": mode, "coordinate_transformation_mode": coord, "x_zp": zp, "zp": zp,
        "dtype": dtype})
    (t,) = infer_types("q.resize", [g.types["x"]], a)
    g.types["y"] = t
    g.nodes.append(Node("q.resize", ("x",), ("y",), a))
    g.outputs = ["y"]
    return g


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=st.integers(1, 5), w=st.integers(1, 5), oh=st.integers(1, 9), ow=st.integers(1, 9),
       mode=st.sampled_from(["nearest", "linear", "cubic"]),
       coord=st.sampled_from(["half_pixel", "align_corners", "asymmetric",
                              "pytorch_half_pixel"]),
       zp=st.integers(-20, 20), seed=st.integers(0, 2**32 - 1))
def test_q_resize_hypothesis(h: int, w: int, oh: int, ow: int, mode: str, coord: str, zp: int,
                             seed: int) -> None:
    """norm:resize-taps, norm:resize-weights: q.resize over random shapes, modes and
    coordinate maps: ref == native == vm."""
    g = _q_resize_graph((2, h, w), [2, oh, ow], mode, coord, "i8", zp)
    x = np.random.default_rng(seed).integers(-128, 128, (2, h, w)).astype(np.int8)
    check_graph(g, {"x": x})


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 7), k=st.integers(1, 7), largest=st.integers(0, 1),
       seed=st.integers(0, 2**32 - 1))
def test_q_topk_hypothesis(n: int, k: int, largest: int, seed: int) -> None:
    """norm:topk-order: q.topk with many ties (codes in -2..2): ref == native == vm, and the
    order is onnx's."""
    k = min(k, n)
    g = Graph()
    g.inputs = ["x"]
    g.types["x"] = TensorType("i16", (3, n))
    a = {"axis": 1, "k": k, "largest": largest}
    ts = infer_types("q.topk", [g.types["x"]], a)
    g.types.update({"v": ts[0], "i": ts[1]})
    g.nodes.append(Node("q.topk", ("x",), ("v", "i"), a))
    g.outputs = ["v", "i"]
    x = np.random.default_rng(seed).integers(-2, 3, (3, n)).astype(np.int16)
    check_graph(g, {"x": x})
    node = helper.make_node("TopK", ["x", "k"], ["v", "i"], largest=largest)
    want = ReferenceEvaluator(_model([node], {"x": (3, n)}, {"v": (3, k), "i": (
        (3, k), TensorProto.INT64)}, {"k": np.array([k], np.int64)})).run(
        None, {"x": x.astype(np.float32)})
    from opmlc.quantize import evaluate_int

    got = evaluate_int(g, {"x": x})
    np.testing.assert_array_equal(got["i"], want[1])
