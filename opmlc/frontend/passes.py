"""Frontend IR passes; the verifier runs after each one.

* ``fold_batch_norm``: conv(x, W, b) -> batch_norm(scale, B, mean, var) becomes
  conv(x, W', b') with s = scale / sqrt(var + eps), W'[m] = W[m] * s[m],
  b' = (b - mean) * s + B, when W and the BN parameters are constants and the
  conv result feeds only the batch_norm.  Mathematically exact (an affine map of
  a linear map); in float it changes rounding at the 1e-7 relative level.
* ``remove_dead``: drop nodes and constants no output depends on.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from opmlc.ir.graph import Graph, Node
from opmlc.ir.verify import verify


def fold_batch_norm(g: Graph) -> Graph:
    producers = g.producers()
    users = g.users()
    replaced: dict[int, Node] = {}
    dropped: set[int] = set()
    for bn in g.nodes:
        if bn.op != "batch_norm":
            continue
        conv = producers.get(bn.inputs[0])
        if conv is None or conv.op != "conv" or len(users.get(conv.outputs[0], [])) != 1:
            continue
        if conv.outputs[0] in g.outputs:
            continue
        params = [g.consts.get(n) for n in list(conv.inputs[1:]) + list(bn.inputs[1:])]
        if any(p is None for p in params):
            continue
        w = params[0]
        b = params[1] if len(conv.inputs) == 3 else np.zeros(w.shape[0], w.dtype)
        scale, bias, mean, var = params[-4:]
        s = scale / np.sqrt(var + var.dtype.type(bn.attrs["epsilon"]))
        w2 = (w * s.reshape((-1,) + (1,) * (w.ndim - 1))).astype(w.dtype)
        b2 = ((b - mean) * s + bias).astype(w.dtype)
        wn = g.add_const(conv.inputs[1] + ".bnfold", w2)
        bname = g.add_const(bn.outputs[0] + ".bias", b2)
        replaced[id(bn)] = Node("conv", (conv.inputs[0], wn, bname), bn.outputs, dict(conv.attrs))
        dropped.add(id(conv))
        del g.types[conv.outputs[0]]
    g.nodes = [replaced.get(id(n), n) for n in g.nodes if id(n) not in dropped]
    g.remove_dead()  # the unfolded weights
    return g


def remove_dead(g: Graph) -> Graph:
    g.remove_dead()
    return g


def run_passes(g: Graph, fold_batch_norm: bool = True) -> Graph:
    """The frontend pipeline: verify, then each pass followed by verify."""
    passes: list[Callable[[Graph], Graph]] = [remove_dead]
    if fold_batch_norm:
        passes.insert(0, globals()["fold_batch_norm"])
    verify(g)
    for p in passes:
        g = verify(p(g))
    return g


__all__ = ["fold_batch_norm", "remove_dead", "run_passes"]
