"""The opmlc graph IR.

Public API::

    Graph, Node, TensorType, DTYPES           -- the data structure (graph.py)
    OPS, OpDef, Group, ops_in_group            -- the op registry (ops.py)
    verify(g) -> g                             -- invariant checker, raises IRError
    print_graph(g) -> str                      -- deterministic text form
    parse_graph(text, consts=None) -> Graph    -- its inverse: parse(print(g), g.consts) == g
    evaluate(g, inputs, return_all=False)      -- float reference interpreter (numpy)
"""

from opmlc.ir.graph import DTYPES, FLOAT_DTYPES, Graph, Node, TensorType, const_digest, dtype_name
from opmlc.ir.interp import evaluate
from opmlc.ir.ops import OPS, REQUIRED, Group, OpDef, canonical_attrs, infer_types, ops_in_group
from opmlc.ir.text import parse_graph, print_graph
from opmlc.ir.verify import verify

__all__ = [
    "DTYPES", "FLOAT_DTYPES", "Graph", "Node", "TensorType", "const_digest", "dtype_name",
    "evaluate", "OPS", "REQUIRED", "Group", "OpDef", "canonical_attrs", "infer_types",
    "ops_in_group", "parse_graph", "print_graph", "verify",
]
