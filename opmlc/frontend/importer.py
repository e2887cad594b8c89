"""ONNX -> IR import.

``import_onnx(model, shapes)``:
  1. load (path with external data relative to the file, or a ModelProto);
  2. check opsets (ai.onnx >= 7) and collect EVERY unsupported (op, opset, node)
     into one :class:`UnsupportedOpsError`;
  3. fix graph input shapes (``shapes`` overrides dynamic dims; a dynamic dim
     without it is a :class:`ShapeError` naming the input and the flag);
  4. convert nodes in topological order through :mod:`handlers`, folding every
     node whose inputs are all constants (so Shape/Gather/Concat/Range chains,
     casts of constants, Identity and inference Dropout vanish);
  5. run the IR passes (BatchNorm folding, dead code) with the verifier after each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from opmlc.errors import ModelLoadError, ShapeError, UnsupportedOpsError
from opmlc.frontend.context import Const, Ctx, OnnxNode, V
from opmlc.frontend.handlers import ONNX_DTYPES, lookup
from opmlc.frontend.passes import run_passes
from opmlc.ir.graph import Graph, TensorType

MIN_OPSET = 7
DOMAINS = {"": "", "ai.onnx": "", "ai.onnx.ml": "ai.onnx.ml"}


def load_model(model: str | Path | onnx.ModelProto) -> onnx.ModelProto:
    """The ModelProto of ``model``, external data loaded; ModelLoadError if unreadable."""
    if isinstance(model, onnx.ModelProto):
        return model
    path = Path(model)
    if not path.is_file():
        raise ModelLoadError(f"model file {str(path)!r} does not exist or is not a file")
    try:
        m = onnx.load(str(path), load_external_data=True)
    except Exception as e:  # noqa: BLE001 - any decode failure is the user's file
        msg = " ".join(str(e).split()) or type(e).__name__
        raise ModelLoadError(f"cannot read ONNX model {str(path)!r}: {msg}") from None
    if not m.HasField("graph") or not (m.opset_import or m.ir_version):
        what = "is empty" if path.stat().st_size == 0 else "holds no ONNX graph"
        raise ModelLoadError(f"{str(path)!r} {what}: not an ONNX model (save one with "
                             "onnx.save)")
    return m


def _opsets(m: onnx.ModelProto) -> dict[str, int]:
    out = {DOMAINS.get(o.domain, o.domain): o.version for o in m.opset_import}
    if m.ir_version < 3 and "" not in out:
        out[""] = 1
    top = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= out.get("", MIN_OPSET) <= top:
        raise ModelLoadError(f"model uses ai.onnx opset {out['']}; opmlc supports opsets "
                             f"{MIN_OPSET}..{top} (convert it with "
                             "onnx.version_converter.convert_version)")
    return out


def check_supported(m: onnx.ModelProto) -> None:
    """Raise one UnsupportedOpsError listing every unsupported node in ``m``."""
    opsets = _opsets(m)
    bad: list[tuple[str, int, str]] = []

    def walk(graph: onnx.GraphProto) -> None:  # subgraphs (If / Loop bodies) too
        for i, node in enumerate(graph.node):
            domain = DOMAINS.get(node.domain, node.domain)
            ver = opsets.get(domain, 0)
            name = node.name or f"#{i}"
            if domain not in ("", "ai.onnx.ml") or lookup(node.op_type, ver) is None:
                op = f"{node.domain}.{node.op_type}" if domain else node.op_type
                bad.append((op, ver, name))
            for a in node.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)

    walk(m.graph)
    if bad:
        raise UnsupportedOpsError(bad)


def _input_type(vi: onnx.ValueInfoProto, shapes: dict[str, tuple[int, ...]]) -> TensorType:
    tt = vi.type.tensor_type
    if not vi.type.HasField("tensor_type") or tt.elem_type not in ONNX_DTYPES:
        raise UnsupportedOpsError([], f"graph input {vi.name!r} is not a tensor of a supported "
                                      "element type")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
    if vi.name in shapes:
        given = tuple(int(d) for d in shapes[vi.name])
        if len(given) != len(dims) or any(d is not None and d != s for d, s in zip(
                dims, given, strict=False)):
            raise ShapeError(f"--shape {vi.name}={'x'.join(map(str, given))} does not match "
                             f"the model's input shape {_dims_text(tt)}")
        return TensorType(ONNX_DTYPES[tt.elem_type], given)
    if not tt.HasField("shape") or None in dims:
        example = "x".join(str(d) if d is not None else "N" for d in dims) or "1x3x224x224"
        raise ShapeError(f"graph input {vi.name!r} has dynamic shape {_dims_text(tt)}; "
                         f"fix it with --shape {vi.name}={example} "
                         f"(API: shapes={{{vi.name!r}: (...)}})")
    return TensorType(ONNX_DTYPES[tt.elem_type], tuple(dims))


def _dims_text(tt: Any) -> str:
    if not tt.HasField("shape"):
        return "[unknown rank]"
    return "[" + ",".join(d.dim_param or (str(d.dim_value) if d.HasField("dim_value") else "?")
                          for d in tt.shape.dim) + "]"


def _decode_attrs(node: onnx.NodeProto, opset: int) -> dict[str, Any]:
    """The node's attributes as Python values, each of the type the op's schema declares
    (a mutated or hand-made file may carry, say, a string where a tensor belongs)."""
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, node.domain).attributes
    except (onnx.defs.SchemaError, TypeError):  # TypeError: an opset beyond a C int
        schema = {}
    out = {}
    for a in node.attribute:
        want = schema.get(a.name)
        if want is not None and a.type != want.type:
            have = onnx.AttributeProto.AttributeType.Name(a.type)
            raise ValueError(f"attribute {a.name!r} is a {have}, the op's schema says "
                             f"{want.type.name}")
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _convert_node(ctx: Ctx, node: onnx.NodeProto, idx: int, opset: int,
                  env: dict[str, V]) -> None:
    name = node.name or f"#{idx}"
    out_names = list(node.output)
    try:
        attrs = _decode_attrs(node, opset)
    except Exception as e:  # noqa: BLE001 - a malformed attribute is the user's file
        raise ModelLoadError(f"node {name!r} ({node.op_type}): malformed attribute: "
                             f"{type(e).__name__}: {e}") from None
    ctx.node = OnnxNode(node.op_type, name, opset, attrs, out_names,
                        DOMAINS.get(node.domain, node.domain))
    ctx.base = next((o for o in out_names if o), name)
    missing = [i for i in node.input if i and i not in env]
    if missing:
        raise ModelLoadError(f"node {name!r} ({node.op_type}) reads {missing[0]!r}, which no "
                             "graph input, initializer or earlier node defines (the model "
                             "is malformed or not topologically sorted)")
    ins = [env[i] if i else None for i in node.input]
    handler = lookup(node.op_type, opset)
    if handler is None:  # inside a subgraph or a function body
        raise UnsupportedOpsError([(node.op_type, opset, name)])
    start = len(ctx.g.nodes)
    try:
        outs = list(handler(ctx, ctx.node, ins))
    except (KeyError, ValueError, IndexError, TypeError, ArithmeticError, AttributeError) as e:
        raise UnsupportedOpsError([(node.op_type, opset, name)],
                                  f"cannot convert this node: {type(e).__name__}: {e}") from None
    _name_results(ctx, start, out_names, outs)
    for o, v in zip(out_names, outs, strict=False):
        if o and v is not None:
            env[o] = v


def _rename(ctx: Ctx, start: int, old: str, new: str) -> None:
    """Rename a value created by the nodes ``ctx.g.nodes[start:]`` (nothing else uses it)."""
    for n in ctx.g.nodes[start:]:
        n.inputs = tuple(new if i == old else i for i in n.inputs)
        n.outputs = tuple(new if o == old else o for o in n.outputs)
    ctx.g.types[new] = ctx.g.types.pop(old)


def _name_results(ctx: Ctx, start: int, out_names: list[str], outs: list[V | None]) -> None:
    """Give a node's results their ONNX names (intermediates keep suffixed names)."""
    created = {o for n in ctx.g.nodes[start:] for o in n.outputs}
    for o, v in zip(out_names, outs, strict=False):  # sees the renames below
        if not o or not isinstance(v, str) or v == o or v not in created:
            continue
        if o in ctx.g.types:
            if o not in created:
                continue
            moved = ctx.g.fresh_name(o)
            _rename(ctx, start, o, moved)
            outs[:] = [moved if x == o else x for x in outs]
        _rename(ctx, start, v, o)
        outs[:] = [o if x == v else x for x in outs]


