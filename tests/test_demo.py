"""The README's demo, end to end: compile, native == VM node roots, a dispute to one EVM step."""

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
    assert "= honest True, = dishonest False" in out
