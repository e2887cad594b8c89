"""The reference stepper: the living definition of one VM step.

Every other executor (the fast VM, native kernels at node boundaries, the
Solidity verifier) is tested against :func:`step`; never the reverse. It
dispatches on the instruction table in :mod:`opmlc_runtime.isa` and is
written for clarity, not speed.

One step from a RUNNING state (``norm:step-count``):

1. fetch: ``pc % 8 == 0 and pc + 8 <= size`` or FAULT_PC (``norm:fetch``);
2. decode: a known opcode with register fields < 32, or FAULT_ILLEGAL (``norm:illegal``);
3. execute the table row; loads and stores compute ``ea = (rs1 + sext(imm)) mod 2^64``
   and fault with FAULT_ALIGN / FAULT_ADDR (``norm:mem-align``, ``norm:mem-range``);
4. ``step += 1``; writes to r0 are dropped (``norm:r0``).

A fault changes only status and step (``norm:fault``); a non-RUNNING state
never changes (``norm:stopped``).
"""

from __future__ import annotations

from dataclasses import dataclass

from opmlc_runtime.isa import (
    INSTR_SIZE,
    LEAF_SIZE,
    MASK,
    NUM_REGS,
    Decoded,
    Fmt,
    Instr,
    Status,
    decode,
    is_legal,
    sext,
)
from opmlc_runtime.merkle import Memory
from opmlc_runtime.state import CoreState, state_root


@dataclass(frozen=True)
class Access:
    """What a step will touch, known before it executes (drives the witness)."""

    instr_leaf: int | None  # leaf index of the fetched instruction, None if not fetched
    data_leaf: int | None  # leaf index of the load/store, None if no valid data access
    decoded: Decoded | None
    fault: Status | None  # the fault this step will raise, if any


def fetch_ok(core: CoreState, size: int) -> bool:
    """``norm:fetch``: pc is 8-aligned and the whole instruction lies inside memory."""
    return core.pc % INSTR_SIZE == 0 and core.pc + INSTR_SIZE <= size


def effective_address(core: CoreState, d: Decoded) -> int:
    """``ea = (regs[rs1] + sext(imm)) mod 2^64``."""
    return (core.regs[d.rs1] + d.imm) & MASK


def data_fault(ea: int, size_bytes: int, mem_size: int) -> Status | None:
    """``norm:mem-align`` then ``norm:mem-range``."""
    if ea % size_bytes:
        return Status.FAULT_ALIGN
    if ea + size_bytes > mem_size:
        return Status.FAULT_ADDR
    return None


def access(core: CoreState, mem: Memory) -> Access:
    """Which leaves the next step reads, and whether it faults (without executing it)."""
    if core.status != Status.RUNNING:
        return Access(None, None, None, None)
    if not fetch_ok(core, mem.size):
        return Access(None, None, None, Status.FAULT_PC)
    d = decode(mem.read(core.pc, INSTR_SIZE))
    ileaf = core.pc // LEAF_SIZE
    if not is_legal(d):
        return Access(ileaf, None, d, Status.FAULT_ILLEGAL)
    ins = d.instr
    assert ins is not None
    if ins.fmt in (Fmt.LOAD, Fmt.STORE):
        ea = effective_address(core, d)
        fault = data_fault(ea, ins.size, mem.size)
        if fault is not None:
            return Access(ileaf, None, d, fault)
        return Access(ileaf, ea // LEAF_SIZE, d, None)
    return Access(ileaf, None, d, None)


def _execute(core: CoreState, mem: Memory, ins: Instr, d: Decoded) -> None:
    regs = core.regs
    # A register field the format does not use may hold any byte (norm:illegal): read it
    # as 0 rather than indexing past the register file.
    a = regs[d.rs1] if d.rs1 < NUM_REGS else 0
    b = regs[d.rs2] if d.rs2 < NUM_REGS else 0
    imm = d.imm & MASK
    next_pc = (core.pc + INSTR_SIZE) & MASK
    result: int | None = None
    fmt = ins.fmt
    if fmt is Fmt.R:
        result = ins.py(a, b, regs[d.rd]) if ins.reads_rd else ins.py(a, b)
    elif fmt is Fmt.I:
        result = ins.py(a, imm)
    elif fmt is Fmt.U:
        result = ins.py(regs[d.rd], imm)
    elif fmt is Fmt.LOAD:
        raw = int.from_bytes(mem.read(effective_address(core, d), ins.size), "little")
        result = sext(raw, 8 * ins.size) if ins.signed else raw
    elif fmt is Fmt.STORE:
        value = b & ((1 << (8 * ins.size)) - 1)
        mem.write(effective_address(core, d), value.to_bytes(ins.size, "little"))
    elif fmt is Fmt.BRANCH:
        if ins.py(a, b):
            next_pc = (core.pc + imm) & MASK
    elif fmt is Fmt.JAL:
        result, next_pc = next_pc, (core.pc + imm) & MASK
    elif fmt is Fmt.JALR:
        result, next_pc = next_pc, (a + imm) & MASK
    elif fmt is Fmt.SYS:  # halt
        core.status = Status.HALTED
        return
    if result is not None and d.rd != 0:
        regs[d.rd] = result & MASK
    core.pc = next_pc


def step(core: CoreState, mem: Memory) -> None:
    """Advance the machine by one step in place (see the module docstring)."""
    if core.status != Status.RUNNING:
        return  # norm:stopped
    if core.regs[0] != 0 or core.depth != mem.depth:
        raise ValueError("malformed state: r0 must be 0 and depth must match memory "
                         "(norm:state-valid)")
    acc = access(core, mem)
    if acc.fault is not None:
        core.status = acc.fault
    else:
        assert acc.decoded is not None and acc.decoded.instr is not None
        _execute(core, mem, acc.decoded.instr, acc.decoded)
    core.step = (core.step + 1) & MASK


class VM:
    """A machine: core state plus Merkle memory, stepped by the reference :func:`step`."""

    def __init__(self, mem: Memory, pc: int = 0) -> None:
        self.mem = mem
        self.core = CoreState(pc=pc, depth=mem.depth)

    @classmethod
    def from_image(cls, image: bytes, depth: int, pc: int = 0, base: int = 0) -> VM:
        """A VM whose memory holds ``image`` at address ``base`` and zeros elsewhere."""
        mem = Memory(depth, size_hint=base + len(image))
        mem.load_image(base, image)
        return cls(mem, pc)

    @property
    def running(self) -> bool:
        return self.core.status == Status.RUNNING

    def step(self) -> None:
        step(self.core, self.mem)

    def run(self, max_steps: int | None = None) -> int:
        """Step until the machine stops or ``max_steps`` steps were taken; returns steps taken."""
        n = 0
        core, mem = self.core, self.mem
        while core.status == Status.RUNNING and (max_steps is None or n < max_steps):
            step(core, mem)
            n += 1
        return n

    def root(self) -> bytes:
        """The state root: ``keccak256(encoding(core, memory root))``."""
        return state_root(self.core, self.mem.root())

    def encode(self) -> bytes:
        return self.core.encode(self.mem.root())

    def witness(self) -> bytes:
        """The one-step witness for the transition from the current state (see state.py)."""
        acc = access(self.core, self.mem)
        parts = [self.encode()]
        for leaf in (acc.instr_leaf, acc.data_leaf):
            if leaf is not None:
                parts.append(self.mem.read_leaf(leaf))
                parts.extend(self.mem.proof(leaf))
        return b"".join(parts)

    def copy(self) -> VM:
        vm = VM.__new__(VM)
        vm.mem = self.mem.copy()
        vm.core = self.core.copy()
        return vm
