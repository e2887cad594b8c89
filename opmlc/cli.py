"""The ``opmlc`` command line.

    opmlc asm PROG.s -o PROG.bin          assemble (image at address 0)
    opmlc disasm PROG.bin                 disassemble
    opmlc vm PROGRAM [--steps N] [--depth D] [--json]
    opmlc vm PROGRAM --prove T --json     one-step proof of step T -> T + 1
    opmlc spec [--check]                  regenerate (or check) the tables of spec/ISA.md
    opmlc verifier -o DIR                 write the Solidity one-step verifier

Adding a subcommand: write ``_args_NAME(parser)`` and ``cmd_NAME(args) -> int`` and add
one row to :data:`COMMANDS`. Errors a user can cause are raised as OpmlcError,
OSError or ValueError (AsmError is one) and printed by :func:`main` as one line,
``opmlc: error: ...``, with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from opmlc import __version__
from opmlc.errors import OpmlcError
from opmlc_isagen.solc import SolcError

DEFAULT_DEPTH = 20
DEFAULT_MAX_STEPS = 10_000_000


# --- helpers ----------------------------------------------------------------------------


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def load_program(path: str | Path) -> bytes:
    """The memory image of PROGRAM: assembled if it ends in ``.s``, else a raw binary
    whose length must be a multiple of 8."""
    from opmlc_runtime.asm import AsmError, assemble
    from opmlc_runtime.isa import INSTR_SIZE

    path = Path(path)
    if path.suffix in (".s", ".S", ".asm"):
        try:
            return assemble(path.read_text())
        except AsmError as e:
            raise OpmlcError(f"{path}: {e}") from None
    image = path.read_bytes()
    if len(image) % INSTR_SIZE:
        raise OpmlcError(f"{path}: malformed binary: {len(image)} bytes is not a multiple "
                         f"of {INSTR_SIZE} (instructions are {INSTR_SIZE} bytes)")
    return image


def _make_vm(image: bytes, depth: int):
    from opmlc_runtime.isa import MAX_DEPTH, MIN_DEPTH
    from opmlc_runtime.stepper import VM

    if not MIN_DEPTH <= depth <= MAX_DEPTH:
        raise OpmlcError(f"--depth {depth} outside {MIN_DEPTH}..{MAX_DEPTH}")
    if len(image) > 32 << depth:
        raise OpmlcError(f"the program ({len(image)} bytes) does not fit in memory of depth "
                         f"{depth} ({32 << depth} bytes); raise --depth")
    return VM.from_image(image, depth)


def _pad8(image: bytes) -> bytes:
    return image + bytes(-len(image) % 8)


def _state_summary(vm) -> dict:
    from opmlc_runtime.isa import Status

    core = vm.core
    return {
        "root": _hex(vm.root()),
        "status": Status(core.status).name,
        "step": core.step,
        "pc": f"{core.pc:#x}",
        "depth": core.depth,
        "regs": {f"r{i}": f"{v:#x}" for i, v in enumerate(core.regs) if v},
    }


def _stopped_message(vm) -> str:
    from opmlc_runtime.isa import Status

    status = Status(vm.core.status)
    how = "halted" if status is Status.HALTED else f"faulted ({status.name})"
    return f"program {how} after {vm.core.step} steps"


def _spec_path() -> Path:
    return Path(__file__).resolve().parent.parent / "spec" / "ISA.md"


# --- subcommands --------------------------------------------------------------------------


def _args_asm(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="assembly file (.s)")
    p.add_argument("-o", "--output", required=True, help="binary image to write")


def cmd_asm(args: argparse.Namespace) -> int:
    from opmlc_runtime.asm import AsmError, assemble

    try:
        image = assemble(Path(args.source).read_text())
    except AsmError as e:
        raise OpmlcError(f"{args.source}: {e}") from None
    Path(args.output).write_bytes(_pad8(image))
    return 0


def _args_disasm(p: argparse.ArgumentParser) -> None:
    p.add_argument("binary", help="binary image (loaded at address 0)")


def cmd_disasm(args: argparse.Namespace) -> int:
    from opmlc_runtime.asm import disassemble

    sys.stdout.write(disassemble(Path(args.binary).read_bytes()))
    return 0


def _args_vm(p: argparse.ArgumentParser) -> None:
    p.add_argument("program", help="assembly (.s) or binary image, loaded at 0, pc 0")
    p.add_argument("--steps", type=int, default=DEFAULT_MAX_STEPS,
                   help=f"stop after this many steps (default {DEFAULT_MAX_STEPS})")
    p.add_argument("--depth", type=int, default=DEFAULT_DEPTH,
                   help=f"memory tree depth; memory is 32 << depth bytes "
                        f"(default {DEFAULT_DEPTH})")
    p.add_argument("--prove", type=int, metavar="T",
                   help="print the one-step proof of the transition from step T to T + 1")
    p.add_argument("--json", action="store_true", help="print a JSON object")


def cmd_vm(args: argparse.Namespace) -> int:
    vm = _make_vm(load_program(args.program), args.depth)
    if args.prove is not None:
        return _prove(vm, args.prove, args.json)
    vm.run(args.steps)
    summary = _state_summary(vm)
    if args.json:
        print(json.dumps(summary))
    else:
        for key in ("root", "status", "step", "pc"):
            print(f"{key:<7} {summary[key]}")
        for name, value in summary["regs"].items():
            print(f"{name:<7} {value} ({int(value, 16)})")
    return 0


def _prove(vm, t: int, as_json: bool) -> int:
    if t < 0:
        raise OpmlcError(f"--prove {t}: the step must not be negative")
    vm.run(t)
    if not vm.running:
        raise OpmlcError(f"step past the end: {_stopped_message(vm)}")
    proof = {"step": t, "pre_root": _hex(vm.root()), "witness": _hex(vm.witness())}
    vm.step()
    proof["post_root"] = _hex(vm.root())
    if as_json:
        print(json.dumps({k: proof[k] for k in ("step", "pre_root", "post_root", "witness")}))
    else:
        for key in ("step", "pre_root", "post_root", "witness"):
            print(f"{key:<9} {proof[key]}")
    return 0


def _args_spec(p: argparse.ArgumentParser) -> None:
    p.add_argument("--check", action="store_true",
                   help="only check that the file is up to date (exit 1 if not)")
    p.add_argument("--path", default=None, help="the ISA manual (default: spec/ISA.md)")


def cmd_spec(args: argparse.Namespace) -> int:
    from opmlc_isagen.isadoc import update_isa_md

    path = Path(args.path) if args.path else _spec_path()
    changed = update_isa_md(path, check=args.check)
    if args.check and changed:
        raise OpmlcError(f"{path} is out of date with runtime/isa.py; run `opmlc spec`")
    print(f"{path}: {'updated' if changed else 'up to date'}")
    return 0


def _args_verifier(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", required=True, help="directory to write the contract to")


def cmd_verifier(args: argparse.Namespace) -> int:
    try:
        from opmlc_isagen.solidity import write_verifier
    except ImportError as e:
        raise OpmlcError("the Solidity verifier generator (opmlc_isagen.solidity) is not "
                         f"available: {e}") from None
    for path in write_verifier(Path(args.output)):
        print(path)
    return 0


# name, help, arguments, function
def _args_ir(p: argparse.ArgumentParser) -> None:
    from opmlc.frontend import add_ir_arguments

    add_ir_arguments(p)
    p.add_argument("--scheme", choices=("fixed", "int8"),
                   help="print the quantized integer IR instead of the float IR")
    p.add_argument("--calibrate", metavar="FILE.npz",
                   help="calibration inputs (arrays by input name) for --scheme")


def _load_npz(path: str | None) -> dict | None:
    if not path:
        return None
    import numpy as np

    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def cmd_ir(args: argparse.Namespace) -> int:
    from opmlc.frontend import cmd_ir as run_ir

    if not args.scheme:
        return run_ir(args)
    from opmlc.frontend import import_onnx, parse_shape_flags
    from opmlc.ir import print_graph
    from opmlc.quantize import quantize

    g = import_onnx(args.model, parse_shape_flags(args.shape),
                    fold_batch_norm=not args.no_fold_bn)
    qm = quantize(g, args.scheme, _load_npz(args.calibrate))
    sys.stdout.write(print_graph(qm.graph))
    return 0


def _args_quantize_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="ONNX model file")
    p.add_argument("--scheme", choices=("fixed", "int8"), default="fixed")
    p.add_argument("--calibrate", metavar="FILE.npz",
                   help="calibration inputs (arrays by input name); synthetic if omitted")
    p.add_argument("--shape", action="append", default=[], metavar="NAME=DIMS",
                   help="fix a dynamic input shape, e.g. --shape input=1x3x224x224")


def cmd_quantize_report(args: argparse.Namespace) -> int:
    from opmlc.frontend import parse_shape_flags
    from opmlc.quantize.report import cmd_quantize_report as run_report

    args.shapes = parse_shape_flags(args.shape)
    return run_report(args)


def _lazy(name: str) -> Callable:
    """A function of opmlc.api, imported on first call (keeps `opmlc --help` light)."""

    def call(*args, **kwargs):
        from opmlc import api

        return getattr(api, name)(*args, **kwargs)

    call.__name__ = name
    return call


COMMANDS: tuple[tuple[str, str, Callable[[argparse.ArgumentParser], None],
                      Callable[[argparse.Namespace], int]], ...] = (
    ("ir", "import an ONNX model and print its IR text form", _args_ir, cmd_ir),
    ("compile", "compile an ONNX model to a .opvm artifact", _lazy("add_compile_args"),
     _lazy("cmd_compile")),
    ("run", "run a .opvm artifact on an engine (native, vm, ref)", _lazy("add_run_args"),
     _lazy("cmd_run")),
    ("inspect", "describe a .opvm artifact: nodes, step counts, memory map",
     _lazy("add_inspect_args"), _lazy("cmd_inspect")),
    ("quantize-report", "per-layer quantization error against the float reference",
     _args_quantize_report, cmd_quantize_report),
    ("asm", "assemble a .s file into a binary image", _args_asm, cmd_asm),
    ("disasm", "disassemble a binary image", _args_disasm, cmd_disasm),
    ("vm", "run a program on the reference stepper, or prove one step", _args_vm, cmd_vm),
    ("spec", "regenerate the tables of spec/ISA.md from the ISA table", _args_spec, cmd_spec),
    ("verifier", "write the Solidity one-step verifier", _args_verifier, cmd_verifier),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="opmlc", description="Compiler toolchain for verifiable (optimistic) ML inference.")
    parser.add_argument("--version", action="version", version=f"opmlc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text, add_args, func in COMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(func=func)
    return parser


def _one_line(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        msg = f"{err.filename}: {err.strerror}" if err.filename else err.strerror
    else:
        msg = str(err) or type(err).__name__
    return " ".join(msg.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 error, 2 usage)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:
        # The reader went away (e.g. `opmlc disasm x.bin | head`): not an error of ours.
        sys.stderr.close()
        return 0
    except (OpmlcError, SolcError, OSError, ValueError) as e:
        print(f"opmlc: error: {_one_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("opmlc: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
