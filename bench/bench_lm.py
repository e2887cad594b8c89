"""Greedy next-token agreement of the trained char-level GPT, float vs integer (issue 11).

    .venv/bin/python bench/bench_lm.py [--windows 64] [--engine native] [--int8-mode auto]
        [--json]

models/charlm.onnx (scripts/make_models.py, trained on Python's LICENSE.txt and stdlib
docstrings) on the held-out windows of models/charlm_heldout.npz (32 characters each,
every position predicted): the float model's own next-character accuracy (onnxruntime),
and for each scheme (calibrated on the 64 training windows stored with them) the share of
positions where the integer model's argmax equals the float model's (agreement), the integer
model's own accuracy, and the max |logit| error relative to the float logits' max.
Default 64 windows = 2,048 positions; ``--windows 0`` runs all 1,285 (41,120 positions).
``--int8-mode`` picks the int8 scheme's mixed precision (opmlc/quantize/mixed.py; ``plain``:
every activation i8, the scheme before issue 11 part 4).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opmlc import api  # noqa: E402
from opmlc.frontend.importer import import_onnx  # noqa: E402
from opmlc.quantize import quantize  # noqa: E402
from opmlc.quantize.mixed import INT8_DEFAULT  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--windows", type=int, default=64, help="held-out windows (0 = all)")
    ap.add_argument("--engine", default="native", choices=["native", "vm", "ref"])
    ap.add_argument("--schemes", default="fixed,int8")
    ap.add_argument("--int8-mode", default=INT8_DEFAULT, help="int8 mixed precision")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    data = np.load(ROOT / "models/charlm_heldout.npz")
    X, Y = data["X"].astype(np.int64), data["Y"].astype(np.int64)
    if a.windows:
        X, Y = X[:a.windows], Y[:a.windows]
    path = ROOT / "models/charlm.onnx"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    fl = np.concatenate([sess.run(None, {"input_ids": x[None]})[0] for x in X])
    fpred = fl.argmax(-1)
    out = {"positions": int(Y.size), "windows": len(X), "engine": a.engine,
           "int8_mode": a.int8_mode,
           "float_accuracy": float((fpred == Y).mean()), "schemes": {}}
    for scheme in a.schemes.split(","):
        t0 = time.time()
        # "fixed16": the fixed scheme with i16 activations (--act-dtype i16)
        qm = quantize(import_onnx(str(path)), scheme.removesuffix("16"),
                      {"input_ids": data["calib"].astype(np.int64)}, int8_mode=a.int8_mode,
                      fixed_act="i16" if scheme == "fixed16" else "i32")
        m = api.Model(api.compile(qm))
        t_compile = time.time() - t0
        t0 = time.time()
        logits = np.concatenate([m.dequantize(m.run({"input_ids": x[None]}, a.engine)
                                              .outputs)["logits"] for x in X])
        pred = logits.argmax(-1)
        out["schemes"][scheme] = {
            "agreement_with_float": float((pred == fpred).mean()),
            "accuracy": float((pred == Y).mean()),
            "max_rel_logit_error": float(np.abs(logits - fl).max() / np.abs(fl).max()),
            "compile_s": round(t_compile, 2), "run_s": round(time.time() - t0, 2)}
    if a.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"charlm: {out['positions']} held-out positions ({out['windows']} windows of 32), "
          f"engine {a.engine}, int8 mode {a.int8_mode}")
    print(f"  float (onnxruntime) next-char accuracy: {out['float_accuracy']:.4f}")
    for k, v in out["schemes"].items():
        print(f"  {k:5s}: greedy agreement with float {v['agreement_with_float']:.4f}, "
              f"accuracy {v['accuracy']:.4f}, max rel logit error "
              f"{v['max_rel_logit_error']:.4f} (compile {v['compile_s']} s, run {v['run_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
