"""The generated Solidity verifier on a real EVM (revm via pyrevm) against the Python stepper.

Every case is stepped by the reference stepper (the definition) and replayed through the
compiled contract; the post-state roots must be equal byte for byte. Named cases also
state the expected post-state from the normative text (ids in ``isa.NORMS``), so they
check the stepper too. Then: operand sweeps per opcode, every load/store size at every
offset in a leaf, hypothesis differential fuzzing, adversarial witnesses, keccak.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opmlc_isagen.solc import compile_solidity
from opmlc_isagen.solidity import CONTRACT, generate_verifier
from opmlc_runtime import isa
from opmlc_runtime.isa import INSTRUCTIONS, MASK, Fmt, Status, encode
from opmlc_runtime.keccak import keccak256
from opmlc_runtime.merkle import Memory
from opmlc_runtime.state import OFF_DEPTH, OFF_REGS, STATE_SIZE, CoreState
from opmlc_runtime.stepper import VM

pytestmark = pytest.mark.evm

pyrevm = pytest.importorskip("pyrevm")
from opmlc_runtime.evm import (  # noqa: E402 - needs pyrevm
    KNOWN_ERRORS,
    Revert,
    StepVerifier,
    evm_keccak256,
)

MIN = 1 << 63
MAXI = (1 << 63) - 1
M = isa.BY_MNEMONIC
PC = 0x100  # where single-instruction cases live


def u64(x: int) -> int:
    return x & MASK


def s64(x: int) -> int:
    return x - (1 << 64) if x >> 63 else x


@pytest.fixture(scope="module")
def verifier() -> StepVerifier:
    return StepVerifier(compile_solidity(generate_verifier(), CONTRACT))


# --------------------------------------------------------------------------------------
# Building states and the differential check
# --------------------------------------------------------------------------------------


def ins(mnemonic: str, rd: int = 0, rs1: int = 0, rs2: int = 0, imm: int = 0) -> bytes:
    return encode(M[mnemonic].opcode, rd, rs1, rs2, imm)


def machine(
    word: bytes | None,
    regs: dict[int, int] | None = None,
    *,
    pc: int = PC,
    depth: int = 10,
    mem: tuple[tuple[int, bytes], ...] = (),
    status: int = Status.RUNNING,
    step: int = 0,
) -> VM:
    """A VM with ``word`` at ``pc`` (when it fits), ``mem`` written, registers set."""
    memory = Memory(depth)
    for addr, data in mem:
        memory.write(addr, data)
    if word is not None and pc + len(word) <= memory.size:
        memory.write(pc, word)
    vm = VM(memory, pc=pc)
    for r, v in (regs or {}).items():
        vm.core.regs[r] = u64(v)
    vm.core.status = status
    vm.core.step = step
    return vm


def differential(verifier: StepVerifier, vm: VM) -> VM:
    """Step ``vm`` in Python and on the EVM; assert equal post roots; return the Python post."""
    pre, witness = vm.root(), vm.witness()
    post = vm.copy()
    post.step()
    got = verifier.step(pre, witness)
    assert got == post.root(), (
        f"EVM post root {got.hex()} != Python {post.root().hex()} "
        f"(pre pc={vm.core.pc:#x} status={vm.core.status} regs={vm.core.regs[:8]})"
    )
    return post


# --------------------------------------------------------------------------------------
# Named cases: (name, initial state, expectation), citing the norms
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    word: bytes | None
    regs: dict[int, int] = field(default_factory=dict)
    expect: dict = field(default_factory=dict)  # {"r3": v, "pc": v, "status": s, "mem": (a, b)}
    norms: tuple[str, ...] = ()
    pc: int = PC
    depth: int = 10
    mem: tuple[tuple[int, bytes], ...] = ()
    status: int = Status.RUNNING
    step: int = 0

    @property
    def id(self) -> str:
        return f"{self.name}[{','.join(n.removeprefix('norm:') for n in self.norms)}]"


def rcase(mn: str, a: int, b: int, want: int, *norms: str, name: str = "") -> Case:
    """r3 = mn(r1 = a, r2 = b)."""
    return Case(name or f"{mn}_{a & MASK:x}_{b & MASK:x}", ins(mn, 3, 1, 2),
                {1: a, 2: b, 3: 0x5A5A}, {"r3": u64(want), "pc": PC + 8}, norms)


def icase(mn: str, a: int, imm: int, want: int, *norms: str, name: str = "") -> Case:
    """r3 = mn(r1 = a, imm)."""
    return Case(name or f"{mn}_{a & MASK:x}_imm{imm}", ins(mn, 3, 1, 0, imm),
                {1: a, 3: 0x5A5A}, {"r3": u64(want), "pc": PC + 8}, norms)


def FAULT(name: str, word: bytes | None, status: Status, *norms: str, **kw) -> Case:
    return Case(name, word, kw.pop("regs", {1: 0x40, 2: 7}),
                {"status": status, "pc": kw.get("pc", PC), **kw.pop("expect", {})},
                norms + ("norm:fault", "norm:step-count"), **kw)


SIZE10 = 32 << 10
CASES: list[Case] = [
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
    Case("lih", ins("lih", 3, 0, 0, 0x0ABCDEF0), {3: 0x1122334455667788},
         {"r3": 0x0ABCDEF055667788, "pc": PC + 8}, ("norm:lih",)),
    Case("lih_negative_imm", ins("lih", 3, 0, 0, -1), {3: 0x1122334455667788},
         {"r3": 0xFFFFFFFF55667788}, ("norm:lih",)),
    # --- r0 --------------------------------------------------------------------------------------
    Case("add_to_r0_dropped", ins("add", 0, 1, 2), {1: 5, 2: 6}, {"r0": 0, "pc": PC + 8},
         ("norm:r0",)),
    Case("lih_to_r0_dropped", ins("lih", 0, 0, 0, 7), {}, {"r0": 0}, ("norm:r0",)),
    Case("jal_r0_dropped", ins("jal", 0, 0, 0, 16), {}, {"r0": 0, "pc": PC + 16}, ("norm:r0",)),
    Case("ld_to_r0_dropped", ins("ld", 0, 1, 0, 0), {1: 0x200}, {"r0": 0},
         ("norm:r0",), mem=((0x200, b"\xff" * 8),)),
    Case("reads_r0_as_zero", ins("addi", 3, 0, 0, 9), {}, {"r3": 9}, ("norm:r0",)),
    # --- memory ----------------------------------------------------------------------------------
    Case("ld_negative_imm", ins("ld", 3, 1, 0, -8), {1: 0x208}, {"r3": 0x0807060504030201},
         ("norm:mem-le",), mem=((0x200, bytes(range(1, 9))),)),
    Case("sd_then_leaf", ins("sd", 0, 1, 2, 8), {1: 0x200, 2: 0x1122334455667788},
         {"mem": (0x208, bytes.fromhex("8877665544332211"))}, ("norm:mem-le",)),
    Case("sb_last_byte", ins("sb", 0, 1, 2, 0), {1: SIZE10 - 1, 2: 0xABCD},
         {"mem": (SIZE10 - 1, b"\xcd")}, ("norm:mem-range",)),
    Case("ld_last_word", ins("ld", 3, 1, 0, 0), {1: SIZE10 - 8}, {"r3": MIN},
         ("norm:mem-range",), mem=((SIZE10 - 1, b"\x80"),)),
    Case("store_into_own_instruction_leaf", ins("sw", 0, 1, 2, 4), {1: PC, 2: 0xDEADBEEF},
         {"mem": (PC + 4, bytes.fromhex("efbeadde"))}, ("norm:mem-le",)),
    Case("load_own_instruction", ins("ld", 3, 1, 0, 0), {1: PC},
         {"r3": int.from_bytes(ins("ld", 3, 1, 0, 0), "little")}, ("norm:mem-le",)),
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
    Case("ld_top_of_2p64_memory", ins("ld", 3, 0, 0, -8), {}, {"r3": 0x0102030405060708},
         ("norm:mem-range", "norm:word"), depth=59,
         mem=(((1 << 64) - 8, bytes.fromhex("0807060504030201")),)),
    Case("sd_top_of_2p64_memory", ins("sd", 0, 0, 1, -8), {1: MASK},
         {"mem": ((1 << 64) - 8, b"\xff" * 8)}, ("norm:mem-range",), depth=59),
    # --- control flow ----------------------------------------------------------------------------
    Case("beq_taken", ins("beq", 0, 1, 2, 24), {1: 5, 2: 5}, {"pc": PC + 24},
         ("norm:branch-target",)),
    Case("beq_not_taken", ins("beq", 0, 1, 2, 24), {1: 5, 2: 6}, {"pc": PC + 8},
         ("norm:pc-next",)),
    Case("bne_backwards", ins("bne", 0, 1, 2, -0x100), {1: 5, 2: 6}, {"pc": 0},
         ("norm:branch-target",)),
    Case("blt_signed", ins("blt", 0, 1, 2, 16), {1: MIN, 2: 0}, {"pc": PC + 16},
         ("norm:branch-target",)),
    Case("bltu_unsigned", ins("bltu", 0, 1, 2, 16), {1: MIN, 2: 0}, {"pc": PC + 8},
         ("norm:branch-target",)),
    Case("branch_misaligned_target", ins("beq", 0, 0, 0, 4), {}, {"pc": PC + 4},
         ("norm:branch-target",)),
    Case("branch_target_wraps", ins("beq", 0, 0, 0, -0x200), {}, {"pc": u64(PC - 0x200)},
         ("norm:branch-target",)),
    Case("jal_links", ins("jal", 1, 0, 0, -0x100), {}, {"r1": PC + 8, "pc": 0},
         ("norm:branch-target",)),
    Case("jalr_unaligned_target", ins("jalr", 1, 2, 0, 4), {2: 0x1001},
         {"r1": PC + 8, "pc": 0x1005}, ("norm:branch-target",)),
    Case("jalr_same_register", ins("jalr", 1, 1, 0, 8), {1: 0x300},
         {"r1": PC + 8, "pc": 0x308}, ("norm:branch-target",)),
    Case("jalr_wraps", ins("jalr", 1, 1, 0, -16), {1: 8}, {"pc": u64(-8)},
         ("norm:branch-target",)),
    Case("halt", ins("halt"), {1: 1}, {"status": Status.HALTED, "pc": PC, "r1": 1},
         ("norm:halt", "norm:step-count")),
    # --- counters ------------------------------------------------------------------------------
    Case("step_counter_wraps", ins("addi", 1, 0, 0, 1), {}, {"step": 0},
         ("norm:step-count",), step=MASK),
    Case("pc_wraps", ins("addi", 1, 0, 0, 1), {}, {"pc": 0, "r1": 1},
         ("norm:pc-next", "norm:word"), pc=(1 << 64) - 8, depth=59),
    # --- faults ----------------------------------------------------------------------------------
    FAULT("pc_misaligned", ins("addi", 1, 0, 0, 1), Status.FAULT_PC, "norm:fetch",
          pc=PC + 4),
    FAULT("pc_at_size", None, Status.FAULT_PC, "norm:fetch", pc=SIZE10),
    FAULT("pc_near_2p64", None, Status.FAULT_PC, "norm:fetch", pc=(1 << 64) - 8),
    Case("pc_last_slot", ins("addi", 1, 0, 0, 1), {}, {"r1": 1, "pc": SIZE10},
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
    Case("addi_ignores_rs2", ins("addi", 3, 1, 255, 1), {1: 4}, {"r3": 5}, ("norm:illegal",)),
    Case("lih_ignores_rs1_rs2", ins("lih", 3, 200, 201, 1), {}, {"r3": 1 << 32},
         ("norm:illegal",)),
    Case("sb_ignores_rd", ins("sb", 200, 1, 2, 0), {1: 0x200, 2: 0x7F},
         {"mem": (0x200, b"\x7f")}, ("norm:illegal",)),
    Case("beq_ignores_rd", ins("beq", 255, 1, 1, 16), {1: 3}, {"pc": PC + 16},
         ("norm:illegal",)),
    Case("jal_ignores_rs1_rs2", ins("jal", 1, 99, 98, 16), {}, {"r1": PC + 8},
         ("norm:illegal",)),
    Case("jalr_ignores_rs2", ins("jalr", 1, 2, 255, 0), {2: 0x40}, {"pc": 0x40},
         ("norm:illegal",)),
    Case("halt_ignores_fields", encode(M["halt"].opcode, 255, 254, 253, -1), {},
         {"status": Status.HALTED}, ("norm:illegal", "norm:halt")),
    Case("halted_is_stopped", ins("addi", 1, 0, 0, 1), {}, {"status": Status.HALTED, "r1": 0,
         "step": 5}, ("norm:stopped",), status=Status.HALTED, step=5),
    *[Case(f"{st.name.lower()}_is_stopped", ins("addi", 1, 0, 0, 1), {},
           {"status": st, "step": 5, "pc": PC}, ("norm:stopped",), status=st, step=5)
      for st in Status if st >= 2],
    Case("unknown_status_is_stopped", ins("addi", 1, 0, 0, 1), {}, {"step": 5},
         ("norm:stopped",), status=200, step=5),
]


def _check_expectations(case: Case, post: VM) -> None:
    for key, want in case.expect.items():
        if key.startswith("r"):
            got = post.core.regs[int(key[1:])]
        elif key == "mem":
            addr, data = want
            got, want = post.mem.read(addr, len(data)), data
        else:
            got = getattr(post.core, key)
        assert got == want, f"{case.id}: {key} = {got!r}, the norm says {want!r}"
    if "status" not in case.expect and case.status == Status.RUNNING:
        assert post.core.status == Status.RUNNING, f"{case.id}: unexpected {post.core.status}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(verifier: StepVerifier, case: Case) -> None:
    vm = machine(case.word, case.regs, pc=case.pc, depth=case.depth, mem=case.mem,
                 status=case.status, step=case.step)
    post = differential(verifier, vm)
    _check_expectations(case, post)
    if case.status == Status.RUNNING:
        assert post.core.step == (case.step + 1) & MASK  # norm:step-count
    else:
        assert post.root() == vm.root()  # norm:stopped


def test_named_cases_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


# --------------------------------------------------------------------------------------
# Sweeps: every opcode of the table over edge operands
# --------------------------------------------------------------------------------------

EDGE64 = [0, 1, 2, 7, 31, 32, 63, 64, 65, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 32,
          MAXI, MIN, MIN + 1, MASK, MASK - 1, MASK - 63, 0x0123456789ABCDEF,
          0xFEDCBA9876543210]
EDGE_IMM = [0, 1, -1, 2, 7, 8, 31, 32, 63, 64, 65, 100, -63, -64, -65, 0x7FFFFFFF,
            -(1 << 31), 0x12345678, -0x12345678]
ALU_FORMATS = (Fmt.R, Fmt.I, Fmt.U, Fmt.BRANCH, Fmt.JAL, Fmt.JALR, Fmt.SYS)
ALU_ROWS = [i for i in INSTRUCTIONS if i.fmt in ALU_FORMATS]


@pytest.mark.parametrize("row", ALU_ROWS, ids=[f"{i.mnemonic}[{','.join(i.norms)}]"
                                               for i in ALU_ROWS])
def test_sweep_opcode(verifier: StepVerifier, row: isa.Instr) -> None:
    """Every non-memory opcode over edge operands (rd = r3, also rd = rs1 and rd = r0)."""
    pairs: list[tuple[int, int]]
    if row.fmt in (Fmt.R, Fmt.BRANCH):
        pairs = [(a, b) for a in EDGE64 for b in EDGE64]
    elif row.fmt in (Fmt.I, Fmt.U, Fmt.JALR):
        pairs = [(a, b) for a in EDGE64 for b in EDGE_IMM]
    else:
        pairs = [(0, b) for b in EDGE_IMM]
    imm_based = row.fmt in (Fmt.I, Fmt.U, Fmt.JAL, Fmt.JALR)
    for k, (a, b) in enumerate(pairs):
        rd = (3, 1, 0)[k % 3]
        word = encode(row.opcode, rd, 1, 0 if imm_based else 2, b if imm_based else 16)
        vm = machine(word, {1: a, 2: 0 if imm_based else b, 3: 0x5A5A5A5A5A5A5A5A})
        differential(verifier, vm)


LOADS = [i for i in INSTRUCTIONS if i.fmt is Fmt.LOAD]
STORES = [i for i in INSTRUCTIONS if i.fmt is Fmt.STORE]
LEAF_PATTERNS = [bytes(range(0x80, 0xA0)), bytes(range(1, 33)),
                 bytes([0x7F, 0xFF] * 16), bytes(32), b"\xff" * 32]


@pytest.mark.parametrize("row", LOADS, ids=[i.mnemonic for i in LOADS])
def test_load_every_offset(verifier: StepVerifier, row: isa.Instr) -> None:
    """norm:mem-le: every aligned offset of a leaf, sign- or zero-extended."""
    for leaf in LEAF_PATTERNS:
        for off in range(0, 32, row.size):
            for base, imm in ((0x200 + off, 0), (0x200, off), (0x300 + off, -0x100)):
                vm = machine(ins(row.mnemonic, 3, 1, 0, imm), {1: base, 3: 0x5A5A},
                             mem=((0x200, leaf),))
                post = differential(verifier, vm)
                raw = int.from_bytes(leaf[off:off + row.size], "little")
                bits = 8 * row.size
                want = u64(raw - (1 << bits) if row.signed and raw >> (bits - 1) else raw)
                assert post.core.regs[3] == want, (row.mnemonic, off, leaf.hex())


@pytest.mark.parametrize("row", STORES, ids=[i.mnemonic for i in STORES])
def test_store_every_offset(verifier: StepVerifier, row: isa.Instr) -> None:
    """norm:mem-le: every aligned offset of a leaf; only the accessed bytes change."""
    values = [0x1122334455667788, MASK, 0, MIN | 0x80]
    for leaf in LEAF_PATTERNS:
        for off in range(0, 32, row.size):
            for value in values:
                vm = machine(ins(row.mnemonic, 0, 1, 2, off), {1: 0x200, 2: value},
                             mem=((0x200, leaf),))
                post = differential(verifier, vm)
                want = bytearray(leaf)
                want[off:off + row.size] = (value & ((1 << 8 * row.size) - 1)).to_bytes(
                    row.size, "little")
                assert post.mem.read(0x200, 32) == bytes(want), (row.mnemonic, off)


def test_every_opcode_is_exercised() -> None:
    """The sweeps above are parametrized over the table; the named cases cite every format."""
    swept = {i.opcode for i in ALU_ROWS + LOADS + STORES}
    assert swept == {i.opcode for i in INSTRUCTIONS}
    named = {c.word[0] for c in CASES if c.word}
    assert {i.fmt for i in INSTRUCTIONS if i.opcode in named} == set(Fmt)


def test_nonzero_r0_prestate_is_rejected(verifier: StepVerifier) -> None:
    """norm:state-valid: a RUNNING pre-state with regs[0] != 0 is malformed; the contract
    reverts and the Python stepper refuses it."""
    vm = machine(ins("add", 3, 0, 0), {})
    vm.core.regs[0] = 21
    enc = vm.encode()
    with pytest.raises(Revert) as err:
        verifier.step(keccak256(enc), vm.witness())
    assert err.value.name == "NonZeroR0" and err.value.words == [21]
    with pytest.raises(ValueError, match="state-valid"):
        vm.step()


# --------------------------------------------------------------------------------------
# Differential fuzzing
# --------------------------------------------------------------------------------------

OPCODES = [i.opcode for i in INSTRUCTIONS]
_word64 = st.one_of(st.sampled_from(EDGE64), st.integers(0, MASK),
                    st.integers(-300, 300).map(u64))
_imm32 = st.one_of(st.sampled_from(EDGE_IMM), st.integers(-64, 64),
                   st.integers(-(1 << 31), (1 << 31) - 1))
_reg = st.one_of(st.integers(0, 31), st.integers(0, 31), st.integers(0, 31),
                 st.integers(0, 255))


@st.composite
def fuzz_vm(draw: st.DrawFn, opcodes: st.SearchStrategy[int]) -> tuple[VM, int]:
    """A random state and instruction: (vm, opcode executed, or -1 when not fetched)."""
    depth = draw(st.integers(8, 20))
    size = 32 << depth
    mem = Memory(depth)
    for _ in range(draw(st.integers(0, 3))):
        leaf = draw(st.integers(0, (size >> 5) - 1))
        mem.write(leaf * 32, draw(st.binary(min_size=32, max_size=32)))
    aligned_pc = st.integers(0, (size >> 3) - 1).map(lambda k: 8 * k)
    mode = draw(st.integers(0, 19))  # mostly a valid pc
    pc = draw(aligned_pc if mode < 18 else st.integers(0, MASK) if mode == 18
              else st.integers(size - 16, size + 16))
    opcode = draw(opcodes)
    rd, rs1, rs2, imm = draw(_reg), draw(_reg), draw(_reg), draw(_imm32)
    regs = [0] + [draw(_word64) for _ in range(31)]
    row = isa.BY_OPCODE.get(opcode)
    if row is not None and row.fmt in (Fmt.LOAD, Fmt.STORE) and 0 < rs1 < 32 and draw(
            st.integers(0, 3)):
        # steer the address: usually aligned and in range, sometimes next to the pc
        near = draw(st.booleans()) and pc < size
        target = (pc + draw(st.integers(-32, 32)) if near
                  else draw(st.integers(0, size - 1) | st.integers(size - 16, size + 16)))
        if draw(st.integers(0, 4)):
            target -= target % row.size
        regs[rs1] = u64(target - imm)
    fetched = pc % 8 == 0 and pc + 8 <= size
    if fetched:
        mem.write(pc, encode(opcode, rd, rs1, rs2, imm))
    vm = VM(mem, pc=pc)
    vm.core.regs = regs
    vm.core.step = draw(st.one_of(st.integers(0, 1000), st.just(MASK), st.integers(0, MASK)))
    stopped = draw(st.integers(0, 19)) == 19
    vm.core.status = draw(st.sampled_from(list(Status)[1:])) if stopped else Status.RUNNING
    running = vm.core.status == Status.RUNNING
    return vm, opcode if fetched and running else -1


def _fuzz(n: int) -> settings:
    # derandomized: the suite is reproducible; widen locally with more examples to hunt bugs
    return settings(max_examples=n, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("opcode", OPCODES,
                         ids=[isa.BY_OPCODE[o].mnemonic for o in OPCODES])
def test_fuzz_opcode(verifier: StepVerifier, opcode: int) -> None:
    """Random states, random operand fields, this opcode: Python root == EVM root, and the
    opcode was really executed (fetched from a RUNNING state) in most examples."""
    executed: list[int] = []
    statuses: set[int] = set()

    @_fuzz(60)
    @given(fuzz_vm(st.just(opcode)))
    def run(case: tuple[VM, int]) -> None:
        vm, op = case
        post = differential(verifier, vm)
        if op == opcode:
            executed.append(op)
            statuses.add(int(post.core.status))

    run()
    assert len(executed) >= 15, f"{isa.BY_OPCODE[opcode].mnemonic} executed {len(executed)}x"
    assert Status.RUNNING in statuses or Status.HALTED in statuses


def test_fuzz_random_words(verifier: StepVerifier) -> None:
    """Random states x random instruction words (mostly legal, sometimes not)."""
    seen: set[int] = set()
    statuses: set[int] = set()

    @_fuzz(600)
    @given(fuzz_vm(st.one_of(st.sampled_from(OPCODES), st.integers(0, 255))))
    def run(case: tuple[VM, int]) -> None:
        vm, opcode = case
        post = differential(verifier, vm)
        seen.add(opcode)
        statuses.add(int(post.core.status))

    run()
    assert {Status.RUNNING, Status.FAULT_ILLEGAL, Status.FAULT_PC} <= statuses
    assert len(seen & set(OPCODES)) >= len(OPCODES) // 2


# --------------------------------------------------------------------------------------
# Adversarial witnesses: the contract reverts, never returns a wrong root
# --------------------------------------------------------------------------------------


def _program_states() -> list[tuple[str, VM]]:
    data = random.Random(7).randbytes(64)
    mem = ((0x400, data),)
    return [
        ("add", machine(ins("add", 3, 1, 2), {1: 5, 2: 6}, depth=12, mem=mem)),
        ("ld", machine(ins("ld", 3, 1, 0, 8), {1: 0x400}, depth=12, mem=mem)),
        ("sd", machine(ins("sd", 0, 1, 2, 16), {1: 0x400, 2: MASK}, depth=12, mem=mem)),
        ("sb_own_leaf", machine(ins("sb", 0, 1, 2, 7), {1: PC, 2: 9}, depth=12, mem=mem)),
        ("fault_align", machine(ins("ld", 3, 1, 0, 1), {1: 0x400}, depth=12, mem=mem)),
        ("fault_pc", machine(None, {}, pc=PC + 4, depth=12, mem=mem)),
        ("halted", machine(ins("add", 3, 1, 2), {}, depth=12, status=Status.HALTED)),
    ]


STATES = _program_states()


@pytest.mark.parametrize("name,vm", STATES, ids=[n for n, _ in STATES])
def test_every_byte_flip_reverts(verifier: StepVerifier, name: str, vm: VM) -> None:
    differential(verifier, vm)
    pre, witness = vm.root(), vm.witness()
    for pos in range(len(witness)):
        for flip in (0x01, 0x80):
            bad = bytearray(witness)
            bad[pos] ^= flip
            with pytest.raises(Revert) as err:
                verifier.step(pre, bytes(bad))
            want = "PreStateMismatch" if pos < STATE_SIZE else "MerkleMismatch"
            assert err.value.name == want, (name, pos, flip, err.value)


@pytest.mark.parametrize("name,vm", STATES, ids=[n for n, _ in STATES])
def test_wrong_length_reverts(verifier: StepVerifier, name: str, vm: VM) -> None:
    pre, witness = vm.root(), vm.witness()
    for bad in (witness[:-1], witness[:-32], witness + b"\x00", witness + bytes(32),
                witness + witness[STATE_SIZE:], witness[:STATE_SIZE], witness[:100], b""):
        if bad == witness:
            continue
        with pytest.raises(Revert) as err:
            verifier.step(pre, bad)
        assert err.value.name == "WitnessLength", (name, len(bad))


def test_wrong_pre_root_reverts(verifier: StepVerifier) -> None:
    for _name, vm in STATES:
        witness = vm.witness()
        for pre in (bytes(32), keccak256(b"x"), bytes(a ^ 1 for a in vm.root())):
            with pytest.raises(Revert) as err:
                verifier.step(pre, witness)
            assert err.value.name == "PreStateMismatch"


def test_wrong_sibling_and_wrong_leaf_revert(verifier: StepVerifier) -> None:
    vm = dict(STATES)["sd"]
    depth = vm.mem.depth
    pre, witness = vm.root(), vm.witness()
    proof = 32 * (depth + 1)
    for part in (0, 1):  # instruction proof, data proof
        base = STATE_SIZE + part * proof
        for level in range(depth):
            bad = bytearray(witness)
            bad[base + 32 * (level + 1):base + 32 * (level + 2)] = keccak256(bytes([level]))
            with pytest.raises(Revert, match="MerkleMismatch"):
                verifier.step(pre, bytes(bad))
        # a genuine leaf and path of memory, but for another index
        other = vm.mem.read_leaf(0x400 // 32 + 1) + b"".join(vm.mem.proof(0x400 // 32 + 1))
        bad = witness[:base] + other + witness[base + proof:]
        assert bad != witness
        with pytest.raises(Revert, match="MerkleMismatch"):
            verifier.step(pre, bad)
    swapped = witness[:STATE_SIZE] + witness[STATE_SIZE + proof:] + witness[STATE_SIZE:
                                                                           STATE_SIZE + proof]
    with pytest.raises(Revert, match="MerkleMismatch"):
        verifier.step(pre, swapped)


@pytest.mark.parametrize("depth", [0, 60, 255])
def test_invalid_depth_reverts(verifier: StepVerifier, depth: int) -> None:
    """A state whose depth byte is outside MIN_DEPTH..MAX_DEPTH has no memory: revert."""
    enc = bytearray(CoreState(depth=10).encode(bytes(32)))
    enc[OFF_DEPTH] = depth
    with pytest.raises(Revert) as err:
        verifier.step(keccak256(bytes(enc)), bytes(enc))
    assert err.value.name == "InvalidDepth" and err.value.words == [depth]


def test_revert_errors_are_declared() -> None:
    src = generate_verifier()["OpmlcStep.sol"]
    for sig in KNOWN_ERRORS:
        name, args = sig.split("(")
        assert f"error {name}(" in src
        declared = src.split(f"error {name}(")[1].split(")")[0]
        assert [a.split()[0] for a in declared.split(",") if a] == \
            [a for a in args.rstrip(")").split(",") if a]


# --------------------------------------------------------------------------------------
# keccak256: Python == EVM
# --------------------------------------------------------------------------------------


def test_keccak_python_equals_evm() -> None:
    rng = random.Random(1)
    for n in [0, 1, 31, 32, 33, 63, 64, 65, 135, 136, 137, 271, 272, 306, 1000]:
        data = bytes(rng.randrange(256) for _ in range(n))
        assert evm_keccak256(data) == keccak256(data), n


def test_state_root_is_evm_keccak(verifier: StepVerifier) -> None:
    """The contract accepts exactly keccak256(encoding) as computed in Python."""
    vm = machine(ins("halt"), {5: MASK}, depth=9, status=Status.HALTED)
    enc = vm.encode()
    assert len(enc) == STATE_SIZE and enc[OFF_REGS + 40:OFF_REGS + 48] == b"\xff" * 8
    assert evm_keccak256(enc) == vm.root()
    assert verifier.step(vm.root(), enc) == vm.root()
