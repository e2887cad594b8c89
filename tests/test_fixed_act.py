"""The fixed scheme's narrow activations (``act_dtype="i16"``, CLI ``--act-dtype i16``):
every float activation an i16 word of 13 significant bits (8x headroom) instead of an
i32 of 24, weights unchanged. The narrower words are the same integer ops on smaller
dtypes, so every engine still agrees bit for bit (ref == native == VM, all node roots);
against onnxruntime's float32 the error grows by the 11 bits given up and stays small;
the option is recorded in the artifact and refused where it does not apply."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from opmlc import api
from opmlc.errors import OpmlcError

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "models" / "digits_cnn.onnx"


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    d = np.load(ROOT / "models" / "digits_test.npz")
    X = d["X"].reshape(-1, 1, 1, 8, 8)
    ref = ort.InferenceSession(str(DIGITS), providers=["CPUExecutionProvider"])
    logits = np.stack([ref.run(None, {"input": x})[0] for x in X])
    return X, logits


def _native_logits(m: api.Model, X: np.ndarray) -> np.ndarray:
    return np.stack([m.dequantize(m.run({"input": x}, "native").outputs)["logits"]
                     for x in X])


def test_i16_activations_bit_exact_and_recorded(digits) -> None:
    """Every activation of the integer graph is i16; ref == native == VM on outputs and
    every node root; the option is in the artifact's metadata."""
    X, _ = digits
    art = api.compile(str(DIGITS), act_dtype="i16", calibration={"input": X[:64]})
    assert art.meta["options"]["act_dtype"] == "i16"
    m = api.Model(art)
    g = m.ref_graph()
    acts = {g.types[o].dtype for n in g.nodes for o in n.outputs} | \
        {g.types[i].dtype for i in g.inputs}
    assert acts == {"i16"}, acts  # no i32 word left (q.conv accumulates in i64 inside)
    for x in X[:3]:
        ref = m.run({"input": x}, "ref", trace=True)
        nat = m.run({"input": x}, "native", trace=True)
        vm = m.run({"input": x}, "vm", trace=True)
        for r in (nat, vm):
            np.testing.assert_array_equal(r.outputs["logits"], ref.outputs["logits"])
        assert nat.node_roots == vm.node_roots and nat.state_root == vm.state_root
    # the default is unchanged: i32 words, nothing recorded
    d = api.compile(str(DIGITS), calibration={"input": X[:64]})
    assert "act_dtype" not in d.meta["options"]
    assert d.meta["memory"]["activation_bytes"] == 2 * art.meta["memory"]["activation_bytes"]


def test_i16_accuracy_against_onnxruntime(digits) -> None:
    """All 297 held-out digits: i16 activations keep onnxruntime's argmax on every sample
    and a logit error within 2^-8 of the logits' range; i32 is finer still."""
    X, want = digits
    cal = {"input": X[:64]}
    err = {}
    for dt in ("i16", "i32"):
        got = _native_logits(api.Model(api.compile(str(DIGITS), act_dtype=dt,
                                                   calibration=cal)), X)
        assert (got.argmax(-1) == want.argmax(-1)).all(), dt
        err[dt] = float(np.abs(got - want).max() / np.abs(want).max())
    assert err["i16"] < 2**-8, err
    assert err["i32"] < err["i16"], err


def test_act_dtype_refused_where_it_does_not_apply() -> None:
    with pytest.raises(OpmlcError, match="applies to the fixed scheme"):
        api.compile(str(DIGITS), scheme="int8", act_dtype="i16")
    with pytest.raises(OpmlcError, match="i16.*i32|not 'i8'"):
        api.compile(str(DIGITS), act_dtype="i8")


def test_cli_act_dtype(tmp_path: Path) -> None:
    out = tmp_path / "d16.opvm"
    r = subprocess.run([sys.executable, "-m", "opmlc", "compile", str(DIGITS), "-o", str(out),
                        "--act-dtype", "i16", "-q"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert api.load(str(out)).meta["options"]["act_dtype"] == "i16"
    r = subprocess.run([sys.executable, "-m", "opmlc", "compile", str(DIGITS), "-o",
                        str(tmp_path / "x.opvm"), "--scheme", "int8", "--act-dtype", "i16",
                        "-q"], capture_output=True, text=True)
    assert r.returncode != 0 and "applies to the fixed scheme" in r.stderr


def test_i16_transformer() -> None:
    """The trained char-level GPT under fixed16: its layer norms and square roots write
    i16 too (every matmul then takes the byte-split dot product), ref == native == VM
    on a window with every node root, and the greedy next characters of 40 held-out
    windows agree with onnxruntime's float32 on at least 99% of positions."""
    from opmlc.frontend import import_onnx
    from opmlc.quantize import quantize

    data = np.load(ROOT / "models" / "charlm_heldout.npz")
    path = ROOT / "models" / "charlm.onnx"
    qm = quantize(import_onnx(str(path)), "fixed", {"input_ids": data["calib"].astype(np.int64)},
                  fixed_act="i16")
    g = qm.graph
    wide = {g.types[o].dtype for n in g.nodes for o in n.outputs} - {"i16", "i64", "bool"}
    assert not wide, wide  # i64: indices and ids only
    m = api.Model(api.compile(qm))
    x = {"input_ids": data["X"][:1].astype(np.int64)}
    ref, nat, vm = (m.run(x, e, trace=True) for e in ("ref", "native", "vm"))
    np.testing.assert_array_equal(nat.outputs["logits"], ref.outputs["logits"])
    np.testing.assert_array_equal(vm.outputs["logits"], ref.outputs["logits"])
    assert nat.node_roots == vm.node_roots
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    X = data["X"][:40].astype(np.int64)
    want = np.concatenate([sess.run(None, {"input_ids": w[None]})[0] for w in X]).argmax(-1)
    got = np.concatenate([m.dequantize(m.run({"input_ids": w[None]}, "native").outputs)
                          ["logits"] for w in X]).argmax(-1)
    assert (got == want).mean() >= 0.99
