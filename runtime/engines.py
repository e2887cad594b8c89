"""Engine drivers: run a loaded artifact natively or on the VM, with node-boundary roots.

State at the boundaries (spec/OPVM.md, "Execution"):

* S0 (before node 0): pc = entry of node 0, registers zero, step 0, status RUNNING,
  memory = the image with the inputs written.
* S_k (after node k): pc = exit of node k (= entry of node k+1, or the halt), registers
  zero, step = sum of the static step counts of nodes 0..k, status RUNNING.
* final: after the halt step: pc = halt address, step = total + 1, status HALTED.

Roots, on every engine: ``commit=True`` computes the final state root; ``trace=True``
also S0's root and the root of every S_k (the phase-2 trace; ``RunResult.roots`` says
which a result holds: "none", "final" or "all"); with neither, ``state_root`` is hashed
only when first read. The native engine never runs the VM: it knows the core state of S_k
statically and hashes the shared memory buffer. A run without node roots or capture is
one call of the runtime's native driver per thread (``NativeModule.run_all``) and does
not restore the reused buffer first (see ``_native_memory``); its final root rehashes
only the bytes a run can write. Node roots: one call of the trace driver per thread
(``NativeModule.trace_all``), which rehashes each node's write regions right after it;
S0 is restored by copying back the image's bytes and tree over the writable ranges
(``Memory.restore_ranges``), and a fresh memory takes the image's tree from the disk
cache (``treecache``), so the constant image is hashed once per artifact and host.
The VM engine steps the reference stepper exactly ``steps_k`` times per node and checks
that it lands on the canonical S_k.
:meth:`Program.replay` builds the same states from values computed elsewhere (the
compiler's integer reference): node k writes exactly its output regions, so writing
each node's outputs in order reproduces every S_k.

``capture=True`` returns the bytes of every node output as it stands at that node's
boundary (``RunResult.tensors``; activations share bytes later, so they are read
there), for tensor-by-tensor comparisons between engines.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from opmlc_runtime import edge
from opmlc_runtime.artifact import Artifact, ArtifactError
from opmlc_runtime.dtypes import int_range, np_dtype
from opmlc_runtime.generate import GenerateInputError, GenSpec
from opmlc_runtime.isa import NUM_REGS, Status
from opmlc_runtime.merkle import Memory
from opmlc_runtime.state import CoreState, state_root

ENGINES = ("native", "vm", "stepper")


class EngineError(RuntimeError):
    """An engine diverged from the static schedule (a bug, never bad input)."""


class InputError(ValueError):
    """Inputs that do not match the artifact's signature."""


@dataclass
class RunResult:
    engine: str
    outputs: dict[str, np.ndarray]
    _root: bytes | Callable[[], bytes]  # the final state root, or how to compute it
    steps: int
    node_roots: list[bytes] = field(default_factory=list)
    initial_root: bytes | None = None
    tensors: dict[str, bytes] = field(default_factory=dict)  # capture=True: raw node outputs
    roots: str = "none"  # what was committed: "none", "final" (state_root), "all" (+ S0, S_k)

    @property
    def state_root(self) -> bytes:
        """The final state root (a plain native run computes it on first access)."""
        if callable(self._root):
            self._root = self._root()
        return self._root

    def to_json(self) -> dict:
        """{"engine", "outputs", "steps", "roots"} + "state_root" when roots is "final" or
        "all" + "initial_root", "node_roots" when "all"."""
        d = {"engine": self.engine,
             "outputs": {k: v.tolist() for k, v in self.outputs.items()},
             "steps": self.steps, "roots": self.roots}
        if self.roots != "none":
            d["state_root"] = "0x" + self.state_root.hex()
        if self.roots == "all":
            d["initial_root"] = "0x" + (self.initial_root or b"").hex()
            d["node_roots"] = ["0x" + r.hex() for r in self.node_roots]
        return d


