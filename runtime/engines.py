"""Engine drivers: run a loaded artifact natively or on the VM, with node-boundary roots.

State at the boundaries (spec/OPVM.md, "Execution"):

* S0 (before node 0): pc = entry of node 0, registers zero, step 0, status RUNNING,
  memory = the image with the inputs written.
* S_k (after node k): pc = exit of node k (= entry of node k+1, or the halt), registers
  zero, step = sum of the static step counts of nodes 0..k, status RUNNING.
* final: after the halt step: pc = halt address, step = total + 1, status HALTED.

The native engine never runs the VM: it knows the core state of S_k statically and
hashes the shared memory buffer (only when ``commit`` is asked, node roots cost one
incremental Merkle update each). The VM engine steps the reference stepper exactly
``steps_k`` times per node and checks that it lands on the canonical S_k.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from opmlc_runtime.artifact import Artifact, ArtifactError
from opmlc_runtime.isa import NUM_REGS, Status
from opmlc_runtime.merkle import Memory
from opmlc_runtime.state import CoreState, state_root

ENGINES = ("native", "vm")
DTYPES = {"i8": np.int8, "u8": np.uint8, "i16": np.int16, "u16": np.uint16, "i32": np.int32,
          "u32": np.uint32, "i64": np.int64, "u64": np.uint64, "bool": np.uint8}


class EngineError(RuntimeError):
    """An engine diverged from the static schedule (a bug, never bad input)."""


class InputError(ValueError):
    """Inputs that do not match the artifact's signature."""


@dataclass
class RunResult:
    engine: str
    outputs: dict[str, np.ndarray]
    state_root: bytes
    steps: int
    node_roots: list[bytes] = field(default_factory=list)
    initial_root: bytes | None = None

    def to_json(self, commit: bool = False) -> dict:
        d = {"engine": self.engine,
             "outputs": {k: v.tolist() for k, v in self.outputs.items()},
             "state_root": "0x" + self.state_root.hex(), "steps": self.steps}
        if commit:
            d["initial_root"] = "0x" + (self.initial_root or b"").hex()
            d["node_roots"] = ["0x" + r.hex() for r in self.node_roots]
        return d


def quantize_edge(x: np.ndarray, q: dict, shape: tuple[int, ...]) -> np.ndarray:
    """The edge rule of spec/QUANT.md: q = sat_T(floor(x / scale + 1/2) + zero_point)."""
    x = np.asarray(x, np.float64)
    s = np.asarray(q["scale"], np.float64)
    if s.ndim and q.get("axis") is not None:
        shp = [1] * x.ndim
        shp[q["axis"]] = -1
        s = s.reshape(shp)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        v = np.floor(x / s + 0.5)
    v = np.nan_to_num(v, nan=0.0, posinf=2.0**62, neginf=-(2.0**62))
    v = np.clip(v, -(2.0**62), 2.0**62).astype(np.int64) + int(q["zero_point"])
    info = np.iinfo(DTYPES[q["dtype"]])
    return np.clip(v, info.min, info.max).astype(DTYPES[q["dtype"]])


