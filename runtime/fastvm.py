"""The fast VM: VM bytecode translated to native code with llvmlite, exact to the ISA.

:class:`FastVM` has the interface of :class:`opmlc_runtime.stepper.VM` (``core``,
``mem``, ``step``, ``run``, ``root``, ``encode``, ``witness``, ``copy``, ``running``,
``from_image``) plus :meth:`FastVM.run_to`, and ends every run in the state the
reference stepper would reach after the same number of steps (the stepper is the
definition; ``tests/test_fastvm.py`` checks it differentially).

Design. Code is translated in *segments*: the instructions statically reachable from an
entry pc (fallthrough, branch and ``jal`` targets, ``jal`` return addresses), stopping
at *barriers* (for an artifact: the node entries, so a segment is a node) and at a size
cap. A segment is one LLVM function ``i64 seg(ptr ctx)`` over the context words below;
its basic blocks are the VM basic blocks, registers live in allocas promoted to SSA by
mem2reg and are written back on exit. Step accounting is per block: a block of ``n``
steps runs only if the remaining budget is ``>= n``. The function returns to Python

* ``NEXT``: the pc is not a block entry of this segment (another segment, a branch out
  of the translated code, a ``jalr`` to an unknown pc);
* ``BUDGET``: the next block has more steps than the budget left; Python single-steps
  the rest with the reference stepper (at most one block);
* ``SLOW``: the next instruction needs exact slow handling, done by one step of the
  reference stepper: ``halt``, an illegal instruction, a misaligned access, an access
  outside the dense buffer ``[0, mem.allocated)`` (sparse memory, growth, FAULT_ADDR),
  or a store into translated code (after which changed code is retranslated).

Every store sets a byte in a dirty-leaf map (and the lowest / highest leaf stored);
on exit Python hands the dirty leaves to ``Memory.mark_dirty`` so roots stay
incremental. Segments are cached in the process (by code bytes) and their machine code
on disk like :mod:`opmlc_runtime.native` (same cache folder; key: the IR text, host CPU
and features, optimisation level, LLVM version).
"""

from __future__ import annotations

import ctypes
import hashlib
from collections import OrderedDict
from collections.abc import Iterable

import numpy as np

from opmlc_runtime.isa import (
    INSTR_SIZE,
    LEAF_SIZE,
    MASK,
    NUM_REGS,
    Fmt,
    Instr,
    Status,
    decode,
    is_legal,
    s64,
)
from opmlc_runtime.merkle import Memory
from opmlc_runtime.state import CoreState, state_root
from opmlc_runtime.stepper import VM as _StepperVM
from opmlc_runtime.stepper import effective_address
from opmlc_runtime.stepper import step as _ref_step

__all__ = ["FastVM", "Segment", "clear_cache"]

# Context words (uint64): what a segment reads on entry and writes on exit.
C_REGS = 0  # regs[0..31]
C_PC = 32
C_BUDGET = 33  # in: steps allowed; out: steps left
C_BASE = 34  # address of mem.buffer
C_LIMIT = 35  # mem.allocated: the dense part [0, limit)
C_DMAP = 36  # address of the dirty-leaf byte map (one byte per dense leaf)
C_CODE_LO = 37  # stores into 8-byte words [code_lo, code_hi) exit (translated code)
C_CODE_HI = 38
C_DLO = 39  # in/out: lowest dirty leaf (MASK when none)
C_DHI = 40  # in/out: highest dirty leaf
C_WORDS = 48

NEXT, BUDGET, SLOW = 0, 1, 2
REASONS = ("NEXT", "BUDGET", "SLOW")

MAX_SEGMENT = 1 << 14  # instructions per segment (a node's code is far smaller)
MAX_RETRANSLATIONS = 16  # self-modifying code past this runs on the reference stepper
HOT_MISS = 64  # stepper steps at one untranslated block entry before it gets a segment
OPT = 2
_GEN_VERSION = "fastvm-1"  # bump when the emitted IR changes meaning
_Fn = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p)


# ---------------------------------------------------------------------------
# Discovery: which instructions a segment holds, and its basic blocks
# ---------------------------------------------------------------------------


