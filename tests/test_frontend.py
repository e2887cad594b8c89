"""Frontend: clear errors, --shape, folding passes, QDQ, external data, `opmlc ir`,
and whole models through the float reference vs onnxruntime."""

from __future__ import annotations

import glob
import os
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from light_models import LIGHT, randomize_light
from onnx import TensorProto, helper, numpy_helper

from opmlc.errors import ModelLoadError, OpmlcError, ShapeError, UnsupportedOpsError
from opmlc.frontend import import_onnx
from opmlc.ir import evaluate

ROOT = Path(__file__).resolve().parents[1]


def _model(nodes, inputs, outputs, inits=(), opset: int = 17) -> onnx.ModelProto:  # noqa: ANN001
    g = helper.make_graph(nodes, "t", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _f32(name: str, shape) -> onnx.ValueInfoProto:  # noqa: ANN001
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


# ---------------------------------------------------------------- errors


def test_unsupported_ops_listed_all_at_once() -> None:
    m = _model([helper.make_node("Relu", ["x"], ["a"], name="ok"),
                helper.make_node("NonMaxSuppression", ["a"], ["b"], name="nms"),
                helper.make_node("Unique", ["b"], ["c"], name="uniq"),
                helper.make_node("FooBar", ["c"], ["y"], name="foo", domain="com.acme")],
               [_f32("x", [1, 4])], [_f32("y", [1, 4])])
    with pytest.raises(UnsupportedOpsError) as e:
        import_onnx(m)
    assert {(op, name) for op, _, name in e.value.ops} == {
        ("NonMaxSuppression", "nms"), ("Unique", "uniq"), ("com.acme.FooBar", "foo")}
    assert "NonMaxSuppression (opset 17, node 'nms')" in str(e.value)


def test_dynamic_dim_names_input_and_flag() -> None:
    m = _model([helper.make_node("Relu", ["x"], ["y"])],
               [_f32("images", ["N", 3, 8, 8])], [_f32("y", None)])
    m.graph.node[0].input[0] = "images"
    with pytest.raises(ShapeError, match=r"'images'.*--shape images=Nx3x8x8"):
        import_onnx(m)
    g = import_onnx(m, shapes={"images": (2, 3, 8, 8)})
    assert g.types["images"].shape == (2, 3, 8, 8)
    with pytest.raises(ShapeError, match="does not match"):
        import_onnx(m, shapes={"images": (2, 4, 8, 8)})
    with pytest.raises(ShapeError, match="unknown input"):
        import_onnx(m, shapes={"imgs": (2, 3, 8, 8)})


def test_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        import_onnx(tmp_path / "missing.onnx")
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"\x00not a protobuf\xff" * 10)
    with pytest.raises(ModelLoadError, match="cannot read"):
        import_onnx(bad)


def test_old_opset_is_a_clear_error() -> None:
    m = _model([helper.make_node("Relu", ["x"], ["y"])], [_f32("x", [2])], [_f32("y", [2])],
               opset=6)
    with pytest.raises(ModelLoadError, match="opset 6"):
        import_onnx(m)


def test_errors_are_opmlc_errors() -> None:
    assert issubclass(UnsupportedOpsError, OpmlcError) and issubclass(ShapeError, OpmlcError)


# ---------------------------------------------------------------- folding


def test_shape_chain_folds_to_static_reshape() -> None:
    """Shape -> Gather -> Unsqueeze -> Concat -> Reshape (exporter leftovers) folds away."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "zero1"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["r"]),
        helper.make_node("Cast", ["half"], ["halfd"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["r", "halfd"], ["m"]),
        helper.make_node("Dropout", ["m"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.asarray(0, np.int64), "zero"),
             numpy_helper.from_array(np.asarray([0], np.int64), "zero1"),
             numpy_helper.from_array(np.asarray([-1], np.int64), "minus1"),
             numpy_helper.from_array(np.asarray(0.5, np.float64), "half")]
    g = import_onnx(_model(nodes, [_f32("x", [2, 3, 4])], [_f32("y", None)], inits))
    assert [n.op for n in g.nodes] == ["reshape", "mul"]
    assert g.nodes[0].attrs == {"shape": [2, 12]}


def test_batchnorm_folds_into_conv() -> None:
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    params = [rng.random(4).astype(np.float32) + 0.5 for _ in range(4)]
    inits = [numpy_helper.from_array(w, "w")] + [
        numpy_helper.from_array(p, n) for p, n in zip(params, ["s", "b", "m", "v"], strict=True)]
    m = _model([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["y"])],
               [_f32("x", [1, 3, 6, 6])], [_f32("y", None)], inits)
    g = import_onnx(m)
    assert [n.op for n in g.nodes] == ["conv"]
    unfolded = import_onnx(m, fold_batch_norm=False)
    assert [n.op for n in unfolded.nodes] == ["conv", "batch_norm"]
    x = {"x": rng.standard_normal((1, 3, 6, 6)).astype(np.float32)}
    want = ort.InferenceSession(m.SerializeToString()).run(None, x)[0]
    np.testing.assert_allclose(evaluate(g, x)["y"], want, rtol=1e-4, atol=1e-5)


def test_qdq_model_imports() -> None:
    """QuantizeLinear/DequantizeLinear pairs import; a DQ of constant weights stays a
    dequantize_linear of the integer constant (a quantizer keeps the model's integers)."""
    wq = np.arange(-6, 6, dtype=np.int8).reshape(4, 3)
    inits = [numpy_helper.from_array(np.float32(0.05), "xs"),
             numpy_helper.from_array(np.uint8(128), "xz"),
             numpy_helper.from_array(wq, "wq"),
             numpy_helper.from_array(np.float32(0.1), "ws"),
             numpy_helper.from_array(np.int8(0), "wz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"]),
             helper.make_node("MatMul", ["xd", "wd"], ["y"])]
    m = _model(nodes, [_f32("x", [2, 4])], [_f32("y", None)], inits, opset=13)
    g = import_onnx(m)
    assert [n.op for n in g.nodes] == ["quantize_linear", "dequantize_linear",
                                       "dequantize_linear", "matmul"]
    assert np.array_equal(g.consts[g.nodes[2].inputs[0]], wq)
    x = {"x": np.linspace(-3, 3, 8, dtype=np.float32).reshape(2, 4)}
    want = ort.InferenceSession(m.SerializeToString()).run(None, x)[0]
    np.testing.assert_allclose(evaluate(g, x)["y"], want, rtol=1e-6, atol=1e-6)


