"""Commands on models and artifacts: ``ir``, ``quantize-report``, ``compile``, ``run``,
``inspect``.

    opmlc ir MODEL.onnx [--shape NAME=DIMS] [--no-fold-bn] [--scheme S [--calibrate F]]
    opmlc quantize-report MODEL.onnx [--scheme S] [--calibrate F] [--shape NAME=DIMS]
    opmlc compile MODEL.onnx -o M.opvm [--scheme S] [--calibrate F] [--shape ...] [-q]
    opmlc run M.opvm --input x=x.npy [--engine native|vm|stepper|ref] [--commit] [--json] [-o O.npz]
    opmlc inspect M.opvm [--json]
"""

from __future__ import annotations

import argparse
import json
import sys

from opmlc.cli.common import (
    SCHEMES,
    add_calibrate_arg,
    add_generation_args,
    add_input_arg,
    add_saturate_arg,
    add_shape_arg,
    check_output,
    generation_inputs,
    load_calibration,
    parse_shape_flags,
    progress_printer,
    read_inputs,
    write_file,
)
from opmlc.errors import OpmlcError

# --- ir --------------------------------------------------------------------------------


def args_ir(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="ONNX model file")
    add_shape_arg(p)
    p.add_argument("--no-fold-bn", action="store_true",
                   help="keep BatchNormalization separate from the preceding Conv")
    p.add_argument("--scheme", choices=SCHEMES,
                   help="print the quantized integer IR instead of the float IR")
    add_calibrate_arg(p, "calibration inputs (arrays by input name) for --scheme")


def cmd_ir(args: argparse.Namespace) -> int:
    """Import the model and print its IR text (the integer IR with ``--scheme``)."""
    from opmlc.frontend import import_onnx
    from opmlc.ir import print_graph

    g = import_onnx(args.model, parse_shape_flags(args.shape),
                    fold_batch_norm=not args.no_fold_bn)
    if args.scheme:
        from opmlc.quantize import quantize

        g = quantize(g, args.scheme, load_calibration(args.calibrate)).graph
    sys.stdout.write(print_graph(g))
    return 0


# --- quantize-report -------------------------------------------------------------------


def add_int8_mode_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--int8-mode", metavar="MODE",
                   help="--scheme int8: activations kept at 16 bits: auto (default: "
                        "norm+resid+out+attn for a model with layer norms, else plain), plain (all "
                        "i8), all, or groups joined by + from out, resid, norm, attn, act, and "
                        "smooth "
                        "(SmoothQuant first); see opmlc/quantize/mixed.py")


def add_act_dtype_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--act-dtype", choices=("i32", "i16"),
                   help="--scheme fixed: the activation word: i32 (default; 24 significant "
                        "bits) or i16 (13 bits and 8x headroom: half the activation memory "
                        "and hashing, a coarser grid); see spec/QUANT.md")


def args_quantize_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="ONNX model file")
    p.add_argument("--scheme", choices=SCHEMES, default="fixed")
    add_int8_mode_arg(p)
    add_act_dtype_arg(p)
    add_calibrate_arg(p, "calibration inputs (arrays by input name); synthetic if omitted")
    add_shape_arg(p)


def cmd_quantize_report(args: argparse.Namespace) -> int:
    from opmlc.frontend import import_onnx
    from opmlc.quantize import quantize_report

    g = import_onnx(args.model, parse_shape_flags(args.shape))
    print(quantize_report(g, load_calibration(args.calibrate), args.scheme,
                          int8_mode=args.int8_mode, act_dtype=args.act_dtype), end="")
    return 0


# --- compile ---------------------------------------------------------------------------


def args_compile(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="ONNX model file")
    p.add_argument("-o", "--output", required=True, help="output .opvm file")
    p.add_argument("--scheme", choices=SCHEMES, default="fixed")
    add_int8_mode_arg(p)
    add_act_dtype_arg(p)
    add_calibrate_arg(p, "calibration inputs by name")
    add_shape_arg(p)
    p.add_argument("--no-ir", action="store_true", help="do not embed the integer IR text")
    p.add_argument("--no-fuse", action="store_true",
                   help="keep contractions, requants and clamps as separate nodes (no fusion)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress messages (by default each stage, and every tenth of the "
                        "nodes on models with many, is reported on stderr)")
    g = p.add_argument_group("generation (a decoder: token ids (1, L) -> logits (1, L, V))")
    g.add_argument("--generate", type=int, metavar="N",
                   help="compile N steps of generation into one program: logits at the last "
                        "position -> next token -> written into the context, N times; `run "
                        "--input ids=prompt.npy` prints the tokens (spec/GENERATE.md)")
    g.add_argument("--context", type=int, metavar="L",
                   help="the fixed context length when the model's sequence axis is symbolic")
    g.add_argument("--sample", metavar="temperature=T,top_k=K",
                   help="draw each token (q.sample with a counter-based PRNG keyed by the "
                        "program's `seed` input) instead of taking the argmax")


def cmd_compile(args: argparse.Namespace) -> int:
    from opmlc.api import compile as compile_model

    check_output(args.output, {"model": args.model, "--calibrate": args.calibrate})
    say = (lambda m: None) if args.quiet else progress_printer()
    art = compile_model(args.model, scheme=args.scheme,
                        calibration=load_calibration(args.calibrate),
                        shapes=parse_shape_flags(args.shape), include_ir=not args.no_ir,
                        progress=say, fuse=not args.no_fuse, generate=args.generate,
                        context=args.context, sample=args.sample, int8_mode=args.int8_mode,
                        act_dtype=args.act_dtype)
    write_file(args.output, art.to_bytes())
    m = art.meta
    say(f"wrote {args.output}: {len(m['nodes'])} nodes, {m['total_steps']} VM steps, "
        f"memory {m['memory']['total']} bytes (depth {m['depth']})")
    return 0


