"""Deterministic text form of the IR, and its parser (grammar: ``ir.lark``).

Example::

    graph main(%x: f32[1,4]) {
      %w: f32[4,2] = const #1f0c2a9b7d3e4c55
      %s: i64[2] = const [1, 8]
      %y: f32[1,2] = matmul(%x, %w)
      %z: f32[1,2] = leaky_relu(%y) {alpha=0.1}
      return %z
    }

One line per constant or equation; attributes sorted by name.  Constants with at
most ``INLINE_MAX`` elements are printed inline (flat C order, floats as Python
``repr`` so they round-trip exactly); larger ones by content hash
(:func:`opmlc.ir.graph.const_digest`) and must be supplied to
:func:`parse_graph` in ``consts`` (name -> array); the hash is checked.
``parse_graph(print_graph(g), consts=g.consts) == g`` for every valid graph.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from pathlib import Path
from typing import Any

import lark
import numpy as np

from opmlc.errors import IRParseError
from opmlc.ir.graph import Graph, Node, TensorType, const_digest

INLINE_MAX = 16
_PLAIN = re.compile(r"[A-Za-z0-9_./\-]+")


def _var(name: str) -> str:
    return "%" + (name if _PLAIN.fullmatch(name) else json.dumps(name))


def _scalar(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else repr(v)
    return str(int(v))


def _value(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return _scalar(v)


def _const_body(arr: np.ndarray) -> str:
    if arr.size > INLINE_MAX:
        return "#" + const_digest(arr)
    flat = arr.reshape(-1)
    if arr.dtype.kind == "f":
        return _value([float(x) for x in flat])
    return _value([int(x) for x in flat])


def print_graph(g: Graph) -> str:
    """The canonical text of ``g`` (deterministic: same graph -> same bytes)."""
    params = ", ".join(f"{_var(n)}: {g.types[n]}" for n in g.inputs)
    lines = [f"graph {g.name}({params}) {{"]
    for name, arr in g.consts.items():
        lines.append(f"  {_var(name)}: {g.types[name]} = const {_const_body(arr)}")
    for n in g.nodes:
        outs = ", ".join(f"{_var(o)}: {g.types[o]}" for o in n.outputs)
        args = ", ".join(_var(i) for i in n.inputs)
        attrs = ""
        if n.attrs:
            attrs = " {" + ", ".join(f"{k}={_value(n.attrs[k])}" for k in sorted(n.attrs)) + "}"
        lines.append(f"  {outs} = {n.op}({args}){attrs}")
    lines.append("  return " + ", ".join(_var(o) for o in g.outputs))
    lines.append("}")
    return "\n".join(lines) + "\n"


@cache
def _parser() -> lark.Lark:
    grammar = (Path(__file__).with_name("ir.lark")).read_text()
    return lark.Lark(grammar, parser="lalr", maybe_placeholders=True)


class _ToGraph(lark.Transformer):
    def __init__(self, consts: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.consts = consts

    def var(self, items: list[Any]) -> str:
        tok = str(items[0])[1:]
        return json.loads(tok) if tok.startswith('"') else tok

    def type(self, items: list[Any]) -> TensorType:
        return TensorType(str(items[0]), tuple(int(i) for i in items[1:] if i is not None))

    def param(self, items: list[Any]) -> tuple[str, TensorType]:
        return items[0], items[1]

    def int(self, items: list[Any]) -> int:
        return int(items[0])

    def float(self, items: list[Any]) -> float:
        return float(items[0])

    def string(self, items: list[Any]) -> str:
        return json.loads(items[0])

    def list(self, items: list[Any]) -> list[Any]:
        return [i for i in items if i is not None]

    def attr(self, items: list[Any]) -> tuple[str, Any]:
        return str(items[0]), items[1]

    def attrs(self, items: list[Any]) -> dict[str, Any]:
        return dict(i for i in items if i is not None)

    def const_stmt(self, items: list[Any]) -> tuple[str, str, TensorType, np.ndarray]:
        (name, t), body = items
        if isinstance(body, lark.Token):  # by hash: take the array from the side table
            if name not in self.consts:
                raise IRParseError(f"constant {name!r} ({t}, {body}) not supplied in consts=")
            arr = np.asarray(self.consts[name])
            if TensorType.of(arr) != t or "#" + const_digest(arr) != str(body):
                raise IRParseError(f"constant {name!r}: supplied array does not match {t} {body}")
        else:
            arr = np.array(body, dtype=t.np_dtype).reshape(t.shape)
        return ("const", name, t, arr)

    def eqn(self, items: list[Any]) -> tuple[str, Node, list[tuple[str, TensorType]]]:
        k = next(i for i, it in enumerate(items) if isinstance(it, lark.Token))
        outs, op, rest = items[:k], items[k], items[k + 1:]
        attrs = rest[-1] or {}
        args = [a for a in rest[:-1] if a is not None]
        return ("eqn", Node(str(op), tuple(args), tuple(o for o, _ in outs), attrs), outs)

    def start(self, items: list[Any]) -> Graph:
        name, *rest = items
        g = Graph(name=str(name))
        i = 0
        while i < len(rest) and (rest[i] is None or isinstance(rest[i], tuple)
                                 and isinstance(rest[i][1], TensorType)):
            if rest[i] is not None:
                g.inputs.append(rest[i][0])
                g.types[rest[i][0]] = rest[i][1]
            i += 1
        for item in rest[i:]:
            if item is None:
                continue
            if isinstance(item, str):
                g.outputs.append(item)
            elif item[0] == "const":
                g.consts[item[1]] = item[3]
                g.types[item[1]] = item[2]
            else:
                g.nodes.append(item[1])
                g.types.update(dict(item[2]))
        return g


def parse_graph(text: str, consts: dict[str, np.ndarray] | None = None) -> Graph:
    """Parse IR text; hashed constants are looked up by name in ``consts``."""
    try:
        tree = _parser().parse(text)
        return _ToGraph(consts or {}).transform(tree)
    except lark.exceptions.VisitError as e:
        if isinstance(e.orig_exc, IRParseError):
            raise e.orig_exc from None
        raise IRParseError(f"bad IR text: {e.orig_exc}") from None
    except lark.exceptions.LarkError as e:
        raise IRParseError(f"bad IR text: {e}") from None
