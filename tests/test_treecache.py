"""The disk cache of the image's Merkle tree (runtime/treecache.py): a hit gives the same
roots as hashing, and a damaged, truncated, stale or foreign entry is never used."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from test_native import _rand, _two_node_program

from opmlc_runtime import treecache
from opmlc_runtime.artifact import Artifact
from opmlc_runtime.engines import Program
from opmlc_runtime.merkle import Memory, merkle_root_of


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OPMLC_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("OPMLC_JIT_CACHE", raising=False)
    return tmp_path


def _image_memory(image: bytes, depth: int = 14) -> Memory:
    mem = Memory(depth, size_hint=len(image) + 4096)
    mem.reserve(len(image) + 4096)
    mem.load_image(0, image)
    return mem


def _entry(cache) -> object:
    (path,) = cache.glob("tree-*.bin")
    return path


def test_hit_equals_hashing(cache) -> None:
    rng = np.random.default_rng(1)
    image = rng.bytes(100_000)
    dig = hashlib.sha256(image).digest()
    treecache.save_tree(_image_memory(image), dig)
    mem = _image_memory(image)
    assert treecache.load_tree(mem, dig)
    want = merkle_root_of(image, 14)
    assert mem.root() == want
    mem.write(777, b"\x05" * 100)  # incremental updates on the adopted levels
    assert mem.root() == merkle_root_of(image[:777] + b"\x05" * 100 + image[877:], 14)
    assert not treecache.load_tree(_image_memory(image), None)  # no digest: no cache
    assert not treecache.load_tree(_image_memory(image, 15), dig)  # another shape: a miss


@pytest.mark.parametrize("damage", ["flip_body", "flip_top", "truncate", "append", "header"])
def test_damaged_entry_is_a_miss(cache, damage: str) -> None:
    rng = np.random.default_rng(2)
    image = rng.bytes(70_000)
    dig = hashlib.sha256(image).digest()
    treecache.save_tree(_image_memory(image), dig)
    path = _entry(cache)
    raw = bytearray(path.read_bytes())
    if damage == "flip_body":
        raw[-1000] ^= 0x10
    elif damage == "flip_top":
        raw[-len(raw) + 200] ^= 1  # inside the header's fields or node(top, 0)
    elif damage == "truncate":
        raw = raw[:-32]
    elif damage == "append":
        raw += bytes(32)
    else:
        raw[8] ^= 0xFF  # version
    path.write_bytes(bytes(raw))
    mem = _image_memory(image)
    assert not treecache.load_tree(mem, dig)
    assert mem.root() == merkle_root_of(image, 14)  # untouched by the failed load


def test_foreign_entry_under_the_key_is_a_miss(cache) -> None:
    """An entry written for another image under this image's key (self-consistent
    checksums) fails the spot check of level 1 against this memory's own leaves."""
    rng = np.random.default_rng(3)
    image, other = rng.bytes(90_000), rng.bytes(90_000)
    dig = hashlib.sha256(image).digest()
    treecache.save_tree(_image_memory(other), dig)
    mem = _image_memory(image)
    assert not treecache.load_tree(mem, dig)
    assert mem.root() == merkle_root_of(image, 14)


def test_program_roots_with_and_without_cache(cache, tmp_path_factory) -> None:
    """Runs of a loaded artifact: a cold cache writes the entry, a warm one reads it, a
    corrupted one is rewritten; S0, node and final roots equal the VM's every time, and
    an artifact built in memory (no checked digest) or with its image replaced bypasses
    the cache."""
    _, prog = _two_node_program()
    path = tmp_path_factory.mktemp("art") / "m.opvm"
    prog.art.save(path)
    x = {"x": _rand(np.random.default_rng(5), "i8", (1, 3, 9, 9))}
    want = prog.run(x, "vm", trace=True)
    assert not list(cache.glob("tree-*.bin"))  # in-memory artifact: no digest, no entry

    def check() -> None:
        for kw in ({"trace": True}, {"commit": True}):
            r = Program.load(str(path)).run(x, "native", **kw)
            assert r.state_root == want.state_root
            if kw.get("trace"):
                assert (r.initial_root, r.node_roots) == (want.initial_root, want.node_roots)

    check()  # cold: writes
    entry = _entry(cache)
    check()  # warm: reads
    raw = bytearray(entry.read_bytes())
    raw[-5] ^= 0x80
    entry.write_bytes(bytes(raw))
    check()  # damaged: recomputed and rewritten
    assert entry.read_bytes() != bytes(raw)
    art = Artifact.load(path)
    assert art.image_digest() == hashlib.sha256(art.image).digest()
    art.image = art.image[:-1] + art.image[-1:]  # replaced: its checked digest is gone
    assert art.image_digest() is None
