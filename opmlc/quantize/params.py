"""Quantization parameters, the two schemes' policies, and real -> (multiplier, shift).

A quantized value ``q`` of a real tensor ``x`` satisfies ``x ~= (q - zero_point) * scale``.
Scheme ``fixed``: ``scale = 2^-frac_bits``, zero point 0, activations ``i32`` holding
nominally ``act_bits`` significant bits (the calibrated absmax maps below
``2^(act_bits-1)``, the rest of the word is headroom), weights ``i16``; with
``act_dtype="i16"`` the activations are ``i16`` words of FIXED_ACT_BITS["i16"] = 13 bits
(3 bits, 8x, of headroom).
Scheme ``int8``: activations ``i8`` with an affine (scale, zero point) from the
calibrated [min, max] (widened to contain 0), weights ``i8`` symmetric per output channel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from opmlc_runtime import edge

TINY = 1e-12
FRAC_CLAMP = (-120, 60)  # fixed scheme: frac bits are clamped to this range
WIDE_HEADROOM = 2.0  # int8 scheme: a 16-bit activation's range is the calibrated one x 2
FIXED_ACT_BITS = {"i32": 24, "i16": 13}  # fixed scheme: significant bits per activation word


@dataclass(frozen=True)
class QParams:
    """real = (q - zero_point) * scale; ``scale`` is a tuple along ``axis`` when per-channel."""

    dtype: str
    scale: float | tuple[float, ...]
    zero_point: int = 0
    frac_bits: int | None = None
    axis: int | None = None

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """q = sat_T(floor(x / scale + 1/2) + zero_point): the runtime's edge rule
        (:func:`opmlc_runtime.edge.quantize`; float, not part of the exact integer
        semantics)."""
        return edge.quantize(x, self.to_dict())

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """real = float32((q - zero_point) * scale) (:func:`opmlc_runtime.edge.dequantize`)."""
        return edge.dequantize(q, self.to_dict())

    def to_dict(self) -> dict:
        return {"dtype": self.dtype, "scale": self.scale, "zero_point": self.zero_point,
                "frac_bits": self.frac_bits, "axis": self.axis}


class FixedPolicy:
    """Power-of-two scales: frac_bits = floor(log2((2^(bits-1) - 1) / absmax))."""

    name = "fixed"

    def __init__(self, act_bits: int = 24, weight_bits: int = 16,
                 act_dtype: str = "i32") -> None:
        self.act_bits = act_bits
        self.weight_bits = weight_bits
        self.act_dtype = act_dtype

    @staticmethod
    def _frac(absmax: float, bits: int) -> int:
        absmax = max(float(absmax), TINY)
        lo, hi = FRAC_CLAMP
        return int(min(max(math.floor(math.log2(((1 << (bits - 1)) - 1) / absmax)), lo), hi))

    def act(self, lo: float, hi: float) -> QParams:
        f = self._frac(max(abs(lo), abs(hi)), self.act_bits)
        return QParams(self.act_dtype, 2.0 ** -f, 0, f)

    def act_of(self, name: str, lo: float, hi: float) -> QParams:
        """The params of float value ``name`` with range [lo, hi] (one width for all)."""
        return self.act(lo, hi)

    def weight(self, w: np.ndarray, axis: int) -> tuple[QParams, np.ndarray]:
        f = self._frac(float(np.max(np.abs(w))) if w.size else 0.0, self.weight_bits)
        p = QParams("i16" if self.weight_bits <= 16 else "i32", 2.0 ** -f, 0, f)
        return p, p.quantize(w)


class Int8Policy:
    """Affine int8 activations, symmetric per-channel int8 weights (scale = absmax / 127).

    ``wide``: float values kept at 16 bits (the mixed-precision modes of
    :mod:`opmlc.quantize.mixed`): affine i16 by the same rule over 65535 steps, on the
    calibrated range widened ``WIDE_HEADROOM`` times (one of the 8 extra bits buys room for
    values past the calibration, which an i8 value would clip).
    """

    name = "int8"
    act_dtype = "i8"

    def __init__(self, wide: frozenset[str] = frozenset()) -> None:
        self.wide = frozenset(wide)

    def act(self, lo: float, hi: float, bits: int = 8) -> QParams:
        lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
        if bits > 8:
            lo, hi = lo * WIDE_HEADROOM, hi * WIDE_HEADROOM
        if hi - lo < TINY:
            hi = lo + TINY
        qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        scale = (hi - lo) / float(qmax - qmin)
        zp = int(min(max(round(qmin - lo / scale), qmin), qmax))
        return QParams(f"i{bits}", scale, zp)

    def act_of(self, name: str, lo: float, hi: float) -> QParams:
        """The params of float value ``name``: i16 when it is in ``wide``, else i8."""
        return self.act(lo, hi, 16 if name in self.wide else 8)

    def weight(self, w: np.ndarray, axis: int) -> tuple[QParams, np.ndarray]:
        axis = axis % w.ndim
        red = tuple(i for i in range(w.ndim) if i != axis)
        absmax = np.max(np.abs(w), axis=red) if w.size else np.zeros(w.shape[axis])
        scale = np.maximum(absmax.astype(np.float64), TINY) / 127.0
        p = QParams("i8", tuple(float(s) for s in scale), 0, None, axis)
        q = np.clip(p.quantize(w).astype(np.int64), -127, 127).astype(np.int8)
        return p, q


def _pow2_exponent(r: float) -> int | None:
    if r <= 0:
        return None
    m, e = math.frexp(r)
    return e - 1 if m == 0.5 else None


def mult_shift(r: np.ndarray | float, in_bits: int = 31) -> tuple[np.ndarray, int]:
    """Integer multipliers m and one shift s with m * 2^-s ~= r (elementwise).

    Exact powers of two give exact (m, s) (the fixed scheme's requantizations, where m
    is 1 or 2^e).  Otherwise s is the largest shift in [0, 62] with max|m| < 2^b,
    b = min(31, 62 - in_bits), so that |x * m| < 2^62 for |x| < 2^in_bits.
    """
    r = np.asarray(r, np.float64)
    flat = r.reshape(-1)
    nz = flat[flat != 0]
    if nz.size == 0:
        return np.zeros(r.shape, np.int64), 0
    exps = [_pow2_exponent(abs(v)) for v in nz]
    if all(e is not None for e in exps):
        s = max(0, -min(exps))  # type: ignore[type-var]
        if s <= 62 and max(exps) + s <= 62:  # type: ignore[operator]
            return np.rint(r * 2.0**s).astype(np.int64), int(s)
    b = max(min(31, 62 - int(in_bits)), 2)
    s = (b - 1) - math.floor(math.log2(float(np.max(np.abs(nz)))))
    s = int(min(max(s, 0), 62))
    m = np.rint(r * 2.0**s)
    m = np.clip(m, -(2.0**62), 2.0**62)
    return m.astype(np.int64), s


def bits_of(x: float) -> int:
    """Bits needed for magnitude x (>= 1)."""
    return max(1, math.ceil(math.log2(max(float(x), 1.0) + 1)))


__all__ = ["FIXED_ACT_BITS", "QParams", "FixedPolicy", "Int8Policy", "mult_shift", "bits_of"]
