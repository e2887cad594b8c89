"""Gas per VM step of the generated Solidity verifier, per instruction class.

    .venv/bin/python bench/bench_gas.py [--samples N] [--depths 20 30]

For each memory depth, a memory holding code and 1 MiB of random data ("weights") is
stepped through random instructions of each class of the table (``Instr.group``: alu,
mul, shift, compare, load, store, branch, jump, system), with random operands and, for
loads and stores, random aligned addresses in the data. Each step runs on the EVM
(revm via pyrevm) and its root is checked against the Python stepper.

What is counted (Cancun gas rules, ABI-encoded ``step(bytes32,bytes)`` call):

* ``exec``      gas burnt by the contract's code;
* ``calldata``  intrinsic calldata gas (16 per non-zero byte, 4 per zero byte); the witness
                grows with depth (32 bytes per level per Merkle path);
* ``step``      exec + calldata: the cost of verifying one step, which is what the targets
                bound (median < 60,000, max < 120,000);
* the fixed 21,000 base cost of a transaction is NOT included anywhere.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys

from opmlc_isagen.solc import compile_solidity
from opmlc_isagen.solidity import CONTRACT, generate_verifier
from opmlc_runtime import isa
from opmlc_runtime.evm import Gas, StepVerifier
from opmlc_runtime.isa import MASK, Fmt, encode
from opmlc_runtime.merkle import Memory
from opmlc_runtime.stepper import VM

CLASSES = ("alu", "mul", "shift", "compare", "load", "store", "branch", "jump", "system")
TARGET_MEDIAN = 60_000
TARGET_MAX = 120_000
CODE_BASE = 0x1000
DATA_BASE = 0x10_0000
DATA_SIZE = 1 << 20


def _operand(rng: random.Random) -> int:
    return rng.choice([rng.getrandbits(64), rng.randrange(-1000, 1000) & MASK,
                       rng.choice([0, 1, MASK, 1 << 63, (1 << 63) - 1])])


def _sample(rng: random.Random, mem: Memory, row: isa.Instr) -> VM:
    """A RUNNING state at a random pc in the code region about to execute one ``row``."""
    pc = CODE_BASE + 8 * rng.randrange(4096)
    regs = [0] + [_operand(rng) for _ in range(31)]
    rd, rs1, rs2 = rng.randrange(1, 32), rng.randrange(1, 32), rng.randrange(1, 32)
    imm = rng.choice([rng.randrange(-64, 64), rng.randrange(-(1 << 31), 1 << 31)])
    if row.fmt in (Fmt.LOAD, Fmt.STORE):
        while rs2 == rs1:
            rs2 = rng.randrange(1, 32)
        imm = rng.randrange(-256, 256)
        addr = DATA_BASE + row.size * rng.randrange(DATA_SIZE // row.size)
        regs[rs1] = (addr - imm) & MASK
    elif row.fmt in (Fmt.BRANCH, Fmt.JAL):
        imm = 8 * rng.randrange(-64, 64)
    mem.write(pc, encode(row.opcode, rd, rs1, rs2, imm))
    vm = VM(mem, pc=pc)
    vm.core.regs = regs
    vm.core.step = rng.getrandbits(40)
    return vm


def measure(verifier: StepVerifier, depth: int, samples: int, seed: int) -> dict[str, list[Gas]]:
    rng = random.Random(seed)
    mem = Memory(depth, size_hint=DATA_BASE + DATA_SIZE)
    mem.load_image(DATA_BASE, rng.randbytes(DATA_SIZE))
    rows = {c: [i for i in isa.INSTRUCTIONS if i.group == c] for c in CLASSES}
    out: dict[str, list[Gas]] = {c: [] for c in CLASSES}
    for cls in CLASSES:
        for _ in range(samples):
            row = rng.choice(rows[cls])
            vm = _sample(rng, mem, row)
            pre, witness = vm.root(), vm.witness()
            post = vm.copy()
            post.step()
            got = verifier.step(pre, witness)
            if got != post.root():
                raise AssertionError(f"{row.mnemonic} at depth {depth}: EVM root != Python root")
            assert post.core.status in (isa.Status.RUNNING, isa.Status.HALTED), row.mnemonic
            out[cls].append(verifier.gas)
    return out


def _stats(xs: list[int]) -> str:
    return f"{int(statistics.median(xs)):>7,} {max(xs):>7,}"


def report(depth: int, gas: dict[str, list[Gas]]) -> tuple[int, int]:
    print(f"\ndepth {depth} (memory {32 << depth:,} bytes; a Merkle path is {32 * depth} bytes)")
    print(f"{'class':<8} {'n':>4}   {'exec med':>7} {'max':>7}   {'calldata med':>7} {'max':>7}"
          f"   {'step med':>7} {'max':>7}")
    every: list[int] = []
    for cls, gs in gas.items():
        ex = [g.execution for g in gs]
        cd = [g.calldata for g in gs]
        st = [g.step for g in gs]
        every += st
        print(f"{cls:<8} {len(gs):>4}   {_stats(ex)}   {'':>5}{_stats(cd)}   {_stats(st)}")
    med, mx = int(statistics.median(every)), max(every)
    print(f"{'all':<8} {len(every):>4}   {'':>15}   {'':>20}   {med:>7,} {mx:>7,}")
    return med, mx


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=60, help="steps per class and depth")
    ap.add_argument("--depths", type=int, nargs="+", default=[20, 30])
    ap.add_argument("--seed", type=int, default=2024)
    args = ap.parse_args(argv)

    verifier = StepVerifier(compile_solidity(generate_verifier(), CONTRACT))
    print(__doc__.split("What is counted")[1].split("\n", 1)[1].rstrip())
    ok = True
    for depth in args.depths:
        med, mx = report(depth, measure(verifier, depth, args.samples, args.seed + depth))
        good = med < TARGET_MEDIAN and mx < TARGET_MAX
        ok &= good
        print(f"targets (step median < {TARGET_MEDIAN:,}, max < {TARGET_MAX:,}): "
              f"{'met' if good else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
