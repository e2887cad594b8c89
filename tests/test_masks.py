"""Causal masks written the usual PyTorch ways quantize, and a masked position's softmax is
exactly 0 (issue 11, part 0). The small decoders are built here with onnx.helper in the
shapes torch's TorchScript exporter (opset 17) gives each idiom:

* ``masked_fill``: nanoGPT ``att.masked_fill(tril[:T, :T] == 0, float("-inf"))`` ->
  Trilu(ones), Equal(., 0), Where(eq, -inf, scores)
* ``additive``: ``att + torch.triu(torch.full((T, T), float("-inf")), 1)`` -> Add(scores, C)
* ``finfo``: the same with ``torch.finfo(torch.float32).min`` (HF LLaMA)
* ``bool_where``: ``torch.where(tril_bool, att, finfo.min)`` -> Where(keep, scores, MIN)
* ``sdpa``: ``F.scaled_dot_product_attention(q, k, v, is_causal=True)`` -> q and k each
  scaled by sqrt(1/sqrt(d)), Trilu(ones), Equal(., 0), Where(eq, -inf, 0.0), Add, Softmax
* ``minus1e4``: GPT-2's finite ``masked_fill(..., -1e4)``
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from backend_util import check_engines
from onnx import TensorProto, helper, numpy_helper

from opmlc import api

T, D, H, V = 8, 16, 2, 32
HD = D // H
IDIOMS = ["masked_fill", "additive", "finfo", "bool_where", "sdpa", "minus1e4"]
F32_MIN = float(np.finfo(np.float32).min)


def decoder(idiom: str, seed: int = 0) -> onnx.ModelProto:
    """One attention block + lm head: ids [1, T] -> logits [1, T, V]."""
    rng = np.random.default_rng(seed)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def c(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def n(op: str, ins: list[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(op, ins, [out], **attrs))
        return out

    w = lambda *s: (rng.standard_normal(s) / np.sqrt(s[0])).astype(np.float32)  # noqa: E731
    x = n("Gather", [c("wte", rng.standard_normal((V, D)).astype(np.float32)), "input_ids"],
          "x", axis=0)
    x = n("Add", [x, c("wpe", 0.1 * rng.standard_normal((T, D)).astype(np.float32))], "xp")
    qkv = n("Add", [n("MatMul", [x, c("w_qkv", w(D, 3 * D))], "qkv0"),
                    c("b_qkv", np.zeros(3 * D, np.float32))], "qkv")
    nodes.append(helper.make_node("Split", [qkv, c("split", np.array([D] * 3))],
                                  ["q0", "k0", "v0"], axis=2))
    shp = c("heads", np.array([1, T, H, HD]))
    q = n("Transpose", [n("Reshape", ["q0", shp], "q1")], "q", perm=[0, 2, 1, 3])
    kt = n("Transpose", [n("Reshape", ["k0", shp], "k1")], "kt", perm=[0, 2, 3, 1])
    v = n("Transpose", [n("Reshape", ["v0", shp], "v1")], "v", perm=[0, 2, 1, 3])
    ones = c("ones", np.ones((T, T), np.float32))
    if idiom == "sdpa":
        r = c("sqrt_scale", np.array([HD ** -0.25], np.float32))
        s = n("MatMul", [n("Mul", [q, r], "qs"), n("Mul", [kt, r], "ks")], "scores")
        eq = n("Equal", [n("Trilu", [ones], "tril", upper=0),
                         c("zero", np.array(0.0, np.float32))], "eq")
        add = n("Where", [eq, c("ninf", np.array(-np.inf, np.float32)),
                          c("fzero", np.array(0.0, np.float32))], "addmask")
        att = n("Add", [s, add], "att")
    else:
        s = n("Mul", [n("MatMul", [q, kt], "qk"), c("scale", np.array(HD ** -0.5, np.float32))],
              "scores")
        tri_inf = np.triu(np.full((T, T), -np.inf, np.float32), 1)
        if idiom in ("masked_fill", "minus1e4"):
            eq = n("Equal", [n("Trilu", [ones], "tril", upper=0),
                             c("zero", np.array(0.0, np.float32))], "eq")
            fill = -np.inf if idiom == "masked_fill" else -1e4
            att = n("Where", [eq, c("fill", np.array(fill, np.float32)), s], "att")
        elif idiom == "additive":
            att = n("Add", [s, c("mask", tri_inf)], "att")
        elif idiom == "finfo":
            att = n("Add", [s, c("mask", np.where(np.isinf(tri_inf), F32_MIN, 0).astype(
                np.float32))], "att")
        else:  # bool_where
            att = n("Where", [c("keep", np.tril(np.ones((T, T), np.bool_))), s,
                              c("fmin", np.array(F32_MIN, np.float32))], "att")
    p = n("Softmax", [att], "probs", axis=-1)
    y = n("Transpose", [n("MatMul", [p, v], "pv")], "y0", perm=[0, 2, 1, 3])
    y = n("Reshape", [y, c("flat", np.array([1, T, D]))], "y1")
    h = n("Add", [x, n("MatMul", [y, c("w_o", w(D, D))], "o")], "h")
    n("MatMul", [h, c("w_head", w(D, V))], "logits")
    graph = helper.make_graph(
        nodes, f"decoder_{idiom}",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, T])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, T, V])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _ids(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, V, (1, T)).astype(np.int64)


CAL = {"input_ids": np.random.default_rng(7).integers(0, V, (16, T)).astype(np.int64)}


@pytest.mark.parametrize("scheme", ["fixed", "int8"])
@pytest.mark.parametrize("idiom", IDIOMS)
def test_mask_idiom(idiom: str, scheme: str) -> None:
    model = decoder(idiom)
    art = api.compile(model, scheme=scheme, calibration=CAL)
    m = api.Model(art)
    ids = _ids(1)
    ref = check_engines(m, {"input_ids": ids})  # ref == native == fast VM, every tensor
    # the softmax: masked positions (j > i) are exactly real 0; one softmax node, keep-masked
    soft = [nd for nd in m.meta["nodes"] if nd["op"] == "q.softmax"]
    assert len(soft) == 1
    line = next(ln for ln in art.ir_text.splitlines() if "q.softmax(" in ln)
    assert line.count(",") > 1 and ".keep" in line, line  # q.softmax(x, table, keep)
    probs = m.tensors(ref)[soft[0]["outputs"][0]]
    zp = -128 if scheme == "int8" else 0
    future = np.triu(np.ones((T, T), bool), 1)
    assert (probs[..., future] == zp).all()
    assert (probs[..., ~future] != zp).any()
    # exact causality in the integer model: a later token never moves an earlier logit
    ids2 = ids.copy()
    ids2[0, 5] = (ids2[0, 5] + 1) % V
    out1 = m.run({"input_ids": ids}, "native").outputs["logits"]
    out2 = m.run({"input_ids": ids2}, "native").outputs["logits"]
    assert np.array_equal(out1[:, :5], out2[:, :5])
    assert not np.array_equal(out1[:, 5:], out2[:, 5:])
    # and close to the float model (onnxruntime)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    f = sess.run(None, {"input_ids": ids})[0]
    q = m.dequantize({"logits": out1})["logits"]
    rel = float(np.abs(q - f).max() / np.abs(f).max())
    assert rel < (0.01 if scheme == "fixed" else 0.15), rel


def test_mask_idioms_agree() -> None:
    """Every idiom is the same function: one integer program up to names (fixed)."""
    outs = []
    for idiom in IDIOMS:
        m = api.Model(api.compile(decoder(idiom), calibration=CAL))
        outs.append(m.run({"input_ids": _ids(2)}, "native").outputs["logits"])
    for o in outs[1:4]:
        np.testing.assert_array_equal(o, outs[0])


def test_mask_stepper() -> None:
    """The reference stepper agrees too (one idiom, int8)."""
    m = api.Model(api.compile(decoder("masked_fill"), scheme="int8", calibration=CAL))
    check_engines(m, {"input_ids": _ids(3)}, engines=("stepper",), commit=False)


def test_float_softmax_keep() -> None:
    """The float reference of softmax(x, keep): masked exactly 0, rows fully masked 0."""
    from opmlc.ir.ops import OPS

    x = np.array([[1.0, 2.0, 3.0], [0.5, -np.inf, 7.0]], np.float32)
    keep = np.array([[1, 1, 0], [0, 0, 0]], np.bool_)
    y = OPS["softmax"].ref(x, keep, axis=1)
    e = np.exp(np.array([1.0, 2.0]) - 2.0)
    np.testing.assert_allclose(y[0], [*(e / e.sum()), 0.0], rtol=1e-6)
    assert (y[1] == 0).all()
