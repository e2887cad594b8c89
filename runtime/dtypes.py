"""The element types of the machine's memory: one table, used by the compiler and the runtime.

Every tensor in the memory plan has one of these types. The IR's dtype names
(``opmlc.ir.graph.DTYPES``), the engines' decoding of inputs and outputs, the range
checks of the quantizer, the fusion pass and the kernels' load / saturate choices are
all read from :data:`TABLE`; nothing else spells out a size or a range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DType:
    """One element type: ``name`` as in the IR text (``i32``), its numpy dtype, its size in
    bytes and, for the integer types, its value range ``lo..hi``."""

    name: str
    np: np.dtype
    kind: str  # "int" | "uint" | "float" | "bool"

    @property
    def size(self) -> int:
        return self.np.itemsize

    @property
    def signed(self) -> bool:
        return self.kind == "int"

    @property
    def is_int(self) -> bool:
        """Integer-valued (``int``, ``uint`` and ``bool``, stored as one byte 0 / 1)."""
        return self.kind != "float"

    @property
    def lo(self) -> int:
        if self.kind == "float":
            raise ValueError(f"{self.name} has no integer range")
        return int(np.iinfo(self.np).min) if self.kind != "bool" else 0

    @property
    def hi(self) -> int:
        if self.kind == "float":
            raise ValueError(f"{self.name} has no integer range")
        return int(np.iinfo(self.np).max) if self.kind != "bool" else 1


def _t(name: str, dt: type, kind: str) -> DType:
    return DType(name, np.dtype(dt), kind)


# The order is the IR text's (and so the print order of tables that list them).
TABLE: dict[str, DType] = {d.name: d for d in (
    _t("f64", np.float64, "float"),
    _t("f32", np.float32, "float"),
    _t("f16", np.float16, "float"),
    _t("i64", np.int64, "int"),
    _t("i32", np.int32, "int"),
    _t("i16", np.int16, "int"),
    _t("i8", np.int8, "int"),
    _t("u64", np.uint64, "uint"),
    _t("u32", np.uint32, "uint"),
    _t("u16", np.uint16, "uint"),
    _t("u8", np.uint8, "uint"),
    _t("bool", np.bool_, "bool"),
)}

FLOAT_DTYPES = frozenset(n for n, d in TABLE.items() if d.kind == "float")


def np_dtype(name: str) -> np.dtype:
    """The numpy dtype in which the engines hold a tensor of ``name`` (``bool`` as u8:
    memory holds one byte 0 / 1)."""
    d = TABLE[name]
    return np.dtype(np.uint8) if d.kind == "bool" else d.np


def int_range(name: str) -> tuple[int, int]:
    """``(lo, hi)`` of an integer dtype."""
    d = TABLE[name]
    return d.lo, d.hi


__all__ = ["DType", "FLOAT_DTYPES", "TABLE", "int_range", "np_dtype"]
