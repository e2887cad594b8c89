"""The edge rule: float <-> integer at the model's inputs and outputs (spec/QUANT.md).

One implementation, used by the runtime to write a float input into S0 and read
dequantized outputs, and by the compiler to quantize calibration data and weights
(``opmlc.quantize.params.QParams`` calls it). A verifier node recomputes S0 from the
artifact and the float input with this module alone, so a disagreement between two
copies of the rule would be a dispute nobody could settle: there is one copy.

Parameters ``q`` are the artifact's ``quant`` dict: ``dtype`` (an integer dtype of
:mod:`opmlc_runtime.dtypes`), ``scale`` (a float, or one per index of ``axis``),
``zero_point`` (an int) and ``axis`` (``None`` for per-tensor).

    quantize:   q = sat_T(floor(x / scale + 1/2) + zero_point)      (float64 arithmetic)
                NaN gives zero_point, +-inf saturate
    dequantize: x = float32((q - zero_point) * scale)                (float64 arithmetic)

A model *input* holding a value the rule cannot represent (NaN, +-inf, or one whose
``floor(x / scale + 1/2) + zero_point`` lies outside T by more than one code) is refused by
:func:`quantize_input` with an :class:`EdgeError` naming the input and counting the bad
values, unless the caller asks to saturate (``saturate=True``, the CLI's
``--saturate``): then :func:`quantize` is applied as written above and the count is
reported (spec/QUANT.md §2.1). Weights and calibration data go through
:func:`quantize` directly (the compiler has already checked them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from opmlc_runtime.dtypes import np_dtype


def _scale(q: Mapping[str, Any], ndim: int) -> np.ndarray:
    """The scale as an array that broadcasts along ``axis`` of an ``ndim``-d tensor."""
    s = np.asarray(q["scale"], np.float64)
    if s.ndim and q.get("axis") is not None:
        shp = [1] * ndim
        shp[q["axis"]] = -1
        s = s.reshape(shp)
    return s


def quantize(x: np.ndarray, q: Mapping[str, Any]) -> np.ndarray:
    """``sat_T(floor(x / scale + 1/2) + zero_point)`` as an array of dtype T."""
    v = np.array(x, np.float64)  # a copy: the passes below run in place
    s = _scale(q, v.ndim)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        v = np.divide(v, s, out=v if v.shape == np.broadcast_shapes(v.shape, s.shape)
                      else None)
        v += 0.5
    np.floor(v, out=v)
    zp = int(q["zero_point"])
    dt = np_dtype(q["dtype"])
    info = np.iinfo(dt)
    if dt.itemsize <= 4:  # clamp in float: every bound and sum is an exact integer
        np.nan_to_num(v, copy=False, nan=0.0)
        np.clip(v, info.min - zp, info.max - zp, out=v)
        if zp:
            v += zp
        return v.astype(dt)
    np.nan_to_num(v, copy=False, nan=0.0, posinf=2.0**62, neginf=-(2.0**62))
    np.clip(v, -(2.0**62), 2.0**62, out=v)
    return np.clip(v.astype(np.int64) + zp, info.min, info.max).astype(dt)


class EdgeError(ValueError):
    """A float input holds values the model cannot represent (and saturation was not asked)."""


class EdgeWarning(UserWarning):
    """Values of a float input were saturated (``saturate=True``)."""


@dataclass(frozen=True)
class EdgeReport:
    """How many elements of a float input the edge rule cannot represent, by kind."""

    size: int
    nan: int = 0
    posinf: int = 0
    neginf: int = 0
    above: int = 0  # finite, floor(x / scale + 1/2) + zero_point > max of T + 1
    below: int = 0  # finite, < min of T - 1

    @property
    def bad(self) -> int:
        return self.nan + self.posinf + self.neginf + self.above + self.below

    def describe(self) -> str:
        """e.g. ``"3 of 64 values are not representable (2 NaN, 1 above the range)"``."""
        parts = [f"{n} {what}" for n, what in (
            (self.nan, "NaN"), (self.posinf, "+inf"), (self.neginf, "-inf"),
            (self.above, "above the range"), (self.below, "below the range")) if n]
        return (f"{self.bad} of {self.size} value{'s' if self.size != 1 else ''} "
                f"{'is' if self.bad == 1 else 'are'} not representable ({', '.join(parts)})")


def real_range(q: Mapping[str, Any]) -> tuple[float, float]:
    """The real values ``[lo, hi]`` that quantize into T without saturating (for a
    per-channel scale, those of the smallest scale)."""
    s = float(np.min(np.abs(np.asarray(q["scale"], np.float64))))
    lo, hi = _code_bounds(q)
    return (lo - 0.5) * s, (hi + 0.5) * s


def _code_bounds(q: Mapping[str, Any]) -> tuple[float, float]:
    """Bounds on ``floor(x / scale + 1/2)`` (before adding the zero point) beyond which an
    input value is refused: T's range (64-bit types: +-2^62, where :func:`quantize` clamps
    first) widened by one code, so that the rounding of an affine zero point never refuses
    a value at the calibrated min / max (it is clamped by at most one step)."""
    info = np.iinfo(np_dtype(q["dtype"]))
    zp = int(q["zero_point"])
    lo, hi = float(int(info.min) - zp), float(int(info.max) - zp)
    if info.bits == 64:
        lo, hi = max(lo, -(2.0**62)), min(hi, 2.0**62)
    return lo - 1, hi + 1


def check(x: np.ndarray, q: Mapping[str, Any]) -> EdgeReport:
    """Count the elements of ``x`` that :func:`quantize` cannot represent exactly."""
    v = np.asarray(x, np.float64)
    nan, pinf, ninf = (int(np.count_nonzero(m)) for m in (
        np.isnan(v), np.isposinf(v), np.isneginf(v)))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        c = np.floor(v / _scale(q, v.ndim) + 0.5)
        lo, hi = _code_bounds(q)
        fin = np.isfinite(v)
        above = int(np.count_nonzero(fin & (c > hi)))
        below = int(np.count_nonzero(fin & (c < lo)))
    return EdgeReport(int(v.size), nan, pinf, ninf, above, below)


def quantize_input(x: np.ndarray, q: Mapping[str, Any], name: str,
                   saturate: bool = False) -> tuple[np.ndarray, EdgeReport]:
    """:func:`quantize` for a model input, with the policy of spec/QUANT.md §2.1: values
    the rule cannot represent raise :class:`EdgeError` (naming ``name`` and the counts)
    unless ``saturate``; the report says how many were saturated."""
    rep = check(x, q)
    if rep.bad and not saturate:
        lo, hi = real_range(q)
        raise EdgeError(f"input {name!r}: {rep.describe()}; the input's quantized range "
                        f"is about [{lo:.6g}, {hi:.6g}] ({q['dtype']}); fix the data, or "
                        "pass --saturate (saturate=True) to clamp them (NaN -> zero point; "
                        "spec/QUANT.md 2.1)")
    return quantize(x, q), rep


def dequantize(v: np.ndarray, q: Mapping[str, Any]) -> np.ndarray:
    """``float32((v - zero_point) * scale)``."""
    v = np.asarray(v)
    return ((v.astype(np.float64) - q["zero_point"]) * _scale(q, v.ndim)).astype(np.float32)


__all__ = ["EdgeError", "EdgeReport", "EdgeWarning", "check", "dequantize", "quantize",
           "quantize_input", "real_range"]
