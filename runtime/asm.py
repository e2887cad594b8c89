"""Assembler and disassembler for the opmlc VM, driven by the instruction table.

``assemble(text, origin) -> image``: the memory image starting at ``origin``.
``disassemble(image, origin) -> text``: one instruction (or datum) per line, with its
address; ``assemble(disassemble(x, o), o) == x`` for every image ``x``.

Syntax (spec/ISA.md, "Assembly language"): one statement per line; ``#`` and ``;``
start comments; ``name:`` defines a label; ``0x40:`` at the start of a line checks
that the statement lands at that address. Operands follow ``isa.FMT_SYNTAX``:
registers ``r0``..``r31`` (``zero`` = ``r0``), immediates as expressions of decimal,
hex (``0x``) or binary (``0b``) numbers and labels joined by ``+``/``-``, memory
operands ``imm(rs1)``, and branch / jump targets as absolute addresses (a label or a
number), encoded pc-relative. Real instructions have no per-mnemonic code here: the
operand list comes from the format of their table row.

Directives: ``.org ADDR`` (move forward to ADDR, zero fill), ``.align N`` (zero fill
to a multiple of N, a power of two), ``.zero N``, ``.byte/.half/.word/.dword v, ...``
(1/2/4/8-byte little-endian data; a value may be signed or unsigned).

Pseudo-instructions: ``nop`` = ``addi r0, r0, 0``; ``mv rd, rs`` = ``addi rd, rs, 0``;
``li rd, v`` = ``addi rd, r0, lo`` (+ ``lih rd, hi`` unless ``v`` fits sext(32));
``la rd, label`` = ``li rd, label``; ``j target`` = ``jal r0, target``;
``call target`` = ``jal r1, target``; ``ret`` = ``jalr r0, 0(r1)`` (r1 is the link
register by convention).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from opmlc_runtime.isa import (
    BY_MNEMONIC,
    FMT_FIELDS,
    FMT_SYNTAX,
    INSTR_SIZE,
    MASK,
    NUM_REGS,
    Fmt,
    Instr,
    decode,
    encode,
    is_legal,
)

__all__ = ["AsmError", "MAX_IMAGE", "assemble", "disassemble", "operand_kinds", "REGISTERS"]

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1


class AsmError(ValueError):
    """Bad assembly text: ``str(err) == "line L: message"``; ``line`` / ``column`` are 1-based."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        self.message, self.line, self.column = message, line, column
        super().__init__(f"line {line}: {message}" if line is not None else message)


REGISTERS: dict[str, int] = {f"r{i}": i for i in range(NUM_REGS)} | {"zero": 0}

# --------------------------------------------------------------------------------------
# Parsing: lark tree -> statements
# --------------------------------------------------------------------------------------

_PARSER: Lark | None = None


def _parser() -> Lark:
    global _PARSER
    if _PARSER is None:
        grammar = Path(__file__).with_name("asm.lark").read_text()
        _PARSER = Lark(grammar, parser="lalr", maybe_placeholders=True)
    return _PARSER


@dataclass(frozen=True)
class Expr:
    """``sum(sign * term)``: terms are ints or symbol tokens (labels, or a register name)."""

    terms: tuple[tuple[int, int | Token], ...]
    column: int

    @property
    def register(self) -> str | None:
        """The register name if the expression is just one, else None."""
        if len(self.terms) == 1 and self.terms[0][0] == 1:
            t = self.terms[0][1]
            if isinstance(t, Token) and str(t) in REGISTERS:
                return str(t)
        return None

    @property
    def text(self) -> str:
        out = ""
        for sign, t in self.terms:
            out += ("-" if sign < 0 else "+" if out else "") + str(t)
        return out


@dataclass(frozen=True)
class Operand:
    expr: Expr | None  # None only for a memory operand without offset: "(r1)"
    base: Token | None  # the register of a memory operand, None for a plain value
    column: int


@dataclass(frozen=True)
class Stmt:
    line: int
    column: int
    name: str  # mnemonic or directive (".word")
    operands: tuple[Operand, ...]
    labels: tuple[Token, ...]
    address: int | None  # "0x40:" prefix


