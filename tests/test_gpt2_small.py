"""A GPT-2 decoder with GPT-2 small's vocabulary and width (issue 11 part 3, the suite's
size): 50257 x 768 token table and tied lm_head, 2 layers, 12 heads, context 8, built
with the onnx helper API (tests/gpt2_graph.py: the graph torch exports for
scripts/make_models.py's gpt2_small, no torch needed). Under both schemes: it compiles,
the native engine equals the integer reference bit for bit (outputs and final state
root), and the lm_head node (2.8e9 VM steps, the model's largest) disputed on the fast VM
from its natively materialised start boundary lands on the native S_K.

The real size (12 layers, context 128, 1.5e11 VM steps) is bench/bench_gpt2.py's.
"""

from __future__ import annotations

import numpy as np
import pytest
from gpt2_graph import gpt2_onnx

from opmlc import api
from opmlc_runtime.trace import NodeReplay

VOCAB, D, HEADS, LAYERS, CTX = 50257, 768, 12, 2, 8


@pytest.fixture(scope="module")
def onnx_model():
    return gpt2_onnx(LAYERS, D, HEADS, VOCAB, CTX, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["fixed", "int8"])
def test_gpt2_vocab_50k_ref_native_fast_vm(onnx_model, scheme: str) -> None:
    m = api.Model(api.compile(onnx_model, scheme=scheme))
    nodes = m.meta["nodes"]
    assert int(m.meta["total_steps"]) > 2e9
    ids = np.random.default_rng(2).integers(0, VOCAB, (1, CTX)).astype(np.int64)
    ids[0, :2] = [0, VOCAB - 1]  # both ends of the table
    x = {"input_ids": ids}
    ref = m.run(x, "ref", commit=True)
    nat = m.run(x, "native", commit=True)
    assert ref.outputs["logits"].shape == (1, CTX, VOCAB)
    for k in ref.outputs:
        np.testing.assert_array_equal(nat.outputs[k], ref.outputs[k])
    assert nat.state_root == ref.state_root and nat.steps == ref.steps

    ph = m.trace(x)
    assert ph.final == nat.state_root
    k = 1 + max(range(len(nodes)), key=lambda j: int(nodes[j]["steps"]))
    assert nodes[k - 1]["op"].startswith("q.matmul") and "logits" in nodes[k - 1]["outputs"]
    rep = NodeReplay(m.program, x, k)
    assert rep.root(0) == ph.roots[k - 1]
    assert rep.root(int(nodes[k - 1]["steps"])) == ph.roots[k]
