"""The custom errors of the one-step verifier contract: one table, two consumers.

The Solidity ``error`` declarations of the generated verifier
(``opmlc_isagen.solidity``) are rendered from :data:`VERIFIER_ERRORS`, and the runtime
decodes revert data with the selectors built from it (:mod:`opmlc_runtime.evm`), so a
verifier node and the contract cannot disagree on an error's name or arguments.

A row: the error's name, its NatSpec ``@notice``, and its parameters as
``(solidity type, name, @param text)``. ``signature`` is the canonical ABI signature
(``"Name(type1,type2)"``); ``selector = keccak256(signature)[:4]``.
"""

from __future__ import annotations

from dataclasses import dataclass

from opmlc_runtime.keccak import keccak256

__all__ = ["VERIFIER_ERRORS", "ContractError", "Param", "by_selector"]


@dataclass(frozen=True)
class Param:
    """One argument of a custom error: ``type name`` with its ``@param`` text."""

    type: str
    name: str
    doc: str


@dataclass(frozen=True)
class ContractError:
    """A Solidity custom error: ``error name(params)`` with NatSpec."""

    name: str
    notice: str
    params: tuple[Param, ...] = ()

    @property
    def signature(self) -> str:
        """``"Name(type1,type2)"``, the canonical form the selector is hashed from."""
        return f"{self.name}({','.join(p.type for p in self.params)})"

    @property
    def selector(self) -> bytes:
        """The 4-byte selector that opens the revert data: ``keccak256(signature)[:4]``."""
        return keccak256(self.signature.encode())[:4]


VERIFIER_ERRORS: tuple[ContractError, ...] = (
    ContractError(
        "WitnessLength",
        "The witness is not exactly as long as the layout requires for this pre-state.",
        (Param("uint256", "length", "The witness length received."),
         Param("uint256", "expected", "The length the layout requires."))),
    ContractError(
        "PreStateMismatch",
        "keccak256 of the state encoding in the witness is not the pre-state root.",
        (Param("bytes32", "preStateRoot", "The root the caller claimed."),
         Param("bytes32", "encodingHash", "keccak256 of the encoding in the witness."))),
    ContractError(
        "MerkleMismatch",
        "A leaf and its siblings in the witness do not lead to the state's memory root.",
        (Param("uint256", "leafIndex", "Index of the leaf (address / 32) whose path is wrong."),)),
    ContractError(
        "InvalidDepth",
        "The memory depth in the state encoding is outside MIN_DEPTH..MAX_DEPTH.",
        (Param("uint256", "depth", "The depth byte of the encoding."),)),
    ContractError(
        "NonZeroR0",
        "Register r0 of a RUNNING pre-state is not zero (norm:state-valid).",
        (Param("uint256", "value", "The r0 word of the encoding."),)),
)
"""The custom errors of ``OpmlcStep``, in declaration order."""


def by_selector(errors: tuple[ContractError, ...] = VERIFIER_ERRORS) -> dict[bytes, ContractError]:
    """``{selector: error}`` for decoding revert data."""
    return {e.selector: e for e in errors}
