"""Reference stepper throughput: steps per second on a loop-heavy program.

    .venv/bin/python bench/bench_stepper.py [--iterations N] [--depth D]

The loop mixes ALU ops, a multiply, a rounding shift, a load and a store (the
instruction mix of a quantized kernel). The reference stepper is written for
clarity; this figure says how far single-stepping in Python goes (phase-1 replay
of long nodes must fast-forward instead).
"""

from __future__ import annotations

import argparse
import time

from opmlc_runtime.asm import assemble
from opmlc_runtime.isa import Status
from opmlc_runtime.stepper import VM

PROGRAM = """
        li    r10, {n}              # iterations
        la    r11, buf
        li    r12, 0                # acc
loop:   ld    r5, 0(r11)
        addi  r5, r5, 3
        mul   r6, r5, r10
        srari r6, r6, 2
        add   r12, r12, r6
        sd    r5, 0(r11)
        addi  r10, r10, -1
        bne   r10, zero, loop
        halt
        .align 8
buf:    .dword 0
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=25_000)
    ap.add_argument("--depth", type=int, default=20)
    args = ap.parse_args()
    vm = VM.from_image(assemble(PROGRAM.format(n=args.iterations)), args.depth)
    t0 = time.perf_counter()
    steps = vm.run()
    elapsed = time.perf_counter() - t0
    assert vm.core.status == Status.HALTED, Status(vm.core.status).name
    t1 = time.perf_counter()
    vm.root()
    root_s = time.perf_counter() - t1
    print(f"reference stepper: {steps} steps in {elapsed:.3f} s = "
          f"{steps / elapsed:,.0f} steps/s (depth {args.depth}; final root in {root_s:.3f} s, "
          "including the one-time keccak JIT compile)")


if __name__ == "__main__":
    main()
