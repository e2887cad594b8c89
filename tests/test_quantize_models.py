"""Whole models quantized under both schemes; accuracy figures asserted (slow)."""

from __future__ import annotations

import glob
import os
import time

import numpy as np
import pytest

from opmlc.frontend.importer import import_onnx
from opmlc.ir import evaluate, parse_graph, print_graph
from opmlc.quantize import evaluate_int, quantize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIGHT = os.path.join(os.path.dirname(__import__("onnx").__file__), "backend/test/data/light")


def _train_split() -> np.ndarray:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    return train_test_split(x.astype(np.float32), y, train_size=1500, random_state=0,
                            stratify=y)[0]


@pytest.mark.slow
@pytest.mark.parametrize("scheme,need", [("fixed", 0.995), ("int8", 0.99)])
@pytest.mark.parametrize("model,out", [("digits_mlp_sklearn", "probabilities"),
                                       ("digits_cnn", "logits")])
def test_digits_argmax_agreement(model: str, out: str, scheme: str, need: float) -> None:
    g = import_onnx(os.path.join(ROOT, "models", model + ".onnx"))
    shape = g.types[g.inputs[0]].shape
    qm = quantize(g, scheme, {g.inputs[0]: _train_split().reshape((-1,) + shape[1:])})
    xs = np.load(os.path.join(ROOT, "models/digits_test.npz"))["X"]
    same = sum(int(np.argmax(evaluate(g, {g.inputs[0]: x.reshape(shape)})[out])
                   == np.argmax(qm.run({g.inputs[0]: x.reshape(shape)})[out])) for x in xs)
    assert same / len(xs) >= need


@pytest.mark.slow
@pytest.mark.parametrize("scheme,bound", [("fixed", 0.01), ("int8", 1.0)])
@pytest.mark.parametrize("model", ["gpt2_tiny", "llama_tiny"])
def test_decoder_logits(model: str, scheme: str, bound: float) -> None:
    g = import_onnx(os.path.join(ROOT, "models", model + ".onnx"))
    rng = np.random.default_rng(0)
    qm = quantize(g, scheme, {"input_ids": rng.integers(0, 64, (32, 8))})
    worst = 0.0
    for _ in range(8):
        ids = rng.integers(0, 64, (1, 8))
        f = evaluate(g, {"input_ids": ids})["logits"]
        worst = max(worst, float(np.abs(f - qm.run({"input_ids": ids})["logits"]).max()
                                 / np.abs(f).max()))
    assert worst < bound, worst
    # the integer graph round-trips through the text form and runs deterministically
    assert parse_graph(print_graph(qm.graph), qm.graph.consts) == qm.graph
    x = qm.quantize_inputs({"input_ids": ids})
    assert np.array_equal(evaluate_int(qm.graph, x)["logits"],
                          evaluate_int(qm.graph, x)["logits"])


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(LIGHT, "*.onnx"))),
                         ids=lambda p: os.path.basename(p)[6:-5])
def test_light_model_fixed(path: str) -> None:
    import onnxruntime as ort

    g = import_onnx(path)
    qm = quantize(g, "fixed", n_synth=1)
    x = np.random.default_rng(1).standard_normal(g.types[g.inputs[0]].shape).astype(np.float32)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    out = qm.run({g.inputs[0]: x})[g.outputs[0]]
    assert np.abs(ref - out).max() / np.abs(ref).max() < 1e-3


@pytest.mark.slow
def test_resnet50_import_and_quantize_under_10s() -> None:
    t = time.perf_counter()
    g = import_onnx(os.path.join(LIGHT, "light_resnet50.onnx"))
    quantize(g, "fixed", n_synth=1)
    assert time.perf_counter() - t < 10.0