def _read_word(mem: Memory, pc: int) -> bytes | None:
    """The instruction word at pc, or None when the fetch would fault (norm:fetch)."""
    if pc % INSTR_SIZE or pc + INSTR_SIZE > mem.size:
        return None
    if pc + INSTR_SIZE <= mem.allocated:
        return mem.buffer[pc : pc + INSTR_SIZE].tobytes()
    return mem.read(pc, INSTR_SIZE)


def _targets(pc: int, word: bytes) -> tuple[list[int], bool, bool]:
    """(static successors, falls through, ends the block) of a legal instruction."""
    d = decode(word)
    ins = d.instr
    nxt = (pc + INSTR_SIZE) & MASK
    if ins is None or not is_legal(d) or ins.fmt is Fmt.SYS:
        return [], False, True
    if ins.fmt is Fmt.BRANCH:
        return [(pc + d.imm) & MASK, nxt], True, True
    if ins.fmt is Fmt.JAL:
        return [(pc + d.imm) & MASK, nxt], False, True  # nxt: the return address
    if ins.fmt is Fmt.JALR:
        return [], False, True  # dynamic target: found at run time
    return [nxt], True, False


def discover(mem: Memory, entry: int, barriers: Iterable[int] = (),
             cap: int = MAX_SEGMENT) -> tuple[dict[int, bytes], set[int]]:
    """The instructions reachable from ``entry`` without crossing a barrier (at most
    ``cap`` of them) and the block leaders among them."""
    stop = set(barriers) - {entry}
    words: dict[int, bytes] = {}
    leaders = {entry}
    work = [entry]
    while work and len(words) < cap:
        pc = work.pop()
        if pc in words or pc in stop:
            continue
        w = _read_word(mem, pc)
        if w is None:
            continue
        words[pc] = w
        succ, _falls, ends = _targets(pc, w)
        if ends:
            leaders.update(succ)
        # fallthrough last so it is explored first (code stays roughly in order)
        work.extend(reversed(succ))
    leaders &= set(words)
    return words, leaders


def _blocks(words: dict[int, bytes], leaders: set[int]) -> list[tuple[int, list[int]]]:
    """[(leader, [pcs of the block])]: a block runs from a leader to the first control
    transfer, halt, illegal instruction, next leader or untranslated pc."""
    out = []
    for lead in sorted(leaders):
        pcs = [lead]
        pc = lead
        while True:
            _succ, _falls, ends = _targets(pc, words[pc])
            if ends:
                break
            nxt = (pc + INSTR_SIZE) & MASK
            if nxt in leaders or nxt not in words:
                break
            pcs.append(nxt)
            pc = nxt
        out.append((lead, pcs))
    return out


# ---------------------------------------------------------------------------
# LLVM IR emission
# ---------------------------------------------------------------------------


def _c(v: int) -> str:
    """An i64 constant as LLVM prints it (signed)."""
    return str(s64(v & MASK))


