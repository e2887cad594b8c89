"""The demo: compile a model, run it three ways, and settle a dispute on an EVM.

Run with ``scripts/dev demo``. On the bundled digits CNN (``models/digits_cnn.onnx``):

1. compile it to a ``.opvm`` (fixed-point integer IR -> VM code + native kernels);
2. classify a held-out digit on the native engine, with the state root after every
   graph node (the phase-2 trace);
3. run the same artifact on the fast VM (bytecode translated to native code) and on
   the reference stepper (the ISA's definition, in Python): the outputs and every node
   root must be identical;
4. play the dispute game (``opmlc challenge``): a dishonest submitter claims a result
   whose computation went wrong inside one node; an honest challenger disputes it on
   the game contract, deployed with the generated one-step verifier on a real EVM
   (revm); bisection over node roots (phase 2) then over the node's VM steps (phase 1)
   ends in one step executed on chain, which sides with the honest party.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "digits_cnn.onnx"
DIGITS = ROOT / "models" / "digits_test.npz"


def _say(msg: str) -> None:
    print(msg, flush=True)


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="opmlc.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--digit", type=int, default=0, help="index of the held-out digit")
    args = ap.parse_args(argv)

    import opmlc
    from opmlc.cli.game import compile_contracts
    from opmlc_runtime.agents import Fault, HonestView, LyingView, play
    from opmlc_runtime.game import Game, RevmChain

    with np.load(DIGITS) as z:
        x, label = z["X"][args.digit], int(z["y"][args.digit])
    inputs = {"input": x.reshape(1, 1, 8, 8).astype(np.float32)}

    # 1. compile ------------------------------------------------------------------------
    out = Path(tempfile.mkdtemp(prefix="opmlc-demo-")) / "digits_cnn.opvm"
    t0 = time.perf_counter()
    opmlc.compile(MODEL, output=out, progress=False)
    model = opmlc.load(out)
    meta = model.meta
    nodes = meta["nodes"]
    total_steps = sum(int(n["steps"]) for n in nodes)
    _say(f"[1/4] compiled {MODEL.name} -> {out.name} ({out.stat().st_size:,} bytes) in "
         f"{time.perf_counter() - t0:.1f} s: {len(nodes)} nodes, {total_steps:,} VM steps, "
         f"memory {meta['memory']['total']:,} bytes (Merkle depth {meta['depth']})")

    # 2. native -------------------------------------------------------------------------
    t0 = time.perf_counter()
    _ = model.run(inputs, engine="native").state_root  # JIT-compiles kernels and keccak
    jit = time.perf_counter() - t0
    t0 = time.perf_counter()
    native = model.run(inputs, engine="native", trace=True)
    pred = int(np.argmax(native.outputs["logits"]))
    _say(f"[2/4] native engine: digit #{args.digit} (label {label}) classified as {pred} in "
         f"{1e3 * (time.perf_counter() - t0):.1f} ms (JIT {jit:.1f} s, once, cached on "
         f"disk); {len(native.node_roots)} node roots, final state root "
         f"{_hex(native.state_root)[:18]}...")

    # 3. fast VM and reference stepper ---------------------------------------------------
    for engine, label_ in (("vm", "fast VM"), ("stepper", "reference stepper")):
        t0 = time.perf_counter()
        res = model.run(inputs, engine=engine, trace=True)
        dt = time.perf_counter() - t0
        same_out = all(np.array_equal(native.outputs[k], res.outputs[k])
                       for k in native.outputs)
        same_roots = (res.node_roots == native.node_roots
                      and res.state_root == native.state_root)
        _say(f"[3/4] {label_}: {res.steps:,} steps in {dt:.2f} s ({res.steps / dt:,.0f} "
             f"steps/s); outputs identical: {same_out}; all {len(res.node_roots)} node roots "
             f"identical: {same_roots}")
        if not (same_out and same_roots):
            _say(f"native and {label_} disagree: this is a bug")
            return 1

    # 4. the dispute game -----------------------------------------------------------------
    program = model.program
    k = 1 + max(range(len(nodes)), key=lambda j: int(nodes[j]["steps"]))
    t = int(nodes[k - 1]["steps"]) * 9 // 10
    _say(f"[4/4] dispute: the submitter's computation goes wrong at step {t:,} of node {k} "
         f"({nodes[k - 1]['op']}, {int(nodes[k - 1]['steps']):,} steps); an honest "
         "challenger disputes its claim on chain (revm)")
    t0 = time.perf_counter()
    honest = HonestView(program, inputs)
    liar = LyingView(program, inputs, Fault(k, t))
    game = Game(RevmChain(), *compile_contracts())
    outcome = play(game, program, inputs, liar, honest, "challenger",
                   say=lambda m: _say("      " + m))
    _say(f"      {outcome.winner} wins in {time.perf_counter() - t0:.1f} s: "
         f"{outcome.rounds} bisection rounds, {outcome.transactions} transactions; the "
         f"disputed step {outcome.disputed_step:,} of node {outcome.disputed_node} was "
         "executed by the Solidity verifier -> the dishonest claim is rejected")
    return 0 if outcome.winner == "challenger" and outcome.disputed_step == t else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
