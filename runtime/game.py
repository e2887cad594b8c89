"""The dispute game on a chain: ABI encoding, two chain backends and a typed client of
``contracts/OpmlcGame.sol`` (spec/GAME.md).

* :class:`RevmChain` runs a real EVM in-process (revm through ``pyrevm``): fast, with a
  settable clock.
* :class:`RpcChain` talks JSON-RPC to any node (web3.py), e.g. a local Hardhat node; it
  sends from the node's unlocked accounts and moves the clock with ``evm_increaseTime``.

Both give :class:`Receipt` (gas used, logs) per transaction and raise :class:`Revert`
with the custom error decoded. :class:`Game` wraps the contract's functions; the
players live in :mod:`opmlc_runtime.agents`. The runtime never imports the compiler:
the contracts' bytecode is compiled by the caller (``opmlc challenge``) and handed in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from opmlc_runtime.evm import Revert
from opmlc_runtime.keccak import keccak256

__all__ = ["DISPUTE_FIELDS", "Game", "Receipt", "Revert", "RevmChain", "RpcChain",
           "abi_encode", "error_table", "selector"]


# --- ABI (the subset the game uses) -----------------------------------------------------


def selector(signature: str) -> bytes:
    return keccak256(signature.encode())[:4]


def _word(kind: str, v: Any) -> bytes:
    if kind == "bytes32":
        b = bytes(v)
        if len(b) != 32:
            raise ValueError(f"bytes32 argument of {len(b)} bytes")
        return b
    if kind == "address":
        return bytes(12) + bytes.fromhex(v[2:] if isinstance(v, str) else v.hex())
    if kind == "bool":
        return int(bool(v)).to_bytes(32, "big")
    if kind.startswith("uint"):
        return int(v).to_bytes(32, "big")
    raise ValueError(f"not a static ABI type: {kind}")


def abi_encode(kinds: list[str], values: list[Any]) -> bytes:
    """Standard ABI encoding of ``values`` typed by ``kinds`` (static words, ``bytes`` and
    ``bytes32[]``)."""
    head, tail = [], b""
    size = 32 * len(kinds)
    for kind, v in zip(kinds, values, strict=True):
        if kind == "bytes":
            b = bytes(v)
            head.append((size + len(tail)).to_bytes(32, "big"))
            tail += len(b).to_bytes(32, "big") + b + bytes(-len(b) % 32)
        elif kind == "bytes32[]":
            head.append((size + len(tail)).to_bytes(32, "big"))
            tail += len(v).to_bytes(32, "big") + b"".join(_word("bytes32", x) for x in v)
        else:
            head.append(_word(kind, v))
    return b"".join(head) + tail


def calldata(signature: str, values: list[Any]) -> bytes:
    kinds = re.fullmatch(r"\w+\((.*)\)", signature).group(1)
    return selector(signature) + abi_encode([k for k in kinds.split(",") if k], values)


def error_table(solidity_source: str) -> dict[bytes, str]:
    """selector -> signature of every ``error Name(type name, ...)`` in a Solidity source."""
    out = {}
    elementary = re.compile(r"(u?int\d*|bytes\d*|address|bool|string)(\[\d*\])*$")
    for name, args in re.findall(r"\berror\s+(\w+)\s*\(([^)]*)\)\s*;", solidity_source):
        # an enum parameter is a uint8 in the ABI
        types = ",".join(t if elementary.match(t) else "uint8" for t in
                         (a.split()[0] for a in args.split(",") if a.strip()))
        sig = f"{name}({types})"
        out[selector(sig)] = sig
    return out


@dataclass
class Receipt:
    gas_used: int  # the whole transaction's gas (21,000 base included)
    logs: list[tuple[str, list[bytes], bytes]] = field(default_factory=list)
    output: bytes = b""


# --- chains ------------------------------------------------------------------------------


class RevmChain:
    """An in-process EVM (pyrevm, Cancun rules) with funded accounts and a settable clock.

    Gas: pyrevm 0.3.7 keeps one journal for all calls, so storage slots and accounts a
    previous transaction touched stay warm and their first values count as original:
    state-changing transactions are charged less than on a chain (e.g. a phase-1 move
    about 30k instead of about 57k). Outcomes are exact; gas figures for the record come
    from :class:`RpcChain` on a real node (bench/bench_game.py --rpc).
    """

    name = "revm"

    def __init__(self, accounts: int = 4, start_time: int = 1_700_000_000) -> None:
        from pyrevm import EVM

        self._evm = EVM(spec_id="CANCUN")
        self.accounts = ["0x" + f"{0xA0 + i:02x}" * 20 for i in range(accounts)]
        for a in self.accounts:
            self._evm.set_balance(a, 10**24)
        self._time = start_time
        self._number = 1
        self._set_block()
        self.errors: dict[bytes, str] = {}

    def _set_block(self) -> None:
        from pyrevm import BlockEnv

        self._evm.set_block_env(BlockEnv(number=self._number, timestamp=self._time))

    def now(self) -> int:
        return self._time

    def advance(self, seconds: int) -> None:
        self._time += int(seconds)
        self._number += 1
        self._set_block()

    def deploy(self, sender: str, code: bytes) -> str:
        return self._evm.deploy(sender, bytes(code), gas=30_000_000)

    def send(self, sender: str, to: str, data: bytes, value: int = 0, what: str = "") -> Receipt:
        try:
            out = self._evm.message_call(sender, to, data, value=value or None, gas=30_000_000)
        except RuntimeError as err:
            m = re.search(r"output:\s*0x([0-9a-fA-F]*)", str(err))
            if not str(err).startswith("Revert") or m is None:
                raise
            raise Revert(bytes.fromhex(m.group(1)), errors=self.errors, what=what) from None
        res = self._evm.result
        logs = [(lg.address, [bytes.fromhex(t[2:]) for t in lg.topics], bytes(lg.data[1]))
                for lg in res.logs]  # pyrevm: topics as hex, data as (topics, data)
        self._number += 1
        self._set_block()
        return Receipt(res.gas_used, logs, bytes(out))

    def call(self, to: str, data: bytes) -> bytes:
        try:
            return bytes(self._evm.message_call(self.accounts[0], to, data, is_static=True))
        except RuntimeError as err:
            m = re.search(r"output:\s*0x([0-9a-fA-F]*)", str(err))
            if m is None:
                raise
            raise Revert(bytes.fromhex(m.group(1)), errors=self.errors) from None

    def balance(self, who: str) -> int:
        return self._evm.get_balance(who)


class RpcChain:
    """Any JSON-RPC node (web3.py) whose first accounts are unlocked (Hardhat, anvil)."""

    name = "rpc"

    def __init__(self, url: str, accounts: int = 4) -> None:
        import warnings

        with warnings.catch_warnings():  # web3's own imports warn about its dependencies
            warnings.simplefilter("ignore", DeprecationWarning)
            from web3 import Web3

        self.w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 60}))
        if not self.w3.is_connected():
            raise ConnectionError(f"no JSON-RPC node answers at {url}")
        have = self.w3.eth.accounts
        if len(have) < accounts:
            raise ConnectionError(f"{url}: the node has {len(have)} unlocked accounts, the game "
                                  f"needs {accounts}")
        self.accounts = [str(a) for a in have[:accounts]]
        self.errors: dict[bytes, str] = {}

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def advance(self, seconds: int) -> None:
        self.w3.provider.make_request("evm_increaseTime", [int(seconds)])
        self.w3.provider.make_request("evm_mine", [])

    def _tx(self, sender: str, to: str | None, data: bytes, value: int) -> dict:
        tx = {"from": sender, "data": "0x" + bytes(data).hex(), "value": value,
              "gas": 30_000_000}
        if to is not None:
            tx["to"] = to
        return tx

    def _revert_data(self, err: Exception) -> bytes | None:
        data = getattr(err, "data", None)
        if isinstance(data, dict):
            data = data.get("data")
        if isinstance(data, str) and data.startswith("0x"):
            return bytes.fromhex(data[2:])
        if err.args and isinstance(err.args[-1], str) and err.args[-1].startswith("0x"):
            return bytes.fromhex(err.args[-1][2:])
        return None

    def deploy(self, sender: str, code: bytes) -> str:
        h = self.w3.eth.send_transaction(self._tx(sender, None, code, 0))
        r = self.w3.eth.wait_for_transaction_receipt(h)
        if r["status"] != 1:
            raise RuntimeError("deployment failed")
        return str(r["contractAddress"])

    def send(self, sender: str, to: str, data: bytes, value: int = 0, what: str = "") -> Receipt:
        tx = self._tx(sender, to, data, value)
        try:  # a dry run first: a revert comes back with its data, and nothing is mined
            self.w3.eth.call(tx)
        except Exception as err:  # noqa: BLE001 - web3 raises several kinds
            rd = self._revert_data(err)
            if rd is None:
                raise
            raise Revert(rd, errors=self.errors, what=what) from None
        h = self.w3.eth.send_transaction(tx)
        r = self.w3.eth.wait_for_transaction_receipt(h)
        if r["status"] != 1:
            raise Revert(b"", errors=self.errors, what=what)
        logs = [(str(lg["address"]), [bytes(t) for t in lg["topics"]], bytes(lg["data"]))
                for lg in r["logs"]]
        return Receipt(int(r["gasUsed"]), logs)

    def call(self, to: str, data: bytes) -> bytes:
        try:
            return bytes(self.w3.eth.call({"to": to, "data": "0x" + bytes(data).hex()}))
        except Exception as err:  # noqa: BLE001
            rd = self._revert_data(err)
            if rd is None:
                raise
            raise Revert(rd, errors=self.errors) from None

    def balance(self, who: str) -> int:
        return int(self.w3.eth.get_balance(who))


# --- the contract ------------------------------------------------------------------------

PHASES = ("None", "Defend", "Nodes", "Open", "Steps", "Step", "Done")
DISPUTE_FIELDS = (("claim", "uint"), ("lo", "uint"), ("hi", "uint"), ("mid", "uint"),
                  ("challenger", "address"), ("deadline", "uint"), ("phase", "phase"),
                  ("submitter_to_move", "bool"), ("challenger_won", "bool"), ("node", "uint"),
                  ("commitment", "bytes32"), ("lo_root", "bytes32"), ("hi_sub", "bytes32"),
                  ("hi_chal", "bytes32"), ("mid_root", "bytes32"))
CLAIM_FIELDS = (("task", "uint"), ("deadline", "uint"), ("open_disputes", "uint"),
                ("status", "uint"), ("submitter", "address"), ("bond_paid", "bool"),
                ("final_root", "bytes32"), ("commitment", "bytes32"), ("sn_root", "bytes32"))
TASK_FIELDS = (("model", "uint"), ("claim", "uint"), ("resolved", "bool"), ("s0", "bytes32"),
               ("result", "bytes32"))
CLAIM_STATUS = ("None", "Pending", "Defeated", "Final")


def _decode(fields: tuple, out: bytes) -> dict:
    d = {}
    for i, (name, kind) in enumerate(fields):
        w = out[32 * i:32 * i + 32]
        if kind == "bytes32":
            d[name] = w
        elif kind == "address":
            d[name] = "0x" + w[12:].hex()
        elif kind == "bool":
            d[name] = w[-1] == 1
        elif kind == "phase":
            d[name] = PHASES[int.from_bytes(w, "big")]
        else:
            d[name] = int.from_bytes(w, "big")
    return d


@dataclass
class Tx:
    """One transaction of a game: who, what, gas."""

    sender: str
    function: str
    gas: int


class Game:
    """A deployed OpmlcGame (and its verifier) on ``chain``; every transaction is logged in
    ``txs`` with its gas."""

    def __init__(self, chain, game_code: bytes, verifier_code: bytes, errors: dict[bytes, str],
                 claim_bond: int = 10**18, challenge_bond: int = 10**18,
                 challenge_window: int = 3600, move_window: int = 600) -> None:
        self.chain = chain
        chain.errors = errors
        deployer = chain.accounts[0]
        self.verifier = chain.deploy(deployer, verifier_code)
        args = abi_encode(["address", "uint256", "uint256", "uint64", "uint64"],
                          [self.verifier, claim_bond, challenge_bond, challenge_window,
                           move_window])
        self.address = chain.deploy(deployer, bytes(game_code) + args)
        self.claim_bond, self.challenge_bond = claim_bond, challenge_bond
        self.challenge_window, self.move_window = challenge_window, move_window
        self.txs: list[Tx] = []

    def _send(self, sender: str, signature: str, values: list, value: int = 0) -> Receipt:
        fn = signature.split("(")[0]
        r = self.chain.send(sender, self.address, calldata(signature, values), value, fn)
        self.txs.append(Tx(sender, fn, r.gas_used))
        return r

    def _ret(self, r: Receipt) -> int:
        """The uint256 a function returned: from the output (revm) or the first event's
        first indexed topic (JSON-RPC receipts carry no output)."""
        if r.output:
            return int.from_bytes(r.output[:32], "big")
        return int.from_bytes(r.logs[0][1][1], "big")

    def _view(self, signature: str, values: list) -> bytes:
        return self.chain.call(self.address, calldata(signature, values))

    # --- setup and claims ---

    def register_model(self, sender: str, artifact: bytes, steps_root: bytes, nodes: int,
                       total_steps: int, halt_pc: int, depth: int) -> int:
        r = self._send(sender, "registerModel(bytes32,bytes32,uint64,uint64,uint64,uint8)",
                       [artifact, steps_root, nodes, total_steps, halt_pc, depth])
        return self._ret(r)

    def create_task(self, sender: str, model: int, s0: bytes) -> int:
        return self._ret(self._send(sender, "createTask(uint256,bytes32)", [model, s0]))

    def claim(self, sender: str, task: int, final_root: bytes, value: int | None = None) -> int:
        v = self.claim_bond if value is None else value
        return self._ret(self._send(sender, "claim(uint256,bytes32)", [task, final_root], v))

    def finalize(self, sender: str, claim: int) -> Receipt:
        return self._send(sender, "finalize(uint256)", [claim])

    def challenge(self, sender: str, claim: int, commitment: bytes, mem_root_n: bytes,
                  proof0: list[bytes], proof_n: list[bytes], value: int | None = None) -> int:
        v = self.challenge_bond if value is None else value
        r = self._send(sender, "challenge(uint256,bytes32,bytes32,bytes32[],bytes32[])",
                       [claim, commitment, mem_root_n, proof0, proof_n], v)
        return self._ret(r)

    # --- moves ---

    def defend(self, sender: str, dispute: int, commitment: bytes, mem_root_n: bytes,
               proof0: list[bytes], proof_n: list[bytes], mid_root: bytes,
               mid_proof: list[bytes]) -> Receipt:
        return self._send(sender, "defend(uint256,bytes32,bytes32,bytes32[],bytes32[],bytes32,"
                          "bytes32[])", [dispute, commitment, mem_root_n, proof0, proof_n,
                                         mid_root, mid_proof])

    def move_nodes(self, sender: str, dispute: int, root: bytes, proof: list[bytes],
                   next_root: bytes, next_proof: list[bytes]) -> Receipt:
        return self._send(sender, "moveNodes(uint256,bytes32,bytes32[],bytes32,bytes32[])",
                          [dispute, root, proof, next_root, next_proof])

    def open_steps(self, sender: str, dispute: int, steps: int, steps_proof: list[bytes],
                   mid_root: bytes) -> Receipt:
        return self._send(sender, "openSteps(uint256,uint64,bytes32[],bytes32)",
                          [dispute, steps, steps_proof, mid_root])

    def move_steps(self, sender: str, dispute: int, root: bytes, next_root: bytes) -> Receipt:
        return self._send(sender, "moveSteps(uint256,bytes32,bytes32)",
                          [dispute, root, next_root])

    def step(self, sender: str, dispute: int, witness: bytes) -> Receipt:
        return self._send(sender, "step(uint256,bytes)", [dispute, witness])

    def timeout(self, sender: str, dispute: int) -> Receipt:
        return self._send(sender, "timeout(uint256)", [dispute])

    def withdraw(self, sender: str) -> Receipt:
        return self._send(sender, "withdraw()", [])

    # --- views ---

    def dispute(self, dispute: int) -> dict:
        return _decode(DISPUTE_FIELDS, self._view("disputes(uint256)", [dispute]))

    def claim_info(self, claim: int) -> dict:
        d = _decode(CLAIM_FIELDS, self._view("claims(uint256)", [claim]))
        d["status"] = CLAIM_STATUS[d["status"]]
        return d

    def task(self, task: int) -> dict:
        return _decode(TASK_FIELDS, self._view("tasks(uint256)", [task]))

    def credit(self, who: str) -> int:
        return int.from_bytes(self._view("credit(address)", [who]), "big")

    def output_leaf(self, task: int, mem_root: bytes, leaf: int, data: bytes,
                    proof: list[bytes]) -> bytes:
        return self._view("outputLeaf(uint256,bytes32,uint256,bytes32,bytes32[])",
                          [task, mem_root, leaf, data, proof])
