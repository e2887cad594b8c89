"""Shared checks for the back-end tests: one graph or artifact, three engines, every tensor."""

from __future__ import annotations

import numpy as np

from opmlc import api
from opmlc.backend.compile import compile_graph
from opmlc.ir.graph import Graph
from opmlc_runtime.engines import RunResult


def assert_same_run(m: api.Model, want: RunResult, got: RunResult) -> None:
    """Same outputs, final root and steps, and the same bytes for every node output at its
    boundary (the first differing node is named); the same node roots when both have them."""
    if want.tensors and got.tensors:
        for node in m.meta["nodes"]:
            for o in node["outputs"]:
                if want.tensors[o] != got.tensors[o]:
                    t = m.tensors(want)[o], m.tensors(got)[o]
                    bad = int(np.count_nonzero(t[0] != t[1]))
                    raise AssertionError(
                        f"{got.engine} != {want.engine} at node {node['name']}, value {o}: "
                        f"{bad} of {t[0].size} elements differ")
    for k, v in want.outputs.items():
        assert v.dtype == got.outputs[k].dtype
        np.testing.assert_array_equal(got.outputs[k], v, err_msg=f"{got.engine} output {k}")
    assert got.steps == want.steps == m.meta["total_steps"]
    assert got.state_root == want.state_root, f"{got.engine} final root"
    if want.node_roots and got.node_roots:
        assert got.node_roots == want.node_roots, f"{got.engine} node roots"


def check_engines(m: api.Model, inputs: dict[str, np.ndarray],
                  engines: tuple[str, ...] = ("native", "vm"), commit: bool = True) -> RunResult:
    """ref (the integer reference replayed into memory) == each engine, tensor by tensor."""
    ref = m.run(inputs, "ref", trace=commit, capture=True)
    for e in engines:
        assert_same_run(m, ref, m.run(inputs, e, trace=commit, capture=True))
    return ref


def check_graph(g: Graph, inputs: dict[str, np.ndarray]) -> api.Model:
    """Compile integer graph ``g`` and check ref == native == vm on ``inputs``; also that
    the reference read back from the artifact equals ``evaluate_int`` on ``g`` itself."""
    from opmlc.quantize.interp import evaluate_int

    m = api.Model(compile_graph(g))
    ref = check_engines(m, inputs)
    direct = evaluate_int(g, inputs, return_all=True)
    for name, arr in m.tensors(ref).items():
        np.testing.assert_array_equal(arr, direct[name], err_msg=name)
    return m
