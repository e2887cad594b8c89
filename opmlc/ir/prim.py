"""The VM primitives on numpy arrays of 64-bit two's-complement words.

Every integer op of :mod:`opmlc.ir.intops` is defined as a composition of
these functions, and each of them equals one instruction of the VM
(:mod:`opmlc_runtime.isa`, the ``py`` column) lifted elementwise to ``int64``
arrays (a test checks this on random and edge values).  Arrays are ``int64``
and every result is reduced modulo 2^64 (numpy integer arithmetic wraps).

    add(a, b)   = (a + b) mod 2^64                    isa add   (norm:add-wrap)
    sub(a, b)   = (a - b) mod 2^64                    isa sub
    mul(a, b)   = (a * b) mod 2^64                    isa mul   (norm:mul-low)
    mulh(a, b)  = floor(a * b / 2^64)                 isa mulh  (norm:mulh-signed)
    sll(a, n)   = n >=u 64 ? 0 : (a << n) mod 2^64    isa sll
    sra(a, n)   = a >> min(n as u64, 63)              isa sra
    srl(a, n)   = n >=u 64 ? 0 : (a as u64) >> n      isa srl
    srar(a, n)  = n == 0 ? a : n >=u 64 ? 0 : floor(a / 2^n + 1/2)   isa srar (norm:srar-round)
    div(a, b)   = b == 0 ? 0 : trunc(a / b) mod 2^64  isa div   (norm:div-zero, norm:div-overflow)
    min, max    signed                                isa min / max
    sat(a, n)   = clamp(a, -2^(n-1), 2^(n-1) - 1)     isa sat   (norm:sat)
    satu(a, n)  = clamp(a, 0, 2^n - 1)                isa satu
    cmov(a, c, d) = c != 0 ? a : d                    isa cmov  (norm:cmov)
    slt(a, b)   = a < b ? 1 : 0                       isa slt
    and_, or_, xor                                    isa and / or / xor (bitwise)

Derived (static-length compositions, documented in spec/QUANT.md):

    isqrt(u)    = floor(sqrt(max(u, 0))), 32 fixed rounds of the bitwise method
"""

from __future__ import annotations

import numpy as np

from opmlc_runtime.dtypes import TABLE

I64 = np.int64
U64 = np.uint64
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1


def i64(x: object) -> np.ndarray:
    """``x`` as an int64 array (Python ints are reduced modulo 2^64 first)."""
    if isinstance(x, int):
        x = ((x + (1 << 63)) % (1 << 64)) - (1 << 63)
    return np.asarray(x).astype(I64, copy=False)


def _amount(n: object) -> np.ndarray:
    """A shift amount as the unsigned 64-bit value the VM sees (negative = huge)."""
    return i64(n).astype(U64)


def add(a: object, b: object) -> np.ndarray:
    return i64(a) + i64(b)


def sub(a: object, b: object) -> np.ndarray:
    return i64(a) - i64(b)


def mul(a: object, b: object) -> np.ndarray:
    with np.errstate(over="ignore"):
        return i64(a) * i64(b)


def mulh(a: object, b: object) -> np.ndarray:
    """High 64 bits of the exact signed 128-bit product (32-bit limb schoolbook)."""
    a, b = np.broadcast_arrays(i64(a), i64(b))
    m32 = np.uint64(0xFFFFFFFF)
    a_lo, b_lo = a.view(U64) & m32, b.view(U64) & m32
    a_hi, b_hi = a >> 32, b >> 32
    p_ll = a_lo * b_lo
    p_lh = a_lo.astype(I64) * b_hi  # |.| < 2^63
    p_hl = a_hi * b_lo.astype(I64)
    p_hh = a_hi * b_hi
    mid = (p_ll >> np.uint64(32)) + (p_lh.view(U64) & m32) + (p_hl.view(U64) & m32)
    return p_hh + (p_lh >> 32) + (p_hl >> 32) + (mid >> np.uint64(32)).astype(I64)


def sll(a: object, n: object) -> np.ndarray:
    a, n = np.broadcast_arrays(i64(a), _amount(n))
    big = n >= 64
    r = (a.view(U64) << np.where(big, 0, n).astype(U64)).view(I64)
    return np.where(big, 0, r).astype(I64)


def sra(a: object, n: object) -> np.ndarray:
    a, n = np.broadcast_arrays(i64(a), _amount(n))
    return a >> np.minimum(n, 63).astype(I64)


