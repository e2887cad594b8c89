"""Fuzzing with a small budget (issue 12); the longer documented run is scripts/fuzz.py.

Each target's oracle is in scripts/fuzz.py: witnesses (the contract reverts or returns the
stepper's post root), mutated .opvm artifacts and ONNX models (a clean one-line refusal or
success through the CLI), and random assembly (an image that round-trips, or an AsmError).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import fuzz  # noqa: E402 - scripts/fuzz.py

FEW = settings(max_examples=25, deadline=None, database=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow])


def _cases(n: int):
    def budget(k: int) -> bool:
        return k < n
    return budget


@FEW
@given(st.integers(0, 2**32))
def test_fuzz_asm(seed: int) -> None:
    stats = fuzz.fuzz_asm(random.Random(seed), _cases(40))
    assert stats["findings"] == []


@pytest.fixture(scope="module")
def artifact() -> bytes:
    return fuzz.seed_artifact()


def test_fuzz_opvm(artifact: bytes) -> None:
    @FEW
    @given(st.integers(0, 2**32))
    def run(seed: int) -> None:
        stats = fuzz.fuzz_opvm(random.Random(seed), _cases(4), artifact)
        assert stats["findings"] == []  # neither the library load nor the CLI

    run()


@FEW
@given(st.integers(0, 2**32))
def test_fuzz_onnx(seed: int) -> None:
    root = Path(__file__).resolve().parent.parent
    stats = fuzz.fuzz_onnx(random.Random(seed), _cases(3),
                           (root / "models" / "digits_mlp_sklearn.onnx").read_bytes())
    assert stats["findings"] == []


@pytest.mark.evm
def test_fuzz_witness() -> None:
    pytest.importorskip("pyrevm")
    stats = fuzz.fuzz_witness(random.Random(12), _cases(3000))
    assert stats["wrong_root_accepted"] == 0 and stats["genuine_refused"] == 0
    assert stats["refused"] > 2000 and stats["findings"] == []
