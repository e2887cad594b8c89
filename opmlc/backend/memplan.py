"""The memory plan: one layout, at fixed 64-bit addresses, for the VM and native code.

From address 0, every region 32-byte (Merkle leaf) aligned::

    code        all node subroutines in node order, then one halt
    constants   weights and tables (graph consts, then lowering tables), graph order
    inputs      graph inputs, in order
    activations node outputs that are not graph outputs, reused by liveness
    outputs     graph outputs, in order (never reused)

Activation liveness: a value is live from the node that defines it through the last
node that reads it, inclusive; two values share bytes only if their live ranges do not
overlap (so a node never writes over its own operands). Placement is first-fit by
offset over values sorted by (size descending, definition order, name): deterministic.
``aliases`` (value -> value it shares bytes with, e.g. a no-op reshape) merge live
ranges. Memory depth = the smallest d >= 1 with ``32 << d >= total``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from opmlc.ir.graph import Graph

LEAF = 32


def align(n: int, a: int = LEAF) -> int:
    return -(-n // a) * a


def depth_for(total: int) -> int:
    d = 1
    while (32 << d) < total:
        d += 1
    return d


@dataclass(frozen=True)
class Region:
    name: str
    kind: str  # code | const | input | act | output
    address: int
    nbytes: int


@dataclass
class MemPlan:
    code: Region
    values: dict[str, Region] = field(default_factory=dict)
    total: int = 0
    depth: int = 1
    act_bytes: int = 0  # size of the activation arena after reuse
    act_naive: int = 0  # what it would take without reuse

    def addr(self, name: str) -> int:
        return self.values[name].address

    def regions(self, kind: str) -> list[Region]:
        return [r for r in self.values.values() if r.kind == kind]


def nbytes_of(g: Graph, name: str) -> int:
    t = g.types[name]
    return t.size * t.np_dtype.itemsize


def plan_memory(g: Graph, code_size: int, extra_consts: dict[str, np.ndarray] | None = None,
                aliases: dict[str, str] | None = None) -> MemPlan:
    """Lay out ``g`` (see module docstring). ``extra_consts``: lowering tables (name ->
    array) placed after the graph constants; ``aliases``: activation -> activation."""
    aliases = dict(aliases or {})
    plan = MemPlan(code=Region("<code>", "code", 0, code_size))
    cur = align(code_size)
    for name in g.consts:
        n = nbytes_of(g, name)
        plan.values[name] = Region(name, "const", cur, n)
        cur = align(cur + n)
    for name, arr in (extra_consts or {}).items():
        n = int(arr.nbytes)
        plan.values[name] = Region(name, "const", cur, n)
        cur = align(cur + n)
    for name in g.inputs:
        n = nbytes_of(g, name)
        plan.values[name] = Region(name, "input", cur, n)
        cur = align(cur + n)

    outputs = set(g.outputs)
    fixed = set(g.consts) | set(g.inputs) | outputs
    # live ranges of activation groups (alias root -> [first, last])
    def root(v: str) -> str:
        while v in aliases:
            v = aliases[v]
        return v

    span: dict[str, list[int]] = {}
    order: dict[str, int] = {}
    for k, node in enumerate(g.nodes):
        for o in node.outputs:
            if o in fixed:
                continue
            r = root(o)
            s = span.setdefault(r, [k, k])
            order.setdefault(r, k)
            s[1] = max(s[1], k)
        for i in node.inputs:
            if i in fixed or i not in g.types or i in g.consts:
                continue
            r = root(i)
            if r in span:
                span[r][1] = max(span[r][1], k)
    size = {r: align(max(nbytes_of(g, r), 1)) for r in span}
    placed: list[tuple[int, int, int, int]] = []  # (offset, end, first, last)
    offsets: dict[str, int] = {}
    for r in sorted(span, key=lambda v: (-size[v], order[v], v)):
        first, last = span[r]
        clashes = sorted((o, e) for o, e, f, lst in placed if not (lst < first or last < f))
        off = 0
        for o, e in clashes:
            if off + size[r] <= o:
                break
            off = max(off, e)
        offsets[r] = off
        placed.append((off, off + size[r], first, last))
    arena = max((e for _, e, _, _ in placed), default=0)
    plan.act_bytes, plan.act_naive = arena, sum(size.values())
    act_base = cur
    for node in g.nodes:
        for o in node.outputs:
            if o in fixed:
                continue
            plan.values[o] = Region(o, "act", act_base + offsets[root(o)], nbytes_of(g, o))
    cur = align(act_base + arena)
    for name in g.outputs:
        if name in plan.values:
            continue  # an output that is also an input/const keeps its place
        n = nbytes_of(g, name)
        plan.values[name] = Region(name, "output", cur, n)
        cur = align(cur + n)
    plan.total = max(cur, LEAF)
    plan.depth = depth_for(plan.total)
    return plan


__all__ = ["MemPlan", "Region", "align", "depth_for", "nbytes_of", "plan_memory"]