def _shape_mismatch(name: str, got: tuple[int, ...], want: tuple[int, ...],
                    dtype: str) -> str:
    """Why an input's shape is refused, naming the axis and how to fix it."""
    head = f"input {name!r} has shape {list(got)}, the model expects {dtype}{list(want)}"
    if len(got) != len(want):
        same = int(np.prod(got, dtype=np.int64)) == int(np.prod(want, dtype=np.int64))
        fix = (f"reshape it to {list(want)} (the same {int(np.prod(want, dtype=np.int64))} "
               "values)" if same else "give an array of that shape")
        return f"{head}: rank {len(got)} instead of {len(want)}; {fix}"
    ax = next(i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b)
    return (f"{head}: axis {ax} has {got[ax]} instead of {want[ax]}; give an array of "
            "that shape (shapes are fixed at compile time: recompile with --shape to "
            "change one)")


def _scale_str(s: float | list) -> str:
    if isinstance(s, (list, tuple)):
        return f"per-channel x{len(s)}"
    m, e = np.frexp(float(s))
    return f"2^{int(e) - 1}" if m == 0.5 else f"{float(s):.6g}"


def _check_meta(p: Program) -> None:
    """The metadata's shapes and numbers, checked once at load: every later use may index
    them freely (a damaged but re-sealed artifact fails here, with one line)."""
    end = 32 << p.depth
    if not 1 <= p.depth <= 59 or not 0 <= p.total <= end or not 0 <= p.halt_pc < end:
        raise ValueError(f"depth {p.depth}, memory {p.total} or halt {p.halt_pc:#x} out of range")
    step = 0
    for i, n in enumerate(p.nodes):
        for key in ("entry", "exit", "steps", "step_end"):
            if not 0 <= int(n[key]) < 1 << 63:
                raise ValueError(f"node {i}: {key} {n[key]!r} out of range")
        step += int(n["steps"])
        if int(n["step_end"]) != step:
            raise ValueError(f"node {i}: step_end {n['step_end']} is not the sum of the steps")
        for a, b in n["writes"]:
            if not (0 <= int(a) and 0 <= int(b) and int(a) + int(b) <= p.total):
                raise ValueError(f"node {i}: write region {a}+{b} outside memory")
        for name in n["outputs"]:
            p._regions[str(name)]  # noqa: B018 - every output has a region
    for kind in ("inputs", "outputs"):
        for sig in getattr(p, kind):
            shape = [int(d) for d in sig["shape"]]
            nbytes = int(np.prod(shape, dtype=np.int64)) * np_dtype(sig["dtype"]).itemsize
            if min(shape, default=0) < 0 or int(sig["nbytes"]) != nbytes or not (
                    0 <= int(sig["address"]) and int(sig["address"]) + nbytes <= p.total):
                raise ValueError(f"{kind[:-1]} {sig['name']!r}: shape {shape}, nbytes "
                                 f"{sig['nbytes']} or address {sig['address']} inconsistent")


