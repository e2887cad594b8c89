"""Integer IR -> .opvm artifact: memory plan, VM code, native LLVM IR, node table.

``compile_graph(g, ...)`` is deterministic: the artifact bytes are a function of the
integer graph, the I/O quantization parameters and the options (no timestamps, no
absolute paths, no id() or unordered iteration).

The code size and the addresses depend on each other (a 64-bit constant takes one or
two instructions); the plan is iterated with a growing code region until the code fits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np

from opmlc import __version__
from opmlc.backend import lower_index  # noqa: F401 - registers resize/topk/scatter lowerings
from opmlc.backend.fuse import fuse_requant, fuse_residual
from opmlc.backend.kernel import Kernel
from opmlc.backend.llvmgen import gen_module
from opmlc.backend.lower import Ctx, lower_node
from opmlc.backend.memplan import MemPlan, align, plan_memory
from opmlc.backend.vmgen import gen_node, halt
from opmlc.ir.graph import Graph, TensorType
from opmlc.ir.text import print_graph
from opmlc_runtime.artifact import FORMAT_VERSION, Artifact
from opmlc_runtime.isa import ISA_VERSION


def find_aliases(g: Graph) -> dict[str, str]:
    """reshape outputs that can share their input's bytes (both plain activations)."""
    fixed = set(g.inputs) | set(g.outputs) | set(g.consts)
    return {n.outputs[0]: n.inputs[0] for n in g.nodes
            if n.op == "reshape" and n.inputs[0] not in fixed and n.outputs[0] not in fixed}


def node_name(k: int, node: Any) -> str:
    return f"{k}:{node.op}:{node.outputs[0]}"


# models with at least this many nodes report lowering progress every tenth of the nodes
PROGRESS_MIN_NODES = 50


def _lower_all(g: Graph, ctx: Ctx, say: Callable[[str], None] | None = None) -> list[Kernel]:
    n = len(g.nodes)
    every = max(1, -(-n // 10)) if say is not None and n >= PROGRESS_MIN_NODES else 0
    out = []
    for k, node in enumerate(g.nodes):
        out.append(lower_node(node, ctx, node_name(k, node)))
        if every and ((k + 1) % every == 0 or k + 1 == n):
            say(f"  lowered {k + 1}/{n} nodes ({100 * (k + 1) // n}%)")
    return out


def _sig(g: Graph, plan: MemPlan, name: str, quant: dict | None) -> dict:
    t = g.types[name]
    r = plan.values[name]
    return {"name": name, "dtype": t.dtype, "shape": list(t.shape), "address": r.address,
            "nbytes": r.nbytes, "quant": quant}


def compile_graph(g: Graph, *, quant_in: dict[str, dict | None] | None = None,
                  quant_out: dict[str, dict | None] | None = None,
                  options: dict | None = None, source_sha256: str | None = None,
                  include_ir: bool = True,
                  progress: Callable[[str], None] | None = None) -> Artifact:
    """Compile integer graph ``g`` into an :class:`Artifact`.

    ``options["fuse"]`` (default True; recorded in the artifact's options): run the
    contraction + requant (+ clamp) fusion pass (``opmlc.backend.fuse``) first."""
    say = progress or (lambda msg: None)
    options = {**(options or {}), "fuse": bool((options or {}).get("fuse", True))}
    if options["fuse"]:
        fused = fuse_residual(fuse_requant(g))
        if fused is not g:
            say(f"fused contraction epilogues: {len(g.nodes)} -> {len(fused.nodes)} nodes")
        g = fused
    aliases = find_aliases(g)
    ctx = Ctx(g, {}, aliases=aliases)
    say(f"lowering {len(g.nodes)} nodes")
    _lower_all(g, ctx, say)  # first pass: collect lowering tables
    tables = dict(ctx.tables)
    code_size = 0
    for rnd in range(8):
        say(f"layout round {rnd + 1}: memory plan, VM code" + (
            f" (code {code_size} bytes)" if code_size else ""))
        plan = plan_memory(g, code_size, tables, aliases)
        ctx = Ctx(g, {n: r.address for n, r in plan.values.items()}, aliases=aliases)
        kernels = _lower_all(g, ctx)
        codes, pc = [], 0
        for k in kernels:
            nc = gen_node(k, pc)
            codes.append(nc)
            pc += len(nc.code)
        need = align(pc + 8)
        if need <= code_size:
            break
        code_size = need
    else:  # pragma: no cover - sizes grow monotonically and converge in 2-3 rounds
        raise RuntimeError("code layout did not converge")
    say(f"memory plan: {plan.total} bytes, depth {plan.depth}, activations "
        f"{plan.act_bytes} bytes (without reuse {plan.act_naive})")
    halt_pc = pc
    image = bytearray(b"".join(c.code for c in codes) + halt())
    image += bytes(code_size - len(image))
    consts = list(g.consts.items()) + list(tables.items())
    end = code_size
    for name, _arr in consts:
        r = plan.values[name]
        end = max(end, r.address + r.nbytes)
    image += bytes(end - len(image))
    for name, arr in consts:
        r = plan.values[name]
        raw = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
        image[r.address: r.address + len(raw)] = raw
    nodes, entry, step = [], 0, 0
    for k, (n, nc, kern) in enumerate(zip(g.nodes, codes, kernels, strict=True)):
        step += nc.steps
        writes = sorted({(plan.values[o].address, plan.values[o].nbytes) for o in n.outputs})
        nodes.append({"name": node_name(k, n), "op": n.op, "entry": entry,
                      "exit": entry + len(nc.code), "steps": nc.steps, "step_end": step,
                      "outputs": list(n.outputs), "writes": [list(w) for w in writes],
                      "parallel": kern.parallel, "regs": list(nc.regs_used)})
        entry += len(nc.code)
    say("generating native kernels")
    llir = gen_module(kernels)
    qi, qo = quant_in or {}, quant_out or {}
    meta = {
        "format_version": FORMAT_VERSION, "isa_version": ISA_VERSION,
        "compiler": f"opmlc {__version__}", "source_sha256": source_sha256,
        "options": options, "depth": plan.depth,
        "memory": {"total": plan.total, "image_nbytes": len(image),
                   "activation_bytes": plan.act_bytes, "activation_bytes_naive": plan.act_naive,
                   "regions": [[r.kind, r.name, r.address, r.nbytes] for r in
                               [plan.code] + list(plan.values.values())]},
        "code": {"address": 0, "nbytes": code_size, "halt": halt_pc},
        "inputs": [_sig(g, plan, n, qi.get(n)) for n in g.inputs],
        "outputs": [_sig(g, plan, n, qo.get(n)) for n in g.outputs],
        "consts": [[n, str(g.types[n] if n in g.types else TensorType.of(a)),
                    plan.values[n].address] for n, a in consts],
        "nodes": nodes, "total_steps": step + 1,
        "ir_sha256": hashlib.sha256(print_graph(g).encode()).hexdigest(),
    }
    return Artifact(meta, bytes(image), llir, print_graph(g) if include_ir else None)


__all__ = ["compile_graph", "find_aliases"]
