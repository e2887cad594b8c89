"""Kernel IR -> LLVM IR text: the native kernels, one function per graph node.

Each node ``k`` becomes ``void @node_k(ptr %base, i64 %part, i64 %nparts)``: it reads
and writes the VM memory image at ``base`` (address a is ``base + a``), exactly the
bytes the VM code of the node writes. A parallel kernel runs the iterations
``[n * part / nparts, n * (part + 1) / nparts)`` of each top-level loop; other
top-level statements run in part 0 only.

Every scalar op is emitted with the ISA semantics (``opmlc_runtime.isa``) and no
undefined behaviour: shift amounts are compared before ``shl``/``lshr``/``ashr``, ``div``
replaces the zero and overflow divisors, ``mulh`` multiplies in i128, and all
arithmetic is plain (wrapping) ``add``/``sub``/``mul`` without ``nsw``. LLVM is then free
to vectorise and reorder: the results are the same bits as the VM's.

The text is deterministic (no names from ids or dict order) and a pure function of
the kernels, so it is stored in the .opvm and JIT-compiled at load time for the host.
"""

from __future__ import annotations

from opmlc.backend.convgen import MAX_PARTS, SCRATCH, _Ir, _vconst, gen_native
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

_ICMP = {"slt": "slt", "sltu": "ult"}


