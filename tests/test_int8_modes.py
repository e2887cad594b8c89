"""int8 for transformers (issue 11 part 4): the mixed-precision modes of
opmlc/quantize/mixed.py and the SmoothQuant pass of opmlc/quantize/smooth.py
(figures: bench/bench_int8_layers.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from backend_util import check_engines

from opmlc import api
from opmlc.frontend.importer import import_onnx
from opmlc.ir import evaluate
from opmlc.quantize import QuantizeError, quantize
from opmlc.quantize.mixed import has_norm, wide_values
from opmlc.quantize.smooth import smooth

ROOT = Path(__file__).resolve().parent.parent
DATA = np.load(ROOT / "models/charlm_heldout.npz")
CAL = {"input_ids": DATA["calib"].astype(np.int64)}


def _charlm_errors(mode: str, n: int = 64) -> tuple[float, float]:
    """(greedy agreement with the float model, max |logit error| / max |float logit|) of
    charlm under int8 ``mode`` on the first n held-out windows (native kernels, which equal
    the integer reference bit for bit)."""
    g = import_onnx(str(ROOT / "models/charlm.onnx"))
    m = api.Model(api.compile(quantize(g, "int8", CAL, int8_mode=mode)))
    sess = ort.InferenceSession(str(ROOT / "models/charlm.onnx"),
                                providers=["CPUExecutionProvider"])
    same = total = 0
    worst = 0.0
    for x in DATA["X"][:n].astype(np.int64):
        f = sess.run(None, {"input_ids": x[None]})[0]
        q = m.dequantize(m.run({"input_ids": x[None]}, "native").outputs)["logits"]
        same += int((f.argmax(-1) == q.argmax(-1)).sum())
        total += x.size
        worst = max(worst, float(np.abs(f - q).max() / np.abs(f).max()))
    return same / total, worst


def test_default_beats_plain_on_charlm() -> None:
    """2,048 held-out positions (max error per window): plain 0.9834 / 0.096, auto
    0.993 / 0.033 (bench/bench_lm.py on all 41,120: plain 0.9684, auto 0.9849)."""
    agree_plain, err_plain = _charlm_errors("plain")
    agree, err = _charlm_errors("auto")
    assert agree >= 0.99 and err <= 0.04, (agree, err)
    assert agree > agree_plain and err < err_plain / 2


def test_all_16_bit_on_charlm() -> None:
    """w8a16 (every activation i16): measured 0.9961 / 0.019."""
    agree, err = _charlm_errors("all")
    assert agree >= 0.99 and err <= 0.025, (agree, err)


@pytest.mark.parametrize("model", ["charlm", "gpt2_tiny", "llama_tiny"])
def test_smooth_keeps_the_float_function(model: str) -> None:
    path = str(ROOT / "models" / f"{model}.onnx")
    g = import_onnx(path)
    rng = np.random.default_rng(0)
    cal = CAL if model == "charlm" else {"input_ids": rng.integers(0, 64, (16, 8))}
    s = smooth(g, cal)
    assert sum(k.endswith(".smooth") for k in s.consts) >= 6  # norms and weights rescaled
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    shape = g.types["input_ids"].shape
    for _ in range(3):
        ids = rng.integers(0, 64, shape).astype(np.int64)
        want = sess.run(None, {"input_ids": ids})[0]
        got = evaluate(s, {"input_ids": ids})["logits"]
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max())


def test_auto_is_plain_without_a_norm() -> None:
    """A convolutional net has no norm: auto keeps every activation i8 (same graph)."""
    g = import_onnx(str(ROOT / "models/digits_cnn.onnx"))
    assert not has_norm(g)
    x = {"input": np.random.default_rng(0).standard_normal((4, 1, 8, 8)).astype(np.float32)}
    a, b = quantize(g, "int8", x), quantize(g, "int8", x, int8_mode="plain")
    assert a.graph == b.graph


def test_groups_and_bad_mode() -> None:
    g = import_onnx(str(ROOT / "models/gpt2_tiny.onnx"))
    norm = wide_values(g, ("norm",))
    assert norm and all(g.types[v].dtype == "f32" for v in norm)
    assert wide_values(g, ("out",)) == frozenset({"logits"})
    assert norm < wide_values(g, ("all",))
    with pytest.raises(QuantizeError, match="unknown int8 mode"):
        quantize(g, "int8", int8_mode="norm+bogus")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["auto", "all", "smooth+attn+act", "gelu+resid"])
@pytest.mark.parametrize("model", ["gpt2_tiny", "llama_tiny"])
def test_modes_bit_exact_across_engines(model: str, mode: str) -> None:
    """i16 activations among i8 ones (softmax, luts, norms, matmuls of mixed widths): the
    reference, the native kernels and the VM agree tensor by tensor and root by root."""
    g = import_onnx(str(ROOT / "models" / f"{model}.onnx"))
    rng = np.random.default_rng(1)
    qm = quantize(g, "int8", {"input_ids": rng.integers(0, 64, (8, 8))}, int8_mode=mode)
    assert any(p is not None and p.dtype == "i16" for _, p in qm.params.values())
    m = api.Model(api.compile(qm))
    check_engines(m, {"input_ids": rng.integers(0, 64, (1, 8))})


@pytest.mark.parametrize("model,auto_bound", [("gpt2_tiny", 0.035), ("llama_tiny", 0.06)])
def test_default_beats_plain_on_tiny_decoders(model: str, auto_bound: float) -> None:
    """Random-weight decoders, calibrated and measured as tests/test_quantize_models.py:
    max relative logit error plain 0.089 / 0.082, auto 0.029 / 0.054, all 0.025 / 0.020."""
    g = import_onnx(str(ROOT / "models" / f"{model}.onnx"))
    errs = {}
    for mode in ("plain", "auto", "all"):
        rng = np.random.default_rng(0)
        qm = quantize(g, "int8", {"input_ids": rng.integers(0, 64, (32, 8))}, int8_mode=mode)
        errs[mode] = 0.0
        for _ in range(8):
            ids = {"input_ids": rng.integers(0, 64, (1, 8))}
            f = evaluate(g, ids)["logits"]
            errs[mode] = max(errs[mode], float(np.abs(f - qm.run(ids)["logits"]).max()
                                               / np.abs(f).max()))
    assert errs["auto"] < auto_bound < 0.08 < errs["plain"], errs
    assert errs["all"] < 0.03, errs


def test_fold_gelu_keeps_the_float_function() -> None:
    """charlm's three written-out GELUs (Div, Erf, Add, Mul, Mul) become gelu ops."""
    from opmlc.quantize.gelu import fold_gelu

    g = import_onnx(str(ROOT / "models/charlm.onnx"))
    h = fold_gelu(g)
    assert sum(n.op == "gelu" for n in h.nodes) == 3 and len(h.nodes) == len(g.nodes) - 12
    ids = {"input_ids": DATA["X"][0][None].astype(np.int64)}
    want = evaluate(g, ids)["logits"]
    np.testing.assert_allclose(evaluate(h, ids)["logits"], want, rtol=0,
                               atol=2e-5 * np.abs(want).max())
    qm = quantize(g, "int8", CAL, int8_mode="norm+gelu")
    assert sum(n.op == "q.lut" for n in qm.graph.nodes) == 3  # one Phi table per GELU