class _Emitter:
    """Builds the text of one segment function."""

    def __init__(self, words: dict[int, bytes], leaders: set[int]) -> None:
        self.words, self.leaders = words, leaders
        self.lines: list[str] = []
        self.n = 0

    def tmp(self) -> str:
        self.n += 1
        return f"%t{self.n}"

    def emit(self, s: str) -> None:
        self.lines.append("  " + s)

    def label(self, name: str) -> None:
        self.lines.append(f"{name}:")

    # --- registers ------------------------------------------------------------------

    def get(self, r: int) -> str:
        if r == 0:
            return "0"
        t = self.tmp()
        self.emit(f"{t} = load i64, ptr %r{r}")
        return t

    def put(self, r: int, v: str) -> None:
        if r != 0:
            self.emit(f"store i64 {v}, ptr %r{r}")

    def op(self, text: str) -> str:
        t = self.tmp()
        self.emit(f"{t} = {text}")
        return t

    # --- exits ------------------------------------------------------------------------

    def exit_to(self, reason: int, pc: str, refund: int) -> None:
        """Leave with ``reason`` at ``pc``, giving back ``refund`` unexecuted steps."""
        if refund:
            b = self.op("load i64, ptr %bud")
            b2 = self.op(f"add i64 {b}, {refund}")
            self.emit(f"store i64 {b2}, ptr %bud")
        self.emit(f"store i64 {pc}, ptr %xpc")
        self.emit(f"store i64 {reason}, ptr %xwhy")
        self.emit("br label %exit")

    def goto(self, target: int) -> None:
        """Continue at a constant pc: a block of this segment, else exit NEXT."""
        if target in self.leaders:
            self.emit(f"br label %b{target}")
        else:
            self.exit_to(NEXT, _c(target), 0)

    # --- semantics --------------------------------------------------------------------

    def alu(self, ins: Instr, a: str, b: str, d: str | None) -> str:
        """rd for the R/I/U rows (b is the second operand: rs2, or the immediate)."""
        m = ins.mnemonic
        simple = {"add": "add", "addi": "add", "sub": "sub", "mul": "mul", "and": "and",
                  "andi": "and", "or": "or", "xor": "xor"}
        if m in simple:
            return self.op(f"{simple[m]} i64 {a}, {b}")
        if m == "mulh":
            x = self.op(f"sext i64 {a} to i128")
            y = self.op(f"sext i64 {b} to i128")
            p = self.op(f"mul i128 {x}, {y}")
            h = self.op(f"ashr i128 {p}, 64")
            return self.op(f"trunc i128 {h} to i64")
        if m in ("sll", "slli", "srl", "srli"):
            k = self.op(f"and i64 {b}, 63")
            s = self.op(f"{'shl' if m.startswith('sll') else 'lshr'} i64 {a}, {k}")
            big = self.op(f"icmp uge i64 {b}, 64")
            return self.op(f"select i1 {big}, i64 0, i64 {s}")
        if m in ("sra", "srai"):
            k = self.op(f"call i64 @llvm.umin.i64(i64 {b}, i64 63)")
            return self.op(f"ashr i64 {a}, {k}")
        if m in ("srar", "srari"):
            k = self.op(f"and i64 {b}, 63")
            k1 = self.op(f"and i64 {self.op(f'add i64 {b}, 63')}, 63")  # (b - 1) & 63
            q = self.op(f"ashr i64 {a}, {k}")
            h = self.op(f"and i64 {self.op(f'ashr i64 {a}, {k1}')}, 1")
            r = self.op(f"add i64 {q}, {h}")
            big = self.op(f"icmp uge i64 {b}, 64")
            r = self.op(f"select i1 {big}, i64 0, i64 {r}")
            zero = self.op(f"icmp eq i64 {b}, 0")
            return self.op(f"select i1 {zero}, i64 {a}, i64 {r}")
        if m in ("slt", "sltu"):
            c = self.op(f"icmp {'slt' if m == 'slt' else 'ult'} i64 {a}, {b}")
            return self.op(f"zext i1 {c} to i64")
        if m in ("min", "max"):
            return self.op(f"call i64 @llvm.s{m}.i64(i64 {a}, i64 {b})")
        if m == "div":
            z = self.op(f"icmp eq i64 {b}, 0")
            mn = self.op(f"icmp eq i64 {a}, {-(1 << 63)}")
            m1 = self.op(f"icmp eq i64 {b}, -1")
            ov = self.op(f"and i1 {mn}, {m1}")
            one = self.op(f"or i1 {z}, {ov}")
            y = self.op(f"select i1 {one}, i64 1, i64 {b}")  # MIN / 1 == MIN: the wrap
            q = self.op(f"sdiv i64 {a}, {y}")
            return self.op(f"select i1 {z}, i64 0, i64 {q}")
        if m == "cmov":
            c = self.op(f"icmp ne i64 {b}, 0")
            return self.op(f"select i1 {c}, i64 {a}, i64 {d}")
        if m in ("sat", "satu"):
            n = s64(int(b) & MASK)
            if m == "sat":
                n = min(max(n, 1), 64)
                lo, hi = -(1 << (n - 1)), (1 << (n - 1)) - 1
            else:
                n = min(max(n, 0), 63)
                lo, hi = 0, (1 << n) - 1
            t = self.op(f"call i64 @llvm.smax.i64(i64 {a}, i64 {lo})")
            return self.op(f"call i64 @llvm.smin.i64(i64 {t}, i64 {hi})")
        if m == "lih":
            lo = self.op(f"and i64 {d}, 4294967295")
            return self.op(f"or i64 {lo}, {_c((int(b) & 0xFFFFFFFF) << 32)}")
        raise AssertionError(f"no translation for {m}")  # pragma: no cover

    def mem_check(self, ea: str, size: int, store: bool, xlabel: str) -> None:
        """Branch to ``xlabel`` (a SLOW exit) unless the access is aligned, inside the
        dense buffer and (for a store) outside translated code."""
        bad = self.op(f"icmp ugt i64 {ea}, {self.limit[size]}")
        if size > 1:
            al = self.op(f"and i64 {ea}, {size - 1}")
            bad = self.op(f"or i1 {bad}, {self.op(f'icmp ne i64 {al}, 0')}")
        if store:
            wd = self.op(f"lshr i64 {ea}, 3")  # in 8-byte words: the top word fits
            off = self.op(f"sub i64 {wd}, %clo")
            bad = self.op(f"or i1 {bad}, {self.op(f'icmp ult i64 {off}, %clen')}")
        ok = f"%ok{self.n}"
        self.emit(f"br i1 {bad}, label {xlabel}, label {ok}, !prof !0")
        self.label(ok[1:])

    def instr(self, pc: int, idx: int, nblock: int, last: bool) -> None:
        """One instruction of a block (index ``idx`` of ``nblock``)."""
        d = decode(self.words[pc])
        ins = d.instr
        assert ins is not None
        fmt = ins.fmt
        nxt = (pc + INSTR_SIZE) & MASK
        imm = _c(d.imm)
        if fmt in (Fmt.R, Fmt.I, Fmt.U):
            a = self.get(d.rs1) if fmt is not Fmt.U else "0"
            b = self.get(d.rs2) if fmt is Fmt.R else imm
            old = self.get(d.rd) if (ins.reads_rd or fmt is Fmt.U) else None
            if d.rd != 0:
                self.put(d.rd, self.alu(ins, a, b, old))
        elif fmt in (Fmt.LOAD, Fmt.STORE):
            xl = f"%x{pc}"
            ea = self.op(f"add i64 {self.get(d.rs1)}, {imm}")
            self.mem_check(ea, ins.size, fmt is Fmt.STORE, xl)
            p = self.op(f"getelementptr i8, ptr %base, i64 {ea}")
            ty = f"i{8 * ins.size}"
            if fmt is Fmt.LOAD:
                v = self.op(f"load {ty}, ptr {p}, align 1")
                if ins.size < 8:
                    v = self.op(f"{'sext' if ins.signed else 'zext'} {ty} {v} to i64")
                self.put(d.rd, v)
            else:
                v = self.get(d.rs2)
                if ins.size < 8:
                    v = self.op(f"trunc i64 {v} to {ty}")
                self.emit(f"store {ty} {v}, ptr {p}, align 1")
                leaf = self.op(f"lshr i64 {ea}, 5")
                slot = self.op(f"getelementptr i8, ptr %dmap, i64 {leaf}")
                self.emit(f"store i8 1, ptr {slot}")
                for var, fn in (("dlo", "umin"), ("dhi", "umax")):
                    cur = self.op(f"load i64, ptr %{var}")
                    new = self.op(f"call i64 @llvm.{fn}.i64(i64 {cur}, i64 {leaf})")
                    self.emit(f"store i64 {new}, ptr %{var}")
            self.slow_stubs.append((pc, nblock - idx))
        elif fmt is Fmt.BRANCH:
            a, b = self.get(d.rs1), self.get(d.rs2)
            pred = {"beq": "eq", "bne": "ne", "blt": "slt", "bltu": "ult"}[ins.mnemonic]
            c = self.op(f"icmp {pred} i64 {a}, {b}")
            yes, no = f"bt{pc}", f"bf{pc}"
            self.emit(f"br i1 {c}, label %{yes}, label %{no}")
            self.label(yes)
            self.goto((pc + d.imm) & MASK)
            self.label(no)
            self.goto(nxt)
            return
        elif fmt is Fmt.JAL:
            self.put(d.rd, _c(nxt))
            self.goto((pc + d.imm) & MASK)
            return
        elif fmt is Fmt.JALR:
            t = self.op(f"add i64 {self.get(d.rs1)}, {imm}")
            self.put(d.rd, _c(nxt))
            self.emit(f"store i64 {t}, ptr %dpc")
            self.emit("br label %dispatch")
            return
        if last:
            self.goto(nxt)

    def block(self, lead: int, pcs: list[int]) -> None:
        last_word = self.words[pcs[-1]]
        d = decode(last_word)
        static_slow = d.instr is None or not is_legal(d) or d.instr.fmt is Fmt.SYS
        run = pcs[:-1] if static_slow else pcs
        n = len(run)
        self.label(f"b{lead}")
        if n:
            b = self.op("load i64, ptr %bud")
            ok = self.op(f"icmp uge i64 {b}, {n}")
            self.emit(f"br i1 {ok}, label %g{lead}, label %s{lead}, !prof !1")
            self.label(f"s{lead}")
            self.exit_to(BUDGET, _c(lead), 0)
            self.label(f"g{lead}")
            self.emit(f"store i64 {self.op(f'sub i64 {b}, {n}')}, ptr %bud")
        for i, pc in enumerate(run):
            self.instr(pc, i, n, last=(i == n - 1 and not static_slow))
        if static_slow:  # halt / illegal: the stepper takes this step
            self.exit_to(SLOW, _c(pcs[-1]), 0)

    def function(self) -> str:
        self.slow_stubs: list[tuple[int, int]] = []
        self.limit = {}
        head = ["define i64 @seg(ptr %ctx) {", "entry:"]
        self.lines = []
        for r in range(1, NUM_REGS):
            self.emit(f"%r{r} = alloca i64")
        for v in ("bud", "dlo", "dhi", "dpc", "xpc", "xwhy"):
            self.emit(f"%{v} = alloca i64")

        def word(i: int, name: str) -> None:
            self.emit(f"%{name}p = getelementptr i64, ptr %ctx, i64 {i}")
            self.emit(f"%{name} = load i64, ptr %{name}p")

        for r in range(1, NUM_REGS):
            word(C_REGS + r, f"i{r}")
            self.emit(f"store i64 %i{r}, ptr %r{r}")
        for i, name in ((C_PC, "pc0"), (C_BUDGET, "bud0"), (C_BASE, "basei"),
                        (C_LIMIT, "lim"), (C_DMAP, "dmapi"), (C_CODE_LO, "clo"),
                        (C_CODE_HI, "chi"), (C_DLO, "dlo0"), (C_DHI, "dhi0")):
            word(i, name)
        self.emit("%base = inttoptr i64 %basei to ptr")
        self.emit("%dmap = inttoptr i64 %dmapi to ptr")
        self.emit("%clen = sub i64 %chi, %clo")
        for size in (1, 2, 4, 8):  # ea + size <= lim  <=>  ea <= lim - size  (lim >= 64)
            self.emit(f"%lim{size} = sub i64 %lim, {size}")
            self.limit[size] = f"%lim{size}"
        self.emit("store i64 %bud0, ptr %bud")
        self.emit("store i64 %dlo0, ptr %dlo")
        self.emit("store i64 %dhi0, ptr %dhi")
        self.emit("store i64 %pc0, ptr %dpc")
        self.emit("br label %dispatch")
        self.label("dispatch")
        self.emit("%dp = load i64, ptr %dpc")
        cases = " ".join(f"i64 {_c(p)}, label %b{p}" for p in sorted(self.leaders))
        self.emit(f"switch i64 %dp, label %miss [ {cases} ]")
        self.label("miss")
        self.exit_to(NEXT, "%dp", 0)
        for lead, pcs in _blocks(self.words, self.leaders):
            self.block(lead, pcs)
        for pc, refund in self.slow_stubs:
            self.label(f"x{pc}")
            self.exit_to(SLOW, _c(pc), refund)
        self.label("exit")
        for r in range(1, NUM_REGS):
            v = self.get(r)
            self.emit(f"store i64 {v}, ptr %i{r}p")
        for name, slot in (("xpc", "pc0p"), ("bud", "bud0p"), ("dlo", "dlo0p"),
                           ("dhi", "dhi0p")):
            self.emit(f"store i64 {self.op(f'load i64, ptr %{name}')}, ptr %{slot}")
        self.emit(f"ret i64 {self.op('load i64, ptr %xwhy')}")
        tail = ["}", "",
                "declare i64 @llvm.umin.i64(i64, i64)", "declare i64 @llvm.umax.i64(i64, i64)",
                "declare i64 @llvm.smin.i64(i64, i64)", "declare i64 @llvm.smax.i64(i64, i64)",
                '!0 = !{!"branch_weights", i32 1, i32 1000000}',
                '!1 = !{!"branch_weights", i32 1000000, i32 1}', ""]
        return "\n".join(head + self.lines + tail)


