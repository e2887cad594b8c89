"""Generate the Solidity one-step verifier from the instruction table.

``generate_verifier()`` renders ``OpmlcStep.sol`` from :mod:`opmlc_runtime.isa` (the
instruction table: opcodes, formats, ``sol`` expressions) and :mod:`opmlc_runtime.state`
(the 306-byte state encoding and the witness layout). The contract's one entry point::

    function step(bytes32 _preStateRoot, bytes calldata _witness)
        external pure returns (bytes32 postStateRoot_)

returns ``state_root(stepper.step(pre))`` for the state whose encoding opens the witness,
exactly as :func:`opmlc_runtime.stepper.step` computes it, or reverts when the witness does
not prove the pre-state (wrong length, wrong pre-root, a Merkle path that does not lead to
the memory root). It never returns a wrong post root.

The output is deterministic: a pure function of the table, byte-identical on every run.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

from opmlc_runtime import isa, state
from opmlc_runtime.isa import Fmt, Instr, Status

__all__ = ["CONTRACT", "SOURCE_NAME", "generate_verifier", "write_verifier"]

CONTRACT = "OpmlcStep"
SOURCE_NAME = "OpmlcStep.sol"
SOLIDITY_VERSION = "0.8.28"

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


_TEMPLATE = Template(r"""// SPDX-License-Identifier: Apache-2.0
// Code generated by opmlc.backend.solidity from runtime/isa.py (ISA_VERSION $isa_version)
// and runtime/state.py. DO NOT EDIT: regenerate with `opmlc verifier -o DIR`;
// tests/test_solidity_gen.py fails when this file drifts from the table.
pragma solidity $solc_version;

