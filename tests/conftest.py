"""Settings every test shares."""

from __future__ import annotations

import pytest

from opmlc_runtime import native


@pytest.fixture(autouse=True)
def _split_small_programs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' programs are small, and a small program runs on one thread
    (native.PROGRAM_SPLIT_MIN_STEPS): here they split over the threads all the same, so
    every multi-thread test exercises the parts, the barriers and the split hashing.
    tests/test_native.py::test_small_program_one_thread checks the rule itself."""
    monkeypatch.setattr(native, "PROGRAM_SPLIT_MIN_STEPS", 0)
