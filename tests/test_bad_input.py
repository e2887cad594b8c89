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
        ref = mlp.run({"input": x}, "ref", commit=True, saturate=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EdgeWarning)
        codes = mlp.encode_inputs({"input": x}, saturate=True)["input"]
        info = np.iinfo(codes.dtype)
        assert codes[0, :4].tolist() == [0, info.max, info.min, info.min]
        for e in ("native", "vm"):
            got = mlp.run({"input": x}, e, commit=True, saturate=True)
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
