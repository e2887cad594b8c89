"""The compile / load / run API and the ``opmlc compile | run | inspect`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from opmlc import api, cli
from opmlc.backend.compile import compile_graph
from opmlc.ir.graph import Graph, Node, TensorType
from opmlc_runtime.artifact import Artifact

MODELS = Path(__file__).resolve().parent.parent / "models"
MLP = MODELS / "digits_mlp_sklearn.onnx"


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the compiled digits MLP, one input image as .npy)."""
    d = tmp_path_factory.mktemp("mlp")
    out = d / "m.opvm"
    assert cli.main(["compile", str(MLP), "-o", str(out), "-q"]) == 0
    x = np.load(MODELS / "digits_test.npz")["X"][:1].astype(np.float32)
    np.save(d / "x.npy", x)
    return out, d / "x.npy"


def _run_json(capsys: pytest.CaptureFixture, *argv: str) -> dict:
    capsys.readouterr()
    assert cli.main(["run", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _error(capsys: pytest.CaptureFixture, *argv: str) -> str:
    """Run the CLI, expect exit 1 and exactly one `opmlc: error:` line on stderr."""
    capsys.readouterr()
    assert cli.main(list(argv)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("opmlc: error: "), err
    assert "Traceback" not in err[0]
    return err[0]


# ---------------------------------------------------------------- run


def test_three_engines_same_json(mlp: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    art, x = mlp
    docs = {e: _run_json(capsys, str(art), "--input", f"input={x}", "--engine", e, "--trace")
            for e in ("native", "vm", "ref")}
    keys = {"engine", "outputs", "state_root", "steps", "initial_root", "node_roots", "roots"}
    for e, d in docs.items():
        assert set(d) == keys and d["engine"] == e and d["roots"] == "all"
        assert d["state_root"].startswith("0x") and len(d["state_root"]) == 66
    n, v, r = docs["native"], docs["vm"], docs["ref"]
    assert n["outputs"] == v["outputs"] == r["outputs"]
    assert n["node_roots"] == v["node_roots"] == r["node_roots"]
    assert n["state_root"] == v["state_root"] == r["state_root"]
    m = api.load(art)
    assert n["steps"] == v["steps"] == r["steps"] == m.meta["total_steps"]
    assert len(n["node_roots"]) == len(m.meta["nodes"])
    # --commit: the final root only, the same; neither: no root
    d = _run_json(capsys, str(art), "--input", f"input={x}", "--commit")
    assert set(d) == {"engine", "outputs", "state_root", "steps", "roots"}
    assert d["state_root"] == n["state_root"] and d["roots"] == "final"
    d = _run_json(capsys, str(art), "--input", f"input={x}")
    assert set(d) == {"engine", "outputs", "steps", "roots"} and d["roots"] == "none"


def test_dequantized_by_default_raw_on_request(mlp: tuple[Path, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    art, x = mlp
    deq = _run_json(capsys, str(art), "--input", f"input={x}", "-o", str(tmp_path / "f.npz"))
    raw = _run_json(capsys, str(art), "--input", f"input={x}", "--raw",
                    "-o", str(tmp_path / "r.npz"))
    p = np.asarray(deq["outputs"]["probabilities"])
    assert p.shape == (1, 10) and abs(p.sum() - 1) < 0.01  # float probabilities
    assert all(isinstance(v, int) for v in raw["outputs"]["probabilities"][0])
    m = api.load(art)
    q = next(s["quant"] for s in m.meta["outputs"] if s["name"] == "probabilities")
    want = (np.asarray(raw["outputs"]["probabilities"]) - q["zero_point"]) * q["scale"]
    np.testing.assert_allclose(p, want, rtol=1e-6)
    assert deq["outputs"]["label"] == raw["outputs"]["label"]  # no quant params: unchanged
    with np.load(tmp_path / "f.npz") as f, np.load(tmp_path / "r.npz") as r:
        assert f["probabilities"].dtype == np.float32 and r["probabilities"].dtype.kind == "i"
        np.testing.assert_array_equal(f["probabilities"], np.float32(p))
    # the float reference agrees on the class
    ref = onnx_label(x)
    assert deq["outputs"]["label"] == [ref]


def onnx_label(x: Path) -> int:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(MLP), providers=["CPUExecutionProvider"])
    return int(sess.run(["label"], {"input": np.load(x)})[0][0])


def test_text_output_and_npz_inputs(mlp: tuple[Path, Path], tmp_path: Path,
                                    capsys: pytest.CaptureFixture) -> None:
    art, x = mlp
    np.savez(tmp_path / "in.npz", input=np.load(x))
    capsys.readouterr()
    assert cli.main(["run", str(art), "--input", str(tmp_path / "in.npz"), "--trace"]) == 0
    out = capsys.readouterr().out
    assert "probabilities: float32[1, 10]" in out and "state_root: 0x" in out
    assert out.count("0:") >= 1  # one root line per node, named
    assert cli.main(["run", str(art), "--input", str(tmp_path / "in.npz"), "--commit"]) == 0
    out = capsys.readouterr().out
    assert "state_root: 0x" in out and out.count("0:") == 0  # the final root only


def test_api_ref_matches_and_dequantize(mlp: tuple[Path, Path]) -> None:
    m = api.load(mlp[0])
    x = {"input": np.load(mlp[1])}
    nat, ref = m.run(x, "native"), m.run(x, "ref")
    assert nat.state_root == ref.state_root and ref.steps == m.meta["total_steps"]
    f = m.dequantize(nat.outputs)
    assert f["probabilities"].dtype == np.float32 and f["label"].dtype == np.int64


# ---------------------------------------------------------------- run: input errors


def test_unknown_input_names_list_the_signature(mlp: tuple[Path, Path],
                                                capsys: pytest.CaptureFixture) -> None:
    art, x = mlp
    err = _error(capsys, "run", str(art), "--input", f"pixels={x}")
    assert "unknown input 'pixels'" in err and "missing input 'input'" in err
    assert "input: i32[1, 64]" in err and "float arrays are quantized" in err


@pytest.mark.parametrize("what", ["shape", "npz", "text", "missing", "pickle", "twice",
                                  "no_name", "complex"])
def test_bad_input_files_one_line(what: str, mlp: tuple[Path, Path], tmp_path: Path,
                                  capsys: pytest.CaptureFixture) -> None:
    art, x = mlp
    f = tmp_path / "bad.npy"
    flags = ["--input", f"input={f}"]
    if what == "shape":
        np.save(f, np.zeros((2, 64), np.float32))
        want = "shape [2, 64], the model expects i32[1, 64]"
    elif what == "npz":
        with open(f, "wb") as fh:  # an archive under a .npy name
            np.savez(fh, input=np.zeros((1, 64)))
        want = "is an .npz archive, not a .npy array"
    elif what == "text":
        f.write_text("1 2 3\n")
        want = "is not a .npy file"
    elif what == "missing":
        f = tmp_path / "nope.npy"
        flags = ["--input", f"input={f}"]
        want = "cannot read"
    elif what == "pickle":
        np.save(f, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        want = "unreadable .npy file"
    elif what == "twice":
        flags = ["--input", f"input={x}", "--input", f"input={x}"]
        want = "given twice"
    elif what == "no_name":
        flags = ["--input", str(x)]
        want = "expected NAME=FILE.npy"
    else:
        np.save(f, np.zeros((1, 64), np.complex64))
        want = "not a numeric array"
    assert want in _error(capsys, "run", str(art), *flags)


def test_integer_only_input_rejects_floats_and_overflow(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    g = Graph()
    g.inputs, g.outputs = ["x"], ["y"]
    g.types["x"] = g.types["y"] = TensorType("i16", (4,))
    g.nodes = [Node("q.clamp", ("x",), ("y",), {"lo": -5, "hi": 5})]
    art = tmp_path / "c.opvm"
    compile_graph(g).save(art)
    f = tmp_path / "x.npy"
    np.save(f, np.zeros(4, np.float32))
    assert "integers without quantization parameters" in _error(
        capsys, "run", str(art), "--input", f"x={f}")
    np.save(f, np.full(4, 1 << 20, np.int64))
    assert "does not fit i16" in _error(capsys, "run", str(art), "--input", f"x={f}")
    np.save(f, np.array([-9, 0, 3, 9], np.int64))
    d = _run_json(capsys, str(art), "--input", f"x={f}", "--engine", "vm")
    assert d["outputs"]["y"] == [-5, 0, 3, 5]


# ---------------------------------------------------------------- artifact errors


@pytest.mark.parametrize("damage", ["truncate", "flip", "version", "empty", "not_opvm"])
def test_damaged_artifact_one_line(damage: str, mlp: tuple[Path, Path], tmp_path: Path,
                                   capsys: pytest.CaptureFixture) -> None:
    art, x = mlp
    data = bytearray(art.read_bytes())
    bad = tmp_path / "bad.opvm"
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[len(data) // 3] ^= 0x10
    elif damage == "version":
        data[8] += 1
    elif damage == "empty":
        data = bytearray()
    else:
        data = bytearray(MLP.read_bytes())
    bad.write_bytes(bytes(data))
    want = {"truncate": "truncated", "flip": "corrupted", "version": "format version",
            "empty": "not an .opvm file", "not_opvm": "not an .opvm file"}[damage]
    for argv in (["run", str(bad), "--input", f"input={x}"], ["inspect", str(bad)]):
        err = _error(capsys, *argv)
        assert want in err and str(bad) in err


def test_artifact_without_ir_has_no_ref(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "m.opvm"
    assert cli.main(["compile", str(MLP), "-o", str(out), "-q", "--no-ir"]) == 0
    assert Artifact.load(out).ir_text is None
    np.save(tmp_path / "x.npy", np.zeros((1, 64), np.float32))
    err = _error(capsys, "run", str(out), "--input", f"input={tmp_path / 'x.npy'}",
                 "--engine", "ref")
    assert "no integer IR" in err


# ---------------------------------------------------------------- compile


def _save(tmp_path: Path, name: str, node: onnx.NodeProto, x_shape: list,
          y_shape: list | None) -> Path:
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                      x_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)])
    p = tmp_path / f"{name}.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), p)
    return p


def test_compile_errors_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = str(tmp_path / "o.opvm")
    dyn = _save(tmp_path, "dyn", helper.make_node("Relu", ["x"], ["y"]), ["N", 4], ["N", 4])
    err = _error(capsys, "compile", str(dyn), "-o", out, "-q")
    assert "dynamic shape" in err and "--shape" in err
    assert cli.main(["compile", str(dyn), "-o", out, "-q", "--shape", "x=2x4"]) == 0
    uns = _save(tmp_path, "uns", helper.make_node("Unique", ["x"], ["y"]), [4], None)
    assert "unsupported ops in model: Unique" in _error(capsys, "compile", str(uns), "-o", out,
                                                         "-q")
    assert "cannot read" in _error(capsys, "compile", str(tmp_path / "none.onnx"), "-o", out)
    (tmp_path / "junk.onnx").write_bytes(b"\x00junk")
    assert "cannot read ONNX model" in _error(capsys, "compile", str(tmp_path / "junk.onnx"),
                                              "-o", out, "-q")


def test_compile_progress_and_quiet(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = str(tmp_path / "g.opvm")
    capsys.readouterr()
    assert cli.main(["compile", str(MODELS / "gpt2_tiny.onnx"), "-o", out]) == 0
    err = capsys.readouterr().err
    for stage in ("importing ONNX", "quantizing", "lowering", "memory plan",
                  "generating native kernels", "wrote"):
        assert stage in err, stage
    assert all(line.startswith("opmlc: [") for line in err.strip().splitlines())
    assert cli.main(["compile", str(MODELS / "gpt2_tiny.onnx"), "-o", out, "-q"]) == 0
    assert capsys.readouterr().err == ""


def test_progress_within_a_stage_is_throttled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stage lines always pass; the indented per-sample / per-node lines of a stage at most
    once a second, so a slow stage shows progress and a fast one stays quiet."""
    from opmlc.api import _throttled

    clock = iter([0.0, 0.1, 0.2, 0.5, 1.3, 1.4, 2.0, 2.6])
    monkeypatch.setattr("time.perf_counter", lambda: next(clock))
    lines: list[str] = []
    say = _throttled(lines.append)  # created at t = 0.0
    for msg in ["stage A", "  1/4", "  2/4", "  3/4", "  4/4", "stage B", "  done"]:
        say(msg)
    assert lines == ["stage A", "  3/4", "stage B"]


def test_inspect(mlp: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert cli.main(["inspect", str(mlp[0])]) == 0
    out = capsys.readouterr().out
    assert "opvm format 1" in out and "input input: i32[1, 64]" in out
    assert cli.main(["inspect", str(mlp[0]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total_steps"] > 0