class Program:
    """A loaded artifact, ready to run on either engine."""

    def __init__(self, artifact: Artifact) -> None:
        self.art = artifact
        m = artifact.meta
        try:
            self.depth = int(m["depth"])
            self.total = int(m["memory"]["total"])
            self.nodes = m["nodes"]
            self.inputs = m["inputs"]
            self.outputs = m["outputs"]
            self.halt_pc = int(m["code"]["halt"])
            self.entry = int(self.nodes[0]["entry"]) if self.nodes else self.halt_pc
            self._regions = {str(r[1]): (int(r[2]), int(r[3])) for r in m["memory"]["regions"]}
            self.gen = GenSpec.of(m)
            _check_meta(self)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as e:
            raise ArtifactError(f"artifact metadata incomplete or malformed: "
                                f"{type(e).__name__}: {e}") from None
        self._native = None
        self._mem: Memory | None = None  # the native engine's buffer, reused run to run
        self._mem_lock = threading.Lock()
        self._pending: weakref.ref | None = None  # last result with a lazy root on _mem
        self._writable: list[tuple[int, int]] | None = None
        self._flags: bytes | None = None
        self._pristine = None  # merkle.SavedRanges: the image's writable bytes and tree
        self._leaf_ranges: tuple[np.ndarray, np.ndarray] | None = None
        self._final_ranges: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def load(cls, path: str) -> Program:
        return cls(Artifact.load(path))

    # --- states ----------------------------------------------------------------------

    def boundary_core(self, k: int) -> CoreState:
        """The core state of S_k (k = -1: S0)."""
        if k < 0:
            return CoreState(pc=self.entry, step=0, depth=self.depth)
        n = self.nodes[k]
        return CoreState(pc=int(n["exit"]), step=int(n["step_end"]), depth=self.depth)

    def final_core(self) -> CoreState:
        steps = int(self.nodes[-1]["step_end"]) if self.nodes else 0
        return CoreState(pc=self.halt_pc, step=steps + 1, status=Status.HALTED,
                         depth=self.depth)

    def signature(self) -> str:
        """One line per input: ``name: dtype[shape]`` and how float arrays are taken."""
        lines = []
        for sig in self.inputs:
            q = sig.get("quant")
            how = (f"float arrays are quantized (scale {_scale_str(q['scale'])}, zero point "
                   f"{q['zero_point']}); integer arrays are taken as quantized values"
                   if q else "integer values only")
            lines.append(f"{sig['name']}: {sig['dtype']}{list(sig['shape'])} ({how})")
        return "; ".join(lines) or "(no inputs)"

    def expand(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A generation program's inputs from a prompt (opmlc_runtime.generate); other
        programs' inputs unchanged."""
        if self.gen is None:
            return inputs
        sig = next(s for s in self.inputs if s["name"] == self.gen.ids)
        try:
            return self.gen.expand(inputs, tuple(int(d) for d in sig["shape"]),
                                   np_dtype(sig["dtype"]))
        except GenerateInputError as e:
            raise InputError(str(e)) from None

    def check_names(self, inputs: dict[str, np.ndarray]) -> None:
        inputs = self.expand(inputs)
        names = [s["name"] for s in self.inputs]
        unknown = sorted(k for k in inputs if k not in names)
        missing = [k for k in names if k not in inputs]
        if unknown or missing:
            what = []
            if unknown:
                what.append(f"unknown input{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(map(repr, unknown))}")
            if missing:
                what.append(f"missing input{'s' if len(missing) > 1 else ''} "
                            f"{', '.join(map(repr, missing))}")
            takes = self.gen.describe() if self.gen else f"takes {self.signature()}"
            raise InputError(f"{'; '.join(what)}; the model {takes}")

    def memory(self, inputs: dict[str, np.ndarray], tree: bool = False) -> Memory:
        """S0's memory: the image plus the inputs (validated and converted). ``tree``: a
        root will be asked for, so give it the image's Merkle tree now, from the disk
        cache (treecache: keyed by the image's digest, checked) or hashed and cached;
        the inputs' leaves are then all that is left to hash."""
        self.check_names(inputs)
        data = [(int(sig["address"]), self.encode_input(sig, inputs)) for sig in self.inputs]
        mem = Memory(self.depth, size_hint=self.total)
        mem.reserve(self.total)
        mem.load_image(0, np.frombuffer(self.art.image, np.uint8))
        if tree:
            from opmlc_runtime import treecache

            if not treecache.load_tree(mem, self.art.image_digest()):
                treecache.save_tree(mem, self.art.image_digest())
        for a, raw in data:
            mem.load_image(a, raw)
        return mem

    def encode_input(self, sig: dict, inputs: dict[str, np.ndarray], saturate: bool = False,
                     notes: list[str] | None = None) -> np.ndarray:
        """The bytes of input ``sig``: a float array quantized by the edge rule, refused
        when it holds values the rule cannot represent (NaN, +-inf, out of range) unless
        ``saturate`` (then clamped, and a line appended to ``notes``); an integer array
        checked to fit the declared dtype. The shape must be the signature's exactly."""
        inputs = self.expand(inputs)
        name = sig["name"]
        if name not in inputs:
            raise InputError(f"missing input {name!r}; the model takes {self.signature()}")
        try:
            x = np.asarray(inputs[name])
        except (TypeError, ValueError):
            x = np.asarray(None)
        if x.dtype.kind not in "fiub":
            raise InputError(f"input {name!r} is a {type(inputs[name]).__name__} of "
                             f"{x.dtype}, not a numeric array; the model takes "
                             f"{self.signature()}")
        shape = tuple(int(d) for d in sig["shape"])
        if x.shape != shape:
            raise InputError(_shape_mismatch(name, x.shape, shape, sig["dtype"]))
        dt = np_dtype(sig["dtype"])
        if x.dtype.kind == "f":
            if sig.get("quant") is None:
                raise InputError(f"input {name!r} is {x.dtype} but the model takes "
                                 f"{sig['dtype']}{list(shape)} integers without "
                                 "quantization parameters")
            try:
                x, rep = edge.quantize_input(x, sig["quant"], name, saturate)
            except edge.EdgeError as e:
                raise InputError(str(e)) from None
            if rep.bad and notes is not None:
                notes.append(f"input {name!r}: {rep.describe()}; saturated (--saturate)")
        else:
            c = x.astype(dt)
            if not np.array_equal(c, x):
                bad = int(np.count_nonzero(c != x))
                lo, hi = int_range(sig["dtype"])
                raise InputError(f"input {name!r} ({x.dtype}) does not fit {sig['dtype']}: "
                                 f"{bad} of {x.size} values outside [{lo}, {hi}]")
            x = c
        return np.ascontiguousarray(x.astype(dt)).view(np.uint8).reshape(-1)

    def dequantize_outputs(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs with quantization parameters as float32 (``(q - zero_point) * scale``);
        the others unchanged."""
        q = {s["name"]: s.get("quant") for s in self.outputs}
        return {k: edge.dequantize(v, q[k]) if q.get(k) else v for k, v in outputs.items()}

    def read_outputs(self, mem: Memory) -> dict[str, np.ndarray]:
        out = {}
        for sig in self.outputs:
            raw = mem.read(int(sig["address"]), int(sig["nbytes"]))
            out[sig["name"]] = np.frombuffer(raw, np_dtype(sig["dtype"])).reshape(
                sig["shape"]).copy()
        return out

    # --- engines ---------------------------------------------------------------------

    def native(self):
        if self._native is None:
            from opmlc_runtime.native import NativeModule

            self._native = NativeModule(self.art.llvm_ir, len(self.nodes))
        return self._native

    def run(self, inputs: dict[str, np.ndarray], engine: str = "native",
            commit: bool = False, capture: bool = False, trace: bool = False) -> RunResult:
        """Run on ``engine``: ``commit`` the final state root, ``trace`` every root (S0,
        each S_k, final), ``capture`` every node output's bytes (see the module doc)."""
        if engine == "native":
            res = self._run_native(inputs, trace, capture, root=commit or trace)
        elif engine in ("vm", "stepper"):
            res = self._run_vm(inputs, trace, capture, engine, root=commit or trace)
        else:
            raise ValueError(f"unknown engine {engine!r}; choose one of {ENGINES} "
                             "(or 'ref' through the compiler API)")
        return _settle(res, commit, trace)

    def _capture(self, k: int, mem: Memory, out: dict[str, bytes]) -> None:
        for name in self.nodes[k]["outputs"]:
            addr, n = self._regions[name]
            out[name] = mem.read(addr, n)

    def replay(self, inputs: dict[str, np.ndarray], values: dict[str, bytes | np.ndarray],
               trace: bool = False, engine: str = "ref", commit: bool = True) -> RunResult:
        """The run whose node k wrote ``values[o]`` (raw little-endian bytes or an array of
        the declared dtype) for each of its outputs o: the same final root and step count
        (and with ``trace`` the same S0 and S_k roots) as a real engine when the values
        are right."""
        mem = self.memory(inputs)
        commit = commit or trace
        initial = state_root(self.boundary_core(-1), mem.root()) if trace else None
        roots = []
        for k, n in enumerate(self.nodes):
            for name in n["outputs"]:
                addr, nb = self._regions[name]
                v = values[name]
                raw = v if isinstance(v, bytes) else np.ascontiguousarray(v).astype(
                    np.asarray(v).dtype.newbyteorder("<")).tobytes()
                if len(raw) != nb:
                    raise EngineError(f"node {k} ({n['name']}): value {name!r} has "
                                      f"{len(raw)} bytes, its region {nb}")
                mem.write(addr, raw)
            if trace:
                roots.append(state_root(self.boundary_core(k), mem.root()))
        outs = self.read_outputs(mem)
        core = self.final_core()
        final = state_root(core, mem.root()) if commit else (
            lambda: state_root(core, mem.root()))
        return _settle(RunResult(engine, outs, final, core.step, roots, initial), commit,
                       trace)

    def _writable_ranges(self) -> list[tuple[int, int]]:
        """The merged byte ranges a run can change: the inputs and every node's outputs."""
        if self._writable is None:
            rs = sorted([(int(s["address"]), int(s["nbytes"])) for s in self.inputs]
                        + [(int(r[0]), int(r[1])) for n in self.nodes for r in n["writes"]])
            out: list[list[int]] = []
            for a, n in rs:
                if out and a <= out[-1][0] + out[-1][1]:
                    out[-1][1] = max(out[-1][1], a + n - out[-1][0])
                elif n:
                    out.append([a, n])
            self._writable = [(a, n) for a, n in out]
        return self._writable

    def _native_memory(self, inputs: dict[str, np.ndarray], restore: bool = True,
                       tree: bool = False) -> Memory:
        """S0's memory for a native run: the previous run's buffer with every byte a run
        can change (inputs, node outputs) restored from the image, then the inputs, so it
        equals ``memory(inputs)`` byte for byte; its Merkle tree is kept, so a root
        rehashes only those bytes (never the weights).

        ``restore=False`` (a whole run with no root before its end): only the inputs are
        written. Every node writes all bytes of its output regions, after the writes of
        the nodes before it, and reads only bytes written earlier in the same run (or
        constants), so the memory after the last node is the same either way; the caller
        marks the writable ranges dirty after the run."""
        if self._mem is None:
            self._mem = self.memory(inputs, tree)
            return self._mem
        prev = self._pending() if self._pending is not None else None
        if prev is not None:
            prev.state_root  # noqa: B018 - settle the lazy root before the buffer changes
        self._pending = None
        self.check_names(inputs)
        data = [(int(sig["address"]), self.encode_input(sig, inputs)) for sig in self.inputs]
        mem = self._mem
        if restore and not (self._pristine is not None and mem.restore_ranges(self._pristine)):
            img = np.frombuffer(self.art.image, np.uint8)
            buf = mem.buffer
            for a, n in self._writable_ranges():
                e, m = a + n, min(a + n, len(img))
                if a < m:
                    buf[a:m] = img[a:m]
                if max(a, m) < e:
                    buf[max(a, m):e] = 0
                mem.mark_dirty(a, n)
            # the image's tree over those bytes, kept: later restores copy it, not rehash
            self._pristine = mem.save_ranges(self._writable_ranges())
        for a, raw in data:
            mem.load_image(a, raw)
        return mem

    def _split_flags(self) -> bytes:
        """flags[k] = 1 when the driver splits node k over the threads; none when the
        split nodes add up to less than PROGRAM_SPLIT_MIN_STEPS (a small program runs
        on one thread, waking the others costs more than it saves)."""
        if self._flags is None:
            from opmlc_runtime.native import DRIVER_SPLIT_MIN_STEPS, PROGRAM_SPLIT_MIN_STEPS

            split = [bool(n.get("parallel")) and int(n["steps"]) >= DRIVER_SPLIT_MIN_STEPS
                     for n in self.nodes]
            work = sum(int(n["steps"]) for n, s in zip(self.nodes, split, strict=True) if s)
            self._flags = bytes(int(s and work >= PROGRAM_SPLIT_MIN_STEPS) for s in split)
        return self._flags

    def _driver_parts(self) -> int | None:
        """At most this many threads in the drivers: 1 for a program that splits no
        node (its hashing is small too), else all."""
        return None if any(self._split_flags()) else 1

    def _run_native(self, inputs: dict[str, np.ndarray], commit: bool,
                    capture: bool = False, root: bool = False) -> RunResult:
        """``commit`` here: every node root (Program.run's ``trace``); ``root``: some
        root will be hashed (the image's tree is loaded or built up front)."""
        if not self._mem_lock.acquire(blocking=False):  # a concurrent run: its own memory
            return self._run_native_on(self.memory(inputs, root), commit, capture, False,
                                       root)
        try:
            plain = not (commit or capture)
            return self._run_native_on(
                self._native_memory(inputs, restore=not plain, tree=root), commit, capture,
                True, root)
        finally:
            self._mem_lock.release()

    def profile_native(self, inputs: dict[str, np.ndarray]) -> list[float]:
        """Seconds spent in each node's native kernel on one run (no commitment)."""
        import time

        from opmlc_runtime.native import PARALLEL_MIN_STEPS

        nat = self.native()
        with self._mem_lock:
            mem = self._native_memory(inputs)
            base = mem.buffer.ctypes.data
            out = []
            for k, n in enumerate(self.nodes):
                par = bool(n.get("parallel")) and int(n["steps"]) >= PARALLEL_MIN_STEPS
                t = time.perf_counter()
                nat.run_node(k, base, par)
                out.append(time.perf_counter() - t)
                for r in n["writes"]:
                    mem.mark_dirty(int(r[0]), int(r[1]))
        return out

    def _run_native_on(self, mem: Memory, commit: bool, capture: bool,
                       shared: bool, root: bool = False) -> RunResult:
        from opmlc_runtime.native import PARALLEL_MIN_STEPS

        nat = self.native()
        initial = state_root(self.boundary_core(-1), mem.root()) if commit else None
        base = mem.buffer.ctypes.data
        roots: list[bytes] = []
        tensors: dict[str, bytes] = {}
        if not (commit or capture):  # nothing to observe between nodes: one driver call
            if not (root and self._final_native(nat, mem)):
                nat.run_all(base, self._split_flags())
                for a, n in self._writable_ranges():
                    mem.mark_dirty(a, n)
        elif commit and not capture:  # node roots hashed by the driver, node by node
            roots = self._trace_native(nat, mem)
        for k, n in enumerate(self.nodes if (commit and not roots) or capture else ()):
            par = bool(n.get("parallel")) and int(n["steps"]) >= PARALLEL_MIN_STEPS
            nat.run_node(k, base, par)
            for r in n["writes"]:
                mem.mark_dirty(int(r[0]), int(r[1]))
            if commit:
                roots.append(state_root(self.boundary_core(k), mem.root()))
            if capture:
                self._capture(k, mem, tensors)
        outs = self.read_outputs(mem)
        core = self.final_core()
        if commit:
            final: bytes | Callable[[], bytes] = state_root(core, mem.root())
        else:  # no commitment unless asked: the root is hashed when first read
            final = lambda: state_root(core, mem.root())  # noqa: E731
        res = RunResult("native", outs, final, core.step, roots, initial, tensors)
        if shared:  # a root still to hash reads this buffer: settle it before the next run
            self._pending = weakref.ref(res)
        return res

    def _node_leaf_ranges(self) -> tuple[np.ndarray, np.ndarray]:
        """(roff, rlh): node k's write regions as leaf ranges rlh[2j], rlh[2j + 1] for j
        in [roff[k], roff[k + 1]) (the layout NativeModule.trace_all reads)."""
        if self._leaf_ranges is None:
            off, lh = [0], []
            for n in self.nodes:
                for a, b in n["writes"]:
                    if int(b):
                        lh += [int(a) // 32, (int(a) + int(b) - 1) // 32 + 1]
                off.append(len(lh) // 2)
            self._leaf_ranges = (np.array(off, np.int64), np.array(lh or [0], np.int64))
        return self._leaf_ranges

    def _final_native(self, nat, mem: Memory) -> bool:
        """Run every node and then rehash the writable ranges' paths in the same native
        call per thread (the trace driver with ranges on the last node only: no pool
        handoff, no Python between the run and the hashing); False (nothing run) when
        the keccak JIT or the dense tree is unavailable."""
        from opmlc_runtime.keccak import update_address

        upd = update_address()
        if upd is None or not self.nodes or not self._writable_ranges():
            return False
        if self._final_ranges is None:
            lh = [x for a, n in self._writable_ranges() for x in (a // 32, (a + n - 1) // 32 + 1)]
            off = np.zeros(len(self.nodes) + 1, np.int64)
            off[-1] = len(lh) // 2
            self._final_ranges = (off, np.array(lh, np.int64))
        roff, rlh = self._final_ranges
        tree = mem.native_levels(rehashed=rlh.reshape(-1, 2).tolist())
        if tree is None:
            return False
        self._trace_call(nat, mem, upd, tree, roff, rlh)
        return True

    def _trace_call(self, nat, mem: Memory, upd: int, tree: tuple, roff: np.ndarray,
                    rlh: np.ndarray) -> np.ndarray:
        """NativeModule.trace_all on ``mem`` with dirty leaf ranges (roff, rlh) per node;
        node(top, 0) after each node, one row of 32 bytes per node."""
        ptrs, top = tree
        tops = np.zeros((len(self.nodes), 32), np.uint8)
        try:
            nat.trace_all(mem.buffer.ctypes.data, self._split_flags(), upd, ptrs.ctypes.data,
                          top, roff.ctypes.data, rlh.ctypes.data, tops.ctypes.data,
                          self._driver_parts())
        finally:
            mem.levels_changed()
        return tops

    def _trace_native(self, nat, mem: Memory) -> list[bytes]:
        """Run every node and hash its writes' Merkle paths after it in one native call
        per thread (NativeModule.trace_all); the S_k roots. [] (nothing run) when the
        keccak JIT or the dense tree is unavailable: the caller goes node by node."""
        from opmlc_runtime.keccak import update_address

        upd = update_address()
        tree = mem.native_levels() if upd is not None and self.nodes else None
        if tree is None:
            return []
        tops = self._trace_call(nat, mem, upd, tree, *self._node_leaf_ranges())
        return [state_root(self.boundary_core(k), mem.root_over_top(tops[k].tobytes()))
                for k in range(len(self.nodes))]

    def _run_vm(self, inputs: dict[str, np.ndarray], commit: bool,
                capture: bool = False, engine: str = "vm", root: bool = False) -> RunResult:
        """Run the bytecode node by node: engine "vm" on the fast VM (translated code,
        runtime/fastvm.py), "stepper" on the Python reference stepper."""
        from opmlc_runtime.fastvm import FastVM
        from opmlc_runtime.stepper import VM

        mem = self.memory(inputs, root)
        if engine == "stepper":
            vm: VM | FastVM = VM(mem, pc=self.entry)
        else:  # node entries end the translated segments: a node is one segment
            vm = FastVM(mem, pc=self.entry,
                        barriers=[int(n["entry"]) for n in self.nodes] + [self.halt_pc])
        initial = vm.root() if commit else None
        roots: list[bytes] = []
        tensors: dict[str, bytes] = {}
        for k, n in enumerate(self.nodes):
            vm.run(max_steps=int(n["steps"]))
            want = self.boundary_core(k)
            c = vm.core
            if (c.status, c.pc, c.step, c.regs) != (Status.RUNNING, want.pc, want.step,
                                                   [0] * NUM_REGS):
                raise EngineError(
                    f"node {k} ({n['name']}, {n['op']}): VM left the static schedule: "
                    f"status {Status(c.status).name}, pc {c.pc:#x} (want {want.pc:#x}), "
                    f"step {c.step} (want {want.step}), nonzero registers "
                    f"{[i for i, r in enumerate(c.regs) if r]}")
            if commit:
                roots.append(vm.root())
            if capture:
                self._capture(k, mem, tensors)
        vm.run(max_steps=1)
        if vm.core.status != Status.HALTED:
            raise EngineError(f"VM did not halt at {self.halt_pc:#x}: status "
                              f"{Status(vm.core.status).name}, pc {vm.core.pc:#x}")
        outs = self.read_outputs(mem)
        return RunResult(engine, outs, vm.root, vm.core.step, roots, initial, tensors)


def _settle(res: RunResult, commit: bool, trace: bool) -> RunResult:
    """Hash the final root now when it is committed, and say which roots ``res`` holds."""
    if commit or trace:
        res.state_root  # noqa: B018 - computed here, not on first read
    res.roots = "all" if trace else "final" if commit else "none"
    return res


def load(path: str) -> Program:
    return Program.load(path)


__all__ = ["ENGINES", "EngineError", "InputError", "Program", "RunResult", "load"]
