"""The demo: one VM step of a fixed-point kernel, proven on a real EVM.

Run with ``scripts/dev demo``. It assembles ``examples/dot.s`` (an int8 dot
product with fixed-point requantization), runs it on the reference stepper,
picks every step of the program in turn, builds its one-step witness, and has
the generated Solidity verifier -- compiled by the pinned solc and executed by
revm -- recompute the post-state root, which must equal the Python stepper's.
It then shows that a tampered witness is rejected.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from opmlc_runtime.asm import assemble
from opmlc_runtime.stepper import VM

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dot.s"


def _say(msg: str) -> None:
    print(msg, flush=True)


def main(argv: list[str] | None = None) -> int:
    from opmlc.backend.solc import compile_solidity
    from opmlc.backend.solidity import CONTRACT, generate_verifier
    from opmlc_runtime.evm import Revert, StepVerifier

    source = EXAMPLE.read_text()
    image = assemble(source)
    _say(f"[1/4] assembled {EXAMPLE.name}: {len(image)} bytes, {len(image) // 8} words")

    vm = VM.from_image(image, depth=16)
    start_root = vm.root()
    trace = [vm.copy()]
    while vm.running:
        vm.step()
        trace.append(vm.copy())
    _say(f"[2/4] reference VM: {vm.core.step} steps, status {vm.core.status!r}, "
         f"final state root 0x{vm.root().hex()} (from 0x{start_root.hex()[:16]}...)")

    t0 = time.perf_counter()
    bytecode = compile_solidity(generate_verifier(), CONTRACT)
    verifier = StepVerifier(bytecode)
    _say(f"[3/4] compiled the generated verifier with solc ({len(bytecode)} bytes of EVM code, "
         f"{time.perf_counter() - t0:.1f} s)")

    gas = []
    for t in range(len(trace) - 1):
        pre, post = trace[t], trace[t + 1]
        got = verifier.step(pre.root(), pre.witness())
        if got != post.root():
            _say(f"MISMATCH at step {t}: EVM 0x{got.hex()} != Python 0x{post.root().hex()}")
            return 1
        gas.append(verifier.gas_used)
    gas.sort()
    _say(f"[4/4] replayed all {len(gas)} steps on the EVM: every post root equals the "
         f"Python stepper's (gas per step: median {gas[len(gas) // 2]:,}, max {gas[-1]:,}, "
         "execution + calldata)")

    pre = trace[len(trace) // 2]
    witness = bytearray(pre.witness())
    witness[-1] ^= 0x01
    try:
        verifier.step(pre.root(), bytes(witness))
    except Revert as err:
        _say(f"      a witness with one flipped byte is rejected: {err.name}")
    else:
        _say("a tampered witness was accepted: this is a bug")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