def segment_ir(words: dict[int, bytes], leaders: set[int]) -> str:
    """The LLVM IR of one segment: ``i64 seg(ptr ctx)`` (see the module docstring)."""
    return f"; opmlc fast VM segment ({_GEN_VERSION})\n" + _Emitter(words, leaders).function()


# ---------------------------------------------------------------------------
# Compilation and caches
# ---------------------------------------------------------------------------


class Segment:
    """A translated segment: its instructions (as fetched), leaders and native function."""

    def __init__(self, words: dict[int, bytes], leaders: set[int]) -> None:
        import llvmlite.binding as llvm

        from opmlc_runtime.native import _init, jit_engine, object_cache

        _init()
        self.words, self.leaders = words, frozenset(leaders)
        self.lo = min(words)
        self.hi = max(words) + INSTR_SIZE
        ir = segment_ir(words, leaders)
        target = llvm.Target.from_default_triple()
        cpu, feats = llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()
        self._tm = target.create_target_machine(cpu=cpu, features=feats, opt=OPT)
        cached, save = object_cache(ir, cpu, feats, OPT, target.triple, prefix="fastvm-")
        self.cache_hit = cached is not None
        mod = llvm.parse_assembly(ir)
        mod.verify()
        self._engine = jit_engine(llvm, mod, self._tm, OPT, cached, save)
        self.fn = _Fn(self._engine.get_function_address("seg"))


