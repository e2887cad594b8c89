"""``python -m opmlc_isagen [--check]``: regenerate (or check) every committed output.

Writes ``contracts/generated/OpmlcStep.sol`` and the generated blocks of
``spec/ISA.md`` from the tables in ``runtime/``; with ``--check`` writes nothing and
exits 1 when a file has drifted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from opmlc_isagen.isadoc import update_isa_md
from opmlc_isagen.solidity import update_generated

ISA_MD = Path(__file__).resolve().parents[1] / "spec" / "ISA.md"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m opmlc_isagen", description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="only report drift (exit 1 if any)")
    args = p.parse_args(argv)
    stale = [str(path) for path in update_generated(check=args.check)]
    if update_isa_md(ISA_MD, check=args.check):
        stale.append(str(ISA_MD))
    for path in stale:
        print(f"{path}: {'out of date' if args.check else 'updated'}")
    if args.check and stale:
        print("run `python -m opmlc_isagen` and commit the result", file=sys.stderr)
        return 1
    if not stale:
        print("up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
