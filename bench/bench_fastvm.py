"""Fast VM throughput: steps/s on real compiled kernels, and the ratio to the stepper.

    .venv/bin/python bench/bench_fastvm.py [--node-steps N] [--full] [--stepper-steps N]
        [--scheme fixed|int8] [--skip-resnet]

Rows:

* ``digits_cnn``: a whole run (``Program.run(x, engine="vm")``, node roots not
  committed), after a warm-up run that translates and JIT-compiles the segments
  (the translation time is reported separately).
* ``resnet50-light node K``: the largest conv node of ResNet-50-light (the onnx
  package's light model with seeded random weights, tests/light_models.py), run on
  the fast VM from its start boundary S_{K-1}, which the native engine materialises
  (nodes 0..K-1 natively, then the static core state of S_{K-1}). By default the first
  ``--node-steps`` steps of the node; ``--full`` runs the whole node and checks that
  the VM lands on S_K with the native engine's memory root.

The translation time (first call: discover, emit LLVM IR, compile, or load from the
on-disk cache; ``--cold`` turns that cache off) is not in the steps/s figures. Every row
also runs the Python reference stepper for ``--stepper-steps`` steps from the
same state in the same process and prints the ratio fast VM / stepper.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import numpy as np

from opmlc import api
from opmlc_runtime.engines import Program
from opmlc_runtime.fastvm import FastVM
from opmlc_runtime.isa import Status
from opmlc_runtime.stepper import VM

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def inputs_for(prog: Program) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {s["name"]: (rng.uniform(-1, 1, s["shape"]).astype(np.float32) if s.get("quant")
                        else rng.integers(0, 8, s["shape"]).astype(np.int64))
            for s in prog.inputs}


def stepper_rate(vm: FastVM, steps: int) -> float:
    """Reference stepper steps/s from a copy of ``vm``'s state."""
    ref = VM.__new__(VM)
    ref.mem, ref.core = vm.mem.copy(), vm.core.copy()
    t = time.perf_counter()
    n = ref.run(steps)
    return n / (time.perf_counter() - t)


@contextlib.contextmanager
def jit_cache(enabled: bool):
    """The on-disk JIT cache on or off (off: the translation time is a cold compile)."""
    old = os.environ.get("OPMLC_JIT_CACHE")
    if not enabled:
        os.environ["OPMLC_JIT_CACHE"] = "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("OPMLC_JIT_CACHE", None)
        else:
            os.environ["OPMLC_JIT_CACHE"] = old


def barriers(prog: Program) -> list[int]:
    return [int(n["entry"]) for n in prog.nodes] + [prog.halt_pc]


def bench_digits(scheme: str, stepper_steps: int, cold: bool) -> tuple:
    prog = Program(api.compile(ROOT / "models" / "digits_cnn.onnx", scheme=scheme))
    x = inputs_for(prog)
    prog.memory(x).root()  # the keccak JIT's one-time start, outside the figures
    t = time.perf_counter()
    with jit_cache(not cold):
        prog.run(x, engine="vm")  # translates and compiles (or loads from the disk cache)
    warm = time.perf_counter() - t
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        res = prog.run(x, engine="vm")
        best = min(best, time.perf_counter() - t)
    vm = FastVM(prog.memory(x), prog.entry, barriers(prog))
    ref = stepper_rate(vm, stepper_steps)
    return "digits_cnn (whole run)", res.steps, best, warm, ref


def materialise(prog: Program, x: dict, k: int) -> FastVM:
    """The fast VM in state S_{k-1}: nodes 0..k-1 run natively on S0's memory."""
    from opmlc_runtime.native import PARALLEL_MIN_STEPS

    mem = prog.memory(x)
    nat = prog.native()
    base = mem.buffer.ctypes.data
    for j, n in enumerate(prog.nodes[:k]):
        nat.run_node(j, base, bool(n.get("parallel")) and int(n["steps"]) >= PARALLEL_MIN_STEPS)
        for r in n["writes"]:
            mem.mark_dirty(int(r[0]), int(r[1]))
    vm = FastVM(mem, barriers=barriers(prog))
    vm.core = prog.boundary_core(k - 1)
    return vm


def bench_resnet(scheme: str, node_steps: int, full: bool, stepper_steps: int,
                 cold: bool) -> tuple:
    from light_models import LIGHT, randomize_light

    t = time.perf_counter()
    prog = Program(api.compile(randomize_light(LIGHT / "light_resnet50.onnx"), scheme=scheme))
    print(f"(resnet50-light compiled in {time.perf_counter() - t:.1f} s)", flush=True)
    x = inputs_for(prog)
    k = max(range(len(prog.nodes)), key=lambda j: int(prog.nodes[j]["steps"]))
    node = prog.nodes[k]
    t = time.perf_counter()
    vm = materialise(prog, x, k)
    print(f"(S_{k - 1} materialised natively in {time.perf_counter() - t:.1f} s)", flush=True)
    ref = stepper_rate(vm, stepper_steps)
    t = time.perf_counter()
    with jit_cache(not cold):
        vm.run(1)  # translate the node's segment
    warm = time.perf_counter() - t
    want = int(node["steps"]) - 1 if full else min(node_steps, int(node["steps"]) - 1)
    t = time.perf_counter()
    n = vm.run(want)
    dt = time.perf_counter() - t
    assert n == want and vm.core.status == Status.RUNNING
    if full:
        end = prog.boundary_core(k)
        assert (vm.core.pc, vm.core.step, vm.core.regs) == (end.pc, end.step, end.regs)
        check = materialise(prog, x, k + 1)
        assert vm.root() == check.root(), "fast VM and native disagree on S_K"
        print(f"(S_{k} checked against the native engine: same root)")
    name = f"resnet50-light node {k} ({node['op']}, {int(node['steps']):.2e} steps)"
    return name, n, dt, warm, ref


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scheme", choices=("fixed", "int8"), default="fixed")
    ap.add_argument("--node-steps", type=int, default=1_000_000_000,
                    help="steps of the ResNet node to run (default 1e9)")
    ap.add_argument("--full", action="store_true", help="run the whole ResNet node")
    ap.add_argument("--stepper-steps", type=int, default=20_000)
    ap.add_argument("--skip-resnet", action="store_true")
    ap.add_argument("--cold", action="store_true",
                    help="translate without the on-disk JIT cache (a cold compile)")
    args = ap.parse_args()
    rows = [bench_digits(args.scheme, args.stepper_steps, args.cold)]
    if not args.skip_resnet:
        rows.append(bench_resnet(args.scheme, args.node_steps, args.full, args.stepper_steps,
                                 args.cold))
    print(f"\nscheme {args.scheme}; stepper measured on {args.stepper_steps:,} steps "
          "from the same start state")
    print(f"{'run':<52} {'steps':>14} {'seconds':>8} {'fast VM steps/s':>16} "
          f"{'stepper steps/s':>16} {'ratio':>8} {'translate s':>11}")
    for name, steps, dt, warm, ref in rows:
        rate = steps / dt
        print(f"{name:<52} {steps:>14,} {dt:8.3f} {rate:16.3e} {ref:16.3e} "
              f"{rate / ref:8.0f} {warm:11.2f}")


if __name__ == "__main__":
    main()