_SEGMENTS: OrderedDict[bytes, Segment] = OrderedDict()
_SEGMENTS_MAX = 256


def clear_cache() -> None:
    """Forget the in-process segment cache (the disk cache stays)."""
    _SEGMENTS.clear()


def get_segment(words: dict[int, bytes], leaders: set[int]) -> Segment:
    """The compiled segment for these instructions (in-process cache by code bytes)."""
    h = hashlib.sha256()
    for pc in sorted(words):
        h.update(pc.to_bytes(8, "little") + words[pc] + (b"L" if pc in leaders else b"."))
    key = h.digest()
    seg = _SEGMENTS.get(key)
    if seg is None:
        seg = Segment(words, leaders)
        _SEGMENTS[key] = seg
        while len(_SEGMENTS) > _SEGMENTS_MAX:
            _SEGMENTS.popitem(last=False)
    else:
        _SEGMENTS.move_to_end(key)
    return seg


# ---------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------


class FastVM:
    """A machine (core state plus Merkle memory) run by translated code; after any
    call, ``core`` and ``mem`` equal what the reference stepper would produce.

    ``barriers``: pcs where translated segments end (e.g. the node entries of an
    artifact), so that each is the entry of its own segment and a run can stop there
    without single-stepping.
    """

    def __init__(self, mem: Memory, pc: int = 0, barriers: Iterable[int] = ()) -> None:
        self.mem = mem
        self.core = CoreState(pc=pc, depth=mem.depth)
        self.barriers = frozenset(barriers)
        self._entries: dict[int, Segment] = {}  # leader pc -> segment
        self._segments: list[Segment] = []
        self._misses: dict[int, int] = {}
        self._retranslations = 0
        self._ctx = np.zeros(C_WORDS, dtype=np.uint64)
        self._dmap = np.zeros(0, dtype=np.uint8)
        self.stats = {"jit_calls": 0, "jit_steps": 0, "ref_steps": 0, "segments": 0}

    @classmethod
    def from_image(cls, image: bytes, depth: int, pc: int = 0, base: int = 0,
                   barriers: Iterable[int] = ()) -> FastVM:
        """A VM whose memory holds ``image`` at address ``base`` and zeros elsewhere."""
        mem = Memory(depth, size_hint=base + len(image))
        mem.load_image(base, image)
        return cls(mem, pc, barriers)

    # --- the stepper VM's interface ------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.core.status == Status.RUNNING

    def step(self) -> None:
        self.run(1)

    def root(self) -> bytes:
        """The state root: ``keccak256(encoding(core, memory root))``."""
        return state_root(self.core, self.mem.root())

    def encode(self) -> bytes:
        return self.core.encode(self.mem.root())

    def witness(self) -> bytes:
        """The one-step witness from the current state (the stepper VM's)."""
        return self._as_stepper().witness()

    def _as_stepper(self) -> _StepperVM:
        vm = _StepperVM.__new__(_StepperVM)
        vm.mem, vm.core = self.mem, self.core
        return vm

    def copy(self) -> FastVM:
        """An independent machine in the same state (translations are shared)."""
        vm = FastVM.__new__(FastVM)
        vm.__dict__.update(self.__dict__)
        vm.mem = self.mem.copy()
        vm.core = self.core.copy()
        vm._entries = dict(self._entries)
        vm._segments = list(self._segments)
        vm._misses = dict(self._misses)
        vm._ctx = self._ctx.copy()
        vm._dmap = np.zeros(0, dtype=np.uint8)
        vm.stats = dict(self.stats)
        return vm

    def run_to(self, step: int) -> int:
        """Run until the step counter reads ``step`` (or the machine stops first);
        returns the steps taken. ``step`` before the current one is an error."""
        if step < self.core.step:
            raise ValueError(f"cannot run back from step {self.core.step} to {step}")
        return self.run(step - self.core.step)

    def run(self, max_steps: int | None = None) -> int:
        """Step until the machine stops or ``max_steps`` steps were taken; returns the
        steps taken (exactly as the reference stepper's ``VM.run``)."""
        core = self.core
        if core.status != Status.RUNNING or max_steps == 0:
            return 0
        if core.regs[0] != 0 or core.depth != self.mem.depth:
            raise ValueError("malformed state: r0 must be 0 and depth must match memory "
                             "(norm:state-valid)")
        left = (1 << 62) if max_steps is None else int(max_steps)
        done = 0
        while core.status == Status.RUNNING and left > 0:
            seg = self._entries.get(core.pc)
            if seg is None:
                seg = self._maybe_translate(core.pc)
            if seg is None:
                self._ref_step()
                done += 1
                left -= 1
                continue
            n, why = self._call(seg, left)
            done += n
            left -= n
            if why == BUDGET:  # fewer steps left than the next block: single-step them
                while left > 0 and core.status == Status.RUNNING:
                    self._ref_step()
                    done += 1
                    left -= 1
            elif why == SLOW and left > 0:  # (a halt right after a block may be past it)
                self._ref_step()
                done += 1
                left -= 1
        return done

    # --- internals ------------------------------------------------------------------------

    def _maybe_translate(self, pc: int) -> Segment | None:
        """A segment entered at pc, translated now unless pc sits inside translated code
        (a mid-block entry: single-stepped, unless it gets hot) or translation gave up."""
        if self._retranslations > MAX_RETRANSLATIONS:
            return None
        if any(s.lo <= pc < s.hi and pc in s.words for s in self._segments):
            k = self._misses.get(pc, 0) + 1
            self._misses[pc] = k
            if k < HOT_MISS:
                return None
        if _read_word(self.mem, pc) is None:
            return None  # the fetch faults: the stepper says how
        words, leaders = discover(self.mem, pc, self.barriers)
        seg = get_segment(words, leaders)
        self._segments.append(seg)
        for p in seg.leaders:
            self._entries.setdefault(p, seg)
        self._entries[pc] = seg
        self.stats["segments"] += 1
        return seg

    def _ref_step(self) -> None:
        """One step of the reference stepper; a store into translated code drops the
        segments whose instructions changed."""
        core, mem = self.core, self.mem
        ea = None
        if self._segments and core.pc % INSTR_SIZE == 0 and core.pc + INSTR_SIZE <= mem.size:
            d = decode(mem.read(core.pc, INSTR_SIZE))
            if d.instr is not None and d.instr.fmt is Fmt.STORE and is_legal(d):
                ea = effective_address(core, d)
        _ref_step(core, mem)
        self.stats["ref_steps"] += 1
        if ea is not None and core.status == Status.RUNNING:
            self._check_code(ea & ~(INSTR_SIZE - 1))

    def _check_code(self, word_pc: int) -> None:
        """Drop the segments whose instruction at ``word_pc`` no longer matches memory."""
        stale = [s for s in self._segments if word_pc in s.words
                 and _read_word(self.mem, word_pc) != s.words[word_pc]]
        if not stale:
            return
        self._retranslations += 1
        self._segments = [s for s in self._segments if s not in stale]
        self._entries = {p: s for p, s in self._entries.items() if s not in stale}
        for s in self._segments:  # leaders a dropped segment had claimed
            for p in s.leaders:
                self._entries.setdefault(p, s)

    def _call(self, seg: Segment, budget: int) -> tuple[int, int]:
        """Run ``seg`` from core.pc for at most ``budget`` steps; (steps, reason)."""
        core, mem, ctx = self.core, self.mem, self._ctx
        buf = mem.buffer
        nleaves = len(buf) // LEAF_SIZE
        if len(self._dmap) != nleaves:
            self._dmap = np.zeros(nleaves, dtype=np.uint8)
        ctx[C_REGS : C_REGS + NUM_REGS] = core.regs
        ctx[C_PC] = core.pc
        ctx[C_BUDGET] = budget
        ctx[C_BASE] = buf.ctypes.data
        ctx[C_LIMIT] = len(buf)
        ctx[C_DMAP] = self._dmap.ctypes.data
        lo = min(s.lo for s in self._segments)
        hi = max(s.hi for s in self._segments)
        ctx[C_CODE_LO] = lo // INSTR_SIZE
        ctx[C_CODE_HI] = hi // INSTR_SIZE
        ctx[C_DLO] = MASK
        ctx[C_DHI] = 0
        why = seg.fn(ctx.ctypes.data)
        left = int(ctx[C_BUDGET])
        n = budget - left
        core.regs = [int(v) for v in ctx[C_REGS : C_REGS + NUM_REGS]]
        core.pc = int(ctx[C_PC])
        core.step = (core.step + n) & MASK
        self._flush(int(ctx[C_DLO]), int(ctx[C_DHI]))
        self.stats["jit_calls"] += 1
        self.stats["jit_steps"] += n
        return n, why

    def _flush(self, lo: int, hi: int) -> None:
        """Report the leaves stored to since the call to Memory (runs of dirty leaves,
        joining gaps under 64 leaves), then clear the map."""
        if lo > hi:
            return
        part = self._dmap[lo : hi + 1]
        idx = np.flatnonzero(part)
        part[:] = 0
        if len(idx) == 0:
            return
        cut = np.flatnonzero(np.diff(idx) > 64)
        starts = np.concatenate(([idx[0]], idx[cut + 1])) + lo
        ends = np.concatenate((idx[cut], [idx[-1]])) + lo + 1
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            self.mem.mark_dirty(a * LEAF_SIZE, (b - a) * LEAF_SIZE)
