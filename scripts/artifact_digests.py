"""sha256 of the compiled artifact of every test model (reproducibility / refactor check).

    .venv/bin/python scripts/artifact_digests.py [--out FILE.json] [--check FILE.json] [--quick]

Compiles models/*.onnx and the onnx package's nine light models (seeded random weights,
as in the tests) under both schemes, fused and unfused for the small ones, and prints one
line per artifact. ``--check`` compares against an earlier ``--out`` and exits 1 on any
difference: a refactor that claims "behaviour unchanged" must leave every byte as it was.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def cases(quick: bool):
    from light_models import LIGHT, randomize_light

    small = sorted(p for p in (ROOT / "models").glob("*.onnx"))
    for p in small:
        for scheme in ("fixed", "int8"):
            for fuse in (True, False):
                yield f"{p.stem}/{scheme}/{'fuse' if fuse else 'nofuse'}", p, scheme, fuse
    if quick:
        return
    for p in sorted(glob.glob(str(LIGHT / "*.onnx"))):
        name = Path(p).stem[len("light_"):]
        for scheme in ("fixed", "int8"):
            yield f"{name}/{scheme}/fuse", (lambda p=p: randomize_light(Path(p))), scheme, True


def main() -> int:
    from opmlc import api

    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    ap.add_argument("--check")
    ap.add_argument("--quick", action="store_true", help="only models/*.onnx")
    ap.add_argument("--only", help="substring filter on case names")
    a = ap.parse_args()
    got = {}
    for name, src, scheme, fuse in cases(a.quick):
        if a.only and a.only not in name:
            continue
        t = time.perf_counter()
        model = src() if callable(src) else src
        try:
            art = api.compile(model, scheme=scheme, fuse=fuse)
            digest = hashlib.sha256(art.to_bytes()).hexdigest()
        except Exception as e:  # noqa: BLE001 - recorded, compared like a digest
            digest = f"error: {type(e).__name__}: {e}"
        got[name] = digest
        print(f"{name:40s} {digest[:64]}  ({time.perf_counter() - t:.1f}s)", flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    if a.check:
        want = json.loads(Path(a.check).read_text())
        bad = [k for k in got if want.get(k) != got[k]]
        missing = [k for k in want if k not in got and (not a.only or a.only in k)]
        for k in bad:
            print(f"DIFFERS: {k}: {want.get(k)} -> {got[k]}")
        print(f"{len(got) - len(bad)} of {len(got)} identical; {len(missing)} not compiled")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
