"""Commands on the machine itself: ``asm``, ``disasm``, ``vm``, ``spec``, ``verifier``.

    opmlc asm PROG.s -o PROG.bin          assemble (image at address 0)
    opmlc disasm PROG.bin                 disassemble
    opmlc vm PROGRAM [--steps N] [--depth D] [--engine stepper|vm] [--json]
    opmlc vm PROGRAM --prove T --json     one-step proof of step T -> T + 1
    opmlc spec [--check]                  regenerate (or check) the tables of spec/ISA.md
    opmlc verifier -o DIR                 write the Solidity one-step verifier
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from opmlc.cli.common import check_output, hex32, write_file
from opmlc.errors import OpmlcError

DEFAULT_DEPTH = 20
DEFAULT_MAX_STEPS = 10_000_000


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


def _make_vm(image: bytes, depth: int, engine: str = "stepper"):
    from opmlc_runtime.fastvm import FastVM
    from opmlc_runtime.isa import MAX_DEPTH, MIN_DEPTH
    from opmlc_runtime.stepper import VM

    if not MIN_DEPTH <= depth <= MAX_DEPTH:
        raise OpmlcError(f"--depth {depth} outside {MIN_DEPTH}..{MAX_DEPTH}")
    if len(image) > 32 << depth:
        raise OpmlcError(f"the program ({len(image)} bytes) does not fit in memory of depth "
                         f"{depth} ({32 << depth} bytes); raise --depth")
    return (FastVM if engine == "vm" else VM).from_image(image, depth)


def _pad8(image: bytes) -> bytes:
    return image + bytes(-len(image) % 8)


def _state_summary(vm) -> dict:
    from opmlc_runtime.isa import Status

    core = vm.core
    return {
        "root": hex32(vm.root()),
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
    return Path(__file__).resolve().parents[2] / "spec" / "ISA.md"


# --- subcommands --------------------------------------------------------------------------


def args_asm(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="assembly file (.s)")
    p.add_argument("-o", "--output", required=True, help="binary image to write")


def cmd_asm(args: argparse.Namespace) -> int:
    from opmlc_runtime.asm import AsmError, assemble

    check_output(args.output, {"source": args.source})
    try:
        image = assemble(Path(args.source).read_text())
    except AsmError as e:
        raise OpmlcError(f"{args.source}: {e}") from None
    write_file(args.output, _pad8(image))
    return 0


def args_disasm(p: argparse.ArgumentParser) -> None:
    p.add_argument("binary", help="binary image (loaded at address 0)")


def cmd_disasm(args: argparse.Namespace) -> int:
    from opmlc_runtime.asm import disassemble

    sys.stdout.write(disassemble(Path(args.binary).read_bytes()))
    return 0


def args_vm(p: argparse.ArgumentParser) -> None:
    p.add_argument("program", help="assembly (.s) or binary image, loaded at 0, pc 0")
    p.add_argument("--steps", type=int, default=DEFAULT_MAX_STEPS,
                   help=f"stop after this many steps (default {DEFAULT_MAX_STEPS})")
    p.add_argument("--depth", type=int, default=DEFAULT_DEPTH,
                   help=f"memory tree depth; memory is 32 << depth bytes "
                        f"(default {DEFAULT_DEPTH})")
    p.add_argument("--prove", type=int, metavar="T",
                   help="print the one-step proof of the transition from step T to T + 1")
    p.add_argument("--engine", choices=("stepper", "vm"), default="stepper",
                   help="the reference stepper (the definition; default) or the fast VM "
                        "(translated to native code; the same states)")
    p.add_argument("--json", action="store_true", help="print a JSON object")


def cmd_vm(args: argparse.Namespace) -> int:
    if args.steps < 0:
        raise OpmlcError(f"--steps {args.steps}: the step count must not be negative")
    vm = _make_vm(load_program(args.program), args.depth, args.engine)
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
    proof = {"step": t, "pre_root": hex32(vm.root()), "witness": hex32(vm.witness())}
    vm.step()
    proof["post_root"] = hex32(vm.root())
    if as_json:
        print(json.dumps({k: proof[k] for k in ("step", "pre_root", "post_root", "witness")}))
    else:
        for key in ("step", "pre_root", "post_root", "witness"):
            print(f"{key:<9} {proof[key]}")
    return 0


def args_spec(p: argparse.ArgumentParser) -> None:
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


def args_verifier(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", help="directory to write the contract to (default: "
                   "bring the committed contracts/generated/ up to date)")
    p.add_argument("--check", action="store_true",
                   help="only check that contracts/generated/ is up to date (exit 1 if not)")


def cmd_verifier(args: argparse.Namespace) -> int:
    try:
        from opmlc_isagen.solidity import update_generated, write_verifier
    except ImportError as e:
        raise OpmlcError("the Solidity verifier generator (opmlc_isagen.solidity) is not "
                         f"available: {e}") from None
    if args.output and not args.check:
        for path in write_verifier(Path(args.output)):
            print(path)
        return 0
    stale = update_generated(Path(args.output), args.check) if args.output else \
        update_generated(check=args.check)
    if args.check and stale:
        raise OpmlcError(f"{', '.join(map(str, stale))} out of date with runtime/isa.py; run "
                         "`opmlc verifier`")
    for path in stale:
        print(f"{path}: updated")
    if not stale:
        print("contracts/generated: up to date")
    return 0
