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
"""

from __future__ import annotations

from collections.abc import Mapping
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


def dequantize(v: np.ndarray, q: Mapping[str, Any]) -> np.ndarray:
    """``float32((v - zero_point) * scale)``."""
    v = np.asarray(v)
    return ((v.astype(np.float64) - q["zero_point"]) * _scale(q, v.ndim)).astype(np.float32)


__all__ = ["dequantize", "quantize"]
