"""The dispute game on a real EVM (revm): contracts/OpmlcGame.sol with the generated
verifier, played by the runtime's agents (spec/GAME.md).

* Every injected fault position (every node of the digits MLP and CNN, several steps
  inside each) is won by the honest side, whichever side lies; a silent party loses by
  timeout; a liar that answers phase 1 with made-up roots loses.
* Every adversarial move the contract must refuse is tried and reverts with its error.
* The game is deterministic: the same inputs give the same transcript.
* A final claim's outputs are read on chain through ``outputLeaf``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from opmlc import api
from opmlc.cli import main
from opmlc.cli.game import compile_contracts, parse_fault
from opmlc_runtime.agents import Fault, HonestView, LyingView, Player, model_params, play
from opmlc_runtime.game import Game, Revert, RevmChain
from opmlc_runtime.trace import output_proofs

pytestmark = pytest.mark.evm
pytest.importorskip("pyrevm")

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
DIGITS = np.load(MODELS / "digits_test.npz")


@pytest.fixture(scope="module")
def contracts():
    return compile_contracts()


def new_game(contracts, **kw) -> Game:
    return Game(RevmChain(), *contracts, **kw)


@pytest.fixture(scope="module")
def cnn():
    m = api.Model(api.compile(MODELS / "digits_cnn.onnx"))
    x = {"input": DIGITS["X"][3].reshape(1, 1, 8, 8)}
    return m, x, HonestView(m.program, x)


@pytest.fixture(scope="module")
def mlp():
    m = api.Model(api.compile(MODELS / "digits_mlp_sklearn.onnx"))
    x = {"input": DIGITS["X"][4].reshape(1, 64)}
    return m, x, HonestView(m.program, x)


def budget(program, node: int) -> int:
    n, steps = len(program.nodes), int(program.nodes[node - 1]["steps"])
    return (n - 1).bit_length() + max(steps - 1, 0).bit_length() + 6


def fault_positions(program) -> list[Fault]:
    out = []
    for k, nd in enumerate(program.nodes, start=1):
        if not [w for w in nd["writes"] if int(w[1])]:
            continue
        steps = int(nd["steps"])
        out.append(Fault(k))  # the node's output
        for t in sorted({0, steps // 3, steps - 1} if steps else set()):
            out.append(Fault(k, t, offset=5))
    return out


def _play_all(contracts, model, liar_side: str, faults: list[Fault]) -> list:
    m, x, honest = model
    results = []
    for f in faults:
        lie = LyingView(m.program, x, f)
        sub, chal = (lie, honest) if liar_side == "submitter" else (honest, lie)
        good = "challenger" if liar_side == "submitter" else "submitter"
        out = play(new_game(contracts), m.program, x, sub, chal, good)
        results.append((f, out))
    return results


@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_every_fault_position_loses(contracts, which: str, request) -> None:
    model = request.getfixturevalue(which)
    prog = model[0].program
    faults = fault_positions(prog)
    assert len(faults) >= 3 * len([n for n in prog.nodes if int(n["steps"])])
    for f, out in _play_all(contracts, model, "submitter", faults):
        assert out.winner == "challenger", (f, out.to_json())
        assert out.disputed_node == f.node, (f, out.to_json())
        if f.step is not None:
            assert out.disputed_step == f.step, (f, out.to_json())
        assert out.transactions <= budget(prog, f.node), (f, out.to_json())
        assert out.gas_max_tx <= 500_000


def test_lying_challenger_loses(contracts, cnn) -> None:
    prog = cnn[0].program
    for f, out in _play_all(contracts, cnn, "challenger",
                            [Fault(1), Fault(3, 777), Fault(len(prog.nodes), 2)]):
        assert out.winner == "submitter" and out.honest == "submitter", (f, out.to_json())


def test_phase1_garbage_liar_loses(contracts, cnn) -> None:
    m, x, honest = cnn
    lie = LyingView(m.program, x, Fault(3), garbage_steps=True, seed=7)
    out = play(new_game(contracts), m.program, x, lie, honest, "challenger")
    assert out.winner == "challenger" and out.disputed_node == 3


@pytest.mark.parametrize("side", ["submitter", "challenger"])
@pytest.mark.parametrize("after", [0, 2, 7])
def test_silent_party_loses(contracts, cnn, side: str, after: int) -> None:
    m, x, honest = cnn
    lie = LyingView(m.program, x, Fault(3, 1234))
    events = []
    out = play(new_game(contracts), m.program, x, lie, honest, "challenger", silent=side,
               silent_after=after, say=events.append)
    other = "challenger" if side == "submitter" else "submitter"
    assert out.winner == other, out.to_json()
    assert any("misses its deadline" in e or "timeout" in e for e in events)


def test_no_dispute_when_both_agree(contracts, cnn) -> None:
    m, x, honest = cnn
    g = new_game(contracts)
    out = play(g, m.program, x, honest, honest, "submitter")
    assert out.winner == "submitter" and out.transactions == 2 and out.rounds == 0
    assert g.task(0)["resolved"] and g.task(0)["result"] == honest.final


def test_deterministic_transcript(contracts, cnn) -> None:
    m, x, honest = cnn

    def once():
        lie = LyingView(m.program, x, Fault(3, 4321, offset=9))
        events = []
        out = play(new_game(contracts), m.program, x, lie, honest, "challenger",
                   say=events.append)
        return events, [(t.function, t.gas) for t in out.txs], out.to_json()

    a, b = once(), once()
    assert a[0] == b[0] and a[1] == b[1]
    ja, jb = dict(a[2]), dict(b[2])
    ja.pop("seconds"), jb.pop("seconds")
    assert ja == jb


def test_outputs_readable_on_chain(contracts, cnn) -> None:
    m, x, honest = cnn
    g = new_game(contracts)
    play(g, m.program, x, honest, honest, "submitter")
    doc = output_proofs(m.program, x)
    assert doc["final"] == "0x" + honest.final.hex()
    mroot = bytes.fromhex(doc["memory_root"][2:])
    (o,) = doc["outputs"].values()
    raw = b""
    for leaf in o["leaves"]:
        data = bytes.fromhex(leaf["data"][2:])
        path = [bytes.fromhex(p[2:]) for p in leaf["path"]]
        assert g.output_leaf(0, mroot, leaf["index"], data, path) == data
        raw += data
    off = o["address"] - 32 * o["leaves"][0]["index"]
    got = np.frombuffer(raw[off:off + o["nbytes"]], np.int32)
    want = m.run(x, "native").outputs["logits"].reshape(-1)
    np.testing.assert_array_equal(got, want)
    bad = bytearray(bytes.fromhex(o["leaves"][0]["data"][2:]))
    bad[0] ^= 1
    with pytest.raises(Revert, match="NotInMemory"):
        g.output_leaf(0, mroot, o["leaves"][0]["index"], bytes(bad),
                      [bytes.fromhex(p[2:]) for p in o["leaves"][0]["path"]])
    with pytest.raises(Revert, match="WrongFinal"):
        g.output_leaf(0, bytes(32), 0, bytes(32), [bytes(32)] * m.program.depth)


# ---------------------------------------------------------------- adversarial moves revert


class Table:
    """A game set up to the point a test needs, with an honest challenger and a lying
    submitter (fault at node 3, step 100 of the CNN)."""

    def __init__(self, contracts, cnn) -> None:
        m, x, honest = cnn
        self.m, self.x, self.honest = m, x, honest
        self.lie = LyingView(m.program, x, Fault(3, 100))
        self.g = g = new_game(contracts)
        acc = g.chain.accounts
        self.owner, self.sub_acc, self.chal_acc, self.stranger = acc
        mp = model_params(m.program)
        g.register_model(self.owner, mp["artifact"], mp["steps_root"], mp["nodes"],
                         mp["total_steps"], mp["halt_pc"], mp["depth"])
        self.task = g.create_task(self.owner, 0, honest.roots[0])
        self.claim = g.claim(self.sub_acc, self.task, self.lie.final)
        self.sub = Player("submitter", self.sub_acc, self.lie)
        self.chal = Player("challenger", self.chal_acc, honest)
        self.dispute: int | None = None

    def challenge(self) -> int:
        h = self.honest
        self.dispute = self.g.challenge(self.chal_acc, self.claim, h.commitment,
                                        h.mem_root_n(), h.proof(0), h.proof(len(h.roots) - 1))
        return self.dispute

    def d(self) -> dict:
        return self.g.dispute(self.dispute)

    def advance_to(self, phase: str) -> dict:
        if self.dispute is None:
            self.challenge()
        while (d := self.d())["phase"] != phase:
            p = self.sub if d["submitter_to_move"] else self.chal
            p.act(self.g, self.dispute, d, lambda s: None)
        return self.d()


def _reverts(name: str, fn, *a, **kw) -> None:
    with pytest.raises(Revert) as e:
        fn(*a, **kw)
    assert e.value.name == name, str(e.value)


def test_claim_and_challenge_reverts(contracts, cnn) -> None:
    t = Table(contracts, cnn)
    g, h = t.g, t.honest
    _reverts("WrongBond", g.claim, t.stranger, t.task, h.final, value=1)
    _reverts("TaskTaken", g.claim, t.stranger, t.task, h.final)
    _reverts("UnknownTask", g.claim, t.stranger, 99, h.final)
    last = len(h.roots) - 1
    args = (t.claim, h.commitment, h.mem_root_n(), h.proof(0), h.proof(last))
    _reverts("WrongBond", g.challenge, t.chal_acc, *args, value=g.challenge_bond - 1)
    _reverts("OwnClaim", g.challenge, t.sub_acc, *args)
    # a commitment that does not start at S0, a proof of another index, the same result
    _reverts("NotInCommitment", g.challenge, t.chal_acc, t.claim, h.commitment,
             h.mem_root_n(), h.proof(1), h.proof(last))
    _reverts("NotInCommitment", g.challenge, t.chal_acc, t.claim, t.lie.commitment,
             h.mem_root_n(), t.lie.proof(0), t.lie.proof(last))
    lie = t.lie
    _reverts("SameResult", g.challenge, t.chal_acc, t.claim, lie.commitment,
             lie.mem_root_n(), lie.proof(0), lie.proof(last))
    _reverts("DeadlineNotPassed", g.timeout, t.stranger, t.challenge())
    _reverts("WindowOpen", g.finalize, t.owner, t.claim)
    g.chain.advance(g.challenge_window + 1)
    _reverts("WindowClosed", g.challenge, t.stranger, *args)
    _reverts("DisputesOpen", g.finalize, t.owner, t.claim)


def test_move_reverts(contracts, cnn) -> None:
    t = Table(contracts, cnn)
    g = t.g
    t.challenge()
    d = t.d()
    lie, h = t.lie, t.honest
    last = len(h.roots) - 1
    mid = last // 2
    # defend: not the submitter's turn for the challenger; the wrong final; a stranger
    _reverts("NotYourTurn", g.defend, t.chal_acc, t.dispute, h.commitment, h.mem_root_n(),
             h.proof(0), h.proof(last), h.roots[mid], h.proof(mid))
    _reverts("WrongFinal", g.defend, t.sub_acc, t.dispute, h.commitment, h.mem_root_n(),
             h.proof(0), h.proof(last), h.roots[mid], h.proof(mid))
    # a midpoint root proven at another index
    _reverts("NotInCommitment", g.defend, t.sub_acc, t.dispute, lie.commitment,
             lie.mem_root_n(), lie.proof(0), lie.proof(last), lie.roots[mid + 1],
             lie.proof(mid + 1))
    t.sub.act(g, t.dispute, d, lambda s: None)
    d = t.d()
    assert d["phase"] == "Nodes" and not d["submitter_to_move"]
    # a second move by the same side, a stranger, a wrong proof
    _reverts("NotYourTurn", g.move_nodes, t.sub_acc, t.dispute, lie.roots[d["mid"]],
             lie.proof(d["mid"]), bytes(32), [])
    _reverts("NotYourTurn", g.move_nodes, t.stranger, t.dispute, h.roots[d["mid"]],
             h.proof(d["mid"]), bytes(32), [])
    _reverts("NotInCommitment", g.move_nodes, t.chal_acc, t.dispute, h.roots[d["mid"]],
             h.proof(d["mid"] ^ 1), bytes(32), [])
    _reverts("WrongPhase", g.move_steps, t.chal_acc, t.dispute, bytes(32), bytes(32))
    # after the deadline
    g.chain.advance(g.move_window + 1)
    _reverts("DeadlinePassed", g.move_nodes, t.chal_acc, t.dispute, h.roots[d["mid"]],
             h.proof(d["mid"]), bytes(32), [])


def test_open_and_step_reverts(contracts, cnn) -> None:
    t = Table(contracts, cnn)
    g = t.g
    d = t.advance_to("Open")
    assert d["node"] == 3
    mover = t.sub_acc if d["submitter_to_move"] else t.chal_acc
    from opmlc_runtime.agents import steps_tree
    from opmlc_runtime.trace import inclusion_proof

    tree = steps_tree(t.m.program)
    steps = int(t.m.program.nodes[2]["steps"])
    _reverts("WrongSteps", g.open_steps, mover, t.dispute, steps + 1, inclusion_proof(tree, 3),
             bytes(32))
    _reverts("WrongSteps", g.open_steps, mover, t.dispute, int(t.m.program.nodes[1]["steps"]),
             inclusion_proof(tree, 2), bytes(32))
    d = t.advance_to("Step")
    assert d["lo"] == 100 and d["hi"] == 101
    # a witness of another state than the agreed pre-state: the verifier refuses it
    wrong = t.honest.witness(3, 99)
    _reverts("PreStateMismatch", g.step, t.chal_acc, t.dispute, wrong)
    _reverts("NotAParty", g.step, t.stranger, t.dispute, t.honest.witness(3, 100))
    g.step(t.sub_acc, t.dispute, t.honest.witness(3, 100))  # anyone of the two: honest wins
    d = t.d()
    assert d["phase"] == "Done" and d["challenger_won"]
    # no move after resolution
    _reverts("WrongPhase", g.step, t.chal_acc, t.dispute, t.honest.witness(3, 100))
    _reverts("WrongPhase", g.timeout, t.chal_acc, t.dispute)
    # the bonds: the challenger won both, the claim is defeated, the task open again
    assert g.credit(t.chal_acc) == g.claim_bond + g.challenge_bond
    assert g.claim_info(t.claim)["status"] == "Defeated"
    before = g.chain.balance(t.chal_acc)
    g.withdraw(t.chal_acc)
    assert g.chain.balance(t.chal_acc) == before + g.claim_bond + g.challenge_bond
    _reverts("NothingToWithdraw", g.withdraw, t.chal_acc)
    g.claim(t.stranger, t.task, t.honest.final)  # a new claim on the reopened task


def test_two_challengers_one_answer(contracts, cnn) -> None:
    """A true claim challenged twice wins both; a false claim loses to the honest one even
    when a lying challenger is also playing."""
    m, x, honest = cnn
    t = Table(contracts, cnn)
    g = t.g
    liar2 = LyingView(m.program, x, Fault(1, 5, offset=3))
    d1 = t.challenge()
    d2 = g.challenge(t.stranger, t.claim, liar2.commitment, liar2.mem_root_n(), liar2.proof(0),
                     liar2.proof(len(liar2.roots) - 1))
    players = {d1: (t.sub, t.chal), d2: (t.sub, Player("challenger", t.stranger, liar2))}
    for dispute, (sub, chal) in players.items():
        while (d := g.dispute(dispute))["phase"] != "Done":
            p = sub if d["submitter_to_move"] else chal
            did = p.act(g, dispute, d, lambda s: None)
            if did.startswith("declines"):
                other = chal if p is sub else sub
                if other.act(g, dispute, d, lambda s: None).startswith("declines"):
                    g.chain.advance(g.move_window + 1)
                    g.timeout(t.owner, dispute)
    assert g.dispute(d1)["challenger_won"]
    assert g.claim_info(t.claim)["status"] == "Defeated"
    assert not g.task(t.task)["resolved"]


# ---------------------------------------------------------------- CLI


def test_cli_challenge(tmp_path: Path, cnn, capsys) -> None:
    m, x, _ = cnn
    art = tmp_path / "cnn.opvm"
    m.artifact.save(art)
    xp = tmp_path / "x.npy"
    np.save(xp, x["input"])
    assert main(["challenge", str(art), "--input", f"input={xp}", "--fault", "node=3,step=42",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["winner"] == doc["honest"] == "challenger"
    assert (doc["disputed_node"], doc["disputed_step"]) == (3, 42)
    assert set(doc) == {"winner", "honest", "rounds", "transactions", "gas_total", "gas_max_tx",
                        "seconds", "disputed_node", "disputed_step", "chain"}
    assert main(["challenge", str(art), "--input", f"input={xp}", "--liar", "challenger",
                 "--fault", "node=1"]) == 0
    story = capsys.readouterr().out
    assert "winner: submitter" in story and "executes step" in story


@pytest.mark.parametrize("fault", ["node=3,step=x", "nodes=3", "step=4", "node=3,byte=-1"])
def test_parse_fault_errors(fault: str) -> None:
    from opmlc.errors import OpmlcError

    with pytest.raises(OpmlcError, match="--fault"):
        parse_fault(fault)
