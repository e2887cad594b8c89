"""Players of the dispute game (spec/GAME.md): an honest party, liars, and the referee
loop that plays a whole game on a chain.

A party's knowledge of a run is a :class:`View`: the phase-2 roots it claims, their
commitment and proofs, the memory root of its S_n, and the root and one-step witness at
any step of any node. :class:`HonestView` computes them with the runtime
(:mod:`opmlc_runtime.trace`). :class:`LyingView` is an honest view with one lie: from step
``T + 1`` of node ``k`` on (or from ``S_k``, for an output lie) the states it claims have
one memory byte changed, and the change is kept in every later state, so its final root
is wrong; ``garbage_steps`` makes it also answer phase-1 queries with made-up roots.
A :class:`Player` answers the contract from its view; ``silent_after`` makes it stop
answering after that many moves.

:func:`play` registers the model, creates the task, lets the submitter claim and the
challenger challenge (when their finals differ), alternates the moves until the
contract resolves the dispute (a one-step proof or a timeout), and returns a
:class:`Outcome` with the transcript and the gas of every transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from opmlc_runtime.game import Game
from opmlc_runtime.keccak import keccak256
from opmlc_runtime.state import state_root
from opmlc_runtime.trace import (
    NodeReplay,
    boundary_memory,
    commitment,
    inclusion_proof,
    phase2,
)

__all__ = ["Fault", "HonestView", "LyingView", "Outcome", "Player", "model_params", "play",
           "steps_tree"]

ZERO = bytes(32)


def steps_tree(program) -> list[bytes]:
    """The leaves of the model's steps commitment: ``[0, steps_1, ..., steps_n]`` as words."""
    return [ZERO] + [int(n["steps"]).to_bytes(32, "big") for n in program.nodes]


@dataclass(frozen=True)
class Fault:
    """Where a liar's states first differ: node ``node`` (1-based); ``step`` T: its state
    after step T + 1 of the node is the first wrong one (None: the node's output, i.e.
    ``S_node`` itself); ``offset``: which byte of the node's first output region."""

    node: int
    step: int | None = None
    offset: int = 0


class HonestView:
    """What an honest party computes: the runtime's traces of the run."""

    def __init__(self, program, inputs: dict, checkpoints=None) -> None:
        self.program, self.inputs = program, inputs
        self._checkpoints = checkpoints
        ph = phase2(program, inputs)
        self.roots = ph.roots
        self.final = ph.final
        self._replays: dict[int, NodeReplay] = {}
        self._mem_root_n: bytes | None = None

    @property
    def commitment(self) -> bytes:
        return commitment(self.roots)

    def proof(self, index: int) -> list[bytes]:
        return inclusion_proof(self.roots, index)

    def mem_root_n(self) -> bytes:
        if self._mem_root_n is None:
            self._mem_root_n = boundary_memory(self.program, self.inputs,
                                               len(self.program.nodes)).root()
        return self._mem_root_n

    def replay(self, node: int) -> NodeReplay:
        if node not in self._replays:
            self._replays[node] = NodeReplay(self.program, self.inputs, node, self._checkpoints)
        return self._replays[node]

    def step_root(self, node: int, t: int) -> bytes:
        """The root this party claims at step ``t`` of ``node``."""
        return self.replay(node).root(t)

    def true_root(self, node: int, t: int) -> bytes:
        """The root the VM really reaches (what the verifier will confirm)."""
        return self.replay(node).root(t)

    def witness(self, node: int, t: int) -> bytes:
        return bytes.fromhex(self.replay(node).prove(t)["witness"][2:])


class LyingView(HonestView):
    """An honest view with a sticky one-byte lie (see the module docstring)."""

    def __init__(self, program, inputs: dict, fault: Fault, garbage_steps: bool = False,
                 seed: int = 0) -> None:
        super().__init__(program, inputs)
        n = len(program.nodes)
        if not 1 <= fault.node <= n:
            raise ValueError(f"fault node {fault.node} out of range: the model has nodes 1..{n}")
        info = program.nodes[fault.node - 1]
        steps = int(info["steps"])
        writes = [(int(a), int(b)) for a, b in info["writes"] if int(b)]
        if fault.step is not None and not 0 <= fault.step < steps:
            raise ValueError(f"fault step {fault.step} out of range: node {fault.node} has "
                             f"{steps} steps, so a step lie is at 0..{steps - 1}")
        if not writes:
            raise ValueError(f"node {fault.node} ({info['name']}) writes no memory: pick a "
                             "node that computes something")
        addr, size = writes[0]
        self.fault = fault
        self.addr = addr + fault.offset % size
        self.first_wrong = steps if fault.step is None else fault.step + 1  # within the node
        self.garbage_steps, self.seed = garbage_steps, seed
        # phase 2: S_j for j >= node carry the changed byte
        mem = boundary_memory(program, inputs, fault.node - 1)
        nat = program.native()
        roots = list(self.roots[:fault.node])
        from opmlc_runtime.native import PARALLEL_MIN_STEPS

        for j in range(fault.node - 1, n):
            nd = program.nodes[j]
            nat.run_node(j, mem.buffer.ctypes.data, bool(nd.get("parallel")) and
                         int(nd["steps"]) >= PARALLEL_MIN_STEPS)
            for a, b in nd["writes"]:
                mem.mark_dirty(int(a), int(b))
            roots.append(self._flipped_root(program.boundary_core(j), mem))
        self.roots = roots
        self._mem_root_n = self._flipped_mem_root(mem)
        self.final = state_root(program.final_core(), self._mem_root_n)

    def _flip(self, mem) -> None:
        mem.write(self.addr, bytes([mem.read(self.addr, 1)[0] ^ 0x5A]))

    def _flipped_mem_root(self, mem) -> bytes:
        self._flip(mem)
        try:
            return mem.root()
        finally:
            self._flip(mem)

    def _flipped_root(self, core, mem) -> bytes:
        return state_root(core, self._flipped_mem_root(mem))

    def step_root(self, node: int, t: int) -> bytes:
        if node == self.fault.node:
            if self.garbage_steps and 0 < t < int(self.program.nodes[node - 1]["steps"]):
                return keccak256(b"garbage" + self.seed.to_bytes(8, "big") + t.to_bytes(8, "big"))
            if t >= self.first_wrong:
                vm = self.replay(node).vm_at(t)
                return self._flipped_root(vm.core, vm.mem)
        elif node > self.fault.node:
            raise RuntimeError("a liar is never asked about a node after its first lie")
        return super().step_root(node, t)


