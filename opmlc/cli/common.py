"""What the commands share: argument declarations, reading arrays, writing files, progress.

Each flag that several commands take is declared once here (``--shape``, ``--calibrate``,
``--input``), and every file a command writes goes through
:func:`opmlc_runtime.files.atomic_write`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from opmlc.errors import OpmlcError, ShapeError

SCHEMES = ("fixed", "int8")


def hex32(b: bytes) -> str:
    """``0x`` + the hex of ``b`` (roots, witnesses)."""
    return "0x" + b.hex()


# --- flags -----------------------------------------------------------------------------


def add_shape_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shape", action="append", default=[], metavar="NAME=DIMS",
                   help="fix a dynamic input shape, e.g. --shape input=1x3x224x224")


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
        neg = [d for d in out[name] if d < 0]
        if neg:
            raise ShapeError(f"bad --shape {flag!r}: dimension {neg[0]} is negative")
    return out


def check_output(out: str | Path, inputs: dict[str, str | Path | None], flag: str = "-o"
                 ) -> None:
    """Refuse an output path that names one of the command's input files (it would be
    overwritten): ``inputs`` maps the flag or argument that named each input to its path."""
    o = Path(out).resolve()
    for what, path in inputs.items():
        if path is None:
            continue
        p = Path(path)
        same = o == p.resolve()
        if not same and o.exists() and p.exists():
            try:
                same = o.samefile(p)
            except OSError:
                same = False
        if same:
            raise OpmlcError(f"{flag} {out} is the {what} file: refusing to overwrite an "
                             "input; choose another output path")


def add_calibrate_arg(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--calibrate", metavar="FILE.npz", help=help_text)


def load_calibration(path: str | None) -> dict | None:
    """The arrays of ``--calibrate FILE.npz`` by input name, or None."""
    if not path:
        return None
    from opmlc_runtime.files import read_npz

    return read_npz(path, "--calibrate")


def add_input_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                   help="an input array (repeat per input; or FILE.npz holding every input "
                        "by name). Float arrays are quantized with the input's parameters; "
                        "integer arrays are taken as already-quantized values")


def add_saturate_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--saturate", action="store_true",
                   help="clamp float input values the model cannot represent (NaN -> zero "
                        "point, +-inf and out-of-range values -> the ends of the range) and "
                        "report how many, instead of refusing them (spec/QUANT.md 2.1)")


def saturated(program, inputs: dict) -> dict:
    """``inputs`` as the integer arrays S0 holds, float values clamped by the edge rule; one
    warning line per input that needed it (``--saturate`` for the runtime-level commands)."""
    import warnings

    from opmlc_runtime.dtypes import np_dtype
    from opmlc_runtime.edge import EdgeWarning

    program.check_names(inputs)
    notes: list[str] = []
    out = {sig["name"]: program.encode_input(sig, inputs, True, notes).view(
        np_dtype(sig["dtype"])).reshape(sig["shape"]) for sig in program.inputs}
    for msg in notes:
        warnings.warn(msg, EdgeWarning, stacklevel=2)
    return out


def add_generation_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("generation programs (compiled with --generate N)")
    g.add_argument("--seed", type=int, help="the seed of a sampling program (its `seed` input)")
    g.add_argument("--vocab", metavar="FILE",
                   help="the token strings (a JSON list, or one per line): the generated text "
                        "is printed beside the token ids, and --prompt can be used")
    g.add_argument("--prompt", metavar="TEXT",
                   help="the prompt as text, tokenized with --vocab (instead of --input "
                        "ids=prompt.npy)")


def generation_inputs(args: argparse.Namespace, meta: dict, inputs: dict
                      ) -> tuple[dict, list[str] | None]:
    """``inputs`` with --seed / --prompt applied, and the vocabulary (or None)."""
    from opmlc_runtime.generate import GenerateInputError, GenSpec, encode_text, read_vocab

    gen = GenSpec.of(meta)
    if gen is None:
        if args.seed is not None or args.prompt is not None or args.vocab:
            raise OpmlcError("--seed, --prompt and --vocab apply to generation programs "
                             "(compiled with --generate N); this artifact is not one")
        return inputs, None
    try:
        vocab = read_vocab(args.vocab) if args.vocab else None
        if args.prompt is not None:
            if vocab is None:
                raise OpmlcError("--prompt needs --vocab FILE to tokenize the text")
            if gen.ids in inputs:
                raise OpmlcError(f"give the prompt once: --prompt or --input {gen.ids}=...")
            inputs = {**inputs, gen.ids: encode_text(vocab, args.prompt)}
    except GenerateInputError as e:
        raise OpmlcError(str(e)) from None
    if args.seed is not None:
        if gen.seed is None:
            raise OpmlcError("--seed: this program is greedy (compile with --sample to draw)")
        inputs = {**inputs, gen.seed: args.seed}
    return inputs, vocab


def read_inputs(flags: list[str]) -> dict:
    """``--input NAME=FILE.npy`` (repeated) and ``--input FILE.npz`` -> arrays by name."""
    from opmlc_runtime.files import read_npy, read_npz

    out: dict = {}
    for f in flags:
        name, sep, path = f.partition("=")
        if not sep and f.endswith(".npz"):
            out.update(read_npz(f, f"--input {f}"))
            continue
        if not sep or not name:
            raise OpmlcError(f"bad --input {f!r}; expected NAME=FILE.npy (or FILE.npz)")
        if name in out:
            raise OpmlcError(f"--input {name} given twice")
        out[name] = read_npy(path, f"--input {name}")
    return out


# --- output ----------------------------------------------------------------------------


def write_file(path: str | Path, data: bytes | Callable[[IO[bytes]], None], flag: str = "-o"
               ) -> Path:
    """Write an output file atomically; a failure names the flag and the file."""
    from opmlc_runtime.files import atomic_write

    try:
        return atomic_write(path, data)
    except OSError as e:
        raise OpmlcError(f"{flag} {path}: cannot write: {e.strerror or e}") from None


def progress_printer() -> Callable[[str], None]:
    """Progress lines on stderr, each with the seconds since the command started."""
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        print(f"opmlc: [{time.perf_counter() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    return say
