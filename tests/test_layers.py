"""The house: every import in the package follows the layer table, and the walls that
matter for fraud proofs hold (one edge rule, one dtype table).

The folders are the pipeline (STYLE.md, "Shape of the house"): a layer may import only
the layers listed for it in :data:`ALLOWED`. Every ``import`` / ``from ... import`` in
every module is read (including those inside functions, which run later but are edges
all the same); an edge not in the table fails the test with the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

# folder -> top-level package name it is installed as
PACKAGES = {"opmlc": "opmlc", "runtime": "opmlc_runtime", "isagen": "opmlc_isagen"}

# layer -> the layers it may import (itself always). "opmlc" is the package root, which
# only holds __version__ and two lazy entry points (compile, load -> api).
ALLOWED: dict[str, set[str]] = {
    "runtime": set(),  # a verifier node needs the runtime and the artifact, nothing else
    "isagen": {"runtime"},  # generators that consume the ISA table
    "errors": set(),
    "ir": {"errors", "runtime"},
    "frontend": {"ir", "errors", "runtime"},
    "quantize": {"ir", "errors", "runtime"},
    "backend": {"ir", "quantize", "errors", "runtime", "opmlc"},
    "api": {"frontend", "ir", "quantize", "backend", "errors", "runtime"},
    "onnx_backend": {"api", "frontend", "ir", "quantize", "errors", "runtime"},
    "cli": {"api", "frontend", "ir", "quantize", "backend", "errors", "runtime", "isagen",
            "opmlc"},
    "demo": {"cli", "api", "frontend", "ir", "quantize", "backend", "errors", "runtime",
             "isagen", "opmlc"},
    "opmlc": {"api"},
}


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name of ours, or None for third-party modules."""
    parts = module.split(".")
    if parts[0] == "opmlc_runtime":
        return "runtime"
    if parts[0] == "opmlc_isagen":
        return "isagen"
    if parts[0] != "opmlc":
        return None
    if len(parts) == 1 or parts[1] in ("__init__", "__main__"):
        return "opmlc" if len(parts) == 1 or parts[1] == "__init__" else "cli"
    return parts[1]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT)
    pkg = PACKAGES[rel.parts[0]]
    rest = list(rel.with_suffix("").parts[1:])
    if rest and rest[-1] == "__init__":
        rest.pop()
    return ".".join([pkg, *rest])