class Player:
    """One party: answers the contract from its view."""

    def __init__(self, name: str, account: str, view: HonestView,
                 silent_after: int | None = None) -> None:
        self.name, self.account, self.view = name, account, view
        self.silent_after = silent_after
        self.moves = 0

    @property
    def silent(self) -> bool:
        return self.silent_after is not None and self.moves >= self.silent_after

    def _mid_root(self, d: dict, lo: int, hi: int, phase: str, node: int = 0
                  ) -> tuple[bytes, list[bytes]]:
        if hi - lo <= 1:
            return ZERO, []
        mid = lo + (hi - lo) // 2
        if phase == "Nodes":
            return self.view.roots[mid], self.view.proof(mid)
        return self.view.step_root(node, mid), []

    def act(self, game: Game, dispute: int, d: dict, say: Callable[[str], None]) -> str:
        """Make this party's move in dispute ``dispute`` (state ``d``); returns what it did."""
        v, me = self.view, self.account
        phase = d["phase"]
        if phase == "Defend":
            root, proof = self._mid_root(d, 0, len(v.roots) - 1, "Nodes")
            game.defend(me, dispute, v.commitment, v.mem_root_n(), v.proof(0),
                        v.proof(len(v.roots) - 1), root, proof)
            what = f"binds its phase-2 commitment; S_{d['hi'] // 2} = {_short(root)}"
        elif phase == "Nodes":
            mine = v.roots[d["mid"]]
            lo, hi = (d["mid"], d["hi"]) if mine == d["mid_root"] else (d["lo"], d["mid"])
            nxt, nproof = self._mid_root(d, lo, hi, "Nodes")
            game.move_nodes(me, dispute, mine, v.proof(d["mid"]), nxt, nproof)
            what = (f"{'agrees' if mine == d['mid_root'] else 'disagrees'} at S_{d['mid']}; "
                    f"nodes [{lo}, {hi}]" + (f", S_{lo + (hi - lo) // 2} = {_short(nxt)}"
                                             if hi - lo > 1 else f": node {hi} disputed"))
        elif phase == "Open":
            node = d["node"]
            steps = int(v.program.nodes[node - 1]["steps"])
            tree = steps_tree(v.program)
            root, _ = self._mid_root(d, 0, steps, "Steps", node)
            game.open_steps(me, dispute, steps, inclusion_proof(tree, node), root)
            what = f"opens node {node}'s {steps} steps" + (
                f"; step {steps // 2} = {_short(root)}" if steps > 1 else "")
        elif phase == "Steps":
            node = d["node"]
            mine = v.step_root(node, d["mid"])
            lo, hi = (d["mid"], d["hi"]) if mine == d["mid_root"] else (d["lo"], d["mid"])
            nxt, _ = self._mid_root(d, lo, hi, "Steps", node)
            game.move_steps(me, dispute, mine, nxt)
            what = (f"{'agrees' if mine == d['mid_root'] else 'disagrees'} at step {d['mid']}; "
                    f"steps [{lo}, {hi}]" + (f", step {lo + (hi - lo) // 2} = {_short(nxt)}"
                                             if hi - lo > 1 else ""))
        elif phase == "Step":
            node, lo = d["node"], d["lo"]
            if v.step_root(node, lo) != d["lo_root"]:
                return "declines: it cannot prove the agreed pre-state"
            truth = v.true_root(node, lo + 1)
            if truth != (d["hi_sub"] if self.name == "submitter" else d["hi_chal"]):
                return "declines: the step would prove the other side"
            game.step(me, dispute, v.witness(node, lo))
            what = f"executes step {lo} -> {lo + 1} of node {node} on the verifier"
        else:
            raise RuntimeError(f"no move in phase {phase}")
        self.moves += 1
        return what


