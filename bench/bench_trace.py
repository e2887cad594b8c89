"""Challenge traces on a real model: phase-2 trace cost and a whole phase-1 bisection.

    .venv/bin/python bench/bench_trace.py [--model resnet50|digits_cnn|...] [--scheme fixed]
        [--node K] [--runs 5]

Prints, for ResNet-50-light by default (the onnx package's light model, seeded random
weights as in the tests):

* ``native run``: a plain native run (no roots), median of ``--runs`` after a warm-up;
* ``phase 2 trace``: ``opmlc trace``'s work (every node root S_0..S_n, the final root
  and the commitment), median of ``--runs``, and its ratio to the plain run;
* ``phase 1 bisection``: on the node with the most VM steps (or ``--node K``), a whole
  binary bisection as a challenger answers it: materialise S_{K-1} natively, then the
  root of every midpoint a bisection asks (the dishonest side's first wrong step drawn
  at random), then the final one-step witness; wall time from a fresh process state
  (no checkpoints), the VM steps replayed, and the ratio to the node's steps.

Targets (issue 8): the bisection under 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from opmlc import api  # noqa: E402
from opmlc_runtime.trace import NodeReplay, phase2  # noqa: E402


def load_model(name: str, scheme: str) -> api.Model:
    if (ROOT / "models" / f"{name}.onnx").exists():
        src = ROOT / "models" / f"{name}.onnx"
    else:
        from light_models import LIGHT, randomize_light

        src = randomize_light(LIGHT / f"light_{name}.onnx")
    t = time.perf_counter()
    m = api.Model(api.compile(src, scheme=scheme))
    print(f"compile {name} ({scheme}): {time.perf_counter() - t:.1f} s, "
          f"{len(m.meta['nodes'])} nodes, {m.meta['total_steps']:.3g} VM steps")
    return m


def inputs_for(m: api.Model) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for s in m.program.inputs:
        if s.get("quant"):  # inside the calibrated range: the edge policy refuses the rest
            out[s["name"]] = rng.uniform(-0.5, 0.5, s["shape"]).astype(np.float32)
        else:
            out[s["name"]] = rng.integers(0, 8, s["shape"]).astype(np.int64)
    return out


def median_time(fn, runs: int) -> float:
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--scheme", default="fixed", choices=("fixed", "int8"))
    ap.add_argument("--node", type=int, help="the node to bisect (default: the longest)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    m = load_model(a.model, a.scheme)
    x = inputs_for(m)
    t = time.perf_counter()
    m.run(x, "native")
    print(f"native JIT + first run: {time.perf_counter() - t:.1f} s")
    plain = median_time(lambda: m.run(x, "native").state_root, a.runs)
    ph = phase2(m.program, x)  # warm: keccak JIT, buffers
    trace = median_time(lambda: phase2(m.program, x), a.runs)
    print(f"native run (final root)   {plain * 1e3:9.1f} ms")
    print(f"phase 2 trace             {trace * 1e3:9.1f} ms   {trace / plain:5.2f}x the run  "
          f"({len(ph.roots)} roots + final + commitment)")

    nodes = m.meta["nodes"]
    k = a.node or 1 + max(range(len(nodes)), key=lambda j: int(nodes[j]["steps"]))
    steps = int(nodes[k - 1]["steps"])
    rng = np.random.default_rng(a.seed)
    first_bad = int(rng.integers(1, steps + 1))  # the liar's first wrong state
    t0 = time.perf_counter()
    rep = NodeReplay(m.program, x, k)
    assert rep.root(0) == ph.roots[k - 1]
    t_start = time.perf_counter() - t0
    lo, hi, rounds = 0, steps, 0  # agreed at lo, disagree at hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        rep.root(mid)
        lo, hi = (mid, hi) if mid < first_bad else (lo, mid)
        rounds += 1
    proof = rep.prove(lo)
    wall = time.perf_counter() - t0
    vm = rep._vm
    replayed = vm.stats["jit_steps"] + vm.stats["ref_steps"]
    assert rep.root(steps) == ph.roots[k], "the node's last state is not S_K"
    print(f"phase 1 bisection         node {k} ({nodes[k - 1]['op']}), {steps:.3g} steps, "
          f"{rounds} rounds, step {proof['step']} proven")
    print(f"  wall {wall:.1f} s (S_{k - 1} natively {t_start:.1f} s); VM steps replayed "
          f"{replayed:.3g} = {replayed / steps:.2f}x the node; "
          f"{replayed / max(wall - t_start, 1e-9):.3g} steps/s; target < 60 s: "
          f"{'met' if wall < 60 else f'missed by {wall - 60:.1f} s'}")


if __name__ == "__main__":
    main()
