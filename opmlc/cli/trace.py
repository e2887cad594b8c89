"""``opmlc trace``: the traces a dispute is played on (spec/TRACE.md).

    opmlc trace M.opvm --input x=x.npy [--json]                     phase 2: S_0..S_n, commitment
    opmlc trace M.opvm --input ... --inclusion K [--json]          S_K's inclusion proof
    opmlc trace M.opvm --input ... --outputs [--json]              outputs as proven memory leaves
    opmlc trace M.opvm --input ... --node K --step T [--json]      the root at step T of node K
    opmlc trace M.opvm --input ... --node K --prove T [--json]     the one-step proof T -> T + 1
        [--checkpoints DIR]   keep phase-1 checkpoints between calls
"""

from __future__ import annotations

import argparse
import json

from opmlc.cli.common import (
    add_generation_args,
    add_input_arg,
    add_saturate_arg,
    generation_inputs,
    hex32,
    progress_printer,
    read_inputs,
    saturated,
)
from opmlc.errors import OpmlcError


def args_trace(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifact", help=".opvm file")
    add_input_arg(p)
    add_generation_args(p)
    add_saturate_arg(p)
    what = p.add_mutually_exclusive_group()
    what.add_argument("--inclusion", type=int, metavar="K",
                      help="the inclusion proof of S_K in the phase-2 commitment")
    what.add_argument("--outputs", action="store_true",
                      help="the outputs as leaves of the final memory with their Merkle paths "
                           "(what OpmlcGame.outputLeaf checks against the final root)")
    p.add_argument("--node", type=int, metavar="K",
                   help="phase 1 of node K (1-based: node K runs from S_{K-1} to S_K)")
    what.add_argument("--step", type=int, metavar="T",
                      help="with --node: the state root at step T of the node (0: S_{K-1})")
    what.add_argument("--prove", type=int, metavar="T",
                      help="with --node: the one-step witness of step T -> T + 1")
    p.add_argument("--engine", choices=("native", "vm", "stepper"), default=None,
                   help="phase 2: native (default), vm or stepper; phase 1: vm (default, the "
                        "fast VM) or stepper")
    p.add_argument("--checkpoints", metavar="DIR",
                   help="keep phase-1 checkpoints in DIR between calls (one artifact and input "
                        "per folder)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--json", action="store_true", help="print a JSON object")


def _load(args: argparse.Namespace):
    from opmlc_runtime.artifact import Artifact, ArtifactError
    from opmlc_runtime.engines import InputError, Program

    try:
        prog = Program(Artifact.load(args.artifact))
        inputs, _ = generation_inputs(args, prog.art.meta, read_inputs(args.input))
        prog.check_names(inputs)
        if args.saturate:
            inputs = saturated(prog, inputs)
    except (ArtifactError, InputError) as e:
        raise OpmlcError(str(e)) from None
    return prog, inputs


def cmd_trace(args: argparse.Namespace) -> int:
    from opmlc_runtime.engines import InputError
    from opmlc_runtime.trace import NodeReplay, TraceError, output_proofs, phase2

    if (args.step is not None or args.prove is not None) and args.node is None:
        raise OpmlcError("--step and --prove need --node K (the node whose steps they count)")
    if args.node is not None and args.step is None and args.prove is None:
        raise OpmlcError(f"--node {args.node} needs --step T (a root) or --prove T (a witness)")
    if args.node is not None and args.engine == "native":
        raise OpmlcError("phase 1 runs on the VM: --engine vm (the fast VM) or stepper")
    say = (lambda m: None) if args.quiet else progress_printer()
    prog, inputs = _load(args)
    try:
        if args.node is not None:
            rep = NodeReplay(prog, inputs, args.node, args.checkpoints, say,
                             args.engine or "vm")
            if args.prove is not None:
                doc = rep.prove(args.prove)
                keys = ("node", "step", "global_step", "pre_root", "post_root", "witness")
            else:
                doc = {"node": args.node, "step": args.step,
                       "global_step": rep.global_step(args.step),
                       "root": hex32(rep.root(args.step))}
                keys = ("node", "step", "global_step", "root")
        elif args.outputs:
            doc = output_proofs(prog, inputs)
            keys = ("final", "memory_root")
        else:
            say(f"phase 2 on {args.engine or 'native'}: {len(prog.nodes)} nodes")
            ph = phase2(prog, inputs, args.engine or "native")
            if args.inclusion is not None:
                doc = ph.inclusion(args.inclusion)
                keys = ("index", "root", "commitment", "path")
            else:
                doc = ph.to_json()
                keys = ("s0", "final", "commitment")
    except (TraceError, InputError) as e:
        raise OpmlcError(str(e)) from None
    if args.json:
        print(json.dumps(doc))
        return 0
    for key in keys:
        v = doc[key]
        print(f"{key:<12} {' '.join(v) if isinstance(v, list) else v}")
    for name, o in doc.get("outputs", {}).items():
        print(f"  {name}: {o['dtype']}{o['shape']} at {o['address']:#x}, {len(o['leaves'])} "
              f"leaves {o['leaves'][0]['index']}..{o['leaves'][-1]['index']}")
    if "roots" in doc:
        for k, (r, n) in enumerate(zip(doc["roots"], [None, *doc["nodes"]], strict=True)):
            label = "S_0 (input loaded)" if n is None else f"S_{k} {n['name']} ({n['steps']} steps)"
            print(f"  {r}  {label}")
    return 0
