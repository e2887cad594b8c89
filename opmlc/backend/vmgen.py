"""Kernel IR -> VM bytecode, with the exact step count of every node known statically.

Code shape of one node (``gen_node``)::

    entry:  for each top-level statement:
                li   p_s, base_s             # one pointer register per address stream
                <statement>
            addi r, r0, 0   for every register the node used (canonical boundary)
            (falls through to the next node's entry)

    loop of extent n:       li   c, -n
                      top:  <body>
                            addi p_s, p_s, stride_s      # streams that move with this loop
                            addi c, c, 1
                            bne  c, r0, top              # the only branch: on the counter
                            addi p_s, p_s, -n * stride_s # rewind

``Idx(l)`` is ``c_l + n_l``. Address streams are strength-reduced: every load and
store is ``0(p)`` (plus a scaled dynamic index for gathers), so a copy costs three
steps per element plus loop overhead. Constants that fit 32 signed bits use the
immediate forms (``addi``, ``slli``, ``srari``, ``sat`` ...); others ``addi`` + ``lih``.

Steps are counted while emitting: straight-line code counts one per instruction and a
loop multiplies its body; tests run the reference stepper to confirm every count.
"""

from __future__ import annotations

from dataclasses import dataclass

from opmlc.backend.kernel import (
    DTYPE_INFO,
    Addr,
    Const,
    Expr,
    Idx,
    Kernel,
    Let,
    Load,
    Loop,
    Op,
    Stmt,
    Store,
    Var,
)
from opmlc_runtime.isa import BY_MNEMONIC, INSTR_SIZE, NUM_REGS, encode

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1
_LOAD = {(1, True): "lb", (1, False): "lbu", (2, True): "lh", (2, False): "lhu",
         (4, True): "lw", (4, False): "lwu", (8, True): "ld", (8, False): "ld"}
_STORE = {1: "sb", 2: "sh", 4: "sw", 8: "sd"}
_IMM_FORM = {"add": "addi", "and": "andi", "sll": "slli", "srl": "srli", "sra": "srai",
             "srar": "srari"}


class CodegenError(ValueError):
    """A kernel the VM code generator cannot emit (e.g. too many live registers)."""


def _fits(v: int) -> bool:
    return I32_MIN <= v <= I32_MAX


@dataclass
class NodeCode:
    code: bytes
    steps: int
    regs_used: tuple[int, ...]


