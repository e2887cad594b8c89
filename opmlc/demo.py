"""The demo: compile a model, run it two ways, and settle a dispute down to one EVM step.

Run with ``scripts/dev demo``. On the bundled digits CNN (``models/digits_cnn.onnx``):

1. compile it to a ``.opvm`` (fixed-point integer IR -> VM code + native kernels);
2. classify a held-out digit on the native engine, committing the state root after
   every graph node (the phase-2 commitments);
3. run the same artifact on the reference VM, step by step: the outputs and every node
   root must be identical;
4. play a dispute against a dishonest executor who tampers with one node: bisect the
   node roots (phase 2) to the disputed node, start that node's VM from the agreed
   boundary state materialised natively, bisect its VM steps (phase 1) to one step,
   and execute that step in the generated Solidity verifier on a real EVM (revm),
   which sides with the honest party.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "digits_cnn.onnx"
DIGITS = ROOT / "models" / "digits_test.npz"


def _say(msg: str) -> None:
    print(msg, flush=True)


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def _boundary_vm(program, inputs: dict, k: int):
    """S_k (k = -1: S0) as a reference VM, with memory computed by the native kernels:
    the canonical core state of the boundary plus the memory after nodes 0..k."""
    from opmlc_runtime.stepper import VM

    mem = program.memory(inputs)
    nat = program.native()
    for j in range(k + 1):
        nat.run_node(j, mem.buffer.ctypes.data, False)
        for addr, n in program.nodes[j]["writes"]:
            mem.mark_dirty(int(addr), int(n))
    vm = VM(mem)
    vm.core = program.boundary_core(k)
    return vm


class Cheater:
    """Executes node k honestly on the VM, except that after step ``t`` of the node it
    adds 1 to the first byte of the node's output: from then on its states differ."""

    def __init__(self, start, t: int, addr: int) -> None:
        self.start, self.t, self.addr = start, t, addr

    def state_after(self, i: int):
        vm = self.start.copy()
        for j in range(i):
            vm.step()
            if j == self.t:
                b = vm.mem.read(self.addr, 1)[0]
                vm.mem.write(self.addr, bytes([(b + 1) & 0xFF]))
        return vm


def _cheater_claims(program, honest: list[bytes], tampered, k: int) -> list[bytes]:
    """The dishonest node roots: honest up to node k-1, its tampered S_k, then nodes k+1..
    executed natively from that tampered memory."""
    from opmlc_runtime.state import state_root

    claims = list(honest[:k]) + [tampered.root()]
    mem, nat = tampered.mem, program.native()
    for j in range(k + 1, len(program.nodes)):
        nat.run_node(j, mem.buffer.ctypes.data, False)
        for addr, n in program.nodes[j]["writes"]:
            mem.mark_dirty(int(addr), int(n))
        claims.append(state_root(program.boundary_core(j), mem.root()))
    return claims


