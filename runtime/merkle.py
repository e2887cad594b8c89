"""Merkle-committed VM memory: a binary keccak256 tree over 32-byte leaves.

Definitions (depth D, 1 <= D <= 59; size = 32 << D bytes; leaf i = bytes [32i, 32i + 32)):

    node(0, i)     = leaf i                    (raw 32 bytes, not hashed)
    node(l + 1, j) = keccak256(node(l, 2j) || node(l, 2j + 1))
    root           = node(D, 0)
    Z[0] = 0^32,  Z[l + 1] = keccak256(Z[l] || Z[l])   (node of an all-zero subtree)

A proof for leaf i is siblings[l] = node(l, (i >> l) ^ 1) for l in [0, D), bottom-up;
bit l of i set means the path node at level l is a right child.

Storage. Addresses [0, allocated) live in one flat, growable numpy buffer (``buffer``)
that native kernels may read and write in place (then call ``mark_dirty``); the interior
levels over it are (n, 32) numpy arrays. Leaves far above the dense part (e.g. a write
at the top of a 2**64-byte memory) go to a sparse dict, with their interior nodes in a
dict too. Everything not stored is zero, and a node over zeros is Z[l]. ``root()``
rehashes only the paths of dirty leaves, one batched ``hash_pairs`` per level.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .keccak import hash_pairs, keccak256_64, path_update_fn

__all__ = [
    "MAX_DEPTH",
    "Memory",
    "SavedRanges",
    "merkle_root_of",
    "root_from_proof",
    "verify_proof",
    "zero_hashes",
]

MAX_DEPTH = 59
LEAF = 32
# Smallest dense allocation (bytes): keeps the number of dense levels >= 1.
_MIN_ALLOC = 4096
# A write this far past the dense part grows it, further goes sparse: growth by at most
# max(x2, +_MAX_GROW_STEP) keeps the buffer near what is actually used.
_MAX_GROW_STEP = 64 << 20
# Dirty ranges at least this wide are hashed in place (no gather copy).
_WIDE = 64
# At most this many dirty leaves: update path by path with one-off hashes (no numpy setup).
_FEW = 8
# Compact the pending dirty list when it gets this long.
_COMPACT_AT = 1 << 16
# At most this many merged dirty ranges: one native path update per range.
_PATHS = 16


@lru_cache(maxsize=1)
def _zeros_table() -> tuple[bytes, ...]:
    z = [bytes(LEAF)]
    for _ in range(MAX_DEPTH + 5):
        z.append(keccak256_64(z[-1], z[-1]))
    return tuple(z)


def zero_hashes(depth: int) -> list[bytes]:
    """[Z[0], ..., Z[depth]]: Z[0] = 0^32, Z[l + 1] = keccak256(Z[l] || Z[l])."""
    if not 0 <= depth <= MAX_DEPTH + 4:
        raise ValueError(f"depth must be in [0, {MAX_DEPTH}], got {depth}")
    return list(_zeros_table()[: depth + 1])


def root_from_proof(index: int, leaf: bytes, siblings: list[bytes]) -> bytes:
    """node(D, 0) recomputed from leaf i and its D siblings, D = len(siblings).

    h = leaf; for l in [0, D): h = H(s_l || h) if bit l of index else H(h || s_l).
    """
    depth = len(siblings)
    if len(leaf) != LEAF or any(len(s) != LEAF for s in siblings):
        raise ValueError("leaf and siblings must be 32 bytes each")
    if not 0 <= index < (1 << depth):
        raise ValueError(f"leaf index {index} out of range for depth {depth}")
    h = bytes(leaf)
    for level, sib in enumerate(siblings):
        h = keccak256_64(sib, h) if (index >> level) & 1 else keccak256_64(h, sib)
    return h


def verify_proof(root: bytes, index: int, leaf: bytes, siblings: list[bytes]) -> bool:
    """root == root_from_proof(index, leaf, siblings); False for a malformed proof."""
    try:
        return root_from_proof(index, leaf, siblings) == bytes(root)
    except ValueError:
        return False


def merkle_root_of(data: bytes, depth: int) -> bytes:
    """Root of a memory of depth ``depth`` holding ``data`` at address 0, zeros elsewhere.

    A straight rebuild with one-off hashes: slow, obviously correct; the test oracle.
    """
    if not 1 <= depth <= MAX_DEPTH:
        raise ValueError(f"depth must be in [1, {MAX_DEPTH}], got {depth}")
    if len(data) > (LEAF << depth):
        raise ValueError(f"{len(data)} bytes do not fit a memory of depth {depth}")
    z = zero_hashes(depth)
    data = bytes(data) + bytes(-len(data) % LEAF)
    nodes = [data[k : k + LEAF] for k in range(0, len(data), LEAF)]
    for level in range(depth):
        if len(nodes) % 2:
            nodes.append(z[level])
        nodes = [keccak256_64(nodes[k], nodes[k + 1]) for k in range(0, len(nodes), 2)]
    return nodes[0] if nodes else z[depth]


def _merge_ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of half-open ranges [lo_k, hi_k) as sorted, disjoint, non-adjacent ranges."""
    order = np.argsort(lo, kind="stable")
    lo, hi = lo[order], np.maximum.accumulate(hi[order])
    start = np.empty(len(lo), dtype=bool)
    start[:1] = True
    start[1:] = lo[1:] > hi[:-1]
    end = np.empty_like(start)
    end[:-1] = start[1:]
    end[-1:] = True
    return lo[start], hi[end]


