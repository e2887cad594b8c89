"""Pre-quantized (QDQ) models keep their own integers (issue 11, part 5).

The digits CNN is quantized here by ``onnxruntime.quantization.quantize_static`` (QDQ
format, calibrated on the training split); opmlc compiles it with the model's own weights,
biases, scales and zero points (no re-quantization) and its integer outputs are compared
with onnxruntime running the same QDQ model, in quantized units of the output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from backend_util import check_engines
from onnx import numpy_helper

from opmlc import api

ROOT = Path(__file__).resolve().parent.parent


def digits_train() -> np.ndarray:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    return train_test_split(x.astype(np.float32), y, train_size=1500, random_state=0,
                            stratify=y)[0]


def make_qdq(out: Path, act: str = "QInt8", per_channel: bool = True, n_cal: int = 200
             ) -> Path:
    """models/digits_cnn.onnx through quantize_static (QDQ) into ``out``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"input": r.reshape(1, 1, 8, 8)} for r in digits_train()[:n_cal]])

        def get_next(self) -> dict | None:
            return next(self.it, None)

    quantize_static(str(ROOT / "models/digits_cnn.onnx"), str(out), Reader(),
                    quant_format=QuantFormat.QDQ, activation_type=getattr(QuantType, act),
                    weight_type=QuantType.QInt8, per_channel=per_channel)
    return out


def compare(path: Path) -> dict:
    """opmlc (native) against onnxruntime on the 297 held-out digits: argmax agreement and
    the largest difference of the output in quantized units (codes)."""
    model = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    last = next(n for n in model.graph.node if n.output[0] == "logits")
    scale, zp = float(inits[last.input[1]]), int(inits[last.input[2]])
    m = api.Model(api.compile(str(path)))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    data = np.load(ROOT / "models/digits_test.npz")
    same = worst = differ = acc = 0
    for x, label in zip(data["X"], data["y"], strict=True):
        x = x.reshape(1, 1, 8, 8)
        r = sess.run(None, {"input": x})[0]
        o = m.run({"input": x}, "native").outputs["logits"].astype(np.int64)
        codes = np.rint(r / scale).astype(np.int64) + zp
        d = int(np.abs(codes - o).max())
        worst, differ = max(worst, d), differ + (d > 0)
        same += int(np.argmax(r) == np.argmax(o))
        acc += int(np.argmax(o) == label)
    return {"n": len(data["y"]), "same_argmax": same, "max_code_diff": worst,
            "samples_differing": differ, "opmlc_accuracy": acc / len(data["y"]), "model": m,
            "inits": inits}


@pytest.mark.parametrize("act,per_channel", [("QInt8", True), ("QUInt8", False)])
def test_qdq_digits_cnn(tmp_path: Path, act: str, per_channel: bool) -> None:
    path = make_qdq(tmp_path / "cnn_qdq.onnx", act, per_channel)
    r = compare(path)
    print(f"\nQDQ digits CNN ({act}, per_channel={per_channel}): same argmax "
          f"{r['same_argmax']}/{r['n']}, max |opmlc - onnxruntime| = {r['max_code_diff']} "
          f"codes ({r['samples_differing']} samples differ), accuracy {r['opmlc_accuracy']:.4f}")
    assert r["same_argmax"] == r["n"]
    assert r["max_code_diff"] <= 1
    m = r["model"]
    x = np.load(ROOT / "models/digits_test.npz")["X"][0].reshape(1, 1, 8, 8)
    check_engines(m, {"input": x})  # ref == native == fast VM, tensor by tensor


def test_qdq_keeps_weights(tmp_path: Path) -> None:
    """The integer graph holds the QDQ model's int8 weights and int32 biases unchanged and
    its activations take the model's scales and zero points."""
    from opmlc.frontend import import_onnx
    from opmlc.quantize import quantize

    path = make_qdq(tmp_path / "cnn_qdq.onnx")
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    qm = quantize(import_onnx(str(path)), "fixed")  # the scheme is the model's own
    assert qm.scheme == "int8"
    consts = list(qm.graph.consts.values())
    for name in ("conv1.weight_quantized", "conv2.weight_quantized", "conv1.bias_quantized"):
        assert any(c.shape == inits[name].shape and np.array_equal(c, inits[name])
                   for c in consts), name
    fc = inits["fc.weight_quantized"].T
    assert any(c.shape == fc.shape and np.array_equal(c, fc) for c in consts)
    p = qm.inputs["input"]
    assert p.dtype == "i8" and p.scale == float(inits["input_scale"])
    assert p.zero_point == int(inits["input_zero_point"])
    po = qm.outputs["logits"]
    assert po.scale == float(inits["logits_scale"])
    assert po.zero_point == int(inits["logits_zero_point"])