def dequantize_edge(v: np.ndarray, q: dict) -> np.ndarray:
    s = np.asarray(q["scale"], np.float64)
    if s.ndim and q.get("axis") is not None:
        shp = [1] * v.ndim
        shp[q["axis"]] = -1
        s = s.reshape(shp)
    return ((v.astype(np.float64) - q["zero_point"]) * s).astype(np.float32)


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
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ArtifactError(f"artifact metadata incomplete: {e}") from None
        self._native = None

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

    def memory(self, inputs: dict[str, np.ndarray]) -> Memory:
        """S0's memory: the image plus the inputs (validated and converted)."""
        mem = Memory(self.depth, size_hint=self.total)
        mem.reserve(self.total)
        mem.load_image(0, np.frombuffer(self.art.image, np.uint8))
        for sig in self.inputs:
            mem.load_image(int(sig["address"]), self.encode_input(sig, inputs))
        return mem

    def encode_input(self, sig: dict, inputs: dict[str, np.ndarray]) -> np.ndarray:
        name = sig["name"]
        if name not in inputs:
            raise InputError(f"missing input {name!r} ({sig['dtype']}{sig['shape']}); "
                             f"the model takes {[s['name'] for s in self.inputs]}")
        x = np.asarray(inputs[name])
        shape = tuple(sig["shape"])
        if x.shape != shape:
            if x.size == int(np.prod(shape, dtype=np.int64)) and x.ndim != len(shape):
                x = x.reshape(shape)
            else:
                raise InputError(f"input {name!r} has shape {list(x.shape)}, the model "
                                 f"expects {list(shape)}")
        dt = np.dtype(DTYPES[sig["dtype"]])
        if x.dtype.kind == "f":
            if sig.get("quant") is None:
                raise InputError(f"input {name!r} is {x.dtype} but the model takes "
                                 f"{sig['dtype']} without quantization parameters")
            x = quantize_edge(x, sig["quant"], shape)
        elif x.dtype.kind in "iub":
            c = x.astype(dt)
            if not np.array_equal(c, x):
                raise InputError(f"input {name!r} does not fit {sig['dtype']}")
            x = c
        else:
            raise InputError(f"input {name!r} has unsupported dtype {x.dtype}")
        return np.ascontiguousarray(x.astype(dt)).view(np.uint8).reshape(-1)

    def read_outputs(self, mem: Memory) -> dict[str, np.ndarray]:
        out = {}
        for sig in self.outputs:
            raw = mem.read(int(sig["address"]), int(sig["nbytes"]))
            out[sig["name"]] = np.frombuffer(raw, DTYPES[sig["dtype"]]).reshape(
                sig["shape"]).copy()
        return out

    # --- engines ---------------------------------------------------------------------

    def native(self):
        if self._native is None:
            from opmlc_runtime.native import NativeModule

            self._native = NativeModule(self.art.llvm_ir, len(self.nodes))
        return self._native

    def run(self, inputs: dict[str, np.ndarray], engine: str = "native",
            commit: bool = False) -> RunResult:
        if engine == "native":
            return self._run_native(inputs, commit)
        if engine == "vm":
            return self._run_vm(inputs, commit)
        raise ValueError(f"unknown engine {engine!r}; choose one of {ENGINES} "
                         "(or 'ref' through the compiler API)")

    def _run_native(self, inputs: dict[str, np.ndarray], commit: bool) -> RunResult:
        from opmlc_runtime.native import PARALLEL_MIN_STEPS

        nat = self.native()
        mem = self.memory(inputs)
        initial = state_root(self.boundary_core(-1), mem.root()) if commit else None
        base = mem.buffer.ctypes.data
        roots = []
        for k, n in enumerate(self.nodes):
            par = bool(n.get("parallel")) and int(n["steps"]) >= PARALLEL_MIN_STEPS
            nat.run_node(k, base, par)
            for r in n["writes"]:
                mem.mark_dirty(int(r[0]), int(r[1]))
            if commit:
                roots.append(state_root(self.boundary_core(k), mem.root()))
        outs = self.read_outputs(mem)
        final = state_root(self.final_core(), mem.root())
        return RunResult("native", outs, final, self.final_core().step, roots, initial)

    def _run_vm(self, inputs: dict[str, np.ndarray], commit: bool) -> RunResult:
        from opmlc_runtime.stepper import VM

        mem = self.memory(inputs)
        vm = VM(mem, pc=self.entry)
        initial = vm.root() if commit else None
        roots = []
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
        vm.run(max_steps=1)
        if vm.core.status != Status.HALTED:
            raise EngineError(f"VM did not halt at {self.halt_pc:#x}: status "
                              f"{Status(vm.core.status).name}, pc {vm.core.pc:#x}")
        outs = self.read_outputs(mem)
        return RunResult("vm", outs, vm.root(), vm.core.step, roots, initial)


def load(path: str) -> Program:
    return Program.load(path)


__all__ = ["ENGINES", "EngineError", "InputError", "Program", "RunResult", "load",
           "quantize_edge", "dequantize_edge"]
