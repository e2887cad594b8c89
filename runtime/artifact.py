"""The .opvm artifact: reader and writer (format: spec/OPVM.md).

Layout (all integers little-endian)::

    0    8   magic  b"OPVM\\x00\\r\\n\\x1a"
    8    4   format version (FORMAT_VERSION)
    12   4   ISA version (opmlc_runtime.isa.ISA_VERSION)
    16   4   section count S
    20   4   reserved, 0
    24   48*S section table: tag (4 ASCII bytes), reserved u32 = 0, offset u64,
             length u64, sha256 of the payload (first 24 bytes)
    ...      payloads, in table order, each starting 8-byte aligned (zero padding)
    end-32   sha256 of every preceding byte

Sections: ``META`` (canonical JSON, UTF-8: sorted keys, no spaces), ``IMAG`` (the
initial memory image from address 0: code + constants), ``LLIR`` (LLVM IR text of the
native kernels), optional ``IRTX`` (integer IR text, for ``--engine ref`` and inspect).

Every malformed file raises :class:`ArtifactError` with a message saying what is wrong;
nothing else escapes ``Artifact.from_bytes``.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opmlc_runtime.files import atomic_write
from opmlc_runtime.isa import ISA_VERSION

MAGIC = b"OPVM\x00\r\n\x1a"
FORMAT_VERSION = 1
_HEAD = struct.Struct("<8sIIII")
_ENTRY = struct.Struct("<4sIQQ24s")
TAGS = ("META", "IMAG", "LLIR", "IRTX")
REQUIRED = ("META", "IMAG", "LLIR")
MAX_SECTIONS = 64


class ArtifactError(ValueError):
    """A .opvm file that cannot be used: truncated, corrupted, or another version."""


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode()


@dataclass
class Artifact:
    """A compiled model: ``meta`` (the node table, signatures, memory map, options),
    ``image`` (initial memory from address 0), ``llvm_ir`` and optional ``ir_text``."""

    meta: dict
    image: bytes
    llvm_ir: str
    ir_text: str | None = None

    # --- writing ---------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        sections = [("META", canonical_json(self.meta)), ("IMAG", bytes(self.image)),
                    ("LLIR", self.llvm_ir.encode())]
        if self.ir_text is not None:
            sections.append(("IRTX", self.ir_text.encode()))
        head = _HEAD.size + _ENTRY.size * len(sections)
        table, payload = [], bytearray()
        pos = head
        for tag, data in sections:
            pad = -pos % 8
            payload += bytes(pad)
            pos += pad
            table.append(_ENTRY.pack(tag.encode(), 0, pos, len(data),
                                     hashlib.sha256(data).digest()[:24]))
            payload += data
            pos += len(data)
        body = (_HEAD.pack(MAGIC, FORMAT_VERSION, ISA_VERSION, len(sections), 0)
                + b"".join(table) + bytes(payload))
        return body + hashlib.sha256(body).digest()

    def save(self, path: str | Path) -> None:
        """Write the artifact to ``path`` atomically (a failure leaves any previous file)."""
        atomic_write(path, self.to_bytes())

    # --- reading ---------------------------------------------------------------------

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "artifact") -> Artifact:
        def fail(msg: str) -> ArtifactError:
            return ArtifactError(f"{source}: {msg}")

        data = bytes(data)
        if len(data) < 8 or data[:8] != MAGIC:
            raise fail("not an .opvm file (bad magic; expected an artifact written by "
                       "`opmlc compile`)")
        if len(data) < _HEAD.size + 32:
            raise fail(f"truncated: {len(data)} bytes is shorter than the header")
        _, fmt, isa, count, _ = _HEAD.unpack_from(data, 0)
        if fmt != FORMAT_VERSION:
            raise fail(f"format version {fmt}, this runtime reads version {FORMAT_VERSION}; "
                       "recompile the model with a matching opmlc")
        if isa != ISA_VERSION:
            raise fail(f"compiled for ISA version {isa}, this runtime implements ISA "
                       f"version {ISA_VERSION}; recompile the model")
        if count > MAX_SECTIONS:
            raise fail(f"corrupted: {count} sections")
        head = _HEAD.size + _ENTRY.size * count
        if len(data) < head + 32:
            raise fail("truncated: the section table runs past the end of the file")
        body, digest = data[:-32], data[-32:]
        if hashlib.sha256(body).digest() != digest:
            raise fail("corrupted or truncated: checksum mismatch (the file was modified "
                       "or cut short; copy or recompile it)")
        found: dict[str, bytes] = {}
        digests: dict[str, bytes] = {}
        for k in range(count):
            tag_b, _, off, length, sha = _ENTRY.unpack_from(data, _HEAD.size + _ENTRY.size * k)
            tag = tag_b.decode("ascii", "replace")
            if off < head or off + length > len(body):
                raise fail(f"corrupted: section {tag!r} [{off}, {off + length}) lies "
                           "outside the file")
            payload = body[off: off + length]
            full = hashlib.sha256(payload).digest()
            if full[:24] != sha:
                raise fail(f"corrupted: section {tag!r} checksum mismatch")
            digests[tag] = full
            if tag in found:
                raise fail(f"corrupted: section {tag!r} appears twice")
            found[tag] = payload
        for tag in REQUIRED:
            if tag not in found:
                raise fail(f"missing section {tag!r}")
        try:
            meta = json.loads(found["META"].decode())
            llir = found["LLIR"].decode()
            irtx = found["IRTX"].decode() if "IRTX" in found else None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise fail(f"corrupted metadata: {e}") from None
        if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
            raise fail("corrupted metadata: no matching format_version")
        art = cls(meta, found["IMAG"], llir, irtx)
        art._image_digest = (art.image, digests["IMAG"])
        return art

    @classmethod
    def load(cls, path: str | Path) -> Artifact:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ArtifactError(f"{path}: cannot read: {e.strerror or e}") from None
        return cls.from_bytes(data, str(path))

    def sha256(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()

    def image_digest(self) -> bytes | None:
        """sha256(image) as checked when the file was read (a cache key for the image's
        Merkle tree at no extra hashing); None for an artifact built in memory or whose
        ``image`` was replaced since."""
        k = getattr(self, "_image_digest", None)
        return k[1] if k is not None and k[0] is self.image else None


__all__ = ["Artifact", "ArtifactError", "FORMAT_VERSION", "MAGIC", "canonical_json"]
