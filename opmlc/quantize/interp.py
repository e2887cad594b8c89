"""The exact integer reference interpreter and the integer-graph verifier.

``evaluate_int(g, inputs)`` runs an integer graph node by node with the exact
references of :mod:`opmlc.ir.intops` (and the IR's movement ops): it is the
oracle the native kernels and the VM must equal bit for bit.  Every value must come
out with exactly its declared integer dtype and shape.
"""

from __future__ import annotations

import numpy as np

from opmlc.errors import IRError, ShapeError
from opmlc.ir.graph import Graph, Node
from opmlc.ir.interp import run_nodes
from opmlc.ir.intops import INT_DTYPES, is_int_op
from opmlc.ir.verify import verify


def verify_int(g: Graph) -> Graph:
    """IR verify, plus: every value has an integer dtype and every op is a q.* or movement op."""
    verify(g)
    for name, t in g.types.items():
        if t.dtype not in INT_DTYPES:
            raise IRError(f"integer graph: value {name!r} has non-integer type {t}")
    for n in g.nodes:
        if not is_int_op(n.op):
            raise IRError(f"integer graph: node {n.op} -> {', '.join(n.outputs)} is not an "
                          "integer (q.*) or movement op")
    return g


def evaluate_int(g: Graph, inputs: dict[str, np.ndarray],
                 return_all: bool = False) -> dict[str, np.ndarray]:
    """Run integer graph ``g``; inputs must be integer arrays of the declared shapes (they
    are converted to the declared dtype only if that loses nothing)."""
    if hasattr(g, "graph"):  # a QuantizedModel
        g = g.graph  # type: ignore[assignment]
    env: dict[str, np.ndarray] = {}
    for name in g.inputs:
        t = g.types[name]
        if name not in inputs:
            raise ShapeError(f"missing graph input {name!r} ({t})")
        a = np.asarray(inputs[name])
        if a.shape != t.shape:
            raise ShapeError(f"input {name!r} has shape {a.shape}, graph expects {t}")
        c = a.astype(t.np_dtype)
        if a.dtype.kind not in "iub" or not np.array_equal(c, a):
            raise ShapeError(f"input {name!r} ({a.dtype}) is not exactly representable as "
                             f"{t.dtype}; quantize it first (QuantizedModel.quantize_inputs)")
        env[name] = c

    def exact(node: Node, name: str, val: np.ndarray) -> np.ndarray:
        t = g.types[name]
        if val.shape != t.shape or val.dtype != t.np_dtype:
            raise IRError(f"node {node.op} -> {name}: reference produced "
                          f"{val.dtype}{list(val.shape)}, declared {t}")
        return val

    return run_nodes(g, env, exact, return_all)


__all__ = ["evaluate_int", "verify_int"]