def _bind_outputs(ctx: Ctx, graph: onnx.GraphProto, env: dict[str, V]) -> None:
    """Graph outputs keep their ONNX names (an identity node or a named const if aliased)."""
    for out in graph.output:
        if out.name not in env:
            raise ModelLoadError(f"graph output {out.name!r} is not produced by any node, "
                                 "input or initializer (the model is malformed)")
        v = env[out.name]
        if isinstance(v, Const):
            if out.name in ctx.g.types:
                raise ModelLoadError(f"output {out.name!r} clashes with another value name")
            ctx.g.consts[out.name] = np.array(v.value, order="C")
            ctx.g.types[out.name] = TensorType.of(v.value)
        elif v != out.name and out.name not in ctx.g.types and v not in ctx.g.inputs \
                and v not in ctx.g.outputs:
            _rename(ctx, 0, v, out.name)  # an alias (Identity, Dropout): take the ONNX name
            v = out.name
        elif v != out.name:
            ctx.base = out.name
            v = ctx.emit("identity", [v])
        ctx.g.outputs.append(out.name if isinstance(v, Const) else v)


def _inliner(opsets: dict[str, int], outer: dict[str, V]):  # noqa: ANN202
    """ctx.inline for this import: a subgraph converted with the enclosing values in
    scope (``outer``, the environment being filled), its inputs bound by ``binds``."""
    scopes = [outer]

    def inline(ctx: Ctx, graph: onnx.GraphProto, binds: dict[str, V],
               own: dict[str, int] | None = None) -> list[V]:
        env = {**scopes[-1], **binds}
        sets = {**opsets, **(own or {})}
        for t in graph.initializer:
            env[t.name] = Const(numpy_helper.to_array(t), t.name)
        scopes.append(env)
        try:
            for idx, node in enumerate(graph.node):
                _convert_node(ctx, node, idx, sets[DOMAINS.get(node.domain, node.domain)],
                              env)
        finally:
            scopes.pop()
        missing = [o.name for o in graph.output if o.name not in env]
        if missing:
            raise ModelLoadError(f"subgraph {graph.name!r}: output {missing[0]!r} is not "
                                 "produced (the model is malformed)")
        return [env[o.name] for o in graph.output]

    return inline


