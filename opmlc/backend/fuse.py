"""Fusion pass on the integer IR: contraction + requant (+ clamp) -> one node.

``fuse_requant(g)`` rewrites every

    acc = q.conv(x, w[, bias]) {conv attrs}              (or q.matmul(a, b[, bias]))
    y   = q.requant(acc, mult, shift[, rq_bias]) {x_zp, zp, dtype}
    z   = q.clamp(y) {lo, hi}                            (optional)

where ``acc``'s only user is the q.requant (as its first input), the requant keeps the
accumulator's shape, and (for the clamp) ``y``'s only user is the q.clamp, and neither
``acc`` nor a fused-away ``y`` is a graph output, into

    z = q.conv_rq(x, w[, bias], mult, shift[, rq_bias]) {conv attrs, acc_zp: x_zp, zp,
                                                          dtype, lo, hi, has_bias, has_rq_bias}

(``q.matmul_rq`` likewise; without a clamp lo / hi are the range of ``dtype``, where the
clamp is the identity). The fused ops' references are the composition of the originals
(opmlc/ir/intops.py), so the graph computes the same bits; the pass runs inside
``compile_graph`` before lowering, so the VM, the native kernels and the ``ref`` engine
(which reads the IR text of the artifact) all see the same nodes and node boundaries.
The i64 accumulator never reaches memory: fewer nodes, fewer bytes written and hashed.
"""

from __future__ import annotations

from collections import Counter

from opmlc.ir.graph import Graph, Node
from opmlc.ir.ops import canonical_attrs
from opmlc.quantize.interp import verify_int
from opmlc_runtime.dtypes import int_range

FUSED = {"q.conv": "q.conv_rq", "q.matmul": "q.matmul_rq"}


def _users(g: Graph) -> Counter:
    c: Counter = Counter()
    for n in g.nodes:
        for i in n.inputs:
            c[i] += 1
    for o in g.outputs:
        c[o] += 1  # a graph output counts as a user that must see the value
    return c


def fuse_requant(g: Graph) -> Graph:
    """``g`` with contraction + requant (+ clamp) chains fused (see the module docstring);
    ``g`` itself is not modified. The result is verified."""
    users = _users(g)
    producer = {o: k for k, n in enumerate(g.nodes) for o in n.outputs}
    consumer: dict[str, int] = {}
    for k, n in enumerate(g.nodes):
        for i in n.inputs:
            consumer[i] = k
    out: list[Node | None] = list(g.nodes)
    fused_any = False
    for k, n in enumerate(g.nodes):
        if n.op not in FUSED:
            continue
        acc = n.outputs[0]
        if users[acc] != 1 or acc not in consumer:
            continue
        rk = consumer[acc]
        rq = g.nodes[rk]
        if rq.op != "q.requant" or rq.inputs[0] != acc or acc in rq.inputs[1:]:
            continue
        if g.types[rq.outputs[0]].shape != g.types[acc].shape:
            continue
        ra = canonical_attrs("q.requant", rq.attrs)
        lo, hi = int_range(ra["dtype"])
        last, ck = rq, None
        y = rq.outputs[0]
        clamp = _clamp_after(g, users, consumer, y)
        if clamp is not None:
            ck, lo, hi = clamp
            last = g.nodes[ck]
        ca_attrs = canonical_attrs(n.op, n.attrs)
        attrs = {**ca_attrs, "acc_zp": ra["x_zp"], "zp": ra["zp"], "dtype": ra["dtype"],
                 "lo": lo, "hi": hi, "has_bias": int(len(n.inputs) > 2),
                 "has_rq_bias": int(len(rq.inputs) > 3)}
        # every requant operand must already be defined where the fused node stands (at
        # the contraction's place): constants, graph inputs or earlier node outputs
        if any(i in producer and producer[i] >= k for i in rq.inputs[1:]):
            continue
        out[k] = Node(FUSED[n.op], tuple(n.inputs) + tuple(rq.inputs[1:]),
                      tuple(last.outputs), attrs)
        out[rk] = None
        if ck is not None:
            out[ck] = None
        fused_any = True
    return _rebuilt(g, out) if fused_any else g


_ADD_KEYS = ("a_zp", "b_zp", "a_mult", "b_mult", "shift", "zp", "dtype")


