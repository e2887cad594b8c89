"""Native kernels vs onnxruntime (float) and the VM step rate, per model.

    .venv/bin/python bench/bench_native.py [--repeat N] [--vm]

Reports the compile time, native latency (median of N runs, no commitment), the same
with --commit (state root after every node), onnxruntime latency on the float model,
the static VM step count, and with --vm the reference stepper's steps/s.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from opmlc import api

MODELS = Path(__file__).resolve().parent.parent / "models"


def median_ms(fn, n: int) -> float:
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return 1000 * statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--vm", action="store_true", help="also time the reference VM")
    args = ap.parse_args()
    import onnxruntime as ort

    for path in sorted(MODELS.glob("*.onnx")):
        t = time.perf_counter()
        m = api.Model(api.compile(path))
        tc = time.perf_counter() - t
        rng = np.random.default_rng(0)
        x = {s["name"]: (rng.standard_normal(s["shape"]).astype(np.float32) if s["quant"]
                         else rng.integers(0, 8, s["shape"]).astype(np.int64))
             for s in m.program.inputs}
        m.run(x, "native")  # JIT
        nat = median_ms(lambda m=m, x=x: m.run(x, "native"), args.repeat)
        com = median_ms(lambda m=m, x=x: m.run(x, "native", commit=True), max(3, args.repeat // 4))
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = {i.name: x[i.name].astype(np.float32 if "float" in i.type else np.int64)
                for i in sess.get_inputs() if i.name in x}
        orts = median_ms(lambda s=sess, f=feed: s.run(None, f), args.repeat)
        steps = m.meta["total_steps"]
        line = (f"{path.stem:<22} compile {tc:5.2f}s  native {nat:7.2f} ms  +commit "
                f"{com:7.2f} ms  onnxruntime {orts:6.2f} ms  VM steps {steps:>10,}")
        if args.vm:
            t = time.perf_counter()
            m.run(x, "vm")
            dt = time.perf_counter() - t
            line += f"  VM {steps / dt:,.0f} steps/s"
        print(line, flush=True)


if __name__ == "__main__":
    main()
