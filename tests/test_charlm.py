"""The trained char-level GPT (models/charlm.onnx): the integer models say the same next
characters as the float model (issue 11, part 1; figures: bench/bench_lm.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from backend_util import check_engines

from opmlc import api

ROOT = Path(__file__).resolve().parent.parent
DATA = np.load(ROOT / "models/charlm_heldout.npz")
MODEL = str(ROOT / "models/charlm.onnx")


def _agreement(scheme: str, n: int) -> tuple[float, api.Model]:
    X = DATA["X"][:n].astype(np.int64)
    m = api.Model(api.compile(MODEL, scheme=scheme,
                              calibration={"input_ids": DATA["calib"].astype(np.int64)}))
    sess = ort.InferenceSession(MODEL, providers=["CPUExecutionProvider"])
    same = 0
    for x in X:
        f = sess.run(None, {"input_ids": x[None]})[0].argmax(-1)
        q = m.run({"input_ids": x[None]}, "native").outputs["logits"].argmax(-1)
        same += int((f == q).sum())
    return same / X.size, m


@pytest.mark.parametrize("scheme,need", [("fixed", 0.995), ("int8", 0.98)])
def test_charlm_greedy_agreement(scheme: str, need: float) -> None:
    agree, _ = _agreement(scheme, 8)
    assert agree >= need, agree


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["fixed", "int8"])
def test_charlm_engines(scheme: str) -> None:
    m = api.Model(api.compile(MODEL, scheme=scheme,
                              calibration={"input_ids": DATA["calib"].astype(np.int64)}))
    check_engines(m, {"input_ids": DATA["X"][:1].astype(np.int64)})


def test_charlm_vocab() -> None:
    vocab = str(DATA["vocab"][0])
    assert len(vocab) == 96 and "\n" in vocab
    assert DATA["X"].shape[1] == 32 and DATA["X"].size >= 2000