def is_module(dotted: str) -> bool:
    """Whether ``dotted`` names a module or package of ours (not a name inside one)."""
    parts = dotted.split(".")
    folder = {v: k for k, v in PACKAGES.items()}.get(parts[0])
    if folder is None:
        return False
    base = ROOT.joinpath(folder, *parts[1:])
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(path: Path, mod: str | None = None) -> list[tuple[int, str]]:
    """``(line, imported module)`` for every import statement in ``path`` (module ``mod``,
    by default the one the path names)."""
    mod = mod or module_name(path)
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = mod.split(".")
                base = base if is_pkg else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from pkg import sub` may name a submodule: count both the package and it
            out.append((node.lineno, target))
            out += [(node.lineno, f"{target}.{a.name}") for a in node.names
                    if is_module(f"{target}.{a.name}")]
    return out


def source_files() -> list[Path]:
    return sorted(p for folder in PACKAGES for p in (ROOT / folder).rglob("*.py"))


def test_every_file_has_a_layer() -> None:
    for p in source_files():
        layer = layer_of(module_name(p))
        assert layer in ALLOWED, f"{p.relative_to(ROOT)}: layer {layer!r} is not in ALLOWED"


def test_imports_follow_the_layer_table() -> None:
    bad = []
    for p in source_files():
        src = layer_of(module_name(p))
        for line, target in imports_of(p):
            dst = layer_of(target)
            if dst is None or dst == src or dst in ALLOWED[src]:
                continue
            bad.append(f"{p.relative_to(ROOT)}:{line}: {src} imports {target} ({dst})")
    assert not bad, "imports against the layer table:\n" + "\n".join(bad)


def test_the_checker_sees_a_bad_edge(tmp_path: Path) -> None:
    """The check can fail: an upward import inside a function is reported."""
    bad = tmp_path / "probe.py"
    bad.write_text("def f():\n    from opmlc.api import load\n    from . import merkle\n")
    edges = imports_of(bad, "opmlc_runtime.probe")
    assert (2, "opmlc.api") in edges and (3, "opmlc_runtime.merkle") in edges
    assert layer_of("opmlc.api") not in ALLOWED["runtime"]


def test_runtime_runs_without_the_compiler() -> None:
    """A verifier node: loading and running an artifact imports nothing of opmlc."""
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from opmlc_runtime.engines import Program\n"
            "from opmlc_runtime.artifact import Artifact\n"
            "p = Program(Artifact.load(sys.argv[1]))\n"
            "r = p.run({'input': np.ones((1, 64), np.float32)}, 'native', trace=True)\n"
            "assert not [m for m in sys.modules if m == 'opmlc' or m.startswith('opmlc.')]\n"
            "print(r.state_root.hex())\n")
    from opmlc import api

    art = ROOT / ".pytest_cache" / "layers_mlp.opvm"
    art.parent.mkdir(exist_ok=True)
    api.compile(ROOT / "models" / "digits_mlp_sklearn.onnx", output=art)
    out = subprocess.run([sys.executable, "-c", code, str(art)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    want = api.load(art).run({"input": np.ones((1, 64), np.float32)}, "native").state_root
    assert out.stdout.strip() == want.hex()


# ---------------------------------------------------------------- one edge rule, one table


@pytest.mark.parametrize("scheme", ["fixed", "int8"])
def test_one_edge_rule(scheme: str) -> None:
    """The compiler's quantization of an input (QuantizedModel.quantize_inputs) and the
    bytes the runtime writes into S0 for the same float input are the same, including
    ties (x / scale + 1/2 exactly an integer); with NaN, +-inf and huge values both refuse
    by default (norm:edge-refuse) and both saturate alike when asked (norm:edge-saturate)."""
    from opmlc import api
    from opmlc.frontend import import_onnx
    from opmlc.quantize import quantize
    from opmlc.quantize.quantize import QuantizeError
    from opmlc_runtime.dtypes import np_dtype
    from opmlc_runtime.edge import real_range
    from opmlc_runtime.engines import InputError

    qm = quantize(import_onnx(ROOT / "models" / "digits_cnn.onnx"), scheme)
    prog = api.Model(api.compile(qm)).program
    sig = prog.inputs[0]
    name = sig["name"]
    rng = np.random.default_rng(0)
    lo, hi = real_range(sig["quant"])
    x = np.clip(rng.normal(0, 8, sig["shape"]), lo / 2, hi / 2).astype(np.float32)
    flat = x.reshape(-1)
    s = float(np.asarray(sig["quant"]["scale"]).reshape(-1)[0])
    flat[:3] = [0.5 * s, -0.5 * s, 2.5 * s]
    want = qm.quantize_inputs({name: x})[name]
    got = prog.encode_input(sig, {name: x}).view(np_dtype(sig["dtype"]))
    np.testing.assert_array_equal(got, np.asarray(want).reshape(-1))

    flat[3:8] = [np.nan, np.inf, -np.inf, 3e38, -3e38]
    with pytest.raises(QuantizeError, match=rf"input '{name}': 5 of {x.size} values are "
                       r"not representable \(1 NaN, 1 \+inf, 1 -inf, 1 above the range, "
                       r"1 below the range\)"):
        qm.quantize_inputs({name: x})
    with pytest.raises(InputError, match=rf"input '{name}': 5 of {x.size} values"):
        prog.encode_input(sig, {name: x})
    want = qm.quantize_inputs({name: x}, saturate=True)[name]
    notes: list[str] = []
    got = prog.encode_input(sig, {name: x}, saturate=True, notes=notes).view(
        np_dtype(sig["dtype"]))
    np.testing.assert_array_equal(got, np.asarray(want).reshape(-1))
    assert len(notes) == 1 and "5 of" in notes[0]


def test_one_dtype_table() -> None:
    from opmlc.backend.kernel import DTYPE_INFO
    from opmlc.ir import DTYPES
    from opmlc_runtime.dtypes import TABLE

    assert DTYPES == {k: d.np for k, d in TABLE.items()}
    for name, info in DTYPE_INFO.items():
        assert info[0] == TABLE[name].size, name