def fuse_residual(g: Graph) -> Graph:
    """``g`` with every

        c = q.conv_rq(x, w[, bias], mult, shift[, rq_bias]) {..}
        s = q.add(c, r) {a_zp, ..}        (or q.add(r, c))
        z = q.clamp(s) {lo, hi}           (optional)

    where ``c``'s only user is the add, ``r`` has the add's shape (no broadcast) and is not
    ``c``, c's clamp range lies in its dtype (the value the add reads from memory is the
    value computed), ``s``'s only user is the clamp, and neither c nor a fused-away s is a
    graph output, rewritten into one ``z = q.conv_rq_add(x, w[, bias], mult, shift[,
    rq_bias], r) {.., res_a, add_*}`` standing at the add's place (all its inputs are
    defined by then). Exactly the composition (intops.q_conv_rq_add); verified."""
    users = _users(g)
    consumer: dict[str, int] = {}
    for k, n in enumerate(g.nodes):
        for i in n.inputs:
            consumer[i] = k
    out: list[Node | None] = list(g.nodes)
    fused_any = False
    for k, n in enumerate(g.nodes):
        if n.op != "q.conv_rq":
            continue
        c = n.outputs[0]
        if users[c] != 1 or c not in consumer:
            continue
        ak = consumer[c]
        ad = g.nodes[ak]
        if ad.op != "q.add" or list(ad.inputs).count(c) != 1 or out[ak] is not ad:
            continue
        r = ad.inputs[1] if ad.inputs[0] == c else ad.inputs[0]
        shape = g.types[ad.outputs[0]].shape
        if g.types[r].shape != shape or g.types[c].shape != shape:
            continue
        na = canonical_attrs(n.op, n.attrs)
        lo, hi = int_range(na["dtype"])
        if not lo <= na["lo"] <= na["hi"] <= hi:
            continue
        aa = canonical_attrs("q.add", ad.attrs)
        alo, ahi = int_range(aa["dtype"])
        last, ck = ad, None
        s = ad.outputs[0]
        clamp = _clamp_after(g, users, consumer, s)
        if clamp is not None:
            ck, alo, ahi = clamp
            last = g.nodes[ck]
        attrs = {**na, "res_a": int(ad.inputs[0] == r),
                 **{f"add_{key}": aa[key] for key in _ADD_KEYS}, "add_lo": alo, "add_hi": ahi}
        out[ak] = Node("q.conv_rq_add", tuple(n.inputs) + (r,), tuple(last.outputs), attrs)
        out[k] = None
        if ck is not None:
            out[ck] = None
        fused_any = True
    return _rebuilt(g, out) if fused_any else g


def _clamp_after(g: Graph, users: Counter, consumer: dict[str, int], v: str
                 ) -> tuple[int, int, int] | None:
    """(node index, lo, hi) of the q.clamp that is ``v``'s only user, if there is one."""
    if users[v] != 1 or v not in consumer or g.nodes[consumer[v]].op != "q.clamp":
        return None
    ca = canonical_attrs("q.clamp", g.nodes[consumer[v]].attrs)
    return consumer[v], int(ca["lo"]), int(ca["hi"])


def _rebuilt(g: Graph, out: list[Node | None]) -> Graph:
    """``g`` with the nodes of ``out`` (None: fused away), unused values dropped, verified."""
    nodes = [nd for nd in out if nd is not None]
    live = {v for nd in nodes for v in (*nd.inputs, *nd.outputs)} | set(g.inputs) | set(
        g.outputs)
    ng = Graph(inputs=list(g.inputs), outputs=list(g.outputs), nodes=nodes,
               types={v: t for v, t in g.types.items() if v in live},
               consts={c: a for c, a in g.consts.items() if c in live}, name=g.name)
    return verify_int(ng)


def fusion_stats(before: Graph, after: Graph) -> dict[str, int]:
    """Node counts by op that changed (for progress messages)."""
    a, b = Counter(n.op for n in before.nodes), Counter(n.op for n in after.nodes)
    return {op: b[op] - a[op] for op in sorted(set(a) | set(b)) if a[op] != b[op]}


__all__ = ["FUSED", "fuse_requant", "fuse_residual", "fusion_stats"]