def _short(b: bytes) -> str:
    return "0x" + b.hex()[:10] + "…"


@dataclass
class Outcome:
    winner: str  # "submitter" | "challenger"
    honest: str  # which side told the truth
    rounds: int
    transactions: int
    gas_total: int
    gas_max_tx: int
    seconds: float
    disputed_node: int | None
    disputed_step: int | None
    transcript: list[str] = field(default_factory=list)
    txs: list = field(default_factory=list)

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in (
            "winner", "honest", "rounds", "transactions", "gas_total", "gas_max_tx",
            "seconds", "disputed_node", "disputed_step")}


def model_params(program) -> dict:
    """What the contract registers about a model (from the artifact's node table)."""
    from opmlc_runtime.trace import commitment as merkle

    n = len(program.nodes)
    return {"artifact": bytes.fromhex(program.art.sha256()), "steps_root": merkle(steps_tree(
        program)), "nodes": n, "total_steps": int(program.nodes[-1]["step_end"]),
        "halt_pc": int(program.halt_pc), "depth": int(program.depth)}


def play(game: Game, program, inputs: dict, submitter: HonestView, challenger: HonestView,
         honest: str, silent: str | None = None, silent_after: int = 0,
         say: Callable[[str], None] | None = None, think: int = 30) -> Outcome:
    """Play one task to its end on ``game``: claim, challenge (if the finals differ), every
    move, resolution. ``silent``: the side that stops answering after ``silent_after`` moves.
    ``think``: seconds of chain time each move takes (well inside the move window)."""
    say = say or (lambda m: None)
    t0 = time.perf_counter()
    acc = game.chain.accounts
    sub = Player("submitter", acc[1], submitter,
                 silent_after if silent == "submitter" else None)
    chal = Player("challenger", acc[2], challenger,
                  silent_after if silent == "challenger" else None)
    mp = model_params(program)
    model = game.register_model(acc[0], mp["artifact"], mp["steps_root"], mp["nodes"],
                                mp["total_steps"], mp["halt_pc"], mp["depth"])
    task = game.create_task(acc[0], model, submitter.roots[0])
    first_tx = len(game.txs)
    say(f"task {task}: model {mp['artifact'].hex()[:12]}…, {mp['nodes']} nodes, "
        f"{mp['total_steps']:,} VM steps; S0 {_short(submitter.roots[0])}")
    claim = game.claim(sub.account, task, submitter.final)
    say(f"submitter claims final root {_short(submitter.final)} (bond "
        f"{game.claim_bond / 1e18:g} ETH)")
    rounds, node, step = 0, None, None
    if challenger.final == submitter.final:
        say("challenger agrees with the claim: no dispute")
        game.chain.advance(game.challenge_window + 1)
        game.finalize(acc[0], claim)
        winner = "submitter"
    else:
        game.chain.advance(think)
        dispute = game.challenge(chal.account, claim, challenger.commitment,
                                 challenger.mem_root_n(), challenger.proof(0),
                                 challenger.proof(len(challenger.roots) - 1))
        say(f"challenger disputes it: its S_n halts in {_short(challenger.final)} (bond "
            f"{game.challenge_bond / 1e18:g} ETH)")
        while True:
            d = game.dispute(dispute)
            if d["phase"] == "Done":
                break
            mover, other = (sub, chal) if d["submitter_to_move"] else (chal, sub)
            game.chain.advance(think)
            if mover.silent:
                game.chain.advance(game.move_window + 1)
                game.timeout(other.account, dispute)
                say(f"{mover.name} misses its deadline; {other.name} ends the game by timeout")
                continue
            if d["phase"] in ("Nodes", "Steps", "Defend", "Open"):
                rounds += 1
            did = mover.act(game, dispute, d, say)
            say(f"{mover.name} {did}")
            if did.startswith("declines"):  # the one step: the other side may prove it
                if other.silent:
                    game.chain.advance(game.move_window + 1)
                    game.timeout(mover.account, dispute)
                    say(f"{other.name} does not prove the step either; {mover.name} wins by "
                        "timeout")
                    continue
                did2 = other.act(game, dispute, d, say)
                say(f"{other.name} {did2}")
                if did2.startswith("declines"):
                    game.chain.advance(game.move_window + 1)
                    game.timeout(other.account, dispute)
        d = game.dispute(dispute)
        winner = "challenger" if d["challenger_won"] else "submitter"
        node = d["node"] or None
        step = d["lo"] if node and int(program.nodes[node - 1]["steps"]) else None
        if winner == "submitter":
            game.chain.advance(game.challenge_window + 1)
            game.finalize(acc[0], claim)
    txs = game.txs[first_tx:]
    gas = [t.gas for t in txs]
    say(f"{winner} wins ({'honest' if winner == honest else 'the liar'}); "
        f"{len(txs)} transactions, {sum(gas):,} gas, largest {max(gas):,} (as {game.chain.name} "
        "counts it)")
    return Outcome(winner, honest, rounds, len(txs), sum(gas), max(gas),
                   round(time.perf_counter() - t0, 3), node, step, [], txs)