def _expr(tree: Tree, sign: int = 1) -> list[tuple[int, int | Token]]:
    kind = tree.data
    if kind == "expr":
        return _expr(tree.children[0], sign)
    if kind in ("add", "sub"):
        left, right = tree.children
        return _expr(left, sign) + _expr(right, sign if kind == "add" else -sign)
    if kind == "neg":
        return _expr(tree.children[0], -sign)
    tok = tree.children[0]
    if kind == "number":
        try:
            return [(sign, int(str(tok), 0))]
        except ValueError:
            raise AsmError(f"malformed number '{tok}'", tok.line, tok.column) from None
    return [(sign, tok)]


def _first_token(tree: Tree) -> Token:
    for t in tree.scan_values(lambda v: isinstance(v, Token)):
        return t
    raise AssertionError("empty tree")


def _operand(tree: Tree) -> Operand:
    if tree.data == "value":
        e = tree.children[0]
        col = _first_token(e).column
        return Operand(Expr(tuple(_expr(e)), col), None, col)
    e, base = tree.children
    expr = Expr(tuple(_expr(e)), _first_token(e).column) if e is not None else None
    return Operand(expr, base, expr.column if expr else base.column - 1)


def _statements(text: str) -> list[Stmt]:
    try:
        tree = _parser().parse(text + "\n")
    except UnexpectedInput as e:
        raise _syntax_error(e, text) from None
    out = []
    for line_no, line in enumerate(tree.children, start=1):
        labels, address = [], None
        stmt = None
        for child in line.children:
            if child is None:
                continue
            if child.data == "label":
                labels.append(child.children[0])
            elif child.data == "address":
                tok = child.children[0]
                address = int(str(tok), 0)
            else:
                stmt = child
        if stmt is None:
            if labels or address is not None:
                out.append(Stmt(line_no, 1, "", (), tuple(labels), address))
            continue
        name_tok, ops = stmt.children
        operands = tuple(_operand(o) for o in ops.children) if ops is not None else ()
        out.append(Stmt(line_no, name_tok.column, str(name_tok).lower(), operands,
                        tuple(labels), address))
    return out


def _syntax_error(e: UnexpectedInput, text: str) -> AsmError:
    line, col = getattr(e, "line", None), getattr(e, "column", None)
    if isinstance(e, UnexpectedCharacters):
        ch = text.splitlines()[line - 1][col - 1] if line and col else "?"
        return AsmError(f"syntax error at column {col}: unexpected character {ch!r}", line, col)
    if isinstance(e, UnexpectedToken) and e.token.type != "$END":
        tok = e.token
        what = "end of line" if tok.type == "_NL" else repr(str(tok))
        return AsmError(f"syntax error at column {tok.column}: unexpected {what}",
                        tok.line, tok.column)
    if isinstance(e, (UnexpectedEOF, UnexpectedToken)):
        n = text.count("\n") + 1
        return AsmError("syntax error: unexpected end of input", n)
    return AsmError(f"syntax error: {e}", line, col)


# --------------------------------------------------------------------------------------
# Operand kinds, from the table
# --------------------------------------------------------------------------------------

_MEM_RE = re.compile(r"^(\w+)\((\w+)\)$")


def operand_kinds(fmt: Fmt) -> tuple[str, ...]:
    """The operand list of a format, from ``FMT_SYNTAX``: e.g. ``("rd", "imm(rs1)")``."""
    _, _, rest = FMT_SYNTAX[fmt].partition(" ")
    return tuple(k.strip() for k in rest.split(",")) if rest.strip() else ()


def _imm_range(fmt: Fmt) -> tuple[int, int]:
    # U format uses only the immediate's 32 bits, so an unsigned 32-bit value is natural.
    return (I32_MIN, (1 << 32) - 1) if fmt is Fmt.U else (I32_MIN, I32_MAX)


# --------------------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------------------


@dataclass
class _Ctx:
    """What operand evaluation needs: the symbol table, and whether it is final."""

    symbols: dict[str, int]
    final: bool


def _eval(expr: Expr, ctx: _Ctx, stmt: Stmt) -> int:
    total = 0
    for sign, t in expr.terms:
        if isinstance(t, int):
            total += sign * t
            continue
        name = str(t)
        if name in REGISTERS:
            raise AsmError(f"register '{name}' used where a value is expected", stmt.line,
                           t.column)
        if name not in ctx.symbols:
            if not ctx.final:
                continue  # layout pass: unknown labels count as 0
            hint = _did_you_mean(name, ctx.symbols)
            raise AsmError(f"undefined label '{name}'{hint}", stmt.line, t.column)
        total += sign * ctx.symbols[name]
    return total


