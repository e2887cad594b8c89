"""The ``opmlc`` command line. All command-line code lives in this package.

    opmlc ir | quantize-report | compile | run | inspect     models and artifacts (model.py)
    opmlc trace                                              challenge traces (trace.py)
    opmlc challenge                                          the dispute game on an EVM (game.py)
    opmlc asm | disasm | vm | spec | verifier                the machine itself (machine.py)

Flags shared by several commands (``--shape``, ``--calibrate``, ``--input``), array
reading and atomic file writing are in ``common.py``. Adding a subcommand: write
``args_NAME(parser)`` and ``cmd_NAME(args) -> int`` in the module of its group and add
one row to :data:`COMMANDS`. Errors a user can cause are raised as OpmlcError, SolcError,
OSError or ValueError (AsmError, InputError and ArrayFileError are ValueErrors) and
printed by :func:`main` as one line, ``opmlc: error: ...``, with exit status 1; running out
of memory is one line too, Ctrl-C prints one line and exits 130, and anything else (a bug)
is one line ``opmlc: internal error: ...`` with exit status 70 (``OPMLC_TRACEBACK=1`` shows
the traceback). Warnings are one line each, ``opmlc: warning: ...``.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence

from opmlc import __version__
from opmlc.cli import game, machine, model, trace
from opmlc.errors import OpmlcError
from opmlc_isagen.solc import SolcError

# name, help, arguments, function
COMMANDS: tuple[tuple[str, str, Callable[[argparse.ArgumentParser], None],
                      Callable[[argparse.Namespace], int]], ...] = (
    ("ir", "import an ONNX model and print its IR text form", model.args_ir, model.cmd_ir),
    ("compile", "compile an ONNX model to a .opvm artifact", model.args_compile,
     model.cmd_compile),
    ("run", "run a .opvm artifact on an engine (native, vm, ref)", model.args_run,
     model.cmd_run),
    ("inspect", "describe a .opvm artifact: nodes, step counts, memory map",
     model.args_inspect, model.cmd_inspect),
    ("quantize-report", "per-layer quantization error against the float reference",
     model.args_quantize_report, model.cmd_quantize_report),
    ("trace", "challenge traces: phase-2 roots and commitment, inclusion proofs, phase-1 "
     "roots and one-step witnesses", trace.args_trace, trace.cmd_trace),
    ("challenge", "play a whole dispute about one inference on an EVM (honest party vs a liar)",
     game.args_challenge, game.cmd_challenge),
    ("asm", "assemble a .s file into a binary image", machine.args_asm, machine.cmd_asm),
    ("disasm", "disassemble a binary image", machine.args_disasm, machine.cmd_disasm),
    ("vm", "run a program on the reference stepper, or prove one step", machine.args_vm,
     machine.cmd_vm),
    ("spec", "regenerate the tables of spec/ISA.md from the ISA table", machine.args_spec,
     machine.cmd_spec),
    ("verifier", "write the Solidity one-step verifier", machine.args_verifier,
     machine.cmd_verifier),
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


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning is one line on stderr, like an error (no file / line of Python source)."""
    print(f"opmlc: warning: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 error, 2 usage)."""
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _run(args)


def _run(args: argparse.Namespace) -> int:
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
    except MemoryError:
        print("opmlc: error: out of memory (the model, shapes or program are too large for "
              "this machine)", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - a bug of ours: still one line, never a traceback
        if os.environ.get("OPMLC_TRACEBACK"):
            raise
        print(f"opmlc: internal error: {type(e).__name__}: {_one_line(e)} (a bug in opmlc; "
              "please report it; OPMLC_TRACEBACK=1 shows the traceback)", file=sys.stderr)
        return 70


if __name__ == "__main__":
    raise SystemExit(main())
