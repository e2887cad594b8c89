"""Per-op tables: each float op, quantized alone, against its float reference.

Tolerance (fixed scheme): the output error is bounded by a few output LSBs
(2^-frac_bits) plus the propagated input rounding (|f'| * input LSB) plus, for
table ops, the interpolation error h^2/8 * max|f''| with h <= (range * 1.25) / 1024;
the tables below use atol = rel * absmax(output) with rel chosen from that bound.
int8: a few output LSBs (scale = range / 255) plus the propagated input LSB.
"""

from __future__ import annotations

import numpy as np
import pytest

from opmlc.errors import IRError
from opmlc.ir import Graph, Node, TensorType, evaluate, parse_graph, print_graph
from opmlc.ir.ops import canonical_attrs, infer_types
from opmlc.quantize import INT_OPS, evaluate_int, quantize, verify_int


def one_op(op: str, shapes: list[tuple[int, ...]], attrs: dict | None = None,
           consts: dict[int, np.ndarray] | None = None) -> Graph:
    """graph(x0, x1, ...) -> op(x0, x1, ...) with inputs listed in ``consts`` as constants."""
    g = Graph()
    names = []
    for i, s in enumerate(shapes):
        name = f"x{i}"
        if consts and i in consts:
            g.consts[name] = consts[i].astype(np.float32)
        else:
            g.inputs.append(name)
        g.types[name] = TensorType("f32", s)
        names.append(name)
    attrs = canonical_attrs(op, attrs or {})
    (t,) = infer_types(op, [g.types[n] for n in names], attrs)
    g.nodes.append(Node(op, tuple(names), ("y",), attrs))
    g.types["y"] = t
    g.outputs = ["y"]
    return g


def samples(g: Graph, n: int, lo: float, hi: float, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {x: rng.uniform(lo, hi, (n,) + g.types[x].shape).astype(np.float32) for x in g.inputs}


R = np.random.default_rng(7)
# name, op, shapes, attrs, consts, input range, rel tolerance (fixed), rel tolerance (int8)
CASES = [
    ("add", "add", [(2, 8), (2, 8)], {}, None, (-3, 3), 1e-5, 0.02),
    ("sub_bcast", "sub", [(2, 8), (8,)], {}, None, (-3, 3), 1e-5, 0.02),
    ("mul", "mul", [(2, 8), (2, 8)], {}, None, (-3, 3), 1e-5, 0.03),
    ("mul_const", "mul", [(2, 8), (8,)], {}, {1: R.normal(size=8)}, (-3, 3), 1e-5, 0.03),
    ("div", "div", [(2, 8), (2, 8)], {}, None, (0.5, 3), 1e-4, 0.05),
    ("div_const", "div", [(2, 8), ()], {}, {1: np.array(1.7)}, (-3, 3), 1e-5, 0.02),
    ("matmul_w", "matmul", [(3, 16), (16, 4)], {}, {1: R.normal(size=(16, 4))}, (-2, 2),
     1e-4, 0.03),
    ("matmul_act", "matmul", [(2, 3, 16), (2, 16, 4)], {}, None, (-2, 2), 1e-4, 0.03),
    ("einsum", "einsum", [(2, 3, 8), (2, 4, 8)], {"equation": "bqd,bkd->bqk"}, None, (-2, 2),
     1e-4, 0.03),
    ("conv", "conv", [(1, 3, 6, 6), (4, 3, 3, 3), (4,)],
     {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1]},
     {1: R.normal(size=(4, 3, 3, 3)), 2: R.normal(size=4)}, (-2, 2), 1e-4, 0.03),
    ("conv_dw", "conv", [(1, 4, 6, 6), (4, 1, 3, 3)],
     {"strides": [2, 2], "pads": [1, 1, 1, 1], "dilations": [1, 1], "group": 4},
     {1: R.normal(size=(4, 1, 3, 3))}, (-2, 2), 1e-4, 0.03),
    ("relu", "relu", [(2, 8)], {}, None, (-3, 3), 1e-6, 0.01),
    ("clip", "clip", [(2, 8)], {"min": -1.0, "max": 2.0}, None, (-3, 3), 1e-6, 0.01),
    ("neg", "neg", [(2, 8)], {}, None, (-3, 3), 1e-6, 0.01),
    ("exp", "exp", [(2, 8)], {}, None, (-3, 2), 1e-4, 0.02),
    ("tanh", "tanh", [(2, 8)], {}, None, (-4, 4), 1e-4, 0.02),
    ("sigmoid", "sigmoid", [(2, 8)], {}, None, (-6, 6), 1e-4, 0.02),
    ("erf", "erf", [(2, 8)], {}, None, (-3, 3), 1e-4, 0.02),
    ("gelu", "gelu", [(2, 8)], {}, None, (-4, 4), 1e-4, 0.03),
    ("sin", "sin", [(2, 8)], {}, None, (-3, 3), 1e-4, 0.02),
    ("cos", "cos", [(2, 8)], {}, None, (-3, 3), 1e-4, 0.02),
    ("log", "log", [(2, 8)], {}, None, (0.5, 4), 1e-4, 0.03),
    ("sqrt", "sqrt", [(2, 8)], {}, None, (0.01, 9), 1e-5, 0.02),
    ("reciprocal", "reciprocal", [(2, 8)], {}, None, (0.5, 4), 1e-4, 0.05),
    ("pow2", "pow", [(2, 8), ()], {}, {1: np.array(2.0)}, (-3, 3), 1e-5, 0.03),
    ("pow3", "pow", [(2, 8), ()], {}, {1: np.array(3.0)}, (-2, 2), 1e-4, 0.03),
    ("softmax", "softmax", [(3, 10)], {"axis": 1}, None, (-4, 4), 1e-5, 0.02),
    ("layer_norm", "layer_norm", [(3, 16), (16,), (16,)], {"axis": 1},
     {1: R.uniform(0.5, 1.5, 16), 2: R.normal(size=16)}, (-3, 3), 1e-4, 0.03),
    ("rms_norm", "rms_norm", [(3, 16), (16,)], {"axis": 1}, {1: R.uniform(0.5, 1.5, 16)},
     (-3, 3), 1e-4, 0.03),
    ("reduce_mean", "reduce_mean", [(3, 16)], {"axes": [1]}, None, (-3, 3), 1e-5, 0.02),
    ("reduce_sum", "reduce_sum", [(3, 16)], {"axes": [1], "keepdims": 0}, None, (-3, 3), 1e-5,
     0.02),
    ("reduce_max", "reduce_max", [(3, 16)], {"axes": [1]}, None, (-3, 3), 1e-6, 0.01),
    ("max_pool", "max_pool", [(1, 2, 6, 6)],
     {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [0, 0, 0, 0], "dilations": [1, 1]},
     None, (-3, 3), 1e-6, 0.01),
    ("average_pool", "average_pool", [(1, 2, 5, 5)],
     {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "dilations": [1, 1]},
     None, (-3, 3), 1e-5, 0.02),
    ("lrn", "lrn", [(1, 5, 3, 3)], {"size": 3, "alpha": 0.1, "beta": 0.75, "bias": 1.0},
     None, (-3, 3), 1e-4, 0.05),
    ("batch_norm", "batch_norm", [(1, 3, 4, 4), (3,), (3,), (3,), (3,)], {},
     {1: R.uniform(0.5, 2, 3), 2: R.normal(size=3), 3: R.normal(size=3),
      4: R.uniform(0.5, 2, 3)}, (-3, 3), 1e-5, 0.02),
    ("concat", "concat", [(2, 3), (2, 5)], {"axis": 1}, None, (-3, 3), 1e-6, 0.01),
    ("transpose", "transpose", [(2, 3, 4)], {"perm": [2, 0, 1]}, None, (-3, 3), 1e-6, 0.01),
]


