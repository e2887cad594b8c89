"""ONNX backend API (``onnx.backend.base``) over opmlc's engines.

Usage, as with ``onnxruntime.backend``::

    import opmlc.onnx_backend as backend
    rep = backend.prepare(model, engine="float")   # model: ModelProto or path
    outputs = rep.run([x])                         # list, in the model's output order
    backend.run_model(model, [x]); backend.run_node(node, [x])

Engines are a table: ``ENGINES[name] = Engine(name, factory, claims)``, where
``factory(graph) -> run(inputs: dict[str, ndarray]) -> dict[str, ndarray]``
compiles an imported float IR graph, and ``claims(op_type, opset) -> bool``
says which ONNX ops the engine answers for in the conformance run.  The four
engines are registered here, where this module (above the pipeline) may import
every layer:

* ``float``: the IR's float reference interpreter;
* ``int``: quantize (fixed scheme, calibrated on the inputs of each run), run the exact
  integer reference, dequantize the outputs;
* ``native`` / ``vm``: the ``int`` pipeline compiled to an artifact and executed on the
  native kernels / the VM. A case whose program needs more than :data:`VM_STEP_CAP`
  steps raises :class:`StepCapExceeded` on ``vm``: the conformance run counts it as not
  claimed rather than as a failure.

The compiled engines dequantize at the edges, so they return what ``int`` returns, bit
for bit.  :func:`register_engine` adds one more.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.backend.base import Backend, BackendRep, Device, DeviceType

from opmlc.errors import NeedsConstantError, OpmlcError
from opmlc.frontend import import_onnx, load_model
from opmlc.frontend.handlers import lookup
from opmlc.ir import Graph, evaluate

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
Factory = Callable[[Graph], Runner]

# ONNX ops whose semantics involve non-tensor values or training; never claimed
_NEVER = frozenset({"ZipMap"})


@dataclass(frozen=True)
class Engine:
    """An executor of imported graphs: ``factory(graph)`` returns ``run(inputs) -> outputs``."""

    name: str
    factory: Factory
    claims: Callable[[str, int], bool]
    description: str = ""


ENGINES: dict[str, Engine] = {}
VM_STEP_CAP = 200_000


class StepCapExceeded(OpmlcError):
    """The compiled program needs more VM steps than the engine's cap."""


def register_engine(name: str, factory: Factory,
                    claims: Callable[[str, int], bool] | None = None,
                    description: str = "") -> Engine:
    """Add (or replace) engine ``name``; ``claims`` defaults to the float engine's."""
    eng = Engine(name, factory, claims or float_claims, description)
    ENGINES[name] = eng
    return eng


def engines() -> dict[str, Engine]:
    """The engine table."""
    return ENGINES


def float_claims(op_type: str, opset: int) -> bool:
    """The float engine claims every ONNX op the frontend imports."""
    op_type = op_type.removeprefix("ai.onnx.ml.")  # the ML domain's handlers share the table
    return op_type not in _NEVER and lookup(op_type, opset) is not None


def _float_factory(graph: Graph) -> Runner:
    return lambda inputs: evaluate(graph, inputs)