def _check_range(v: int, lo: int, hi: int, what: str, stmt: Stmt, col: int) -> int:
    if not lo <= v <= hi:
        raise AsmError(f"{what} {v} out of range [{lo}, {hi}]", stmt.line, col)
    return v


def _register(op: Operand, stmt: Stmt, idx: int) -> int:
    reg = op.expr.register if op.base is None and op.expr is not None else None
    if reg is None:
        shown = op.expr.text if op.expr is not None else "(...)"
        raise AsmError(f"operand {idx + 1} of '{stmt.name}' must be a register "
                       f"(r0..r31 or zero), got '{shown}'", stmt.line, op.column)
    return REGISTERS[reg]


def _base(op: Operand, stmt: Stmt) -> int:
    name = str(op.base)
    if name not in REGISTERS:
        raise AsmError(f"'{name}' is not a register (r0..r31 or zero)", stmt.line,
                       op.base.column)
    return REGISTERS[name]


def _fields(ins: Instr, stmt: Stmt, ops: tuple[Operand, ...], pc: int, ctx: _Ctx) -> dict:
    """Encoding fields of a real instruction from its operands (kinds from FMT_SYNTAX)."""
    kinds = operand_kinds(ins.fmt)
    if len(ops) != len(kinds):
        syntax = FMT_SYNTAX[ins.fmt].format(m=ins.mnemonic)
        raise AsmError(f"'{ins.mnemonic}' takes {len(kinds)} operand(s) ({syntax}), "
                       f"got {len(ops)}", stmt.line, stmt.column)
    lo, hi = _imm_range(ins.fmt)
    fields: dict[str, int] = {}
    for i, (kind, op) in enumerate(zip(kinds, ops, strict=True)):
        mem = _MEM_RE.match(kind)
        if mem:
            imm_name, reg_name = mem.groups()
            if op.base is None:
                raise AsmError(f"operand {i + 1} of '{ins.mnemonic}' must be a memory "
                               f"operand {kind}", stmt.line, op.column)
            v = _eval(op.expr, ctx, stmt) if op.expr is not None else 0
            fields[imm_name] = _check_range(v, lo, hi, "offset", stmt, op.column)
            fields[reg_name] = _base(op, stmt)
        elif kind in ("rd", "rs1", "rs2"):
            fields[kind] = _register(op, stmt, i)
        else:
            if op.base is not None:
                raise AsmError(f"operand {i + 1} of '{ins.mnemonic}' must be "
                               f"{'a target' if kind == 'target' else 'an immediate'}, "
                               "not a memory operand", stmt.line, op.column)
            v = _eval(op.expr, ctx, stmt)
            if kind == "target":
                v = _signed64((v - pc) & MASK)
                fields["imm"] = _check_range(v, I32_MIN, I32_MAX, "branch offset", stmt,
                                             op.column)
            else:
                fields["imm"] = _check_range(v, lo, hi, "immediate", stmt, op.column)
    if ins.fmt is Fmt.U:
        fields["imm"] = _signed32(fields["imm"])
    return fields


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


def _signed32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


# --- pseudo-instructions --------------------------------------------------------------
# Each expands to real instructions as (mnemonic, operands) in the real syntax; "$n" is
# operand n of the pseudo-instruction. li / la are special: their length depends on
# the value (1 or 2 instructions).

_PSEUDO: dict[str, tuple[int, tuple[tuple[str, tuple[str, ...]], ...]]] = {
    "nop": (0, (("addi", ("r0", "r0", "0")),)),
    "mv": (2, (("addi", ("$0", "$1", "0")),)),
    "j": (1, (("jal", ("r0", "$0")),)),
    "call": (1, (("jal", ("r1", "$0")),)),
    "ret": (0, (("jalr", ("r0", "0(r1)")),)),
}
_LOAD_IMM = ("li", "la")
_DIRECTIVES = (".org", ".align", ".zero", ".byte", ".half", ".word", ".dword")
_DATA_SIZE = {".byte": 1, ".half": 2, ".word": 4, ".dword": 8}


def _literal(text: str, col: int) -> Operand:
    """An operand written in a pseudo-instruction template ("r0", "0", "0(r1)")."""
    m = _MEM_RE.match(text)
    if m:
        return Operand(Expr(((1, int(m.group(1))),), col), Token("NAME", m.group(2)), col)
    value: int | Token = int(text) if text.lstrip("-").isdigit() else Token("NAME", text)
    return Operand(Expr(((1, value),), col), None, col)