def _check(case: tuple, scheme: str) -> None:
    name, op, shapes, attrs, consts, (lo, hi), tol_fixed, tol_int8 = case
    g = one_op(op, shapes, attrs, consts)
    test = samples(g, 16, lo, hi, seed=2)
    cal = samples(g, 64, lo, hi, seed=1)
    if scheme == "int8":  # int8 has no headroom: calibrate on the test points too
        cal = {k: np.concatenate([v, test[k]]) for k, v in cal.items()}
    qm = quantize(g, scheme, cal)
    verify_int(qm.graph)
    worst, amax = 0.0, 0.0
    for i in range(16):
        x = {k: v[i] for k, v in test.items()}
        f = evaluate(g, x)["y"].astype(np.float64)
        d = qm.run(x)["y"].astype(np.float64)
        worst, amax = max(worst, np.abs(f - d).max()), max(amax, np.abs(f).max())
    tol = tol_fixed if scheme == "fixed" else tol_int8
    assert worst <= tol * max(amax, 1e-3), f"{name}/{scheme}: err {worst:.3g} absmax {amax:.3g}"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_op_fixed(case: tuple) -> None:
    _check(case, "fixed")


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_op_int8(case: tuple) -> None:
    _check(case, "int8")


def test_int_graph_text_round_trip_and_determinism() -> None:
    g = one_op("layer_norm", [(3, 16), (16,), (16,)], {"axis": 1},
               {1: np.ones(16), 2: np.zeros(16)})
    qm = quantize(g, "fixed", samples(g, 8, -2, 2, 0))
    text = print_graph(qm.graph)
    assert "q.layer_norm" in text
    assert parse_graph(text, qm.graph.consts) == qm.graph
    x = qm.quantize_inputs({"x0": samples(g, 1, -2, 2, 5)["x0"][0]})
    a, b = evaluate_int(qm.graph, x), evaluate_int(qm.graph, x)
    assert a["y"].dtype == np.int32 and np.array_equal(a["y"], b["y"])
    qm2 = quantize(g, "fixed", samples(g, 8, -2, 2, 0))
    assert print_graph(qm2.graph) == text


def test_verify_int_rejects_float_graph() -> None:
    g = one_op("add", [(2,), (2,)])
    with pytest.raises(IRError):
        verify_int(g)


def test_int_op_set_is_small() -> None:
    assert all(n.startswith("q.") for n in INT_OPS)
    assert 15 <= len(INT_OPS) <= 30  # q.resize, q.topk (intops_index) and q.sample joined


def test_edges_pass_int_inputs_and_record_params() -> None:
    g = Graph(inputs=["ids"], outputs=["y"])
    g.types["ids"] = TensorType("i64", (1, 4))
    g.consts["emb"] = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    g.types["emb"] = TensorType("f32", (10, 3))
    g.nodes.append(Node("gather", ("emb", "ids"), ("y",), {"axis": 0}))
    g.types["y"] = TensorType("f32", (1, 4, 3))
    for scheme in ("fixed", "int8"):
        qm = quantize(g, scheme)
        assert qm.inputs["ids"] is None and qm.graph.types["ids"].dtype == "i64"
        p = qm.outputs["y"]
        assert p is not None and (p.frac_bits is not None) == (scheme == "fixed")
        ids = np.array([[0, 3, 9, 2]])
        f = evaluate(g, {"ids": ids})["y"]
        assert np.abs(qm.run({"ids": ids})["y"] - f).max() <= p.scale
