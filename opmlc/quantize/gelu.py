"""Written-out GELU -> one ``gelu`` op: float graph -> float graph, before calibration
(int8 mode token ``gelu``, :mod:`opmlc.quantize.mixed`; measured, not in ``auto``).

torch exports ``nn.GELU()`` (and nanoGPT's ``F.gelu``) at opsets below 20 as five nodes,
``y = (x * (erf(x / sqrt 2) + 1)) * 0.5`` (Div, Erf, Add, Mul, Mul), and the int8 scheme
rounds each of them to 8 bits; the erf output, whose range is [-1, 1], loses the most.
:func:`fold_gelu` rewrites the chain into ``gelu(x)`` (exact erf form), which the quantizer
turns into one table of Phi and one product (spec/QUANT.md §4): two roundings, not five.
The float function is the same up to float rounding.
"""

from __future__ import annotations

import math

import numpy as np

from opmlc.ir.graph import Graph, Node

_TOL = 1e-4


def _scalar(g: Graph, name: str) -> float | None:
    c = g.consts.get(name)
    if c is None or c.size != 1 or c.dtype.kind != "f":
        return None
    return float(np.asarray(c).reshape(-1)[0])


def _other(n: Node, v: str) -> str | None:
    """The operand of binary ``n`` that is not ``v`` (None when both are v)."""
    if len(n.inputs) != 2 or n.inputs.count(v) != 1:
        return None
    return n.inputs[1] if n.inputs[0] == v else n.inputs[0]


def _is(g: Graph, name: str | None, value: float) -> bool:
    s = None if name is None else _scalar(g, name)
    return s is not None and abs(s - value) <= _TOL * abs(value)


def fold_gelu(g: Graph) -> Graph:
    """A copy of ``g`` with every ``(x * (erf(x / sqrt2) + 1)) * 0.5`` (also ``x * 1/sqrt2``,
    and the halving applied to x first) replaced by ``gelu(x)``; ``g`` when none is found."""
    users = g.users()
    producers = g.producers()

    def only_user(v: str) -> Node | None:
        us = users.get(v, [])
        return us[0] if len(us) == 1 and v not in g.outputs else None

    index = {id(n): i for i, n in enumerate(g.nodes)}
    replace: dict[int, Node] = {}
    dead: set[int] = set()
    for e in g.nodes:
        if e.op != "erf":
            continue
        d = producers.get(e.inputs[0])
        if d is None or only_user(d.outputs[0]) is not e:
            continue
        x = d.inputs[0] if d.inputs[0] not in g.consts else d.inputs[1]
        c = _other(d, x)
        if not ((d.op == "div" and d.inputs[0] == x and _is(g, c, math.sqrt(2))) or (
                d.op == "mul" and _is(g, c, 1 / math.sqrt(2)))):
            continue
        a = only_user(e.outputs[0])
        if a is None or a.op != "add" or not _is(g, _other(a, e.outputs[0]), 1.0):
            continue
        m = only_user(a.outputs[0])
        if m is None or m.op != "mul":
            continue
        xm = _other(m, a.outputs[0])
        chain = [d, e, a, m]
        if xm == x:  # (x * (1 + erf)) * 0.5
            h = only_user(m.outputs[0])
            if h is None or h.op != "mul" or not _is(g, _other(h, m.outputs[0]), 0.5):
                continue
            chain.append(h)
        else:  # (x * 0.5) * (1 + erf)
            h = producers.get(xm) if xm is not None else None
            if h is None or h.op != "mul" or _other(h, x) is None or not _is(
                    g, _other(h, x), 0.5) or only_user(xm) is not m:
                continue
            chain.insert(0, h)
        y = chain[-1].outputs[0]
        last = max(chain, key=lambda n: index[id(n)])
        replace[id(last)] = Node("gelu", (x,), (y,), {"approximate": "none"})
        dead.update(id(n) for n in chain if n is not last)
    if not replace:
        return g
    nodes = [replace.get(id(n), n) for n in g.nodes if id(n) not in dead]
    out = Graph(list(g.inputs), list(g.outputs), dict(g.consts), nodes, dict(g.types), g.name)
    out.remove_dead()
    return out


__all__ = ["fold_gelu"]
