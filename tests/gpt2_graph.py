"""A GPT-2-architecture decoder written with the onnx helper API (no torch).

``gpt2_onnx(layers, d, heads, vocab, ctx)`` emits the graph that
``scripts/make_models.py``'s ``gpt2_small`` builder gets from torch's TorchScript
exporter (opset 17, constant folding): token Gather, a constant position table added,
pre-LayerNormalization blocks with a fused qkv MatMul split three ways, heads by
Reshape / Transpose, a Mul by 1/sqrt(head dim), the causal mask as Trilu -> Equal ->
Where(-1e4), Softmax, erf GELU, and an lm_head tied to the token table (a MatMul on
its folded transpose). Weights are seeded N(0, 0.02) as GPT-2 initialises them, so
the suite can build a decoder with a real-size vocabulary in a second.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def gpt2_onnx(layers: int = 2, d: int = 768, heads: int = 12, vocab: int = 50257,
              ctx: int = 16, seed: int = 0) -> onnx.ModelProto:
    """GPT-2 decoder: input_ids int64 [1, ctx] -> logits float32 [1, ctx, vocab]."""
    rng = np.random.default_rng(seed)
    hd = d // heads
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def w(name: str, *shape: int, std: float = 0.02, value: float | None = None) -> str:
        a = (np.full(shape, value, np.float32) if value is not None
             else rng.standard_normal(shape, np.float32) * np.float32(std))
        inits.append(numpy_helper.from_array(a, name))
        return name

    def const(name: str, a: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(a), name))
        return name

    def node(op: str, ins: list[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(op, ins, [out], name=out, **attrs))
        return out

    wte = w("wte.weight", vocab, d)
    x = node("Gather", [wte, "input_ids"], "tok")
    x = node("Add", [x, w("wpe", ctx, d, std=0.01)], "emb")
    shape4 = const("shape4", np.array([1, ctx, heads, hd], np.int64))
    shape3 = const("shape3", np.array([1, ctx, d], np.int64))
    split = const("split", np.array([d, d, d], np.int64))
    ones = const("ones", np.ones((ctx, ctx), np.float32))
    zero = const("zero", np.array(0.0, np.float32))
    neg = const("neg", np.array(-1e4, np.float32))
    scale = const("scale", np.array(1.0 / hd ** 0.5, np.float32))
    sqrt2 = const("sqrt2", np.array(2 ** 0.5, np.float32))
    one = const("one", np.array(1.0, np.float32))
    half = const("half", np.array(0.5, np.float32))

    def ln(p: str, x: str) -> str:
        return node("LayerNormalization", [x, w(f"{p}.weight", d, value=1.0),
                                           w(f"{p}.bias", d, value=0.0)],
                    f"{p}.out", axis=-1, epsilon=1e-5)

    def linear(p: str, x: str, n_in: int, n_out: int) -> str:
        y = node("MatMul", [x, w(f"{p}.w", n_in, n_out)], f"{p}.mm")
        return node("Add", [w(f"{p}.b", n_out, value=0.0), y], f"{p}.out")

    for i in range(layers):
        p = f"h{i}"
        qkv = linear(f"{p}.c_attn", ln(f"{p}.ln_1", x), d, 3 * d)
        nodes.append(helper.make_node("Split", [qkv, split], [f"{p}.q", f"{p}.k", f"{p}.v"],
                                      axis=2))
        q, k, v = (node("Reshape", [f"{p}.{t}", shape4], f"{p}.{t}4") for t in "qkv")
        q = node("Transpose", [q], f"{p}.qt", perm=[0, 2, 1, 3])
        v = node("Transpose", [v], f"{p}.vt", perm=[0, 2, 1, 3])
        k = node("Transpose", [k], f"{p}.kt", perm=[0, 2, 3, 1])
        att = node("Mul", [node("MatMul", [q, k], f"{p}.qk"), scale], f"{p}.att")
        tril = node("Trilu", [ones], f"{p}.tril", upper=0)
        masked = node("Equal", [tril, zero], f"{p}.masked")
        att = node("Where", [masked, neg, att], f"{p}.att_m")
        att = node("Softmax", [att], f"{p}.prob", axis=-1)
        y = node("Transpose", [node("MatMul", [att, v], f"{p}.av")], f"{p}.yt",
                 perm=[0, 2, 1, 3])
        y = node("Reshape", [y, shape3], f"{p}.y")
        x = node("Add", [x, linear(f"{p}.c_proj", y, d, d)], f"{p}.res1")
        h = linear(f"{p}.fc", ln(f"{p}.ln_2", x), d, 4 * d)
        e = node("Erf", [node("Div", [h, sqrt2], f"{p}.g_div")], f"{p}.g_erf")
        g = node("Mul", [node("Mul", [h, node("Add", [e, one], f"{p}.g_add")], f"{p}.g_mul"),
                         half], f"{p}.gelu")
        x = node("Add", [x, linear(f"{p}.proj", g, 4 * d, d)], f"{p}.res2")
    x = ln("ln_f", x)
    wte_t = np.ascontiguousarray(numpy_helper.to_array(inits[0]).T)  # tied lm_head, folded
    nodes.append(helper.make_node("MatMul", [x, const("lm_head.w", wte_t)], ["logits"],
                                  name="lm_head"))
    graph = helper.make_graph(
        nodes, "gpt2", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, ctx])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, ctx, vocab])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="opmlc tests/gpt2_graph.py")
    model.ir_version = 8
    return model