def test_external_data(tmp_path: Path) -> None:
    w = np.arange(64 * 32, dtype=np.float32).reshape(64, 32) / 1000
    m = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [_f32("x", [1, 64])],
               [_f32("y", None)], [numpy_helper.from_array(w, "w")])
    path = tmp_path / "ext.onnx"
    onnx.save_model(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.data", size_threshold=0)
    assert (tmp_path / "ext.data").exists()
    g = import_onnx(path)
    np.testing.assert_array_equal(g.consts["w"], w)


# ---------------------------------------------------------------- whole models


SLOW_LIGHT = {"light_bvlc_alexnet", "light_vgg19", "light_zfnet512", "light_densenet121",
              "light_inception_v2"}
LIGHT_MODELS = sorted(Path(p).stem for p in glob.glob(str(LIGHT / "*.onnx")))


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=[pytest.mark.slow] if n in SLOW_LIGHT else []) for n in LIGHT_MODELS])
def test_light_model_vs_onnxruntime(name: str) -> None:
    m = randomize_light(LIGHT / f"{name}.onnx")
    g = import_onnx(m)
    rng = np.random.default_rng(0)
    feed = {n: rng.standard_normal(g.types[n].shape).astype(np.float32) for n in g.inputs}
    got = evaluate(g, feed)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    want = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed), strict=True))
    for name_out in g.outputs:
        np.testing.assert_allclose(got[name_out], want[name_out], rtol=1e-3, atol=1e-5)


def test_resnet50_light_import_time() -> None:
    t0 = time.perf_counter()
    g = import_onnx(LIGHT / "light_resnet50.onnx")
    assert time.perf_counter() - t0 < 10
    assert sum(n.op == "conv" for n in g.nodes) == 53
    assert not any(n.op == "batch_norm" for n in g.nodes)  # all folded into the convs


MODELS = ROOT / "models"


def _need(name: str) -> Path:
    p = MODELS / name
    if not p.exists():
        pytest.skip(f"{p} not generated (scripts/make_models.py)")
    return p


@pytest.mark.parametrize("name", ["digits_cnn.onnx", "gpt2_tiny.onnx", "llama_tiny.onnx",
                                  "digits_mlp_sklearn.onnx"])
def test_project_model_vs_onnxruntime(name: str) -> None:
    path = _need(name)
    g = import_onnx(path)
    rng = np.random.default_rng(0)
    feed = {}
    for n in g.inputs:
        t = g.types[n]
        feed[n] = (rng.integers(0, 64, t.shape) if t.dtype == "i64"
                   else rng.uniform(0, 16, t.shape)).astype(t.np_dtype)
    got = evaluate(g, feed)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for o, w in zip([o.name for o in sess.get_outputs()], sess.run(None, feed), strict=True):
        np.testing.assert_allclose(got[o], w, rtol=1e-4, atol=1e-5)


def test_sklearn_mlp_accuracy_matches_onnxruntime() -> None:
    path = _need("digits_mlp_sklearn.onnx")
    data = np.load(_need("digits_test.npz"))
    g = import_onnx(path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    labels = [int(evaluate(g, {"input": x[None]})["label"][0]) for x in data["X"]]
    ort_labels = [int(sess.run(["label"], {"input": x[None]})[0][0]) for x in data["X"]]
    assert labels == ort_labels
    assert np.mean(np.asarray(labels) == data["y"]) > 0.9


def test_models_dir_env_is_not_required() -> None:
    assert os.path.isdir(LIGHT)
