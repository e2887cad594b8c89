"""SmoothQuant-style migration of activation outliers into weights: float graph -> float
graph, before calibration (int8 mode ``smooth``, :mod:`opmlc.quantize.mixed`).

Xiao et al., "SmoothQuant" (2023): for a contraction ``y = x @ W`` whose input ``x`` is
made by a per-channel affine op (a layer norm's ``gamma``, ``beta``; an RMS norm's
``gamma``; a multiplication by a constant vector along the channel axis), divide that
op's constants by ``s_j`` and multiply the rows ``W[j, :]`` of every weight reading ``x``
by ``s_j``:

    s_j = max|x_j|^alpha / max|W[j, :]|^(1 - alpha)    (alpha = 0.5)

so that x's channels become about as wide as the weights' rows and a per-tensor activation
scale wastes fewer codes on a few wide channels.  ``x / s @ (s W) = x @ W``: the float
function is unchanged up to float rounding (tests/test_int8_modes.py checks it against
the unsmoothed graph).  ``max|x_j|`` is taken over the calibration samples.
"""

from __future__ import annotations

import numpy as np

from opmlc.ir.graph import FLOAT_DTYPES, Graph, Node
from opmlc.ir.interp import evaluate

ALPHA = 0.5
S_CLAMP = (1e-4, 1e4)


def _weight_users(g: Graph, v: str) -> list[Node] | None:
    """The matmuls reading ``v`` as their left operand with a constant 2-D float weight,
    when those are all of v's users (and v is no graph output); else None."""
    us = g.users().get(v, [])
    if not us or v in g.outputs:
        return None
    for u in us:
        w = g.consts.get(u.inputs[1]) if u.op == "matmul" else None
        if u.inputs[0] != v or w is None or w.ndim != 2 or w.dtype.kind != "f" or \
                u.inputs[1] == v:
            return None
    return us


def _channel_consts(g: Graph, n: Node, c: int) -> list[int] | None:
    """Positions of n's inputs that are per-channel constants to divide by s (the channel
    axis last, c channels), or None when n is not a per-channel affine op."""
    t = g.types[n.outputs[0]]
    if n.op in ("layer_norm", "rms_norm"):
        if n.attrs["axis"] not in (-1, len(t.shape) - 1):
            return None
        pos = list(range(1, len(n.inputs)))
    elif n.op == "mul":
        pos = [i for i, x in enumerate(n.inputs) if x in g.consts]
        if len(pos) != 1:
            return None
        a = g.consts[n.inputs[pos[0]]]
        if a.dtype.kind != "f" or a.ndim > len(t.shape) or (a.ndim and a.shape[-1] != c) or \
                a.size != c:
            return None
    else:
        return None
    return pos if all(n.inputs[i] in g.consts for i in pos) else None


def smooth(g: Graph, calibration: dict[str, np.ndarray] | None = None, *, alpha: float = ALPHA,
           n_synth: int = 4, seed: int = 0) -> Graph:
    """A copy of ``g`` with every smoothable (affine op -> matmuls) pair rescaled."""
    from opmlc.quantize.quantize import calibration_samples

    producers = g.producers()
    plan: list[tuple[Node, list[int], list[Node]]] = []
    seen: set[str] = set()
    for n in g.nodes:
        for u in n.inputs[:1] if n.op == "matmul" else ():
            p = producers.get(u)
            if u in seen or p is None or g.types[u].dtype not in FLOAT_DTYPES:
                continue
            seen.add(u)
            users = _weight_users(g, u)
            pos = _channel_consts(g, p, g.types[u].shape[-1]) if users else None
            if users and pos is not None:
                plan.append((p, pos, users))
    if not plan:
        return g
    amax = {p.outputs[0]: np.zeros(g.types[p.outputs[0]].shape[-1]) for p, _, _ in plan}
    for s in calibration_samples(g, calibration, n_synth, seed):
        env = evaluate(g, s, return_all=True)
        for k in amax:
            v = np.abs(env[k].astype(np.float64)).reshape(-1, amax[k].size)
            amax[k] = np.maximum(amax[k], v.max(axis=0))
    out = Graph(list(g.inputs), list(g.outputs), dict(g.consts), list(g.nodes),
                dict(g.types), g.name)
    index = {id(n): i for i, n in enumerate(g.nodes)}
    for p, pos, users in plan:
        a = amax[p.outputs[0]]
        wmax = np.max([np.abs(g.consts[u.inputs[1]].astype(np.float64)).max(axis=1)
                       for u in users], axis=0)
        s = np.where((a > 0) & (wmax > 0), a**alpha / np.maximum(wmax, 1e-30)**(1 - alpha),
                     1.0)
        s = np.clip(s, *S_CLAMP)
        ins = list(p.inputs)
        for i in pos:
            c = g.consts[ins[i]]
            ins[i] = out.add_const(ins[i] + ".smooth", (c / s).astype(c.dtype))
        out.nodes[index[id(p)]] = Node(p.op, tuple(ins), p.outputs, dict(p.attrs))
        for u in users:
            w = g.consts[u.inputs[1]]
            wn = out.add_const(u.inputs[1] + ".smooth", (w * s[:, None]).astype(w.dtype))
            out.nodes[index[id(u)]] = Node(u.op, (u.inputs[0], wn), u.outputs, dict(u.attrs))
    out.remove_dead()
    return out


__all__ = ["ALPHA", "smooth"]