def _honest_after(start, i: int):
    vm = start.copy()
    vm.run(max_steps=i)
    return vm


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="opmlc.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--digit", type=int, default=0, help="index of the held-out digit")
    args = ap.parse_args(argv)

    import opmlc
    from opmlc_isagen.solc import compile_solidity
    from opmlc_isagen.solidity import CONTRACT, generate_verifier
    from opmlc_runtime.evm import StepVerifier

    with np.load(DIGITS) as z:
        x, label = z["X"][args.digit], int(z["y"][args.digit])
    inputs = {"input": x.reshape(1, 1, 8, 8).astype(np.float32)}

    # 1. compile ------------------------------------------------------------------------
    out = Path(tempfile.mkdtemp(prefix="opmlc-demo-")) / "digits_cnn.opvm"
    t0 = time.perf_counter()
    opmlc.compile(MODEL, output=out, progress=False)
    model = opmlc.load(out)
    meta = model.meta
    nodes = meta["nodes"]
    total_steps = sum(int(n["steps"]) for n in nodes)
    _say(f"[1/4] compiled {MODEL.name} -> {out.name} ({out.stat().st_size:,} bytes) in "
         f"{time.perf_counter() - t0:.1f} s: {len(nodes)} nodes, {total_steps:,} VM steps, "
         f"memory {meta['memory']['total']:,} bytes (Merkle depth {meta['depth']})")

    # 2. native -------------------------------------------------------------------------
    t0 = time.perf_counter()
    _ = model.run(inputs, engine="native").state_root  # JIT-compiles kernels and keccak
    jit = time.perf_counter() - t0
    t0 = time.perf_counter()
    native = model.run(inputs, engine="native", trace=True)
    logits = native.outputs["logits"]
    pred = int(np.argmax(logits))
    _say(f"[2/4] native engine: digit #{args.digit} (label {label}) classified as {pred} in "
         f"{1e3 * (time.perf_counter() - t0):.1f} ms (JIT {jit:.1f} s, once); "
         f"committed {len(native.node_roots)} node roots, final state root "
         f"{_hex(native.state_root)[:18]}...")

    # 3. VM -----------------------------------------------------------------------------
    t0 = time.perf_counter()
    vm = model.run(inputs, engine="vm", trace=True)
    same_out = all(np.array_equal(native.outputs[k], vm.outputs[k]) for k in native.outputs)
    same_roots = vm.node_roots == native.node_roots and vm.state_root == native.state_root
    dt = time.perf_counter() - t0
    _say(f"[3/4] reference VM: {vm.steps:,} steps in {dt:.1f} s ({vm.steps / dt:,.0f} steps/s); "
         f"outputs identical: {same_out}; all {len(vm.node_roots)} node roots identical: "
         f"{same_roots}")
    if not (same_out and same_roots):
        _say("native and VM disagree: this is a bug")
        return 1

    # 4. dispute ------------------------------------------------------------------------
    program = model.program
    # the shortest node that computes something: cheap to replay in Python
    k = min((i for i, n in enumerate(nodes) if int(n["steps"]) >= 100 and n["writes"]),
            key=lambda i: int(nodes[i]["steps"]))
    steps_k = int(nodes[k]["steps"])
    addr = int(nodes[k]["writes"][0][0])
    start = _boundary_vm(program, inputs, k - 1)
    cheater = Cheater(start, t=int(steps_k * 0.9), addr=addr)
    claimed = _cheater_claims(program, native.node_roots, cheater.state_after(steps_k), k)

    lo, hi = -1, len(claimed) - 1  # phase 2: roots agree at lo, differ at hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if claimed[mid] == native.node_roots[mid]:
            lo = mid
        else:
            hi = mid
    _say(f"[4/4] dispute: a dishonest executor tampers with node {k} ({nodes[k]['op']}); "
         f"phase 2 bisection over {len(claimed)} node roots -> node {hi}")
    a, b = 0, steps_k  # phase 1: states after a steps agree, after b steps differ
    rounds = 0
    while b - a > 1:
        mid = (a + b) // 2
        rounds += 1
        if cheater.state_after(mid).root() == _honest_after(start, mid).root():
            a = mid
        else:
            b = mid
    pre = _honest_after(start, a)
    verifier = StepVerifier(compile_solidity(generate_verifier(), CONTRACT))
    post_root = verifier.step(pre.root(), pre.witness())
    honest_post = _honest_after(start, b).root()
    cheater_post = cheater.state_after(b).root()
    _say(f"      phase 1 bisection over {steps_k:,} VM steps of node {hi}: {rounds} rounds -> "
         f"step {int(pre.core.step):,} (pc {pre.core.pc:#x})")
    _say(f"      the EVM executes that one step ({verifier.gas_used:,} gas): post root "
         f"{_hex(post_root)[:18]}... = honest {post_root == honest_post}, "
         f"= dishonest {post_root == cheater_post} -> the dishonest claim is rejected")
    return 0 if post_root == honest_post != cheater_post else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
