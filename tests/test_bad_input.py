"""Bad input never gives a silent wrong answer, a crash, or a lost file (issue 12).

The input policy (spec/QUANT.md 2.1), the gather index clamp shared bit for bit by every
engine (norm:gather-clamp), calibration checks, exact shapes, atomic writes with injected
write failures and interrupts, and size limits. The corpus of bad inputs fed to every
subcommand is tests/test_bad_corpus.py.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from backend_util import check_engines
from onnx import TensorProto, helper

from opmlc import api
from opmlc.api import IndexWarning
from opmlc.errors import OpmlcError
from opmlc.quantize.quantize import QuantizeError
from opmlc_runtime.edge import EdgeWarning
from opmlc_runtime.engines import InputError

ROOT = Path(__file__).resolve().parent.parent
MLP = ROOT / "models" / "digits_mlp_sklearn.onnx"


def _model(nodes, inputs, outputs, inits=()) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def gather_model(rows: int = 5, cols: int = 3, n: int = 8, elements: bool = False
                 ) -> onnx.ModelProto:
    """y = Gather(table, ids) (or GatherElements along axis 0) with a float table."""
    rng = np.random.default_rng(0)
    table = helper.make_tensor("table", TensorProto.FLOAT, [rows, cols],
                               rng.normal(size=rows * cols).astype(np.float32).tolist())
    if elements:
        ids = helper.make_tensor_value_info("ids", TensorProto.INT64, [n, cols])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, cols])
        node = helper.make_node("GatherElements", ["table", "ids"], ["y"], axis=0)
    else:
        ids = helper.make_tensor_value_info("ids", TensorProto.INT64, [1, n])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n, cols])
        node = helper.make_node("Gather", ["table", "ids"], ["y"], axis=0)
    return _model([node], [ids], [y], [table])


@pytest.fixture(scope="module")
def mlp() -> api.Model:
    return api.Model(api.compile(str(MLP)))


# --- the input policy -------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["native", "vm", "ref"])
def test_nan_inf_out_of_range_refused_on_every_engine(mlp: api.Model, engine: str) -> None:
    x = np.zeros((1, 64), np.float32)
    x[0, :4] = [np.nan, np.inf, -np.inf, 1e9]
    with pytest.raises(InputError, match=r"input 'input': 4 of 64 values are not "
                       r"representable \(1 NaN, 1 \+inf, 1 -inf, 1 above the range\).*"
                       r"--saturate"):
        mlp.run({"input": x}, engine)


def test_saturate_is_the_same_on_every_engine_and_reported(mlp: api.Model) -> None:
    x = np.linspace(0, 16, 64, dtype=np.float32).reshape(1, 64)
    x[0, :4] = [np.nan, np.inf, -np.inf, -1e9]
    with pytest.warns(EdgeWarning, match=r"4 of 64 values .* saturated"):
        ref = mlp.run({"input": x}, "ref", trace=True, saturate=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EdgeWarning)
        codes = mlp.encode_inputs({"input": x}, saturate=True)["input"]
        info = np.iinfo(codes.dtype)
        assert codes[0, :4].tolist() == [0, info.max, info.min, info.min]
        for e in ("native", "vm"):
            got = mlp.run({"input": x}, e, trace=True, saturate=True)
            assert (got.state_root, got.node_roots) == (ref.state_root, ref.node_roots)
            # the codes themselves are an input like any other: the same S0, the same run
            assert mlp.run({"input": codes}, e).state_root == ref.state_root


def test_shape_exact(mlp: api.Model) -> None:
    with pytest.raises(InputError, match=r"rank 1 instead of 2; reshape it to \[1, 64\]"):
        mlp.run({"input": np.zeros(64, np.float32)})
    with pytest.raises(InputError, match=r"axis 1 has 65 instead of 64"):
        mlp.run({"input": np.zeros((1, 65), np.float32)})
    with pytest.raises(InputError, match=r"rank 2 instead of 2|axis 0 has 2 instead of 1"):
        mlp.run({"input": np.zeros((2, 32), np.float32)})


def test_integer_input_out_of_dtype_refused(tmp_path: Path) -> None:
    m = api.Model(api.compile(gather_model()))
    with pytest.raises(InputError, match=r"\(uint64\) does not fit i64: 1 of 8 values"), \
            pytest.warns(IndexWarning):
        m.run({"ids": np.array([[0, 1, 2, 3, 1 << 63, 0, 0, 0]], np.uint64)})


# --- gather: one defined semantics for bad indices --------------------------------------


@pytest.mark.parametrize("elements", [False, True], ids=["gather", "gather_elements"])
def test_gather_out_of_range_bit_exact(elements: bool) -> None:
    """norm:gather-clamp: ref == native == vm (and the reference stepper), tensor by
    tensor and root by root, for indices far outside the table in both directions."""
    m = api.Model(api.compile(gather_model(elements=elements)))
    bad = [0, 4, 5, -1, -5, -6, 1 << 40, -(1 << 62)]
    ids = (np.array(bad * 3, np.int64).reshape(8, 3) if elements
           else np.array([bad], np.int64))
    with pytest.warns(IndexWarning, match=r"ids'.* indices outside \[-5, 4\].*clamps them"):
        ref = check_engines(m, {"ids": ids}, engines=("native", "vm", "stepper"))
    # the clamp: i < 0 ? i + 5 : i, then into [0, 4]
    g = np.clip(np.where(ids < 0, ids + 5, ids), 0, 4)
    table = onnx.numpy_helper.to_array(gather_model(elements=elements).graph.initializer[0])
    want = (np.take_along_axis(table, g, 0) if elements else table[g])
    got = m.dequantize(ref.outputs)["y"]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_gather_in_range_gives_no_warning() -> None:
    m = api.Model(api.compile(gather_model()))
    with warnings.catch_warnings():
        warnings.simplefilter("error", IndexWarning)
        m.run({"ids": np.array([[0, 1, 2, 3, 4, -1, -5, 0]])}, "ref")


# --- calibration ------------------------------------------------------------------------


@pytest.mark.parametrize("arr, msg", [
    (np.full((4, 1, 64), np.nan, np.float32), r"'input' holds 256 NaN and 0 inf"),
    (np.full((2, 1, 64), np.inf, np.float32), r"'input' holds 0 NaN and 128 inf"),
    (np.zeros((0, 1, 64), np.float32), r"'input' is empty"),
    (np.ones((3, 1, 64), np.float32), r"'input' is constant"),
    (np.arange(21, dtype=np.float32).reshape(3, 7), r"'input' has shape \(3, 7\)"),
    (np.array(["a"] * 64).reshape(1, 64), r"'input' is <U1, not numbers"),
])
def test_calibration_refused(arr: np.ndarray, msg: str) -> None:
    with pytest.raises(QuantizeError, match=msg):
        api.compile(str(MLP), calibration={"input": arr})


def test_calibration_unknown_name_refused() -> None:
    x = np.random.default_rng(0).normal(size=(2, 1, 64)).astype(np.float32)
    with pytest.raises(QuantizeError, match=r"'inptu' is no graph input"):
        api.compile(str(MLP), calibration={"input": x, "inptu": x})


def test_report_flags_degenerate_scales() -> None:
    from opmlc.frontend import import_onnx
    from opmlc.quantize import quantize_report

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    z = helper.make_tensor("z", TensorProto.FLOAT, [1, 4], [0.0] * 4)
    m = _model([helper.make_node("Mul", ["x", "z"], ["m"]),
                helper.make_node("Add", ["m", "x"], ["y"])], [x], [y], [z])
    for scheme, why in (("fixed", "frac bits clamped at 60"), ("int8", "zero calibrated range")):
        text = quantize_report(import_onnx(m), scheme=scheme)
        flagged = [ln for ln in text.splitlines() if " ! " in ln]
        assert len(flagged) == 1 and flagged[0].startswith("m ") and why in flagged[0]
        assert text.splitlines()[-1].startswith("! 1 layer with a degenerate scale")
    assert " ! " not in quantize_report(import_onnx(str(MLP)))


def test_compile_bad_calibration_is_an_opmlc_error() -> None:
    with pytest.raises(OpmlcError):
        api.compile(str(MLP), calibration={"input": np.zeros((0, 64), np.float32)})


# --- files: nothing written half ----------------------------------------------------------


def _cli(capsys, *argv) -> tuple[int, str, str]:
    from opmlc.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _fail_fsync(exc: BaseException):
    def fsync(fd: int) -> None:
        raise exc
    return fsync


@pytest.mark.parametrize("exc, code", [
    (OSError(28, "No space left on device"), 1), (KeyboardInterrupt(), 130)],
    ids=["disk_full", "interrupt"])
@pytest.mark.parametrize("cmd", ["compile", "run", "asm", "verifier"])
def test_failed_write_keeps_previous_file(tmp_path: Path, capsys, monkeypatch, cmd: str,
                                          exc: BaseException, code: int) -> None:
    """A full disk or Ctrl-C while writing: one line, the exit status, the previous file
    byte for byte, and no temporary file left in the folder."""
    import os

    art = tmp_path / "m.opvm"
    if cmd == "run":
        api.compile(str(MLP), output=art)
        np.save(tmp_path / "x.npy", np.ones((1, 64), np.float32))
    target = {"compile": art, "run": tmp_path / "out.npz", "asm": tmp_path / "p.bin",
              "verifier": tmp_path / "OpmlcStep.sol"}[cmd]
    target.write_bytes(b"previous contents")
    argv = {"compile": ["compile", MLP, "-o", target, "-q"],
            "run": ["run", art, "--input", f"input={tmp_path / 'x.npy'}", "-o", target],
            "asm": ["asm", ROOT / "examples" / "sum.s", "-o", target],
            "verifier": ["verifier", "-o", tmp_path]}[cmd]
    before = sorted(os.listdir(tmp_path))
    monkeypatch.setattr(os, "fsync", _fail_fsync(exc))
    rc, _, err = _cli(capsys, *argv)
    assert rc == code and len(err.splitlines()) == 1, err
    assert ("interrupted" in err) if code == 130 else ("No space left on device" in err)
    assert target.read_bytes() == b"previous contents"
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.parametrize("argv, what", [
    (["compile", "{m}", "-o", "{m}"], "model"),
    (["compile", "{m}", "--calibrate", "{c}", "-o", "{c}"], "--calibrate"),
    (["run", "{a}", "--input", "input={x}", "-o", "{x}.npz"], "--input input"),
    (["asm", "{s}", "-o", "{s}"], "source"),
])
def test_output_equal_to_input_refused(tmp_path: Path, capsys, argv: list[str],
                                       what: str) -> None:
    m, a, s = tmp_path / "m.onnx", tmp_path / "m.npz", tmp_path / "p.s"
    m.write_bytes(MLP.read_bytes())
    c, x = tmp_path / "cal.npz", tmp_path / "x.npz"
    np.savez(c, input=np.random.default_rng(0).normal(size=(2, 1, 64)))
    np.save(tmp_path / "x.npz.npy", np.ones((1, 64), np.float32))
    x = tmp_path / "x.npz.npy"
    s.write_text((ROOT / "examples" / "sum.s").read_text())
    if argv[0] == "run":
        a = tmp_path / "m.opvm"
        api.compile(str(MLP), output=a)
        if argv[-1] == "{x}.npz":  # run -o appends .npz: name the input that way
            x = tmp_path / "x.npy.npz"
            np.save(x.with_suffix(""), np.ones((1, 64), np.float32))
            x.with_suffix("").rename(x)
            argv = argv[:-1] + [str(x)]
    files = {p: p.read_bytes() for p in tmp_path.iterdir()}
    rc, _, err = _cli(capsys, *[t.format(m=m, c=c, a=a, x=x, s=s) for t in argv])
    assert rc == 1 and f"is the {what} file: refusing to overwrite" in err, err
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == files


# --- limits instead of tracebacks ---------------------------------------------------------


def test_asm_size_limits() -> None:
    from opmlc_runtime.asm import AsmError, assemble

    for text in (".org 0x100000000000\nhalt\n", ".zero 100000000000\n",
                 ".zero 8\n.align 0x4000000000000000\n"):
        with pytest.raises(AsmError, match=r"over the assembler's limit of 268435456 bytes"):
            assemble(text)
    assert len(assemble(".zero 64\n", max_size=64)) == 64
    with pytest.raises(AsmError, match="line 2: '.byte' makes the image 65 bytes"):
        assemble(".zero 64\n.byte 1\n", max_size=64)


def test_huge_and_negative_shapes(tmp_path: Path, capsys) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    path = tmp_path / "dyn.onnx"
    onnx.save(_model([helper.make_node("Relu", ["x"], ["y"])], [x], [y]), path)
    rc, _, err = _cli(capsys, "compile", path, "--shape", "x=100000000000x4", "-o",
                      tmp_path / "d.opvm", "-q")
    assert rc == 1 and "GiB with these shapes (largest: 'x' f32[100000000000,4])" in err
    rc, _, err = _cli(capsys, "compile", path, "--shape", "x=-3x4", "-o", tmp_path / "d.opvm")
    assert rc == 1 and err == "opmlc: error: bad --shape 'x=-3x4': dimension -3 is negative\n"
    assert not (tmp_path / "d.opvm").exists()


def test_empty_onnx_and_negative_steps(tmp_path: Path, capsys) -> None:
    (tmp_path / "e.onnx").write_bytes(b"")
    rc, _, err = _cli(capsys, "ir", tmp_path / "e.onnx")
    assert rc == 1 and "e.onnx' is empty: not an ONNX model" in err and "opset" not in err
    rc, _, err = _cli(capsys, "vm", ROOT / "examples" / "sum.s", "--steps", "-1")
    assert rc == 1 and "--steps -1: the step count must not be negative" in err
