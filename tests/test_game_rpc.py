"""The dispute game on a real JSON-RPC chain: a local Hardhat node (npm, pinned) started
and stopped by the test on 127.0.0.1, played through web3.py. The same moves and the
same winner as on revm; gas as a real chain charges it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hardhat import hardhat_node

from opmlc import api
from opmlc.cli.game import compile_contracts
from opmlc_runtime.agents import Fault, HonestView, LyingView, play
from opmlc_runtime.game import Game, RevmChain, RpcChain

pytestmark = [pytest.mark.evm, pytest.mark.rpc]
pytest.importorskip("web3")

ROOT = Path(__file__).resolve().parent.parent


def test_same_game_on_hardhat_and_revm() -> None:
    m = api.Model(api.compile(ROOT / "models" / "digits_cnn.onnx"))
    x = {"input": np.load(ROOT / "models" / "digits_test.npz")["X"][6].reshape(1, 1, 8, 8)}
    honest = HonestView(m.program, x)
    liar = LyingView(m.program, x, Fault(3, 5000, offset=2))
    contracts = compile_contracts()
    runs = {}
    with hardhat_node() as url:
        for chain in (RevmChain(), RpcChain(url)):
            events: list[str] = []
            out = play(Game(chain, *contracts), m.program, x, liar, honest, "challenger",
                       say=events.append)
            runs[chain.name] = (out, events)
        # a timeout on the real clock (evm_increaseTime) too
        silent = play(Game(RpcChain(url), *contracts), m.program, x, liar, honest,
                      "challenger", silent="submitter", silent_after=3)
    (a, ea), (b, eb) = runs["revm"], runs["rpc"]
    assert a.winner == b.winner == "challenger"
    assert ea[:-1] == eb[:-1]  # the same moves, posted roots and outcome (not the gas line)
    assert [t.function for t in a.txs] == [t.function for t in b.txs]
    assert (b.disputed_node, b.disputed_step) == (3, 5000)
    assert b.gas_max_tx <= 500_000 and b.gas_total > a.gas_total * 0.9
    assert silent.winner == "challenger"
