"""Challenge traces: what a party to a dispute answers with (spec/TRACE.md).

Phase 2 is over node boundaries. ``S_0`` is the state with the model and input loaded,
``S_k`` the state after node ``k`` (1-based, as in ``opmlc trace``: node ``k`` runs from
``S_{k-1}`` to ``S_k``), ``final`` the halted state one step after ``S_n``. The phase-2
commitment is a binary keccak256 Merkle tree over the roots ``S_0 .. S_n``:

    leaves     L_i = S_i for 0 <= i <= n,  L_i = 0^32 for n < i < 2^d,
               d = ceil(log2(n + 1))       (d = 0: the commitment is S_0 itself)
    node       H(a, b) = keccak256(a || b)
    commitment the root of that tree; an inclusion proof of index i is the d sibling
               hashes from the leaf up (bit l of i set: the path node is a right child)

Phase 1 is over the VM steps of one disputed node ``k``: the state at step ``t`` of the
node (``t = 0`` is ``S_{k-1}``, ``t = steps_k`` is ``S_k``; global step
``G = S_{k-1}.step + t``), its root, and the one-step witness of ``t -> t + 1``.
:class:`NodeReplay` computes them by fast-forward from ``S_{k-1}``, whose memory the
native kernels materialise: the model is never replayed from step 0 on the VM. It keeps
a checkpoint at every state it is asked for (in memory, and in a folder when given), so
the states a bisection asks (``~log2(steps_k)`` of them, each between two earlier
ones) cost ``O(steps_k)`` in total, not ``O(steps_k x rounds)``. A checkpoint holds the
core state and the bytes of the node's write regions (nothing else changes inside a
node); restoring one marks only the leaves that differ, so a root rehashes only those.
"""

from __future__ import annotations

import hashlib
import json
import struct
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from opmlc_runtime.files import atomic_write
from opmlc_runtime.isa import LEAF_SIZE, NUM_REGS, Status
from opmlc_runtime.keccak import keccak256
from opmlc_runtime.merkle import Memory
from opmlc_runtime.state import CoreState

__all__ = ["CheckpointError", "NodeReplay", "Phase2", "TraceError", "boundary_memory", "commitment",
           "output_proofs",
           "inclusion_proof", "phase2", "verify_inclusion"]

ZERO = bytes(32)
CHECKPOINT_FORMAT = 1


class TraceError(ValueError):
    """A trace query that cannot be answered (node or step out of range); one line."""


class CheckpointError(TraceError):
    """A checkpoint folder that belongs to another artifact or input."""


def _hx(b: bytes) -> str:
    return "0x" + b.hex()


# --- the phase-2 commitment -------------------------------------------------------------


