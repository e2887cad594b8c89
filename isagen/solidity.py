"""Generate the Solidity one-step verifier from the instruction table.

``generate_verifier()`` fills the template ``contracts/OpmlcStep.sol.in`` from
:mod:`opmlc_runtime.isa` (the instruction table: opcodes, formats, ``sol`` expressions),
:mod:`opmlc_runtime.state` (the 306-byte state encoding and the witness layout) and
:mod:`opmlc_runtime.contract_errors` (the custom errors, which the runtime also decodes).
The result is committed as ``contracts/generated/OpmlcStep.sol``;
:func:`update_generated` rewrites it (``python -m opmlc_isagen``) or reports drift
(``check=True``; tests/test_solidity_gen.py). The contract's one entry point::

    function step(bytes32 _preStateRoot, bytes calldata _witness)
        external pure returns (bytes32 postStateRoot_)

returns ``state_root(stepper.step(pre))`` for the state whose encoding opens the witness,
exactly as :func:`opmlc_runtime.stepper.step` computes it, or reverts when the witness does
not prove the pre-state (wrong length, wrong pre-root, a Merkle path that does not lead to
the memory root). It never returns a wrong post root.

The output is deterministic: a pure function of the tables and the template,
byte-identical on every run.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

from opmlc_runtime import isa, state
from opmlc_runtime.contract_errors import VERIFIER_ERRORS, ContractError
from opmlc_runtime.files import atomic_write
from opmlc_runtime.isa import Fmt, Instr, Status

__all__ = ["CONTRACT", "GENERATED", "SOURCE_NAME", "TEMPLATE", "generate_verifier",
           "update_generated", "write_verifier"]

CONTRACT = "OpmlcStep"
SOURCE_NAME = "OpmlcStep.sol"
SOLIDITY_VERSION = "0.8.28"

_CONTRACTS = Path(__file__).resolve().parents[1] / "contracts"
TEMPLATE = _CONTRACTS / "OpmlcStep.sol.in"
"""The verifier's source with ``$name`` placeholders; lines starting ``// TEMPLATE:``
are notes for its editors and are dropped."""
GENERATED = _CONTRACTS / "generated"
"""Where the rendered verifier is committed (``GENERATED / SOURCE_NAME``)."""
_TEMPLATE_NOTE = "// TEMPLATE:"

# How each format binds the table's expression variables (a, b, d) to operands, and
# which register fields it uses (a field the format does not use is ignored).
_OPERANDS: dict[Fmt, str] = {
    Fmt.R: "a = rs1, b = rs2, d = rd",
    Fmt.I: "a = rs1, b = imm",
    Fmt.U: "d = rd, b = imm",
    Fmt.BRANCH: "a = rs1, b = rs2",
}


def _hex(v: int) -> str:
    return f"0x{v:02X}"


def _ops_mask(fmt: Fmt) -> int:
    """Bit ``op`` set for every opcode of format ``fmt`` (opcodes are < 256)."""
    mask = 0
    for ins in isa.INSTRUCTIONS:
        if ins.fmt is fmt:
            mask |= 1 << ins.opcode
    return mask


def _rows(fmt: Fmt) -> list[Instr]:
    return [ins for ins in isa.INSTRUCTIONS if ins.fmt is fmt]


def _mnemonics(fmt: Fmt) -> str:
    return " ".join(ins.mnemonic for ins in _rows(fmt))


def _reg_check(fmt: Fmt) -> str:
    """Solidity condition: a register field used by ``fmt`` is >= 32 (norm:illegal).

    (x | y | z) >= 32 iff one of them is, since 32 is a power of two.
    """
    fields = [f for f in isa.FMT_FIELDS[fmt] if f != "imm"]
    if not fields:
        return "false"
    if len(fields) == 1:
        return f"{fields[0]} >= NUM_REGS"
    return f"({' | '.join(fields)}) >= NUM_REGS"


def _expr_chain(fmt: Fmt, target: str, indent: str) -> str:
    """An if-chain over the opcodes of ``fmt`` assigning the table's ``sol`` expression.

    Callers dispatch on ``OPS_<fmt>`` first, so one of the arms always matches.
    """
    lines = []
    for k, ins in enumerate(_rows(fmt)):
        if ins.sol is None:
            raise ValueError(f"{ins.mnemonic}: format {fmt.value} needs a Solidity expression")
        kw = "if" if k == 0 else "else if"
        lines.append(f"{indent}{kw} (_op == {_hex(ins.opcode)}) {{ {target} = {ins.sol}; }}"
                     f" // {ins.mnemonic}: {ins.pseudo}")
    return "\n".join(lines)


def _format_comment(fmt: Fmt) -> str:
    """``0x48 jal`` style list of the opcodes of a format (for whole-format semantics)."""
    return ", ".join(f"{_hex(i.opcode)} {i.mnemonic}" for i in _rows(fmt))


def _uses_d(fmt: Fmt) -> bool:
    return any(ins.reads_rd for ins in _rows(fmt))


def _access_chain(indent: str) -> str:
    """size_ / signed_ of every load and store, by opcode."""
    lines = []
    for k, ins in enumerate(_rows(Fmt.LOAD) + _rows(Fmt.STORE)):
        signed = " signed_ = true;" if ins.signed else ""
        kw = "if" if k == 0 else "else if"
        lines.append(
            f"{indent}{kw} (_op == {_hex(ins.opcode)}) {{ size_ = {ins.size};{signed} }}"
            f" // {ins.mnemonic}: {ins.pseudo}"
        )
    return "\n".join(lines)


def _sys_block(indent: str) -> str:
    lines = []
    for ins in _rows(Fmt.SYS):
        if ins.mnemonic != "halt":
            raise ValueError(f"no Solidity lowering for system instruction {ins.mnemonic}")
        lines.append(
            f"{indent}if (op == {_hex(ins.opcode)}) return _commit(_m, _pc, STATUS_HALTED, 0, 0);"
            f" // {ins.mnemonic}: {ins.pseudo} (norm:halt)"
        )
    return "\n".join(lines)


def _opcode_table() -> str:
    """A comment listing every opcode with its mnemonic, format and syntax."""
    lines = []
    for ins in isa.INSTRUCTIONS:
        syntax = isa.FMT_SYNTAX[ins.fmt].format(m=ins.mnemonic)
        lines.append(f"///   {_hex(ins.opcode)}  {ins.mnemonic:<6} {ins.fmt.value:<6} {syntax}")
    return "\n".join(lines)


def _format_masks() -> str:
    lines = []
    for fmt in Fmt:
        lines.append(f"    /// @dev Opcodes of format {fmt.value}: {_mnemonics(fmt)}.")
        lines.append(f"    uint256 internal constant OPS_{fmt.name} = {_ops_mask(fmt):#x};")
    return "\n".join(lines)


def _status_constants() -> str:
    lines = []
    for st in Status:
        lines.append(f"    uint256 internal constant STATUS_{st.name} = {int(st)};")
    return "\n".join(lines)


def _error(err: ContractError) -> str:
    """The NatSpec-documented ``error`` declaration of one row of the error table."""
    lines = [f"    /// @notice {err.notice}"]
    lines += [f"    /// @param {p.name} {p.doc}" for p in err.params]
    lines.append(f"    error {err.name}({', '.join(f'{p.type} {p.name}' for p in err.params)});")
    return "\n".join(lines)


def _errors() -> str:
    return "\n\n".join(_error(e) for e in VERIFIER_ERRORS)


def _template() -> Template:
    text = TEMPLATE.read_text(encoding="utf-8")
    return Template("".join(line for line in text.splitlines(keepends=True)
                            if not line.startswith(_TEMPLATE_NOTE)))


def _branch_chain(indent: str) -> str:
    return _expr_chain(Fmt.BRANCH, "taken_", indent)


def generate_verifier() -> dict[str, str]:
    """``{file name: Solidity source}`` of the one-step verifier, rendered from the table.

    Deterministic: the same table gives byte-identical sources.
    """
    indent = " " * 12
    subs = {
        "isa_version": str(isa.ISA_VERSION),
        "solc_version": SOLIDITY_VERSION,
        "state_size": str(state.STATE_SIZE),
        "off_pc": str(state.OFF_PC),
        "off_step": str(state.OFF_STEP),
        "off_status": str(state.OFF_STATUS),
        "off_depth": str(state.OFF_DEPTH),
        "off_regs": str(state.OFF_REGS),
        "off_memroot": str(state.OFF_MEMROOT),
        "num_regs": str(isa.NUM_REGS),
        "instr_size": str(isa.INSTR_SIZE),
        "leaf_size": str(isa.LEAF_SIZE),
        "min_depth": str(isa.MIN_DEPTH),
        "max_depth": str(isa.MAX_DEPTH),
        "opcode_table": _opcode_table(),
        "status_constants": _status_constants(),
        "format_masks": _format_masks(),
        "ops_r_operands": _OPERANDS[Fmt.R],
        "ops_i_operands": _OPERANDS[Fmt.I],
        "ops_u_operands": _OPERANDS[Fmt.U],
        "ops_branch_operands": _OPERANDS[Fmt.BRANCH],
        "check_r": _reg_check(Fmt.R),
        "check_i": _reg_check(Fmt.I),
        "check_u": _reg_check(Fmt.U),
        "check_branch": _reg_check(Fmt.BRANCH),
        "check_jal": _reg_check(Fmt.JAL),
        "check_jalr": _reg_check(Fmt.JALR),
        "check_load": _reg_check(Fmt.LOAD),
        "check_store": _reg_check(Fmt.STORE),
        "r_d": "_reg(_m, rd)" if _uses_d(Fmt.R) else "0",
        "chain_r": _expr_chain(Fmt.R, "r_", indent),
        "chain_i": _expr_chain(Fmt.I, "r_", indent),
        "chain_u": _expr_chain(Fmt.U, "r_", indent),
        "chain_branch": _branch_chain(" " * 8),
        "access_chain": _access_chain(" " * 8),
        "sys_block": _sys_block(indent),
        "jal_ops": _format_comment(Fmt.JAL),
        "jalr_ops": _format_comment(Fmt.JALR),
        "errors": _errors(),
    }
    return {SOURCE_NAME: _template().substitute(subs)}


def _write(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, flushed and renamed into place
    (:func:`opmlc_runtime.files.atomic_write`)."""
    atomic_write(path, text.encode("utf-8"))


def write_verifier(out_dir: str | Path) -> list[Path]:
    """Write the generated sources into ``out_dir`` (created if needed); return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, src in sorted(generate_verifier().items()):
        path = out / name
        _write(path, src)
        paths.append(path)
    return paths


def update_generated(out_dir: str | Path = GENERATED, check: bool = False) -> list[Path]:
    """Bring the committed sources in ``out_dir`` up to date with the tables.

    Returns the files that were out of date (missing or different) and, unless ``check``,
    have been rewritten; an empty list when all matched.
    """
    out = Path(out_dir)
    stale = []
    for name, src in sorted(generate_verifier().items()):
        path = out / name
        if not path.is_file() or path.read_text(encoding="utf-8") != src:
            stale.append(path)
            if not check:
                out.mkdir(parents=True, exist_ok=True)
                _write(path, src)
    return stale
