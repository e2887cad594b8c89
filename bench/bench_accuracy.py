"""Accuracy of the integer models against the float models (issue 3, items 5-6).

    .venv/bin/python bench/bench_accuracy.py [--light] [--schemes fixed,int8]

* digits MLP (trained here: sklearn MLPClassifier, converted with skl2onnx) and digits CNN
  (models/digits_cnn.onnx): argmax agreement with the float model on the held-out digits
  (models/digits_test.npz), calibrated on the training split;
* gpt2_tiny, llama_tiny: max relative error of the logits (max |float - int| / max |float|)
  over 16 random token sequences, calibrated on 32 others;
* --light: the nine light models of the onnx package: output vs onnxruntime and the
  pre-softmax logits vs the float reference (random normal input, synthetic calibration),
  plus import + quantization time of each (ResNet-50 must stay under 10 s).
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from opmlc.frontend.importer import import_onnx  # noqa: E402
from opmlc.ir import evaluate  # noqa: E402
from opmlc.quantize import evaluate_int, quantize  # noqa: E402


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x.astype(np.float32), y, train_size=1500,
                                          random_state=0, stratify=y)
    return xtr, xte, ytr, yte


def train_mlp_onnx(xtr: np.ndarray, ytr: np.ndarray) -> bytes:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=1000, random_state=0).fit(xtr, ytr)
    m = convert_sklearn(clf, initial_types=[("input", FloatTensorType([1, 64]))],
                        target_opset={"": 13, "ai.onnx.ml": 3}, options={"zipmap": False})
    return m.SerializeToString()


def argmax_agreement(g, qm, xs: np.ndarray, out: str) -> float:  # noqa: ANN001
    inp = g.inputs[0]
    shape = g.types[inp].shape
    same = 0
    for x in xs:
        feed = {inp: x.reshape(shape)}
        f = evaluate(g, feed)[out]
        r = qm.run(feed)[out]
        same += int(np.argmax(f) == np.argmax(r))
    return same / len(xs)


def digits(schemes: list[str]) -> dict:
    import onnx

    xtr, _, ytr, _ = digits_split()
    xte = np.load(os.path.join(ROOT, "models/digits_test.npz"))["X"]
    path = os.path.join(ROOT, "build", "bench_digits_mlp.onnx")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(train_mlp_onnx(xtr, ytr))
    onnx.checker.check_model(path)
    res = {}
    for name, p, out in [("digits_mlp", path, "probabilities"),
                         ("digits_cnn", os.path.join(ROOT, "models/digits_cnn.onnx"), "logits")]:
        g = import_onnx(p)
        shape = g.types[g.inputs[0]].shape
        cal = {g.inputs[0]: xtr.reshape((-1,) + shape[1:])}
        for s in schemes:
            qm = quantize(g, s, cal)
            res[(name, s)] = argmax_agreement(g, qm, xte, out)
    return res


def decoders(schemes: list[str]) -> dict:
    rng = np.random.default_rng(0)
    cal = {"input_ids": rng.integers(0, 64, (32, 8)).astype(np.int64)}
    tests = [rng.integers(0, 64, (1, 8)).astype(np.int64) for _ in range(16)]
    res = {}
    for name in ("gpt2_tiny", "llama_tiny"):
        g = import_onnx(os.path.join(ROOT, f"models/{name}.onnx"))
        for s in schemes:
            qm = quantize(g, s, cal)
            worst = 0.0
            for ids in tests:
                f = evaluate(g, {"input_ids": ids})["logits"]
                r = qm.run({"input_ids": ids})["logits"]
                worst = max(worst, float(np.abs(f - r).max() / np.abs(f).max()))
            res[(name, s)] = worst
    return res


def light(schemes: list[str]) -> list[tuple]:
    import onnxruntime as ort

    d = os.path.join(os.path.dirname(__import__("onnx").__file__), "backend/test/data/light")
    rows = []
    for p in sorted(glob.glob(os.path.join(d, "*.onnx"))):
        name = os.path.basename(p)[6:-5]
        t = time.perf_counter()
        g = import_onnx(p)
        for s in schemes:
            t0 = time.perf_counter()
            qm = quantize(g, s, n_synth=1)
            tq = time.perf_counter() - t0 + (t0 - t if s == schemes[0] else 0.0)
            x = np.random.default_rng(1).standard_normal(g.types[g.inputs[0]].shape)
            x = x.astype(np.float32)
            sess = ort.InferenceSession(p, providers=["CPUExecutionProvider"])
            ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
            out = qm.run({g.inputs[0]: x})[g.outputs[0]]
            rel_out = float(np.abs(ref - out).max() / np.abs(ref).max())
            # the softmax input (logits): float reference vs dequantized integer value
            sm = [n for n in g.nodes if n.op == "softmax"]
            rel_logit = float("nan")
            if sm:
                lg = sm[-1].inputs[0]
                fenv = evaluate(g, {g.inputs[0]: x}, return_all=True)
                ienv = evaluate_int(qm.graph, qm.quantize_inputs({g.inputs[0]: x}),
                                    return_all=True)
                qn, pq = qm.params[lg]
                fl = fenv[lg]
                rel_logit = float(np.abs(fl - pq.dequantize(ienv[qn])).max() / np.abs(fl).max())
            rows.append((name, s, tq, rel_out, rel_logit))
            print(f"  {name:14s} {s:5s} import+quantize {tq:6.2f}s  output vs ORT {rel_out:.2e}"
                  f"  logits vs float {rel_logit:.2e}", flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--light", action="store_true", help="also the nine onnx light models")
    ap.add_argument("--schemes", default="fixed,int8")
    a = ap.parse_args()
    schemes = a.schemes.split(",")
    print("digits: argmax agreement with the float model on the 297 held-out digits")
    for (m, s), v in digits(schemes).items():
        need = 0.995 if s == "fixed" else 0.99
        print(f"  {m:12s} {s:5s} {v * 100:6.2f}%  (target >= {need * 100:.1f}%)")
    print("decoders: max relative error of the logits over 16 random sequences")
    for (m, s), v in decoders(schemes).items():
        print(f"  {m:12s} {s:5s} {v:.2e}")
    if a.light:
        print("light models (random normal input)")
        light(schemes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