/// @title OpmlcStep: the opmlc VM one-step verifier (ISA version $isa_version).
/// @notice `step(preStateRoot, witness)` executes ONE VM step on chain, exactly as the
///         reference stepper runtime/stepper.py does, and returns the post-state root.
/// @dev State encoding (STATE_SIZE = $state_size bytes, big-endian integers):
///      pc:u64 at $off_pc | step:u64 at $off_step | status:u8 at $off_status
///      | depth:u8 at $off_depth | regs[32]:u64 at $off_regs | memory root:bytes32 at $off_memroot;
///      state root = keccak256(encoding).
///      Witness = encoding, then [instruction leaf, depth siblings] iff the status is RUNNING
///      and the pc is valid, then [data leaf, depth siblings] iff the instruction is a load or
///      store whose address is aligned and in range. Siblings are bottom-up; bit l of the leaf
///      index set means the path node at level l is a right child. The length must be exact.
///      Instruction word (8 bytes): opcode:u8 | rd:u8 | rs1:u8 | rs2:u8 | imm:i32 little-endian.
///      Opcodes:
$opcode_table
contract OpmlcStep {
    /// @notice Version of the instruction set, state encoding and witness this contract checks.
    uint256 public constant ISA_VERSION = $isa_version;

    uint256 internal constant STATE_SIZE = $state_size;
    uint256 internal constant OFF_PC = $off_pc;
    uint256 internal constant OFF_STEP = $off_step;
    uint256 internal constant OFF_STATUS = $off_status;
    uint256 internal constant OFF_DEPTH = $off_depth;
    uint256 internal constant OFF_REGS = $off_regs;
    uint256 internal constant OFF_MEMROOT = $off_memroot;
    uint256 internal constant NUM_REGS = $num_regs;
    uint256 internal constant INSTR_SIZE = $instr_size;
    uint256 internal constant LEAF_SIZE = $leaf_size;
    uint256 internal constant MIN_DEPTH = $min_depth;
    uint256 internal constant MAX_DEPTH = $max_depth;
    uint256 internal constant MASK64 = 0xFFFFFFFFFFFFFFFF;

$status_constants

$format_masks

    /// @notice The witness is not exactly as long as the layout requires for this pre-state.
    /// @param length The witness length received.
    /// @param expected The length the layout requires.
    error WitnessLength(uint256 length, uint256 expected);

    /// @notice keccak256 of the state encoding in the witness is not the pre-state root.
    /// @param preStateRoot The root the caller claimed.
    /// @param encodingHash keccak256 of the encoding in the witness.
    error PreStateMismatch(bytes32 preStateRoot, bytes32 encodingHash);

    /// @notice A leaf and its siblings in the witness do not lead to the state's memory root.
    /// @param leafIndex Index of the leaf (address / 32) whose path is wrong.
    error MerkleMismatch(uint256 leafIndex);

    /// @notice The memory depth in the state encoding is outside MIN_DEPTH..MAX_DEPTH.
    /// @param depth The depth byte of the encoding.
    error InvalidDepth(uint256 depth);

    /// @notice Register r0 of a RUNNING pre-state is not zero (norm:state-valid).
    /// @param value The r0 word of the encoding.
    error NonZeroR0(uint256 value);

    /// @notice Execute one VM step.
    /// @dev Semantics are those of runtime/stepper.py (norm ids in runtime/isa.py NORMS).
    ///      A pre-state that is not RUNNING is returned unchanged (norm:stopped); every step
    ///      from a RUNNING state increments the step counter (norm:step-count).
    /// @param _preStateRoot keccak256 of the pre-state encoding.
    /// @param _witness The one-step witness (see the contract documentation).
    /// @return postStateRoot_ keccak256 of the post-state encoding.
    function step(bytes32 _preStateRoot, bytes calldata _witness)
        external
        pure
        returns (bytes32 postStateRoot_)
    {
        unchecked {
            uint256 m = _loadState(_preStateRoot, _witness);
            if (_byteAt(m, OFF_STATUS) != STATUS_RUNNING) {
                // norm:stopped
                _expectLength(_witness.length, STATE_SIZE);
                return _preStateRoot;
            }
            uint256 depth = _byteAt(m, OFF_DEPTH);
            if (depth < MIN_DEPTH || depth > MAX_DEPTH) revert InvalidDepth(depth);
            uint256 r0 = _reg(m, 0);
            if (r0 != 0) revert NonZeroR0(r0); // norm:state-valid
            uint256 pc = _word(m, OFF_PC);
            if (pc % INSTR_SIZE != 0 || pc + INSTR_SIZE > LEAF_SIZE << depth) {
                // norm:fetch
                _expectLength(_witness.length, STATE_SIZE);
                return _commit(m, pc, STATUS_FAULT_PC, 0, 0);
            }
            uint256 insn = _fetch(m, _witness, depth, pc);
            if ((OPS_LOAD | OPS_STORE) >> (insn >> 56) & 1 != 0) {
                return _memoryAccess(m, _witness, depth, pc, insn);
            }
            _expectLength(_witness.length, STATE_SIZE + LEAF_SIZE * (depth + 1));
            return _execute(m, pc, insn);
        }
    }

    // ----------------------------------------------------------------------------------
    // Execution
    // ----------------------------------------------------------------------------------

    /// @notice Execute a fetched instruction that is not a load or store.
    /// @param _m Memory pointer of the state encoding.
    /// @param _pc The pc (valid: the instruction was fetched from it).
    /// @param _insn The 8-byte instruction word, big-endian as it lies in memory.
    /// @return postStateRoot_ The post-state root.
    function _execute(uint256 _m, uint256 _pc, uint256 _insn)
        internal
        pure
        returns (bytes32 postStateRoot_)
    {
        unchecked {
            uint256 op = _insn >> 56;
            uint256 rd = (_insn >> 48) & 0xFF;
            uint256 rs1 = (_insn >> 40) & 0xFF;
            uint256 rs2 = (_insn >> 32) & 0xFF;
            uint256 next = (_pc + INSTR_SIZE) & MASK64; // norm:pc-next
            if (OPS_R >> op & 1 != 0) {
                // R: $ops_r_operands -> rd
                if ($check_r) return _commit(_m, _pc, STATUS_FAULT_ILLEGAL, 0, 0);
                uint256 r = _formatR(op, _reg(_m, rs1), _reg(_m, rs2), $r_d);
                return _commit(_m, next, STATUS_RUNNING, rd, r);
            }
            if (OPS_I >> op & 1 != 0) {
                // I: $ops_i_operands -> rd
                if ($check_i) return _commit(_m, _pc, STATUS_FAULT_ILLEGAL, 0, 0);
                uint256 r = _formatI(op, _reg(_m, rs1), _imm(_insn));
                return _commit(_m, next, STATUS_RUNNING, rd, r);
            }
            if (OPS_U >> op & 1 != 0) {
                // U: $ops_u_operands -> rd
                if ($check_u) return _commit(_m, _pc, STATUS_FAULT_ILLEGAL, 0, 0);
                uint256 r = _formatU(op, _reg(_m, rd), _imm(_insn));
                return _commit(_m, next, STATUS_RUNNING, rd, r);
            }
            if (OPS_BRANCH >> op & 1 != 0) {
                // BRANCH: $ops_branch_operands; pc += imm if taken (norm:branch-target)
                if ($check_branch) return _commit(_m, _pc, STATUS_FAULT_ILLEGAL, 0, 0);
                if (_formatBranch(op, _reg(_m, rs1), _reg(_m, rs2))) {
                    next = (_pc + _imm(_insn)) & MASK64;
                }
                return _commit(_m, next, STATUS_RUNNING, 0, 0);
            }
            if (OPS_JAL >> op & 1 != 0) {
                // JAL ($jal_ops): rd = pc + 8; pc = pc + imm (norm:branch-target)
                if ($check_jal) return _commit(_m, _pc, STATUS_FAULT_ILLEGAL, 0, 0);
                return _commit(_m, (_pc + _imm(_insn)) & MASK64, STATUS_RUNNING, rd, next);
            }
            if (OPS_JALR >> op & 1 != 0) {
                // JALR ($jalr_ops): t = rs1 + imm; rd = pc + 8; pc = t (norm:branch-target)
                if ($check_jalr) return _commit(_m, _pc, STATUS_FAULT_ILLEGAL, 0, 0);
                uint256 target = (_reg(_m, rs1) + _imm(_insn)) & MASK64;
                return _commit(_m, target, STATUS_RUNNING, rd, next);
            }
$sys_block
            // norm:illegal: an opcode not in the table
            return _commit(_m, _pc, STATUS_FAULT_ILLEGAL, 0, 0);
        }
    }

    /// @notice R-format results: rd = f(a = rs1, b = rs2, d = rd) mod 2^64.
    /// @dev Here and in the other _format* functions the parameters are named a, b, d (not
    ///      _a, ...) because the table's Solidity expressions refer to them by those names.
    function _formatR(uint256 _op, uint256 a, uint256 b, uint256 d)
        internal
        pure
        returns (uint256 r_)
    {
        unchecked {
$chain_r
            r_ &= MASK64;
        }
    }

    /// @notice I-format results: rd = f(a = rs1, b = sext(imm)) mod 2^64.
    function _formatI(uint256 _op, uint256 a, uint256 b) internal pure returns (uint256 r_) {
        unchecked {
$chain_i
            r_ &= MASK64;
        }
    }

    /// @notice U-format results: rd = f(d = rd, b = sext(imm)) mod 2^64.
    function _formatU(uint256 _op, uint256 d, uint256 b) internal pure returns (uint256 r_) {
        unchecked {
$chain_u
            r_ &= MASK64;
        }
    }

    /// @notice Branch conditions: taken iff f(a = rs1, b = rs2).
    function _formatBranch(uint256 _op, uint256 a, uint256 b)
        internal
        pure
        returns (bool taken_)
    {
$chain_branch
    }

    /// @notice Access size in bytes and signedness of a load or store opcode.
    function _accessOf(uint256 _op) internal pure returns (uint256 size_, bool signed_) {
$access_chain
    }

    /// @notice Execute a load or store (norm:mem-le, norm:mem-align, norm:mem-range).
    /// @dev Checks, in order: register fields (norm:illegal), alignment, range; only an
    ///      access that passes them carries a data leaf in the witness.
    function _memoryAccess(
        uint256 _m,
        bytes calldata _witness,
        uint256 _depth,
        uint256 _pc,
        uint256 _insn
    ) internal pure returns (bytes32 postStateRoot_) {
        unchecked {
            uint256 oneLeaf = STATE_SIZE + LEAF_SIZE * (_depth + 1);
            (uint256 status, uint256 ea) = _checkAccess(_m, _depth, _insn);
            if (status != STATUS_RUNNING) {
                _expectLength(_witness.length, oneLeaf);
                return _commit(_m, _pc, status, 0, 0);
            }
            _expectLength(_witness.length, oneLeaf + LEAF_SIZE * (_depth + 1));
            uint256 leafPtr = _offset(_witness) + oneLeaf;
            uint256 leaf = _calldataWord(leafPtr);
            if (_merkleRoot(leaf, leafPtr + LEAF_SIZE, _depth, ea / LEAF_SIZE) != _memRoot(_m)) {
                revert MerkleMismatch(ea / LEAF_SIZE);
            }
            return _loadStore(_m, _pc, _insn, ea, leaf, leafPtr + LEAF_SIZE, _depth);
        }
    }

    /// @notice Fault status (or STATUS_RUNNING) and effective address of a load or store.
    /// @return status_ FAULT_ILLEGAL, FAULT_ALIGN, FAULT_ADDR or RUNNING.
    /// @return ea_ (rs1 + sext(imm)) mod 2^64.
    function _checkAccess(uint256 _m, uint256 _depth, uint256 _insn)
        internal
        pure
        returns (uint256 status_, uint256 ea_)
    {
        unchecked {
            uint256 op = _insn >> 56;
            uint256 rd = (_insn >> 48) & 0xFF;
            uint256 rs1 = (_insn >> 40) & 0xFF;
            uint256 rs2 = (_insn >> 32) & 0xFF;
            if (OPS_STORE >> op & 1 != 0 ? $check_store : $check_load) {
                return (STATUS_FAULT_ILLEGAL, 0); // norm:illegal
            }
            (uint256 size, ) = _accessOf(op);
            ea_ = (_reg(_m, rs1) + _imm(_insn)) & MASK64;
            if (ea_ % size != 0) {
                status_ = STATUS_FAULT_ALIGN; // norm:mem-align
            } else if (ea_ + size > LEAF_SIZE << _depth) {
                status_ = STATUS_FAULT_ADDR; // norm:mem-range
            } else {
                status_ = STATUS_RUNNING;
            }
        }
    }

    /// @notice Perform a checked load or store on its (verified) data leaf.
    /// @dev The field is bytes [ea % 32, ea % 32 + size) of the leaf, least significant
    ///      first (norm:mem-le); a store rehashes the leaf along the same siblings.
    function _loadStore(
        uint256 _m,
        uint256 _pc,
        uint256 _insn,
        uint256 _ea,
        uint256 _leaf,
        uint256 _siblings,
        uint256 _depth
    ) internal pure returns (bytes32 postStateRoot_) {
        unchecked {
            uint256 op = _insn >> 56;
            uint256 next = (_pc + INSTR_SIZE) & MASK64; // norm:pc-next
            if (OPS_STORE >> op & 1 == 0) {
                uint256 rd = (_insn >> 48) & 0xFF;
                return _commit(_m, next, STATUS_RUNNING, rd, _loadField(op, _leaf, _ea));
            }
            uint256 value = _reg(_m, (_insn >> 32) & 0xFF);
            _leaf = _storeField(op, _leaf, _ea, value);
            _setMemRoot(_m, _merkleRoot(_leaf, _siblings, _depth, _ea / LEAF_SIZE));
            return _commit(_m, next, STATUS_RUNNING, 0, 0);
        }
    }

    /// @notice The loaded value: the little-endian field at `_ea` of `_leaf`, extended.
    function _loadField(uint256 _op, uint256 _leaf, uint256 _ea)
        internal
        pure
        returns (uint256 v_)
    {
        unchecked {
            (uint256 size, bool signed) = _accessOf(_op);
            uint256 field = (uint256(1) << (8 * size)) - 1;
            v_ = _bswap((_leaf >> (8 * (LEAF_SIZE - size - _ea % LEAF_SIZE))) & field, size);
            if (signed && (v_ >> (8 * size - 1)) != 0) v_ |= MASK64 ^ field;
        }
    }

    /// @notice `_leaf` with the low bytes of `_value` stored little-endian at `_ea`.
    function _storeField(uint256 _op, uint256 _leaf, uint256 _ea, uint256 _value)
        internal
        pure
        returns (uint256 leaf_)
    {
        unchecked {
            (uint256 size, ) = _accessOf(_op);
            uint256 field = (uint256(1) << (8 * size)) - 1;
            uint256 shift = 8 * (LEAF_SIZE - size - _ea % LEAF_SIZE);
            leaf_ = (_leaf & ~(field << shift)) | (_bswap(_value & field, size) << shift);
        }
    }

    // ----------------------------------------------------------------------------------
    // Semantics helpers named by the table's Solidity expressions (runtime/isa.py)
    // ----------------------------------------------------------------------------------

    /// @notice s(x) = the signed value of the 64-bit word x.
    function s(uint256 _x) internal pure returns (int256) {
        return int256(int64(uint64(_x)));
    }

    /// @notice u(x) = x mod 2^64 (two's complement), as a word.
    function u(int256 _x) internal pure returns (uint256) {
        return uint256(_x) & MASK64;
    }

    /// @notice sll(a, b) = b >= 64 ? 0 : (a << b) mod 2^64 (norm:shift-wide).
    function sll(uint256 _a, uint256 _b) internal pure returns (uint256) {
        return _b >= 64 ? 0 : (_a << _b) & MASK64;
    }

    /// @notice srl(a, b) = b >= 64 ? 0 : a >> b (norm:shift-wide).
    function srl(uint256 _a, uint256 _b) internal pure returns (uint256) {
        return _b >= 64 ? 0 : _a >> _b;
    }

    /// @notice sra(a, b) = s(a) >> min(b, 63) (norm:shift-wide).
    function sra(uint256 _a, uint256 _b) internal pure returns (uint256) {
        return u(s(_a) >> (_b < 63 ? _b : 63));
    }

    /// @notice srar(a, b) = b == 0 ? a : b >= 64 ? 0 : (s(a) >> b) + ((s(a) >> (b - 1)) & 1)
    ///         (norm:srar-round, norm:shift-wide).
    function srar(uint256 _a, uint256 _b) internal pure returns (uint256) {
        unchecked {
            if (_b == 0) return _a;
            if (_b >= 64) return 0;
            int256 x = s(_a);
            return u((x >> _b) + ((x >> (_b - 1)) & 1));
        }
    }

    /// @notice sat(a, n) = clamp(s(a), -2^(k-1), 2^(k-1) - 1), k = clamp(s(n), 1, 64) (norm:sat).
    function sat(uint256 _a, uint256 _n) internal pure returns (uint256) {
        unchecked {
            int256 k = s(_n);
            uint256 bits = k < 1 ? 1 : k > 64 ? 64 : uint256(k);
            int256 hi = int256((uint256(1) << (bits - 1)) - 1);
            int256 lo = -hi - 1;
            int256 x = s(_a);
            return u(x < lo ? lo : x > hi ? hi : x);
        }
    }

    /// @notice satu(a, n) = clamp(s(a), 0, 2^k - 1), k = clamp(s(n), 0, 63) (norm:sat).
    function satu(uint256 _a, uint256 _n) internal pure returns (uint256) {
        unchecked {
            int256 k = s(_n);
            uint256 bits = k < 0 ? 0 : k > 63 ? 63 : uint256(k);
            int256 hi = int256((uint256(1) << bits) - 1);
            int256 x = s(_a);
            return u(x < 0 ? int256(0) : x > hi ? hi : x);
        }
    }

    // ----------------------------------------------------------------------------------
    // State, witness and Merkle plumbing
    // ----------------------------------------------------------------------------------

    /// @notice Copy the state encoding into memory and check it against the pre-state root.
    /// @return m_ Memory pointer of the copy (reserved; the post-state is built in place).
    function _loadState(bytes32 _preStateRoot, bytes calldata _witness)
        internal
        pure
        returns (uint256 m_)
    {
        if (_witness.length < STATE_SIZE) revert WitnessLength(_witness.length, STATE_SIZE);
        bytes32 h;
        assembly ("memory-safe") {
            m_ := mload(0x40)
            mstore(0x40, add(m_, add(STATE_SIZE, 32))) // + 32: room for the last mstore word
            calldatacopy(m_, _witness.offset, STATE_SIZE)
            h := keccak256(m_, STATE_SIZE)
        }
        if (h != _preStateRoot) revert PreStateMismatch(_preStateRoot, h);
    }

    /// @notice Revert unless the witness length is exactly `_expected` (norm:witness-exact).
    function _expectLength(uint256 _length, uint256 _expected) internal pure {
        if (_length != _expected) revert WitnessLength(_length, _expected);
    }

    /// @notice Verify the instruction leaf and return the 8-byte word at pc (norm:fetch).
    function _fetch(uint256 _m, bytes calldata _witness, uint256 _depth, uint256 _pc)
        internal
        pure
        returns (uint256 insn_)
    {
        unchecked {
            uint256 need = STATE_SIZE + LEAF_SIZE * (_depth + 1);
            if (_witness.length < need) revert WitnessLength(_witness.length, need);
            uint256 leafPtr = _offset(_witness) + STATE_SIZE;
            uint256 index = _pc / LEAF_SIZE;
            uint256 leaf = _calldataWord(leafPtr);
            if (_merkleRoot(leaf, leafPtr + LEAF_SIZE, _depth, index) != _memRoot(_m)) {
                revert MerkleMismatch(index);
            }
            insn_ = (leaf >> (8 * (LEAF_SIZE - INSTR_SIZE - _pc % LEAF_SIZE))) & MASK64;
        }
    }

    /// @notice The Merkle root over `_leaf` at `_index` with `_depth` siblings from calldata.
    /// @dev h = leaf; for l < depth: h = bit l of index ? H(sib_l || h) : H(h || sib_l).
    function _merkleRoot(uint256 _leaf, uint256 _siblings, uint256 _depth, uint256 _index)
        internal
        pure
        returns (bytes32 root_)
    {
        assembly ("memory-safe") {
            let h := _leaf
            let end := add(_siblings, shl(5, _depth))
            for { let p := _siblings } lt(p, end) { p := add(p, 32) } {
                // scratch space 0x00..0x3f: left child at 0x00, right child at 0x20
                let right := shl(5, and(_index, 1))
                mstore(right, h)
                mstore(xor(right, 0x20), calldataload(p))
                h := keccak256(0x00, 0x40)
                _index := shr(1, _index)
            }
            root_ := h
        }
    }

    /// @notice Commit the post-state: pc, status, step + 1 and rd (unless r0, norm:r0).
    function _commit(uint256 _m, uint256 _pc, uint256 _status, uint256 _rd, uint256 _value)
        internal
        pure
        returns (bytes32 root_)
    {
        unchecked {
            _setWord(_m, OFF_PC, _pc);
            _setWord(_m, OFF_STEP, (_word(_m, OFF_STEP) + 1) & MASK64); // norm:step-count
            if (_rd != 0) _setWord(_m, OFF_REGS + 8 * _rd, _value);
            assembly ("memory-safe") {
                mstore8(add(_m, OFF_STATUS), _status)
                root_ := keccak256(_m, STATE_SIZE)
            }
        }
    }

    /// @notice regs[_i] of the state encoding at `_m`.
    function _reg(uint256 _m, uint256 _i) internal pure returns (uint256) {
        unchecked {
            return _word(_m, OFF_REGS + 8 * _i);
        }
    }

    /// @notice The sign-extended 32-bit immediate (little-endian in bytes 4..7) as a word.
    function _imm(uint256 _insn) internal pure returns (uint256 imm_) {
        imm_ = _bswap(_insn & 0xFFFFFFFF, 4);
        if (imm_ >> 31 != 0) imm_ |= 0xFFFFFFFF00000000;
    }

    /// @notice Reverse the byte order of the low `_size` (<= 8) bytes of `_x`.
    function _bswap(uint256 _x, uint256 _size) internal pure returns (uint256) {
        unchecked {
            uint256 x = _x << (8 * (8 - _size));
            x = ((x & 0xFF00FF00FF00FF00) >> 8) | ((x & 0x00FF00FF00FF00FF) << 8);
            x = ((x & 0xFFFF0000FFFF0000) >> 16) | ((x & 0x0000FFFF0000FFFF) << 16);
            return ((x >> 32) | (x << 32)) & MASK64;
        }
    }

    /// @notice The calldata offset of the witness bytes.
    function _offset(bytes calldata _witness) internal pure returns (uint256 p_) {
        assembly ("memory-safe") {
            p_ := _witness.offset
        }
    }

    /// @notice The 32 bytes of calldata at `_ptr` as a word.
    function _calldataWord(uint256 _ptr) internal pure returns (uint256 v_) {
        assembly ("memory-safe") {
            v_ := calldataload(_ptr)
        }
    }

    /// @notice The byte at `_off` of the state encoding at `_m`.
    function _byteAt(uint256 _m, uint256 _off) internal pure returns (uint256 v_) {
        assembly ("memory-safe") {
            v_ := byte(0, mload(add(_m, _off)))
        }
    }

    /// @notice The big-endian u64 at `_off` of the state encoding at `_m`.
    function _word(uint256 _m, uint256 _off) internal pure returns (uint256 v_) {
        assembly ("memory-safe") {
            v_ := shr(192, mload(add(_m, _off)))
        }
    }

    /// @notice Overwrite the big-endian u64 at `_off` of the state encoding at `_m`.
    function _setWord(uint256 _m, uint256 _off, uint256 _v) internal pure {
        assembly ("memory-safe") {
            let p := add(_m, _off)
            mstore(p, or(shr(64, shl(64, mload(p))), shl(192, _v)))
        }
    }

    /// @notice The memory root of the state encoding at `_m`.
    function _memRoot(uint256 _m) internal pure returns (bytes32 v_) {
        assembly ("memory-safe") {
            v_ := mload(add(_m, OFF_MEMROOT))
        }
    }

    /// @notice Overwrite the memory root of the state encoding at `_m`.
    function _setMemRoot(uint256 _m, bytes32 _root) internal pure {
        assembly ("memory-safe") {
            mstore(add(_m, OFF_MEMROOT), _root)
        }
    }
}
""")


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
    }
    return {SOURCE_NAME: _TEMPLATE.substitute(subs)}


def write_verifier(out_dir: str | Path) -> list[Path]:
    """Write the generated sources into ``out_dir`` (created if needed); return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, src in sorted(generate_verifier().items()):
        path = out / name
        path.write_text(src, encoding="utf-8", newline="\n")
        paths.append(path)
    return paths