def _expand(stmt: Stmt) -> list[tuple[Instr, tuple[Operand, ...]]]:
    nargs, template = _PSEUDO[stmt.name]
    if len(stmt.operands) != nargs:
        raise AsmError(f"'{stmt.name}' takes {nargs} operand(s), got {len(stmt.operands)}",
                       stmt.line, stmt.column)
    out = []
    for mnemonic, args in template:
        ops = tuple(stmt.operands[int(a[1:])] if a.startswith("$") else
                    _literal(a, stmt.column) for a in args)
        out.append((BY_MNEMONIC[mnemonic], ops))
    return out


@dataclass
class _Item:
    """One statement placed in memory: ``emit(addr, ctx)`` gives its bytes."""

    stmt: Stmt
    size: Callable[[int, _Ctx], int]  # (addr, ctx) -> length in bytes
    emit: Callable[[int, _Ctx], bytes]
    is_code: bool = False
    size_used: int = 0  # the final size chosen by the layout (li / la read it)


def _instruction_item(stmt: Stmt) -> _Item:
    name = stmt.name
    if name in BY_MNEMONIC:
        ins = BY_MNEMONIC[name]

        def emit(pc: int, ctx: _Ctx) -> bytes:
            return encode(ins.opcode, **_fields(ins, stmt, stmt.operands, pc, ctx))

        return _Item(stmt, lambda pc, ctx: INSTR_SIZE, emit, True)
    if name in _PSEUDO:
        parts = _expand(stmt)

        def emit_pseudo(pc: int, ctx: _Ctx) -> bytes:
            return b"".join(encode(ins.opcode, **_fields(ins, stmt, ops, pc + INSTR_SIZE * k,
                                                         ctx))
                            for k, (ins, ops) in enumerate(parts))

        return _Item(stmt, lambda pc, ctx: INSTR_SIZE * len(parts), emit_pseudo, True)
    if name in _LOAD_IMM:
        return _load_imm_item(stmt)
    known = list(BY_MNEMONIC) + list(_PSEUDO) + list(_LOAD_IMM)
    raise AsmError(f"unknown mnemonic '{name}'{_did_you_mean(name, known)}", stmt.line,
                   stmt.column)


def _load_imm_item(stmt: Stmt) -> _Item:
    """li / la rd, v: addi rd, r0, lo (+ lih rd, hi when v does not fit sext(32))."""
    if len(stmt.operands) != 2:
        raise AsmError(f"'{stmt.name}' takes 2 operands ({stmt.name} rd, value), "
                       f"got {len(stmt.operands)}", stmt.line, stmt.column)
    rd_op, v_op = stmt.operands
    addi, lih = BY_MNEMONIC["addi"], BY_MNEMONIC["lih"]

    def value(ctx: _Ctx) -> int:
        if v_op.base is not None:
            raise AsmError(f"operand 2 of '{stmt.name}' must be a value", stmt.line,
                           v_op.column)
        v = _eval(v_op.expr, ctx, stmt)
        if ctx.final:
            _check_range(v, -(1 << 63), (1 << 64) - 1, "value", stmt, v_op.column)
        return v & MASK

    def size(pc: int, ctx: _Ctx) -> int:
        v = value(ctx)
        return INSTR_SIZE * (1 if _signed64(v) == _signed32(v) else 2)

    def emit(pc: int, ctx: _Ctx) -> bytes:
        rd = _register(rd_op, stmt, 0)
        v = value(ctx)
        out = encode(addi.opcode, rd=rd, rs1=0, imm=_signed32(v))
        if item.size_used == 2 * INSTR_SIZE:  # always correct, even when v fits sext(32)
            out += encode(lih.opcode, rd=rd, imm=_signed32(v >> 32))
        return out

    item = _Item(stmt, size, emit, True)
    return item


