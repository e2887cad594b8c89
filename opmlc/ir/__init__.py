"""The opmlc graph IR.

Public API::

    Graph, Node, TensorType, DTYPES           -- the data structure (graph.py)
    OPS, OpDef, Group, ops_in_group            -- the op registry: the float ops (ops.py) and
                                                  the q.* integer dialect (intops.py, on the
                                                  VM primitives of prim.py)
    verify(g) -> g                             -- invariant checker, raises IRError
    print_graph(g) -> str                      -- deterministic text form
    parse_graph(text, consts=None) -> Graph    -- its inverse: parse(print(g), g.consts) == g
    evaluate(g, inputs, return_all=False)      -- float reference interpreter (numpy)
"""

# The integer dialect (q.*) is part of the IR: `intops` registers it in the op registry
# when this package is imported, explicitly here, so that every user of the IR (the text
# form, the verifier, the interpreters, the backend) sees the q.* ops without importing
# the quantizer.
from opmlc.ir import intops, intops_index  # noqa: F401 - registers q.resize, q.topk
from opmlc.ir.graph import DTYPES, FLOAT_DTYPES, Graph, Node, TensorType, const_digest, dtype_name
from opmlc.ir.interp import evaluate
from opmlc.ir.intops import INT_DTYPES, INT_OPS, is_int_op
from opmlc.ir.ops import OPS, REQUIRED, Group, OpDef, canonical_attrs, infer_types, ops_in_group
from opmlc.ir.text import parse_graph, print_graph
from opmlc.ir.verify import verify

__all__ = [
    "DTYPES", "FLOAT_DTYPES", "Graph", "Node", "TensorType", "const_digest", "dtype_name",
    "evaluate", "OPS", "REQUIRED", "Group", "OpDef", "canonical_attrs", "infer_types",
    "ops_in_group", "parse_graph", "print_graph", "verify", "intops", "INT_DTYPES", "INT_OPS",
    "is_int_op",
]
