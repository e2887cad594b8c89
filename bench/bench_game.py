"""A whole dispute, end to end: rounds, transactions, gas and wall time (spec/GAME.md).

    .venv/bin/python bench/bench_game.py [--models digits_cnn,resnet50] [--no-rpc]

For each model: compile it, then play one dispute in which the submitter lies from the
middle of the model's longest node (the fault the issue asks for), first on revm (the
wall time: traces, agents and contract calls, everything `opmlc challenge` does after
the compile), then on a local Hardhat node started here on 127.0.0.1 (the gas a real
chain charges: revm undercounts storage that an earlier transaction touched). Prints one
row per model and chain, and the targets of issue 9:

* the digits dispute under 10 s of wall time;
* no transaction above 500,000 gas;
* at most ceil(log2 nodes) + ceil(log2 steps) + 6 transactions (binary game);
* the ResNet-50-light dispute under 5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from opmlc import api  # noqa: E402
from opmlc.cli.game import compile_contracts  # noqa: E402
from opmlc_runtime.agents import Fault, HonestView, LyingView, play  # noqa: E402
from opmlc_runtime.game import Game, RevmChain, RpcChain  # noqa: E402


def load(name: str) -> tuple[api.Model, dict]:
    if (ROOT / "models" / f"{name}.onnx").exists():
        m = api.Model(api.compile(ROOT / "models" / f"{name}.onnx"))
    else:
        from light_models import LIGHT, randomize_light

        m = api.Model(api.compile(randomize_light(LIGHT / f"light_{name}.onnx")))
    rng = np.random.default_rng(0)
    x = {}
    for s in m.program.inputs:
        if name.startswith("digits"):
            x[s["name"]] = np.load(ROOT / "models" / "digits_test.npz")["X"][0].reshape(
                s["shape"])
        else:
            x[s["name"]] = rng.uniform(-0.5, 0.5, s["shape"]).astype(np.float32)
    m.run(x, "native")  # JIT outside the timing (a party has its model loaded)
    return m, x


def one(chain, contracts, m, x) -> tuple:
    nodes = m.meta["nodes"]
    k = 1 + max(range(len(nodes)), key=lambda j: int(nodes[j]["steps"]))
    steps = int(nodes[k - 1]["steps"])
    t0 = time.perf_counter()
    honest = HonestView(m.program, x)
    liar = LyingView(m.program, x, Fault(k, steps // 2))
    out = play(Game(chain, *contracts), m.program, x, liar, honest, "challenger")
    wall = time.perf_counter() - t0
    budget = math.ceil(math.log2(len(nodes))) + math.ceil(math.log2(steps)) + 6
    return out, wall, k, steps, budget


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="digits_cnn,resnet50")
    ap.add_argument("--no-rpc", action="store_true", help="revm only")
    a = ap.parse_args()
    contracts = compile_contracts()
    rows = []
    hh = None
    if not a.no_rpc:
        from hardhat import hardhat_node

        hh = hardhat_node()
        url = hh.__enter__()
    try:
        for name in a.models.split(","):
            m, x = load(name)
            chains = [RevmChain()] + ([] if a.no_rpc else [RpcChain(url)])
            for chain in chains:
                out, wall, k, steps, budget = one(chain, contracts, m, x)
                rows.append((name, chain.name, k, steps, out, wall, budget))
    finally:
        if hh is not None:
            hh.__exit__(None, None, None)
    print(f"{'model':11s} {'chain':5s} {'node':>4s} {'steps':>9s} {'winner':>10s} {'rounds':>6s} "
          f"{'txs':>4s} {'budget':>6s} {'gas total':>10s} {'max tx':>8s} {'wall s':>7s}")
    for name, ch, k, steps, out, wall, budget in rows:
        print(f"{name:11s} {ch:5s} {k:4d} {steps:9.3g} {out.winner:>10s} {out.rounds:6d} "
              f"{out.transactions:4d} {budget:6d} {out.gas_total:10,d} {out.gas_max_tx:8,d} "
              f"{wall:7.2f}")
    for name, ch, _, _, out, wall, budget in rows:
        checks = [f"txs {out.transactions} <= {budget}: "
                  f"{'met' if out.transactions <= budget else 'missed'}"]
        if ch == "rpc":
            checks.append(f"max tx {out.gas_max_tx:,} <= 500,000: "
                          f"{'met' if out.gas_max_tx <= 500_000 else 'missed'}")
        if ch == "revm":
            limit = 10 if name.startswith("digits") else 300
            checks.append(f"wall {wall:.1f} s < {limit} s: "
                          f"{'met' if wall < limit else f'missed by {wall - limit:.1f} s'}")
        print(f"{name} ({ch}): " + "; ".join(checks))


if __name__ == "__main__":
    main()