# --- run -------------------------------------------------------------------------------


def args_run(p: argparse.ArgumentParser) -> None:
    from opmlc.api import ENGINES

    p.add_argument("artifact", help=".opvm file")
    add_input_arg(p)
    p.add_argument("--engine", choices=ENGINES, default="native",
                   help="native kernels, the fast VM (translated bytecode), the reference VM "
                        "stepper (Python, ~2e5 steps/s), or the compiler's exact integer "
                        "reference interpreter (all give the same bits and roots)")
    p.add_argument("--commit", action="store_true",
                   help="compute the final state root (the commitment of an undisputed run)")
    p.add_argument("--trace", action="store_true",
                   help="also the state root before the first and after every graph node "
                        "(the phase-2 roots, as `opmlc trace`)")
    p.add_argument("--raw", action="store_true",
                   help="the raw integer outputs (default: dequantized to float32 where the "
                        "output has quantization parameters)")
    add_saturate_arg(p)
    p.add_argument("-o", "--output", metavar="OUT.npz", help="save the outputs by name")
    p.add_argument("--json", action="store_true",
                   help='print {"engine", "outputs", "steps", "roots"} (+ "state_root" with '
                        '--commit or --trace, + "initial_root", "node_roots" with --trace; + '
                        '"tokens" (and "text" with --vocab) for a generation program) as '
                        'JSON; "roots" is "none", "final" or "all"')
    add_generation_args(p)


def cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from opmlc.api import load
    from opmlc_runtime.artifact import ArtifactError
    from opmlc_runtime.engines import InputError

    out = None
    if args.output:
        out = args.output if args.output.endswith(".npz") else args.output + ".npz"
        check_output(out, {"artifact": args.artifact} | {
            f"--input {f.partition('=')[0]}" if "=" in f else "--input":
            f.partition("=")[2] or f for f in args.input})
    try:
        model = load(args.artifact)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise OpmlcError(f"{args.artifact}: corrupted metadata: {type(e).__name__} {e} "
                         "(recompile the model)") from None
    inputs, vocab = generation_inputs(args, model.meta, read_inputs(args.input))
    try:
        res = model.run(inputs, engine=args.engine, commit=args.commit,
                        saturate=args.saturate, trace=args.trace)
    except (ArtifactError, InputError) as e:
        raise OpmlcError(str(e)) from None
    outs = res.outputs if args.raw else model.dequantize(res.outputs)
    if out:
        write_file(out, lambda f: np.savez(f, **outs))
    gen = model.program.gen
    tokens = [int(t) for t in res.outputs[gen.tokens]] if gen else None
    if args.json:
        d = res.to_json()
        d["outputs"] = {k: v.tolist() for k, v in outs.items()}
        if gen:
            d["tokens"] = tokens
            if vocab is not None:
                from opmlc_runtime.generate import decode_tokens

                d["text"] = decode_tokens(vocab, tokens)
        print(json.dumps(d))
        return 0
    for k, v in outs.items():
        print(f"{k}: {v.dtype}{list(v.shape)} {np.array2string(v, threshold=20)}")
    if gen and vocab is not None:
        from opmlc_runtime.generate import decode_tokens

        print(f"text: {decode_tokens(vocab, tokens)!r}")
    print(f"state_root: 0x{res.state_root.hex()}  steps: {res.steps}" if res.roots != "none"
          else f"steps: {res.steps}")
    if args.trace:
        for n, r in zip(model.meta["nodes"], res.node_roots, strict=True):
            print(f"  {n['name']:<40} 0x{r.hex()}")
    return 0


# --- inspect ---------------------------------------------------------------------------


def args_inspect(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifact", help=".opvm file")
    p.add_argument("--json", action="store_true", help="print the metadata as JSON")


def cmd_inspect(args: argparse.Namespace) -> int:
    from opmlc_runtime.artifact import Artifact, ArtifactError

    try:
        art = Artifact.load(args.artifact)
    except ArtifactError as e:
        raise OpmlcError(str(e)) from None
    m = art.meta
    if args.json:
        print(json.dumps(m, indent=1, sort_keys=True))
        return 0
    try:
        _describe(args.artifact, m)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise OpmlcError(f"{args.artifact}: corrupted metadata: {type(e).__name__} "
                         f"{e} (recompile the model)") from None
    return 0


def _describe(path: str, m: dict) -> None:
    """The text of ``opmlc inspect`` (raises KeyError / TypeError on malformed metadata)."""
    print(f"{path}: opvm format {m['format_version']}, ISA {m['isa_version']}, "
          f"{m['compiler']}")
    print(f"  source sha256 {m['source_sha256']}; options {json.dumps(m['options'])}")
    print(f"  memory {m['memory']['total']} bytes, depth {m['depth']}; image "
          f"{m['memory']['image_nbytes']} bytes; code {m['code']['nbytes']} bytes, halt at "
          f"{m['code']['halt']:#x}")
    for kind in ("inputs", "outputs"):
        for s in m[kind]:
            q = f" quant {json.dumps(s['quant'])}" if s["quant"] else ""
            print(f"  {kind[:-1]} {s['name']}: {s['dtype']}{s['shape']} at "
                  f"{s['address']:#x}{q}")
    print(f"  {len(m['nodes'])} nodes, {m['total_steps']} steps:")
    for n in m["nodes"]:
        print(f"    {n['name']:<40} entry {n['entry']:#8x}  steps {n['steps']:>12}")
