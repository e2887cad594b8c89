"""One table of machine cases, run by the stepper tests and by the EVM differential tests.

Each case is an initial state (registers, memory, the instruction at ``pc``, status,
step counter, memory depth) and the expected post-state after ``steps`` steps, written
down by hand from the normative text of spec/ISA.md (ids in ``isa.NORMS``), never
recomputed with the table's Python lambdas. Two harnesses run every row:

* tests/test_isa_semantics.py steps it on the reference stepper and checks the
  expectation (:func:`check`);
* tests/test_verifier_evm.py replays every step through the compiled Solidity verifier
  on a real EVM, the post-state roots equal byte for byte, then checks the same
  expectation (Cannon ``DiffTester`` style).

The expectation is exact: the registers are ``regs`` updated by ``out`` and no other,
memory is the initial memory with the bytes of ``mem_out`` written and no other, pc is
``pc_out`` (default: pc + 8 if the machine still runs, else unchanged), status is
``status`` (default: RUNNING if it was running, else unchanged), the step counter is
``step_out`` (default: step_in + steps mod 2^64 if it was running, else unchanged), a
stopped machine keeps its root (``norm:stopped``), and the witness of the first step
carries an instruction leaf iff the fetch is valid and a data leaf iff ``data_leaf``.

Two sections, one type: the stepper rows (ids ``norm:<id>/<what>``, a 1 KiB memory,
the instruction at 0x40) and the differential rows (ids ``<name>[<norms>]``, 32 KiB
of memory or more, the instruction at 0x100; built with :func:`E` and its shorthands
``rcase`` / ``icase`` / ``FAULT``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opmlc_runtime import isa
from opmlc_runtime.asm import assemble
from opmlc_runtime.isa import MASK, Status, encode
from opmlc_runtime.merkle import Memory
from opmlc_runtime.state import STATE_SIZE
from opmlc_runtime.stepper import VM

MIN = 0x8000000000000000  # INT64_MIN as a 64-bit word
MAX = 0x7FFFFFFFFFFFFFFF  # INT64_MAX
MAXI = MAX
NEG1 = 0xFFFFFFFFFFFFFFFF  # -1

M = isa.BY_MNEMONIC


@dataclass(frozen=True)
class Case:
    id: str  # "norm:<id>/<what>" or "<name>[<norms>]"
    instr: str | bytes | None  # assembly (assembled at pc), raw bytes, or nothing at pc
    regs: dict[int, int] = field(default_factory=dict)
    out: dict[int, int] = field(default_factory=dict)  # registers expected to change
    mem: dict[int, bytes] = field(default_factory=dict)  # initial memory (besides the instr)
    mem_out: dict[int, bytes] = field(default_factory=dict)  # memory expected to change
    pc: int = 0x40
    pc_out: int | None = None  # default: pc + 8 when RUNNING, pc otherwise
    status: int = Status.RUNNING  # expected status after the step(s)
    status_in: int = Status.RUNNING
    step_in: int = 0
    step_out: int | None = None  # default: step_in + steps (mod 2^64) if RUNNING before
    steps: int = 1
    depth: int = 5
    data_leaf: bool = False  # the witness carries a data leaf
    norms: tuple[str, ...] = ()  # the normative ids the case checks

    def code(self) -> bytes:
        """The instruction bytes placed at ``pc`` (empty: none)."""
        if isinstance(self.instr, str):
            return assemble(self.instr, self.pc)
        return self.instr or b""


def u64(x: int) -> int:
    return x & MASK


def ins(mnemonic: str, rd: int = 0, rs1: int = 0, rs2: int = 0, imm: int = 0) -> bytes:
    return encode(M[mnemonic].opcode, rd, rs1, rs2, imm)


# --------------------------------------------------------------------------------------
# Building the initial state and checking the expectation
# --------------------------------------------------------------------------------------


def _memory(case: Case, *, after: bool = False) -> Memory:
    """The initial memory (``after``: with the expected ``mem_out`` bytes written)."""
    mem = Memory(case.depth)
    for addr, data in case.mem.items():
        mem.write(addr, data)
    code = case.code()
    if code and case.pc + len(code) <= mem.size:
        mem.write(case.pc, code)
    if after:
        for addr, data in case.mem_out.items():
            mem.write(addr, data)
    return mem


def build(case: Case) -> VM:
    """The initial machine of ``case``."""
    vm = VM(_memory(case), pc=case.pc)
    for i, v in case.regs.items():
        vm.core.regs[i] = u64(v)
    vm.core.status = case.status_in
    vm.core.step = case.step_in
    return vm


def check(case: Case, post: VM, pre_root: bytes, witness: bytes) -> None:
    """Assert that ``post`` (after ``case.steps`` steps) is the expected post-state and
    that ``witness`` (of the first step, from the state with root ``pre_root``) has the
    layout of state.py: encoding, [instruction leaf + path], [data leaf + path]."""
    core, cid = post.core, case.id
    running_before = case.status_in == Status.RUNNING
    regs = [0] * 32
    for i, v in {**case.regs, **case.out}.items():
        regs[i] = u64(v)
    assert core.status == case.status, f"{cid}: status {core.status}, the norm says {case.status}"
    assert core.regs == regs, f"{cid}: registers {core.regs}, the norm says {regs}"
    if case.pc_out is not None:
        expect_pc = case.pc_out
    elif case.status == Status.RUNNING:
        expect_pc = case.pc + 8
    else:
        expect_pc = case.pc
    assert core.pc == expect_pc, f"{cid}: pc {core.pc:#x}, the norm says {expect_pc:#x}"
    steps = case.steps if running_before else 0
    step_out = case.step_out if case.step_out is not None else u64(case.step_in + steps)
    assert core.step == step_out, f"{cid}: step {core.step}, the norm says {step_out}"
    # memory: exactly the expected bytes changed (compare the whole tree by its root)
    for addr, data in case.mem_out.items():
        assert post.mem.read(addr, len(data)) == data, f"{cid}: memory at {addr:#x}"
    assert post.mem.root() == _memory(case, after=True).root(), f"{cid}: other memory changed"
    if not running_before:
        assert post.root() == pre_root, f"{cid}: a stopped machine changed"  # norm:stopped
    path = 32 + 32 * case.depth
    fetch = running_before and case.pc % 8 == 0 and case.pc + 8 <= 32 << case.depth
    assert len(witness) == STATE_SIZE + path * fetch + path * case.data_leaf, cid


# --------------------------------------------------------------------------------------
# Stepper rows: a 1 KiB memory, the instruction at PC0; ids "norm:<id>/<what>"
# --------------------------------------------------------------------------------------

DEPTH = 5  # 32 << 5 = 1024 bytes of memory
SIZE = 32 << DEPTH
PC0 = 0x40  # where the instruction under test sits

# Data used by the load rows: leaf 8 (0x100..0x11f).
#   0x108: 11 22 33 44 55 66 77 88   (dword 0x8877665544332211)
#   0x118: f1 f2 f3 f4 f5 f6 f7 f8   (last dword of the leaf)
DATA = {0x108: bytes.fromhex("1122334455667788"), 0x118: bytes.fromhex("f1f2f3f4f5f6f7f8")}


def C(id: str, instr: str | bytes, **kw) -> Case:
    return Case(id, instr, norms=(id.split("/")[0],), **kw)


def r(**kw: int) -> dict[int, int]:
    """``r(r1=5, r2=-1)`` -> ``{1: 5, 2: 2**64 - 1}`` (values taken mod 2^64)."""
    return {int(k[1:]): v & MASK for k, v in kw.items()}


STEPPER_CASES: list[Case] = [
    # --- norm:word / norm:add-wrap / norm:sub-wrap ---------------------------------------
    C("norm:add-wrap/small", "add r3, r1, r2", regs=r(r1=5, r2=7), out=r(r3=12)),
    C("norm:add-wrap/max+1", "add r3, r1, r2", regs=r(r1=MAX, r2=1), out=r(r3=MIN)),
    C("norm:add-wrap/-1+1", "add r3, r1, r2", regs=r(r1=NEG1, r2=1), out=r(r3=0)),
    C("norm:add-wrap/min+min", "add r3, r1, r2", regs=r(r1=MIN, r2=MIN), out=r(r3=0)),
    C("norm:add-wrap/addi-max+1", "addi r3, r1, 1", regs=r(r1=MAX), out=r(r3=MIN)),
    C("norm:word/addi-sext-neg1", "addi r3, r1, -1", regs=r(r1=0), out=r(r3=NEG1)),
    C("norm:word/addi-imm-min", "addi r3, r1, -2147483648", regs=r(r1=5),
      out=r(r3=0xFFFFFFFF80000005)),
    C("norm:word/addi-imm-max", "addi r3, r1, 2147483647", regs=r(r1=1),
      out=r(r3=0x80000000)),
    C("norm:sub-wrap/0-1", "sub r3, r1, r2", regs=r(r1=0, r2=1), out=r(r3=NEG1)),
    C("norm:sub-wrap/min-1", "sub r3, r1, r2", regs=r(r1=MIN, r2=1), out=r(r3=MAX)),
    C("norm:sub-wrap/x-x", "sub r3, r1, r1", regs=r(r1=0x1234), out=r(r3=0)),
    # --- norm:mul-low / norm:mulh-signed --------------------------------------------------
    C("norm:mul-low/-1*-1", "mul r3, r1, r2", regs=r(r1=NEG1, r2=NEG1), out=r(r3=1)),
    C("norm:mul-low/max*2", "mul r3, r1, r2", regs=r(r1=MAX, r2=2),
      out=r(r3=0xFFFFFFFFFFFFFFFE)),
    C("norm:mul-low/2^32*2^32", "mul r3, r1, r2", regs=r(r1=1 << 32, r2=1 << 32), out=r(r3=0)),
    C("norm:mul-low/min*-1", "mul r3, r1, r2", regs=r(r1=MIN, r2=NEG1), out=r(r3=MIN)),
    C("norm:mul-low/-3*5", "mul r3, r1, r2", regs=r(r1=-3, r2=5), out=r(r3=-15)),
    C("norm:mulh-signed/-1*-1", "mulh r3, r1, r2", regs=r(r1=NEG1, r2=NEG1), out=r(r3=0)),
    C("norm:mulh-signed/-1*1", "mulh r3, r1, r2", regs=r(r1=NEG1, r2=1), out=r(r3=NEG1)),
    C("norm:mulh-signed/min*min", "mulh r3, r1, r2", regs=r(r1=MIN, r2=MIN),
      out=r(r3=0x4000000000000000)),
    C("norm:mulh-signed/min*max", "mulh r3, r1, r2", regs=r(r1=MIN, r2=MAX),
      out=r(r3=0xC000000000000000)),
    C("norm:mulh-signed/max*max", "mulh r3, r1, r2", regs=r(r1=MAX, r2=MAX),
      out=r(r3=0x3FFFFFFFFFFFFFFF)),
    C("norm:mulh-signed/2^32*2^32", "mulh r3, r1, r2", regs=r(r1=1 << 32, r2=1 << 32),
      out=r(r3=1)),
    C("norm:mulh-signed/-3*5-floor", "mulh r3, r1, r2", regs=r(r1=-3, r2=5), out=r(r3=NEG1)),
    C("norm:mulh-signed/0*min", "mulh r3, r1, r2", regs=r(r1=0, r2=MIN), out=r(r3=0)),
    # --- bitwise --------------------------------------------------------------------------
    C("norm:pc-next/and", "and r3, r1, r2", regs=r(r1=0xF0F0, r2=0xFF00), out=r(r3=0xF000)),
    C("norm:pc-next/and-neg1", "and r3, r1, r2", regs=r(r1=NEG1, r2=0x1234), out=r(r3=0x1234)),
    C("norm:pc-next/or", "or r3, r1, r2", regs=r(r1=0xF0F0, r2=0x0F0F), out=r(r3=0xFFFF)),
    C("norm:pc-next/xor", "xor r3, r1, r2", regs=r(r1=NEG1, r2=0xFF),
      out=r(r3=0xFFFFFFFFFFFFFF00)),
    C("norm:pc-next/andi-0xff", "andi r3, r1, 255", regs=r(r1=NEG1), out=r(r3=0xFF)),
    C("norm:word/andi-sext", "andi r3, r1, -16", regs=r(r1=0x1234), out=r(r3=0x1230)),
    # --- norm:shift-wide ------------------------------------------------------------------
    C("norm:shift-wide/sll-0", "sll r3, r1, r2", regs=r(r1=1, r2=0), out=r(r3=1)),
    C("norm:shift-wide/sll-63", "sll r3, r1, r2", regs=r(r1=1, r2=63), out=r(r3=MIN)),
    C("norm:shift-wide/sll-64", "sll r3, r1, r2", regs=r(r1=1, r2=64), out=r(r3=0)),
    C("norm:shift-wide/sll-2^63", "sll r3, r1, r2", regs=r(r1=NEG1, r2=MIN), out=r(r3=0)),
    C("norm:shift-wide/sll-neg-1", "sll r3, r1, r2", regs=r(r1=NEG1, r2=1),
      out=r(r3=0xFFFFFFFFFFFFFFFE)),
    C("norm:shift-wide/srl-0", "srl r3, r1, r2", regs=r(r1=NEG1, r2=0), out=r(r3=NEG1)),
    C("norm:shift-wide/srl-4", "srl r3, r1, r2", regs=r(r1=NEG1, r2=4),
      out=r(r3=0x0FFFFFFFFFFFFFFF)),
    C("norm:shift-wide/srl-63", "srl r3, r1, r2", regs=r(r1=MIN, r2=63), out=r(r3=1)),
    C("norm:shift-wide/srl-64", "srl r3, r1, r2", regs=r(r1=NEG1, r2=64), out=r(r3=0)),
    C("norm:shift-wide/srl-2^63", "srl r3, r1, r2", regs=r(r1=NEG1, r2=MIN), out=r(r3=0)),
    C("norm:shift-wide/sra-0", "sra r3, r1, r2", regs=r(r1=5, r2=0), out=r(r3=5)),
    C("norm:shift-wide/sra-1", "sra r3, r1, r2", regs=r(r1=MIN, r2=1),
      out=r(r3=0xC000000000000000)),
    C("norm:shift-wide/sra-63", "sra r3, r1, r2", regs=r(r1=MIN, r2=63), out=r(r3=NEG1)),
    C("norm:shift-wide/sra-64-neg", "sra r3, r1, r2", regs=r(r1=MIN, r2=64), out=r(r3=NEG1)),
    C("norm:shift-wide/sra-64-pos", "sra r3, r1, r2", regs=r(r1=MAX, r2=64), out=r(r3=0)),
    C("norm:shift-wide/sra-2^63", "sra r3, r1, r2", regs=r(r1=NEG1, r2=MIN), out=r(r3=NEG1)),
    C("norm:shift-wide/sra-floor", "sra r3, r1, r2", regs=r(r1=-7, r2=1), out=r(r3=-4)),
    C("norm:shift-wide/slli-63", "slli r3, r1, 63", regs=r(r1=3), out=r(r3=MIN)),
    C("norm:shift-wide/slli-64", "slli r3, r1, 64", regs=r(r1=1), out=r(r3=0)),
    C("norm:shift-wide/slli-neg-imm", "slli r3, r1, -1", regs=r(r1=1), out=r(r3=0)),
    C("norm:shift-wide/slli-0", "slli r3, r1, 0", regs=r(r1=0x1234), out=r(r3=0x1234)),
    C("norm:shift-wide/srli-63", "srli r3, r1, 63", regs=r(r1=NEG1), out=r(r3=1)),
    C("norm:shift-wide/srli-neg-imm", "srli r3, r1, -1", regs=r(r1=NEG1), out=r(r3=0)),
    C("norm:shift-wide/srai-1", "srai r3, r1, 1", regs=r(r1=-7), out=r(r3=-4)),
    C("norm:shift-wide/srai-64", "srai r3, r1, 64", regs=r(r1=MIN), out=r(r3=NEG1)),
    C("norm:shift-wide/srai-neg-imm-neg", "srai r3, r1, -1", regs=r(r1=-5), out=r(r3=NEG1)),
    C("norm:shift-wide/srai-neg-imm-pos", "srai r3, r1, -1", regs=r(r1=MAX), out=r(r3=0)),
    # --- norm:srar-round ------------------------------------------------------------------
    C("norm:srar-round/5>>1-tie-up", "srar r3, r1, r2", regs=r(r1=5, r2=1), out=r(r3=3)),
    C("norm:srar-round/-5>>1-tie-up", "srar r3, r1, r2", regs=r(r1=-5, r2=1), out=r(r3=-2)),
    C("norm:srar-round/-6>>2-tie-up", "srar r3, r1, r2", regs=r(r1=-6, r2=2), out=r(r3=-1)),
    C("norm:srar-round/-7>>2", "srar r3, r1, r2", regs=r(r1=-7, r2=2), out=r(r3=-2)),
    C("norm:srar-round/6>>2-tie", "srar r3, r1, r2", regs=r(r1=6, r2=2), out=r(r3=2)),
    C("norm:srar-round/5>>2-down", "srar r3, r1, r2", regs=r(r1=5, r2=2), out=r(r3=1)),
    C("norm:srar-round/7>>2-up", "srar r3, r1, r2", regs=r(r1=7, r2=2), out=r(r3=2)),
    C("norm:srar-round/-1>>1", "srar r3, r1, r2", regs=r(r1=-1, r2=1), out=r(r3=0)),
    C("norm:srar-round/max>>1-no-overflow", "srar r3, r1, r2", regs=r(r1=MAX, r2=1),
      out=r(r3=0x4000000000000000)),
    C("norm:srar-round/max>>63", "srar r3, r1, r2", regs=r(r1=MAX, r2=63), out=r(r3=1)),
    C("norm:srar-round/min>>63", "srar r3, r1, r2", regs=r(r1=MIN, r2=63), out=r(r3=NEG1)),
    C("norm:srar-round/-1>>63", "srar r3, r1, r2", regs=r(r1=-1, r2=63), out=r(r3=0)),
    C("norm:shift-wide/srar-0", "srar r3, r1, r2", regs=r(r1=-5, r2=0), out=r(r3=-5)),
    C("norm:shift-wide/srar-64", "srar r3, r1, r2", regs=r(r1=-1, r2=64), out=r(r3=0)),
    C("norm:shift-wide/srar-2^63", "srar r3, r1, r2", regs=r(r1=MIN, r2=MIN), out=r(r3=0)),
    C("norm:srar-round/srari-3>>1", "srari r3, r1, 1", regs=r(r1=-3), out=r(r3=-1)),
    C("norm:srar-round/srari-min>>63", "srari r3, r1, 63", regs=r(r1=MIN), out=r(r3=NEG1)),
    C("norm:shift-wide/srari-0", "srari r3, r1, 0", regs=r(r1=-3), out=r(r3=-3)),
    C("norm:shift-wide/srari-neg-imm", "srari r3, r1, -1", regs=r(r1=MIN), out=r(r3=0)),
    # --- compare / min / max --------------------------------------------------------------
    C("norm:pc-next/slt-neg", "slt r3, r1, r2", regs=r(r1=-1, r2=0), out=r(r3=1)),
    C("norm:pc-next/slt-pos", "slt r3, r1, r2", regs=r(r1=0, r2=-1), out=r(r3=0)),
    C("norm:pc-next/slt-min-max", "slt r3, r1, r2", regs=r(r1=MIN, r2=MAX), out=r(r3=1)),
    C("norm:pc-next/slt-equal", "slt r3, r1, r2", regs=r(r1=7, r2=7), out=r(r3=0)),
    C("norm:pc-next/sltu-neg", "sltu r3, r1, r2", regs=r(r1=-1, r2=0), out=r(r3=0)),
    C("norm:pc-next/sltu-pos", "sltu r3, r1, r2", regs=r(r1=0, r2=-1), out=r(r3=1)),
    C("norm:pc-next/min", "min r3, r1, r2", regs=r(r1=-1, r2=1), out=r(r3=NEG1)),
    C("norm:pc-next/min-extremes", "min r3, r1, r2", regs=r(r1=MAX, r2=MIN), out=r(r3=MIN)),
    C("norm:pc-next/max", "max r3, r1, r2", regs=r(r1=-1, r2=1), out=r(r3=1)),
    C("norm:pc-next/max-extremes", "max r3, r1, r2", regs=r(r1=MIN, r2=0), out=r(r3=0)),
    # --- norm:div-zero / norm:div-overflow ------------------------------------------------
    C("norm:div-overflow/7/2", "div r3, r1, r2", regs=r(r1=7, r2=2), out=r(r3=3)),
    C("norm:div-overflow/-7/2-trunc", "div r3, r1, r2", regs=r(r1=-7, r2=2), out=r(r3=-3)),
    C("norm:div-overflow/7/-2-trunc", "div r3, r1, r2", regs=r(r1=7, r2=-2), out=r(r3=-3)),
    C("norm:div-overflow/-7/-2", "div r3, r1, r2", regs=r(r1=-7, r2=-2), out=r(r3=3)),
    C("norm:div-overflow/min/-1", "div r3, r1, r2", regs=r(r1=MIN, r2=NEG1), out=r(r3=MIN)),
    C("norm:div-overflow/min/1", "div r3, r1, r2", regs=r(r1=MIN, r2=1), out=r(r3=MIN)),
    C("norm:div-overflow/min/min", "div r3, r1, r2", regs=r(r1=MIN, r2=MIN), out=r(r3=1)),
    C("norm:div-overflow/-1/min", "div r3, r1, r2", regs=r(r1=NEG1, r2=MIN), out=r(r3=0)),
    C("norm:div-zero/5/0", "div r3, r1, r2", regs=r(r1=5, r2=0, r3=99), out=r(r3=0)),
    C("norm:div-zero/min/0", "div r3, r1, r2", regs=r(r1=MIN, r2=0), out=r(r3=0)),
    C("norm:div-zero/0/0", "div r3, r1, r2", regs=r(r3=99), out=r(r3=0)),
    # --- norm:cmov ------------------------------------------------------------------------
    C("norm:cmov/taken", "cmov r3, r1, r2", regs=r(r1=0xAB, r2=1, r3=0x1234), out=r(r3=0xAB)),
    C("norm:cmov/not-taken", "cmov r3, r1, r2", regs=r(r1=0xAB, r2=0, r3=0x1234)),
    C("norm:cmov/top-bit-is-true", "cmov r3, r1, r2", regs=r(r1=7, r2=MIN, r3=1), out=r(r3=7)),
    # --- norm:sat -------------------------------------------------------------------------
    C("norm:sat/8-high", "sat r3, r1, 8", regs=r(r1=200), out=r(r3=127)),
    C("norm:sat/8-low", "sat r3, r1, 8", regs=r(r1=-200), out=r(r3=-128)),
    C("norm:sat/8-bounds-hi", "sat r3, r1, 8", regs=r(r1=127), out=r(r3=127)),
    C("norm:sat/8-bounds-lo", "sat r3, r1, 8", regs=r(r1=-128), out=r(r3=-128)),
    C("norm:sat/8-inside", "sat r3, r1, 8", regs=r(r1=5), out=r(r3=5)),
    C("norm:sat/16", "sat r3, r1, 16", regs=r(r1=40000), out=r(r3=32767)),
    C("norm:sat/1", "sat r3, r1, 1", regs=r(r1=5), out=r(r3=0)),
    C("norm:sat/1-neg", "sat r3, r1, 1", regs=r(r1=-5), out=r(r3=-1)),
    C("norm:sat/n0-is-1", "sat r3, r1, 0", regs=r(r1=-5), out=r(r3=-1)),
    C("norm:sat/n-neg-is-1", "sat r3, r1, -5", regs=r(r1=5), out=r(r3=0)),
    C("norm:sat/64-identity", "sat r3, r1, 64", regs=r(r1=MIN), out=r(r3=MIN)),
    C("norm:sat/100-is-64", "sat r3, r1, 100", regs=r(r1=MAX), out=r(r3=MAX)),
    C("norm:sat/32", "sat r3, r1, 32", regs=r(r1=MIN), out=r(r3=-(1 << 31))),
    C("norm:sat/satu-8-high", "satu r3, r1, 8", regs=r(r1=300), out=r(r3=255)),
    C("norm:sat/satu-8-neg", "satu r3, r1, 8", regs=r(r1=-5), out=r(r3=0)),
    C("norm:sat/satu-8-bound", "satu r3, r1, 8", regs=r(r1=255), out=r(r3=255)),
    C("norm:sat/satu-0", "satu r3, r1, 0", regs=r(r1=5), out=r(r3=0)),
    C("norm:sat/satu-neg-n", "satu r3, r1, -3", regs=r(r1=5), out=r(r3=0)),
    C("norm:sat/satu-63", "satu r3, r1, 63", regs=r(r1=MAX), out=r(r3=MAX)),
    C("norm:sat/satu-64", "satu r3, r1, 64", regs=r(r1=NEG1), out=r(r3=0)),
    C("norm:sat/satu-min", "satu r3, r1, 63", regs=r(r1=MIN), out=r(r3=0)),
    # --- norm:lih -------------------------------------------------------------------------
    C("norm:lih/replace-high", "lih r3, 0xdeadbeef", regs=r(r3=0x1122334455667788),
      out=r(r3=0xDEADBEEF55667788)),
    C("norm:lih/zero-high", "lih r3, 0", regs=r(r3=NEG1), out=r(r3=0xFFFFFFFF)),
    C("norm:lih/addi+lih", "addi r3, r0, -2\nlih r3, 0x12345678", steps=2, pc_out=PC0 + 16,
      out=r(r3=0x12345678FFFFFFFE)),
    # --- loads: norm:mem-le, every width, sign / zero extension, leaf offsets --------------
    C("norm:mem-le/lb-offset8", "lb r3, 0(r1)", regs=r(r1=0x108), mem=DATA, out=r(r3=0x11),
      data_leaf=True),
    C("norm:mem-le/lb-sext", "lb r3, 7(r1)", regs=r(r1=0x108), mem=DATA,
      out=r(r3=0xFFFFFFFFFFFFFF88), data_leaf=True),
    C("norm:mem-le/lb-neg-imm", "lb r3, -1(r1)", regs=r(r1=0x110), mem=DATA,
      out=r(r3=0xFFFFFFFFFFFFFF88), data_leaf=True),
    C("norm:mem-le/lbu", "lbu r3, 15(r1)", regs=r(r1=0x100), mem=DATA, out=r(r3=0x88),
      data_leaf=True),
    C("norm:mem-le/lbu-leaf-end", "lbu r3, 0x11f(r0)", mem=DATA, out=r(r3=0xF8),
      data_leaf=True),
    C("norm:mem-le/lh", "lh r3, 0(r1)", regs=r(r1=0x108), mem=DATA, out=r(r3=0x2211),
      data_leaf=True),
    C("norm:mem-le/lh-sext", "lh r3, 6(r1)", regs=r(r1=0x108), mem=DATA,
      out=r(r3=0xFFFFFFFFFFFF8877), data_leaf=True),
    C("norm:mem-le/lhu", "lhu r3, 6(r1)", regs=r(r1=0x108), mem=DATA, out=r(r3=0x8877),
      data_leaf=True),
    C("norm:mem-le/lw", "lw r3, 0(r1)", regs=r(r1=0x108), mem=DATA, out=r(r3=0x44332211),
      data_leaf=True),
    C("norm:mem-le/lw-sext", "lw r3, 4(r1)", regs=r(r1=0x108), mem=DATA,
      out=r(r3=0xFFFFFFFF88776655), data_leaf=True),
    C("norm:mem-le/lwu", "lwu r3, 4(r1)", regs=r(r1=0x108), mem=DATA, out=r(r3=0x88776655),
      data_leaf=True),
    C("norm:mem-le/lwu-leaf-end", "lwu r3, 0x11c(r0)", mem=DATA, out=r(r3=0xF8F7F6F5),
      data_leaf=True),
    C("norm:mem-le/ld", "ld r3, 0(r1)", regs=r(r1=0x108), mem=DATA,
      out=r(r3=0x8877665544332211), data_leaf=True),
    C("norm:mem-le/ld-leaf-end", "ld r3, 24(r1)", regs=r(r1=0x100), mem=DATA,
      out=r(r3=0xF8F7F6F5F4F3F2F1), data_leaf=True),
    C("norm:mem-le/ld-zero-memory", "ld r3, 0(r1)", regs=r(r1=0x200, r3=5), out=r(r3=0),
      data_leaf=True),
    C("norm:mem-range/ld-last-dword", "ld r3, 0x3f8(r0)", mem={0x3F8: b"\x01" * 8},
      out=r(r3=0x0101010101010101), data_leaf=True),
    C("norm:mem-range/lb-last-byte", "lbu r3, 0x3ff(r0)", mem={0x3FF: b"\x7f"},
      out=r(r3=0x7F), data_leaf=True),
    C("norm:r0/ld-into-r0", "ld r0, 0(r1)", regs=r(r1=0x108), mem=DATA, data_leaf=True),
    # --- stores ---------------------------------------------------------------------------
    C("norm:mem-le/sb", "sb r2, 1(r1)", regs=r(r1=0x100, r2=0x1234), mem=DATA,
      mem_out={0x101: b"\x34"}, data_leaf=True),
    C("norm:mem-le/sh", "sh r2, 2(r1)", regs=r(r1=0x100, r2=0xAABBCCDD),
      mem_out={0x102: b"\xdd\xcc"}, data_leaf=True),
    C("norm:mem-le/sw", "sw r2, 4(r1)", regs=r(r1=0x100, r2=0x1122334455667788), mem=DATA,
      mem_out={0x104: b"\x88\x77\x66\x55"}, data_leaf=True),
    C("norm:mem-le/sw-over-data", "sw r2, 0(r1)", regs=r(r1=0x108, r2=0), mem=DATA,
      mem_out={0x108: b"\x00\x00\x00\x00"}, data_leaf=True),
    C("norm:mem-le/sd-leaf-end", "sd r2, 24(r1)", regs=r(r1=0x100, r2=0x0102030405060708),
      mem=DATA, mem_out={0x118: bytes.fromhex("0807060504030201")}, data_leaf=True),
    C("norm:mem-le/sd-neg-imm", "sd r2, -8(r1)", regs=r(r1=0x110, r2=NEG1), mem=DATA,
      mem_out={0x108: b"\xff" * 8}, data_leaf=True),
    C("norm:mem-range/sd-last-dword", "sd r2, 0x3f8(r0)", regs=r(r2=MIN),
      mem_out={0x3F8: bytes.fromhex("0000000000000080")}, data_leaf=True),
    C("norm:mem-le/sd-own-leaf", "sd r2, 8(r1)", regs=r(r1=PC0, r2=0x5A),
      mem_out={PC0 + 8: bytes.fromhex("5a00000000000000")}, data_leaf=True),
    C("norm:mem-range/sd-ea-wraps-to-valid", "sd r2, 16(r1)", regs=r(r1=-8, r2=0x77),
      mem_out={0x8: bytes.fromhex("7700000000000000")}, data_leaf=True),
    C("norm:r0/sd-stores-zero", "sd r0, 0(r1)", regs=r(r1=0x108), mem=DATA,
      mem_out={0x108: bytes(8)}, data_leaf=True),
    # --- norm:mem-align -------------------------------------------------------------------
    C("norm:mem-align/lh-odd", "lh r3, 1(r1)", regs=r(r1=0x100), status=Status.FAULT_ALIGN),
    C("norm:mem-align/lhu-odd", "lhu r3, 0x103(r0)", status=Status.FAULT_ALIGN),
    C("norm:mem-align/lw-2", "lw r3, 2(r1)", regs=r(r1=0x100), status=Status.FAULT_ALIGN),
    C("norm:mem-align/lwu-6", "lwu r3, 6(r1)", regs=r(r1=0x100), status=Status.FAULT_ALIGN),
    C("norm:mem-align/ld-4", "ld r3, 4(r1)", regs=r(r1=0x100), status=Status.FAULT_ALIGN),
    C("norm:mem-align/sh-odd", "sh r2, 0x101(r0)", regs=r(r2=1), status=Status.FAULT_ALIGN),
    C("norm:mem-align/sw-6", "sw r2, 0x106(r0)", regs=r(r2=1), status=Status.FAULT_ALIGN),
    C("norm:mem-align/sd-12", "sd r2, 12(r1)", regs=r(r1=0x100, r2=1),
      status=Status.FAULT_ALIGN),
    C("norm:mem-align/before-range", "ld r3, 0x404(r0)", status=Status.FAULT_ALIGN),
    C("norm:mem-align/wrapped-ea", "lw r3, -2(r0)", status=Status.FAULT_ALIGN),
    # --- norm:mem-range -------------------------------------------------------------------
    C("norm:mem-range/ld-at-size", "ld r3, 0x400(r0)", status=Status.FAULT_ADDR),
    C("norm:mem-range/lb-at-size", "lb r3, 0(r1)", regs=r(r1=SIZE), status=Status.FAULT_ADDR),
    C("norm:mem-range/sb-at-size", "sb r2, 0(r1)", regs=r(r1=SIZE, r2=1),
      status=Status.FAULT_ADDR),
    C("norm:mem-range/ld-ea-wraps-high", "ld r3, -8(r0)", status=Status.FAULT_ADDR),
    C("norm:mem-range/sd-2^63", "sd r2, 0(r1)", regs=r(r1=MIN, r2=1),
      status=Status.FAULT_ADDR),
    C("norm:mem-range/lhu-top", "lhu r3, 0(r1)", regs=r(r1=-2), status=Status.FAULT_ADDR),
    # --- branches and jumps: norm:branch-target -------------------------------------------
    C("norm:branch-target/beq-taken", "beq r1, r2, 0x58", regs=r(r1=5, r2=5), pc_out=0x58),
    C("norm:branch-target/beq-not-taken", "beq r1, r2, 0x58", regs=r(r1=5, r2=6)),
    C("norm:branch-target/beq-backward", "beq r0, r0, 0x20", pc_out=0x20),
    C("norm:branch-target/bne-taken", "bne r1, r2, 0x100", regs=r(r1=1), pc_out=0x100),
    C("norm:branch-target/bne-not-taken", "bne r1, r2, 0x100", regs=r(r1=NEG1, r2=NEG1)),
    C("norm:branch-target/blt-signed", "blt r1, r2, 0x80", regs=r(r1=-1, r2=1), pc_out=0x80),
    C("norm:branch-target/blt-min-max", "blt r1, r2, 0x80", regs=r(r1=MIN, r2=MAX),
      pc_out=0x80),
    C("norm:branch-target/blt-equal", "blt r1, r2, 0x80", regs=r(r1=3, r2=3)),
    C("norm:branch-target/bltu-unsigned", "bltu r1, r2, 0x80", regs=r(r1=-1, r2=1)),
    C("norm:branch-target/bltu-taken", "bltu r1, r2, 0x80", regs=r(r1=0, r2=-1), pc_out=0x80),
    C("norm:branch-target/beq-wraps-unchecked", "beq r0, r0, 0xfffffffffffffff8",
      pc_out=0xFFFFFFFFFFFFFFF8),
    C("norm:branch-target/beq-misaligned-unchecked", "beq r0, r0, 0x44", pc_out=0x44),
    C("norm:branch-target/jal-link", "jal r1, 0x80", out=r(r1=PC0 + 8), pc_out=0x80),
    C("norm:branch-target/jal-backward", "jal r5, 0x0", out=r(r5=PC0 + 8), pc_out=0x0),
    C("norm:r0/jal-r0-link-dropped", "jal r0, 0x80", pc_out=0x80),
    C("norm:branch-target/jal-out-of-range", "jal r1, 0x7fff0000", out=r(r1=PC0 + 8),
      pc_out=0x7FFF0000),
    C("norm:branch-target/jalr", "jalr r1, 8(r2)", regs=r(r2=0x100), out=r(r1=PC0 + 8),
      pc_out=0x108),
    C("norm:branch-target/jalr-rd-eq-rs1", "jalr r2, 0(r2)", regs=r(r2=0x100),
      out=r(r2=PC0 + 8), pc_out=0x100),
    C("norm:branch-target/jalr-neg-imm", "jalr r1, -16(r2)", regs=r(r2=0x100),
      out=r(r1=PC0 + 8), pc_out=0xF0),
    C("norm:branch-target/jalr-wraps", "jalr r1, 16(r2)", regs=r(r2=-8), out=r(r1=PC0 + 8),
      pc_out=0x8),
    C("norm:branch-target/jalr-odd-not-masked", "jalr r0, 1(r2)", regs=r(r2=0x100),
      pc_out=0x101),
    # --- norm:halt / norm:fault / norm:stopped / norm:step-count ---------------------------
    C("norm:halt/halt", "halt", regs=r(r1=1), status=Status.HALTED),
    C("norm:halt/halt-last-slot", "halt", pc=SIZE - 8, status=Status.HALTED),
    C("norm:step-count/wraps", "addi r1, r1, 1", step_in=MASK, step_out=0, out=r(r1=1)),
    C("norm:step-count/fault-counts", "ld r3, -8(r0)", step_in=41, step_out=42,
      status=Status.FAULT_ADDR),
    C("norm:stopped/halted", "addi r1, r1, 1", status_in=Status.HALTED, status=Status.HALTED,
      step_in=7),
    C("norm:stopped/faulted", "addi r1, r1, 1", status_in=Status.FAULT_ADDR,
      status=Status.FAULT_ADDR, step_in=7),
    C("norm:stopped/bad-pc", b"", pc=3, status_in=Status.FAULT_PC, status=Status.FAULT_PC),
    C("norm:stopped/three-steps", "halt", status_in=Status.HALTED, status=Status.HALTED,
      steps=3),
    C("norm:fault/regs-and-memory-kept", "sd r2, 0x404(r0)", regs=r(r2=NEG1, r3=9), mem=DATA,
      status=Status.FAULT_ALIGN),
    # --- norm:fetch -----------------------------------------------------------------------
    C("norm:fetch/pc-misaligned", b"", pc=PC0 + 4, status=Status.FAULT_PC),
    C("norm:fetch/pc-odd", b"", pc=1, status=Status.FAULT_PC),
    C("norm:fetch/pc-at-size", b"", pc=SIZE, status=Status.FAULT_PC),
    C("norm:fetch/pc-top", b"", pc=MASK - 7, status=Status.FAULT_PC),
    C("norm:fetch/pc-top-misaligned", b"", pc=MASK - 3, status=Status.FAULT_PC),
    # --- norm:illegal ---------------------------------------------------------------------
    C("norm:illegal/opcode-0x00-zero-memory", bytes(8), status=Status.FAULT_ILLEGAL),
    C("norm:illegal/opcode-0xff", bytes.fromhex("ff01020300000000"),
      status=Status.FAULT_ILLEGAL),
    C("norm:illegal/opcode-gap-0x12", bytes.fromhex("1201020300000000"),
      status=Status.FAULT_ILLEGAL),
    C("norm:illegal/rd-32", encode(0x01, rd=32, rs1=1, rs2=2), regs=r(r1=1, r2=2),
      status=Status.FAULT_ILLEGAL),
    C("norm:illegal/rs1-255", encode(0x01, rd=3, rs1=255, rs2=2), status=Status.FAULT_ILLEGAL),
    C("norm:illegal/rs2-32", encode(0x01, rd=3, rs1=1, rs2=32), status=Status.FAULT_ILLEGAL),
    C("norm:illegal/load-rs1-40", encode(0x36, rd=3, rs1=40), status=Status.FAULT_ILLEGAL),
    C("norm:illegal/store-rs2-33", encode(0x3B, rs1=1, rs2=33), status=Status.FAULT_ILLEGAL),
    C("norm:illegal/unused-rs2-ignored", encode(0x20, rd=3, rs1=1, rs2=200, imm=5),
      regs=r(r1=1), out=r(r3=6)),
    C("norm:illegal/unused-rd-store-ignored", encode(0x3B, rd=77, rs1=1, rs2=2),
      regs=r(r1=0x100, r2=3), mem_out={0x100: bytes.fromhex("0300000000000000")},
      data_leaf=True),
    C("norm:illegal/unused-fields-halt", encode(0x50, rd=99, rs1=250, rs2=251, imm=-1),
      status=Status.HALTED),
    C("norm:illegal/unused-imm-r", encode(0x01, rd=3, rs1=1, rs2=2, imm=12345),
      regs=r(r1=1, r2=2), out=r(r3=3)),
    C("norm:illegal/unused-lih-rs1", encode(0x28, rd=3, rs1=40, imm=1), out=r(r3=1 << 32)),
    C("norm:illegal/unused-beq-rd", encode(0x40, rd=255, rs1=0, rs2=0, imm=16), pc_out=PC0 + 16),
    # --- norm:r0 --------------------------------------------------------------------------
    C("norm:r0/add-into-r0", "add r0, r1, r2", regs=r(r1=1, r2=2)),
    C("norm:r0/addi-into-r0", "addi zero, r1, 5", regs=r(r1=1)),
    C("norm:r0/lih-into-r0", "lih r0, 1"),
    C("norm:r0/reads-zero", "addi r3, zero, 0", regs=r(r3=5), out=r(r3=0)),
    C("norm:r0/jalr-into-r0", "jalr r0, 0(r1)", regs=r(r1=0x80), pc_out=0x80),
]


# --------------------------------------------------------------------------------------
# Differential rows: 32 KiB of memory unless stated, the instruction at PC;
# ids "<name>[<norms>]"
# --------------------------------------------------------------------------------------

PC = 0x100  # where single-instruction cases live
SIZE10 = 32 << 10


def E(name: str, word: bytes | None, regs: dict[int, int] | None = None,
      expect: dict | None = None, norms: tuple[str, ...] = (), *, pc: int = PC,
      depth: int = 10, mem: tuple[tuple[int, bytes], ...] = (), status: int = Status.RUNNING,
      step: int = 0, **kw) -> Case:
    """A row from ``expect = {"r3": v, "pc": v, "status": s, "step": n, "mem": (a, b)}``
    (keys not given take the defaults of :class:`Case`); ``kw``: more expectations."""
    expect = dict(expect or {})
    out = {int(k[1:]): u64(expect.pop(k)) for k in list(expect) if k.startswith("r")}
    mem_out = dict([expect.pop("mem")]) if "mem" in expect else {}
    want_status = expect.pop("status", Status.RUNNING if status == Status.RUNNING else status)
    pc_out, step_out = expect.pop("pc", None), expect.pop("step", None)
    assert not expect, f"{name}: unknown expectation keys {sorted(expect)}"
    cid = f"{name}[{','.join(n.removeprefix('norm:') for n in norms)}]"
    return Case(cid, word, {k: u64(v) for k, v in (regs or {}).items()}, out, dict(mem),
                mem_out, pc=pc, pc_out=pc_out, status=want_status, status_in=status,
                step_in=step, step_out=step_out, depth=depth, norms=tuple(norms), **kw)


def rcase(mn: str, a: int, b: int, want: int, *norms: str, name: str = "") -> Case:
    """r3 = mn(r1 = a, r2 = b)."""
    return E(name or f"{mn}_{a & MASK:x}_{b & MASK:x}", ins(mn, 3, 1, 2),
             {1: a, 2: b, 3: 0x5A5A}, {"r3": u64(want), "pc": PC + 8}, norms)


def icase(mn: str, a: int, imm: int, want: int, *norms: str, name: str = "") -> Case:
    """r3 = mn(r1 = a, imm)."""
    return E(name or f"{mn}_{a & MASK:x}_imm{imm}", ins(mn, 3, 1, 0, imm),
             {1: a, 3: 0x5A5A}, {"r3": u64(want), "pc": PC + 8}, norms)


def FAULT(name: str, word: bytes | None, status: Status, *norms: str, **kw) -> Case:
    return E(name, word, kw.pop("regs", {1: 0x40, 2: 7}),
             {"status": status, "pc": kw.get("pc", PC), **kw.pop("expect", {})},
             norms + ("norm:fault", "norm:step-count"), **kw)


DIFFERENTIAL_CASES: list[Case] = [
    # --- arithmetic --------------------------------------------------------------------
    rcase("add", MAXI, 1, MIN, "norm:add-wrap"),
    rcase("add", -1, -1, -2, "norm:add-wrap"),
    rcase("sub", 0, 1, -1, "norm:sub-wrap"),
    rcase("sub", MIN, 1, MAXI, "norm:sub-wrap"),
    rcase("mul", MIN, -1, MIN, "norm:mul-low"),
    rcase("mul", -1, -1, 1, "norm:mul-low"),
    rcase("mul", 1 << 32, 1 << 32, 0, "norm:mul-low"),
    rcase("mulh", MIN, MIN, 1 << 62, "norm:mulh-signed"),
    rcase("mulh", -1, 1, -1, "norm:mulh-signed"),
    rcase("mulh", MAXI, MAXI, (1 << 62) - 1, "norm:mulh-signed"),
    rcase("mulh", MIN, MAXI, (-(1 << 63) * MAXI) >> 64, "norm:mulh-signed"),
    rcase("and", 0xF0F0, -1, 0xF0F0),
    rcase("or", MIN, 1, MIN | 1),
    rcase("xor", -1, MIN, MAXI),
    rcase("div", 7, 0, 0, "norm:div-zero"),
    rcase("div", MIN, 0, 0, "norm:div-zero"),
    rcase("div", MIN, -1, MIN, "norm:div-overflow"),
    rcase("div", -7, 2, -3, "norm:div-overflow"),
    rcase("div", 7, -2, -3, "norm:div-overflow"),
    rcase("div", -1, MIN, 0, "norm:div-overflow"),
    rcase("div", MIN, 1, MIN, "norm:div-overflow"),
    # --- shifts: amounts are not masked ---------------------------------------------------
    rcase("sll", 1, 63, MIN, "norm:shift-wide"),
    rcase("sll", 1, 64, 0, "norm:shift-wide"),
    rcase("sll", 3, 65, 0, "norm:shift-wide"),
    rcase("sll", -1, MIN, 0, "norm:shift-wide"),
    rcase("srl", MIN, 63, 1, "norm:shift-wide"),
    rcase("srl", -1, 64, 0, "norm:shift-wide"),
    rcase("srl", -1, -1, 0, "norm:shift-wide"),
    rcase("sra", MIN, 63, -1, "norm:shift-wide"),
    rcase("sra", MIN, 64, -1, "norm:shift-wide"),
    rcase("sra", MIN, -1, -1, "norm:shift-wide"),
    rcase("sra", MAXI, 1000, 0, "norm:shift-wide"),
    rcase("srar", -3, 1, -1, "norm:srar-round"),
    rcase("srar", 3, 1, 2, "norm:srar-round"),
    rcase("srar", 5, 2, 1, "norm:srar-round"),
    rcase("srar", 6, 2, 2, "norm:srar-round"),
    rcase("srar", -6, 2, -1, "norm:srar-round"),
    rcase("srar", -5, 0, -5, "norm:srar-round"),
    rcase("srar", MIN, 64, 0, "norm:shift-wide"),
    rcase("srar", -1, -1, 0, "norm:shift-wide"),
    rcase("srar", MIN, 63, -1, "norm:srar-round"),
    rcase("srar", MAXI, 63, 1, "norm:srar-round"),
    rcase("srar", -1, 63, 0, "norm:srar-round"),
    # --- compare / select ----------------------------------------------------------------------
    rcase("slt", MIN, 0, 1),
    rcase("slt", 0, MIN, 0),
    rcase("sltu", MIN, 0, 0),
    rcase("sltu", 0, MIN, 1),
    rcase("min", MIN, MAXI, MIN),
    rcase("min", -1, 0, -1),
    rcase("max", MIN, MAXI, MAXI),
    rcase("max", -1, 0, 0),
    rcase("cmov", 77, 1, 77, "norm:cmov"),
    rcase("cmov", 77, MIN, 77, "norm:cmov"),
    rcase("cmov", 77, 0, 0x5A5A, "norm:cmov", name="cmov_keeps_rd"),
    # --- immediates ------------------------------------------------------------------------------
    icase("addi", 5, -1, 4, "norm:add-wrap"),
    icase("addi", MAXI, 1, MIN, "norm:add-wrap"),
    icase("addi", 0, -(1 << 31), -(1 << 31), "norm:add-wrap"),
    icase("andi", MIN | 0xFF, -1, MIN | 0xFF),
    icase("andi", -1, 0x7FFFFFFF, 0x7FFFFFFF),
    icase("slli", 1, 63, MIN, "norm:shift-wide"),
    icase("slli", 1, 64, 0, "norm:shift-wide"),
    icase("slli", 1, -1, 0, "norm:shift-wide"),
    icase("srli", -1, 60, 0xF, "norm:shift-wide"),
    icase("srli", -1, -1, 0, "norm:shift-wide"),
    icase("srai", MIN, -1, -1, "norm:shift-wide"),
    icase("srai", MIN, 4, -(1 << 59), "norm:shift-wide"),
    icase("srari", 3, 1, 2, "norm:srar-round"),
    icase("srari", -3, 0, -3, "norm:srar-round"),
    icase("srari", -3, -1, 0, "norm:shift-wide"),
    icase("srari", -3, 64, 0, "norm:shift-wide"),
    icase("sat", 1000, 8, 127, "norm:sat"),
    icase("sat", -1000, 8, -128, "norm:sat"),
    icase("sat", 5, 0, 0, "norm:sat"),
    icase("sat", -5, 0, -1, "norm:sat"),
    icase("sat", -5, -7, -1, "norm:sat"),
    icase("sat", MAXI, 1, 0, "norm:sat"),
    icase("sat", MIN, 64, MIN, "norm:sat"),
    icase("sat", MIN, 100, MIN, "norm:sat"),
    icase("sat", MIN, 63, -(1 << 62), "norm:sat"),
    icase("satu", 1000, 8, 255, "norm:sat"),
    icase("satu", -5, 8, 0, "norm:sat"),
    icase("satu", 5, 0, 0, "norm:sat"),
    icase("satu", 5, -1, 0, "norm:sat"),
    icase("satu", MAXI, 63, MAXI, "norm:sat"),
    icase("satu", MAXI, 64, MAXI, "norm:sat"),
    icase("satu", MAXI, 62, (1 << 62) - 1, "norm:sat"),
    icase("satu", MIN, 63, 0, "norm:sat"),
    E("lih", ins("lih", 3, 0, 0, 0x0ABCDEF0), {3: 0x1122334455667788},
      {"r3": 0x0ABCDEF055667788, "pc": PC + 8}, ("norm:lih",)),
    E("lih_negative_imm", ins("lih", 3, 0, 0, -1), {3: 0x1122334455667788},
      {"r3": 0xFFFFFFFF55667788}, ("norm:lih",)),
    # --- r0 --------------------------------------------------------------------------------------
    E("add_to_r0_dropped", ins("add", 0, 1, 2), {1: 5, 2: 6}, {"r0": 0, "pc": PC + 8},
      ("norm:r0",)),
    E("lih_to_r0_dropped", ins("lih", 0, 0, 0, 7), {}, {"r0": 0}, ("norm:r0",)),
    E("jal_r0_dropped", ins("jal", 0, 0, 0, 16), {}, {"r0": 0, "pc": PC + 16}, ("norm:r0",)),
    E("ld_to_r0_dropped", ins("ld", 0, 1, 0, 0), {1: 0x200}, {"r0": 0},
      ("norm:r0",), mem=((0x200, b"\xff" * 8),), data_leaf=True),
    E("reads_r0_as_zero", ins("addi", 3, 0, 0, 9), {}, {"r3": 9}, ("norm:r0",)),
    # --- memory ----------------------------------------------------------------------------------
    E("ld_negative_imm", ins("ld", 3, 1, 0, -8), {1: 0x208}, {"r3": 0x0807060504030201},
      ("norm:mem-le",), mem=((0x200, bytes(range(1, 9))),), data_leaf=True),
    E("sd_then_leaf", ins("sd", 0, 1, 2, 8), {1: 0x200, 2: 0x1122334455667788},
      {"mem": (0x208, bytes.fromhex("8877665544332211"))}, ("norm:mem-le",),
      data_leaf=True),
    E("sb_last_byte", ins("sb", 0, 1, 2, 0), {1: SIZE10 - 1, 2: 0xABCD},
      {"mem": (SIZE10 - 1, b"\xcd")}, ("norm:mem-range",), data_leaf=True),
    E("ld_last_word", ins("ld", 3, 1, 0, 0), {1: SIZE10 - 8}, {"r3": MIN},
      ("norm:mem-range",), mem=((SIZE10 - 1, b"\x80"),), data_leaf=True),
    E("store_into_own_instruction_leaf", ins("sw", 0, 1, 2, 4), {1: PC, 2: 0xDEADBEEF},
      {"mem": (PC + 4, bytes.fromhex("efbeadde"))}, ("norm:mem-le",), data_leaf=True),
    E("load_own_instruction", ins("ld", 3, 1, 0, 0), {1: PC},
      {"r3": int.from_bytes(ins("ld", 3, 1, 0, 0), "little")}, ("norm:mem-le",),
      data_leaf=True),
    FAULT("lh_misaligned", ins("lh", 3, 1, 0, 1), Status.FAULT_ALIGN, "norm:mem-align"),
    FAULT("lw_misaligned", ins("lw", 3, 1, 0, 2), Status.FAULT_ALIGN, "norm:mem-align"),
    FAULT("ld_misaligned", ins("ld", 3, 1, 0, 4), Status.FAULT_ALIGN, "norm:mem-align"),
    FAULT("sh_misaligned", ins("sh", 0, 1, 2, 3), Status.FAULT_ALIGN, "norm:mem-align"),
    FAULT("sw_misaligned", ins("sw", 0, 1, 2, 6), Status.FAULT_ALIGN, "norm:mem-align"),
    FAULT("sd_misaligned", ins("sd", 0, 1, 2, 12), Status.FAULT_ALIGN, "norm:mem-align"),
    FAULT("ld_at_size", ins("ld", 3, 1, 0, 0), Status.FAULT_ADDR, "norm:mem-range",
          regs={1: SIZE10}),
    FAULT("sb_at_size", ins("sb", 0, 1, 2, 0), Status.FAULT_ADDR, "norm:mem-range",
          regs={1: SIZE10}),
    FAULT("ld_wraps_to_top", ins("ld", 3, 0, 0, -8), Status.FAULT_ADDR, "norm:mem-range"),
    FAULT("lb_huge", ins("lb", 3, 1, 0, 0), Status.FAULT_ADDR, "norm:mem-range",
          regs={1: MASK}),
    FAULT("misaligned_and_out_of_range", ins("lw", 3, 1, 0, 0), Status.FAULT_ALIGN,
          "norm:mem-align", regs={1: MASK - 1}),
    E("ld_top_of_2p64_memory", ins("ld", 3, 0, 0, -8), {}, {"r3": 0x0102030405060708},
      ("norm:mem-range", "norm:word"), depth=59,
      mem=(((1 << 64) - 8, bytes.fromhex("0807060504030201")),), data_leaf=True),
    E("sd_top_of_2p64_memory", ins("sd", 0, 0, 1, -8), {1: MASK},
      {"mem": ((1 << 64) - 8, b"\xff" * 8)}, ("norm:mem-range",), depth=59,
      data_leaf=True),
    # --- control flow ----------------------------------------------------------------------------
    E("beq_taken", ins("beq", 0, 1, 2, 24), {1: 5, 2: 5}, {"pc": PC + 24},
      ("norm:branch-target",)),
    E("beq_not_taken", ins("beq", 0, 1, 2, 24), {1: 5, 2: 6}, {"pc": PC + 8},
      ("norm:pc-next",)),
    E("bne_backwards", ins("bne", 0, 1, 2, -0x100), {1: 5, 2: 6}, {"pc": 0},
      ("norm:branch-target",)),
    E("blt_signed", ins("blt", 0, 1, 2, 16), {1: MIN, 2: 0}, {"pc": PC + 16},
      ("norm:branch-target",)),
    E("bltu_unsigned", ins("bltu", 0, 1, 2, 16), {1: MIN, 2: 0}, {"pc": PC + 8},
      ("norm:branch-target",)),
    E("branch_misaligned_target", ins("beq", 0, 0, 0, 4), {}, {"pc": PC + 4},
      ("norm:branch-target",)),
    E("branch_target_wraps", ins("beq", 0, 0, 0, -0x200), {}, {"pc": u64(PC - 0x200)},
      ("norm:branch-target",)),
    E("jal_links", ins("jal", 1, 0, 0, -0x100), {}, {"r1": PC + 8, "pc": 0},
      ("norm:branch-target",)),
    E("jalr_unaligned_target", ins("jalr", 1, 2, 0, 4), {2: 0x1001},
      {"r1": PC + 8, "pc": 0x1005}, ("norm:branch-target",)),
    E("jalr_same_register", ins("jalr", 1, 1, 0, 8), {1: 0x300},
      {"r1": PC + 8, "pc": 0x308}, ("norm:branch-target",)),
    E("jalr_wraps", ins("jalr", 1, 1, 0, -16), {1: 8}, {"r1": PC + 8, "pc": u64(-8)},
      ("norm:branch-target",)),
    E("halt", ins("halt"), {1: 1}, {"status": Status.HALTED, "pc": PC, "r1": 1},
      ("norm:halt", "norm:step-count")),
    # --- counters ------------------------------------------------------------------------------
    E("step_counter_wraps", ins("addi", 1, 0, 0, 1), {}, {"r1": 1, "step": 0},
      ("norm:step-count",), step=MASK),
    E("pc_wraps", ins("addi", 1, 0, 0, 1), {}, {"pc": 0, "r1": 1},
      ("norm:pc-next", "norm:word"), pc=(1 << 64) - 8, depth=59),
    # --- faults ----------------------------------------------------------------------------------
    FAULT("pc_misaligned", ins("addi", 1, 0, 0, 1), Status.FAULT_PC, "norm:fetch",
          pc=PC + 4),
    FAULT("pc_at_size", None, Status.FAULT_PC, "norm:fetch", pc=SIZE10),
    FAULT("pc_near_2p64", None, Status.FAULT_PC, "norm:fetch", pc=(1 << 64) - 8),
    E("pc_last_slot", ins("addi", 1, 0, 0, 1), {}, {"r1": 1, "pc": SIZE10},
      ("norm:fetch",), pc=SIZE10 - 8),
    FAULT("opcode_zero", bytes(8), Status.FAULT_ILLEGAL, "norm:illegal"),
    FAULT("opcode_gap", encode(0x12, 1, 1, 1), Status.FAULT_ILLEGAL, "norm:illegal"),
    FAULT("opcode_37", encode(0x37, 1, 1, 1), Status.FAULT_ILLEGAL, "norm:illegal"),
    FAULT("opcode_ff", encode(0xFF), Status.FAULT_ILLEGAL, "norm:illegal"),
    FAULT("add_rd_32", ins("add", 32, 1, 2), Status.FAULT_ILLEGAL, "norm:illegal"),
    FAULT("add_rs1_32", ins("add", 1, 32, 2), Status.FAULT_ILLEGAL, "norm:illegal"),
    FAULT("add_rs2_255", ins("add", 1, 1, 255), Status.FAULT_ILLEGAL, "norm:illegal"),
    FAULT("cmov_rd_40", ins("cmov", 40, 1, 2), Status.FAULT_ILLEGAL, "norm:illegal"),
    FAULT("addi_rs1_40", ins("addi", 1, 40, 0, 1), Status.FAULT_ILLEGAL, "norm:illegal"),
    FAULT("lih_rd_32", ins("lih", 32, 0, 0, 1), Status.FAULT_ILLEGAL, "norm:illegal"),
    FAULT("lb_rd_32", ins("lb", 32, 1, 0, 0), Status.FAULT_ILLEGAL, "norm:illegal"),
    FAULT("ld_rs1_32_misaligned", ins("ld", 1, 32, 0, 1), Status.FAULT_ILLEGAL,
          "norm:illegal"),
    FAULT("sb_rs2_32", ins("sb", 0, 1, 32, 0), Status.FAULT_ILLEGAL, "norm:illegal"),
    FAULT("sd_rs1_33", ins("sd", 0, 33, 1, 0), Status.FAULT_ILLEGAL, "norm:illegal"),
    FAULT("beq_rs2_32", ins("beq", 0, 1, 32, 8), Status.FAULT_ILLEGAL, "norm:illegal"),
    FAULT("jal_rd_255", ins("jal", 255, 0, 0, 8), Status.FAULT_ILLEGAL, "norm:illegal"),
    FAULT("jalr_rs1_32", ins("jalr", 1, 32, 0, 8), Status.FAULT_ILLEGAL, "norm:illegal"),
    E("addi_ignores_rs2", ins("addi", 3, 1, 255, 1), {1: 4}, {"r3": 5}, ("norm:illegal",)),
    E("lih_ignores_rs1_rs2", ins("lih", 3, 200, 201, 1), {}, {"r3": 1 << 32},
      ("norm:illegal",)),
    E("sb_ignores_rd", ins("sb", 200, 1, 2, 0), {1: 0x200, 2: 0x7F},
      {"mem": (0x200, b"\x7f")}, ("norm:illegal",), data_leaf=True),
    E("beq_ignores_rd", ins("beq", 255, 1, 1, 16), {1: 3}, {"pc": PC + 16},
      ("norm:illegal",)),
    E("jal_ignores_rs1_rs2", ins("jal", 1, 99, 98, 16), {}, {"r1": PC + 8, "pc": PC + 16},
      ("norm:illegal",)),
    E("jalr_ignores_rs2", ins("jalr", 1, 2, 255, 0), {2: 0x40}, {"r1": PC + 8, "pc": 0x40},
      ("norm:illegal",)),
    E("halt_ignores_fields", encode(M["halt"].opcode, 255, 254, 253, -1), {},
      {"status": Status.HALTED}, ("norm:illegal", "norm:halt")),
    E("halted_is_stopped", ins("addi", 1, 0, 0, 1), {}, {"status": Status.HALTED, "r1": 0,
      "step": 5}, ("norm:stopped",), status=Status.HALTED, step=5),
    *[E(f"{st.name.lower()}_is_stopped", ins("addi", 1, 0, 0, 1), {},
        {"status": st, "step": 5, "pc": PC}, ("norm:stopped",), status=st, step=5)
      for st in Status if st >= 2],
    E("unknown_status_is_stopped", ins("addi", 1, 0, 0, 1), {}, {"step": 5},
      ("norm:stopped",), status=200, step=5),
]

CASES: list[Case] = STEPPER_CASES + DIFFERENTIAL_CASES
"""Every case; both harnesses run all of them."""
