"""keccak256 and the Merkle memory (runtime/keccak.py, runtime/merkle.py).

Oracles: pycryptodome for keccak, ``merkle_root_of`` (a straight rebuild) and a
dict-based sparse rebuild (below) for the incremental tree.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opmlc_runtime import keccak as keccak_mod
from opmlc_runtime import merkle as merkle_mod
from opmlc_runtime.keccak import (
    hash_pairs,
    hash_pairs_reference,
    jit_available,
    keccak256,
    keccak256_64,
)
from opmlc_runtime.merkle import (
    Memory,
    merkle_root_of,
    root_from_proof,
    verify_proof,
    zero_hashes,
)

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def sparse_root(leaves: dict[int, bytes], depth: int) -> bytes:
    """Root of a tree whose leaves are ``leaves`` (index -> 32 bytes), zero elsewhere."""
    z = zero_hashes(depth)
    nodes = {i: v for i, v in leaves.items() if v != z[0]}
    for level in range(depth):
        nodes = {
            p: keccak256(nodes.get(2 * p, z[level]) + nodes.get(2 * p + 1, z[level]))
            for p in {j >> 1 for j in nodes}
        }
    return nodes.get(0, z[depth])


# --- keccak256 ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "digest"),
    [
        (b"", "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"),
        (b"abc", "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"),
        (
            b"The quick brown fox jumps over the lazy dog",
            "4d741b6f1eb29cb2a9b9911c82f56fa8d73b04959d3d9d222895df6c0b28aa15",
        ),
        # 64-byte inputs: the zero-subtree hashes Z[1], Z[2] used across Ethereum tooling.
        (bytes(64), "ad3228b676f7d3cd4284a5443f17f1962b36e491b30a40b2405849e597ba5fb5"),
        (
            bytes.fromhex("ad3228b676f7d3cd4284a5443f17f1962b36e491b30a40b2405849e597ba5fb5") * 2,
            "b4c11951957c6f8f642c4af61cd6b24640fec6dc7fc607ee8206a99e92410d30",
        ),
    ],
)
def test_keccak256_vectors(data: bytes, digest: str) -> None:
    assert keccak256(data).hex() == digest
    if len(data) == 64:
        assert keccak256_64(data[:32], data[32:]).hex() == digest
        pair = np.frombuffer(data, dtype=np.uint8).reshape(1, 64)
        assert hash_pairs(pair)[0].tobytes().hex() == digest


@pytest.mark.skipif(os.environ.get("OPMLC_KECCAK_JIT") == "0", reason="JIT disabled by env")
def test_jit_compiles() -> None:
    assert jit_available()


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 8, 9, 17, 255, 1001])
def test_hash_pairs_matches_pycryptodome(n: int) -> None:
    rng = np.random.default_rng(n)
    pairs = rng.integers(0, 256, (n, 64), dtype=np.uint8)
    expect = hash_pairs_reference(pairs)
    assert expect.shape == (n, 32)
    assert all(expect[i].tobytes() == keccak256(pairs[i].tobytes()) for i in range(n))
    assert np.array_equal(hash_pairs(pairs), expect)
    assert np.array_equal(hash_pairs(pairs.reshape(2 * n, 32)), expect)


def test_hash_pairs_threads_and_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPMLC_KECCAK_THREADS", "3")
    n = 3 * keccak_mod._MIN_PAIRS_PER_THREAD + 5  # split into 3 uneven chunks
    rng = np.random.default_rng(7)
    pairs = rng.integers(0, 256, (n, 64), dtype=np.uint8)
    out = np.zeros((n + 2, 32), dtype=np.uint8)
    got = hash_pairs(pairs, out=out[1:-1])
    assert got.base is out or got.base is out.base
    sample = rng.integers(0, n, 200)
    assert all(out[1 + i].tobytes() == keccak256(pairs[i].tobytes()) for i in sample)
    assert not out[0].any() and not out[-1].any()


def test_hash_pairs_noncontiguous_and_bad_shapes() -> None:
    rng = np.random.default_rng(3)
    wide = rng.integers(0, 256, (10, 128), dtype=np.uint8)
    view = wide[:, ::2]  # (10, 64), strided
    assert np.array_equal(hash_pairs(view), hash_pairs_reference(np.ascontiguousarray(view)))
    with pytest.raises(ValueError):
        hash_pairs(np.zeros((3, 32), dtype=np.uint8))
    with pytest.raises(ValueError):
        hash_pairs(np.zeros((2, 48), dtype=np.uint8))
    with pytest.raises(ValueError):
        hash_pairs(np.zeros((2, 64), dtype=np.int64))
    with pytest.raises(ValueError):
        hash_pairs(np.zeros((2, 64), dtype=np.uint8), out=np.zeros((3, 32), dtype=np.uint8))


@FAST
@given(st.lists(st.binary(min_size=64, max_size=64), max_size=20))
def test_hash_pairs_property(msgs: list[bytes]) -> None:
    arr = np.frombuffer(b"".join(msgs), dtype=np.uint8).reshape(-1, 64)
    got = hash_pairs(arr)
    assert [got[i].tobytes() for i in range(len(msgs))] == [keccak256(m) for m in msgs]


# --- zero hashes and proofs --------------------------------------------------------


def test_zero_hashes() -> None:
    z = zero_hashes(59)
    assert len(z) == 60 and z[0] == bytes(32)
    assert all(z[k + 1] == keccak256(z[k] + z[k]) for k in range(59))
    assert merkle_root_of(b"", 59) == z[59]
    assert Memory(59).root() == z[59]
    assert Memory(3).root() == merkle_root_of(bytes(256), 3) == z[3]


def _shadow_write(shadow: bytearray, addr: int, data: bytes) -> None:
    shadow[addr : addr + len(data)] = data


writes_d8 = st.lists(
    st.tuples(st.integers(0, (32 << 8) - 1), st.binary(min_size=1, max_size=80)).map(
        lambda t: (t[0], t[1][: (32 << 8) - t[0]])
    ),
    min_size=1,
    max_size=12,
)


@FAST
@given(writes_d8, st.data())
def test_proofs_verify_and_reject(writes: list[tuple[int, bytes]], data: st.DataObject) -> None:
    depth = 8
    mem = Memory(depth)
    for addr, blob in writes:
        mem.write(addr, blob)
    root = mem.root()
    for addr, _ in writes:
        i = addr // 32
        leaf, sib = mem.read_leaf(i), mem.proof(i)
        assert len(sib) == depth
        assert verify_proof(root, i, leaf, sib)
        assert root_from_proof(i, leaf, sib) == root
        # wrong leaf
        bad_leaf = bytes([leaf[0] ^ 1]) + leaf[1:]
        assert not verify_proof(root, i, bad_leaf, sib)
        # wrong sibling at a random level
        level = data.draw(st.integers(0, depth - 1))
        bad = list(sib)
        bad[level] = bytes([bad[level][0] ^ 0x80]) + bad[level][1:]
        assert not verify_proof(root, i, leaf, bad)
        # wrong index (one bit flipped): swaps the hash order at that level, so it
        # verifies only where the path node equals its sibling
        j = i ^ (1 << level)
        assert verify_proof(root, j, leaf, sib) == (sib[level] == mem.node(level, i >> level))
    assert not verify_proof(root, 1 << depth, bytes(32), mem.proof(0))  # index out of range
    assert not verify_proof(root, 0, bytes(32), mem.proof(0)[:-1])  # short proof
    assert not verify_proof(root, 0, bytes(31), mem.proof(0))  # short leaf


def test_proof_shape_and_siblings() -> None:
    mem = Memory(4)
    mem.write_leaf(5, b"\x11" * 32)
    mem.write_leaf(4, b"\x22" * 32)
    mem.write_leaf(0, b"\x33" * 32)
    z = zero_hashes(4)
    h = keccak256
    node_2_0 = h(h(b"\x33" * 32 + z[0]) + z[1])
    assert mem.proof(5) == [b"\x22" * 32, z[1], node_2_0, z[3]]
    assert mem.proof(5) == [mem.node(level, (5 >> level) ^ 1) for level in range(4)]
    assert verify_proof(mem.root(), 5, b"\x11" * 32, mem.proof(5))


# --- incremental updates == rebuild ------------------------------------------------

ops_d9 = st.lists(
    st.one_of(
        st.tuples(st.just("w"), st.integers(0, (32 << 9) - 1), st.binary(min_size=1, max_size=300)),
        st.tuples(st.just("root"), st.just(0), st.just(b"")),
        st.tuples(st.just("raw"), st.integers(0, 4095), st.binary(min_size=1, max_size=100)),
    ),
    max_size=25,
)


@FAST
@given(ops_d9)
def test_incremental_equals_rebuild(ops: list[tuple[str, int, bytes]]) -> None:
    depth = 9  # 16 KiB: starts at the 4 KiB minimum buffer, so writes also grow it
    mem = Memory(depth)
    shadow = bytearray(32 << depth)
    for kind, addr, blob in ops:
        blob = blob[: len(shadow) - addr]
        if kind == "w":
            mem.write(addr, blob)
            _shadow_write(shadow, addr, blob)
        elif kind == "raw":  # a native kernel writing the buffer in place
            blob = blob[: mem.allocated - addr]
            mem.buffer[addr : addr + len(blob)] = np.frombuffer(blob, dtype=np.uint8)
            mem.mark_dirty(addr, len(blob))
            _shadow_write(shadow, addr, blob)
        else:
            assert mem.root() == merkle_root_of(bytes(shadow), depth)
    assert mem.root() == merkle_root_of(bytes(shadow), depth)
    assert mem.read(0, len(shadow)) == bytes(shadow)


def test_incremental_wide_and_narrow_paths() -> None:
    """Many dirty leaves: wide in-place ranges plus gathered singles, several rounds."""
    depth = 12
    rng = np.random.default_rng(11)
    image = rng.integers(0, 256, 32 << 11, dtype=np.uint8).tobytes()
    mem = Memory(depth)
    mem.load_image(0, image)
    shadow = bytearray(32 << depth)
    shadow[: len(image)] = image
    assert mem.root() == merkle_root_of(bytes(shadow), depth)
    for _ in range(3):
        for i in rng.integers(0, 1 << depth, 40).tolist():  # scattered single leaves
            leaf = rng.bytes(32)
            mem.write_leaf(i, leaf)
            shadow[32 * i : 32 * i + 32] = leaf
        lo = int(rng.integers(0, 32 << depth - 1))
        blob = rng.bytes(32 * 300 + 5)  # one wide range
        mem.write(lo, blob)
        shadow[lo : lo + len(blob)] = blob
        assert mem.root() == merkle_root_of(bytes(shadow), depth)


def test_many_pending_writes_compact() -> None:
    depth = 9
    mem = Memory(depth)
    shadow = bytearray(32 << depth)
    rng = np.random.default_rng(5)
    n = merkle_mod._COMPACT_AT + 10
    addrs = rng.integers(0, (32 << depth) - 8, n).tolist()
    vals = rng.integers(0, 256, (n, 8), dtype=np.uint8)
    for a, v in zip(addrs, vals, strict=True):
        mem.write(a, v.tobytes())
        shadow[a : a + 8] = v.tobytes()
    assert len(mem._dirty) < n  # compacted
    assert mem.root() == merkle_root_of(bytes(shadow), depth)


# --- depth edge cases, sparse leaves, bounds ---------------------------------------


def test_depth_1() -> None:
    mem = Memory(1)
    assert mem.size == 64
    mem.write(40, b"\xff\xee")
    assert mem.root() == merkle_root_of(bytes(40) + b"\xff\xee", 1)
    assert mem.proof(1) == [mem.read_leaf(0)]
    assert verify_proof(mem.root(), 1, mem.read_leaf(1), mem.proof(1))
    with pytest.raises(ValueError):
        mem.write(63, b"ab")


def test_depth_59_top_address_sparse() -> None:
    depth = 59
    mem = Memory(depth)
    assert mem.size == 2**64
    top = 2**64 - 32
    leaf = bytes(range(32))
    mem.write(top, leaf)
    assert mem.allocated < 1 << 20  # stored sparsely, not by growing the buffer
    assert mem.read(top, 32) == leaf and mem.read(top - 8, 16) == bytes(8) + leaf[:8]
    z = zero_hashes(depth)
    i = 2**59 - 1
    assert mem.root() == root_from_proof(i, leaf, z[:depth]) == sparse_root({i: leaf}, depth)
    mem.write(8, b"low")
    expect = sparse_root({i: leaf, 0: bytes(8) + b"low" + bytes(21)}, depth)
    assert mem.root() == expect
    for k in (0, 1, i, i - 1, 2**58):
        assert verify_proof(expect, k, mem.read_leaf(k), mem.proof(k))
    with pytest.raises(ValueError):
        mem.write(2**64 - 1, b"ab")
    with pytest.raises(ValueError):
        mem.read(2**64, 1)


def test_sparse_leaves_absorbed_on_growth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(merkle_mod, "_MAX_GROW_STEP", 4096)
    depth = 20  # 32 MiB; a write at 16 MiB is far from the 4 KiB buffer: sparse
    mem = Memory(depth)
    leaves: dict[int, bytes] = {}
    for addr, blob in [(16 << 20, b"a" * 40), ((16 << 20) + 4096, b"b"), (3 << 20, b"c" * 33)]:
        mem.write(addr, blob)
        for k, byte in enumerate(blob):
            i, off = divmod(addr + k, 32)
            cur = bytearray(leaves.get(i, bytes(32)))
            cur[off] = byte
            leaves[i] = bytes(cur)
    assert mem.allocated <= 8192 and mem._sparse
    assert mem.root() == sparse_root(leaves, depth)
    mem.load_image(0, b"\x07" * (5 << 20))  # grows the buffer over the 3 MiB leaves
    for k in range(5 << 20 >> 5):
        leaves[k] = b"\x07" * 32
    leaves[(3 << 20) // 32] = b"\x07" * 32
    leaves[(3 << 20) // 32 + 1] = b"\x07" * 32
    assert mem.root() == sparse_root(leaves, depth)
    mem.reserve(32 << 20)  # everything dense now
    assert not mem._sparse and not mem._snodes
    assert mem.root() == sparse_root(leaves, depth)
    assert mem.read((16 << 20) + 4090, 8) == bytes(6) + b"b\x00"


def test_bounds() -> None:
    mem = Memory(6)
    with pytest.raises(ValueError):
        mem.write(2048, b"x")
    with pytest.raises(ValueError):
        mem.write(2040, bytes(9))
    with pytest.raises(ValueError):
        mem.write(-1, b"x")
    with pytest.raises(ValueError):
        mem.read(2000, 49)
    with pytest.raises(ValueError):
        mem.proof(64)
    with pytest.raises(ValueError):
        mem.write_leaf(0, bytes(31))
    with pytest.raises(ValueError):
        mem.mark_dirty(mem.allocated - 4, 8)
    with pytest.raises(ValueError):
        Memory(0)
    with pytest.raises(ValueError):
        Memory(60)
    mem.write(2047, b"x")  # last byte is fine
    assert mem.read(2047, 1) == b"x"


def test_reads_beyond_allocated_are_zero() -> None:
    mem = Memory(20)
    mem.write(0, b"\x01" * 10)
    assert mem.read(mem.allocated - 4, 16) == bytes(16)
    assert mem.read(5, 10) == b"\x01" * 5 + bytes(5)


def test_copy_is_independent() -> None:
    mem = Memory(10, size_hint=8192)
    mem.write(100, b"before")
    mem.write(2**14, b"far")
    r0 = mem.root()
    mem.write(200, b"pending")  # dirty at copy time
    twin = mem.copy()
    twin.write(100, b"AFTER!")
    twin.buffer[300] = 9
    twin.mark_dirty(300, 1)
    assert mem.read(100, 6) == b"before" and mem.buffer[300] == 0
    shadow = bytearray(32 << 10)
    shadow[100:106], shadow[200:207], shadow[2**14 : 2**14 + 3] = b"before", b"pending", b"far"
    assert mem.root() == merkle_root_of(bytes(shadow), 10) != r0
    shadow[100:106], shadow[300] = b"AFTER!", 9
    assert twin.root() == merkle_root_of(bytes(shadow), 10)


def test_load_image_numpy_and_offset() -> None:
    mem = Memory(16)
    words = np.arange(1000, dtype=np.int32)
    mem.load_image(4096 + 4, words)
    assert mem.read(4096 + 4, 8) == words[:2].tobytes()
    expect = bytes(4100) + words.tobytes()
    assert mem.root() == merkle_root_of(expect, 16)


def test_fallback_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keccak_mod, "_get_jit", lambda: None)
    pairs = np.random.default_rng(2).integers(0, 256, (33, 64), dtype=np.uint8)
    assert np.array_equal(hash_pairs(pairs), hash_pairs_reference(pairs))
    mem = Memory(8)
    mem.load_image(0, bytes(range(256)) * 20)
    assert mem.root() == merkle_root_of(bytes(range(256)) * 20, 8)


def test_wide_dirty_range_split_over_threads() -> None:
    """A dirty range wide enough for merkle_update_part (its levels split over the hashing
    threads, a barrier between levels) plus narrow ones: the pure-Python oracle's root."""
    from opmlc_runtime.merkle import Memory, merkle_root_of

    rng = np.random.default_rng(7)
    mem = Memory(16, size_hint=1 << 20)
    data = rng.integers(0, 256, 1 << 20, dtype=np.uint8)
    mem.load_image(0, data)
    mem.root()
    for a, n in ((96, (1 << 20) - 4096), (5, 40), (70_000, 3)):
        data[a:a + n] = rng.integers(0, 256, n, dtype=np.uint8)
        mem.buffer[a:a + n] = data[a:a + n]
        mem.mark_dirty(a, n)
    assert mem.root() == merkle_root_of(data.tobytes(), 16)