def srl(a: object, n: object) -> np.ndarray:
    a, n = np.broadcast_arrays(i64(a), _amount(n))
    big = n >= 64
    r = (a.view(U64) >> np.where(big, 0, n).astype(U64)).view(I64)
    return np.where(big, 0, r).astype(I64)


def and_(a: object, b: object) -> np.ndarray:
    return i64(a) & i64(b)


def or_(a: object, b: object) -> np.ndarray:
    return i64(a) | i64(b)


def xor(a: object, b: object) -> np.ndarray:
    return i64(a) ^ i64(b)


def srar(a: object, n: object) -> np.ndarray:
    """floor(a / 2^n + 1/2) computed as (a >> n) + ((a >> (n-1)) & 1); n = 0: a; n >=u 64: 0."""
    a, n = np.broadcast_arrays(i64(a), _amount(n))
    nz = np.clip(n, 1, 63).astype(I64)
    r = (a >> nz) + ((a >> (nz - 1)) & 1)
    return np.where(n == 0, a, np.where(n >= 64, 0, r)).astype(I64)


def div(a: object, b: object) -> np.ndarray:
    """Signed division truncating toward zero; x / 0 = 0; INT64_MIN / -1 = INT64_MIN."""
    a, b = np.broadcast_arrays(i64(a), i64(b))
    special = (a == INT64_MIN) & (b == -1)
    bb = np.where((b == 0) | special, 1, b)
    q = a // bb
    r = a - q * bb
    q = q + ((r != 0) & ((a < 0) != (bb < 0)))
    return np.where(b == 0, 0, np.where(special, INT64_MIN, q)).astype(I64)


def min_(a: object, b: object) -> np.ndarray:
    return np.minimum(i64(a), i64(b))


def max_(a: object, b: object) -> np.ndarray:
    return np.maximum(i64(a), i64(b))


def sat(a: object, n: int) -> np.ndarray:
    """Clamp to the signed n-bit range, n clamped to 1..64 (isa sat)."""
    n = min(max(int(n), 1), 64)
    return np.clip(i64(a), -(1 << (n - 1)), (1 << (n - 1)) - 1).astype(I64)


def satu(a: object, n: int) -> np.ndarray:
    """Clamp to [0, 2^n - 1], n clamped to 0..63 (isa satu)."""
    n = min(max(int(n), 0), 63)
    return np.clip(i64(a), 0, (1 << n) - 1).astype(I64)


def cmov(a: object, c: object, d: object) -> np.ndarray:
    return np.where(i64(c) != 0, i64(a), i64(d)).astype(I64)


def slt(a: object, b: object) -> np.ndarray:
    return (i64(a) < i64(b)).astype(I64)


# ---------------------------------------------------------------- derived sequences


def isqrt(u: object) -> np.ndarray:
    """floor(sqrt(max(u, 0))) by the bitwise (digit-by-digit) method, 32 fixed rounds::

        u = max(u, 0); r = 0; b = 2^62
        repeat 32 times:
            t = r + b; c = slt(u, t) == 0          # u >= t
            u = c ? u - t : u;  r = sra(r, 1) + (c ? b : 0);  b = sra(b, 2)

    All intermediates stay in [0, 2^63), so no step wraps.
    """
    x = max_(u, 0)
    r = np.zeros_like(x)
    b = np.int64(1 << 62)
    for _ in range(32):
        t = r + b
        c = x >= t
        x = np.where(c, x - t, x)
        r = (r >> 1) + np.where(c, b, 0)
        b = b >> 2
    return r.astype(I64)


def saturate(a: object, dtype: str) -> np.ndarray:
    """sat / satu to the range of IR integer dtype ``dtype`` (opmlc_runtime.dtypes), result
    in that dtype."""
    d = TABLE.get(dtype)
    if d is None or d.kind not in ("int", "uint") or (d.kind == "uint" and d.size == 8):
        raise ValueError(f"saturate: {dtype!r} is not an integer IR dtype")
    bits = 8 * d.size
    return (sat(a, bits) if d.signed else satu(a, bits)).astype(d.np)


__all__ = [
    "INT64_MAX", "INT64_MIN", "add", "sub", "mul", "mulh", "sll", "sra", "srl", "srar", "div",
    "and_", "or_", "xor",
    "min_", "max_", "sat", "satu", "cmov", "slt", "isqrt", "saturate", "i64",
]
