"""GPT-2 small at real size (issue 11 part 3): compile, native latency vs onnxruntime, VM
steps, and a node disputed on the fast VM.

    .venv/bin/python bench/bench_gpt2.py [--onnx PATH] [--schemes fixed,int8,fixed16]
        [--threads 1,2] [--runs 5] [--no-largest]

The model is ``scripts/make_models.py``'s ``gpt2_small``: GPT-2 small's architecture
(vocab 50257, d 768, 12 layers, 12 heads, lm_head tied to the token table, 123.8M
parameters) with seeded random weights and a fixed context of 128 tokens, exported by
torch's TorchScript exporter (a 650 MB file, never committed). When ``--onnx`` (default
/tmp/opmlc-gpt2/gpt2_small.onnx) is missing it is built with the torch virtualenv::

    .venv-models/bin/python scripts/make_models.py --only gpt2_small --out /tmp/opmlc-gpt2

("per token" below is one full fixed-context forward: a decoder generating token t+1
from a context of 128 runs the whole graph once.) Each measurement runs in a fresh
process so that its peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``: resident memory,
numpy buffers included) is its own:

* ``ort``: onnxruntime float32 alone (CPU provider): its peak RSS and its logits;
* ``compile SCHEME``: ``opmlc.compile`` from the .onnx to the artifact (import,
  calibration on synthetic inputs, quantization, lowering, memory plan, LLVM IR text:
  no JIT, so the JIT cache plays no part), then the artifact written;
* ``run SCHEME``: load the artifact; the JIT with an empty cache (a private
  ``OPMLC_CACHE_DIR``: cold) and then from that cache; at 1 and 2 threads
  (``native.set_threads``; onnxruntime's ``intra_op_num_threads``, one inter-op thread),
  onnxruntime float32, the native forward without a root and the native forward with the
  final state root, run in turn round by round (the machine's load, shared, drifts: each
  sees the same), the median of ``--runs`` rounds after two warm-up rounds; the VM step
  count of one forward (the artifact's
  static ``total_steps``); the phase-2 trace (every node root S_0..S_n, natively); then
  disputes: node K replayed on the fast VM (``NodeReplay``) from S_{K-1} (materialised
  natively) to its last step, whose root must be S_K, for the middle node, the first
  matmul at or after it, and the node with the most steps (``--no-largest`` skips it).
  Before those, the integer reference interpreter runs the same forward: its outputs
  and final state root must equal the native run's bit for bit. The dequantized logits
  are compared with onnxruntime's: argmax agreement over the 128 positions and the max
  absolute error over the logits' range.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = Path("/tmp/opmlc-gpt2/gpt2_small.onnx")
BUILD = [".venv-models/bin/python", "scripts/make_models.py", "--only", "gpt2_small"]


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB on Linux


def ids_for(ctx: int, vocab: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, vocab, (1, ctx)).astype(np.int64)


def model_dims(path: Path) -> tuple[int, int]:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    dims = [d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim]
    return dims[1], dims[2]  # logits [1, ctx, vocab]


def interleaved_ms(fns: dict, runs: int, settle: tuple[str, ...] = ("ort",)) -> dict:
    """Median ms of each callable, run in turn round by round after two warm-up rounds: on
    a shared machine whose load drifts, every configuration sees the same load. After
    each ``settle`` callable (onnxruntime: its pool threads spin a while after a run, on
    the cores the next configuration wants) the round pauses 0.2 s."""
    ts: dict = {k: [] for k in fns}
    for rnd in range(runs + 2):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            if rnd >= 2:
                ts[k].append(time.perf_counter() - t)
            if k in settle:
                time.sleep(0.2)
    return {k: 1e3 * statistics.median(v) for k, v in ts.items()}


def ort_session(path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


# ---------------------------------------------------------------- the children


def child_ort(a) -> dict:
    """onnxruntime alone: its peak RSS and the reference logits (its times are taken
    beside opmlc's, in each run child)."""
    ctx, vocab = model_dims(a.onnx)
    x = {"input_ids": ids_for(ctx, vocab)}
    s = ort_session(a.onnx, 1)
    s.run(None, x)
    np.save(a.work / "ort_logits.npy", s.run(None, x)[0])
    return {"peak_gib": peak_gib()}


def child_compile(a) -> dict:
    from opmlc import api

    t0 = time.perf_counter()

    def say(msg: str) -> None:
        if "lowered " not in msg:
            print(f"    [{a.scheme} {time.perf_counter() - t0:5.1f} s] {msg}", flush=True)

    # "fixed16": the fixed scheme with i16 activations (--act-dtype i16)
    art = api.compile(a.onnx, scheme=a.scheme.removesuffix("16"), progress=say,
                      act_dtype="i16" if a.scheme == "fixed16" else None)
    secs = time.perf_counter() - t0
    art.save(a.work / f"gpt2_{a.scheme}.opvm")
    return {"compile_s": secs, "peak_gib": peak_gib(), "nodes": len(art.meta["nodes"]),
            "total_steps": int(art.meta["total_steps"]), "image_bytes": len(art.image),
            "artifact_bytes": (a.work / f"gpt2_{a.scheme}.opvm").stat().st_size}


def dispute(m, x: dict, ph, k: int) -> dict:
    from opmlc_runtime.trace import NodeReplay

    n = m.meta["nodes"][k - 1]
    steps = int(n["steps"])
    t = time.perf_counter()
    rep = NodeReplay(m.program, x, k)
    start_ok = rep.root(0) == ph.roots[k - 1]
    t_start = time.perf_counter() - t
    end_ok = rep.root(steps) == ph.roots[k]
    wall = time.perf_counter() - t
    return {"node": k, "op": n["op"], "steps": steps, "start_ok": bool(start_ok),
            "end_ok": bool(end_ok), "materialise_s": t_start, "wall_s": wall,
            "steps_per_s": steps / max(wall - t_start, 1e-9)}


def child_run(a) -> dict:
    from opmlc import api
    from opmlc_runtime import native

    os.environ["OPMLC_CACHE_DIR"] = str(a.work / f"jit-{a.scheme}")  # empty: a cold JIT
    t = time.perf_counter()
    m = api.load(a.work / f"gpt2_{a.scheme}.opvm")
    out: dict = {"load_s": time.perf_counter() - t}
    prog = m.program
    t = time.perf_counter()
    prog.native()
    out["jit_cold_s"] = time.perf_counter() - t
    t = time.perf_counter()
    native.NativeModule(prog.art.llvm_ir, len(prog.nodes))
    out["jit_cached_s"] = time.perf_counter() - t
    ctx, vocab = model_dims(a.onnx)
    x = {"input_ids": ids_for(ctx, vocab)}
    xi = m.encode_inputs(x)
    res = m.run(x, "native")
    prog.run(xi, "native", commit=True)  # the first root builds the image's tree
    out["run_peak_gib"] = peak_gib()  # before onnxruntime, the reference and the replays
    out["ms"], out["ms_root"], out["ort_ms"] = {}, {}, {}
    for th in a.threads:
        native.set_threads(th)
        s = ort_session(a.onnx, th)
        ms = interleaved_ms({"ort": lambda s=s: s.run(None, x),
                             "nat": lambda: prog.run(xi, "native"),
                             "root": lambda: prog.run(xi, "native", commit=True)}, a.runs)
        out["ort_ms"][th], out["ms"][th], out["ms_root"][th] = ms["ort"], ms["nat"], ms["root"]
        del s
        time.sleep(0.2)  # onnxruntime's pool threads spin a while after its runs
    native.set_threads(None)
    logits = m.dequantize(res.outputs)["logits"].reshape(ctx, vocab)
    ort_logits = np.load(a.work / "ort_logits.npy").reshape(ctx, vocab)
    out["argmax_agree"] = float((logits.argmax(-1) == ort_logits.argmax(-1)).mean())
    out["max_abs_err_rel"] = float(np.abs(logits - ort_logits).max()
                                   / np.abs(ort_logits).max())
    out["total_steps"] = int(m.meta["total_steps"])
    t = time.perf_counter()
    ref, nat = m.run(x, "ref", commit=True), m.run(x, "native", commit=True)
    out["ref_s"] = time.perf_counter() - t
    out["ref_exact"] = bool(all(np.array_equal(ref.outputs[k], nat.outputs[k])
                                for k in ref.outputs) and ref.state_root == nat.state_root)
    t = time.perf_counter()
    ph = m.trace(x)
    out["trace_s"] = time.perf_counter() - t
    nodes = m.meta["nodes"]
    mid = len(nodes) // 2
    mm = next(j for j in range(mid, len(nodes)) if "matmul" in nodes[j]["op"])
    picks = {"middle": mid + 1, "middle matmul": mm + 1}
    if a.largest:
        picks["largest"] = 1 + max(range(len(nodes)), key=lambda j: int(nodes[j]["steps"]))
    out["disputes"] = {}
    for label, k in picks.items():
        print(f"    [{a.scheme}] dispute of node {k} ({label}, {nodes[k - 1]['op']}, "
              f"{int(nodes[k - 1]['steps']):.3g} steps) on the fast VM", flush=True)
        out["disputes"][label] = dispute(m, x, ph, k)
    out["peak_gib"] = peak_gib()
    return out


CHILDREN = {"ort": child_ort, "compile": child_compile, "run": child_run}


# ---------------------------------------------------------------- the parent


def spawn(a, what: str, scheme: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", what, "--onnx", str(a.onnx), "--work",
           str(a.work), "--runs", str(a.runs), "--threads", ",".join(map(str, a.threads))]
    if scheme:
        cmd += ["--scheme", scheme]
    if not a.largest:
        cmd.append("--no-largest")
    print(f"  {what} {scheme or ''} ...", flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    for ln in p.stdout.splitlines():
        if not ln.startswith("RESULT "):
            print(ln)
    if p.returncode or not lines:
        raise SystemExit(f"{what} {scheme or ''} failed (exit {p.returncode})")
    r = json.loads(lines[-1][len("RESULT "):])
    for key in ("ms", "ms_root", "ort_ms"):  # JSON keys are strings
        if key in r:
            r[key] = {int(k): v for k, v in r[key].items()}
    return r


def ensure_model(path: Path) -> None:
    if path.exists():
        return
    if not (ROOT / BUILD[0]).exists():
        raise SystemExit(f"{path} is missing and there is no {BUILD[0]} to build it; make "
                         "the torch venv (scripts/make_models.py's docstring), then run "
                         f"{' '.join(BUILD)} --out {path.parent}")
    print(f"building {path}: {' '.join(BUILD)} --out {path.parent}", flush=True)
    subprocess.run([*BUILD, "--out", str(path.parent)], cwd=ROOT, check=True)


def report(a, ort: dict, comp: dict, runs: dict) -> None:
    ctx, vocab = model_dims(a.onnx)
    mb = a.onnx.stat().st_size / 2 ** 20
    print(f"\nGPT-2 small, random weights: {a.onnx} ({mb:.0f} MB), context {ctx}, vocab "
          f"{vocab}; one forward = one token; median of {a.runs}; peak = ru_maxrss of a "
          f"fresh process; {os.cpu_count()} CPUs, load average "
          + " ".join(f"{v:.1f}" for v in os.getloadavg()))
    print(f"onnxruntime float32: peak RSS {ort['peak_gib']:.2f} GiB; its times are taken "
          "round by round beside each scheme's, in the same process")
    w = 10
    head = ["", *a.schemes]
    rows = [
        ("compile (s)", lambda s: f"{comp[s]['compile_s']:.1f}"),
        ("  peak RSS (GiB)", lambda s: f"{comp[s]['peak_gib']:.2f}"),
        ("  nodes", lambda s: f"{comp[s]['nodes']}"),
        ("  memory image (MB)", lambda s: f"{comp[s]['image_bytes'] / 1e6:.0f}"),
        ("JIT cold / cached (s)",
         lambda s: f"{runs[s]['jit_cold_s']:.1f} / {runs[s]['jit_cached_s']:.1f}"),
        ("run peak RSS (GiB)", lambda s: f"{runs[s]['run_peak_gib']:.2f}"),
    ]
    for th in a.threads:
        rows += [
            (f"{th} thread{'s' * (th > 1)}: ORT f32 (ms)",
             lambda s, th=th: f"{runs[s]['ort_ms'][th]:.0f}"),
            ("  native (ms)", lambda s, th=th: f"{runs[s]['ms'][th]:.0f}"),
            ("  native / ORT f32",
             lambda s, th=th: f"{runs[s]['ms'][th] / runs[s]['ort_ms'][th]:.2f}x"),
            ("  native + final root (ms)", lambda s, th=th: f"{runs[s]['ms_root'][th]:.0f}"),
        ]
    rows += [
        ("VM steps / token", lambda s: f"{runs[s]['total_steps']:.3e}"),
        ("  per position", lambda s: f"{runs[s]['total_steps'] / ctx:.3e}"),
        ("phase-2 trace (s)", lambda s: f"{runs[s]['trace_s']:.1f}"),
        ("ref == native (bits)", lambda s: "yes" if runs[s]["ref_exact"] else "NO"),
        ("argmax = ORT's", lambda s: f"{runs[s]['argmax_agree']:.3f}"),
        ("max |err| / max|ORT|", lambda s: f"{runs[s]['max_abs_err_rel']:.2e}"),
    ]
    print(f"{head[0]:<28}" + "".join(f"{h:>{w + 6}}" for h in head[1:]))
    for label, f in rows:
        print(f"{label:<28}" + "".join(f"{f(s):>{w + 6}}" for s in a.schemes))
    print("\ndisputes (fast VM from S_{K-1}, natively materialised, to the node's last step;"
          " its root == the native S_K?):")
    for s in a.schemes:
        for label, d in runs[s]["disputes"].items():
            ok = "yes" if d["start_ok"] and d["end_ok"] else "NO"
            print(f"  {s:<6} {label:<14} node {d['node']:>3} {d['op']:<12} "
                  f"{d['steps']:.3e} steps  {d['wall_s']:6.1f} s "
                  f"(S_K-1 {d['materialise_s']:.1f} s, {d['steps_per_s']:.2e} steps/s)  "
                  f"S_K reproduced: {ok}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--onnx", type=Path, default=DEFAULT)
    ap.add_argument("--schemes", default="fixed,int8")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-largest", dest="largest", action="store_false",
                    help="do not dispute the longest node (a minute or more on the fast VM)")
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    ap.add_argument("--scheme", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    a.threads = [int(t) for t in a.threads.split(",")]
    a.schemes = a.schemes.split(",")
    if a.child:
        print("RESULT " + json.dumps(CHILDREN[a.child](a)), flush=True)
        return
    ensure_model(a.onnx)
    with tempfile.TemporaryDirectory(prefix="opmlc-gpt2-") as tmp:
        a.work = Path(tmp)
        t = time.perf_counter()
        ort = spawn(a, "ort")
        comp, runs = {}, {}
        for s in a.schemes:
            comp[s] = spawn(a, "compile", s)
            runs[s] = spawn(a, "run", s)
            (a.work / f"gpt2_{s}.opvm").unlink()
        report(a, ort, comp, runs)
        print(f"\nbench wall time {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
