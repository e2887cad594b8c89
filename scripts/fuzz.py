"""Fuzz opmlc's inputs: the one-step verifier's witness decoder, the .opvm loader, the ONNX
importer and the assembler (issue 12). Prints, per target, the cases run and what was found.

    .venv/bin/python scripts/fuzz.py witness --seconds 540      # the documented longer run
    .venv/bin/python scripts/fuzz.py opvm onnx asm --seconds 60
    .venv/bin/python scripts/fuzz.py all --cases 2000 --seed 1

Oracles (what counts as a finding):

* ``witness``: a random VM state is stepped by the reference stepper, then its witness and
  pre-state root are tampered with (bit flips, overwritten runs, spliced words from other
  witnesses, wrong lengths, wholly random bytes, re-encoded pre-states with a matching
  pre-root) and sent to the compiled verifier on revm. The contract must revert, or return
  exactly the stepper's post root for the pre-state the root commits to; any other root
  accepted is a finding. Genuine witnesses must return the stepper's root.
* ``opvm``: mutated artifacts (raw byte mutations, and metadata mutations re-sealed with
  valid checksums) must load or fail with ArtifactError, and ``opmlc inspect`` must give
  exit 0, or 1 with one line on stderr.
* ``onnx``: mutated protobufs of a small model, and random one-op graphs from the supported
  set with random shapes and attributes, through ``opmlc compile``: exit 0, or 1 with one
  line on stderr (never an internal error or a traceback).
* ``asm``: random assembly text: an image or an AsmError; an image disassembles and
  assembles back to itself.

The test suite runs the same oracles with a small budget (tests/test_fuzz.py).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# --- witness ------------------------------------------------------------------------------


def random_state(rng: random.Random):
    """A random VM state: small memory with random leaves, a random (mostly legal)
    instruction at a (mostly valid) pc, random registers, mostly RUNNING."""
    from opmlc_runtime import isa
    from opmlc_runtime.isa import MASK, Status, encode
    from opmlc_runtime.merkle import Memory
    from opmlc_runtime.stepper import VM

    depth = rng.randint(6, 14)
    size = 32 << depth
    mem = Memory(depth)
    for _ in range(rng.randint(0, 4)):
        mem.write(rng.randrange(size >> 5) * 32, rng.randbytes(32))
    pc = rng.randrange(size >> 3) * 8 if rng.random() < 0.95 else rng.choice(
        [rng.randrange(MASK), size - 8 + rng.randrange(16)])
    opcodes = sorted(isa.BY_OPCODE)
    op = rng.choice(opcodes) if rng.random() < 0.9 else rng.randrange(256)
    regs = [0] + [rng.choice([rng.randrange(1 << 64), rng.randrange(size), 0, MASK,
                              rng.randrange(-8, 8) & MASK]) for _ in range(31)]
    rd, rs1, rs2 = (rng.randrange(32) for _ in range(3))
    imm = rng.choice([0, rng.randrange(-64, 64), rng.randrange(-(1 << 31), 1 << 31)])
    if pc % 8 == 0 and pc + 8 <= size:
        mem.write(pc, encode(op, rd, rs1, rs2, imm))
    vm = VM(mem, pc=pc)
    vm.core.regs = regs
    vm.core.step = rng.choice([0, rng.randrange(1 << 20), MASK])
    if rng.random() < 0.05:
        vm.core.status = rng.choice(list(Status)[1:])
    return vm


def _stepper_root(vm, enc: bytes) -> bytes | None:
    """The post root of the pre-state whose core is ``enc`` (memory of ``vm``), or None
    when ``enc`` is no valid state (then the contract must revert)."""
    from opmlc_runtime.isa import MAX_DEPTH, MIN_DEPTH, Status
    from opmlc_runtime.keccak import keccak256
    from opmlc_runtime.merkle import Memory
    from opmlc_runtime.state import decode_state, state_root

    core, mem_root = decode_state(enc)
    if core.status != Status.RUNNING:
        return keccak256(enc)  # norm:stopped: post = pre, whatever the rest holds
    if mem_root != vm.mem.root() or core.regs[0] or not MIN_DEPTH <= core.depth <= MAX_DEPTH:
        return None  # norm:state-valid, or another memory: the proofs cannot hold
    other = vm.copy()
    if core.depth != vm.mem.depth:
        # the root commits to a memory of another depth; only a step that touches no
        # memory (a fetch fault) can be proven, and its post state does not read memory
        other.mem = Memory(core.depth)
    other.core = core
    try:
        other.step()  # the stepper is the definition
    except Exception:  # noqa: BLE001 - the stepper refuses the state: no post state
        return None
    return state_root(other.core, mem_root) if core.depth != vm.mem.depth else other.root()


def mutate_witness(rng: random.Random, vm, pre: bytes, w: bytes, post: bytes,
                   donors: list[bytes]) -> tuple[str, bytes, bytes, bytes | None]:
    """One tampered (kind, pre_root, witness, the only root the contract may return)."""
    from opmlc_runtime.keccak import keccak256
    from opmlc_runtime.state import STATE_SIZE

    kind = rng.choice(["flip", "flip", "run", "splice", "length", "random", "reencode",
                       "pre"])
    b = bytearray(w)
    if kind == "flip":
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(b) * 8)
            b[i // 8] ^= 1 << (i % 8)
    elif kind == "run":
        i = rng.randrange(len(b))
        n = rng.randint(1, 40)
        b[i:i + n] = rng.choice([bytes(n), b"\xff" * n, rng.randbytes(n)])[:len(b) - i]
    elif kind == "splice":
        d = rng.choice(donors)
        for _ in range(rng.randint(1, 3)):
            k = rng.randrange(min(len(b), len(d)) // 32)
            b[32 * k:32 * k + 32] = d[32 * k:32 * k + 32]
    elif kind == "length":
        cut = rng.choice([-1, -8, -32, 1, 32, rng.randrange(-len(b), 64)])
        b = b[:cut] if cut < 0 else b + bytearray(rng.randbytes(cut))
    elif kind == "random":
        b = bytearray(rng.randbytes(rng.choice([len(w), rng.randrange(2 * len(w) + 1)])))
    elif kind == "reencode":  # a different pre-state, its root recomputed to match
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(STATE_SIZE - 32)  # pc, step, status, depth, registers
            b[i] ^= 1 << rng.randrange(8)
        enc = bytes(b[:STATE_SIZE])
        return kind, keccak256(enc), bytes(b), _stepper_root(vm, enc)
    elif kind == "pre":
        p2 = rng.choice([bytes(32), rng.randbytes(32), keccak256(w)])
        return kind, p2, w, post if p2 == pre else None  # a halted state's witness is its
        # encoding alone, so keccak256(w) can be the genuine pre root
    if bytes(b) == w:
        b.append(0)
    return kind, pre, bytes(b), post


def fuzz_witness(rng: random.Random, budget: Callable[[int], bool], per_state: int = 64
                 ) -> dict:
    from opmlc_isagen.solc import compile_solidity
    from opmlc_isagen.solidity import CONTRACT, generate_verifier
    from opmlc_runtime.evm import Revert, StepVerifier

    verifier = StepVerifier(compile_solidity(generate_verifier(), CONTRACT))
    stats = {"states": 0, "genuine_ok": 0, "tampered": 0, "refused": 0,
             "accepted_right_root": 0, "wrong_root_accepted": 0, "genuine_refused": 0}
    kinds: dict[str, int] = {}
    donors: list[bytes] = []
    findings: list[str] = []
    while budget(stats["tampered"]):
        vm = random_state(rng)
        pre, w = vm.root(), vm.witness()
        nxt = vm.copy()
        nxt.step()
        post = nxt.root()
        stats["states"] += 1
        try:
            ok = verifier.step(pre, w) == post
        except Revert:
            ok = False
        stats["genuine_ok" if ok else "genuine_refused"] += 1
        if not ok:
            findings.append(f"genuine witness refused or wrong: pc={vm.core.pc:#x}")
        donors = (donors + [w])[-16:]
        for _ in range(per_state):
            kind, p2, w2, allowed = mutate_witness(rng, vm, pre, w, post, donors)
            stats["tampered"] += 1
            kinds[kind] = kinds.get(kind, 0) + 1
            try:
                got = verifier.step(p2, w2)
            except Revert:
                stats["refused"] += 1
                continue
            if allowed is not None and got == allowed:
                stats["accepted_right_root"] += 1
            else:
                stats["wrong_root_accepted"] += 1
                findings.append(f"{kind}: accepted root {got.hex()} (allowed "
                                f"{allowed.hex() if allowed else 'none'})")
    stats["kinds"] = kinds
    stats["findings"] = findings[:20]
    return stats


# --- .opvm ----------------------------------------------------------------------------------


def _cli(argv: list[str]) -> tuple[int, str]:
    from opmlc.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse usage errors
            rc = int(e.code or 0)
    return rc, err.getvalue()


def cli_finding(argv: list[str]) -> str | None:
    """None when the command exits 0, or non-zero with exactly one line on stderr and no
    internal error or traceback; else what went wrong."""
    rc, err = _cli(argv)
    lines = [ln for ln in err.splitlines() if not ln.startswith("opmlc: warning:")
             and not ln.startswith("opmlc: [")]
    if rc == 0:
        return None
    if len(lines) != 1 or "internal error" in err or "Traceback" in err:
        return f"{' '.join(argv[:1])}: exit {rc}: {err.strip()[:300]}"
    return None


def _mutate_json(rng: random.Random, obj):
    """``obj`` with one random change somewhere inside (a key dropped, a value replaced)."""
    if isinstance(obj, dict) and obj and rng.random() < 0.7:
        k = rng.choice(sorted(obj))
        out = dict(obj)
        if rng.random() < 0.3:
            del out[k]
        else:
            out[k] = _mutate_json(rng, obj[k])
        return out
    if isinstance(obj, list) and obj and rng.random() < 0.7:
        out = list(obj)
        i = rng.randrange(len(out))
        if rng.random() < 0.2:
            del out[i]
        else:
            out[i] = _mutate_json(rng, out[i])
        return out
    return rng.choice([None, -1, 0, 1 << 70, 2.5, "x", [], {}, True, [1, 2], -(1 << 40)])


def mutate_artifact(rng: random.Random, data: bytes) -> bytes:
    from opmlc_runtime.artifact import Artifact

    b = bytearray(data)
    kind = rng.randrange(4)
    if kind == 0:
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == 1:
        b = b[:rng.randrange(len(b))]
    elif kind == 2:
        i = rng.randrange(len(b))
        b[i:i] = rng.randbytes(rng.randint(1, 64))
    else:  # metadata changed and the checksums re-sealed: the loader's deeper checks
        art = Artifact.from_bytes(data)
        art.meta = _mutate_json(rng, art.meta)
        if not isinstance(art.meta, dict):
            art.meta = {}
        art.meta["format_version"] = 1
        return art.to_bytes()
    return bytes(b)


def fuzz_opvm(rng: random.Random, budget: Callable[[int], bool], seed_artifact: bytes
              ) -> dict:
    from opmlc_runtime.artifact import Artifact, ArtifactError
    from opmlc_runtime.engines import Program

    stats = {"cases": 0, "loaded": 0, "refused": 0, "findings": []}
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.opvm"
        while budget(stats["cases"]):
            data = mutate_artifact(rng, seed_artifact)
            stats["cases"] += 1
            try:
                Program(Artifact.from_bytes(data))
                stats["loaded"] += 1
            except ArtifactError:
                stats["refused"] += 1
            except Exception as e:  # noqa: BLE001 - anything else is a finding
                stats["findings"].append(f"load: {type(e).__name__}: {e}"[:300])
            path.write_bytes(data)
            f = cli_finding(["inspect", str(path)])
            if f:
                stats["findings"].append(f)
    return stats


# --- ONNX -------------------------------------------------------------------------------------


def random_onnx(rng: random.Random):
    """A one-op model from the supported set with random shapes and attributes."""
    import numpy as np
    from onnx import TensorProto, helper

    r = rng.randint(1, 4)
    shape = [rng.randint(1, 4) for _ in range(r)]
    op = rng.choice(["Relu", "Sigmoid", "Tanh", "Exp", "Softmax", "Add", "Mul", "Sub", "Div",
                     "MatMul", "Transpose", "Reshape", "Flatten", "Gather", "Concat",
                     "ReduceMean", "ReduceMax", "MaxPool", "AveragePool", "Conv", "Clip",
                     "LeakyRelu", "Sqrt", "Pow", "Slice", "Pad", "ArgMax", "Unsqueeze"])
    attrs: dict = {}
    inits = []
    ins = ["x"]

    def const(name: str, arr) -> None:
        inits.append(helper.make_tensor(name, TensorProto.FLOAT if arr.dtype.kind == "f"
                                        else TensorProto.INT64, list(arr.shape),
                                        arr.reshape(-1).tolist()))
        ins.append(name)

    def rand_axis() -> int:
        return rng.randint(-r - 1, r)  # sometimes out of range on purpose

    if op in ("Add", "Mul", "Sub", "Div", "MatMul", "Pow"):
        s = list(shape) if rng.random() < 0.7 else [rng.randint(1, 4)]
        if op == "MatMul":
            s = [shape[-1], rng.randint(1, 3)] if rng.random() < 0.8 else s
        const("c", np.asarray(np.random.default_rng(rng.randrange(99)).normal(size=s),
                              np.float32))
    elif op in ("Softmax", "Flatten", "Concat", "ArgMax"):
        attrs["axis"] = rand_axis()
        if op == "Concat":
            ins.append("x")
    elif op == "Transpose" and rng.random() < 0.8:
        attrs["perm"] = rng.sample(range(r), r) if rng.random() < 0.9 else [0] * r
    elif op == "Reshape":
        const("s", np.asarray([rng.choice([-1, 0, 1, 2, int(np.prod(shape))])
                               for _ in range(rng.randint(1, 3))], np.int64))
    elif op == "Gather":
        const("i", np.asarray([rng.randint(-5, 5) for _ in range(3)], np.int64))
        attrs["axis"] = rand_axis()
    elif op in ("ReduceMean", "ReduceMax"):
        attrs["axes"] = [rand_axis()]
        attrs["keepdims"] = rng.randint(0, 1)
    elif op in ("MaxPool", "AveragePool", "Conv"):
        shape = [1, rng.randint(1, 3)] + [rng.randint(1, 6) for _ in range(rng.randint(1, 2))]
        k = [rng.randint(1, 4) for _ in shape[2:]]
        attrs["kernel_shape"] = k
        if rng.random() < 0.5:
            attrs["strides"] = [rng.randint(0, 3) for _ in k]
        if rng.random() < 0.5:
            attrs["pads"] = [rng.randint(-1, 2) for _ in k * 2]
        if op == "Conv":
            const("w", np.asarray(np.random.default_rng(1).normal(
                size=[rng.randint(1, 3), shape[1]] + k), np.float32))
    elif op == "Clip":
        const("lo", np.asarray(-rng.random(), np.float32))
        const("hi", np.asarray(rng.random() * rng.choice([1, -1]), np.float32))
    elif op == "LeakyRelu":
        attrs["alpha"] = rng.choice([0.1, -1.0, 1e30, float("nan")])
    elif op == "Slice":
        for n in ("st", "en"):
            const(n, np.asarray([rng.randint(-6, 6)], np.int64))
        const("ax", np.asarray([rand_axis()], np.int64))
    elif op == "Pad":
        const("p", np.asarray([rng.randint(-2, 3) for _ in range(2 * r)], np.int64))
    elif op == "Unsqueeze":
        const("ax", np.asarray([rand_axis()], np.int64))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("y", TensorProto.UNDEFINED, None)
    node = helper.make_node(op, ins, ["y"], **attrs)
    g = helper.make_graph([node], "fuzz", [x], [y], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", rng.choice([13, 17]))])


def fuzz_onnx(rng: random.Random, budget: Callable[[int], bool], seed_model: bytes) -> dict:
    stats = {"cases": 0, "mutated": 0, "generated": 0, "compiled": 0, "refused": 0,
             "findings": []}
    with tempfile.TemporaryDirectory() as d:
        path, out = Path(d) / "m.onnx", Path(d) / "m.opvm"
        while budget(stats["cases"]):
            stats["cases"] += 1
            if rng.random() < 0.5:
                b = bytearray(seed_model)
                for _ in range(rng.randint(1, 6)):
                    b[rng.randrange(len(b))] = rng.randrange(256)
                if rng.random() < 0.3:
                    b = b[:rng.randrange(len(b))]
                data, stats["mutated"] = bytes(b), stats["mutated"] + 1
            else:
                data, stats["generated"] = (random_onnx(rng).SerializeToString(),
                                            stats["generated"] + 1)
            path.write_bytes(data)
            rc, err = _cli(["compile", str(path), "-o", str(out), "-q"])
            stats["compiled" if rc == 0 else "refused"] += 1
            lines = [ln for ln in err.splitlines() if not ln.startswith("opmlc: warning:")]
            if rc != 0 and (len(lines) != 1 or "internal error" in err):
                stats["findings"].append(f"exit {rc}: {err.strip()[:300]}")
    return stats


# --- assembler ----------------------------------------------------------------------------------


def random_asm(rng: random.Random) -> str:
    from opmlc_runtime import isa

    mn = [r.mnemonic for r in isa.INSTRUCTIONS] + ["li", "la", "mv", "j", "call", "ret",
                                                   "nop", "bogus"]
    dirs = [".org", ".align", ".zero", ".byte", ".half", ".word", ".dword", ".bad"]
    toks = ["r1", "r31", "r32", "zero", "0", "-1", "0x10", "0xffffffffffffffff",
            "1 << 70", "lab", "lab+8", "8(r2)", "(r3)", "-8(zero)", ",", "", "#c", "9" * 30,
            "0b101", "x:", "+", "\t", "é"]
    lines = []
    for _ in range(rng.randint(1, 12)):
        k = rng.random()
        if k < 0.6:
            ops = ", ".join(rng.choice(toks) for _ in range(rng.randint(0, 4)))
            lines.append(f"{rng.choice(['', 'lab: ', 'l2: '])}{rng.choice(mn)} {ops}")
        elif k < 0.85:
            lines.append(f"{rng.choice(dirs)} {rng.choice(toks + ['1000', '4096', '3'])}")
        else:
            lines.append("".join(rng.choice("abr0x1:,.()#;-+ \t\\\"'%$") for _ in
                                 range(rng.randint(0, 20))))
    return "\n".join(lines) + "\n"


def fuzz_asm(rng: random.Random, budget: Callable[[int], bool]) -> dict:
    from opmlc_runtime.asm import AsmError, assemble, disassemble

    stats = {"cases": 0, "assembled": 0, "refused": 0, "findings": []}
    while budget(stats["cases"]):
        stats["cases"] += 1
        text = random_asm(rng)
        try:
            img = assemble(text, max_size=1 << 16)
        except AsmError:
            stats["refused"] += 1
            continue
        except Exception as e:  # noqa: BLE001 - a finding
            stats["findings"].append(f"{type(e).__name__}: {e} in {text!r}"[:300])
            continue
        stats["assembled"] += 1
        try:
            back = assemble(disassemble(img), max_size=1 << 16)
        except Exception as e:  # noqa: BLE001 - a finding
            stats["findings"].append(f"round trip: {type(e).__name__}: {e}"[:300])
            continue
        if back != img:
            stats["findings"].append(f"round trip differs for {text!r}"[:300])
    return stats


# --- driver ---------------------------------------------------------------------------------------


def seed_artifact() -> bytes:
    from opmlc import api

    return api.compile(str(ROOT / "models" / "digits_mlp_sklearn.onnx")).to_bytes()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("targets", nargs="+", choices=["witness", "opvm", "onnx", "asm", "all"])
    p.add_argument("--seconds", type=float, default=30.0, help="time budget per target")
    p.add_argument("--cases", type=int, default=None, help="case budget per target")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    targets = ["witness", "opvm", "onnx", "asm"] if "all" in args.targets else args.targets
    found = 0
    for t in targets:
        rng = random.Random(f"{args.seed}:{t}")
        end = time.monotonic() + args.seconds

        def budget(n: int) -> bool:
            return n < args.cases if args.cases is not None else time.monotonic() < end  # noqa: B023

        t0 = time.monotonic()
        if t == "witness":
            stats = fuzz_witness(rng, budget)
        elif t == "opvm":
            stats = fuzz_opvm(rng, budget, seed_artifact())
        elif t == "onnx":
            stats = fuzz_onnx(rng, budget, (ROOT / "models" / "digits_mlp_sklearn.onnx")
                              .read_bytes())
        else:
            stats = fuzz_asm(rng, budget)
        stats["seconds"] = round(time.monotonic() - t0, 1)
        n = len(stats["findings"]) + stats.get("wrong_root_accepted", 0)
        found += n
        print(f"{t}: {json.dumps(stats)}", flush=True)
    print(f"total findings: {found}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