def _directive_item(stmt: Stmt) -> _Item:
    name, ops = stmt.name, stmt.operands
    if name not in _DIRECTIVES:
        raise AsmError(f"unknown directive '{name}'{_did_you_mean(name, _DIRECTIVES)}",
                       stmt.line, stmt.column)
    if name in _DATA_SIZE:
        return _data_item(stmt, _DATA_SIZE[name])
    if len(ops) != 1 or ops[0].base is not None:
        raise AsmError(f"'{name}' takes one constant operand", stmt.line, stmt.column)
    op = ops[0]

    def const() -> int:
        if any(not isinstance(t, int) for _, t in op.expr.terms):
            raise AsmError(f"the operand of '{name}' must be a constant, not a label",
                           stmt.line, op.column)
        return _eval(op.expr, _Ctx({}, True), stmt)

    n = const()
    if name == ".org":
        if not 0 <= n <= MASK:
            raise AsmError(f".org address {n} out of range", stmt.line, op.column)

        def org_size(addr: int, ctx: _Ctx) -> int:
            if n < addr:
                raise AsmError(f".org {n:#x} is behind the current address {addr:#x}",
                               stmt.line, op.column)
            return n - addr

        return _Item(stmt, org_size, lambda addr, ctx: bytes(n - addr))
    if name == ".align":
        if n <= 0 or n & (n - 1):
            raise AsmError(f".align {n}: the alignment must be a power of two", stmt.line,
                           op.column)
        return _Item(stmt, lambda addr, ctx: -addr % n, lambda addr, ctx: bytes(-addr % n))
    if n < 0:
        raise AsmError(f".zero {n}: the count must not be negative", stmt.line, op.column)
    return _Item(stmt, lambda addr, ctx: n, lambda addr, ctx: bytes(n))


def _data_item(stmt: Stmt, width: int) -> _Item:
    if not stmt.operands:
        raise AsmError(f"'{stmt.name}' needs at least one value", stmt.line, stmt.column)
    lo, hi = -(1 << (8 * width - 1)), (1 << (8 * width)) - 1

    def emit(addr: int, ctx: _Ctx) -> bytes:
        out = b""
        for op in stmt.operands:
            if op.base is not None:
                raise AsmError(f"'{stmt.name}' takes values, not memory operands", stmt.line,
                               op.column)
            v = _check_range(_eval(op.expr, ctx, stmt), lo, hi, "value", stmt, op.column)
            out += (v & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
        return out

    return _Item(stmt, lambda addr, ctx: width * len(stmt.operands), emit)


def _did_you_mean(name: str, candidates) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=4)
    close.sort(key=lambda c: not c.startswith(name))  # stable: a completion wins ties
    return f" (did you mean '{close[0]}'?)" if close else ""


def _layout(items: list[_Item], origin: int, ctx: _Ctx, sizes: list[int],
            max_size: int = 1 << 62) -> list[int]:
    """Addresses of the items for the given sizes; fills ``ctx.symbols`` with labels.
    An image that would grow past ``max_size`` bytes is refused at the line that grows it."""
    addrs, addr = [], origin
    for item, size in zip(items, sizes, strict=True):
        if item.is_code and addr % INSTR_SIZE:
            raise AsmError(f"instruction at unaligned address {addr:#x} (instructions are "
                           f"{INSTR_SIZE}-byte aligned; add '.align {INSTR_SIZE}')",
                           item.stmt.line, item.stmt.column)
        for lab in item.stmt.labels:
            ctx.symbols[str(lab)] = addr
        addrs.append(addr)
        addr += size if size >= 0 else item.size(addr, ctx)
        if addr - origin > max_size:
            raise AsmError(f"'{item.stmt.name}' makes the image {addr - origin} bytes, over "
                           f"the assembler's limit of {max_size} bytes ({max_size >> 20} "
                           "MiB); a program image must fit in memory", item.stmt.line,
                           item.stmt.column)
    return addrs


MAX_IMAGE = 1 << 28  # bytes: the default limit on an assembled image (256 MiB)


