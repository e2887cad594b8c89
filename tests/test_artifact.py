"""The .opvm format: round trip, clear errors on damage, byte-reproducible builds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from opmlc.backend.compile import compile_graph
from opmlc.ir.graph import Graph, Node, TensorType
from opmlc_runtime.artifact import FORMAT_VERSION, MAGIC, Artifact, ArtifactError

ROOT = Path(__file__).resolve().parent.parent


def small() -> Artifact:
    g = Graph()
    g.inputs = ["x"]
    g.types["x"] = TensorType("i8", (4,))
    g.consts["w"] = np.array([1, -2, 3, -4], np.int8)
    g.types["w"] = TensorType("i8", (4,))
    g.types["y"] = TensorType("i8", (4,))
    g.nodes = [Node("q.add", ("x", "w"), ("y",), {"dtype": "i8"})]
    g.outputs = ["y"]
    return compile_graph(g)


def test_round_trip() -> None:
    a = small()
    b = Artifact.from_bytes(a.to_bytes())
    assert (b.meta, b.image, b.llvm_ir, b.ir_text) == (a.meta, a.image, a.llvm_ir, a.ir_text)
    assert b.to_bytes() == a.to_bytes()
    assert a.to_bytes()[:8] == MAGIC and a.meta["format_version"] == FORMAT_VERSION


@pytest.mark.parametrize("cut", [0, 5, 8, 30, 100, -33, -1])
def test_truncated(cut: int) -> None:
    data = small().to_bytes()
    with pytest.raises(ArtifactError, match="truncated|bad magic|checksum"):
        Artifact.from_bytes(data[:cut])


def test_every_flipped_byte_is_caught() -> None:
    data = bytearray(small().to_bytes())
    for pos in range(0, len(data), max(1, len(data) // 300)):
        bad = bytearray(data)
        bad[pos] ^= 0x40
        with pytest.raises(ArtifactError):
            Artifact.from_bytes(bytes(bad))


def test_other_versions() -> None:
    data = bytearray(small().to_bytes())
    for off, what in ((8, "format version"), (12, "ISA version")):
        bad = bytearray(data)
        bad[off] = 99
        with pytest.raises(ArtifactError, match=what):
            Artifact.from_bytes(bytes(bad))
    with pytest.raises(ArtifactError, match="not an .opvm"):
        Artifact.from_bytes(b"\x7fELF" + bytes(100))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="cannot read"):
        Artifact.load(tmp_path / "nope.opvm")


_SCRIPT = """
import sys, hashlib
from opmlc import api
art = api.compile(sys.argv[1])
sys.stdout.write(hashlib.sha256(art.to_bytes()).hexdigest())
"""


def test_reproducible_across_processes() -> None:
    model = str(ROOT / "models" / "digits_mlp_sklearn.onnx")
    digests = set()
    for seed in ("0", "12345"):
        r = subprocess.run([sys.executable, "-c", _SCRIPT, model], capture_output=True,
                           text=True, check=True, cwd=ROOT,
                           env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"})
        digests.add(r.stdout.strip())
    assert len(digests) == 1