class _Fn:
    def __init__(self, kernel: Kernel, fname: str) -> None:
        self.k = kernel
        self.fname = fname
        self.lines: list[str] = []
        self.n = 0
        self.idx: list[str] = []  # SSA name of the current index per loop level
        self.vars: dict[str, str] = {}
        self.labels = 0

    def tmp(self) -> str:
        self.n += 1
        return f"%t{self.n}"

    def label(self, base: str) -> str:
        self.labels += 1
        return f"{base}{self.labels}"

    def ins(self, text: str) -> None:
        self.lines.append("  " + text)

    def val(self, e: Expr) -> str:
        if isinstance(e, Const):
            return str(e.value)
        if isinstance(e, Idx):
            return self.idx[e.level]
        if isinstance(e, Var):
            t = self.tmp()
            self.ins(f"{t} = load i64, ptr {self.vars[e.name]}, align 8")
            return t
        if isinstance(e, Load):
            size, signed = DTYPE_INFO[e.dtype]
            p = self.ptr(e.addr)
            t = self.tmp()
            self.ins(f"{t} = load i{8 * size}, ptr {p}, align {size}")
            if size == 8:
                return t
            w = self.tmp()
            self.ins(f"{w} = {'sext' if signed else 'zext'} i{8 * size} {t} to i64")
            return w
        if isinstance(e, Op):
            return self.op(e)
        raise TypeError(e)

    def ptr(self, a: Addr) -> str:
        off = str(a.base)
        for lv, stride in a.terms:
            m = self.tmp()
            self.ins(f"{m} = mul i64 {self.idx[lv]}, {stride}")
            s = self.tmp()
            self.ins(f"{s} = add i64 {off}, {m}")
            off = s
        for d, stride in a.dyn:
            v = self.val(d)
            m = self.tmp()
            self.ins(f"{m} = mul i64 {v}, {stride}")
            s = self.tmp()
            self.ins(f"{s} = add i64 {off}, {m}")
            off = s
        p = self.tmp()
        self.ins(f"{p} = getelementptr i8, ptr %base, i64 {off}")
        return p

    def bin(self, instr: str, a: str, b: str) -> str:
        t = self.tmp()
        self.ins(f"{t} = {instr} i64 {a}, {b}")
        return t

    def select(self, cond: str, a: str, b: str) -> str:
        t = self.tmp()
        self.ins(f"{t} = select i1 {cond}, i64 {a}, i64 {b}")
        return t

    def icmp(self, pred: str, a: str, b: str) -> str:
        t = self.tmp()
        self.ins(f"{t} = icmp {pred} i64 {a}, {b}")
        return t

    def op(self, e: Op) -> str:
        name = e.name
        if name in ("sat", "satu"):
            x = self.val(e.args[0])
            n = e.args[1].value  # type: ignore[union-attr]
            if name == "sat":
                n = min(max(n, 1), 64)
                lo, hi = -(1 << (n - 1)), (1 << (n - 1)) - 1
            else:
                n = min(max(n, 0), 63)
                lo, hi = 0, (1 << n) - 1
            x = self.select(self.icmp("slt", x, str(lo)), str(lo), x)
            return self.select(self.icmp("sgt", x, str(hi)), str(hi), x)
        if name == "cmov":
            a, c, d = (self.val(x) for x in e.args)
            return self.select(self.icmp("ne", c, "0"), a, d)
        a, b = self.val(e.args[0]), self.val(e.args[1])
        if name in ("add", "sub", "mul", "and", "or", "xor"):
            return self.bin(name, a, b)
        if name == "mulh":
            wa, wb, p, h, r = (self.tmp() for _ in range(5))
            self.ins(f"{wa} = sext i64 {a} to i128")
            self.ins(f"{wb} = sext i64 {b} to i128")
            self.ins(f"{p} = mul i128 {wa}, {wb}")
            self.ins(f"{h} = ashr i128 {p}, 64")
            self.ins(f"{r} = trunc i128 {h} to i64")
            return r
        if name in ("min", "max"):
            return self.select(self.icmp("slt" if name == "min" else "sgt", a, b), a, b)
        if name in _ICMP:
            t = self.tmp()
            self.ins(f"{t} = zext i1 {self.icmp(_ICMP[name], a, b)} to i64")
            return t
        const_b = isinstance(e.args[1], Const)
        bv = e.args[1].value & ((1 << 64) - 1) if const_b else None  # type: ignore[union-attr]
        if name in ("sll", "srl"):
            instr = "shl" if name == "sll" else "lshr"
            if const_b:
                return "0" if bv >= 64 else self.bin(instr, a, b)
            big = self.icmp("uge", b, "64")
            safe = self.select(big, "0", b)
            return self.select(big, "0", self.bin(instr, a, safe))
        if name == "sra":
            if const_b:
                return self.bin("ashr", a, str(min(bv, 63)))
            amt = self.select(self.icmp("ugt", b, "63"), "63", b)
            return self.bin("ashr", a, amt)
        if name == "srar":
            if const_b:
                if bv == 0:
                    return a
                if bv >= 64:
                    return "0"
                hi = self.bin("ashr", a, str(bv))
                lo = self.bin("and", self.bin("ashr", a, str(bv - 1)), "1")
                return self.bin("add", hi, lo)
            zero, big = self.icmp("eq", b, "0"), self.icmp("uge", b, "64")
            n = self.select(zero, "1", self.select(big, "63", b))
            hi = self.bin("ashr", a, n)
            lo = self.bin("and", self.bin("ashr", a, self.bin("sub", n, "1")), "1")
            r = self.bin("add", hi, lo)
            return self.select(zero, a, self.select(big, "0", r))
        if name == "div":
            bz = self.icmp("eq", b, "0")
            ovf = self.tmp()
            self.ins(f"{ovf} = and i1 {self.icmp('eq', a, str(-(1 << 63)))}, "
                     f"{self.icmp('eq', b, '-1')}")
            bad = self.tmp()
            self.ins(f"{bad} = or i1 {bz}, {ovf}")
            q = self.bin("sdiv", a, self.select(bad, "1", b))
            return self.select(bz, "0", q)  # overflow: a / 1 = a = INT64_MIN
        raise ValueError(f"llvmgen: unknown op {name}")

    def stmt(self, s: Stmt, top: bool = False) -> None:
        if isinstance(s, Store):
            v = self.val(s.value)
            size, _ = DTYPE_INFO[s.dtype]
            p = self.ptr(s.addr)
            if size < 8:
                t = self.tmp()
                self.ins(f"{t} = trunc i64 {v} to i{8 * size}")
                v = t
            self.ins(f"store i{8 * size} {v}, ptr {p}, align {size}")
        elif isinstance(s, Let):
            if s.name not in self.vars:
                raise ValueError(f"kernel {self.k.name}: variable {s.name} not declared")
            v = self.val(s.value)
            self.ins(f"store i64 {v}, ptr {self.vars[s.name]}, align 8")
        elif isinstance(s, Loop):
            self.loop(s, top)
        else:
            raise TypeError(s)

    def loop(self, s: Loop, top: bool) -> None:
        if s.extent <= 0:
            return
        if top and self.k.parallel and self.k.collapse > 1:
            levels = [s]
            while len(levels) < self.k.collapse and len(levels[-1].body) == 1 and \
                    isinstance(levels[-1].body[0], Loop) and levels[-1].body[0].extent > 0:
                levels.append(levels[-1].body[0])
            if len(levels) > 1:
                return self.collapsed_loop(levels)
        head, body, done = self.label("h"), self.label("b"), self.label("e")
        cur = self.label("p")
        if top and self.k.parallel:
            lo = self.bin("sdiv", self.bin("mul", str(s.extent), "%part"), "%nparts")
            p1 = self.bin("add", "%part", "1")
            hi = self.bin("sdiv", self.bin("mul", str(s.extent), p1), "%nparts")
        else:
            lo, hi = "0", str(s.extent)
        self.ins(f"br label %{cur}")
        self.lines.append(f"{cur}:")
        self.ins(f"br label %{head}")
        self.lines.append(f"{head}:")
        i = self.tmp()
        nxt = self.tmp()
        latch = self.label("l")
        self.ins(f"{i} = phi i64 [ {lo}, %{cur} ], [ {nxt}, %{latch} ]")
        c = self.icmp("slt", i, hi)
        self.ins(f"br i1 {c}, label %{body}, label %{done}")
        self.lines.append(f"{body}:")
        self.idx.append(i)
        for b in s.body:
            self.stmt(b)
        self.idx.pop()
        self.ins(f"br label %{latch}")
        self.lines.append(f"{latch}:")
        self.ins(f"{nxt} = add i64 {i}, 1")
        self.ins(f"br label %{head}")
        self.lines.append(f"{done}:")

    def collapsed_loop(self, levels: list[Loop]) -> None:
        """The perfect nest ``levels`` as one loop over their flattened iterations f, split
        over the parts like a top-level loop: each level's index is a digit of f."""
        total = 1
        for lv in levels:
            total *= lv.extent
        lo = self.bin("sdiv", self.bin("mul", str(total), "%part"), "%nparts")
        hi = self.bin("sdiv", self.bin("mul", str(total), self.bin("add", "%part", "1")),
                      "%nparts")
        head, body, done = self.label("h"), self.label("b"), self.label("e")
        cur, latch = self.label("p"), self.label("l")
        self.ins(f"br label %{cur}")
        self.lines.append(f"{cur}:")
        self.ins(f"br label %{head}")
        self.lines.append(f"{head}:")
        f, nxt = self.tmp(), self.tmp()
        self.ins(f"{f} = phi i64 [ {lo}, %{cur} ], [ {nxt}, %{latch} ]")
        self.ins(f"br i1 {self.icmp('slt', f, hi)}, label %{body}, label %{done}")
        self.lines.append(f"{body}:")
        digits, rest = [], f
        for lv in reversed(levels):
            digits.append(self.bin("urem", rest, str(lv.extent)))
            rest = self.bin("udiv", rest, str(lv.extent))
        self.idx.extend(reversed(digits))
        for b in levels[-1].body:
            self.stmt(b)
        del self.idx[-len(levels):]
        self.ins(f"br label %{latch}")
        self.lines.append(f"{latch}:")
        self.ins(f"{nxt} = add i64 {f}, 1")
        self.ins(f"br label %{head}")
        self.lines.append(f"{done}:")

    def render(self) -> str:
        names: list[str] = []
        _let_names(self.k.body, names)
        out = [f"define void @{self.fname}(ptr %base, i64 %part, i64 %nparts) {{", "entry:"]
        for k, nm in enumerate(names):
            self.vars[nm] = f"%v{k}"
            out.append(f"  %v{k} = alloca i64, align 8")
        for s in self.k.body:
            if isinstance(s, Loop) or not self.k.parallel:
                self.stmt(s, top=True)
            else:  # a straight-line statement of a parallel kernel: part 0 only
                go, skip = self.label("s"), self.label("k")
                c = self.icmp("eq", "%part", "0")
                self.ins(f"br i1 {c}, label %{go}, label %{skip}")
                self.lines.append(f"{go}:")
                self.stmt(s)
                self.ins(f"br label %{skip}")
                self.lines.append(f"{skip}:")
        out.extend(self.lines)
        out.append("  ret void")
        out.append("}")
        return "\n".join(out)


