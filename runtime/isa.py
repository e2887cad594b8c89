"""The opmlc VM instruction set: the one table every executor is built from.

This module is the single definition of the machine (STYLE.md, "One definition
of the machine"). Each row of :data:`INSTRUCTIONS` gives an instruction's
opcode, encoding format, assembly syntax, Python semantics, Solidity semantics
and pseudo-code. From this table:

* the reference stepper (:mod:`opmlc_runtime.stepper`) dispatches,
* the assembler and disassembler (:mod:`opmlc_runtime.asm`) encode and decode,
* the Solidity one-step verifier (``opmlc_isagen.solidity``) is generated,
* the instruction tables of ``spec/ISA.md`` are generated (a test fails on drift).

Words are 64-bit. Python semantics receive and return unsigned 64-bit integers
(``0 <= v < 2**64``); results are reduced modulo 2**64 by the caller. Solidity
semantics are expressions over ``uint256`` variables ``a`` (rs1), ``b`` (rs2,
or for the I and U formats the sign-extended immediate as a 64-bit unsigned
value) and ``d`` (the old value of ``rd``), all already reduced to 64 bits;
their result is reduced modulo 2**64 by the generated code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, IntEnum

ISA_VERSION = 1
"""Bumped on any change to encoding, semantics, the state encoding or the witness."""

XLEN = 64
MASK = (1 << XLEN) - 1
NUM_REGS = 32
INSTR_SIZE = 8  # bytes per instruction (fixed width)
LEAF_SIZE = 32  # bytes per Merkle leaf
MIN_DEPTH = 1
MAX_DEPTH = 59  # 32 << 59 == 2**64 bytes: the whole 64-bit address space


class Status(IntEnum):
    """VM status byte. Values >= 2 are faults; a faulted or halted VM never changes again."""

    RUNNING = 0
    HALTED = 1
    FAULT_ILLEGAL = 2  # unknown opcode or register field >= 32
    FAULT_PC = 3  # pc not a multiple of 8, or pc + 8 > memory size
    FAULT_ADDR = 4  # data access past the end of memory
    FAULT_ALIGN = 5  # data address not a multiple of the access size


class Fmt(Enum):
    """Encoding / operand formats. Every instruction is 8 bytes:
    ``opcode:u8 | rd:u8 | rs1:u8 | rs2:u8 | imm:i32 little-endian``.
    """

    R = "R"  # rd = f(rs1, rs2)            op rd, rs1, rs2
    I = "I"  # rd = f(rs1, imm)            op rd, rs1, imm
    U = "U"  # rd = f(rd, imm)             op rd, imm
    LOAD = "LOAD"  # rd = mem[rs1 + imm]   op rd, imm(rs1)
    STORE = "STORE"  # mem[rs1 + imm] = rs2  op rs2, imm(rs1)
    BRANCH = "BRANCH"  # if f(rs1, rs2): pc += imm     op rs1, rs2, target
    JAL = "JAL"  # rd = pc + 8; pc += imm  op rd, target
    JALR = "JALR"  # rd = pc + 8; pc = rs1 + imm   op rd, imm(rs1)
    SYS = "SYS"  # halt                   op


# Which encoding fields each format uses (the others are ignored by decode and
# written as zero by the assembler).
FMT_FIELDS: dict[Fmt, tuple[str, ...]] = {
    Fmt.R: ("rd", "rs1", "rs2"),
    Fmt.I: ("rd", "rs1", "imm"),
    Fmt.U: ("rd", "imm"),
    Fmt.LOAD: ("rd", "rs1", "imm"),
    Fmt.STORE: ("rs1", "rs2", "imm"),
    Fmt.BRANCH: ("rs1", "rs2", "imm"),
    Fmt.JAL: ("rd", "imm"),
    Fmt.JALR: ("rd", "rs1", "imm"),
    Fmt.SYS: (),
}

FMT_SYNTAX: dict[Fmt, str] = {
    Fmt.R: "{m} rd, rs1, rs2",
    Fmt.I: "{m} rd, rs1, imm",
    Fmt.U: "{m} rd, imm",
    Fmt.LOAD: "{m} rd, imm(rs1)",
    Fmt.STORE: "{m} rs2, imm(rs1)",
    Fmt.BRANCH: "{m} rs1, rs2, target",
    Fmt.JAL: "{m} rd, target",
    Fmt.JALR: "{m} rd, imm(rs1)",
    Fmt.SYS: "{m}",
}


def sext(v: int, bits: int) -> int:
    """Sign-extend the low ``bits`` bits of ``v`` to a Python int."""
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def s64(v: int) -> int:
    """The signed value of a 64-bit word: ``v - 2**64 if v >= 2**63 else v``."""
    return sext(v, 64)


# ---------------------------------------------------------------------------
# Semantics helpers (total functions on 64-bit words)
# ---------------------------------------------------------------------------


def _sll(a: int, b: int) -> int:
    return 0 if b >= 64 else a << b


def _srl(a: int, b: int) -> int:
    return 0 if b >= 64 else a >> b


def _sra(a: int, b: int) -> int:
    return s64(a) >> min(b, 63)


def _srar(a: int, b: int) -> int:
    """Rounding arithmetic shift: floor(s64(a) / 2**b + 1/2), exact (no intermediate overflow)."""
    if b == 0:
        return a
    if b >= 64:
        return 0
    x = s64(a)
    return (x >> b) + ((x >> (b - 1)) & 1)


def _div(a: int, b: int) -> int:
    """Signed division truncating toward zero; x / 0 = 0; MIN / -1 = MIN (wraps)."""
    x, y = s64(a), s64(b)
    if y == 0:
        return 0
    q = abs(x) // abs(y)
    return -q if (x < 0) != (y < 0) else q


def _sat(a: int, n: int) -> int:
    """Clamp s64(a) to the signed n-bit range, n = clamp(s64(imm), 1, 64)."""
    n = min(max(s64(n), 1), 64)
    lo, hi = -(1 << (n - 1)), (1 << (n - 1)) - 1
    return min(max(s64(a), lo), hi)


def _satu(a: int, n: int) -> int:
    """Clamp s64(a) to [0, 2**n - 1], n = clamp(s64(imm), 0, 63)."""
    n = min(max(s64(n), 0), 63)
    return min(max(s64(a), 0), (1 << n) - 1)


@dataclass(frozen=True)
class Instr:
    """One row of the instruction table."""

    mnemonic: str
    opcode: int
    fmt: Fmt
    group: str
    summary: str
    pseudo: str  # pseudo-code, as printed in spec/ISA.md
    py: Callable[..., int] | None = None  # semantics (see module docstring)
    sol: str | None = None  # Solidity expression (see module docstring)
    size: int = 0  # LOAD / STORE: access size in bytes
    signed: bool = False  # LOAD: sign-extend
    reads_rd: bool = False  # R: the semantics also read the old rd (passed as a third operand)
    norms: tuple[str, ...] = field(default_factory=tuple)  # normative ids this row implements


# Solidity helper functions the expressions may call; defined in the generated
# contract (see opmlc_isagen.solidity): s(x) = int256 of the 64-bit word x,
# u(x) = uint256(x) reduced mod 2**64 (two's complement), plus the ones named
# after the Python helpers above.
INSTRUCTIONS: tuple[Instr, ...] = (
    # --- integer register-register -------------------------------------------------
    Instr("add", 0x01, Fmt.R, "alu", "wrapping add", "rd = (rs1 + rs2) mod 2^64",
          lambda a, b: a + b, "a + b", norms=("norm:add-wrap",)),
    Instr("sub", 0x02, Fmt.R, "alu", "wrapping subtract", "rd = (rs1 - rs2) mod 2^64",
          lambda a, b: a - b, "a - b", norms=("norm:sub-wrap",)),
    Instr("mul", 0x03, Fmt.R, "mul", "low 64 bits of the product",
          "rd = (rs1 * rs2) mod 2^64", lambda a, b: a * b, "a * b", norms=("norm:mul-low",)),
    Instr("mulh", 0x04, Fmt.R, "mul", "high 64 bits of the signed 128-bit product",
          "rd = floor(s(rs1) * s(rs2) / 2^64)",
          lambda a, b: (s64(a) * s64(b)) >> 64, "u((s(a) * s(b)) >> 64)",
          norms=("norm:mulh-signed",)),
    Instr("and", 0x05, Fmt.R, "alu", "bitwise and", "rd = rs1 & rs2",
          lambda a, b: a & b, "a & b"),
    Instr("or", 0x06, Fmt.R, "alu", "bitwise or", "rd = rs1 | rs2",
          lambda a, b: a | b, "a | b"),
    Instr("xor", 0x07, Fmt.R, "alu", "bitwise xor", "rd = rs1 ^ rs2",
          lambda a, b: a ^ b, "a ^ b"),
    Instr("sll", 0x08, Fmt.R, "shift", "shift left logical",
          "rd = rs2 >= 64 ? 0 : (rs1 << rs2) mod 2^64", _sll, "sll(a, b)",
          norms=("norm:shift-wide",)),
    Instr("srl", 0x09, Fmt.R, "shift", "shift right logical",
          "rd = rs2 >= 64 ? 0 : rs1 >> rs2", _srl, "srl(a, b)", norms=("norm:shift-wide",)),
    Instr("sra", 0x0A, Fmt.R, "shift", "shift right arithmetic",
          "rd = s(rs1) >> min(rs2, 63)", _sra, "sra(a, b)", norms=("norm:shift-wide",)),
    Instr("srar", 0x0B, Fmt.R, "shift", "rounding shift right arithmetic (ties toward +inf)",
          "rd = rs2 == 0 ? rs1 : rs2 >= 64 ? 0 : floor(s(rs1) / 2^rs2 + 1/2)",
          _srar, "srar(a, b)", norms=("norm:srar-round", "norm:shift-wide")),
    Instr("slt", 0x0C, Fmt.R, "compare", "set if less than (signed)",
          "rd = s(rs1) < s(rs2) ? 1 : 0", lambda a, b: int(s64(a) < s64(b)),
          "s(a) < s(b) ? 1 : 0"),
    Instr("sltu", 0x0D, Fmt.R, "compare", "set if less than (unsigned)",
          "rd = rs1 < rs2 ? 1 : 0", lambda a, b: int(a < b), "a < b ? 1 : 0"),
    Instr("min", 0x0E, Fmt.R, "compare", "signed minimum", "rd = min(s(rs1), s(rs2))",
          lambda a, b: min(s64(a), s64(b)), "s(a) < s(b) ? a : b"),
    Instr("max", 0x0F, Fmt.R, "compare", "signed maximum", "rd = max(s(rs1), s(rs2))",
          lambda a, b: max(s64(a), s64(b)), "s(a) < s(b) ? b : a"),
    Instr("div", 0x10, Fmt.R, "mul", "signed division, truncating toward zero",
          "rd = rs2 == 0 ? 0 : trunc(s(rs1) / s(rs2)) mod 2^64", _div,
          "b == 0 ? 0 : u(s(a) / s(b))", norms=("norm:div-zero", "norm:div-overflow")),
    Instr("cmov", 0x11, Fmt.R, "compare", "conditional move (select without a branch)",
          "rd = rs2 != 0 ? rs1 : rd", lambda a, b, d: a if b != 0 else d,
          "b != 0 ? a : d", reads_rd=True, norms=("norm:cmov",)),
    # --- integer register-immediate ------------------------------------------------
    Instr("addi", 0x20, Fmt.I, "alu", "add immediate", "rd = (rs1 + sext(imm)) mod 2^64",
          lambda a, b: a + b, "a + b", norms=("norm:add-wrap",)),
    Instr("andi", 0x21, Fmt.I, "alu", "and immediate", "rd = rs1 & sext(imm)",
          lambda a, b: a & b, "a & b"),
    Instr("slli", 0x22, Fmt.I, "shift", "shift left logical by immediate",
          "rd = sext(imm) >=u 64 ? 0 : (rs1 << imm) mod 2^64", _sll, "sll(a, b)",
          norms=("norm:shift-wide",)),
    Instr("srli", 0x23, Fmt.I, "shift", "shift right logical by immediate",
          "rd = sext(imm) >=u 64 ? 0 : rs1 >> imm", _srl, "srl(a, b)",
          norms=("norm:shift-wide",)),
    Instr("srai", 0x24, Fmt.I, "shift", "shift right arithmetic by immediate",
          "rd = s(rs1) >> min(sext(imm) as u64, 63)", _sra, "sra(a, b)",
          norms=("norm:shift-wide",)),
    Instr("srari", 0x25, Fmt.I, "shift", "rounding shift right arithmetic by immediate",
          "n = sext(imm) as u64; rd = n == 0 ? rs1 : n >= 64 ? 0 : floor(s(rs1) / 2^n + 1/2)",
          _srar, "srar(a, b)", norms=("norm:srar-round", "norm:shift-wide")),
    Instr("sat", 0x26, Fmt.I, "compare", "saturate to a signed n-bit range",
          "n = clamp(imm, 1, 64); rd = clamp(s(rs1), -2^(n-1), 2^(n-1) - 1)",
          _sat, "sat(a, b)", norms=("norm:sat",)),
    Instr("satu", 0x27, Fmt.I, "compare", "saturate to an unsigned n-bit range",
          "n = clamp(imm, 0, 63); rd = clamp(s(rs1), 0, 2^n - 1)",
          _satu, "satu(a, b)", norms=("norm:sat",)),
    Instr("lih", 0x28, Fmt.U, "alu", "load immediate into the high half",
          "rd = (rd & 0xFFFFFFFF) | ((imm & 0xFFFFFFFF) << 32)",
          lambda d, b: (d & 0xFFFFFFFF) | ((b & 0xFFFFFFFF) << 32),
          "(d & 0xFFFFFFFF) | ((b & 0xFFFFFFFF) << 32)", norms=("norm:lih",)),
    # --- loads (little-endian, naturally aligned) ------------------------------------
    Instr("lb", 0x30, Fmt.LOAD, "load", "load 8 bits, sign-extend", "rd = sext(mem8[rs1 + imm])",
          size=1, signed=True, norms=("norm:mem-le", "norm:mem-align", "norm:mem-range")),
    Instr("lbu", 0x31, Fmt.LOAD, "load", "load 8 bits, zero-extend", "rd = mem8[rs1 + imm]",
          size=1, norms=("norm:mem-le", "norm:mem-align", "norm:mem-range")),
    Instr("lh", 0x32, Fmt.LOAD, "load", "load 16 bits, sign-extend",
          "rd = sext(mem16[rs1 + imm])", size=2, signed=True,
          norms=("norm:mem-le", "norm:mem-align", "norm:mem-range")),
    Instr("lhu", 0x33, Fmt.LOAD, "load", "load 16 bits, zero-extend", "rd = mem16[rs1 + imm]",
          size=2, norms=("norm:mem-le", "norm:mem-align", "norm:mem-range")),
    Instr("lw", 0x34, Fmt.LOAD, "load", "load 32 bits, sign-extend",
          "rd = sext(mem32[rs1 + imm])", size=4, signed=True,
          norms=("norm:mem-le", "norm:mem-align", "norm:mem-range")),
    Instr("lwu", 0x35, Fmt.LOAD, "load", "load 32 bits, zero-extend", "rd = mem32[rs1 + imm]",
          size=4, norms=("norm:mem-le", "norm:mem-align", "norm:mem-range")),
    Instr("ld", 0x36, Fmt.LOAD, "load", "load 64 bits", "rd = mem64[rs1 + imm]", size=8,
          norms=("norm:mem-le", "norm:mem-align", "norm:mem-range")),
    # --- stores ------------------------------------------------------------------------
    Instr("sb", 0x38, Fmt.STORE, "store", "store the low 8 bits", "mem8[rs1 + imm] = rs2",
          size=1, norms=("norm:mem-le", "norm:mem-align", "norm:mem-range")),
    Instr("sh", 0x39, Fmt.STORE, "store", "store the low 16 bits", "mem16[rs1 + imm] = rs2",
          size=2, norms=("norm:mem-le", "norm:mem-align", "norm:mem-range")),
    Instr("sw", 0x3A, Fmt.STORE, "store", "store the low 32 bits", "mem32[rs1 + imm] = rs2",
          size=4, norms=("norm:mem-le", "norm:mem-align", "norm:mem-range")),
    Instr("sd", 0x3B, Fmt.STORE, "store", "store 64 bits", "mem64[rs1 + imm] = rs2", size=8,
          norms=("norm:mem-le", "norm:mem-align", "norm:mem-range")),
    # --- control flow ------------------------------------------------------------------
    Instr("beq", 0x40, Fmt.BRANCH, "branch", "branch if equal",
          "pc = rs1 == rs2 ? pc + sext(imm) : pc + 8", lambda a, b: a == b, "a == b",
          norms=("norm:branch-target",)),
    Instr("bne", 0x41, Fmt.BRANCH, "branch", "branch if not equal",
          "pc = rs1 != rs2 ? pc + sext(imm) : pc + 8", lambda a, b: a != b, "a != b",
          norms=("norm:branch-target",)),
    Instr("blt", 0x42, Fmt.BRANCH, "branch", "branch if less than (signed)",
          "pc = s(rs1) < s(rs2) ? pc + sext(imm) : pc + 8",
          lambda a, b: s64(a) < s64(b), "s(a) < s(b)", norms=("norm:branch-target",)),
    Instr("bltu", 0x43, Fmt.BRANCH, "branch", "branch if less than (unsigned)",
          "pc = rs1 < rs2 ? pc + sext(imm) : pc + 8", lambda a, b: a < b, "a < b",
          norms=("norm:branch-target",)),
    Instr("jal", 0x48, Fmt.JAL, "jump", "jump and link",
          "rd = pc + 8; pc = pc + sext(imm)", norms=("norm:branch-target",)),
    Instr("jalr", 0x49, Fmt.JALR, "jump", "jump and link register",
          "t = rs1 + sext(imm); rd = pc + 8; pc = t", norms=("norm:branch-target",)),
    Instr("halt", 0x50, Fmt.SYS, "system", "stop the machine",
          "status = HALTED", norms=("norm:halt",)),
)

BY_OPCODE: dict[int, Instr] = {i.opcode: i for i in INSTRUCTIONS}
BY_MNEMONIC: dict[str, Instr] = {i.mnemonic: i for i in INSTRUCTIONS}
assert len(BY_OPCODE) == len(INSTRUCTIONS) and len(BY_MNEMONIC) == len(INSTRUCTIONS)
assert 0x00 not in BY_OPCODE  # zeroed memory must fault, not run


# ---------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Decoded:
    """The fields of one 8-byte instruction word."""

    opcode: int
    rd: int
    rs1: int
    rs2: int
    imm: int  # signed 32-bit

    @property
    def instr(self) -> Instr | None:
        return BY_OPCODE.get(self.opcode)


def encode(opcode: int, rd: int = 0, rs1: int = 0, rs2: int = 0, imm: int = 0) -> bytes:
    """``opcode | rd | rs1 | rs2 | imm (i32 little-endian)`` as 8 bytes."""
    if not -(1 << 31) <= imm < (1 << 31):
        raise ValueError(f"immediate {imm} does not fit in 32 signed bits")
    for name, r in (("rd", rd), ("rs1", rs1), ("rs2", rs2)):
        if not 0 <= r < 256:
            raise ValueError(f"{name}={r} does not fit in a byte")
    return bytes((opcode, rd, rs1, rs2)) + (imm & 0xFFFFFFFF).to_bytes(4, "little")


def decode(word: bytes) -> Decoded:
    """Split an 8-byte instruction into its fields (no validity check)."""
    if len(word) != INSTR_SIZE:
        raise ValueError(f"an instruction is {INSTR_SIZE} bytes, got {len(word)}")
    return Decoded(word[0], word[1], word[2], word[3],
                   sext(int.from_bytes(word[4:8], "little"), 32))


def is_legal(d: Decoded) -> bool:
    """norm:illegal — an opcode not in the table, or a register field >= 32 that the
    instruction's format uses, makes the instruction illegal."""
    ins = d.instr
    if ins is None:
        return False
    used = FMT_FIELDS[ins.fmt]
    return all(getattr(d, r) < NUM_REGS for r in ("rd", "rs1", "rs2") if r in used)


