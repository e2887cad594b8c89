"""The README's demo, end to end: compile, native == fast VM == stepper node roots, a dispute
game on an EVM won by the honest challenger."""

from __future__ import annotations

import pytest

from opmlc import demo


@pytest.mark.slow
@pytest.mark.evm
def test_demo_settles_the_dispute(capsys) -> None:
    assert demo.main(["--digit", "3"]) == 0
    out = capsys.readouterr().out
    assert "outputs identical: True" in out
    assert "node roots identical: True" in out
    assert out.count("node roots identical: True") == 2
    assert "challenger wins in" in out and "executes step" in out
