"""Per-instruction tests of the reference stepper, citing the normative ids of spec/ISA.md.

Each row: an instruction (assembly at ``pc``, or raw bytes), the initial registers and
memory, and the hand-computed expected registers / memory / pc / status / step. The
expectations are literal numbers worked out by hand from the spec, never recomputed
with the table's Python lambdas. Every opcode of the table and every normative id
appears in at least one row (asserted below). Plus hypothesis properties against
exact rational / 128-bit arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opmlc_runtime.asm import assemble
from opmlc_runtime.isa import INSTRUCTIONS, MASK, NORMS, Fmt, Status, encode
from opmlc_runtime.merkle import Memory
from opmlc_runtime.state import STATE_SIZE
from opmlc_runtime.stepper import VM

DEPTH = 5  # 32 << 5 = 1024 bytes of memory
SIZE = 32 << DEPTH
PC0 = 0x40  # where the instruction under test sits
D = 0x100  # data area

MIN = 0x8000000000000000  # INT64_MIN as a 64-bit word
MAX = 0x7FFFFFFFFFFFFFFF  # INT64_MAX
NEG1 = 0xFFFFFFFFFFFFFFFF  # -1

# Data used by the load rows: leaf 8 (0x100..0x11f).
#   0x108: 11 22 33 44 55 66 77 88   (dword 0x8877665544332211)
#   0x118: f1 f2 f3 f4 f5 f6 f7 f8   (last dword of the leaf)
DATA = {0x108: bytes.fromhex("1122334455667788"), 0x118: bytes.fromhex("f1f2f3f4f5f6f7f8")}


@dataclass
class Case:
    id: str  # "norm:<id>/<what>"
    instr: str | bytes  # assembly (assembled at pc) or raw instruction bytes
    regs: dict[int, int] = field(default_factory=dict)
    out: dict[int, int] = field(default_factory=dict)  # registers expected to change
    mem: dict[int, bytes] = field(default_factory=dict)  # initial memory (besides the instr)
    mem_out: dict[int, bytes] = field(default_factory=dict)  # memory expected to change
    pc: int = PC0
    pc_out: int | None = None  # default: pc + 8 when RUNNING, pc otherwise
    status: Status = Status.RUNNING  # expected status after the step(s)
    status_in: Status = Status.RUNNING
    step_in: int = 0
    step_out: int | None = None  # default: step_in + steps (mod 2^64) if RUNNING before
    steps: int = 1
    data_leaf: bool = False  # the witness carries a data leaf


def C(id: str, instr: str | bytes, **kw) -> Case:
    return Case(id, instr, **kw)


def r(**kw: int) -> dict[int, int]:
    """``r(r1=5, r2=-1)`` -> ``{1: 5, 2: 2**64 - 1}`` (values taken mod 2^64)."""
    return {int(k[1:]): v & MASK for k, v in kw.items()}


CASES: list[Case] = [
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


def _image(case: Case) -> bytearray:
    img = bytearray(SIZE)
    for addr, data in case.mem.items():
        img[addr:addr + len(data)] = data
    code = case.instr if isinstance(case.instr, bytes) else assemble(case.instr, case.pc)
    if code and case.pc + len(code) <= SIZE:
        img[case.pc:case.pc + len(code)] = code
    return img


def _vm(case: Case) -> VM:
    vm = VM.from_image(bytes(_image(case)), DEPTH, pc=case.pc)
    for i, v in case.regs.items():
        vm.core.regs[i] = v
    vm.core.status = case.status_in
    vm.core.step = case.step_in
    return vm


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_step(case: Case) -> None:
    vm = _vm(case)
    pre_root = vm.root()
    witness = vm.witness()
    for _ in range(case.steps):
        vm.step()
    running_before = case.status_in == Status.RUNNING
    regs = [0] * 32
    for i, v in {**case.regs, **case.out}.items():
        regs[i] = v
    core = vm.core
    assert Status(core.status) == case.status
    assert core.regs == regs
    if case.pc_out is not None:
        expect_pc = case.pc_out
    elif case.status == Status.RUNNING:
        expect_pc = case.pc + 8
    else:
        expect_pc = case.pc
    assert core.pc == expect_pc
    steps = case.steps if running_before else 0
    step_out = case.step_out if case.step_out is not None else case.step_in + steps
    assert core.step == step_out
    # memory: exactly the expected bytes changed (compare the whole tree by its root)
    expect = _image(case)
    for addr, data in case.mem_out.items():
        assert vm.mem.read(addr, len(data)) == data
        expect[addr:addr + len(data)] = data
    ref = Memory(DEPTH, size_hint=SIZE)
    ref.load_image(0, bytes(expect))
    assert vm.mem.root() == ref.root()
    if not running_before:
        assert vm.root() == pre_root  # norm:stopped
    # witness layout (state.py): encoding, [instruction leaf + path], [data leaf + path]
    path = 32 + 32 * DEPTH
    fetch = running_before and case.pc % 8 == 0 and case.pc + 8 <= SIZE
    assert len(witness) == STATE_SIZE + path * fetch + path * case.data_leaf


def _opcode(case: Case) -> int | None:
    code = case.instr if isinstance(case.instr, bytes) else assemble(case.instr, case.pc)
    return code[0] if code else None


def test_every_opcode_has_a_row() -> None:
    covered = set()
    for c in CASES:
        code = c.instr if isinstance(c.instr, bytes) else assemble(c.instr, c.pc)
        covered |= {code[k] for k in range(0, len(code), 8)}
    missing = [i.mnemonic for i in INSTRUCTIONS if i.opcode not in covered]
    assert not missing, f"instructions without a semantics row: {missing}"


def test_every_norm_has_a_row() -> None:
    cited = {c.id.split("/")[0] for c in CASES}
    # Witness norms are checked by test_step on every row (exact witness length).
    cited |= {n for n in NORMS if n.startswith("norm:witness")}
    # norm:state-valid is checked by test_malformed_state_is_refused below.
    cited.add("norm:state-valid")
    assert cited <= set(NORMS), f"rows cite unknown norms: {sorted(cited - set(NORMS))}"
    missing = sorted(set(NORMS) - cited)
    assert not missing, f"normative statements without a test row: {missing}"


def test_table_norms_exist() -> None:
    for ins in INSTRUCTIONS:
        for n in ins.norms:
            assert n in NORMS, f"{ins.mnemonic} cites unknown {n}"


def test_row_ids_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


def test_load_store_rows_cover_every_width() -> None:
    for ins in INSTRUCTIONS:
        if ins.fmt in (Fmt.LOAD, Fmt.STORE):
            ok = [c for c in CASES if _opcode(c) == ins.opcode and c.status == Status.RUNNING]
            assert ok, f"{ins.mnemonic}: no successful access row"


# --- properties (hypothesis), checked through the stepper ----------------------------------

words = st.one_of(st.integers(0, MASK),
                  st.sampled_from([0, 1, MASK, MIN, MAX, MIN + 1, MAX - 1, 2, 1 << 32]))


def _s64(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


class _Runner:
    """One machine per instruction, reset before each example (fast)."""

    def __init__(self, text: str) -> None:
        self.vm = VM.from_image(assemble(text, PC0), DEPTH, pc=PC0, base=PC0)

    def __call__(self, a: int, b: int) -> int:
        core = self.vm.core
        core.pc, core.status, core.step = PC0, Status.RUNNING, 0
        core.regs = [0] * 32
        core.regs[1], core.regs[2] = a, b
        self.vm.step()
        assert core.status == Status.RUNNING and core.pc == PC0 + 8
        return core.regs[3]


_SRAR = _Runner("srar r3, r1, r2")
_MULH = _Runner("mulh r3, r1, r2")
_DIV = _Runner("div r3, r1, r2")


@settings(max_examples=300, deadline=None)
@given(a=words, n=st.integers(1, 63))
def test_srar_is_round_half_up_of_exact_rational(a: int, n: int) -> None:
    """norm:srar-round: floor(x / 2^n + 1/2) of the exact rational."""
    exact = Fraction(_s64(a), 1 << n) + Fraction(1, 2)
    expect = exact.numerator // exact.denominator  # floor
    assert _SRAR(a, n) == expect & MASK


@settings(max_examples=300, deadline=None)
@given(a=words, b=words)
def test_mulh_is_high_half_of_128_bit_product(a: int, b: int) -> None:
    """norm:mulh-signed: bits 64..127 of the two's complement 128-bit product."""
    product = (_s64(a) * _s64(b)) % (1 << 128)
    assert _MULH(a, b) == product >> 64


@settings(max_examples=300, deadline=None)
@given(a=words, b=words)
def test_div_is_total(a: int, b: int) -> None:
    """norm:div-zero, norm:div-overflow: never faults; trunc toward zero; x / 0 = 0."""
    x, y = _s64(a), _s64(b)
    expect = 0 if y == 0 else int(Fraction(x, y))  # int() of a Fraction truncates
    assert _DIV(a, b) == expect % (1 << 64)



@pytest.mark.parametrize("bad", ["r0", "depth"])
def test_malformed_state_is_refused(bad: str) -> None:
    """norm:state-valid: the stepper refuses a RUNNING state with r0 != 0 or a depth that
    does not match its memory, rather than stepping it."""
    from opmlc_runtime.stepper import VM

    vm = VM.from_image(assemble("addi r1, r0, 1\nhalt\n"), depth=8)
    if bad == "r0":
        vm.core.regs[0] = 1
    else:
        vm.core.depth = 9
    with pytest.raises(ValueError, match="state-valid"):
        vm.step()