def import_onnx(model: str | Path | onnx.ModelProto,
                shapes: dict[str, tuple[int, ...]] | None = None,
                fold_batch_norm: bool = True) -> Graph:
    """ONNX model -> verified IR graph with static shapes (see module docstring)."""
    m = load_model(model)
    check_supported(m)
    opsets = _opsets(m)
    shapes = dict(shapes or {})
    graph = m.graph
    ctx = Ctx()
    ctx.g.name = "main"
    env: dict[str, V] = {}
    ctx.inline_fn = _inliner(opsets, env)
    for t in graph.initializer:
        try:
            env[t.name] = Const(numpy_helper.to_array(t), t.name)
        except Exception as e:  # noqa: BLE001 - a malformed tensor is the user's file
            raise ModelLoadError(f"initializer {t.name!r}: malformed tensor: "
                                 f"{type(e).__name__}: {' '.join(str(e).split())}") from None
    for t in graph.sparse_initializer:
        raise UnsupportedOpsError([], f"sparse initializer {t.values.name!r} is not supported")
    real_inputs = [vi for vi in graph.input if vi.name not in env]
    unknown = set(shapes) - {vi.name for vi in real_inputs}
    if unknown:
        raise ShapeError(f"--shape names unknown input(s) {sorted(unknown)}; the model's "
                         f"inputs are {[vi.name for vi in real_inputs]}")
    for vi in real_inputs:
        ctx.g.inputs.append(vi.name)
        ctx.g.types[vi.name] = _input_type(vi, shapes)
        env[vi.name] = vi.name
    for idx, node in enumerate(graph.node):
        domain = DOMAINS.get(node.domain, node.domain)
        _convert_node(ctx, node, idx, opsets[domain], env)
    _bind_outputs(ctx, graph, env)
    return run_passes(ctx.g, fold_batch_norm=fold_batch_norm)