def _let_names(stmts, out: list[str]) -> None:
    for s in stmts:
        if isinstance(s, Let) and s.name not in out:
            out.append(s.name)
        elif isinstance(s, Loop):
            _let_names(s.body, out)


class VecExpr(_Fn):
    """Renders a kernel expression lane-wise on ``<n x i64>`` vectors with the scalar
    renderer's own op formulas (``_Fn.op``: the ISA semantics), only the value type
    widened: ``Var`` names map to given vectors, a ``Load`` is a scalar load (``Idx``
    levels map to given scalars) splat to all lanes, constants become splat literals.
    Used for a fused contraction's requant epilogue (``convgen``), so it computes exactly
    the VM's scalar epilogue in every lane."""

    def __init__(self, ir: _Ir, lanes: int, vecs: dict[str, str], idx: list[str]) -> None:
        super().__init__(Kernel(""), "")
        self.ir, self.lanes, self.vecs, self.idx = ir, lanes, vecs, list(idx)
        self.vty = f"<{lanes} x i64>"

    def tmp(self) -> str:
        self.ir.n += 1
        return f"%u{self.ir.n}"

    def ins(self, text: str) -> None:
        self.ir.emit(text)

    def lit(self, x: str) -> str:
        return x if x.startswith("%") else _vconst(self.lanes, int(x))

    def val(self, e: Expr) -> str:
        if isinstance(e, Const):
            return str(e.value)
        if isinstance(e, Var):
            return self.vecs[e.name]
        if isinstance(e, Load):
            return self.ir.splat("i64", self.lanes, super().val(e))
        if isinstance(e, Op):
            if e.name not in _VEC_OPS:
                raise ValueError(f"llvmgen: op {e.name} in a vector epilogue")
            return self.op(e)
        raise TypeError(e)

    def bin(self, instr: str, a: str, b: str) -> str:
        t = self.tmp()
        self.ins(f"{t} = {instr} {self.vty} {self.lit(a)}, {self.lit(b)}")
        return t

    def select(self, cond: str, a: str, b: str) -> str:
        t = self.tmp()
        self.ins(f"{t} = select <{self.lanes} x i1> {cond}, {self.vty} {self.lit(a)}, "
                 f"{self.vty} {self.lit(b)}")
        return t

    def icmp(self, pred: str, a: str, b: str) -> str:
        t = self.tmp()
        self.ins(f"{t} = icmp {pred} {self.vty} {self.lit(a)}, {self.lit(b)}")
        return t


