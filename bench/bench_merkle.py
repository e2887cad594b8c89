"""Throughput of the Merkle memory and batched keccak256 (runtime/keccak.py, runtime/merkle.py).

    .venv/bin/python bench/bench_merkle.py

Prints: hash_pairs throughput (JIT, 1 thread and all threads) vs pycryptodome per call;
a bulk build of a 64 MiB memory image (leaf hashes per second) against loading its tree
from the disk cache (runtime/treecache.py, with its checks); the incremental cost of
1000 random dirty leaves at depth 30; restoring 2 MiB of it by copy (save_ranges /
restore_ranges) against rehashing them; and copy() of that memory.
"""

from __future__ import annotations

import os
import time

import numpy as np

from opmlc_runtime.keccak import hash_pairs, jit_available, keccak256
from opmlc_runtime.merkle import Memory


def _best(fn, repeat: int = 3) -> float:
    """Best wall time of ``repeat`` runs (first-touch page faults and JIT excluded)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_hash_pairs(rng: np.random.Generator) -> None:
    t = time.perf_counter()
    assert jit_available(), "llvmlite JIT unavailable: numbers below would be the fallback"
    print(f"JIT compile (once per process):           {time.perf_counter() - t:8.3f} s")
    n = 1 << 20
    pairs = rng.integers(0, 256, (n, 64), dtype=np.uint8)
    out = np.empty((n, 32), dtype=np.uint8)
    msgs = [pairs[i].tobytes() for i in range(20_000)]
    ref = len(msgs) / _best(lambda: [keccak256(m) for m in msgs], 2)
    print(f"pycryptodome, one call per hash:          {ref / 1e6:8.3f} M hashes/s")
    saved = os.environ.get("OPMLC_KECCAK_THREADS")
    try:
        for threads in ("1", str(os.cpu_count() or 1)):
            os.environ["OPMLC_KECCAK_THREADS"] = threads
            rate = n / _best(lambda: hash_pairs(pairs, out=out))
            print(
                f"hash_pairs JIT, {threads} thread(s), N=2^20:      "
                f"{rate / 1e6:8.3f} M hashes/s  ({rate / ref:5.0f}x pycryptodome)"
            )
    finally:
        if saved is None:
            os.environ.pop("OPMLC_KECCAK_THREADS", None)
        else:
            os.environ["OPMLC_KECCAK_THREADS"] = saved


def bench_bulk_build(rng: np.random.Generator) -> Memory:
    image = rng.integers(0, 256, 64 << 20, dtype=np.uint8)
    leaves = image.nbytes // 32
    mems: list[Memory] = []

    def build() -> None:
        mem = Memory(30, size_hint=image.nbytes)
        mem.load_image(0, image)
        mem.root()
        mems.append(mem)

    dt = _best(build)
    print(
        f"bulk build 64 MiB ({leaves} leaves, depth 30): {dt:8.3f} s = "
        f"{leaves / dt / 1e6:.2f} M leaf hashes/s (load + {leaves - 1} hashes)"
    )
    bench_tree_cache(image)
    return mems[-1]


def bench_tree_cache(image: np.ndarray) -> None:
    """The image's tree hashed vs read back from the tree cache (a temporary folder)."""
    import hashlib
    import tempfile

    from opmlc_runtime import treecache

    digest = hashlib.sha256(image.tobytes()).digest()

    def fresh() -> Memory:
        mem = Memory(30, size_hint=image.nbytes)
        mem.load_image(0, image)
        return mem

    saved = os.environ.get("OPMLC_CACHE_DIR")
    with tempfile.TemporaryDirectory() as d:
        os.environ["OPMLC_CACHE_DIR"] = d
        try:
            treecache.save_tree(fresh(), digest)
            mems = [fresh() for _ in range(3)]
            hashed = _best(lambda: mems.pop().root())
            mems = [fresh() for _ in range(3)]
            loaded = _best(lambda: (treecache.load_tree(mems[-1], digest), mems.pop().root()))
        finally:
            if saved is None:
                os.environ.pop("OPMLC_CACHE_DIR", None)
            else:
                os.environ["OPMLC_CACHE_DIR"] = saved
    print(f"image tree 64 MiB: hashed {hashed * 1e3:8.1f} ms, from the tree cache "
          f"{loaded * 1e3:8.1f} ms (checked)")


def bench_incremental(mem: Memory, rng: np.random.Generator) -> None:
    n_leaves = mem.allocated // 32

    def dirty_1000() -> None:
        for i in rng.integers(0, n_leaves, 1000).tolist():
            mem.write_leaf(i, rng.bytes(32))

    def timed_root() -> float:
        dirty_1000()
        t = time.perf_counter()
        mem.root()
        return time.perf_counter() - t

    dt = min(timed_root() for _ in range(5))
    print(f"incremental root, 1000 random dirty leaves, depth 30: {dt * 1e3:8.2f} ms")
    t = time.perf_counter()
    for _ in range(100):
        mem.write(int(rng.integers(0, mem.allocated - 8)), b"\x01" * 8)
        mem.root()
    print(f"write 8 bytes + root (one leaf), depth 30:  {(time.perf_counter() - t) * 1e4:8.1f} us")
    t = time.perf_counter()
    for _ in range(100):
        mem.proof(int(rng.integers(0, n_leaves)))
    print(f"proof (30 siblings):                        {(time.perf_counter() - t) * 1e4:8.1f} us")
    span = [(mem.allocated // 2, 2 << 20)]
    mem.root()
    saved = mem.save_ranges(span)

    def rehash() -> None:
        mem.mark_dirty(*span[0])
        mem.root()

    def restore() -> None:
        mem.write(span[0][0] + 100, b"\x02" * 50)
        mem.restore_ranges(saved)
        mem.root()

    print(f"2 MiB range back to a saved state: rehashed {_best(rehash) * 1e3:6.2f} ms, "
          f"restored {_best(restore) * 1e3:6.2f} ms")
    dt = _best(mem.copy)
    print(f"copy() of the 64 MiB memory:                {dt * 1e3:8.1f} ms")


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    bench_hash_pairs(rng)
    mem = bench_bulk_build(rng)
    bench_incremental(mem, rng)
