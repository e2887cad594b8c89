"""Assembler / disassembler: table-driven encoding, pseudo-instructions, directives,
errors with line numbers, and the round trip ``assemble(disassemble(x)) == x``."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opmlc_runtime.asm import AsmError, assemble, disassemble, operand_kinds
from opmlc_runtime.isa import (
    BY_MNEMONIC,
    FMT_FIELDS,
    FMT_SYNTAX,
    INSTRUCTIONS,
    Fmt,
    decode,
    encode,
    is_legal,
)

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.s"))
OP = {i.mnemonic: i.opcode for i in INSTRUCTIONS}


def enc(mnemonic: str, **fields: int) -> bytes:
    return encode(OP[mnemonic], **fields)


# --- every instruction, from its format's syntax ----------------------------------------

_SAMPLE = {"rd": "r3", "rs1": "r17", "rs2": "r31", "imm": "-5", "target": "0x20",
           "imm(rs1)": "-16(r17)"}
_FIELDS = {"rd": 3, "rs1": 17, "rs2": 31}


@pytest.mark.parametrize("ins", INSTRUCTIONS, ids=[i.mnemonic for i in INSTRUCTIONS])
def test_every_instruction_assembles_from_its_syntax(ins) -> None:
    """Operands built from FMT_SYNTAX; fields land where FMT_FIELDS says; the rest is 0."""
    kinds = operand_kinds(ins.fmt)
    text = " ".join([ins.mnemonic, ", ".join(_SAMPLE[k] for k in kinds)])
    code = assemble(text, origin=0x40)
    assert len(code) == 8
    d = decode(code)
    assert d.opcode == ins.opcode and is_legal(d)
    used = FMT_FIELDS[ins.fmt]
    for f in ("rd", "rs1", "rs2"):
        assert getattr(d, f) == (_FIELDS[f] if f in used else 0), f
    if "imm" not in used:
        assert d.imm == 0
    elif ins.fmt in (Fmt.BRANCH, Fmt.JAL):
        assert d.imm == 0x20 - 0x40  # pc-relative
    elif ins.fmt in (Fmt.LOAD, Fmt.STORE, Fmt.JALR):
        assert d.imm == -16
    else:
        assert d.imm == -5
    assert assemble(disassemble(code, 0x40), 0x40) == code


def test_operand_kinds_follow_fmt_syntax() -> None:
    assert operand_kinds(Fmt.R) == ("rd", "rs1", "rs2")
    assert operand_kinds(Fmt.STORE) == ("rs2", "imm(rs1)")
    assert operand_kinds(Fmt.SYS) == ()
    for fmt in Fmt:
        assert FMT_SYNTAX[fmt].startswith("{m}")


# --- concrete encodings -----------------------------------------------------------------


@pytest.mark.parametrize("text,code", [
    ("add r1, r2, r3", enc("add", rd=1, rs1=2, rs2=3)),
    ("ADD r1, zero, r31", enc("add", rd=1, rs1=0, rs2=31)),
    ("addi r1, r2, 0x7fffffff", enc("addi", rd=1, rs1=2, imm=0x7FFFFFFF)),
    ("addi r1, r2, -0x80000000", enc("addi", rd=1, rs1=2, imm=-(1 << 31))),
    ("addi r1, r2, 0b101", enc("addi", rd=1, rs1=2, imm=5)),
    ("addi r1, r2, 1_000", enc("addi", rd=1, rs1=2, imm=1000)),
    ("addi r1, r2, 10 - 3 + -2", enc("addi", rd=1, rs1=2, imm=5)),
    ("lih r1, 0xffffffff", enc("lih", rd=1, imm=-1)),
    ("lih r1, -1", enc("lih", rd=1, imm=-1)),
    ("ld r1, (r2)", enc("ld", rd=1, rs1=2)),
    ("sd r5, -8(r2)", enc("sd", rs1=2, rs2=5, imm=-8)),
    ("jalr r1, 4(r2)", enc("jalr", rd=1, rs1=2, imm=4)),
    ("halt", enc("halt")),
    ("x: beq r1, r2, x", enc("beq", rs1=1, rs2=2, imm=0)),
    ("nop", enc("addi")),
    ("mv r4, r9", enc("addi", rd=4, rs1=9)),
    ("j 0x10", enc("jal", imm=0x10)),
    ("call 0x10", enc("jal", rd=1, imm=0x10)),
    ("ret", enc("jalr", rs1=1)),
    ("li r1, -1", enc("addi", rd=1, imm=-1)),
    ("li r1, 0x7fffffff", enc("addi", rd=1, imm=0x7FFFFFFF)),
    ("li r1, 0x80000000", enc("addi", rd=1, imm=-(1 << 31)) + enc("lih", rd=1, imm=0)),
    ("li r1, 0xffffffff80000000", enc("addi", rd=1, imm=-(1 << 31))),
    ("li r1, 0x123456789abcdef0",
     enc("addi", rd=1, imm=-0x65432110) + enc("lih", rd=1, imm=0x12345678)),
    ("li r1, 0xffffffffffffffff", enc("addi", rd=1, imm=-1)),
    ("li r1, -0x8000000000000000", enc("addi", rd=1) + enc("lih", rd=1, imm=-(1 << 31))),
])
def test_encoding(text: str, code: bytes) -> None:
    assert assemble(text) == code


def test_li_value_semantics() -> None:
    """li leaves exactly the value in rd (checked by evaluating addi + lih by hand)."""
    for v in (0, 1, -1, 0x80000000, 0xFFFFFFFF, 0x100000000, (1 << 63), (1 << 64) - 2,
              -(1 << 63), 0x7FFFFFFF, -0x80000000, -0x80000001):
        code = assemble(f"li r1, {v}")
        d0 = decode(code[:8])
        reg = d0.imm % (1 << 64)
        if len(code) == 16:
            hi = decode(code[8:]).imm % (1 << 32)
            reg = (reg & 0xFFFFFFFF) | (hi << 32)
        assert reg == v % (1 << 64), v


def test_labels_forward_backward_and_as_values() -> None:
    code = assemble("""
    start:  j end           # forward
            .dword start, end + 8
    end:    beq r0, r0, start
            addi r1, r0, end
    """)
    assert code[:8] == enc("jal", imm=24)
    assert code[8:16] == (0).to_bytes(8, "little")
    assert code[16:24] == (32).to_bytes(8, "little")
    assert code[24:32] == enc("beq", imm=-24)
    assert code[32:40] == enc("addi", rd=1, imm=24)


def test_la_relaxes_to_two_instructions_for_high_addresses() -> None:
    origin = 0x1_0000_0000
    code = assemble("la r1, far\nhalt\nfar: .dword 7", origin=origin)
    far = origin + 24  # la takes two instructions, then halt
    assert code[:16] == enc("addi", rd=1, imm=far & 0xFFFFFFFF) + enc("lih", rd=1, imm=1)
    assert code[16:24] == enc("halt")
    assert code[24:] == (7).to_bytes(8, "little")


def test_la_forward_reference_stays_short_when_it_fits() -> None:
    code = assemble("la r1, data\nhalt\ndata: .dword 1")
    assert code[:8] == enc("addi", rd=1, imm=16)


def test_directives() -> None:
    code = assemble("""
        .byte 1, -1, 255
        .align 4
        .half 0x1234, -2
        .word 0xdeadbeef
        .dword -2
        .zero 3
        .org 0x20
        .dword 0x0102030405060708
    """)
    assert code[:4] == b"\x01\xff\xff\x00"
    assert code[4:8] == b"\x34\x12\xfe\xff"
    assert code[8:12] == b"\xef\xbe\xad\xde"
    assert code[12:20] == b"\xfe" + b"\xff" * 7
    assert code[20:32] == bytes(12)
    assert code[32:40] == bytes(range(8, 0, -1))
    assert len(code) == 40


def test_origin_and_address_prefix() -> None:
    code = assemble("0x100: addi r1, r0, 1\n0x108: halt", origin=0x100)
    assert code == enc("addi", rd=1, imm=1) + enc("halt")
    assert assemble(".org 0x110\nhalt", origin=0x100) == bytes(16) + enc("halt")


def test_comments_and_blank_lines() -> None:
    assert assemble("\n; c\n  # c\nhalt ; end\n\n") == enc("halt")
    assert assemble("") == b""


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("text,line,fragment", [
    ("halt\n\nad r1, r2, r3", 3, "unknown mnemonic 'ad' (did you mean 'add'?)"),
    ("add r1, r2", 1, "'add' takes 3 operand(s) (add rd, rs1, rs2), got 2"),
    ("add r1, r2, 5", 1, "operand 3 of 'add' must be a register"),
    ("addi r1, r2, r3", 1, "register 'r3' used where a value is expected"),
    ("addi r1, r2, 0x80000000", 1, "immediate 2147483648 out of range"),
    ("addi r1, r2, -2147483649", 1, "out of range"),
    ("lih r1, 0x100000000", 1, "out of range"),
    ("ld r1, 0x80000000(r2)", 1, "offset 2147483648 out of range"),
    ("lb r1, 4", 1, "must be a memory operand imm(rs1)"),
    ("lw r1, 4(r44)", 1, "'r44' is not a register"),
    ("add r1, r2, r32", 1, "must be a register"),
    ("beq r1, r2, nowhere", 1, "undefined label 'nowhere'"),
    ("loop: halt\nj lop", 2, "undefined label 'lop' (did you mean 'loop'?)"),
    ("x: halt\nx: halt", 2, "label 'x' already defined on line 1"),
    ("r5: halt", 1, "label 'r5' is a register name"),
    (".byte 256", 1, "value 256 out of range [-128, 255]"),
    (".half -32769", 1, "out of range"),
    (".wrod 1", 1, "unknown directive '.wrod' (did you mean '.word'?)"),
    (".org 8\nhalt\n.org 0", 3, ".org 0x0 is behind the current address 0x10"),
    (".align 3", 1, "power of two"),
    (".zero x", 1, "must be a constant"),
    (".byte 1\nhalt", 2, "unaligned address 0x1"),
    ("0x8: halt", 1, "address mismatch"),
    ("li r1, 0x10000000000000000", 1, "out of range"),
    ("li r1", 1, "'li' takes 2 operands"),
    ("mv r1", 1, "'mv' takes 2 operand(s), got 1"),
    ("add r1,, r2", 1, "syntax error at column 8"),
    ("halt\naddi r1, r2, 1 +", 2, "syntax error"),
    ("halt $", 1, "unexpected character '$'"),
    ("beq r1, r2, 0x100000000", 1, "branch offset"),
])
def test_errors(text: str, line: int, fragment: str) -> None:
    with pytest.raises(AsmError) as info:
        assemble(text)
    err = info.value
    assert err.line == line
    assert str(err).startswith(f"line {line}: ")
    assert fragment in str(err)
    assert "\n" not in str(err)


def test_asm_error_is_a_value_error() -> None:
    assert issubclass(AsmError, ValueError)


# --- disassembly ------------------------------------------------------------------------


def test_disassembly_format() -> None:
    code = assemble("loop: addi r1, r1, -1\nbne r1, zero, loop\nlih r2, 0xdeadbeef\nhalt")
    assert disassemble(code).splitlines() == [
        "0x00000000:  addi   r1, r1, -1",
        "0x00000008:  bne    r1, r0, 0x0",
        "0x00000010:  lih    r2, 0xdeadbeef",
        "0x00000018:  halt",
    ]


def test_disassembly_of_data() -> None:
    image = (bytes(8) + bytes.fromhex("ff00000000000000") + enc("add", rd=40)
             + enc("add", rd=1, imm=5) + bytes(24) + b"\x01\x02\x03")
    lines = disassemble(image, origin=0x200).splitlines()
    assert lines == [
        "0x00000200:  .dword 0x0000000000000000",        # opcode 0x00: illegal
        "0x00000208:  .dword 0x00000000000000ff",        # unknown opcode
        "0x00000210:  .dword 0x0000000000002801",        # rd >= 32
        "0x00000218:  .dword 0x0000000500000101",        # legal but unused imm != 0
        "0x00000220:  .zero  24",
        "0x00000238:  .byte  0x01, 0x02, 0x03",
    ]
    assert assemble("\n".join(lines), origin=0x200) == image


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_round_trip(path: Path) -> None:
    image = assemble(path.read_text())
    text = disassemble(image)
    assert assemble(text) == image
    assert disassemble(assemble(text)) == text


def test_examples_exist() -> None:
    assert {p.name for p in EXAMPLES} >= {"dot.s", "sum.s"}


legal_words = st.builds(
    lambda ins, rd, rs1, rs2, imm: encode(
        ins.opcode, **{k: v for k, v in (("rd", rd), ("rs1", rs1), ("rs2", rs2), ("imm", imm))
                       if k in FMT_FIELDS[ins.fmt]}),
    st.sampled_from(INSTRUCTIONS), st.integers(0, 31), st.integers(0, 31), st.integers(0, 31),
    st.integers(-(1 << 31), (1 << 31) - 1))


@settings(max_examples=200, deadline=None)
@given(words=st.lists(legal_words, max_size=12),
       origin=st.integers(0, 1 << 20).map(lambda x: 8 * x))
def test_round_trip_legal_programs(words: list[bytes], origin: int) -> None:
    image = b"".join(words)
    text = disassemble(image, origin)
    assert ".dword" not in text  # legal canonical words always disassemble
    assert assemble(text, origin) == image


@settings(max_examples=200, deadline=None)
@given(image=st.binary(max_size=80), origin=st.integers(0, 1 << 40))
def test_round_trip_any_bytes(image: bytes, origin: int) -> None:
    assert assemble(disassemble(image, origin), origin) == image


def test_mnemonics_are_the_table() -> None:
    """The assembler knows exactly the table's mnemonics plus its pseudo-instructions."""
    for m in BY_MNEMONIC:
        with pytest.raises(AsmError, match="operand|takes"):
            assemble(f"{m} r1, r1, r1, r1")