class LaneVecExpr(VecExpr):
    """A :class:`VecExpr` whose lanes also run along one loop level (``lane_level``): that
    level's index is the vector ``lane_idx`` (one index per lane, each in range), so
    ``Idx(lane_level)`` is that vector and a ``Load`` whose address moves with it is a
    gather of one element per lane. Used for a matmul's epilogue, whose parameters vary
    along the output columns."""

    def __init__(self, ir: _Ir, lanes: int, vecs: dict[str, str], idx: list[str],
                 lane_level: int, lane_idx: str) -> None:
        super().__init__(ir, lanes, vecs, idx)
        self.lane_level, self.lane_idx = lane_level, lane_idx

    def val(self, e: Expr) -> str:
        if isinstance(e, Idx):
            if e.level == self.lane_level:
                return self.lane_idx
            return self.ir.splat("i64", self.lanes, self.idx[e.level])
        if isinstance(e, Load) and any(lv == self.lane_level for lv, _ in e.addr.terms):
            if e.addr.dyn:
                raise ValueError("llvmgen: a lane-varying load with a data-dependent address")
            stride = sum(st for lv, st in e.addr.terms if lv == self.lane_level)
            rest = Addr(e.addr.base, tuple((lv, st) for lv, st in e.addr.terms
                                           if lv != self.lane_level))
            p = self.ptr(rest)
            n = self.lanes
            off = self.tmp()
            self.ins(f"{off} = mul <{n} x i64> {self.lane_idx}, {_vconst(n, stride)}")
            ptrs = self.tmp()
            self.ins(f"{ptrs} = getelementptr i8, ptr {p}, <{n} x i64> {off}")
            size, signed = DTYPE_INFO[e.dtype]
            ty = f"i{8 * size}"
            self.ir.decls.add(f"declare <{n} x {ty}> @llvm.masked.gather.v{n}{ty}.v{n}p0("
                              f"<{n} x ptr>, i32 immarg, <{n} x i1>, <{n} x {ty}>)")
            ones = ", ".join(["i1 true"] * n)
            v = self.tmp()
            self.ins(f"{v} = call <{n} x {ty}> @llvm.masked.gather.v{n}{ty}.v{n}p0(<{n} x ptr> "
                     f"{ptrs}, i32 {size}, <{n} x i1> <{ones}>, <{n} x {ty}> zeroinitializer)")
            if size == 8:
                return v
            w = self.tmp()
            self.ins(f"{w} = {'sext' if signed else 'zext'} <{n} x {ty}> {v} to <{n} x i64>")
            return w
        return super().val(e)