class _Gen:
    def __init__(self, origin: int, name: str) -> None:
        self.origin = origin
        self.name = name
        self.words: list[bytes] = []
        self.steps = 0
        self.free = list(range(1, NUM_REGS))
        self.used: set[int] = set()
        self.counters: list[tuple[int, int]] = []  # (register, extent) per open loop level
        self.loop_ids: list[int] = []
        self.streams: dict[tuple, int] = {}  # stream key -> pointer register
        self.stream_moves: dict[int, list[tuple[int, int]]] = {}  # loop id -> [(reg, stride)]
        self.vars: dict[str, int] = {}  # Let variables live for the whole node
        self._next_loop = 0

    # --- emission --------------------------------------------------------------------

    @property
    def pc(self) -> int:
        return self.origin + INSTR_SIZE * len(self.words)

    def emit(self, mn: str, rd: int = 0, rs1: int = 0, rs2: int = 0, imm: int = 0) -> None:
        self.words.append(encode(BY_MNEMONIC[mn].opcode, rd, rs1, rs2, imm))
        self.steps += 1

    def li(self, rd: int, v: int) -> None:
        """rd = v (64-bit): addi rd, r0, lo (+ lih rd, hi unless v fits sext(32))."""
        v &= (1 << 64) - 1
        lo = v & 0xFFFFFFFF
        lo_s = lo - (1 << 32) if lo >> 31 else lo
        self.emit("addi", rd, 0, 0, lo_s)
        if (lo_s & ((1 << 64) - 1)) != v:
            hi = v >> 32
            self.emit("lih", rd, 0, 0, hi - (1 << 32) if hi >> 31 else hi)

    def add_const(self, rd: int, rs: int, v: int) -> None:
        """rd = rs + v."""
        if v == 0 and rd == rs:
            return
        if _fits(v):
            self.emit("addi", rd, rs, 0, v)
        else:
            t = self.alloc()
            self.li(t, v)
            self.emit("add", rd, rs, t)
            self.release(t)

    # --- registers -------------------------------------------------------------------

    def alloc(self) -> int:
        if not self.free:
            raise CodegenError(f"node {self.name}: kernel needs more than {NUM_REGS - 1} "
                               "registers (too many loops / address streams)")
        r = self.free.pop(0)
        self.used.add(r)
        return r

    def release(self, r: int) -> None:
        if r != 0 and r not in self.free:
            self.free.append(r)
            self.free.sort()

    # --- streams ---------------------------------------------------------------------

    def _stream_key(self, a: Addr) -> tuple:
        return (a.base, a.terms, tuple(self.loop_ids[lv] for lv, _ in a.terms))

    def _collect(self, stmts: tuple[Stmt, ...] | list[Stmt], path: list[int],
                 out: dict[tuple, tuple[Addr, tuple[int, ...]]]) -> None:
        """Assign loop ids in emission order and gather address streams."""
        def addr(a: Addr) -> None:
            for lv, _ in a.terms:
                if lv >= len(path):
                    raise CodegenError(f"node {self.name}: address uses loop level {lv} "
                                       f"outside its {len(path)} enclosing loops")
            key = (a.base, a.terms, tuple(path[lv] for lv, _ in a.terms))
            out.setdefault(key, (a, tuple(path[lv] for lv, _ in a.terms)))
            for d, _ in a.dyn:
                expr(d)

        def expr(e: Expr) -> None:
            if isinstance(e, Load):
                addr(e.addr)
            elif isinstance(e, Op):
                for x in e.args:
                    expr(x)

        for s in stmts:
            if isinstance(s, Loop):
                lid = self._next_loop
                self._next_loop += 1
                self._loop_order.append(lid)
                self._collect(s.body, path + [lid], out)
            elif isinstance(s, Store):
                addr(s.addr)
                expr(s.value)
            else:
                expr(s.value)

    # --- statements ------------------------------------------------------------------

    def top(self, s: Stmt) -> None:
        streams: dict[tuple, tuple[Addr, tuple[int, ...]]] = {}
        self._loop_order: list[int] = []
        first = self._next_loop
        self._collect([s], [], streams)
        self._next_loop = first  # re-assigned identically during emission
        self.streams, self.stream_moves = {}, {}
        for key, (a, lids) in streams.items():
            r = self.alloc()
            self.streams[key] = r
            self.li(r, a.base)
            for (_, stride), lid in zip(a.terms, lids, strict=True):
                self.stream_moves.setdefault(lid, []).append((r, stride))
        self.stmt(s)
        for r in self.streams.values():
            self.release(r)

    def stmt(self, s: Stmt) -> None:
        if isinstance(s, Loop):
            self.loop(s)
        elif isinstance(s, Let):
            if s.name not in self.vars:
                self.vars[s.name] = self.alloc()
            rd = self.vars[s.name]
            r, tmp = self.ev(s.value)
            if r != rd:
                self.emit("addi", rd, r, 0, 0)
            if tmp:
                self.release(r)
        elif isinstance(s, Store):
            v, vt = self.ev(s.value)
            p, pt = self.address(s.addr)
            size, _ = DTYPE_INFO[s.dtype]
            self.emit(_STORE[size], 0, p, v, 0)
            for r, t in ((v, vt), (p, pt)):
                if t:
                    self.release(r)
        else:
            raise TypeError(s)

    def loop(self, s: Loop) -> None:
        lid = self._next_loop
        self._next_loop += 1
        n = s.extent
        if n <= 0:
            self._skip(s.body)
            return
        c = self.alloc()
        self.li(c, -n)
        start_pc, start_steps = self.pc, self.steps
        self.counters.append((c, n))
        self.loop_ids.append(lid)
        for b in s.body:
            self.stmt(b)
        moves = self.stream_moves.get(lid, [])
        for r, stride in moves:
            self.add_const(r, r, stride)
        self.emit("addi", c, c, 0, 1)
        self.emit("bne", 0, c, 0, start_pc - self.pc)
        self.steps += (n - 1) * (self.steps - start_steps)
        self.counters.pop()
        self.loop_ids.pop()
        self.release(c)
        for r, stride in moves:
            self.add_const(r, r, -n * stride)

    def _skip(self, body: tuple[Stmt, ...]) -> None:
        for b in body:
            if isinstance(b, Loop):
                self._next_loop += 1
                self._skip(b.body)

    # --- expressions -----------------------------------------------------------------

    def address(self, a: Addr) -> tuple[int, bool]:
        """Register holding the address of ``a`` (the stream pointer, or a temp)."""
        p = self.streams[self._stream_key(a)]
        if not a.dyn:
            return p, False
        acc = None
        for d, stride in a.dyn:
            r, t = self.ev(d)
            dst = r if t else self.alloc()
            if stride & (stride - 1) == 0 and stride > 0:
                self.emit("slli", dst, r, 0, stride.bit_length() - 1)
            else:
                k = self.alloc()
                self.li(k, stride)
                self.emit("mul", dst, r, k)
                self.release(k)
            if acc is None:
                acc = dst
            else:
                self.emit("add", acc, acc, dst)
                self.release(dst)
        self.emit("add", acc, acc, p)
        return acc, True

    def ev(self, e: Expr) -> tuple[int, bool]:
        """Evaluate ``e``; returns (register, is_temporary)."""
        if isinstance(e, Const):
            if e.value == 0:
                return 0, False
            r = self.alloc()
            self.li(r, e.value)
            return r, True
        if isinstance(e, Idx):
            c, n = self.counters[e.level]
            r = self.alloc()
            self.add_const(r, c, n)
            return r, True
        if isinstance(e, Var):
            return self.vars[e.name], False
        if isinstance(e, Load):
            p, pt = self.address(e.addr)
            r = p if pt else self.alloc()
            self.emit(_LOAD[DTYPE_INFO[e.dtype]], r, p, 0, 0)
            return r, True
        if isinstance(e, Op):
            return self.op(e)
        raise TypeError(e)

    def _dest(self, *regs: tuple[int, bool]) -> int:
        for r, t in regs:
            if t:
                return r
        return self.alloc()

    def _done(self, dest: int, *regs: tuple[int, bool]) -> None:
        for r, t in regs:
            if t and r != dest:
                self.release(r)

    def op(self, e: Op) -> tuple[int, bool]:
        name, args = e.name, e.args
        if name in ("sat", "satu"):
            x = self.ev(args[0])
            n = args[1]
            assert isinstance(n, Const)
            d = self._dest(x)
            self.emit(name, d, x[0], 0, n.value)
            return d, True
        if name == "cmov":
            dv = self.ev(args[2])
            if dv[1]:
                d = dv[0]
            else:
                d = self.alloc()
                self.emit("addi", d, dv[0], 0, 0)
            a, c = self.ev(args[0]), self.ev(args[1])
            self.emit("cmov", d, a[0], c[0])
            self._done(d, a, c)
            return d, True
        b = args[1]
        if isinstance(b, Const) and name in ("add", "sub") + tuple(_IMM_FORM):
            v = -b.value if name == "sub" else b.value
            if _fits(v) and (name in ("add", "sub") or 0 <= v):
                x = self.ev(args[0])
                d = self._dest(x)
                self.emit("addi" if name in ("add", "sub") else _IMM_FORM[name], d, x[0], 0, v)
                return d, True
        x, y = self.ev(args[0]), self.ev(args[1])
        d = self._dest(x, y)
        self.emit(name, d, x[0], y[0])
        self._done(d, x, y)
        return d, True


def gen_node(kernel: Kernel, origin: int) -> NodeCode:
    """The code of one node at address ``origin``, its exact step count and registers."""
    g = _Gen(origin, kernel.name)
    for s in kernel.body:
        g.top(s)
    for r in sorted(g.used):
        g.emit("addi", r, 0, 0, 0)
    return NodeCode(b"".join(g.words), g.steps, tuple(sorted(g.used)))


def halt() -> bytes:
    return encode(BY_MNEMONIC["halt"].opcode)


__all__ = ["CodegenError", "NodeCode", "gen_node", "halt"]
