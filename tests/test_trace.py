"""Challenge traces (spec/TRACE.md): phase-2 roots and commitment, inclusion proofs, the
states of one node by fast-forward, checkpoints, and the seams between them.

The references are independent: the phase-2 roots of the native kernels are checked
against the fast VM and the reference stepper; node states against the stepper run
from the node's start; witnesses against the generated Solidity verifier on a real EVM;
the commitment against a tree hashed here by hand.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from opmlc import api
from opmlc.cli import main
from opmlc_runtime.keccak import keccak256
from opmlc_runtime.trace import (
    CheckpointError,
    NodeReplay,
    TraceError,
    commitment,
    inclusion_proof,
    phase2,
    verify_inclusion,
)

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
DIGITS = np.load(MODELS / "digits_test.npz")


@pytest.fixture(scope="module")
def cnn() -> api.Model:
    return api.Model(api.compile(MODELS / "digits_cnn.onnx"))


@pytest.fixture(scope="module")
def mlp() -> api.Model:
    return api.Model(api.compile(MODELS / "digits_mlp_sklearn.onnx"))


def cnn_input(i: int = 0) -> dict:
    return {"input": DIGITS["X"][i].reshape(1, 1, 8, 8)}


def mlp_input(i: int = 0) -> dict:
    return {"input": DIGITS["X"][i].reshape(1, 64)}


# ---------------------------------------------------------------- the commitment


def _by_hand(leaves: list[bytes]) -> bytes:
    level = list(leaves)
    while len(level) & (len(level) - 1):
        level.append(bytes(32))
    while len(level) > 1:
        level = [keccak256(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 9])
def test_commitment_padding_and_proofs(n: int) -> None:
    roots = [keccak256(bytes([i])) for i in range(n)]
    c = commitment(roots)
    assert c == _by_hand(roots)
    if n == 1:
        assert c == roots[0]
    for i, r in enumerate(roots):
        path = inclusion_proof(roots, i)
        assert len(path) == (n - 1).bit_length()
        assert verify_inclusion(c, i, r, path)
        assert not verify_inclusion(c, i, keccak256(r), path)  # another leaf
        if n > 1:
            assert not verify_inclusion(c, i ^ 1, r, path)  # another index
            bad = list(path)
            bad[0] = keccak256(bad[0])
            assert not verify_inclusion(c, i, r, bad)
    with pytest.raises(TraceError, match="out of range"):
        inclusion_proof(roots, n)


# ---------------------------------------------------------------- phase 2


def test_phase2_matches_run_and_engines(mlp: api.Model) -> None:
    x = mlp_input(3)
    ph = mlp.trace(x)
    run = mlp.run(x, "native", trace=True)
    assert ph.roots == [run.initial_root, *run.node_roots]
    assert ph.final == run.state_root
    assert ph.commitment == _by_hand(ph.roots)
    for engine in ("vm", "stepper"):
        other = phase2(mlp.program, x, engine)
        assert other.roots == ph.roots and other.final == ph.final, engine
    assert [n["steps"] for n in ph.nodes] == [int(n["steps"]) for n in mlp.meta["nodes"]]


def test_phase2_cnn_native_equals_fast_vm(cnn: api.Model) -> None:
    x = cnn_input(1)
    a, b = phase2(cnn.program, x, "native"), phase2(cnn.program, x, "vm")
    assert a.roots == b.roots and a.final == b.final and a.commitment == b.commitment


@pytest.mark.slow
def test_phase2_cnn_stepper(cnn: api.Model) -> None:
    x = cnn_input(2)
    assert phase2(cnn.program, x, "stepper").roots == phase2(cnn.program, x).roots


# ---------------------------------------------------------------- phase 1: seams and states


@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_seams(which: str, request) -> None:
    """Node k's step 0 is S_{k-1}, its last step S_k; a middle step is neither."""
    m = request.getfixturevalue(which)
    x = mlp_input(4) if which == "mlp" else cnn_input(4)
    ph = m.trace(x)
    for k in range(1, len(ph.roots)):
        rep = m.node_trace(x, k)
        assert rep.root(0) == ph.roots[k - 1], k
        assert rep.root(rep.steps) == ph.roots[k], k
        if rep.steps > 1:
            assert rep.root(rep.steps // 2) not in (ph.roots[k - 1], ph.roots[k])
        assert rep.global_step(rep.steps) == int(m.meta["nodes"][k - 1]["step_end"])


def test_states_equal_the_stepper(cnn: api.Model) -> None:
    """Fast-forward (fast VM, checkpoints, back and forth) == the reference stepper run
    from the node's start, on the full core state, memory bytes and roots."""
    x = cnn_input(5)
    fast = cnn.node_trace(x, 1)
    ref = cnn.node_trace(x, 1, engine="stepper")
    rng = np.random.default_rng(0)
    ts = sorted({int(t) for t in rng.integers(0, fast.steps + 1, 6)} | {0, 1, fast.steps})
    order = [ts[-2], ts[1], ts[-1], ts[0], *ts[2:-2]]  # forwards, backwards, forwards
    region = fast.regions[0]
    for t in order:
        assert fast.state(t) == ref.state(t), t
        assert fast.read(t, *region) == ref.read(t, *region), t
        assert fast.root(t) == ref.root(t), t
    for t in ts[:-1][:4]:
        assert fast.prove(t) == ref.prove(t), t


def test_bisection_costs_linear_steps(cnn: api.Model) -> None:
    """A whole binary bisection over the largest node replays O(steps) VM steps."""
    x = cnn_input(6)
    k = max(range(1, len(cnn.meta["nodes"]) + 1),
            key=lambda j: int(cnn.meta["nodes"][j - 1]["steps"]))
    rep = cnn.node_trace(x, k)
    honest = rep.root(rep.steps)  # the node's end, as the parties agree on S_k's side
    lo, hi, rounds = 0, rep.steps, 0
    target = rep.steps * 3 // 7  # where a liar's trace first differs
    while hi - lo > 1:
        mid = (lo + hi) // 2
        rep.root(mid)
        lo, hi = (mid, hi) if mid < target else (lo, mid)
        rounds += 1
    proof = rep.prove(lo)
    assert rounds == (rep.steps - 1).bit_length() or rounds == rep.steps.bit_length() - 1
    vm = rep._vm
    replayed = vm.stats["jit_steps"] + vm.stats["ref_steps"]
    assert replayed <= 2 * rep.steps + 2 * rounds, (replayed, rep.steps)
    assert rep.root(rep.steps) == honest
    assert proof["global_step"] == rep.global_step(lo)


def test_bad_queries(cnn: api.Model) -> None:
    x = cnn_input()
    n = len(cnn.meta["nodes"])
    with pytest.raises(TraceError, match=f"node {n + 1} out of range.*1..{n}"):
        NodeReplay(cnn.program, x, n + 1)
    with pytest.raises(TraceError, match="node 0 out of range"):
        NodeReplay(cnn.program, x, 0)
    rep = cnn.node_trace(x, 1)
    with pytest.raises(TraceError, match="past the node's end"):
        rep.root(rep.steps + 1)
    with pytest.raises(TraceError, match="past the node's end"):
        rep.prove(rep.steps)
    with pytest.raises(TraceError, match="past the node's end"):
        rep.root(-1)
    zero = [k + 1 for k, nd in enumerate(cnn.meta["nodes"]) if int(nd["steps"]) == 0]
    if zero:
        with pytest.raises(TraceError, match="0 steps"):
            cnn.node_trace(x, zero[0]).prove(0)


# ---------------------------------------------------------------- checkpoints


def test_checkpoints_persist_and_are_checked(cnn: api.Model, tmp_path: Path) -> None:
    x = cnn_input(7)
    folder = tmp_path / "ck"
    first = NodeReplay(cnn.program, x, 1, folder)
    t = first.steps - 5
    want = first.root(t)
    assert (folder / "manifest.json").is_file()
    assert (folder / f"node1-step{t}.ckpt").is_file()
    again = NodeReplay(cnn.program, x, 1, folder)
    assert again.root(t + 2) == first.root(t + 2)
    assert again._vm.stats["jit_steps"] + again._vm.stats["ref_steps"] <= 2  # from t
    # a damaged checkpoint is ignored, a forged one (valid digest, wrong bytes) dropped
    path = folder / f"node1-step{t}.ckpt"
    raw = bytearray(path.read_bytes())
    raw[-40] ^= 1
    path.write_bytes(bytes(raw))
    assert NodeReplay(cnn.program, x, 1, folder).root(t) == want
    import hashlib

    body = bytearray(raw[:-32])
    body[-1] ^= 1  # the last region byte: a state that the recorded root does not match
    path.write_bytes(bytes(body) + hashlib.sha256(bytes(body)).digest())
    forged = NodeReplay(cnn.program, x, 1, folder)
    assert t in forged._cps  # it passed the file checks ...
    assert forged.root(t + 1) == first.root(t + 1)  # ... but not the root check
    assert t not in forged._cps or t in forged._trusted


def test_foreign_checkpoint_folder_is_refused(cnn: api.Model, mlp: api.Model,
                                              tmp_path: Path) -> None:
    folder = tmp_path / "ck"
    NodeReplay(cnn.program, cnn_input(0), 1, folder).root(3)
    with pytest.raises(CheckpointError, match="another input"):
        NodeReplay(cnn.program, cnn_input(1), 1, folder)
    with pytest.raises(CheckpointError, match="another artifact"):
        NodeReplay(mlp.program, mlp_input(0), 1, folder)
    other = tmp_path / "stuff"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="not empty"):
        NodeReplay(cnn.program, cnn_input(0), 1, other)


