"""A disk cache of the Merkle tree over an artifact's memory image, beside the JIT cache.

The tree of S0's memory before the inputs (the image at address 0, zeros up to the
planned size) is the same for every run of an artifact; hashing it costs one keccak per
32 bytes of image (about 30 ms for a 26 MB image on 2 threads). It is written once per
artifact and host to ``native.cache_dir()/tree-<key>.bin``:

    key      sha256("opmlc-tree" | version | depth | allocated | sha256(image))
             (the image's digest as checked when the artifact was read: no rehash)
    file     "OPMLCTRE" | u32 version | u32 levels L | u64 depth | u64 allocated
             | u64 rows[1..L] | 32-byte key | u64 sum | u64 xor | node(top, 0)
             | level 1 rows | ... | level L rows

A hit is never trusted blindly: the header must name this key, depth, size and level
shapes; the file must have exactly the size they imply; the 64-bit wrapping sum and the
xor of every 8-byte word of the levels must match (any torn write or flipped bit
changes them); and a sample of nodes at every level (level 1 from the image's own
leaves) must be the keccak of its children. Anything else is a miss: the tree is
hashed and the entry rewritten (atomically). ``OPMLC_JIT_CACHE=0`` turns it off too.
"""

from __future__ import annotations

import hashlib
import os
import struct

import numpy as np

from opmlc_runtime.keccak import hash_pairs
from opmlc_runtime.merkle import LEAF, Memory

VERSION = 1
MAGIC = b"OPMLCTRE"
_HEAD = struct.Struct("<8sIIQQ")
_SAMPLES = 32  # nodes checked per level on a hit


def tree_key(image_digest: bytes, depth: int, allocated: int) -> bytes:
    """The cache key of the tree of an image (by its sha256) in a memory of this shape."""
    return hashlib.sha256(b"opmlc-tree\0" + struct.pack("<IQQ", VERSION, depth, allocated)
                          + image_digest).digest()


def _path(key: bytes):
    from opmlc_runtime.native import cache_dir

    d = cache_dir()
    return None if d is None else d / f"tree-{key.hex()}.bin"


def _checks(words: np.ndarray) -> tuple[int, int]:
    return int(np.add.reduce(words, dtype=np.uint64)), int(np.bitwise_xor.reduce(words))


def load_tree(mem: Memory, image_digest: bytes | None) -> bool:
    """Give ``mem`` (just loaded with the image, nothing else written) the cached tree
    of that image; False (``mem`` unchanged) on a miss or an entry that fails a check."""
    if image_digest is None:
        return False
    key = tree_key(image_digest, mem.depth, mem.allocated)
    path = _path(key)
    if path is None:
        return False
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except (OSError, ValueError):
        return False
    rows = mem.level_rows()
    nlev = len(rows) - 1
    head = _HEAD.size + 8 * nlev + 32 + 16 + LEAF
    if raw.size != head + LEAF * sum(rows[1:]) or raw.size < _HEAD.size:
        return False
    magic, ver, levels, depth, alloc = _HEAD.unpack_from(raw, 0)
    pos = _HEAD.size
    got_rows = list(struct.unpack_from(f"<{nlev}Q", raw, pos)) if levels == nlev else None
    pos += 8 * nlev
    if (magic, ver, levels, depth, alloc) != (MAGIC, VERSION, nlev, mem.depth,
                                              mem.allocated) or got_rows != rows[1:]:
        return False
    if raw[pos:pos + 32].tobytes() != key:
        return False
    s, x = struct.unpack_from("<QQ", raw, pos + 32)
    top = raw[pos + 48:pos + 48 + LEAF].tobytes()
    body = raw[head:]
    if _checks(body.view(np.uint64)) != (s, x):
        return False
    levels_ = [mem.buffer.reshape(-1, LEAF)]
    off = 0
    for r in rows[1:]:
        levels_.append(body[off:off + LEAF * r].reshape(r, LEAF))
        off += LEAF * r
    if nlev and levels_[-1][0].tobytes() != top or not _spot_check(levels_):
        return False
    mem.adopt_levels(levels_[1:])
    return True


def _spot_check(levels: list[np.ndarray]) -> bool:
    """A sample of parents at every level equals keccak256 of its two children (level 1
    against the memory's own leaves), the first and the last row included."""
    rng = np.random.default_rng()
    for lv in range(1, len(levels)):
        parents, children = levels[lv], levels[lv - 1]
        n = min(len(parents), len(children) // 2)
        if n == 0:
            continue
        idx = np.unique(np.concatenate([[0, n - 1], rng.integers(0, n, _SAMPLES)]))
        pairs = np.concatenate([children[2 * idx], children[2 * idx + 1]], axis=1)
        if not np.array_equal(hash_pairs(np.ascontiguousarray(pairs)), parents[idx]):
            return False
    return True


def save_tree(mem: Memory, image_digest: bytes | None) -> None:
    """Write ``mem``'s tree (brought up to date) for ``load_tree``; best effort, atomic."""
    if image_digest is None:
        return
    key = tree_key(image_digest, mem.depth, mem.allocated)
    path = _path(key)
    if path is None:
        return
    mem.root()
    levels = mem.level_arrays()
    body = [np.ascontiguousarray(lv).reshape(-1) for lv in levels[1:]]
    s = x = 0
    for b in body:
        bs, bx = _checks(b.view(np.uint64))
        s, x = (s + bs) % (1 << 64), x ^ bx
    top = levels[-1][0].tobytes() if len(levels) > 1 else bytes(LEAF)
    head = (_HEAD.pack(MAGIC, VERSION, len(levels) - 1, mem.depth, mem.allocated)
            + struct.pack(f"<{len(levels) - 1}Q", *[len(lv) for lv in levels[1:]])
            + key + struct.pack("<QQ", s, x) + top)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(head)
            for b in body:
                f.write(memoryview(b))
        os.replace(tmp, path)
    except OSError:
        pass


__all__ = ["load_tree", "save_tree", "tree_key"]
