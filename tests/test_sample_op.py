"""q.sample (spec/QUANT.md 3.3, norm:sample): the static-loop formulation equals a plain
sort-based sampler written here from the definition, and ref == native == VM bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from backend_util import check_graph
from hypothesis import given, settings
from hypothesis import strategies as st

from opmlc.ir.graph import Graph, Node, TensorType
from opmlc.ir.intops import lut_interp, q_sample, splitmix64

M64 = (1 << 64) - 1


def _splitmix(seed: int, counter: int) -> int:
    """SplitMix64 on Python ints (the well-known stream: seed 0 starts 0xe220a8397b1dcdaf)."""
    z = (seed + (counter + 1) * 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def _table(scale: float, temperature: float) -> tuple[np.ndarray, int, int]:
    span = max(int(math.ceil(16 * temperature / scale)), 1)
    k = max(0, math.ceil(math.log2(span / 2048)))
    n = -(-span // (1 << k))
    lo = -n * (1 << k)
    knots = (lo + np.arange(n + 1, dtype=np.int64) * (1 << k)) * scale / temperature
    t = np.floor(np.exp(knots) * 2.0**16 + 0.5).astype(np.int64)
    t[0] = 0
    return t, lo, k


def _plain_sample(row: list[int], table: np.ndarray, lo: int, k: int, top_k: int,
                  seed: int, counter: int) -> int:
    """Sort by (value desc, index asc), keep the first K, weight by the table, draw."""
    V = len(row)
    K = V if top_k <= 0 or top_k >= V else top_k
    order = sorted(range(V), key=lambda v: (-row[v], v))[:K]
    m = max(row)
    w = [0] * V
    for v in order:
        w[v] = int(lut_interp(np.array([row[v] - m]), table, lo, k)[0])
    R = (_splitmix(seed % (1 << 64), counter) >> 1) % sum(w)
    acc = 0
    for v in range(V):
        acc += w[v]
        if acc > R:
            return v
    raise AssertionError("unreachable")


def test_splitmix64_known_stream() -> None:
    assert int(splitmix64(0, 0)) % (1 << 64) == 0xE220A8397B1DCDAF
    for seed in (0, 1, 2**63 - 1, -7):
        for c in (0, 1, 5, 1000):
            assert int(splitmix64(seed, c)) % (1 << 64) == _splitmix(seed % (1 << 64), c)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(-40, 40), min_size=1, max_size=40), st.integers(0, 45),
       st.integers(-(1 << 63), (1 << 63) - 1), st.integers(0, 20),
       st.sampled_from([0.05, 0.3, 1.0]))
def test_sample_equals_sort_based_sampler(row: list[int], top_k: int, seed: int,
                                          counter: int, temp: float) -> None:
    table, lo, k = _table(0.25, temp)
    got = q_sample(np.array([row], np.int32), table, np.array([seed], np.int64), lo=lo,
                   step_bits=k, top_k=top_k, counter=counter)
    assert got.shape == (1,) and got.dtype == np.int64
    assert int(got[0]) == _plain_sample(row, table, lo, k, top_k, seed, counter)


def test_top_k_one_is_greedy() -> None:
    rng = np.random.default_rng(0)
    table, lo, k = _table(0.1, 1.0)
    for s in range(20):
        row = rng.integers(-100, 100, (1, 30)).astype(np.int32)
        y = q_sample(row, table, np.array([s], np.int64), lo=lo, step_bits=k, top_k=1,
                     counter=s)
        assert int(y[0]) == int(np.argmax(row[0]))


def test_draws_follow_the_weights() -> None:
    """Over many counters the empirical frequencies match the softmax of the codes."""
    row = np.array([[10, 9, 7, 0, -30]], np.int32)
    scale, temp = 0.5, 1.0
    table, lo, k = _table(scale, temp)
    n = 4000
    draws = [int(q_sample(row, table, np.array([123], np.int64), lo=lo, step_bits=k,
                          top_k=0, counter=c)[0]) for c in range(n)]
    freq = np.bincount(draws, minlength=5) / n
    p = np.exp((row[0] - row[0].max()) * scale / temp)
    p /= p.sum()
    np.testing.assert_allclose(freq, p, atol=0.03)


@pytest.mark.parametrize("dtype,V,top_k,rows", [("i8", 7, 3, 1), ("i32", 67, 0, 2),
                                                 ("i16", 33, 5, 3), ("i32", 5, 9, 1)])
def test_sample_engines_bit_exact(dtype: str, V: int, top_k: int, rows: int) -> None:
    rng = np.random.default_rng(V)
    table, lo, k = _table(0.2, 0.7)
    ty = TensorType(dtype, (rows, V))
    g = Graph(["x", "seed"], ["y"], {"tab": table},
              [Node("q.sample", ("x", "tab", "seed"), ("y",),
                    {"lo": lo, "step_bits": k, "top_k": top_k, "counter": 3})],
              {"x": ty, "seed": TensorType("i64", (1,)), "tab": TensorType.of(table),
               "y": TensorType("i64", (rows,))})
    lim = {"i8": 100, "i16": 3000, "i32": 60}[dtype]
    for s in range(3):
        x = rng.integers(-lim, lim, (rows, V)).astype(ty.np_dtype)
        x[0, :2] = x[0, 0]  # a tie at the top
        check_graph(g, {"x": x, "seed": np.array([s * 7919 - 3], np.int64)})
