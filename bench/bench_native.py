"""Native kernels vs onnxruntime (float32, same thread count, same process), per model.

    .venv/bin/python bench/bench_native.py [--repeat N] [--models a,b] [--no-vm]
        [--scheme fixed|int8]

Per model: the compile time (import + quantize + lower + LLVM IR) and the JIT time
(cold, then from the on-disk object cache); the median latency after warm-up of
onnxruntime (intra_op_num_threads = 1 and 2) and of the native engine (1 and 2 threads)
on a plain run; the same native run with commit=True (the state root after every node)
and the commitment's cost alone; then the reference VM stepper's steps/s on the digits
CNN and a per-op-type profile of ResNet-50-light's native kernels.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import time
from pathlib import Path

import numpy as np
import onnx

from opmlc import api
from opmlc_runtime import native

ROOT = Path(__file__).resolve().parent.parent
LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
MODELS = {
    "resnet50-light": LIGHT / "light_resnet50.onnx",
    "squeezenet-light": LIGHT / "light_squeezenet.onnx",
    "digits_cnn": ROOT / "models" / "digits_cnn.onnx",
    "gpt2_tiny": ROOT / "models" / "gpt2_tiny.onnx",
    "llama_tiny": ROOT / "models" / "llama_tiny.onnx",
}


def median_s(fn, n: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def inputs_for(prog) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {s["name"]: (rng.standard_normal(s["shape"]).astype(np.float32) if s["quant"]
                        else rng.integers(0, 8, s["shape"]).astype(np.int64))
            for s in prog.inputs}


def ort_session(path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def bench_model(name: str, path: Path, repeat: int, scheme: str = "fixed"
                ) -> tuple[dict, api.Model, dict]:
    t = time.perf_counter()
    m = api.Model(api.compile(path, scheme=scheme))
    r = {"compile": time.perf_counter() - t}
    prog = m.program
    os.environ["OPMLC_JIT_CACHE"] = "0"
    t = time.perf_counter()
    native.NativeModule(prog.art.llvm_ir, len(prog.nodes))
    r["jit"] = time.perf_counter() - t
    del os.environ["OPMLC_JIT_CACHE"]
    native.NativeModule(prog.art.llvm_ir, len(prog.nodes))  # fill the cache
    t = time.perf_counter()
    prog.native()
    r["jit_cached"] = time.perf_counter() - t
    x = inputs_for(prog)
    for th in (1, 2):
        sess = ort_session(path, th)
        feed = {i.name: x[i.name].astype(np.float32 if "float" in i.type else np.int64)
                for i in sess.get_inputs() if i.name in x}
        r[f"ort{th}"] = median_s(lambda s=sess, f=feed: s.run(None, f), repeat)
        native.set_threads(th)
        r[f"nat{th}"] = median_s(lambda: m.run(x, "native"), repeat)
    r["commit"] = median_s(lambda: m.run(x, "native", commit=True), max(3, repeat // 3), 1)
    r["steps"] = m.meta["total_steps"]
    native.set_threads(None)
    return r, m, x


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--no-vm", action="store_true", help="skip the VM steps/s measurement")
    ap.add_argument("--scheme", choices=("fixed", "int8"), default="fixed")
    args = ap.parse_args()
    print(f"scheme {args.scheme}")
    ms = lambda s: f"{1000 * s:8.2f}"  # noqa: E731
    print(f"{'model':<17} {'compile s':>9} {'jit s':>6} {'cached':>6} | {'ort 1t':>8} "
          f"{'ort 2t':>8} | {'nat 1t':>8} {'nat 2t':>8} | {'x ort1':>6} {'x ort2':>6} | "
          f"{'+commit':>8} {'commit':>8} | {'VM steps':>15}   (latencies in ms)")
    kept = {}
    for name in args.models.split(","):
        r, m, x = bench_model(name, MODELS[name], args.repeat, args.scheme)
        kept[name] = (m, x)
        print(f"{name:<17} {r['compile']:9.2f} {r['jit']:6.2f} {r['jit_cached']:6.2f} | "
              f"{ms(r['ort1'])} {ms(r['ort2'])} | {ms(r['nat1'])} {ms(r['nat2'])} | "
              f"{r['nat1'] / r['ort1']:6.2f} {r['nat2'] / r['ort2']:6.2f} | "
              f"{ms(r['commit'])} {ms(r['commit'] - r['nat2'])} | {r['steps']:>15,}",
              flush=True)
    if not args.no_vm:
        m, x = kept.get("digits_cnn") or bench_model(
            "digits_cnn", MODELS["digits_cnn"], 1, args.scheme)[1:]
        t = time.perf_counter()
        res = m.run(x, "vm")
        dt = time.perf_counter() - t
        print(f"\nVM (reference stepper) on digits_cnn: {res.steps:,} steps in {dt:.2f} s = "
              f"{res.steps / dt:,.0f} steps/s")
    if "resnet50-light" in kept:
        m, x = kept["resnet50-light"]
        prog = m.program
        runs = [prog.profile_native(x) for _ in range(5)]
        per = [statistics.median(ts) for ts in zip(*runs, strict=True)]
        by, cnt = collections.Counter(), collections.Counter()
        for n, t in zip(prog.nodes, per, strict=True):
            by[n["op"]] += t
            cnt[n["op"]] += 1
        tot = sum(per)
        print(f"\nresnet50-light native profile ({native.threads()} threads, sum of node "
              f"medians {1000 * tot:.1f} ms):")
        for o, t in by.most_common():
            print(f"  {o:<14} {cnt[o]:4} nodes {1000 * t:9.2f} ms {100 * t / tot:6.1f} %")


if __name__ == "__main__":
    main()