# ---------------------------------------------------------------- the EVM accepts the witnesses


@pytest.mark.evm
def test_witnesses_verify_on_the_evm(cnn: api.Model) -> None:
    pytest.importorskip("pyrevm")
    from opmlc_isagen.solc import compile_solidity
    from opmlc_isagen.solidity import CONTRACT, generate_verifier
    from opmlc_runtime.evm import StepVerifier

    verifier = StepVerifier(compile_solidity(generate_verifier(), CONTRACT))
    x = cnn_input(8)
    rng = np.random.default_rng(1)
    checked = 0
    for k, nd in enumerate(cnn.meta["nodes"], start=1):
        steps = int(nd["steps"])
        if not steps:
            continue
        rep = cnn.node_trace(x, k)
        for t in sorted({0, steps - 1, *(int(v) for v in rng.integers(0, steps, 3))}):
            p = rep.prove(t)
            post = verifier.step(bytes.fromhex(p["pre_root"][2:]),
                                 bytes.fromhex(p["witness"][2:]))
            assert "0x" + post.hex() == p["post_root"] == "0x" + rep.root(t + 1).hex()
            checked += 1
    assert checked >= 12


# ---------------------------------------------------------------- CLI


def _npy(tmp_path: Path, x: np.ndarray) -> str:
    p = tmp_path / "x.npy"
    np.save(p, x)
    return str(p)