# ---------------------------------------------------------------------------
# Normative statements (spec/ISA.md cites them; tests cite them by id)
# ---------------------------------------------------------------------------

NORMS: dict[str, str] = {
    "norm:word": "Registers and addresses are 64-bit words; all arithmetic is modulo 2^64 "
                 "unless an instruction says otherwise.",
    "norm:r0": "Register r0 always reads as zero; writes to r0 are discarded.",
    "norm:add-wrap": "add, addi and sub wrap modulo 2^64; no overflow is ever signalled.",
    "norm:sub-wrap": "sub computes (rs1 - rs2) mod 2^64.",
    "norm:mul-low": "mul writes the low 64 bits of the product; the product of the signed and "
                    "of the unsigned interpretations agree on these bits.",
    "norm:mulh-signed": "mulh writes bits 64..127 of the exact signed 128-bit product "
                        "s(rs1) * s(rs2), i.e. floor(s(rs1) * s(rs2) / 2^64).",
    "norm:shift-wide": "A shift amount is the full 64-bit unsigned value of rs2 (or of the "
                       "sign-extended immediate); it is not masked. Amounts >= 64 give 0 for "
                       "sll/srl, the sign fill (0 or -1) for sra, and 0 for srar.",
    "norm:srar-round": "srar/srari with amount n in 1..63 compute floor(s(rs1) / 2^n + 1/2) "
                       "exactly: round to nearest, ties toward +infinity, evaluated as "
                       "(s(rs1) >> n) + ((s(rs1) >> (n-1)) & 1), which never overflows.",
    "norm:div-zero": "div by zero writes 0.",
    "norm:div-overflow": "div rounds toward zero; (-2^63) / (-1) writes -2^63 (wraps).",
    "norm:cmov": "cmov writes rs1 to rd when rs2 != 0 and leaves rd unchanged otherwise; it is "
                 "the branch-free select used by data-independent kernels.",
    "norm:sat": "sat clamps s(rs1) to [-2^(n-1), 2^(n-1)-1] with n = clamp(s(imm), 1, 64); "
                "satu clamps s(rs1) to [0, 2^n - 1] with n = clamp(s(imm), 0, 63).",
    "norm:lih": "lih replaces the high 32 bits of rd with the immediate's 32 bits and keeps the "
                "low 32 bits; addi rd, r0, lo followed by lih rd, hi loads any 64-bit constant "
                "whose low half is sext(lo).",
    "norm:mem-le": "Memory is byte-addressed and little-endian: a k-byte access at address A "
                   "reads or writes bytes A..A+k-1, least significant first.",
    "norm:mem-align": "A load or store of k bytes (k in 1, 2, 4, 8) whose effective address "
                      "(rs1 + sext(imm)) mod 2^64 is not a multiple of k faults with "
                      "FAULT_ALIGN; aligned accesses never straddle a 32-byte leaf.",
    "norm:mem-range": "A load or store whose aligned effective address is >= the memory size "
                      "32 * 2^depth faults with FAULT_ADDR.",
    "norm:branch-target": "Branch and jump targets are computed modulo 2^64 and are not checked "
                          "when taken; an invalid pc faults at the next fetch (FAULT_PC).",
    "norm:fetch": "The instruction at pc is fetched from memory; pc must be a multiple of 8 "
                  "and pc + 8 <= 32 * 2^depth, otherwise the step faults with FAULT_PC.",
    "norm:illegal": "An opcode not in the table, or a register field >= 32 used by the "
                    "instruction's format, faults with FAULT_ILLEGAL. Fields the format does "
                    "not use are ignored.",
    "norm:fault": "A faulting step sets status to the fault code and increments the step "
                  "counter; pc, registers and memory are unchanged.",
    "norm:halt": "halt sets status to HALTED and increments the step counter; pc, registers "
                 "and memory are unchanged.",
    "norm:stopped": "A step from a state whose status is not RUNNING changes nothing: the "
                    "post-state equals the pre-state (and so does its root).",
    "norm:witness-exact": "The one-step witness has exactly the length its pre-state "
                          "determines (state encoding, then the instruction leaf and path iff "
                          "the fetch is valid, then the data leaf and path iff the access is "
                          "valid); any other length is rejected.",
    "norm:state-valid": "A RUNNING state is well formed only if 1 <= depth <= 59 and r0 == 0; "
                        "the verifier rejects any other pre-state, and no step produces one.",
    "norm:step-count": "Every step from a RUNNING state increments the step counter modulo "
                       "2^64, including the step that halts or faults.",
    "norm:pc-next": "An instruction that does not branch or jump sets pc = (pc + 8) mod 2^64.",
}
