"""Import context: the state a handler sees while one ONNX node is converted.

A handler receives its inputs as values ``V``: either an IR value name (``str``,
a runtime tensor) or a :class:`Const` (known at compile time).  ``ctx.emit``
appends an IR node, or - when every input is a ``Const`` - evaluates the op's
float reference right away and returns ``Const`` results (constant folding of
exporter leftovers: Shape/Gather/Concat chains, casts of constants, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from opmlc.errors import NeedsConstantError, UnsupportedOpsError
from opmlc.ir.graph import Graph, Node, TensorType
from opmlc.ir.ops import canonical_attrs, infer_types, run_ref


@dataclass(eq=False)
class Const:
    """A compile-time tensor; ``ir_name`` is set once it is placed in the graph.

    ``quant``: for a constant folded from DequantizeLinear of an integer constant (the
    weights of a QDQ model), the integers, scale, zero point and axis it came from (kept
    through transposes), so that the graph gets ``dequantize_linear(q, scale, zp)`` and a
    quantizer can keep the model's own integers and scales.
    """

    value: np.ndarray
    hint: str
    ir_name: str | None = None
    quant: tuple[np.ndarray, np.ndarray, np.ndarray, int] | None = None


def _fold_quant(op: str, ins: list[Const], attrs: dict[str, Any]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
    """The ``quant`` of a folded result: DequantizeLinear of integers, or a transpose of one."""
    if op == "dequantize_linear" and ins[0].value.dtype.kind in "iu":
        return ins[0].value, ins[1].value, ins[2].value, int(attrs["axis"])
    if op == "transpose" and ins[0].quant is not None:
        q, s, z, axis = ins[0].quant
        perm = attrs["perm"] or list(range(q.ndim))[::-1]
        ax = perm.index(axis) if np.ndim(s) else axis
        return np.ascontiguousarray(np.transpose(q, perm)), s, z, ax
    return None


V = str | Const


@dataclass
class OnnxNode:
    """The parts of an ONNX node a handler needs (attributes already decoded)."""

    op_type: str
    name: str
    opset: int
    attrs: dict[str, Any]
    outputs: list[str]
    domain: str = ""

    def where(self) -> str:
        return f"node {self.name!r} ({self.op_type}, opset {self.opset})"


class Ctx:
    """Builds the IR graph; one per import."""

    def __init__(self) -> None:
        self.g = Graph()
        self.base = "v"  # name hint for values created by the current node
        self.node: OnnxNode | None = None
        # set by the importer: inline(graph, binds) -> the subgraph's outputs (If / Loop)
        self.inline_fn: Any = None

    def inline(self, graph: Any, binds: dict[str, V],
               opsets: dict[str, int] | None = None) -> list[V]:
        """Convert subgraph ``graph``'s nodes in place (outer values in scope, ``binds``
        naming its inputs; ``opsets`` when its nodes use other opsets than the model's, as
        a function body may) and return its outputs: how a folded If / Loop or an ONNX
        function is imported."""
        if self.inline_fn is None:
            raise self.unsupported("subgraphs can only be inlined during an import")
        node, base = self.node, self.base
        try:
            return self.inline_fn(self, graph, binds, opsets)
        finally:
            self.node, self.base = node, base

    # ------------------------------------------------------------ values
    def type(self, v: V) -> TensorType:
        return TensorType.of(v.value) if isinstance(v, Const) else self.g.types[v]

    def shape(self, v: V) -> tuple[int, ...]:
        return self.type(v).shape

    @staticmethod
    def const(v: V | None) -> np.ndarray | None:
        return v.value if isinstance(v, Const) else None

    def need_const(self, v: V | None, what: str) -> np.ndarray:
        """The constant value of ``v``; a ShapeError if it is only known at run time."""
        if isinstance(v, Const):
            return v.value
        graph_input = v if isinstance(v, str) and v in self.g.inputs else None
        raise NeedsConstantError(
            f"{self.node.where() if self.node else 'node'}: {what} must be a compile-time "
            "constant (opmlc compiles static graphs); fix the input shapes with --shape or "
            "re-export with static shapes", graph_input)

    def unsupported(self, detail: str) -> UnsupportedOpsError:
        n = self.node
        assert n is not None
        return UnsupportedOpsError([(n.op_type, n.opset, n.name)], detail)

    def materialize(self, v: V) -> str:
        """IR name of ``v``, adding a constant to the graph if needed."""
        if isinstance(v, str):
            return v
        if v.ir_name is None and v.quant is not None:  # dequantize_linear(q, scale, zp)
            q, sc, zp, axis = v.quant
            names = [self.g.add_const(v.hint + sfx, np.array(a, order="C"))
                     for sfx, a in ((".q", q), (".scale", sc), (".zp", zp))]
            out = self.g.fresh_name(v.hint)
            self.g.types[out] = TensorType.of(v.value)
            self.g.nodes.append(Node("dequantize_linear", tuple(names), (out,), {"axis": axis}))
            v.ir_name = out
        if v.ir_name is None:
            v.ir_name = self.g.add_const(v.hint, np.array(v.value, order="C"))
        return v.ir_name

    # ------------------------------------------------------------ emission
    def emit_n(self, op: str, ins: list[V], attrs: dict[str, Any] | None = None) -> list[V]:
        """outputs = op(ins) {attrs}: folded if all inputs are constants, else a new node."""
        attrs = canonical_attrs(op, dict(attrs or {}))
        types = infer_types(op, [self.type(v) for v in ins], attrs)
        if all(isinstance(v, Const) for v in ins):
            outs = run_ref(op, [v.value for v in ins], attrs)
            quant = _fold_quant(op, ins, attrs) if len(outs) == 1 else None  # type: ignore[arg-type]
            return [Const(np.asarray(o).astype(t.np_dtype, copy=False).reshape(t.shape), self.base,
                          quant=quant) for o, t in zip(outs, types, strict=True)]
        outs = []
        for t in types:  # outputs first: they get the ONNX name, folded inputs a suffix
            name = self.g.fresh_name(self.base)
            self.g.types[name] = t
            outs.append(name)
        names = [self.materialize(v) for v in ins]
        self.g.nodes.append(Node(op, tuple(names), tuple(outs), attrs))
        return list(outs)

    def emit(self, op: str, ins: list[V], **attrs: Any) -> V:
        """Single-output :meth:`emit_n`."""
        (out,) = self.emit_n(op, ins, attrs)
        return out

    def scalar(self, x: float, like: V) -> Const:
        """A rank-0 constant of ``like``'s dtype."""
        return Const(np.asarray(x, dtype=self.type(like).np_dtype), self.base + ".c")

    def reshape(self, v: V, shape: tuple[int, ...] | list[int]) -> V:
        if tuple(shape) == self.shape(v):
            return v
        return self.emit("reshape", [v], shape=list(shape))
