"""VM state, its fixed-layout encoding, the state root and the one-step witness layout.

The encoding is defined once here and mirrored by the generated Solidity
verifier (same offsets, same sizes); spec/ISA.md documents it and a test checks
the three agree.

State encoding (``STATE_SIZE`` = 306 bytes, big-endian integers)::

    offset  size  field
    0       8     pc
    8       8     step      (steps executed from RUNNING states, mod 2^64)
    16      1     status    (isa.Status)
    17      1     depth     (memory tree depth; memory size = 32 << depth)
    18      256   regs[0..31], 8 bytes each (regs[0] is always 0)
    274     32    memory root

``state_root = keccak256(encoding)``.

One-step witness (what ``step(preStateRoot, witness)`` takes)::

    state encoding                              306 bytes
    [instruction leaf, then depth siblings]     32 + 32*depth   iff status == RUNNING and pc valid
    [data leaf, then depth siblings]            32 + 32*depth   iff the instruction is a load or
                                                                store whose address is aligned
                                                                and in range

Siblings are listed bottom-up. Nothing else is allowed: the witness length must
match exactly (``norm:witness-exact``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from opmlc_runtime.isa import MAX_DEPTH, MIN_DEPTH, NUM_REGS, Status
from opmlc_runtime.keccak import keccak256

STATE_SIZE = 8 + 8 + 1 + 1 + NUM_REGS * 8 + 32
OFF_PC, OFF_STEP, OFF_STATUS, OFF_DEPTH, OFF_REGS, OFF_MEMROOT = 0, 8, 16, 17, 18, 274
assert OFF_MEMROOT + 32 == STATE_SIZE

_HEAD = struct.Struct(">QQBB")
_REGS = struct.Struct(">" + "Q" * NUM_REGS)


@dataclass
class CoreState:
    """The non-memory part of the VM state."""

    pc: int = 0
    step: int = 0
    status: int = Status.RUNNING
    depth: int = 20
    regs: list[int] = field(default_factory=lambda: [0] * NUM_REGS)

    def encode(self, mem_root: bytes) -> bytes:
        """The fixed 306-byte encoding (see module docstring)."""
        if not MIN_DEPTH <= self.depth <= MAX_DEPTH:
            raise ValueError(f"memory depth {self.depth} outside {MIN_DEPTH}..{MAX_DEPTH}")
        return (_HEAD.pack(self.pc, self.step, int(self.status), self.depth)
                + _REGS.pack(*self.regs) + bytes(mem_root))

    def copy(self) -> CoreState:
        return CoreState(self.pc, self.step, self.status, self.depth, list(self.regs))


def decode_state(enc: bytes) -> tuple[CoreState, bytes]:
    """Inverse of :meth:`CoreState.encode`: ``(core, mem_root)``."""
    if len(enc) != STATE_SIZE:
        raise ValueError(f"a state encoding is {STATE_SIZE} bytes, got {len(enc)}")
    pc, step, status, depth = _HEAD.unpack_from(enc, OFF_PC)
    regs = list(_REGS.unpack_from(enc, OFF_REGS))
    return CoreState(pc, step, status, depth, regs), bytes(enc[OFF_MEMROOT:])


def state_root(core: CoreState, mem_root: bytes) -> bytes:
    """``keccak256(encode(core, mem_root))``."""
    return keccak256(core.encode(mem_root))