def assemble(text: str, origin: int = 0, max_size: int = MAX_IMAGE) -> bytes:
    """Assemble ``text``; the result is the memory image of ``[origin, end)``.

    Raises :class:`AsmError` (with line and column) for any error in the text, including
    an image (``.org``, ``.zero``, ``.align``, data) larger than ``max_size`` bytes.
    """
    stmts = _statements(text)
    _check_labels(stmts)
    items = []
    for s in stmts:
        if s.name == "":
            items.append(_Item(s, lambda a, c: 0, lambda a, c: b""))
        elif s.name.startswith("."):
            items.append(_directive_item(s))
        else:
            items.append(_instruction_item(s))
    # Layout: li / la grow from 1 to 2 instructions until every size is stable (sizes only
    # grow, so this terminates); .org / .align sizes follow from the address.
    grow = [i for i, it in enumerate(items) if it.stmt.name in _LOAD_IMM]
    sizes = [-1 if (it.stmt.name.startswith(".") and it.stmt.name in (".org", ".align"))
             else (INSTR_SIZE if i in grow else it.size(0, _Ctx({}, False)))
             for i, it in enumerate(items)]
    while True:
        ctx = _Ctx({}, False)
        _layout(items, origin, ctx, sizes, max_size)
        changed = False
        for i in grow:
            need = items[i].size(0, ctx)
            if need > sizes[i]:
                sizes[i], changed = need, True
        if not changed:
            break
    ctx = _Ctx({}, True)
    addrs = _layout(items, origin, ctx, sizes, max_size)
    image = bytearray()
    for item, addr, size in zip(items, addrs, sizes, strict=True):
        s = item.stmt
        if s.address is not None and s.address != addr:
            raise AsmError(f"address mismatch: this line is at {addr:#x}, not "
                           f"{s.address:#x}", s.line, 1)
        item.size_used = size
        data = item.emit(addr, ctx)
        start = addr - origin
        if len(image) < start:
            image.extend(bytes(start - len(image)))
        image[start:start + len(data)] = data
    return bytes(image)


def _check_labels(stmts: list[Stmt]) -> None:
    seen: dict[str, int] = {}
    for s in stmts:
        for lab in s.labels:
            name = str(lab)
            if name in REGISTERS:
                raise AsmError(f"label '{name}' is a register name", s.line, lab.column)
            if name in seen:
                raise AsmError(f"label '{name}' already defined on line {seen[name]}", s.line,
                               lab.column)
            seen[name] = s.line


# --------------------------------------------------------------------------------------
# Disassembly
# --------------------------------------------------------------------------------------


def _disasm_word(word: bytes, addr: int) -> str | None:
    """Assembly text of one instruction word, or None if it is not a legal instruction
    in canonical form (unused fields zero), i.e. one the assembler would produce."""
    d = decode(word)
    if not is_legal(d):
        return None
    ins = d.instr
    assert ins is not None
    used = FMT_FIELDS[ins.fmt]
    canon = {f: getattr(d, f) for f in ("rd", "rs1", "rs2", "imm") if f in used}
    if encode(ins.opcode, **canon) != word:
        return None
    parts = []
    for kind in operand_kinds(ins.fmt):
        mem = _MEM_RE.match(kind)
        if mem:
            parts.append(f"{d.imm}(r{getattr(d, mem.group(2))})")
        elif kind in ("rd", "rs1", "rs2"):
            parts.append(f"r{getattr(d, kind)}")
        elif kind == "target":
            parts.append(f"{(addr + d.imm) & MASK:#x}")
        elif ins.fmt is Fmt.U:
            parts.append(f"{d.imm & 0xFFFFFFFF:#x}")
        else:
            parts.append(str(d.imm))
    return f"{ins.mnemonic:<6} {', '.join(parts)}".rstrip()


def disassemble(image: bytes, origin: int = 0) -> str:
    """One line per 8-byte word, ``0x00000040:  add    r1, r2, r3``.

    Words that are not legal instructions print as ``.dword 0x...``, runs of zero words
    as ``.zero N``, a tail shorter than 8 bytes as ``.byte``. The address prefix is
    checked by the assembler, so ``assemble(disassemble(x, o), o) == x``.
    """
    lines = []
    n, i = len(image), 0
    zero = bytes(INSTR_SIZE)
    while i + INSTR_SIZE <= n:
        addr = origin + i
        word = bytes(image[i:i + INSTR_SIZE])
        run = 0
        while image[i + run * INSTR_SIZE:i + (run + 1) * INSTR_SIZE] == zero:
            run += 1
        if run >= 2:
            lines.append(f"{addr:#010x}:  .zero  {run * INSTR_SIZE}")
            i += run * INSTR_SIZE
            continue
        text = _disasm_word(word, addr) if addr % INSTR_SIZE == 0 else None
        if text is None:
            text = f".dword {int.from_bytes(word, 'little'):#018x}"
        lines.append(f"{addr:#010x}:  {text}")
        i += INSTR_SIZE
    if i < n:
        tail = ", ".join(f"{b:#04x}" for b in image[i:])
        lines.append(f"{origin + i:#010x}:  .byte  {tail}")
    return "\n".join(lines) + ("\n" if lines else "")