def _bools(graph: Graph, outs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Boolean outputs travel as u8 0 / 1 in the integer graph: bool again at the edge."""
    return {k: v.astype(np.bool_) if graph.types[k].dtype == "bool" else v
            for k, v in outs.items()}


def _int_factory(graph: Graph) -> Runner:
    from opmlc.quantize import quantize

    # conformance inputs may hold NaN / inf (IsNaN, ...): saturate as the edge rule says
    return lambda inputs: _bools(graph, quantize(graph, "fixed", dict(inputs)).run(
        inputs, saturate=True))


def _compiled_factory(engine: str, step_cap: int | None = None) -> Factory:
    def factory(graph: Graph) -> Runner:
        def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            from opmlc.api import compile as compile_model
            from opmlc.quantize import quantize
            from opmlc_runtime.engines import Program

            qm = quantize(graph, "fixed", dict(inputs))
            art = compile_model(qm, include_ir=False)
            steps = int(art.meta["total_steps"])
            if step_cap is not None and steps > step_cap:
                raise StepCapExceeded(f"{steps} VM steps exceed the {engine} engine's cap of "
                                      f"{step_cap}")
            res = Program(art).run(qm.quantize_inputs(inputs, saturate=True), engine)
            return _bools(graph, qm.dequantize_outputs(res.outputs))

        return run

    return factory


register_engine("float", _float_factory, float_claims,
                "IR float reference interpreter (numpy)")
register_engine("int", _int_factory, float_claims,
                "quantize (fixed), exact integer reference interpreter")
register_engine("native", _compiled_factory("native"), float_claims,
                "quantize (fixed), compile, native kernels")
register_engine("vm", _compiled_factory("vm", VM_STEP_CAP), float_claims,
                "quantize (fixed), compile, VM")


class OpmlcRep(BackendRep):
    """A prepared model: ``run(inputs)`` returns outputs in the model's output order.

    opmlc compiles static graphs.  When a shape-like operand (Reshape's shape,
    Slice's starts, a reduction's axes, ...) is a graph input, the rep is
    *specialising*: each ``run`` bakes those inputs' values into the model as
    constants, compiles, and caches the result per baked value.
    """

    def __init__(self, graph: Graph | None, runner: Runner | None,
                 model: onnx.ModelProto | None = None, engine: str = "float",
                 shapes: dict[str, tuple[int, ...]] | None = None) -> None:
        super().__init__()
        self.graph, self.runner = graph, runner
        self.model, self.engine, self.shapes = model, engine, shapes
        self._cache: dict[bytes, tuple[Graph, Runner]] = {}

    def _feed(self, inputs: Any) -> dict[str, np.ndarray]:
        if isinstance(inputs, dict):
            return dict(inputs)
        if isinstance(inputs, np.ndarray):
            inputs = [inputs]
        names = self.graph.inputs if self.graph is not None else [
            vi.name for vi in self.model.graph.input
            if vi.name not in {t.name for t in self.model.graph.initializer}]
        return dict(zip(names, inputs, strict=False))

    def _specialise(self, feed: dict[str, np.ndarray]) -> tuple[Graph, Runner]:
        baked: dict[str, np.ndarray] = {}
        while True:
            key = b"".join(k.encode() + np.asarray(v).tobytes() for k, v in baked.items())
            if key in self._cache:
                return self._cache[key]
            m = onnx.ModelProto()
            m.CopyFrom(self.model)
            m.graph.initializer.extend(numpy_helper.from_array(np.asarray(v), k)
                                       for k, v in baked.items())
            try:
                graph = import_onnx(m, self.shapes)
            except NeedsConstantError as e:
                wanted = [e.input_name] if e.input_name else [
                    k for k, v in feed.items() if np.asarray(v).dtype.kind in "iu"]
                wanted = [k for k in wanted if k in feed and k not in baked]
                if not wanted:
                    raise
                baked.update((k, feed[k]) for k in wanted)
                continue
            self._cache[key] = graph, engines()[self.engine].factory(graph)
            return self._cache[key]

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        feed = self._feed(inputs)
        graph, runner = (self.graph, self.runner) if self.graph is not None else \
            self._specialise(feed)
        out = runner({k: v for k, v in feed.items() if k in graph.inputs})
        return tuple(out[name] for name in graph.outputs)


class OpmlcBackend(Backend):
    """``onnx.backend.base.Backend`` over the engine table (CPU only)."""

    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> bool:
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model: onnx.ModelProto | str | Path, device: str = "CPU",
                engine: str = "float", shapes: dict[str, tuple[int, ...]] | None = None,
                **kwargs: Any) -> OpmlcRep:
        """Import ``model`` and compile it with ``engine`` (a name in the engine table)."""
        table = engines()
        if engine not in table:
            raise OpmlcError(f"unknown engine {engine!r}; available: {sorted(table)}")
        try:
            graph = import_onnx(model, shapes)
        except NeedsConstantError:
            return OpmlcRep(None, None, load_model(model), engine, shapes)
        return OpmlcRep(graph, table[engine].factory(graph))

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU",
                  **kwargs: Any) -> tuple[np.ndarray, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: onnx.NodeProto, inputs: Sequence[np.ndarray], device: str = "CPU",
                 outputs_info: Any = None, opset: int | None = None,
                 **kwargs: Any) -> tuple[np.ndarray, ...]:
        """Run one node: a single-node model is built around it (latest opset by default)."""
        arrays = [np.asarray(x) for x in inputs]
        names = [n for n in node.input if n]
        graph_inputs = [
            helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
            for n, a in zip(names, arrays, strict=False)
        ]
        graph_outputs = [helper.make_empty_tensor_value_info(o) for o in node.output if o]
        g = helper.make_graph([node], "run_node", graph_inputs, graph_outputs)
        domain_opset = helper.make_opsetid(node.domain or "", opset or
                                           onnx.defs.onnx_opset_version())
        model = helper.make_model(g, opset_imports=[domain_opset])
        return cls.run_model(model, dict(zip(names, arrays, strict=False)), device, **kwargs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return Device(device).type == DeviceType.CPU


prepare = OpmlcBackend.prepare
run_model = OpmlcBackend.run_model
run_node = OpmlcBackend.run_node
supports_device = OpmlcBackend.supports_device
is_compatible = OpmlcBackend.is_compatible

__all__ = ["Engine", "ENGINES", "StepCapExceeded", "VM_STEP_CAP", "register_engine", "engines",
           "float_claims", "OpmlcBackend", "OpmlcRep", "prepare", "run_model", "run_node",
           "supports_device", "is_compatible"]