# ops whose _Fn.op formulas use only bin / select / icmp (vectorisable as they stand)
_VEC_OPS = frozenset({"add", "sub", "mul", "and", "or", "xor", "min", "max", "sll", "srl",
                      "sra", "srar", "sat", "satu", "cmov"})


def gen_function(kernel: Kernel, fname: str) -> str:
    """The LLVM IR text of one node function ``fname``."""
    return _Fn(kernel, fname).render()


def gen_module(kernels: list[Kernel], name: str = "opmlc_model") -> str:
    """A module with ``@node_<k>`` for every kernel (node order); kernels with a native
    description get their packed form (``convgen``) and share one private scratch buffer."""
    head = [f"; opmlc native kernels: {len(kernels)} nodes", f"; ModuleID = '{name}'", ""]
    fns, decls, scratch = [], set(), 0
    for i, k in enumerate(kernels):
        nat = gen_native(k, f"node_{i}")
        if nat is None:
            fns.append(gen_function(k, f"node_{i}") + "\n")
        else:
            fns.append(nat[0] + "\n")
            decls |= nat[1]
            scratch = max(scratch, nat[2])
    if scratch:
        head.append(f"{SCRATCH} = internal global [{scratch * MAX_PARTS} x i8] "
                    "zeroinitializer, align 64")
    head += sorted(decls) + [""]
    return "\n".join(head + fns)


__all__ = ["LaneVecExpr", "VecExpr", "gen_function", "gen_module"]
