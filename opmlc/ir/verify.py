"""The IR verifier: run after every pass (and by the frontend on its result).

Checks, naming the node at fault:
  * every op is registered, its input count is within the op's arity, its
    attributes are exactly the canonical set, and it has the right output count;
  * SSA: every value is defined once (input, constant or node output) before use;
  * every value has a type, constants match their declared type, and each node's
    declared output types equal the op's inferred types.
"""

from __future__ import annotations

from opmlc.errors import IRError
from opmlc.ir.graph import Graph, Node, TensorType
from opmlc.ir.ops import OPS, canonical_attrs, infer_types


def _where(node: Node) -> str:
    return f"node {node.op} -> {', '.join(node.outputs)}"


def _check_node(g: Graph, node: Node, defined: set[str]) -> None:
    opdef = OPS.get(node.op)
    if opdef is None:
        raise IRError(f"{_where(node)}: unknown op {node.op!r}")
    lo, hi = opdef.arity
    if len(node.inputs) < lo or (hi is not None and len(node.inputs) > hi):
        raise IRError(f"{_where(node)}: {len(node.inputs)} inputs, arity is {opdef.arity}")
    for i in node.inputs:
        if i not in defined:
            raise IRError(f"{_where(node)}: input {i!r} used before definition")
    try:
        canon = canonical_attrs(node.op, node.attrs)
    except ValueError as e:
        raise IRError(f"{_where(node)}: {e}") from None
    if canon != node.attrs:
        raise IRError(f"{_where(node)}: attributes not canonical (missing defaults?)")
    if len(node.outputs) != opdef.num_outputs(node.attrs):
        raise IRError(f"{_where(node)}: expected {opdef.num_outputs(node.attrs)} outputs")
    try:
        inferred = infer_types(node.op, [g.types[i] for i in node.inputs], node.attrs)
    except Exception as e:  # noqa: BLE001 - any inference failure is an IR error here
        raise IRError(f"{_where(node)}: type inference failed: {e}") from None
    for name, t in zip(node.outputs, inferred, strict=True):
        if g.types.get(name) != t:
            raise IRError(f"{_where(node)}: output {name!r} declared {g.types.get(name)}, "
                          f"inferred {t}")
    for o in node.outputs:
        if o in defined:
            raise IRError(f"{_where(node)}: value {o!r} defined twice")
        defined.add(o)


def verify(g: Graph) -> Graph:
    """Raise :class:`IRError` if ``g`` breaks an IR invariant; return ``g`` otherwise."""
    defined: set[str] = set()
    for name in list(g.inputs) + list(g.consts):
        if name in defined:
            raise IRError(f"value {name!r} defined twice")
        if name not in g.types:
            raise IRError(f"value {name!r} has no type")
        defined.add(name)
    for name, arr in g.consts.items():
        if TensorType.of(arr) != g.types[name]:
            raise IRError(f"constant {name!r} is {TensorType.of(arr)}, declared {g.types[name]}")
    for node in g.nodes:
        _check_node(g, node, defined)
    for o in g.outputs:
        if o not in defined:
            raise IRError(f"graph output {o!r} is not defined")
    extra = set(g.types) - defined
    if extra:
        raise IRError(f"types given for undefined values: {sorted(extra)[:5]}")
    return g