def _expand(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Concatenation of arange(lo_k, hi_k) over k (sorted when the ranges are)."""
    lens = hi - lo
    total = int(lens.sum())
    starts = np.cumsum(lens) - lens
    return np.repeat(lo - starts, lens) + np.arange(total, dtype=np.int64)


class Memory:
    """Byte-addressed memory of ``size = 32 << depth`` bytes, committed by a Merkle root.

    ``read``/``write`` are byte-granular; ``root()`` and ``proof()`` bring the tree up
    to date first. Not thread-safe.
    """

    def __init__(self, depth: int, size_hint: int = 0) -> None:
        if not 1 <= depth <= MAX_DEPTH:
            raise ValueError(f"memory depth must be in [1, {MAX_DEPTH}], got {depth}")
        self._depth = depth
        self._size = LEAF << depth
        self._z = zero_hashes(depth)
        alloc = min(self._size, max(_MIN_ALLOC, -(-int(size_hint) // 64) * 64))
        self._buf = np.zeros(alloc, dtype=np.uint8)
        self._levels: list[np.ndarray] = []
        self._build_levels()
        self._dirty: list[tuple[int, int]] = []  # dense leaf ranges [lo, hi)
        self._sparse: dict[int, bytes] = {}  # leaf index -> leaf, index >= 2**_top
        self._snodes: dict[tuple[int, int], bytes] = {}  # (level, j) -> node, off the dense part
        self._sparse_dirty: set[int] = set()
        self._root: bytes | None = None
        self._upper_stale = False  # node(_top, 0) changed outside _update (native hashing)

    # --- properties -----------------------------------------------------------------

    @property
    def depth(self) -> int:
        """D: the tree has 2**D leaves."""
        return self._depth

    @property
    def size(self) -> int:
        """32 << D bytes (a Python int; 2**64 at D = 59)."""
        return self._size

    @property
    def allocated(self) -> int:
        """Bytes [0, allocated) are in ``buffer``; a multiple of 64."""
        return len(self._buf)

    @property
    def buffer(self) -> np.ndarray:
        """The dense backing store, uint8[allocated], byte a = address a.

        Write it in place, then ``mark_dirty``. Growth (a write past ``allocated``,
        ``reserve``) replaces the array: fetch it again after those.
        """
        return self._buf

    @property
    def _top(self) -> int:
        """Level of the single node over the dense part: it spans leaves [0, 2**_top)."""
        return len(self._levels) - 1

    # --- dense storage --------------------------------------------------------------

    def _build_levels(self) -> None:
        """Allocate levels over the buffer: rows_0 = leaves, rows_{l+1} = rows_l / 2
        padded to even with Z[l+1] (so every parent has two stored children), until 1."""
        old = self._levels
        levels = [self._buf.reshape(-1, LEAF)]
        level = 0
        while len(levels[-1]) > 1:
            level += 1
            rows = len(levels[-1]) // 2
            rows += rows % 2 if rows > 1 else 0
            arr = np.empty((rows, LEAF), dtype=np.uint8)
            keep = len(old[level]) if level < len(old) else 0
            if keep:
                arr[:keep] = old[level]  # existing nodes keep their values
            arr[keep:] = np.frombuffer(self._z[level], dtype=np.uint8)
            levels.append(arr)
        self._levels = levels

    def reserve(self, end: int) -> None:
        """Make the dense buffer cover addresses [0, end) (rounded up to 64 bytes)."""
        if not 0 <= end <= self._size:
            raise ValueError(f"reserve({end}) outside memory of {self._size} bytes")
        if end > len(self._buf):
            self._grow(end)

    def _grow(self, end: int) -> None:
        """Grow the buffer to cover [0, end): by at least max(x2, +_MAX_GROW_STEP)
        (amortised copies), and far enough to take in every sparse leaf that falls
        under the new dense span, so the dense part stays a prefix [0, allocated)."""
        old_len = len(self._buf)
        new_len = max(-(-end // 64) * 64, min(2 * old_len, old_len + _MAX_GROW_STEP))
        new_len = min(new_len, self._size)
        span = 1 << ((new_len // LEAF - 1).bit_length())  # leaves under node(top, 0)
        moved = sorted(i for i in self._sparse if i < span)
        if moved:
            new_len = max(new_len, -(-(moved[-1] + 1) * LEAF // 64) * 64)  # span unchanged
        buf = np.zeros(new_len, dtype=np.uint8)
        buf[:old_len] = self._buf
        self._buf = buf
        self._build_levels()
        # Existing nodes keep their values (new leaves are zero), but node 0 of each new
        # level must be computed: dirtying leaf 0 rehashes that path.
        self._dirty.append((0, 1))
        self._root = None
        for i in moved:
            self._buf[i * LEAF : (i + 1) * LEAF] = np.frombuffer(self._sparse.pop(i), np.uint8)
            self._sparse_dirty.discard(i)
            self._dirty.append((i, i + 1))
        # Dict nodes now inside the dense span are superseded by the level arrays.
        for key in [k for k in self._snodes if self._is_dense(*k)]:
            del self._snodes[key]

    def _is_dense(self, level: int, j: int) -> bool:
        return level <= self._top and j < (1 << (self._top - level))

    # --- byte and leaf access -------------------------------------------------------

    def _check(self, addr: int, n: int) -> None:
        if addr < 0 or n < 0 or addr + n > self._size:
            raise ValueError(
                f"access [{addr:#x}, {addr + n:#x}) outside memory of {self._size:#x} bytes"
            )

    def read(self, addr: int, n: int) -> bytes:
        """memory[addr : addr + n]; ValueError outside [0, size)."""
        self._check(addr, n)
        out = bytearray(n)
        dense_end = min(addr + n, len(self._buf))
        if addr < dense_end:
            out[: dense_end - addr] = self._buf[addr:dense_end].tobytes()
        if self._sparse and addr + n > len(self._buf):
            first = max(addr, len(self._buf)) // LEAF
            for i in range(first, (addr + n - 1) // LEAF + 1):
                leaf = self._sparse.get(i)
                if leaf is not None:
                    lo, hi = max(addr, i * LEAF), min(addr + n, (i + 1) * LEAF)
                    out[lo - addr : hi - addr] = leaf[lo - i * LEAF : hi - i * LEAF]
        return bytes(out)

    def write(self, addr: int, data: bytes) -> None:
        """memory[addr : addr + len(data)] = data; ValueError outside [0, size)."""
        n = len(data)
        self._check(addr, n)
        if n == 0:
            return
        end = addr + n
        if end > len(self._buf):
            near = end <= max(2 * len(self._buf), len(self._buf) + _MAX_GROW_STEP)
            if near or addr < (LEAF << self._top):
                self._grow(end)
            else:
                self._write_sparse(addr, bytes(data))
                return
        src = data if isinstance(data, np.ndarray) else np.frombuffer(data, dtype=np.uint8)
        self._buf[addr:end] = src.reshape(-1)
        self._mark(addr // LEAF, (end - 1) // LEAF + 1)

    def _write_sparse(self, addr: int, data: bytes) -> None:
        end = addr + len(data)
        for i in range(addr // LEAF, (end - 1) // LEAF + 1):
            base = i * LEAF
            lo, hi = max(addr, base), min(end, base + LEAF)
            leaf = bytearray(self._sparse.get(i, self._z[0]))
            leaf[lo - base : hi - base] = data[lo - addr : hi - addr]
            self._sparse[i] = bytes(leaf)
            self._sparse_dirty.add(i)
        self._root = None

    def load_image(self, addr: int, data: bytes | np.ndarray) -> None:
        """Bulk initial load: memory[addr : addr + len(data)] = data (dense storage)."""
        n = len(data) if not isinstance(data, np.ndarray) else data.nbytes
        self._check(addr, n)
        if addr + n > len(self._buf):
            self.reserve(-(-(addr + n) // 64) * 64)
        src = data.view(np.uint8).reshape(-1) if isinstance(data, np.ndarray) else data
        self.write(addr, src)

    def read_leaf(self, i: int) -> bytes:
        """Leaf i = memory[32i : 32i + 32]."""
        return self.read(i * LEAF, LEAF)

    def write_leaf(self, i: int, leaf: bytes) -> None:
        """memory[32i : 32i + 32] = leaf."""
        if len(leaf) != LEAF:
            raise ValueError(f"a leaf is 32 bytes, got {len(leaf)}")
        self.write(i * LEAF, leaf)

    def mark_dirty(self, addr: int, nbytes: int) -> None:
        """Declare buffer[addr : addr + nbytes] written in place (leaves to rehash)."""
        if addr < 0 or nbytes < 0 or addr + nbytes > len(self._buf):
            raise ValueError(
                f"mark_dirty [{addr:#x}, {addr + nbytes:#x}) outside the buffer "
                f"of {len(self._buf):#x} bytes"
            )
        if nbytes:
            self._mark(addr // LEAF, (addr + nbytes - 1) // LEAF + 1)

    def _mark(self, lo: int, hi: int) -> None:
        self._dirty.append((lo, hi))
        self._root = None
        if len(self._dirty) >= _COMPACT_AT:
            lo_a, hi_a = _merge_ranges(*np.array(self._dirty, dtype=np.int64).T)
            self._dirty = list(zip(lo_a.tolist(), hi_a.tolist(), strict=True))

    # --- the tree -------------------------------------------------------------------

    def node(self, level: int, j: int) -> bytes:
        """node(level, j) of the up-to-date tree (level 0 = leaves)."""
        if not (0 <= level <= self._depth and 0 <= j < (1 << (self._depth - level))):
            raise ValueError(f"no node ({level}, {j}) in a tree of depth {self._depth}")
        self._update()
        return self._node(level, j)

    def _node(self, level: int, j: int) -> bytes:
        if self._is_dense(level, j):
            rows = self._levels[level]
            return rows[j].tobytes() if j < len(rows) else self._z[level]
        if level == 0:
            return self._sparse.get(j, self._z[0])
        return self._snodes.get((level, j), self._z[level])

    def root(self) -> bytes:
        """node(D, 0) of the current memory."""
        self._update()
        return self._root

    def proof(self, i: int) -> list[bytes]:
        """[node(l, (i >> l) ^ 1) for l in [0, D)]: the siblings of leaf i, bottom-up."""
        if not 0 <= i < (1 << self._depth):
            raise ValueError(f"leaf index {i} out of range for depth {self._depth}")
        self._update()
        return [self._node(level, (i >> level) ^ 1) for level in range(self._depth)]

    def _update(self) -> None:
        if self._root is not None:
            return
        dense_changed = bool(self._dirty) or self._upper_stale
        self._upper_stale = False
        if self._dirty:
            ranges, self._dirty = self._dirty, []
            if sum(hi - lo for lo, hi in ranges) <= _FEW:
                self._update_dense_few(ranges)
            else:
                lo, hi = np.array(ranges, dtype=np.int64).T
                lo, hi = _merge_ranges(lo, hi)
                if len(lo) > _PATHS or not self._update_dense_paths(lo, hi):
                    self._update_dense(lo, hi)
        self._update_upper(dense_changed)
        self._root = self._node(self._depth, 0)

    def _update_dense_few(self, ranges: list[tuple[int, int]]) -> None:
        """Rehash the paths of a handful of dirty leaves with one-off hashes."""
        dirty = {i for lo, hi in ranges for i in range(lo, hi)}
        for level in range(self._top):
            src, dst = self._levels[level], self._levels[level + 1]
            dirty = {j >> 1 for j in dirty}
            for p in dirty:
                h = keccak256_64(src[2 * p].tobytes(), src[2 * p + 1].tobytes())
                dst[p] = np.frombuffer(h, dtype=np.uint8)

    def _update_dense_paths(self, lo: np.ndarray, hi: np.ndarray) -> bool:
        """Rehash levels 1.._top over a few merged dirty ranges, range by range, in one
        native call each (keccak.path_update_fn: split over the hashing threads while a
        level is wide). A node above two ranges is rehashed by the later one from final
        children. False when the JIT is unavailable."""
        fn = path_update_fn()
        if fn is None:
            return False
        ptrs = self._level_ptrs()
        for a, b in zip(lo.tolist(), hi.tolist(), strict=True):
            fn(ptrs.ctypes.data, self._top, a, b)
        return True

    def _level_ptrs(self) -> np.ndarray:
        """Addresses of the level arrays (rebuilt when the levels are)."""
        ptrs = getattr(self, "_ptrs", None)
        if ptrs is None or ptrs[1] is not self._levels:
            arr = np.array([lv.ctypes.data for lv in self._levels], dtype=np.int64)
            self._ptrs = ptrs = (arr, self._levels)
        return ptrs[0]

    def _update_dense(self, lo: np.ndarray, hi: np.ndarray) -> None:
        """Rehash levels 1.._top over dirty leaf ranges [lo_k, hi_k), one level at a time.

        Parents of [lo, hi) are [lo >> 1, (hi + 1) >> 1). Wide ranges are hashed in place
        (contiguous children -> contiguous parents); narrow ones are gathered into one batch.
        """
        for level in range(self._top):
            src, dst = self._levels[level], self._levels[level + 1]
            pairs = src.reshape(-1, 2 * LEAF)  # rows are even: pair p = children of parent p
            lo, hi = _merge_ranges(lo >> 1, (hi + 1) >> 1)
            wide = (hi - lo) >= _WIDE
            for a, b in zip(lo[wide].tolist(), hi[wide].tolist(), strict=True):
                hash_pairs(pairs[a:b], out=dst[a:b])
            if not wide.all():
                idx = _expand(lo[~wide], hi[~wide])
                dst[idx] = hash_pairs(pairs[idx])

    def _update_upper(self, dense_changed: bool) -> None:
        """Rehash the dict-stored nodes: paths of dirty sparse leaves and, if the dense
        part changed, the path of node(_top, 0) up to the root."""
        dirty, self._sparse_dirty = self._sparse_dirty, set()
        for level in range(self._depth):
            if level == self._top and dense_changed:
                dirty.add(0)
            if not dirty:
                continue
            parents = sorted({j >> 1 for j in dirty})
            if len(parents) == 1:
                p = parents[0]
                h = keccak256_64(self._node(level, 2 * p), self._node(level, 2 * p + 1))
                self._snodes[(level + 1, p)] = h
            else:
                joined = b"".join(
                    self._node(level, 2 * p) + self._node(level, 2 * p + 1) for p in parents
                )
                hashes = hash_pairs(np.frombuffer(joined, dtype=np.uint8).reshape(-1, 64))
                for p, h in zip(parents, hashes, strict=True):
                    self._snodes[(level + 1, p)] = h.tobytes()
            dirty = set(parents)

    def copy(self) -> Memory:
        """An independent deep copy (numpy copies of buffer and levels)."""
        new = Memory.__new__(Memory)
        new._depth, new._size, new._z = self._depth, self._size, self._z
        new._buf = self._buf.copy()
        new._levels = [new._buf.reshape(-1, LEAF)] + [a.copy() for a in self._levels[1:]]
        new._dirty = list(self._dirty)
        new._sparse = dict(self._sparse)
        new._snodes = dict(self._snodes)
        new._sparse_dirty = set(self._sparse_dirty)
        new._root = self._root
        new._upper_stale = self._upper_stale
        return new

    # --- native hashing and saved subtrees -----------------------------------------

    def native_levels(self, rehashed: list[tuple[int, int]] = ()
                      ) -> tuple[np.ndarray, int] | None:
        """(int64 addresses of the dense level arrays, _top) with the tree up to date, for
        native code that rewrites buffer bytes and rehashes their paths itself (keccak's
        merkle_update_part) and then calls ``levels_changed``; None (nothing changed) when
        a sparse leaf exists (the nodes above _top would not be Z's). Pending dirty leaf
        ranges wholly inside one of ``rehashed`` ([lo, hi) leaf indices, which the caller
        promises to rehash before the next root) are dropped, not hashed twice."""
        if self._sparse or self._snodes and any(j for _, j in self._snodes):
            return None
        if rehashed:
            self._dirty = [(lo, hi) for lo, hi in self._dirty
                           if not any(a <= lo and hi <= b for a, b in rehashed)]
            self._root = None
        self._update()
        return self._level_ptrs(), self._top

    def levels_changed(self) -> None:
        """The dense levels were brought up to date outside ``_update``: the path above
        node(_top, 0) is rehashed by the next ``root``."""
        self._root = None
        self._upper_stale = True

    def root_over_top(self, top_node: bytes) -> bytes:
        """node(D, 0) of a memory whose dense part's top node is ``top_node`` and which
        has nothing above it (``native_levels`` not None): fold with Z[_top .. D-1]."""
        h = bytes(top_node)
        for level in range(self._top, self._depth):
            h = keccak256_64(h, self._z[level])
        return h

    def level_rows(self) -> list[int]:
        """Rows of each dense level, level 0 (the leaves) first."""
        return [len(lv) for lv in self._levels]

    def level_arrays(self) -> list[np.ndarray]:
        """The dense levels as (rows, 32) uint8 arrays, level 0 (a view of the buffer)
        first; read-only by convention (bring the tree up to date with ``root`` first)."""
        return list(self._levels)

    def adopt_levels(self, levels: list[np.ndarray]) -> None:
        """Take ``levels`` (levels 1.._top, C-contiguous writable (rows, 32) uint8 arrays
        shaped as ``level_rows()[1:]``) as the tree over the buffer as it stands, which
        the caller promises they hash (treecache.load_tree checks a sample): pending
        dirty leaves are dropped, the path above _top is rehashed on the next root."""
        rows = self.level_rows()[1:]
        if [lv.shape for lv in levels] != [(r, LEAF) for r in rows] or not all(
                lv.dtype == np.uint8 and lv.flags.c_contiguous and lv.flags.writeable
                for lv in levels):
            raise ValueError("adopt_levels: levels do not match this memory's tree")
        if self._sparse:
            raise ValueError("adopt_levels: the memory has sparse leaves")
        self._levels = [self._levels[0], *levels]
        self._dirty = []
        self.levels_changed()

    def save_ranges(self, ranges: list[tuple[int, int]]) -> SavedRanges:
        """The bytes of ``ranges`` ((addr, nbytes) inside the buffer) and the tree nodes
        above them, taken now (the tree is brought up to date first), for
        ``restore_ranges``."""
        self._update()
        return SavedRanges(self, ranges)

    def restore_ranges(self, saved: SavedRanges) -> bool:
        """Put back the bytes of ``saved``'s ranges and every tree node whose leaves lie
        wholly inside one of them; only the two boundary paths of each range are left
        to rehash (and dirty ranges wholly inside are dropped), so a restore costs a
        copy, not a rehash. Exact whatever changed outside the ranges. False (nothing
        done) when the levels were reallocated since the save."""
        if saved.levels is not self._levels:
            return False
        buf = self._buf
        for (a, n), data in zip(saved.ranges, saved.bytes_, strict=True):
            buf[a:a + n] = data
        for level, rows in enumerate(saved.nodes, start=1):
            dst = self._levels[level]
            for (lo, hi), data in zip(saved.spans[level], rows, strict=True):
                dst[lo:hi] = data
        inside = saved.leaf_spans
        keep = [(lo, hi) for lo, hi in self._dirty
                if not any(a <= lo and hi <= b for a, b in inside)]
        self._dirty = keep
        for a, n in saved.ranges:
            if n:
                self._dirty.append((a // LEAF, a // LEAF + 1))
                self._dirty.append(((a + n - 1) // LEAF, (a + n - 1) // LEAF + 1))
        self._root = None
        return True


class SavedRanges:
    """Byte ranges of a Memory and the level rows wholly above them (Memory.save_ranges)."""

    def __init__(self, mem: Memory, ranges: list[tuple[int, int]]) -> None:
        self.levels = mem._levels  # noqa: SLF001 - valid while these arrays are the tree
        self.ranges = [(int(a), int(n)) for a, n in ranges]
        for a, n in self.ranges:
            if a < 0 or n < 0 or a + n > mem.allocated:
                raise ValueError(f"range [{a:#x}, {a + n:#x}) outside the buffer")
        buf = mem.buffer
        self.bytes_ = [buf[a:a + n].copy() for a, n in self.ranges]
        # leaves wholly inside each range, and per level the rows wholly above them
        self.leaf_spans = [(-(-a // LEAF), (a + n) // LEAF) for a, n in self.ranges]
        self.spans: list[list[tuple[int, int]]] = [[]]
        self.nodes: list[list[np.ndarray]] = []
        for level in range(1, len(self.levels)):
            spans = [(-(-lo >> level), hi >> level) for lo, hi in self.leaf_spans]
            spans = [(lo, hi) if lo < hi else (0, 0) for lo, hi in spans]
            self.spans.append(spans)
            self.nodes.append([self.levels[level][lo:hi].copy() for lo, hi in spans])
