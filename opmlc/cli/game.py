"""``opmlc challenge``: play a whole dispute about one inference on an EVM (spec/GAME.md).

    opmlc challenge M.opvm --input x=x.npy [--fault node=K[,step=T][,byte=B]]
        [--liar submitter|challenger] [--garbage] [--silent submitter|challenger[:N]]
        [--rpc URL] [--json]

Compiles the contracts (the generated verifier and contracts/OpmlcGame.sol) with the
pinned solc, deploys them on an in-process EVM (revm) or, with ``--rpc``, on any JSON-RPC
chain whose first accounts are unlocked, registers the model, creates the task and plays
it with the runtime's agents (opmlc_runtime.agents): an honest party against a liar whose
states first go wrong at ``--fault`` (nodes from 1, steps within the node from 0, as in
``opmlc trace``). Without ``--json`` it tells the story move by move.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from opmlc.cli.common import (
    add_generation_args,
    add_input_arg,
    add_saturate_arg,
    generation_inputs,
    read_inputs,
    saturated,
)
from opmlc.errors import OpmlcError

ROOT = Path(__file__).resolve().parents[2]
GAME_SOL = ROOT / "contracts" / "OpmlcGame.sol"


def args_challenge(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifact", help=".opvm file")
    add_input_arg(p)
    add_generation_args(p)
    add_saturate_arg(p)
    p.add_argument("--fault", metavar="node=K[,step=T][,byte=B]",
                   help="where the liar's states first go wrong: node K's output (S_K), or the "
                        "state after step T + 1 of node K; B picks the byte of the node's "
                        "output region (default 0). Default with --liar: the longest node's "
                        "output")
    p.add_argument("--liar", choices=("submitter", "challenger"),
                   help="which side lies (default: the submitter when --fault is given; no liar "
                        "and no dispute otherwise)")
    p.add_argument("--garbage", action="store_true",
                   help="the liar also answers every phase-1 query with a made-up root")
    p.add_argument("--silent", metavar="SIDE[:N]",
                   help="SIDE (submitter or challenger) stops answering after N moves "
                        "(default 0) and loses on timeout")
    p.add_argument("--rpc", metavar="URL",
                   help="play on this JSON-RPC chain (e.g. a Hardhat node) instead of revm")
    p.add_argument("--json", action="store_true",
                   help='print {"winner", "honest", "rounds", "transactions", "gas_total", '
                        '"gas_max_tx", "seconds", "disputed_node", "disputed_step", "chain"} '
                        "(revm undercounts the gas of storage a previous transaction touched: "
                        "use --rpc for gas figures)")


def parse_fault(text: str):
    from opmlc_runtime.agents import Fault

    fields: dict[str, int] = {}
    for part in text.split(","):
        key, sep, val = part.partition("=")
        key = key.strip()
        if not sep or key not in ("node", "step", "byte") or key in fields:
            raise OpmlcError(f"bad --fault {text!r}; expected node=K[,step=T][,byte=B]")
        try:
            fields[key] = int(val)
        except ValueError:
            raise OpmlcError(f"bad --fault {text!r}: {key}={val!r} is not an integer") from None
    if "node" not in fields:
        raise OpmlcError(f"bad --fault {text!r}: node=K is required")
    if fields.get("byte", 0) < 0:
        raise OpmlcError(f"bad --fault {text!r}: byte must not be negative")
    return Fault(fields["node"], fields.get("step"), fields.get("byte", 0))


def _silent(text: str | None) -> tuple[str | None, int]:
    if not text:
        return None, 0
    side, _, n = text.partition(":")
    if side not in ("submitter", "challenger"):
        raise OpmlcError(f"bad --silent {text!r}; expected submitter[:N] or challenger[:N]")
    try:
        after = int(n) if n else 0
    except ValueError:
        raise OpmlcError(f"bad --silent {text!r}: N must be an integer") from None
    if after < 0:
        raise OpmlcError(f"bad --silent {text!r}: N must not be negative")
    return side, after


def compile_contracts() -> tuple[bytes, bytes, dict]:
    """(game bytecode, verifier bytecode, error table of both), compiled by the pinned solc."""
    from opmlc_isagen.solc import compile_solidity
    from opmlc_isagen.solidity import CONTRACT, generate_verifier
    from opmlc_runtime.contract_errors import by_selector
    from opmlc_runtime.game import error_table

    src = GAME_SOL.read_text()
    game = compile_solidity({GAME_SOL.name: src}, GAME_SOL.stem)
    verifier = compile_solidity(generate_verifier(), CONTRACT)
    errors = error_table(src) | {sel: e.signature for sel, e in by_selector().items()}
    return game, verifier, errors


def cmd_challenge(args: argparse.Namespace) -> int:
    from opmlc_runtime.agents import HonestView, LyingView, play
    from opmlc_runtime.artifact import Artifact, ArtifactError
    from opmlc_runtime.engines import InputError, Program
    from opmlc_runtime.game import Game, Revert, RevmChain, RpcChain
    from opmlc_runtime.trace import TraceError

    t0 = time.perf_counter()
    say = (lambda m: None) if args.json else (lambda m: print(m, flush=True))
    silent, after = _silent(args.silent)
    try:
        prog = Program(Artifact.load(args.artifact))
        inputs, _ = generation_inputs(args, prog.art.meta, read_inputs(args.input))
        prog.check_names(inputs)
        if args.saturate:
            inputs = saturated(prog, inputs)
        fault = parse_fault(args.fault) if args.fault else None
        liar = args.liar or ("submitter" if fault else None)
        if liar and fault is None:
            longest = max(range(len(prog.nodes)), key=lambda j: int(prog.nodes[j]["steps"]))
            from opmlc_runtime.agents import Fault

            fault = Fault(longest + 1)
        say(f"computing the honest traces of {args.artifact} ({len(prog.nodes)} nodes)")
        honest = HonestView(prog, inputs)
        views = {"submitter": honest, "challenger": honest}
        if liar:
            try:
                views[liar] = LyingView(prog, inputs, fault, garbage_steps=args.garbage)
            except ValueError as e:
                raise OpmlcError(f"--fault: {e}") from None
            where = (f"node {fault.node}'s output" if fault.step is None
                     else f"node {fault.node} after step {fault.step}")
            say(f"the {liar} lies: its states differ from {where} on")
        game_code, verifier_code, errors = compile_contracts()
        chain = RpcChain(args.rpc) if args.rpc else RevmChain()
        say(f"deploying the verifier and the game on {chain.name}"
            + (f" ({args.rpc})" if args.rpc else ""))
        game = Game(chain, game_code, verifier_code, errors)
        honest_side = "challenger" if liar == "submitter" else "submitter"
        out = play(game, prog, inputs, views["submitter"], views["challenger"], honest_side,
                   silent, after, say)
    except (ArtifactError, InputError, TraceError) as e:
        raise OpmlcError(str(e)) from None
    except ConnectionError as e:
        raise OpmlcError(f"--rpc: {e}") from None
    except Revert as e:
        raise OpmlcError(f"the game contract refused a move: {e} (a bug in the agents)") from None
    out.seconds = round(time.perf_counter() - t0, 3)
    if args.json:
        print(json.dumps({**out.to_json(), "chain": chain.name}))
    else:
        print(f"winner: {out.winner} (the honest side: {out.honest}); {out.rounds} rounds, "
              f"{out.transactions} transactions, {out.gas_total:,} gas (largest "
              f"{out.gas_max_tx:,}), {out.seconds:.1f} s")
    sys.stdout.flush()
    return 0
