"""The graph IR: typed values with static shapes, constants, and a topological node list.

A :class:`Graph` is a single SSA function::

    graph(inputs) -> outputs:
        const  c_j : T_j = <array>          (side table ``consts``)
        y_1.. : T  = op(x_1, ...) {attrs}   (``nodes``, in topological order)

Every value name is defined exactly once (graph input, constant, or node output),
and ``types`` maps every name to its :class:`TensorType`.  Shapes are fully static.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from opmlc_runtime.dtypes import FLOAT_DTYPES, TABLE

# IR dtype name -> numpy dtype.  Short names appear in the text form (``f32[1,3]``).  The
# names, sizes and ranges are the machine's (one table: opmlc_runtime.dtypes).
DTYPES: dict[str, np.dtype] = {name: d.np for name, d in TABLE.items()}
_NP_TO_IR = {v: k for k, v in DTYPES.items()}
__all__ = ["DTYPES", "FLOAT_DTYPES", "Graph", "Node", "TensorType", "const_digest", "dtype_name"]


def dtype_name(dt: Any) -> str:
    """IR dtype name of a numpy dtype (``np.float32 -> "f32"``)."""
    try:
        return _NP_TO_IR[np.dtype(dt)]
    except KeyError:
        raise TypeError(f"dtype {np.dtype(dt)} has no IR equivalent") from None


@dataclass(frozen=True)
class TensorType:
    """A tensor type: element dtype (IR name, e.g. ``"f32"``) and a static shape."""

    dtype: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise TypeError(f"unknown IR dtype {self.dtype!r}")
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))

    @property
    def np_dtype(self) -> np.dtype:
        return DTYPES[self.dtype]

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @staticmethod
    def of(array: np.ndarray) -> TensorType:
        """The type of a numpy array."""
        return TensorType(dtype_name(array.dtype), tuple(array.shape))

    def __str__(self) -> str:
        return f"{self.dtype}[{','.join(map(str, self.shape))}]"


@dataclass
class Node:
    """One equation ``outputs = op(inputs) {attrs}``; attrs are ints, floats, strs or lists."""

    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.inputs = tuple(self.inputs)
        self.outputs = tuple(self.outputs)
        self.attrs = {k: _norm_attr(v) for k, v in self.attrs.items()}


def _norm_attr(v: Any) -> Any:
    """Canonical attribute value: python int/float/str, or a list of them."""
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_norm_attr(x) for x in v]
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, str):
        return v
    raise TypeError(f"attribute value {v!r} is not an int, float, str or list")


def const_digest(array: np.ndarray) -> str:
    """Content hash of a constant: sha256 over dtype, shape and C-order bytes (16 hex digits)."""
    h = hashlib.sha256()
    h.update(str(TensorType.of(array)).encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:16]


@dataclass
class Graph:
    """An IR function.

    ``inputs``: graph input names (their types are in ``types``);
    ``outputs``: names returned; ``consts``: name -> array (read-only by convention);
    ``nodes``: topological list; ``types``: name -> TensorType for every value.
    """

    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    types: dict[str, TensorType] = field(default_factory=dict)
    name: str = "main"

    def type_of(self, name: str) -> TensorType:
        return self.types[name]

    def producers(self) -> dict[str, Node]:
        """Value name -> node that defines it (graph inputs and consts excluded)."""
        return {o: n for n in self.nodes for o in n.outputs}

    def users(self) -> dict[str, list[Node]]:
        """Value name -> nodes that read it, in node order."""
        out: dict[str, list[Node]] = {}
        for n in self.nodes:
            for i in n.inputs:
                out.setdefault(i, []).append(n)
        return out

    def fresh_name(self, base: str) -> str:
        """A value name not yet used in the graph, derived from ``base``."""
        if base not in self.types:
            return base
        k = 1
        while f"{base}.{k}" in self.types:
            k += 1
        return f"{base}.{k}"

    def add_const(self, base: str, array: np.ndarray) -> str:
        """Add a constant under a fresh name; returns the name."""
        name = self.fresh_name(base)
        self.consts[name] = array
        self.types[name] = TensorType.of(array)
        return name

    def remove_dead(self) -> None:
        """Drop nodes and constants that do not contribute to any output."""
        live = set(self.outputs)
        kept = []
        for n in reversed(self.nodes):
            if any(o in live for o in n.outputs):
                kept.append(n)
                live.update(n.inputs)
        self.nodes = kept[::-1]
        live.update(self.inputs)
        self.consts = {k: v for k, v in self.consts.items() if k in live}
        defined = set(self.inputs) | set(self.consts) | {o for n in self.nodes for o in n.outputs}
        self.types = {k: v for k, v in self.types.items() if k in defined}

    def __eq__(self, other: object) -> bool:
        """Structural equality; constants compare by type and content."""
        if not isinstance(other, Graph):
            return NotImplemented
        if (self.name, self.inputs, self.outputs, self.nodes, self.types) != (
            other.name, other.inputs, other.outputs, other.nodes, other.types,
        ):
            return False
        if self.consts.keys() != other.consts.keys():
            return False
        return all(
            const_digest(v) == const_digest(other.consts[k]) for k, v in self.consts.items()
        )

    __hash__ = None  # type: ignore[assignment]