def test_cli_trace(cnn: api.Model, tmp_path: Path, capsys) -> None:
    art = tmp_path / "cnn.opvm"
    cnn.artifact.save(art)
    x = _npy(tmp_path, cnn_input(9)["input"])
    assert main(["trace", str(art), "--input", f"input={x}", "--json", "-q"]) == 0
    doc = json.loads(capsys.readouterr().out)
    run = cnn.run(cnn_input(9), "native", trace=True)
    assert doc["s0"] == doc["roots"][0] == "0x" + run.initial_root.hex()
    assert doc["roots"][1:] == ["0x" + r.hex() for r in run.node_roots]
    assert doc["final"] == "0x" + run.state_root.hex()
    assert [n["steps"] for n in doc["nodes"]] == [int(n["steps"]) for n in cnn.meta["nodes"]]
    assert main(["trace", str(art), "--input", f"input={x}", "--inclusion", "2", "--json",
                 "-q"]) == 0
    inc = json.loads(capsys.readouterr().out)
    assert inc["root"] == doc["roots"][2] and inc["commitment"] == doc["commitment"]
    assert verify_inclusion(bytes.fromhex(inc["commitment"][2:]), 2,
                            bytes.fromhex(inc["root"][2:]),
                            [bytes.fromhex(p[2:]) for p in inc["path"]])
    ck = tmp_path / "ck"
    assert main(["trace", str(art), "--input", f"input={x}", "--node", "1", "--step", "100",
                 "--checkpoints", str(ck), "--json", "-q"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st == {"node": 1, "step": 100, "global_step": 100,
                  "root": "0x" + cnn.node_trace(cnn_input(9), 1).root(100).hex()}
    assert main(["trace", str(art), "--input", f"input={x}", "--node", "1", "--prove", "99",
                 "--checkpoints", str(ck), "--json", "-q"]) == 0
    pr = json.loads(capsys.readouterr().out)
    assert pr["post_root"] == st["root"] and set(pr) == {
        "node", "step", "global_step", "pre_root", "post_root", "witness"}


@pytest.mark.parametrize("argv, msg", [
    (["--node", "99", "--step", "0"], "node 99 out of range"),
    (["--node", "1", "--step", "999999999"], "past the node's end"),
    (["--node", "1", "--prove", "-1"], "past the node's end"),
    (["--step", "3"], "need --node"),
    (["--node", "1"], "needs --step"),
    (["--inclusion", "99"], "out of range"),
])
def test_cli_trace_errors(cnn: api.Model, tmp_path: Path, capsys, argv, msg) -> None:
    art = tmp_path / "cnn.opvm"
    cnn.artifact.save(art)
    x = _npy(tmp_path, cnn_input(0)["input"])
    assert main(["trace", str(art), "--input", f"input={x}", "-q", *argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("opmlc: error: ") and msg in err[0], err


def test_cli_foreign_checkpoints_subprocess(cnn: api.Model, tmp_path: Path) -> None:
    """The real entry point: a folder of another input is one line and exit 1."""
    art = tmp_path / "cnn.opvm"
    cnn.artifact.save(art)
    ck = tmp_path / "ck"
    NodeReplay(cnn.program, cnn_input(1), 1, ck).root(5)
    x = _npy(tmp_path, cnn_input(0)["input"])
    out = subprocess.run([sys.executable, "-m", "opmlc", "trace", str(art), "--input",
                          f"input={x}", "--node", "1", "--step", "5", "--checkpoints",
                          str(ck), "-q"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "another input" in out.stderr, out.stderr


def test_cli_trace_saturate_matches_run(cnn: api.Model, tmp_path: Path, capsys) -> None:
    """An input the policy refuses is refused by trace too; with --saturate, trace's final
    root is the one `opmlc run --saturate` commits to."""
    art = tmp_path / "cnn.opvm"
    cnn.artifact.save(art)
    x = cnn_input(2)["input"].copy()
    x[0, 0, 0, 0], x[0, 0, 0, 1] = np.nan, 1e9
    xp = _npy(tmp_path, x)
    assert main(["trace", str(art), "--input", f"input={xp}", "-q", "--json"]) == 1
    assert "not representable" in capsys.readouterr().err
    assert main(["trace", str(art), "--input", f"input={xp}", "-q", "--json",
                 "--saturate"]) == 0
    out, err = capsys.readouterr()
    assert "saturated" in err
    final = json.loads(out)["final"]
    assert main(["run", str(art), "--input", f"input={xp}", "--saturate", "--commit",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state_root"] == final
