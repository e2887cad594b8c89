"""Verifiable generation (``compile --generate N``, spec/GENERATE.md): the unrolled program's
tokens equal a Python loop over the integer reference of the one-step decoder, greedy and
sampled; native == VM on every node root; the CLI takes a prompt and prints the tokens."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_sample_op import _plain_sample

from opmlc import api
from opmlc.frontend import import_onnx
from opmlc.quantize import quantize
from opmlc.quantize.generate import GenerateError, Sampling, sample_table
from opmlc.quantize.interp import evaluate_int
from opmlc_runtime.engines import InputError

ROOT = Path(__file__).resolve().parents[1]
CHARLM = str(ROOT / "models/charlm.onnx")
TINY = str(ROOT / "models/gpt2_tiny.onnx")
VOCAB = str(ROOT / "models/charlm_vocab.json")
DATA = np.load(ROOT / "models/charlm_heldout.npz")


def python_loop(path: str, scheme: str, prompt: np.ndarray, steps: int,
                sample: Sampling | None = None, seed: int = 0) -> list[int]:
    """Generation as a user would write it: one integer-reference forward per token, the
    next token from the logits at the last filled position (argmax, or the plain
    sort-based sampler of test_sample_op on the logit codes)."""
    qm = quantize(import_onnx(path), scheme)
    (ids_name,), (out,) = qm.graph.inputs, qm.graph.outputs
    L = qm.graph.types[ids_name].shape[-1]
    ids = np.zeros((1, L), np.int64)
    ids[0, : prompt.size] = prompt
    toks = []
    for i in range(steps):
        t = prompt.size - 1 + i
        row = evaluate_int(qm.graph, {ids_name: ids})[out][0, t].astype(np.int64)
        if sample is None:
            tok = int(np.argmax(row))
        else:
            table, lo, k = sample_table(float(qm.outputs[out].scale), sample.temperature)
            tok = _plain_sample(row.tolist(), table, lo, k, sample.top_k, seed, i)
        toks.append(tok)
        if t + 1 < L:
            ids[0, t + 1] = tok
    return toks


@pytest.fixture(scope="module")
def tiny_greedy() -> api.Model:
    return api.Model(api.compile(TINY, generate=4))


SAMPLE = Sampling(0.8, 5)


@pytest.fixture(scope="module")
def tiny_sampled() -> api.Model:
    return api.Model(api.compile(TINY, generate=4, sample=SAMPLE))


@pytest.mark.parametrize("engine,prompt", [("native", [3, 14, 15]), ("ref", [9]),
                                           ("ref", [1, 2, 3, 4])])
def test_greedy_tokens_equal_python_loop(tiny_greedy: api.Model, engine: str,
                                         prompt: list[int]) -> None:
    p = np.array(prompt, np.int64)
    res = tiny_greedy.run({"input_ids": p}, engine)
    assert res.outputs["tokens"].tolist() == python_loop(TINY, "fixed", p, 4)


@pytest.mark.parametrize("engine,seed", [("native", 0), ("ref", 1), ("ref", 2**63 + 5)])
def test_sampled_tokens_equal_python_loop(tiny_sampled: api.Model, engine: str,
                                          seed: int) -> None:
    prompt = np.array([3, 14, 15], np.int64)
    got = tiny_sampled.run({"input_ids": prompt, "seed": seed}, engine).outputs["tokens"]
    assert got.tolist() == python_loop(TINY, "fixed", prompt, 4, SAMPLE, seed % 2**64)


def test_the_seed_matters(tiny_sampled: api.Model) -> None:
    prompt = np.array([7], np.int64)
    runs = {tuple(tiny_sampled.run({"input_ids": prompt, "seed": s}, "ref").outputs[
        "tokens"].tolist()) for s in range(6)}
    assert len(runs) > 1


def test_top_k_one_samples_the_greedy_tokens(tiny_greedy: api.Model) -> None:
    prompt = np.array([1, 2, 3, 4], np.int64)
    top1 = api.Model(api.compile(TINY, generate=4, sample="temperature=2,top_k=1"))
    assert top1.run({"input_ids": prompt, "seed": 99}, "ref").outputs["tokens"].tolist() == \
        tiny_greedy.run({"input_ids": prompt}, "ref").outputs["tokens"].tolist()


@pytest.mark.parametrize("which", ["tiny_greedy", "tiny_sampled"])
def test_native_equals_vm_on_every_node_root(which: str, request: pytest.FixtureRequest
                                             ) -> None:
    m = request.getfixturevalue(which)
    inputs = {"input_ids": np.array([[5, 9]], np.int64), "seed": 7}
    if m.program.gen.seed is None:
        del inputs["seed"]
    nat = m.run(inputs, "native", trace=True)
    vm = m.run(inputs, "vm", trace=True)
    assert nat.outputs["tokens"].tolist() == vm.outputs["tokens"].tolist()
    assert nat.node_roots == vm.node_roots and nat.state_root == vm.state_root
    assert len(nat.node_roots) == len(m.meta["nodes"])


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["fixed", "int8"])
def test_charlm_greedy_tokens_equal_python_loop(scheme: str) -> None:
    """The trained model: native tokens == the Python loop, two prompts."""
    m = api.Model(api.compile(CHARLM, scheme=scheme, generate=5))
    for row in (0, 7):
        prompt = DATA["X"][row][: 12 + row].astype(np.int64)
        got = m.run({"input_ids": prompt}, "native").outputs["tokens"].tolist()
        assert got == python_loop(CHARLM, scheme, prompt, 5)


def test_prompt_and_seed_errors() -> None:
    m = api.Model(api.compile(TINY, generate=3, sample="temperature=1"))
    with pytest.raises(InputError, match=r"expected 1\.\.5 token ids"):
        m.run({"input_ids": np.arange(6), "seed": 1})
    with pytest.raises(InputError, match="missing input 'seed'"):
        m.run({"input_ids": np.arange(2)})
    with pytest.raises(InputError, match=r"must lie in \[0, 63\]"):
        m.run({"input_ids": np.array([64]), "seed": 1})
    with pytest.raises(InputError, match="integer token ids"):
        m.run({"input_ids": np.array([1.0]), "seed": 1})
    with pytest.raises(InputError, match="missing input 'input_ids'"):
        m.run({"seed": 1})


def test_compile_errors() -> None:
    with pytest.raises(GenerateError, match=r"1 <= N <= L - 1 = 7"):
        api.compile(TINY, generate=8)
    with pytest.raises(GenerateError, match="exactly one input"):
        api.compile(str(ROOT / "models/digits_cnn.onnx"), generate=2)
    with pytest.raises(GenerateError, match="temperature must be > 0"):
        api.compile(TINY, generate=2, sample="temperature=0")
    with pytest.raises(GenerateError, match="expected temperature=T,top_k=K"):
        api.compile(TINY, generate=2, sample="temp=1")
    with pytest.raises(api.OpmlcError, match="apply to --generate N only"):
        api.compile(TINY, sample="temperature=1")


def test_context_fixes_a_symbolic_length(tmp_path: Path) -> None:
    import onnx

    m = onnx.load(TINY)
    for v in (m.graph.input[0], m.graph.output[0]):
        d = v.type.tensor_type.shape.dim[1]
        d.ClearField("dim_value")
        d.dim_param = "T"
    dyn = tmp_path / "dyn.onnx"
    onnx.save(m, dyn)
    with pytest.raises(api.OpmlcError, match="symbolic length.*--context L"):
        api.compile(dyn, generate=2)
    art = api.compile(dyn, generate=2, context=8)
    assert art.meta["options"]["generate"]["context"] == 8
    p = np.array([3, 1], np.int64)
    assert api.Model(art).run({"input_ids": p}, "ref").outputs["tokens"].tolist() == \
        python_loop(TINY, "fixed", p, 2)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opmlc", *args], capture_output=True,
                          text=True, cwd=ROOT)


@pytest.mark.slow
def test_cli_generate_with_text_prompt(tmp_path: Path) -> None:
    art = tmp_path / "gen.opvm"
    r = _cli("compile", CHARLM, "--generate", "4", "-o", str(art), "-q")
    assert r.returncode == 0, r.stderr
    r = _cli("run", str(art), "--prompt", "Permission is ", "--vocab", VOCAB, "--json",
             "--commit")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    vocab = json.loads(Path(VOCAB).read_text())
    prompt = np.array([vocab.index(c) for c in "Permission is "], np.int64)
    assert d["tokens"] == python_loop(CHARLM, "fixed", prompt, 4)
    assert d["text"] == "".join(vocab[t] for t in d["tokens"])
    np.save(tmp_path / "p.npy", prompt)
    for name in ("input_ids", "ids"):  # the model's name, or the generic one
        r2 = _cli("run", str(art), "--input", f"{name}={tmp_path / 'p.npy'}", "--json",
                  "--commit")
        assert json.loads(r2.stdout)["state_root"] == d["state_root"], r2.stderr
    bad = _cli("run", str(art), "--prompt", "é", "--vocab", VOCAB)
    assert bad.returncode != 0 and "is not in the vocabulary" in bad.stderr
    bad = _cli("run", str(art), "--prompt", "x")
    assert bad.returncode != 0 and "--prompt needs --vocab" in bad.stderr


@pytest.mark.evm
@pytest.mark.parametrize("where", ["sample", "step1-matmul"])
def test_disputed_generation_is_won_by_the_honest_side(tiny_sampled: api.Model,
                                                       where: str) -> None:
    """One game for the whole generation: a submitter whose run went wrong inside step 1
    (in its q.sample draw, or in a matmul of the decoder's second copy) loses on a real EVM
    (revm) to the honest challenger, the dispute ending in one VM step on chain."""
    pytest.importorskip("pyrevm")
    from opmlc.cli.game import compile_contracts
    from opmlc_runtime.agents import Fault, HonestView, LyingView, play
    from opmlc_runtime.game import Game, RevmChain

    m = tiny_sampled
    x = {"input_ids": np.array([4, 2], np.int64), "seed": 11}
    nodes = m.meta["nodes"]
    k = next(i for i, n in enumerate(nodes, 1) if (
        n["op"] == "q.sample" and n["name"].endswith("g1/tok") if where == "sample" else
        n["op"].startswith("q.matmul") and "s1/" in n["name"]))
    f = Fault(k, int(nodes[k - 1]["steps"]) // 2, offset=5)
    out = play(Game(RevmChain(), *compile_contracts()), m.program, x,
               LyingView(m.program, x, f), HonestView(m.program, x), "challenger")
    assert out.winner == "challenger" and out.disputed_node == k, out.to_json()
