"""The float reference interpreter: evaluates a graph node by node with the
numpy reference of each op (:mod:`opmlc.ir.ops`).

    env = inputs ∪ consts;  for n in nodes: env[n.outputs] = ref_n(env[n.inputs], n.attrs)

Each result is coerced to the node's declared type, so the interpreter's dtypes
are the IR's, not numpy's promotion rules.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np

from opmlc.errors import ShapeError
from opmlc.ir.graph import Graph, Node
from opmlc.ir.ops import run_ref


def _bind_inputs(g: Graph, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    env: dict[str, np.ndarray] = {}
    missing = [n for n in g.inputs if n not in inputs]
    if missing:
        raise ShapeError(f"missing graph inputs: {missing}")
    for name in g.inputs:
        t = g.types[name]
        arr = np.asarray(inputs[name])
        if tuple(arr.shape) != t.shape:
            raise ShapeError(f"input {name!r} has shape {tuple(arr.shape)}, graph expects {t}")
        env[name] = arr.astype(t.np_dtype, copy=False)
    return env


def run_nodes(g: Graph, env: dict[str, np.ndarray],
              settle: Callable[[Node, str, np.ndarray], np.ndarray],
              return_all: bool = False) -> dict[str, np.ndarray]:
    """env ∪= consts; for n in nodes: env[o] = settle(n, o, ref_n(env[n.inputs], n.attrs))
    for each output o. Returns the outputs, or every value if ``return_all``. ``settle``
    checks (or coerces) a result against its declared type: the one place the float and
    integer interpreters differ."""
    env.update(g.consts)
    for node in g.nodes:
        outs = run_ref(node.op, [env[i] for i in node.inputs], node.attrs)
        for name, val in zip(node.outputs, outs, strict=True):
            env[name] = settle(node, name, np.asarray(val))
    if return_all:
        return env
    return {o: env[o] for o in g.outputs}


def evaluate(g: Graph, inputs: dict[str, np.ndarray],
             return_all: bool = False) -> dict[str, np.ndarray]:
    """Run ``g`` on ``inputs``; returns the outputs, or every value if ``return_all``."""

    def coerce(node: Node, name: str, val: np.ndarray) -> np.ndarray:
        t = g.types[name]
        if val.dtype != t.np_dtype:
            val = val.astype(t.np_dtype)
        if val.shape != t.shape:
            raise ShapeError(f"node {node.op} -> {name}: reference produced shape "
                             f"{val.shape}, declared {t}")
        return val

    with _one_blas_thread():
        return run_nodes(g, _bind_inputs(g, inputs), coerce, return_all)


def _one_blas_thread():
    """BLAS on one thread while the interpreter runs: the same float sums whatever the
    host's core count (calibration ranges, hence artifacts, must not depend on it), and
    no spinning BLAS threads: on 2 busy cores a 2-thread sgemm of a 14x14 conv took 70x
    the one-thread time (ResNet-50-light's calibration 17 s -> under 1 s)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # an optional speed-up, not a dependency of the results
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")
