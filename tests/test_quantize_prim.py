"""The numpy VM primitives equal the ISA table's Python semantics (opmlc_runtime.isa)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opmlc.ir import prim as P
from opmlc_runtime import isa

M = 1 << 64
EDGE = [0, 1, -1, 2, -2, 63, 64, 65, 127, -128, (1 << 31) - 1, -(1 << 31), (1 << 32) + 5,
        (1 << 62), -(1 << 62), (1 << 63) - 1, -(1 << 63), (1 << 63) - 2, -(1 << 63) + 1]


def _u(v: int) -> int:
    return v % M


def _s(v: int) -> int:
    return isa.s64(v % M)


def _pairs(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    r1 = rng.integers(-(1 << 63), (1 << 63) - 1, n, dtype=np.int64).tolist()
    r2 = rng.integers(-(1 << 63), (1 << 63) - 1, n, dtype=np.int64).tolist()
    a = [x for x in EDGE for _ in EDGE] + r1
    b = [y for _ in EDGE for y in EDGE] + r2
    return np.array(a, np.int64), np.array(b, np.int64)


BINARY = {"add": P.add, "sub": P.sub, "mul": P.mul, "mulh": P.mulh, "div": P.div,
          "min": P.min_, "max": P.max_, "slt": P.slt, "sll": P.sll, "sra": P.sra,
          "srar": P.srar, "srl": P.srl, "and": P.and_, "or": P.or_, "xor": P.xor}


@pytest.mark.parametrize("mnemonic", sorted(BINARY))
def test_binary_primitive_equals_isa(mnemonic: str) -> None:
    a, b = _pairs()
    if mnemonic in ("sll", "sra", "srl", "srar"):  # shift amounts: small, edge, and huge/negative
        b = np.concatenate([np.arange(-3, 70, dtype=np.int64).repeat(5)[: a.size], b])[: a.size]
    got = BINARY[mnemonic](a, b)
    py = isa.BY_MNEMONIC[mnemonic].py
    want = [_s(py(_u(int(x)), _u(int(y)))) for x, y in zip(a, b, strict=True)]
    assert got.dtype == np.int64
    assert got.tolist() == want


@pytest.mark.parametrize("mnemonic,fn", [("sat", P.sat), ("satu", P.satu)])
def test_saturation_equals_isa(mnemonic: str, fn) -> None:  # noqa: ANN001
    a, _ = _pairs(100)
    py = isa.BY_MNEMONIC[mnemonic].py
    for n in (-1, 0, 1, 7, 8, 16, 32, 63, 64, 70):
        want = [_s(py(_u(int(x)), _u(n))) for x in a]
        assert fn(a, n).tolist() == want


def test_cmov_equals_isa() -> None:
    a, b = _pairs(50)
    d = a[::-1].copy()
    py = isa.BY_MNEMONIC["cmov"].py
    want = [_s(py(_u(int(x)), _u(int(c)), _u(int(o)))) for x, c, o in zip(a, b, d, strict=True)]
    assert P.cmov(a, b, d).tolist() == want


@settings(max_examples=200, deadline=None)
@given(st.integers(-(1 << 63), (1 << 63) - 1), st.integers(-(1 << 63), (1 << 63) - 1))
def test_mulh_srar_div_hypothesis(x: int, y: int) -> None:
    a, b = np.array([x], np.int64), np.array([y], np.int64)
    assert int(P.mulh(a, b)[0]) == (x * y) >> 64
    assert int(P.div(a, b)[0]) == _s(isa.BY_MNEMONIC["div"].py(_u(x), _u(y)))
    n = abs(y) % 70
    assert int(P.srar(a, n)[0]) == _s(isa.BY_MNEMONIC["srar"].py(_u(x), n))


def test_isqrt_is_floor_sqrt() -> None:
    rng = np.random.default_rng(1)
    u = np.concatenate([np.arange(0, 300), rng.integers(0, (1 << 63) - 1, 300, dtype=np.int64),
                        np.array([(1 << 63) - 1, (1 << 62), -5, -(1 << 63)])]).astype(np.int64)
    got = P.isqrt(u).tolist()
    assert got == [math.isqrt(max(int(v), 0)) for v in u]