@FAST
@given(st.data())
def test_restore_ranges_is_exact(data: st.DataObject) -> None:
    """save_ranges / restore_ranges: the bytes of the ranges and the tree nodes wholly above
    them come back by copy; after arbitrary writes inside and outside the ranges (hashed
    or still pending) and a restore, the root is the oracle's for the memory as it stands,
    and a restore after the levels were reallocated is refused."""
    depth = 11
    size = 32 << depth
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    mem = Memory(depth, size_hint=size // 2)
    shadow = bytearray(size)
    image = rng.integers(0, 256, size // 2, dtype=np.uint8).tobytes()
    mem.load_image(0, image)
    shadow[: len(image)] = image
    spans = data.draw(st.lists(st.tuples(st.integers(0, size // 2 - 1), st.integers(0, 3000)),
                               min_size=1, max_size=3))
    ranges = [(a, min(n, size // 2 - a)) for a, n in spans]
    saved = mem.save_ranges(ranges)
    for _ in range(data.draw(st.integers(1, 3))):
        for _ in range(data.draw(st.integers(0, 6))):
            a = data.draw(st.integers(0, size // 2 - 1))
            blob = rng.bytes(data.draw(st.integers(1, 700)))[: size // 2 - a]
            mem.write(a, blob)
            shadow[a:a + len(blob)] = blob
        if data.draw(st.booleans()):
            assert mem.root() == merkle_root_of(bytes(shadow), depth)
        assert mem.restore_ranges(saved)
        for (a, n), b in zip(ranges, saved.bytes_, strict=True):  # in order, as restored
            shadow[a:a + n] = b.tobytes()
        assert mem.root() == merkle_root_of(bytes(shadow), depth)
    mem.reserve(size)  # reallocates the levels
    if mem.allocated > size // 2:
        assert not mem.restore_ranges(saved)


def test_native_levels_and_root_over_top() -> None:
    """native_levels hands out the dense levels only when nothing lies above them;
    root_over_top folds node(_top, 0) up with the zero hashes."""
    mem = Memory(30, size_hint=4096)
    mem.write(100, b"\x07" * 50)
    ptrs, top = mem.native_levels()
    assert len(ptrs) == top + 1 and top < 30
    assert mem.root_over_top(mem.node(top, 0)) == mem.root()
    mem.levels_changed()
    assert mem.root() == merkle_root_of(mem.read(0, 4096), 30)
    mem.write((32 << 30) - 32, b"\x01")  # far above the dense part: a sparse leaf
    assert mem.native_levels() is None
