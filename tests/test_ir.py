"""IR core: text round trips (golden and hypothesis), verifier, registry, interpreter."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opmlc.errors import IRError, IRParseError
from opmlc.ir import (
    OPS,
    Graph,
    Group,
    Node,
    TensorType,
    evaluate,
    infer_types,
    ops_in_group,
    parse_graph,
    print_graph,
    verify,
)
from opmlc.ir.ops import canonical_attrs

BEFORE = """\
graph main(%x: f32[2,5], %"gpu_0/data:0": f32[3]) {
  %w: f32[5,4] = const #HASH
  %s: i64[2] = const [4, -1]
  %y: f32[2,4] = matmul(%x, %w)
  %z: f32[2,4] = leaky_relu(%y) {alpha=0.1}
  %a: f32[2,1], %b: f32[2,3] = split(%z) {axis=1, sizes=[1, 3]}
  %c: f32[2,3] = add(%b, %"gpu_0/data:0")
  %d: f32[2] = reduce_mean(%c) {axes=[1], keepdims=0}
  %e: i64[2] = cast(%d) {to="i64"}
  return %a, %e
}
"""


def _before() -> tuple[str, dict[str, np.ndarray]]:
    from opmlc.ir import const_digest

    w = np.arange(20, dtype=np.float32).reshape(5, 4) / 7
    return BEFORE.replace("HASH", const_digest(w)), {"w": w}


def test_golden_text_round_trip() -> None:
    text, consts = _before()
    g = verify(parse_graph(text, consts=consts))
    assert print_graph(g) == text
    assert parse_graph(print_graph(g), consts=g.consts) == g


def test_parse_errors_are_user_errors() -> None:
    text, consts = _before()
    with pytest.raises(IRParseError, match="'w'.*not supplied"):
        parse_graph(text)
    with pytest.raises(IRParseError, match="does not match"):
        parse_graph(text, consts={"w": consts["w"] + 1})
    with pytest.raises(IRParseError, match="bad IR text"):
        parse_graph(text.replace("matmul(", "matmul(("))


def test_evaluate_and_return_all() -> None:
    text, consts = _before()
    g = parse_graph(text, consts=consts)
    x = np.ones((2, 5), np.float32)
    v = np.arange(3, dtype=np.float32)
    out = evaluate(g, {"x": x, "gpu_0/data:0": v})
    y = x @ consts["w"]
    z = np.where(y >= 0, y, 0.1 * y)
    np.testing.assert_allclose(out["a"], z[:, :1], rtol=1e-6)
    np.testing.assert_array_equal(out["e"], (z[:, 1:] + v).mean(axis=1).astype(np.int64))
    every = evaluate(g, {"x": x, "gpu_0/data:0": v}, return_all=True)
    assert {"y", "z", "b", "c", "d"} <= set(every)


def _graph_with(node: Node, types: dict[str, TensorType]) -> Graph:
    g = Graph(inputs=["x"], types={"x": TensorType("f32", (2, 3)), **types})
    g.nodes.append(node)
    g.outputs = list(node.outputs)
    return g


@pytest.mark.parametrize(("node", "types", "msg"), [
    (Node("relu", ("q",), ("y",)), {"y": TensorType("f32", (2, 3))}, "before definition"),
    (Node("relu", ("x",), ("y",)), {"y": TensorType("f32", (3, 2))}, "inferred f32"),
    (Node("leaky_relu", ("x",), ("y",)), {"y": TensorType("f32", (2, 3))}, "not canonical"),
    (Node("nope", ("x",), ("y",)), {"y": TensorType("f32", (2, 3))}, "unknown op"),
    (Node("relu", ("x",), ("x",)), {}, "defined twice"),
    (Node("add", ("x",), ("y",)), {"y": TensorType("f32", (2, 3))}, "arity"),
])
def test_verifier_rejects(node: Node, types: dict[str, TensorType], msg: str) -> None:
    with pytest.raises(IRError, match=msg):
        verify(_graph_with(node, types))


def test_registry_groups() -> None:
    assert {"add", "relu", "where", "cast"} <= ops_in_group(Group.ELEMENTWISE)
    assert {"exp", "softmax", "layer_norm", "erf"} <= ops_in_group(Group.NONLINEAR)
    assert {"reduce_mean", "argmax", "max_pool"} <= ops_in_group(Group.REDUCTION)
    assert {"reshape", "transpose", "gather", "slice"} <= ops_in_group(Group.MOVEMENT)
    assert {"matmul", "conv", "einsum"} <= ops_in_group(Group.CONTRACTION)
    for name, d in OPS.items():
        assert d.name == name and isinstance(d.group, Group) and callable(d.ref)


# ---------------------------------------------------------------- hypothesis round trips

_UNARY = ["relu", "neg", "abs", "exp", "tanh", "sigmoid", "erf", "sqrt", "identity"]
_BINARY = ["add", "sub", "mul", "max", "min"]
_NAMES = st.text("abcxyz_./0123456789:- ", min_size=1, max_size=8)


@st.composite
def graphs(draw: st.DrawFn) -> Graph:
    """Random well-typed graphs: chains of unary/binary/reshape/reduce/softmax nodes."""
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    g = Graph(inputs=["in"], types={"in": TensorType("f32", shape)})
    live = ["in"]
    n_nodes = draw(st.integers(1, 8))
    for k in range(n_nodes):
        base = draw(_NAMES) + str(k)
        src = draw(st.sampled_from(live))
        t = g.types[src]
        kind = draw(st.sampled_from(["unary", "binary", "reshape", "reduce", "softmax",
                                     "leaky"]))
        if t.rank == 0 and kind in ("reduce", "softmax"):
            kind = "unary"
        ins: list[str] = [src]
        attrs: dict = {}
        if kind == "unary":
            op = draw(st.sampled_from(_UNARY))
        elif kind == "leaky":
            op, attrs = "leaky_relu", {"alpha": draw(st.floats(-2, 2, width=32))}
        elif kind == "binary":
            op = draw(st.sampled_from(_BINARY))
            # a scalar (broadcast) or full-shape constant; big ones print by hash
            shape_c = draw(st.sampled_from([(), t.shape]))
            arr = (np.arange(int(np.prod(shape_c)), dtype=np.float32) * 0.37 - 1).reshape(shape_c)
            ins.append(g.add_const("c" + base, arr))
        elif kind == "reshape":
            op, attrs = "reshape", {"shape": [t.size]}
        elif kind == "reduce":
            op = draw(st.sampled_from(["reduce_sum", "reduce_max", "reduce_mean"]))
            attrs = {"axes": [draw(st.integers(0, t.rank - 1))],
                     "keepdims": draw(st.integers(0, 1))}
        else:
            op, attrs = "softmax", {"axis": draw(st.integers(0, t.rank - 1))}
        attrs = canonical_attrs(op, attrs)
        try:
            (out_t,) = infer_types(op, [g.types[i] for i in ins], attrs)
        except ValueError:
            continue
        out = g.fresh_name(base)
        g.types[out] = out_t
        g.nodes.append(Node(op, tuple(ins), (out,), attrs))
        live.append(out)
    g.outputs = live[-draw(st.integers(1, min(2, len(live)))):]
    return g


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
def test_text_round_trip_property(g: Graph) -> None:
    verify(g)
    text = print_graph(g)
    g2 = parse_graph(text, consts=g.consts)
    assert g2 == g
    assert print_graph(g2) == text
    verify(g2)
