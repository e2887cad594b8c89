"""A thin pyrevm wrapper: deploy the one-step verifier and call ``step`` on a real EVM.

``StepVerifier(bytecode).step(pre_root, witness)`` returns the post-state root the
contract computes, or raises :class:`Revert` (with the custom error decoded when it is
one of the verifier's). After each call ``.gas`` holds the cost split as the EVM charges
it (Cancun rules, no access list):

* ``base``      21,000, the fixed cost of any transaction;
* ``calldata``  4 gas per zero byte and 16 per non-zero byte of the ABI-encoded call;
* ``execution`` what the contract's code burnt (everything else).

``.gas_used = execution + calldata``: the cost of one step, the base transaction excluded.

Needs the ``pyrevm`` package (a test dependency); the runtime imports this module only
when asked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from opmlc_runtime.contract_errors import VERIFIER_ERRORS, by_selector
from opmlc_runtime.keccak import keccak256

__all__ = ["KNOWN_ERRORS", "TX_BASE_GAS", "Gas", "Revert", "StepVerifier", "calldata_gas",
           "evm_keccak256"]

TX_BASE_GAS = 21_000
SPEC_ID = "CANCUN"
_DEPLOYER = "0x" + "0f" * 20
_CALLER = "0x" + "ca" * 20
_KECCAK_ADDR = "0x" + "4b" * 20

STEP_SIGNATURE = "step(bytes32,bytes)"
# Signatures of the verifier's custom errors, from the one table that the contract's
# `error` declarations are generated from (opmlc_runtime.contract_errors).
KNOWN_ERRORS: tuple[str, ...] = tuple(e.signature for e in VERIFIER_ERRORS)
_ERROR_BY_SELECTOR = {sel: e.signature for sel, e in by_selector().items()}
_STEP_SELECTOR = keccak256(STEP_SIGNATURE.encode())[:4]
_REVERT_OUTPUT = re.compile(r"output:\s*0x([0-9a-fA-F]*)")


def _evm():  # imported lazily: pyrevm is a test dependency, not a runtime one
    from pyrevm import EVM

    return EVM(spec_id=SPEC_ID)


def calldata_gas(data: bytes) -> int:
    """Intrinsic calldata gas: 4 per zero byte, 16 per non-zero byte (EIP-2028)."""
    zeros = data.count(0)
    return 4 * zeros + 16 * (len(data) - zeros)


@dataclass(frozen=True)
class Gas:
    """Gas of one call: ``total = base + calldata + execution``."""

    execution: int
    calldata: int
    base: int = TX_BASE_GAS

    @property
    def total(self) -> int:
        return self.base + self.calldata + self.execution

    @property
    def step(self) -> int:
        """execution + calldata: what a step costs beyond the base transaction."""
        return self.execution + self.calldata


class Revert(Exception):  # noqa: N818 - named after the EVM outcome
    """The call reverted. ``data`` is the revert data; ``error`` the decoded custom error
    signature (e.g. ``"MerkleMismatch(uint256)"``) or None; ``args`` its 32-byte words.
    ``errors`` maps selectors to signatures (default: the verifier's); ``what`` names the
    call in the message."""

    def __init__(self, data: bytes, gas: Gas | None = None,
                 errors: dict[bytes, str] | None = None, what: str = "") -> None:
        self.data = data
        self.gas = gas
        self.error = (_ERROR_BY_SELECTOR if errors is None else errors).get(data[:4])
        self.words = [int.from_bytes(data[k:k + 32], "big") for k in range(4, len(data), 32)]
        shown = self.error or ("0x" + data.hex() if data else "no data")
        text = f"{what} reverted" if what else "reverted"
        super().__init__(f"{text}: {shown} {self.words if self.error else ''}".rstrip())

    @property
    def name(self) -> str | None:
        """The custom error's name without its argument types, e.g. ``"MerkleMismatch"``."""
        return self.error.split("(")[0] if self.error else None


def encode_step_call(pre_root: bytes, witness: bytes) -> bytes:
    """ABI calldata of ``step(bytes32 pre_root, bytes witness)``."""
    if len(pre_root) != 32:
        raise ValueError(f"a state root is 32 bytes, got {len(pre_root)}")
    pad = -len(witness) % 32
    return (_STEP_SELECTOR + bytes(pre_root) + (64).to_bytes(32, "big")
            + len(witness).to_bytes(32, "big") + bytes(witness) + bytes(pad))


class StepVerifier:
    """The verifier contract deployed on a fresh in-memory EVM."""

    def __init__(self, bytecode: bytes) -> None:
        self._evm = _evm()
        self.address = self._evm.deploy(_DEPLOYER, bytes(bytecode))
        self.gas: Gas | None = None

    @property
    def gas_used(self) -> int:
        """execution + calldata gas of the last call (the 21,000 base excluded)."""
        if self.gas is None:
            raise RuntimeError("no call made yet")
        return self.gas.step

    def call(self, calldata: bytes) -> bytes:
        """Raw message call; returns the output or raises :class:`Revert`. Sets ``.gas``."""
        try:
            out = self._evm.message_call(_CALLER, self.address, bytes(calldata))
        except RuntimeError as err:
            msg = str(err)
            m = _REVERT_OUTPUT.search(msg)
            if not msg.startswith("Revert") or m is None:
                raise
            self.gas = self._gas(calldata)
            raise Revert(bytes.fromhex(m.group(1)), self.gas) from None
        self.gas = self._gas(calldata)
        return bytes(out)

    def _gas(self, calldata: bytes) -> Gas:
        used = self._evm.result.gas_used
        cd = calldata_gas(calldata)
        return Gas(execution=used - TX_BASE_GAS - cd, calldata=cd)

    def step(self, pre_root: bytes, witness: bytes) -> bytes:
        """``step(pre_root, witness)`` on the EVM: the 32-byte post-state root."""
        out = self.call(encode_step_call(pre_root, witness))
        if len(out) != 32:
            raise RuntimeError(f"step returned {len(out)} bytes, expected 32")
        return out


# runtime code: return keccak256(calldata)
#   CALLDATASIZE PUSH0 PUSH0 CALLDATACOPY CALLDATASIZE PUSH0 SHA3 PUSH0 MSTORE
#   PUSH1 0x20 PUSH0 RETURN
_KECCAK_CODE = bytes.fromhex("365f5f37365f205f5260205ff3")
_keccak_evm = None


def evm_keccak256(data: bytes) -> bytes:
    """keccak256(data) computed by the EVM's SHA3 opcode (to test :func:`keccak256`)."""
    global _keccak_evm
    if _keccak_evm is None:
        from pyrevm import AccountInfo

        evm = _evm()
        evm.insert_account_info(_KECCAK_ADDR, AccountInfo(code=_KECCAK_CODE))
        _keccak_evm = evm
    return bytes(_keccak_evm.message_call(_CALLER, _KECCAK_ADDR, bytes(data)))