def _levels(leaves: list[bytes]) -> list[list[bytes]]:
    """The tree's levels, leaves first (padded with zero leaves to a power of two)."""
    if not leaves:
        raise ValueError("a commitment needs at least one root")
    width = 1
    while width < len(leaves):
        width *= 2
    level = list(leaves) + [ZERO] * (width - len(leaves))
    out = [level]
    while len(level) > 1:
        level = [keccak256(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
        out.append(level)
    return out


def commitment(roots: list[bytes]) -> bytes:
    """The phase-2 commitment over ``roots = [S_0, ..., S_n]`` (see the module docstring)."""
    return _levels(roots)[-1][0]


def inclusion_proof(roots: list[bytes], index: int) -> list[bytes]:
    """The sibling hashes of leaf ``index``, bottom-up."""
    if not 0 <= index < len(roots):
        raise TraceError(f"index {index} out of range: the commitment holds S_0..S_"
                         f"{len(roots) - 1}")
    path = []
    for level in _levels(roots)[:-1]:
        path.append(level[index ^ 1])
        index //= 2
    return path


def verify_inclusion(root: bytes, index: int, leaf: bytes, path: list[bytes]) -> bool:
    """Whether ``leaf`` is leaf ``index`` of the tree with root ``root``."""
    h = leaf
    for sib in path:
        h = keccak256(sib + h) if index & 1 else keccak256(h + sib)
        index >>= 1
    return index == 0 and h == root


@dataclass
class Phase2:
    """The phase-2 trace of one run: ``roots[k] = S_k`` (``roots[0] = S_0``)."""

    roots: list[bytes]
    final: bytes
    nodes: list[dict]  # {"name", "op", "steps"} per node, in order
    engine: str = "native"
    _commitment: bytes | None = field(default=None, repr=False)

    @property
    def s0(self) -> bytes:
        return self.roots[0]

    @property
    def commitment(self) -> bytes:
        if self._commitment is None:
            self._commitment = commitment(self.roots)
        return self._commitment

    def inclusion(self, index: int) -> dict:
        """``{"index", "root", "commitment", "path"}`` for ``S_index``."""
        path = inclusion_proof(self.roots, index)
        return {"index": index, "root": _hx(self.roots[index]),
                "commitment": _hx(self.commitment), "path": [_hx(p) for p in path]}

    def to_json(self) -> dict:
        return {"s0": _hx(self.s0), "final": _hx(self.final),
                "commitment": _hx(self.commitment), "roots": [_hx(r) for r in self.roots],
                "nodes": self.nodes}


def phase2(program, inputs: dict[str, np.ndarray], engine: str = "native") -> Phase2:
    """Run ``program`` (an :class:`opmlc_runtime.engines.Program`) on ``inputs`` with every
    node root, on ``engine`` (native, vm or stepper: the same roots)."""
    res = program.run(inputs, engine, trace=True)
    nodes = [{"name": n["name"], "op": n["op"], "steps": int(n["steps"])}
             for n in program.nodes]
    return Phase2([res.initial_root, *res.node_roots], res.state_root, nodes, engine)


def output_proofs(program, inputs: dict[str, np.ndarray]) -> dict:
    """The model's outputs as leaves of the final memory, each with its Merkle path, so a
    contract can read them against the final state root (``OpmlcGame.outputLeaf``):
    ``{"final", "memory_root", "outputs": {name: {"address", "nbytes", "dtype", "shape",
    "leaves": [{"index", "data", "path"}]}}}``."""
    mem = boundary_memory(program, inputs, len(program.nodes))
    mroot = mem.root()
    outs = {}
    for sig in program.outputs:
        a, n = int(sig["address"]), int(sig["nbytes"])
        leaves = [{"index": i, "data": _hx(mem.read_leaf(i)),
                   "path": [_hx(p) for p in mem.proof(i)]}
                  for i in range(a // LEAF_SIZE, (a + n + LEAF_SIZE - 1) // LEAF_SIZE)]
        outs[sig["name"]] = {"address": a, "nbytes": n, "dtype": sig["dtype"],
                             "shape": list(sig["shape"]), "leaves": leaves}
    from opmlc_runtime.state import state_root

    return {"final": _hx(state_root(program.final_core(), mroot)), "memory_root": _hx(mroot),
            "outputs": outs}


# --- phase 1: states inside one node -----------------------------------------------------


def boundary_memory(program, inputs: dict[str, np.ndarray], k: int) -> Memory:
    """The memory of S_k (``k = 0``: S0; ``k`` counts nodes from 1), computed by the native
    kernels: the image and inputs written, then nodes 1..k run."""
    mem = program.memory(inputs)
    if k > 0:
        from opmlc_runtime.native import PARALLEL_MIN_STEPS

        nat, base = program.native(), mem.buffer.ctypes.data
        for j in range(k):
            n = program.nodes[j]
            nat.run_node(j, base, bool(n.get("parallel")) and
                         int(n["steps"]) >= PARALLEL_MIN_STEPS)
            for addr, nb in n["writes"]:
                mem.mark_dirty(int(addr), int(nb))
    return mem


@dataclass
class _Checkpoint:
    step: int  # within the node
    core: CoreState
    regions: list[bytes]  # the node's write regions, in order
    root: bytes


def _input_digest(program, inputs: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for sig in program.inputs:
        h.update(sig["name"].encode() + b"\0")
        h.update(program.encode_input(sig, inputs).tobytes())
    return h.hexdigest()


class NodeReplay:
    """The VM states of node ``node`` (1-based) of one run, by fast-forward from its start
    boundary. ``checkpoints``: a folder that keeps checkpoints between processes (made
    for one artifact and input: another's is refused). ``progress(msg)`` is told about
    long replays. ``engine``: "vm" (the fast VM) or "stepper" (the reference stepper)."""

    #: a replay this long reports its progress
    PROGRESS_STEPS = 50_000_000

    def __init__(self, program, inputs: dict[str, np.ndarray], node: int,
                 checkpoints: str | Path | None = None,
                 progress: Callable[[str], None] | None = None,
                 engine: str = "vm") -> None:
        n_nodes = len(program.nodes)
        if not isinstance(node, int) or not 1 <= node <= n_nodes:
            raise TraceError(f"node {node} out of range: the model has nodes 1..{n_nodes} "
                             "(node K runs from S_{K-1} to S_K)")
        self.program, self.node, self.engine = program, node, engine
        self.info = program.nodes[node - 1]
        self.steps = int(self.info["steps"])
        self.start_core = program.boundary_core(node - 2)
        self.global_start = self.start_core.step
        self.regions = [(int(a), int(n)) for a, n in self.info["writes"] if int(n)]
        self._say = progress or (lambda msg: None)
        self._inputs = inputs
        self._mem: Memory | None = None
        self._vm = None
        self._at: int | None = None  # the step the working VM stands at
        self._cps: dict[int, _Checkpoint] = {}
        self._trusted: set[int] = set()  # checkpoints made (or root-checked) in this process
        self._folder = Path(checkpoints) if checkpoints is not None else None
        self._ident: dict | None = None
        if self._folder is not None:
            self._open_folder()

    # --- public ----------------------------------------------------------------------------

    def global_step(self, t: int) -> int:
        return self.global_start + t

    def root(self, t: int) -> bytes:
        """The state root at step ``t`` of the node (``0 <= t <= steps``)."""
        self._check_step(t, self.steps, "--step")
        return self._goto(t).root()

    def prove(self, t: int) -> dict:
        """The one-step proof of ``t -> t + 1`` (``0 <= t < steps``): pre and post roots and
        the witness, in the format of ``opmlc vm --prove``."""
        self._check_step(t, self.steps - 1, "--prove")
        vm = self._goto(t)
        pre, wit = vm.root(), vm.witness()
        vm = self._goto(t + 1)
        return {"node": self.node, "step": t, "global_step": self.global_step(t),
                "pre_root": _hx(pre), "post_root": _hx(vm.root()), "witness": _hx(wit)}

    def vm_at(self, t: int):
        """The working machine standing at step ``t`` (its ``core`` and ``mem``); valid until
        the next query. For callers that derive other states from it (adversarial agents)."""
        self._check_step(t, self.steps, "--step")
        return self._goto(t)

    def state(self, t: int) -> CoreState:
        """The core state (pc, step, status, registers) at step ``t``."""
        self._check_step(t, self.steps, "--step")
        return self._goto(t).core.copy()

    def read(self, t: int, addr: int, n: int) -> bytes:
        """``n`` bytes of memory at ``addr`` at step ``t``."""
        self._check_step(t, self.steps, "--step")
        return self._goto(t).mem.read(addr, n)

    # --- internals ---------------------------------------------------------------------------

    def _check_step(self, t: int, last: int, flag: str) -> None:
        if last < 0:
            raise TraceError(f"{flag} {t}: node {self.node} ({self.info['name']}, "
                             f"{self.info['op']}) has 0 steps (S_{self.node - 1} and "
                             f"S_{self.node} differ only in nothing it computes): no step to "
                             "prove")
        if not isinstance(t, int) or not 0 <= t <= last:
            what = (f"--prove takes 0..{last}" if flag == "--prove"
                    else f"--step takes 0 (S_{self.node - 1})..{last} (S_{self.node})")
            raise TraceError(f"{flag} {t} past the node's end: node {self.node} "
                             f"({self.info['name']}, {self.info['op']}) has {self.steps} "
                             f"steps; {what}")

    def _machine(self):
        """The working VM, standing at S_{k-1} on first use (memory by native kernels)."""
        if self._vm is None:
            self._say(f"materialising S_{self.node - 1} natively")
            mem = boundary_memory(self.program, self._inputs, self.node - 1)
            if self.engine == "stepper":
                from opmlc_runtime.stepper import VM

                vm = VM(mem)
            else:
                from opmlc_runtime.fastvm import FastVM

                vm = FastVM(mem, barriers=[int(n["entry"]) for n in self.program.nodes]
                            + [self.program.halt_pc])
            vm.core = self.start_core.copy()
            self._mem, self._vm, self._at = mem, vm, 0
            self._cps[0] = self._snapshot(0, vm.root())  # S_{k-1} as computed here
            self._trusted.add(0)
        return self._vm

    def _snapshot(self, t: int, root: bytes) -> _Checkpoint:
        buf = self._mem.buffer
        return _Checkpoint(t, self._vm.core.copy(), [bytes(buf[a:a + n]) for a, n in
                                                       self.regions], root)

    def _restore(self, cp: _Checkpoint) -> None:
        """Put the working VM in checkpoint ``cp``'s state, marking dirty only the leaves
        whose bytes differ."""
        mem, buf = self._mem, self._mem.buffer
        for (a, n), saved in zip(self.regions, cp.regions, strict=True):
            cur = buf[a:a + n]
            want = np.frombuffer(saved, np.uint8)
            diff = np.flatnonzero(cur != want)
            if len(diff) == 0:
                continue
            cur[:] = want
            leaves = np.unique((diff + a) // LEAF_SIZE)
            cut = np.flatnonzero(np.diff(leaves) > 1)
            starts = np.concatenate(([leaves[0]], leaves[cut + 1]))
            ends = np.concatenate((leaves[cut], [leaves[-1]])) + 1
            for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
                mem.mark_dirty(s * LEAF_SIZE, (e - s) * LEAF_SIZE)
        self._vm.core = cp.core.copy()
        self._at = cp.step

    def _goto(self, t: int):
        """The working VM at step ``t``: from the nearest checkpoint at or before ``t``
        (or from where it stands, when that is nearer), then a checkpoint at ``t``."""
        vm = self._machine()
        if t == self._at:
            return vm
        while True:
            known = sorted(self._cps)
            base = known[bisect_right(known, t) - 1]
            if base <= self._at < t:
                break  # where the VM stands is at least as near
            self._restore(self._cps[base])
            if base in self._trusted:
                break
            if vm.root() == self._cps[base].root:  # from the folder: used once checked
                self._trusted.add(base)
                break
            del self._cps[base]  # a damaged checkpoint is never used,
            self._at = -1  # nor the state it left the VM in
        todo = t - self._at
        if todo >= self.PROGRESS_STEPS:
            self._say(f"node {self.node}: replaying steps {self._at:,}..{t:,} of "
                      f"{self.steps:,}")
        done = vm.run(todo)
        self._at += done
        if done != todo or vm.core.status != Status.RUNNING:
            raise TraceError(f"node {self.node}: the VM stopped after {self._at} steps "
                             f"({Status(vm.core.status).name}), not at step {t}: the "
                             "artifact does not follow its static schedule")
        if t not in self._cps:
            cp = self._snapshot(t, vm.root())
            self._cps[t] = cp
            self._trusted.add(t)
            if self._folder is not None:
                self._save(cp)
        return vm

    # --- the checkpoint folder ----------------------------------------------------------------

    def _identity(self) -> dict:
        if self._ident is None:
            self._ident = {"format": CHECKPOINT_FORMAT,
                           "artifact_sha256": self.program.art.sha256(),
                           "inputs_sha256": _input_digest(self.program, self._inputs)}
        return self._ident

    def _open_folder(self) -> None:
        folder = self._folder
        ident = self._identity()
        manifest = folder / "manifest.json"
        if folder.exists() and not folder.is_dir():
            raise CheckpointError(f"--checkpoints {folder}: not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        if manifest.exists():
            try:
                have = json.loads(manifest.read_text())
            except (OSError, ValueError):
                have = None
            if have != ident:
                what = ("another artifact" if not isinstance(have, dict) or
                        have.get("artifact_sha256") != ident["artifact_sha256"]
                        else "another input")
                raise CheckpointError(
                    f"--checkpoints {folder}: the folder holds checkpoints of {what} "
                    f"(manifest.json does not match this artifact and input); give "
                    "another folder or empty this one")
        elif any(folder.iterdir()):
            raise CheckpointError(f"--checkpoints {folder}: the folder is not empty and has "
                                  "no manifest.json of opmlc checkpoints; give an empty or "
                                  "new folder")
        else:
            atomic_write(manifest, json.dumps(ident, indent=1).encode())
        self._load_folder()

    def _path(self, t: int) -> Path:
        return self._folder / f"node{self.node}-step{t}.ckpt"

    _HEAD = struct.Struct("<8sI")
    _MAGIC = b"OPMLCCP\0"

    def _save(self, cp: _Checkpoint) -> None:
        head = {"node": self.node, "step": cp.step, "root": cp.root.hex(),
                "core": {"pc": cp.core.pc, "step": cp.core.step, "status": int(cp.core.status),
                         "depth": cp.core.depth, "regs": cp.core.regs},
                "regions": [[a, n] for a, n in self.regions], **self._identity()}
        meta = json.dumps(head, sort_keys=True).encode()
        body = self._HEAD.pack(self._MAGIC, len(meta)) + meta + b"".join(cp.regions)
        atomic_write(self._path(cp.step), body + hashlib.sha256(body).digest())

    def _load_folder(self) -> None:
        """Read this node's checkpoints; damaged or foreign files are ignored (never
        used), and a checkpoint is used only after its root is recomputed."""
        for path in sorted(self._folder.glob(f"node{self.node}-step*.ckpt")):
            cp = self._read(path)
            if cp is not None:
                self._cps[cp.step] = cp

    def _read(self, path: Path) -> _Checkpoint | None:
        try:
            data = path.read_bytes()
            body, digest = data[:-32], data[-32:]
            if hashlib.sha256(body).digest() != digest:
                return None
            magic, mlen = self._HEAD.unpack_from(body)
            if magic != self._MAGIC:
                return None
            head = json.loads(body[self._HEAD.size:self._HEAD.size + mlen])
            if any(head.get(k) != v for k, v in self._identity().items()) or \
                    head["node"] != self.node or \
                    [tuple(r) for r in head["regions"]] != self.regions:
                return None
            raw = body[self._HEAD.size + mlen:]
            regions, off = [], 0
            for _, n in self.regions:
                regions.append(raw[off:off + n])
                off += n
            if off != len(raw):
                return None
            c = head["core"]
            core = CoreState(pc=c["pc"], step=c["step"], status=c["status"],
                             depth=c["depth"], regs=list(c["regs"]))
            if len(core.regs) != NUM_REGS or core.step != self.global_start + head["step"]:
                return None
            return _Checkpoint(int(head["step"]), core, regions, bytes.fromhex(head["root"]))
        except (OSError, ValueError, KeyError, TypeError, struct.error):
            return None
