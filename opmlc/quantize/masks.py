"""Attention masks: float graph -> float graph, before calibration.

Decoders mask the future with a constant that means "nothing": ``-inf``,
``torch.finfo(dtype).min`` or a large finite negative such as ``-1e4``, written as
``masked_fill`` (``where(c, MASK, scores)``), an additive mask (``scores + M`` with
``M = triu(full(-inf), 1)``, also what ``scaled_dot_product_attention(is_causal=True)``
exports), or a boolean mask (``where(keep, scores, MASK)``).  Range analysis cannot
scale an infinity, and a saturated finite mask still leaves a small exp in the int8
softmax.  :func:`fold_masks` rewrites each such pattern feeding a softmax into
``softmax(scores, keep)`` with an explicit keep mask (spec/QUANT.md, q.softmax): a
masked position is exactly 0 and takes no part in the max or the sum, in the float
reference and in the integer semantics alike.

A constant element is a mask value when it is ``-inf`` or ``<= MASK_LEVEL``.
"""

from __future__ import annotations

import numpy as np

from opmlc.ir.graph import Graph, Node, TensorType

MASK_LEVEL = -1e4  # constants at or below this (and -inf) mean "masked" in front of a softmax


def is_mask(a: np.ndarray) -> np.ndarray:
    """Elementwise: is this constant element a mask value?"""
    a = np.asarray(a, np.float64)
    return np.isneginf(a) | (a <= MASK_LEVEL)


def _expand(g: Graph, name: str, shape: tuple[int, ...], new: list[Node]) -> str:
    """``name`` broadcast to ``shape`` (an expand node when it is not that shape already)."""
    t = g.types[name]
    if t.shape == shape:
        return name
    out = g.fresh_name(name + ".expand")
    g.types[out] = TensorType(t.dtype, shape)
    new.append(Node("expand", (name,), (out,), {"shape": list(shape)}))
    return out


def _keep_const(g: Graph, base: str, keep: np.ndarray) -> str:
    return g.add_const(base + ".keep", np.ascontiguousarray(keep.astype(np.bool_)))


def _match(g: Graph, p: Node, shape: tuple[int, ...], new: list[Node]
           ) -> tuple[str, str] | None:
    """(value, keep) for a masking node ``p`` whose output has ``shape``, or None."""
    def fl(nm: str) -> np.ndarray | None:
        c = g.consts.get(nm)
        return c if c is not None and c.dtype.kind == "f" else None

    if p.op == "where":
        c, a, b = p.inputs
        ca, cb = fl(a), fl(b)
        if cb is not None and cb.size and is_mask(cb).all() and (ca is None or not
                                                                 is_mask(ca).all()):
            keep = c if c not in g.consts else _keep_const(g, c, g.consts[c] != 0)
            return _expand(g, a, shape, new), keep
        if ca is not None and ca.size and is_mask(ca).all() and c in g.consts:
            return _expand(g, b, shape, new), _keep_const(g, c, g.consts[c] == 0)
        return None
    if p.op in ("add", "sub"):
        a, b = p.inputs
        for m, other in ((b, a), (a, b)) if p.op == "add" else ((b, a),):
            cm = fl(m)
            if cm is None or fl(other) is not None:
                continue
            cm = -cm if p.op == "sub" else cm
            mk = is_mask(cm)
            if not mk.any():
                continue
            keep = _keep_const(g, m, ~mk)
            rest = np.where(mk, 0, cm).astype(cm.dtype)
            if not rest.any():
                return _expand(g, other, shape, new), keep
            rn = g.add_const(m + ".unmasked", rest)
            out = g.fresh_name(p.outputs[0] + ".unmasked")
            g.types[out] = g.types[p.outputs[0]]
            new.append(Node("add", (other, rn), (out,), {}))
            return out, keep
    return None


def fold_masks(g: Graph) -> Graph:
    """Rewrite ``softmax(mask(x))`` into ``softmax(x', keep)`` for the patterns above, where
    the masked value feeds nothing but softmaxes (and is no graph output); in place."""
    producers, users = g.producers(), g.users()
    out_nodes: list[Node] = []
    changed = False
    for n in g.nodes:
        if n.op == "softmax" and len(n.inputs) == 1:
            x = n.inputs[0]
            p = producers.get(x)
            if p is not None and x not in g.outputs and all(
                    u.op == "softmax" for u in users.get(x, [])):
                new: list[Node] = []
                m = _match(g, p, g.types[x].shape, new)
                if m is not None:
                    out_nodes.extend(new)
                    out_nodes.append(Node("softmax", m, n.outputs, dict(n.attrs)))
                    changed = True
                    continue
        out_nodes.append(n)
    if changed:
        g.nodes = out_nodes
        g.remove_dead()
    return g


__all__ = ["MASK_LEVEL", "fold_masks", "is_mask"]
