"""ONNX frontend: ``import_onnx(model, shapes=None) -> opmlc.ir.Graph``.

``model`` is a path (external data is read relative to it) or an
``onnx.ModelProto``; ``shapes`` fixes dynamic input dims, e.g.
``{"input": (1, 3, 224, 224)}`` (CLI: ``--shape input=1x3x224x224``).
Raises :class:`opmlc.errors.OpmlcError` subclasses with one-line messages.

``cmd_ir(args)`` implements ``opmlc ir MODEL [--shape NAME=DIMS ...]``: prints the
IR text form to stdout.
"""

from __future__ import annotations

import argparse
import sys

from opmlc.errors import ShapeError
from opmlc.frontend.handlers import HANDLERS, supported_ops
from opmlc.frontend.importer import import_onnx, load_model
from opmlc.ir.text import print_graph


def parse_shape_flags(flags: list[str] | None) -> dict[str, tuple[int, ...]]:
    """``["x=1x3x224x224", ...]`` -> ``{"x": (1, 3, 224, 224)}``."""
    out: dict[str, tuple[int, ...]] = {}
    for flag in flags or []:
        name, sep, dims = flag.rpartition("=")
        try:
            if not sep or not name:
                raise ValueError
            out[name] = tuple(int(d) for d in dims.split("x")) if dims else ()
        except ValueError:
            raise ShapeError(f"bad --shape {flag!r}; expected NAME=D1xD2x... e.g. "
                             "input=1x3x224x224") from None
    return out


def add_ir_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``opmlc ir``: MODEL, repeated --shape NAME=DIMS, --no-fold-bn."""
    p.add_argument("model", help="ONNX model file")
    p.add_argument("--shape", action="append", default=[], metavar="NAME=DIMS",
                   help="fix a dynamic input shape, e.g. --shape input=1x3x224x224")
    p.add_argument("--no-fold-bn", action="store_true",
                   help="keep BatchNormalization separate from the preceding Conv")


def cmd_ir(args: argparse.Namespace) -> int:
    """``opmlc ir``: import ``args.model`` and print the IR text; returns the exit code."""
    g = import_onnx(args.model, parse_shape_flags(getattr(args, "shape", None)),
                    fold_batch_norm=not getattr(args, "no_fold_bn", False))
    sys.stdout.write(print_graph(g))
    return 0


__all__ = ["import_onnx", "load_model", "cmd_ir", "add_ir_arguments", "parse_shape_flags",
           "HANDLERS", "supported_ops"]
