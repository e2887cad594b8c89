"""The hand-tiled native conv kernels: a :class:`~opmlc.backend.kernel.ConvSpec` -> LLVM IR.

``llvmgen`` renders every kernel's loop nest, except a kernel whose ``native`` is a
:class:`ConvSpec`: :func:`gen_native` emits that one as a packed GEMM, in i64 lanes
(:func:`gen_conv`) or, when the products are bounded so that blocks of them sum exactly
in floating point, in f32 / f64 FMA lanes (:func:`float_plan`, :func:`gen_conv_float`).
Either way the function writes exactly the bytes of the kernel's loop nest (the VM's).
"""

from __future__ import annotations

from dataclasses import dataclass

from opmlc.backend.kernel import DTYPE_INFO, ConvSpec, Kernel, MatSpec, PoolSpec

# ---------------------------------------------------------------- native contractions
#
# A contraction kernel with a ``native`` description (``Kernel.native``) is emitted as a
# packed GEMM instead of its scalar loop nest: y[r, p] = init[r] + sum_k S[r, k] * V[k, p]
# with r the output rows (conv: output channels of a group), p the contiguous output
# columns (conv: output positions) and k the reduction. Each work item is one panel of
# NR columns: its V[., p0:p0+NR] (conv: the im2col window values, x - x_zp, 0 in the
# padding) is packed as i64 into a private scratch panel (not VM memory: it is never
# committed), then every MR-row tile accumulates 2*MR <8 x i64> registers over k and
# stores its outputs once. The work items write disjoint outputs, so the threads split
# them; integer sums wrap, so the order of the sum is free: the bytes equal the VM's.
# When x - x_zp and w - w_zp fit 32 bits (from the dtype ranges, so for every input) the
# products are formed from sign-extended 32-bit halves (x86 vpmuldq): exact all the same.

NR = 16          # columns of an i64 panel (two <8 x i64> vectors)
MR = 4           # rows of the i64 register tile
MAX_PARTS = 64   # threads the scratch global has room for (runtime: MAX_THREADS)
SCRATCH = "@opmlc_scratch"  # the module's private scratch, one slice per part (thread)


def _drange(dtype: str) -> tuple[int, int]:
    """(min, max) of a dtype's values."""
    size, signed = DTYPE_INFO[dtype]
    bits = 8 * size
    if dtype == "bool":
        return 0, 1
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _fits32(dtype: str, zp: int) -> bool:
    lo, hi = _drange(dtype)
    return -(1 << 31) <= lo - zp and hi - zp < (1 << 31)


def _vconst(n: int, vals: list[int] | int, ty: str = "i64") -> str:
    vs = vals if isinstance(vals, list) else [vals] * n
    return f"<{', '.join(f'{ty} {v}' for v in vs)}>"


class _Ir:
    """A tiny SSA text builder with counted loops (loop-carried values as phis)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.n = 0
        self.nl = 0
        self.decls: set[str] = set()

    def v(self, text: str) -> str:
        self.n += 1
        t = f"%u{self.n}"
        self.lines.append(f"  {t} = {text}")
        return t

    def emit(self, text: str) -> None:
        self.lines.append("  " + text)

    def label(self, base: str) -> str:
        self.nl += 1
        return f"{base}{self.nl}"

    def splat(self, ty: str, n: int, x: str) -> str:
        i = self.v(f"insertelement <{n} x {ty}> poison, {ty} {x}, i64 0")
        return self.v(f"shufflevector <{n} x {ty}> {i}, <{n} x {ty}> poison, "
                      f"<{n} x i32> zeroinitializer")

    def loop(self, lo: str, hi: str, carried: list[tuple[str, str]] = ()):
        """Open ``for i in [lo, hi)``; returns (i, phis, close) where close(next_values)
        ends the loop; after it the phis hold the final values."""
        pre, head, body, latch, done = (self.label(b) for b in ("lp", "lh", "lb", "ll", "le"))
        self.emit(f"br label %{pre}")
        self.lines.append(f"{pre}:")
        self.emit(f"br label %{head}")
        self.lines.append(f"{head}:")
        i = self.v(f"phi i64 [ {lo}, %{pre} ], [ %{latch}.i, %{latch} ]")
        phis, slots = [], []
        for ty, init in carried:
            slots.append(len(self.lines))
            phis.append(self.v(f"phi {ty} [ {init}, %{pre} ], [ @@, %{latch} ]"))
        c = self.v(f"icmp slt i64 {i}, {hi}")
        self.emit(f"br i1 {c}, label %{body}, label %{done}")
        self.lines.append(f"{body}:")

        def close(nexts: list[str] = ()) -> None:
            for slot, nx in zip(slots, nexts, strict=True):
                self.lines[slot] = self.lines[slot].replace("@@", nx)
            self.emit(f"br label %{latch}")
            self.lines.append(f"{latch}:")
            self.emit(f"%{latch}.i = add i64 {i}, 1")
            self.emit(f"br label %{head}")
            self.lines.append(f"{done}:")

        return i, phis, close


def _ext(signed: bool) -> str:
    return "sext" if signed else "zext"


def conv_scratch_bytes(sp: ConvSpec) -> int:
    """Bytes of one part's scratch for :func:`gen_conv`: one K x NR panel of i64."""
    return sp.reduction * NR * 8


def _prod(xs) -> int:
    out = 1
    for x in xs:
        out *= int(x)
    return out


def _gemm_tile(ir: _Ir, mr: int, rows: list[str], k_count: int, panel: str, wsz: int,
               w_ty: str, w_signed: bool, w_zp: int, narrow: bool,
               init: list[str], outs: list[str], mask: tuple[str, str]) -> None:
    """acc[i] = init[i] + sum_k S[rows[i] + k] * panel[k]; masked stores to outs[i]."""
    carried = [("<8 x i64>", init[i]) for i in range(mr) for _ in range(2)]
    k, acc, close = ir.loop("0", str(k_count), carried)
    pa = ir.v(f"mul i64 {k}, {NR * 8}")
    p0 = ir.v(f"getelementptr i8, ptr {panel}, i64 {pa}")
    p1 = ir.v(f"getelementptr i8, ptr {p0}, i64 64")
    vs = []
    for p in (p0, p1):
        v = ir.v(f"load <8 x i64>, ptr {p}, align 64")
        if narrow:  # the values are sign-extended i32s: say so (lets x86 use vpmuldq)
            v = ir.v(f"shl <8 x i64> {v}, {_vconst(8, 32)}")
            v = ir.v(f"ashr <8 x i64> {v}, {_vconst(8, 32)}")
        vs.append(v)
    ko = ir.v(f"mul i64 {k}, {wsz}")
    nexts = []
    for i in range(mr):
        wp = ir.v(f"getelementptr i8, ptr {rows[i]}, i64 {ko}")
        s = ir.v(f"load {w_ty}, ptr {wp}, align {wsz}")
        if w_ty != "i64":
            s = ir.v(f"{_ext(w_signed)} {w_ty} {s} to i64")
        if w_zp:
            s = ir.v(f"sub i64 {s}, {w_zp}")
        sv = ir.splat("i64", 8, s)
        for h in range(2):
            m = ir.v(f"mul <8 x i64> {vs[h]}, {sv}")
            nexts.append(ir.v(f"add <8 x i64> {acc[2 * i + h]}, {m}"))
    close(nexts)
    ir.decls.add("declare void @llvm.masked.store.v8i64.p0(<8 x i64>, ptr, i32 immarg, "
                 "<8 x i1>)")
    for i in range(mr):
        for h in range(2):
            p = outs[i] if h == 0 else ir.v(f"getelementptr i8, ptr {outs[i]}, i64 64")
            ir.emit(f"call void @llvm.masked.store.v8i64.p0(<8 x i64> {acc[2 * i + h]}, "
                    f"ptr {p}, i32 8, <8 x i1> {mask[h]})")


def gen_conv(sp: ConvSpec, fname: str) -> tuple[str, set[str]]:
    """The packed-GEMM native kernel of a q.conv (see the section comment)."""
    N, C, G, Mg, Cg = sp.batch, sp.channels, sp.groups, sp.out_per_group, sp.in_per_group
    HW, P = _prod(sp.in_shape), _prod(sp.out_shape)
    K, M = sp.reduction, G * Mg
    NP = -(-P // NR)
    items = N * G * NP
    xsz, _ = DTYPE_INFO[sp.x_dtype]
    wsz, wsig = DTYPE_INFO[sp.w_dtype]
    wty = f"i{8 * wsz}"
    x_zp, w_zp = sp.x_zp, sp.w_zp
    narrow = _fits32(sp.x_dtype, x_zp) and _fits32(sp.w_dtype, w_zp)
    ir = _Ir()
    po = ir.v(f"mul i64 %part, {K * NR * 8}")
    panel = ir.v(f"getelementptr i8, ptr {SCRATCH}, i64 {po}")
    lo, hi = _part_range(ir, items)
    it, _, close_it = ir.loop(lo, hi)
    ng = ir.v(f"udiv i64 {it}, {NP}")
    pj = ir.v(f"urem i64 {it}, {NP}")
    n = ir.v(f"udiv i64 {ng}, {G}")
    g = ir.v(f"urem i64 {ng}, {G}")
    p0 = ir.v(f"mul i64 {pj}, {NR}")
    colmask, starts = _window_starts(ir, sp, p0, NR)
    # x of this (n, group): channel n*C + g*Cg
    nc = ir.v(f"mul i64 {n}, {C}")
    gc = ir.v(f"mul i64 {g}, {Cg}")
    xc = ir.v(f"mul i64 {ir.v(f'add i64 {nc}, {gc}')}, {HW * xsz}")
    xo = ir.v(f"add i64 {xc}, {sp.x_addr}")
    xb = ir.v(f"getelementptr i8, ptr %base, i64 {xo}")
    _pack_columns(ir, sp, xb, p0, colmask, starts, panel, "i64", 8, NR)
    # the GEMM over the panel: MR-row tiles, then the remaining rows one by one
    mask = (ir.v(f"shufflevector <16 x i1> {colmask}, <16 x i1> poison, "
                 f"<8 x i32> {_vconst(8, list(range(8)), 'i32')}"),
            ir.v(f"shufflevector <16 x i1> {colmask}, <16 x i1> poison, "
                 f"<8 x i32> {_vconst(8, list(range(8, 16)), 'i32')}"))
    m0 = ir.v(f"mul i64 {g}, {Mg}")
    nM = ir.v(f"mul i64 {n}, {M}")
    full = (Mg // MR) * MR

    def tile(mr: int, r: str) -> None:
        rows, outs, init = [], [], []
        for i in range(mr):
            m = ir.v(f"add i64 {ir.v(f'add i64 {m0}, {r}')}, {i}")
            wo = ir.v(f"add i64 {ir.v(f'mul i64 {m}, {K * wsz}')}, {sp.w_addr}")
            rows.append(ir.v(f"getelementptr i8, ptr %base, i64 {wo}"))
            yo = ir.v(f"mul i64 {ir.v(f'add i64 {nM}, {m}')}, {P}")
            yo = ir.v(f"mul i64 {ir.v(f'add i64 {yo}, {p0}')}, 8")
            yo = ir.v(f"add i64 {yo}, {sp.y_addr}")
            outs.append(ir.v(f"getelementptr i8, ptr %base, i64 {yo}"))
            if sp.bias_addr is None:
                init.append("zeroinitializer")
            else:
                bsz, bsig = DTYPE_INFO[sp.bias_dtype]
                bo = ir.v(f"add i64 {ir.v(f'mul i64 {m}, {bsz}')}, {sp.bias_addr}")
                bp = ir.v(f"getelementptr i8, ptr %base, i64 {bo}")
                b = ir.v(f"load i{8 * bsz}, ptr {bp}, align {bsz}")
                if bsz < 8:
                    b = ir.v(f"{_ext(bsig)} i{8 * bsz} {b} to i64")
                init.append(ir.splat("i64", 8, b))
        _gemm_tile(ir, mr, rows, K, panel, wsz, wty, wsig, w_zp, narrow, init, outs, mask)

    if full:
        rt, _, close_r = ir.loop("0", str(full // MR))
        tile(MR, ir.v(f"mul i64 {rt}, {MR}"))
        close_r()
    if full < Mg:
        r1, _, close_r1 = ir.loop(str(full), str(Mg))
        tile(1, r1)
        close_r1()
    close_it()
    head = [f"define void @{fname}(ptr %base, i64 %part, i64 %nparts) {{", "entry:"]
    return "\n".join(head + ir.lines + ["  ret void", "}"]), ir.decls


# ---------------------------------------------------------------- exact float conv
#
# When every product |(x - x_zp)(w - w_zp)| <= PB (x bounded by its dtype, w by the
# constant weights' actual max |w - w_zp|), a block of KC products summed in binary64
# (binary32) is exact as long as KC * PB <= 2^53 (2^24): every product and every
# partial sum is an integer the format represents, so fmuladd rounds nothing, fused or
# not. The kernel therefore sums blocks of KC products in f64 (f32) FMA lanes, converts
# each block sum to i64 exactly and adds it to the wrapping i64 output: the same bits as
# the VM's i64 sum. A work item is (n, group, a block of NPB column panels, a block of
# MB output rows): it packs its im2col panels as floats (K x NR each, private scratch),
# then for every MR-row tile and KC-deep slice of k packs the weight slice as floats
# (MR x KC) and runs an MR x NR register tile over each panel, flushing into y.

FMR = 8          # rows of the float register tile (2 * FMR vector accumulators)
FPANEL_BYTES = 1 << 20   # im2col panels of one work item (L2-sized)
FITEMS = 16      # at least this many work items when the shape allows (thread balance)


@dataclass(frozen=True)
class FloatPlan:
    """How :func:`gen_conv_float` tiles one conv (see the section comment)."""

    elem_type: str         # LLVM type of a lane: "float" (f32) or "double" (f64)
    lanes: int             # lanes of one FMA vector (16 f32, 8 f64)
    panel_cols: int        # NR, output columns of one im2col panel (two vectors)
    elem_bytes: int        # bytes of one lane (4 or 8)
    k_block: int           # KC, products summed per exact float block (KC * PB <= 2^24 / 2^53)
    panels_per_block: int  # NPB, column panels of one work item
    rows_per_block: int    # MB, output rows of one work item (a multiple of FMR)
    row_blocks: int        # ceil(Mg / MB), row blocks per (image, group)


def float_plan(sp: ConvSpec) -> FloatPlan | None:
    """The exact-float parameters of a conv description, or None (use i64 lanes)."""
    wmax = sp.w_absmax
    if wmax is None:
        return None
    lo, hi = _drange(sp.x_dtype)
    x_zp = sp.x_zp
    xmax = max(abs(lo - x_zp), abs(hi - x_zp))
    pb = max(1, xmax * wmax)
    K = sp.reduction
    choice = None
    for cand, bits, lanes in (("float", 24, 16), ("double", 53, 8)):
        if xmax <= (1 << bits) and wmax <= (1 << bits) and \
                min((1 << bits) // pb, 256, K) >= min(32, K):
            choice = (cand, min((1 << bits) // pb, 256, K), lanes)
            break
    if choice is None:
        return None
    ty, kc, vl = choice
    nr = 2 * vl
    esz = 4 if ty == "float" else 8
    P = _prod(sp.out_shape)
    NP = -(-P // nr)
    npb = max(1, min(NP, FPANEL_BYTES // (K * nr * esz), 8))
    npb = -(-NP // -(-NP // npb))  # the same bound, column blocks as even as possible
    Mg, outer = sp.out_per_group, sp.batch * sp.groups * -(-NP // npb)
    nmb = max(1, min(-(-FITEMS // outer), -(-Mg // FMR)))
    rows = -(-Mg // nmb)
    mb = -(-rows // FMR) * FMR
    return FloatPlan(elem_type=ty, lanes=vl, panel_cols=nr, elem_bytes=esz, k_block=kc,
                     panels_per_block=npb, rows_per_block=mb, row_blocks=-(-Mg // mb))


def _acc_offset(sp: ConvSpec, fp: FloatPlan) -> int:
    """Offset of a fused conv's i64 accumulator tile in a part's scratch (64-aligned)."""
    n = (fp.panels_per_block * sp.reduction * fp.panel_cols * fp.elem_bytes
         + FMR * fp.k_block * fp.elem_bytes)
    return -(-n // 64) * 64


def conv_float_scratch_bytes(sp: ConvSpec, fp: FloatPlan) -> int:
    n = _acc_offset(sp, fp)
    if sp.epilogue is not None:  # + FMR rows x the column block of i64 sums
        n += FMR * fp.panels_per_block * fp.panel_cols * 8
    return n  # every part's panels start 64-byte aligned (aligned loads)


def _window_starts(ir: _Ir, sp: ConvSpec, p0: str, n: int) -> tuple[str, list[str]]:
    """Lanes pv = p0 + [0, n) of the output positions: (colmask = pv < P, starts) with
    starts[i] = o_i * S_i - PAD_i, o = pv unravelled over O (row-major)."""
    O, S, PAD = list(sp.out_shape), list(sp.strides), list(sp.pads)
    pv = ir.v(f"add <{n} x i64> {ir.splat('i64', n, p0)}, {_vconst(n, list(range(n)))}")
    colmask = ir.v(f"icmp slt <{n} x i64> {pv}, {_vconst(n, _prod(O))}")
    starts = [""] * len(O)
    rem = pv
    for i in reversed(range(len(O))):
        o = ir.v(f"urem <{n} x i64> {rem}, {_vconst(n, O[i])}")
        rem = ir.v(f"udiv <{n} x i64> {rem}, {_vconst(n, O[i])}")
        os_ = ir.v(f"mul <{n} x i64> {o}, {_vconst(n, S[i])}")
        starts[i] = ir.v(f"sub <{n} x i64> {os_}, {_vconst(n, PAD[i])}")
    return colmask, starts


def _pack_columns(ir: _Ir, sp: ConvSpec, xb: str, p0: str, colmask: str, starts: list[str],
                  dst: str, ety: str, esz: int, n: int, u8_zp: int | None = None) -> None:
    """Pack panel columns [p0, p0 + n) of the im2col matrix of x (channels of the group at
    xb) into dst[k][n], k = (c, j_0, .., j_{nd-1}) row-major as in the weights: ety lanes
    of esz bytes (x - x_zp, converted exactly unless ety is i64), 0 in the padding and
    past the last column (colmask, starts: :func:`_window_starts`). With ``u8_zp`` (ety
    i8, or i16 for an i16 x): the unsigned word x - x_zp + u8_zp instead, u8_zp in the
    padding (:func:`dot_plan`, :func:`dot16_plan`)."""
    kern, H = list(sp.kernel_shape), list(sp.in_shape)
    S, D, PAD = list(sp.strides), list(sp.dilations), list(sp.pads)
    nd, Cg, HW = len(kern), sp.in_per_group, _prod(H)
    xsz, xsig = DTYPE_INFO[sp.x_dtype]
    xty = f"i{8 * xsz}"
    x_zp = sp.x_zp
    hst = [_prod(H[i + 1:]) for i in range(nd)]
    contiguous = all(k == 1 for k in kern) and all(s == 1 for s in S) and \
        all(p == 0 for p in PAD) and H == list(sp.out_shape)
    # stride 1 and the output as wide as x on every axis but the first: a column's window
    # element is at a fixed distance from the column (p + shift), so no gather
    shifted = not contiguous and all(s == 1 for s in S) and H[1:] == list(sp.out_shape)[1:]
    ir.decls.add(f"declare <{n} x {xty}> @llvm.masked.load.v{n}{xty}.p0(ptr, i32 immarg, "
                 f"<{n} x i1>, <{n} x {xty}>)")
    c, _, close_c = ir.loop("0", str(Cg))
    xcb = ir.v(f"getelementptr i8, ptr {xb}, i64 {ir.v(f'mul i64 {c}, {HW * xsz}')}")
    js, closes = [], []
    kidx = c
    for i in range(nd):
        j, _, cl = ir.loop("0", str(kern[i]))
        js.append(j)
        closes.append(cl)
        kidx = ir.v(f"add i64 {ir.v(f'mul i64 {kidx}, {kern[i]}')}, {j}")
    zero = f"<{n} x {xty}> zeroinitializer"
    valid = colmask
    if not contiguous:  # lanes inside the image on every axis
        for i in range(nd):
            jd = ir.v(f"mul i64 {js[i]}, {D[i]}")
            pos = ir.v(f"add <{n} x i64> {starts[i]}, {ir.splat('i64', n, jd)}")
            ok = ir.v(f"icmp ult <{n} x i64> {pos}, {_vconst(n, H[i])}")
            valid = ir.v(f"and <{n} x i1> {valid}, {ok}")
    if contiguous or shifted:
        # column p reads x at p + shift (shift = sum_i (j_i D_i - PAD_i) hst_i): one masked
        # load; masked-off lanes (padding, past the last column) are never read
        off = p0
        for i in range(nd if shifted else 0):
            sh = ir.v(f"sub i64 {ir.v(f'mul i64 {js[i]}, {D[i]}')}, {PAD[i]}")
            off = ir.v(f"add i64 {off}, {ir.v(f'mul i64 {sh}, {hst[i]}')}")
        ptr = ir.v(f"getelementptr i8, ptr {xcb}, i64 {ir.v(f'mul i64 {off}, {xsz}')}")
        vals = ir.v(f"call <{n} x {xty}> @llvm.masked.load.v{n}{xty}.p0(ptr {ptr}, "
                    f"i32 {xsz}, <{n} x i1> {valid}, {zero})")
    else:
        # an unmasked gather of whole words (no per-lane branches): a narrow element is the
        # top of the 32-bit word that ends with it, so no lane reads past its own element
        # (an invalid lane reads the word ending with x[c, 0]; x never starts below 4)
        off = None
        for i in range(nd):
            jd = ir.v(f"mul i64 {js[i]}, {D[i]}")
            pos = ir.v(f"add <{n} x i64> {starts[i]}, {ir.splat('i64', n, jd)}")
            t = ir.v(f"mul <{n} x i64> {pos}, {_vconst(n, hst[i] * xsz)}")
            off = t if off is None else ir.v(f"add <{n} x i64> {off}, {t}")
        off = ir.v(f"select <{n} x i1> {valid}, <{n} x i64> {off}, "
                   f"<{n} x i64> zeroinitializer")
        gty = "i64" if xsz == 8 else "i32"
        back = max(0, 4 - xsz) if xsz < 8 else 0
        if back:
            off = ir.v(f"sub <{n} x i64> {off}, {_vconst(n, back)}")
        ptrs = ir.v(f"getelementptr i8, ptr {xcb}, <{n} x i64> {off}")
        ones = _vconst(n, 1, "i1").replace("i1 1", "i1 true")
        ir.decls.add(f"declare <{n} x {gty}> @llvm.masked.gather.v{n}{gty}.v{n}p0(<{n} x ptr>, "
                     f"i32 immarg, <{n} x i1>, <{n} x {gty}>)")
        words = ir.v(f"call <{n} x {gty}> @llvm.masked.gather.v{n}{gty}.v{n}p0(<{n} x ptr> "
                     f"{ptrs}, i32 1, <{n} x i1> {ones}, <{n} x {gty}> zeroinitializer)")
        if back:
            words = ir.v(f"lshr <{n} x i32> {words}, {_vconst(n, 8 * back, 'i32')}")
        vals = words if xty == gty else ir.v(f"trunc <{n} x {gty}> {words} to <{n} x {xty}>")
    if u8_zp is not None:  # the word x - x_zp + u8_zp: x (unsigned) or x xor the sign bit
        bits = 8 * esz
        flip = (0x80 if bits == 8 else -(1 << (bits - 1))) if xsig else 0
        b = ir.v(f"xor <{n} x {ety}> {vals}, {_vconst(n, flip, ety)}") if flip else vals
        pad = u8_zp - (1 << bits) if u8_zp >= 1 << (bits - 1) else u8_zp
        wide = ir.v(f"select <{n} x i1> {valid}, <{n} x {ety}> {b}, "
                    f"<{n} x {ety}> {_vconst(n, pad, ety)}")
    else:
        wide = vals if xty == "i64" else \
            ir.v(f"{_ext(xsig)} <{n} x {xty}> {vals} to <{n} x i64>")
        if x_zp:
            wide = ir.v(f"sub <{n} x i64> {wide}, {_vconst(n, x_zp)}")
        wide = ir.v(f"select <{n} x i1> {valid}, <{n} x i64> {wide}, "
                    "<{n} x i64> zeroinitializer".replace("{n}", str(n)))
        if ety != "i64":
            wide = ir.v(f"sitofp <{n} x i64> {wide} to <{n} x {ety}>")
    d = ir.v(f"getelementptr i8, ptr {dst}, i64 {ir.v(f'mul i64 {kidx}, {n * esz}')}")
    ir.emit(f"store <{n} x {ety}> {wide}, ptr {d}, align {min(64, n * esz)}")
    for cl in reversed(closes):
        cl()
    close_c()


def gen_conv_float(sp: ConvSpec, fp: FloatPlan, fname: str) -> tuple[str, set[str]]:
    """The exact-float packed-GEMM kernel of a q.conv (see the section comment)."""
    N, C, G, Mg, Cg = sp.batch, sp.channels, sp.groups, sp.out_per_group, sp.in_per_group
    HW, P = _prod(sp.in_shape), _prod(sp.out_shape)
    K, M = sp.reduction, G * Mg
    ety, vl, nr, esz, KC = fp.elem_type, fp.lanes, fp.panel_cols, fp.elem_bytes, fp.k_block
    npb, mb, nmb = fp.panels_per_block, fp.rows_per_block, fp.row_blocks
    vty = f"<{vl} x {ety}>"
    NP = -(-P // nr)
    ncb = -(-NP // npb)
    items = N * G * ncb * nmb
    xsz, _ = DTYPE_INFO[sp.x_dtype]
    wsz, wsig = DTYPE_INFO[sp.w_dtype]
    w_zp = sp.w_zp
    ir = _Ir()
    ir.decls.add(f"declare {vty} @llvm.fmuladd.v{vl}{'f64' if esz == 8 else 'f32'}("
                 f"{vty}, {vty}, {vty})")
    ir.decls.add("declare void @llvm.masked.store.v8i64.p0(<8 x i64>, ptr, i32 immarg, "
                 "<8 x i1>)")
    ir.decls.add("declare <8 x i64> @llvm.masked.load.v8i64.p0(ptr, i32 immarg, <8 x i1>, "
                 "<8 x i64>)")
    fma = f"@llvm.fmuladd.v{vl}{'f64' if esz == 8 else 'f32'}"
    per_part = conv_float_scratch_bytes(sp, fp)
    po = ir.v(f"mul i64 %part, {per_part}")
    panels = ir.v(f"getelementptr i8, ptr {SCRATCH}, i64 {po}")
    fused = sp.epilogue is not None
    accb = ir.v(f"getelementptr i8, ptr {panels}, i64 {_acc_offset(sp, fp)}")
    wt = ir.v(f"getelementptr i8, ptr {panels}, i64 {npb * K * nr * esz}")
    lo, hi = _part_range(ir, items)
    it, _, close_it = ir.loop(lo, hi)
    # the column block varies fastest: rows blocks are usually equal (channel counts are
    # multiples of the block), column blocks may not be, so contiguous thread ranges
    # take a share of every column block
    cb = ir.v(f"urem i64 {it}, {ncb}")
    r0 = ir.v(f"udiv i64 {it}, {ncb}")
    mbi = ir.v(f"urem i64 {r0}, {nmb}")
    ng = ir.v(f"udiv i64 {r0}, {nmb}")
    n = ir.v(f"udiv i64 {ng}, {G}")
    g = ir.v(f"urem i64 {ng}, {G}")
    j0 = ir.v(f"mul i64 {cb}, {npb}")
    j1 = ir.v(f"add i64 {j0}, {npb}")
    j1 = ir.v(f"select i1 {ir.v(f'icmp slt i64 {j1}, {NP}')}, i64 {j1}, i64 {NP}")
    ch = ir.v(f"add i64 {ir.v(f'mul i64 {n}, {C}')}, {ir.v(f'mul i64 {g}, {Cg}')}")
    xo = ir.v(f"add i64 {ir.v(f'mul i64 {ch}, {HW * xsz}')}, {sp.x_addr}")
    xb = ir.v(f"getelementptr i8, ptr %base, i64 {xo}")
    # 1. pack the panels of this column block
    j, _, close_j = ir.loop(j0, j1)
    jl = ir.v(f"sub i64 {j}, {j0}")
    dst = ir.v(f"getelementptr i8, ptr {panels}, i64 {ir.v(f'mul i64 {jl}, {K * nr * esz}')}")
    pj0 = ir.v(f"mul i64 {j}, {nr}")
    _pack_columns(ir, sp, xb, pj0, *_window_starts(ir, sp, pj0, nr), dst, ety, esz, nr)
    close_j()
    # 2. row tiles of this row block x k slices x panels
    m_lo = ir.v(f"mul i64 {mbi}, {mb}")
    m_hi = ir.v(f"add i64 {m_lo}, {mb}")
    m_hi = ir.v(f"select i1 {ir.v(f'icmp slt i64 {m_hi}, {Mg}')}, i64 {m_hi}, i64 {Mg}")
    m0g = ir.v(f"mul i64 {g}, {Mg}")
    nM = ir.v(f"mul i64 {n}, {M}")
    nkb = -(-K // KC)

    def tile(mr: int, r: str) -> None:
        """Rows r .. r + mr - 1 (within the group) over every k slice and panel."""
        kb, _, close_kb = ir.loop("0", str(nkb))
        k0 = ir.v(f"mul i64 {kb}, {KC}")
        kn = ir.v(f"sub i64 {K}, {k0}")
        kn = ir.v(f"select i1 {ir.v(f'icmp slt i64 {kn}, {KC}')}, i64 {kn}, i64 {KC}")
        first = ir.v(f"icmp eq i64 {kb}, 0")
        mrow = [ir.v(f"add i64 {ir.v(f'add i64 {m0g}, {r}')}, {i}") for i in range(mr)]
        # pack the weight slice: wt[i][k] = w[m_i, k0 + k] - w_zp as a float
        for i in range(mr):
            wo = ir.v(f"add i64 {ir.v(f'mul i64 {mrow[i]}, {K * wsz}')}, {sp.w_addr}")
            wo = ir.v(f"add i64 {wo}, {ir.v(f'mul i64 {k0}, {wsz}')}")
            wrow = ir.v(f"getelementptr i8, ptr %base, i64 {wo}")
            drow = ir.v(f"getelementptr i8, ptr {wt}, i64 {i * KC * esz}")
            kk, _, close_kk = ir.loop("0", kn)
            wp = ir.v(f"getelementptr i{8 * wsz}, ptr {wrow}, i64 {kk}")
            s = ir.v(f"load i{8 * wsz}, ptr {wp}, align {wsz}")
            s = ir.v(f"{_ext(wsig)} i{8 * wsz} {s} to i64") if wsz < 8 else s
            if w_zp:
                s = ir.v(f"sub i64 {s}, {w_zp}")
            f = ir.v(f"sitofp i64 {s} to {ety}")
            ir.emit(f"store {ety} {f}, ptr {ir.v(f'getelementptr {ety}, ptr {drow}, i64 {kk}')}, "
                    f"align {esz}")
            close_kk()
        # bias or the running sum, per row
        outs_base, inits = [], []
        for i in range(mr):
            if fused:  # the i64 sums stay in the part's accumulator tile
                outs_base.append(str(i * npb * nr * 8))
            else:
                yo = ir.v(f"mul i64 {ir.v(f'add i64 {nM}, {mrow[i]}')}, {P * 8}")
                outs_base.append(ir.v(f"add i64 {yo}, {sp.y_addr}"))
            if sp.bias_addr is None:
                inits.append("0")
            else:
                bsz, bsig = DTYPE_INFO[sp.bias_dtype]
                bo = ir.v(f"add i64 {ir.v(f'mul i64 {mrow[i]}, {bsz}')}, {sp.bias_addr}")
                b = ir.v(f"load i{8 * bsz}, ptr {ir.v(f'getelementptr i8, ptr %base, i64 {bo}')}"
                         f", align {bsz}")
                inits.append(ir.v(f"{_ext(bsig)} i{8 * bsz} {b} to i64") if bsz < 8 else b)
        jj, _, close_jj = ir.loop(j0, j1)
        jl = ir.v(f"sub i64 {jj}, {j0}")
        pan = ir.v(f"getelementptr i8, ptr {panels}, i64 {ir.v(f'mul i64 {jl}, {K * nr * esz}')}")
        pan = ir.v(f"getelementptr i8, ptr {pan}, i64 {ir.v(f'mul i64 {k0}, {nr * esz}')}")
        carried = [(vty, "zeroinitializer")] * (2 * mr)
        k, acc, close_k = ir.loop("0", kn, carried)
        pk = ir.v(f"getelementptr i8, ptr {pan}, i64 {ir.v(f'mul i64 {k}, {nr * esz}')}")
        vs = [ir.v(f"load {vty}, ptr {pk}, align 64"),
              ir.v(f"load {vty}, ptr {ir.v(f'getelementptr i8, ptr {pk}, i64 64')}, align 64")]
        nexts = []
        for i in range(mr):
            wp = ir.v(f"getelementptr {ety}, ptr {wt}, i64 {ir.v(f'add i64 {k}, {i * KC}')}")
            sv = ir.splat(ety, vl, ir.v(f"load {ety}, ptr {wp}, align {esz}"))
            for h in range(2):
                nexts.append(ir.v(f"call {vty} {fma}({vty} {sv}, {vty} {vs[h]}, "
                                  f"{vty} {acc[2 * i + h]})"))
        close_k(nexts)
        # flush: y = (first slice ? bias : y) + exact(acc), masked to the valid columns
        c0 = ir.v(f"mul i64 {jj}, {nr}")
        cols = ir.v(f"add <{nr} x i64> {ir.splat('i64', nr, c0)}, "
                    f"{_vconst(nr, list(range(nr)))}")
        cm = ir.v(f"icmp slt <{nr} x i64> {cols}, {_vconst(nr, P)}")
        for i in range(mr):
            if fused:
                c8 = ir.v(f"mul i64 {ir.v(f'sub i64 {jj}, {j0}')}, {nr * 8}")
                yp = ir.v(f"getelementptr i8, ptr {accb}, i64 "
                          f"{ir.v(f'add i64 {outs_base[i]}, {c8}')}")
            else:
                c8 = ir.v(f"mul i64 {c0}, 8")
                yp = ir.v(f"getelementptr i8, ptr %base, i64 "
                          f"{ir.v(f'add i64 {outs_base[i]}, {c8}')}")
            ini = ir.splat("i64", 8, inits[i])
            for h in range(2):
                if vl == 8:
                    parts = [(ir.v(f"fptosi {vty} {acc[2 * i + h]} to <8 x i64>"), h)]
                else:  # 16 f32 lanes -> two <8 x i64> halves
                    wide = ir.v(f"fptosi {vty} {acc[2 * i + h]} to <16 x i64>")
                    parts = [(ir.v(f"shufflevector <16 x i64> {wide}, <16 x i64> poison, "
                                   f"<8 x i32> {_vconst(8, list(range(8 * q, 8 * q + 8)), 'i32')}"),
                              2 * h + q) for q in range(2)]
                for val, q in parts:
                    mq = ir.v(f"shufflevector <{nr} x i1> {cm}, <{nr} x i1> poison, "
                              f"<8 x i32> {_vconst(8, list(range(8 * q, 8 * q + 8)), 'i32')}")
                    p = ir.v(f"getelementptr i8, ptr {yp}, i64 {64 * q}")
                    old = ir.v(f"call <8 x i64> @llvm.masked.load.v8i64.p0(ptr {p}, i32 8, "
                               f"<8 x i1> {mq}, <8 x i64> zeroinitializer)")
                    base_v = ir.v(f"select i1 {first}, <8 x i64> {ini}, <8 x i64> {old}")
                    ir.emit(f"call void @llvm.masked.store.v8i64.p0(<8 x i64> "
                            f"{ir.v(f'add <8 x i64> {base_v}, {val}')}, ptr {p}, i32 8, "
                            f"<8 x i1> {mq})")
        close_jj()
        close_kb()
        if fused:
            _conv_epilogue(ir, sp, mr, r, m0g, nM, j0, j1, accb, nr, npb, P)

    full_lo = m_lo
    ntile = ir.v(f"sdiv i64 {ir.v(f'sub i64 {m_hi}, {m_lo}')}, {FMR}")
    rt, _, close_rt = ir.loop("0", ntile)
    tile(FMR, ir.v(f"add i64 {full_lo}, {ir.v(f'mul i64 {rt}, {FMR}')}"))
    close_rt()
    rest = ir.v(f"add i64 {m_lo}, {ir.v(f'mul i64 {ntile}, {FMR}')}")
    r1, _, close_r1 = ir.loop(rest, m_hi)
    tile(1, r1)
    close_r1()
    close_it()
    head = [f"define void @{fname}(ptr %base, i64 %part, i64 %nparts) {{", "entry:"]
    return "\n".join(head + ir.lines + ["  ret void", "}"]), ir.decls


def _load_res(ir: _Ir, sp: ConvSpec, elem: str, mask: str, n: int) -> str:
    """The residual of a q.conv_rq_add at element ``elem`` of y (n lanes, ``mask``: the
    valid columns; the others are not read), widened to <n x i64>."""
    rsz, rsig = DTYPE_INFO[sp.res_dtype]
    rty = f"i{8 * rsz}"
    ir.decls.add(f"declare <{n} x {rty}> @llvm.masked.load.v{n}{rty}.p0(ptr, i32 immarg, "
                 f"<{n} x i1>, <{n} x {rty}>)")
    ro = ir.v(f"add i64 {ir.v(f'mul i64 {elem}, {rsz}')}, {sp.res_addr}")
    rv = ir.v(f"call <{n} x {rty}> @llvm.masked.load.v{n}{rty}.p0(ptr "
              f"{ir.v(f'getelementptr i8, ptr %base, i64 {ro}')}, i32 {rsz}, <{n} x i1> "
              f"{mask}, <{n} x {rty}> zeroinitializer)")
    return rv if rsz == 8 else ir.v(f"{_ext(rsig)} <{n} x {rty}> {rv} to <{n} x i64>")


def _conv_epilogue(ir: _Ir, sp: ConvSpec, mr: int, r: str, m0g: str, nM: str, j0: str,
                   j1: str, accb: str, nr: int, npb: int, P: int) -> None:
    """A fused conv's final write: y[m, c] = epilogue(acc[m, c]) for the tile's rows and
    the column block's valid columns (``sp.epilogue``: the requant + clamp expression
    over Var("acc") with the output channel as loop level 0, rendered lane-wise)."""
    # llvmgen calls this module; its scalar formulas, lane-wise, render the epilogue
    from opmlc.backend.llvmgen import VecExpr

    osz, _ = DTYPE_INFO[sp.y_dtype]
    oty = f"i{8 * osz}"
    jj, _, close_jj = ir.loop(j0, j1)
    jl = ir.v(f"sub i64 {jj}, {j0}")
    c0 = ir.v(f"mul i64 {jj}, {nr}")
    # rows and 8-lane chunks are loops, not unrolled copies of the epilogue (JIT time)
    i, _, close_i = ir.loop("0", str(mr))
    m = ir.v(f"add i64 {ir.v(f'add i64 {m0g}, {r}')}, {i}")
    nm = ir.v(f"add i64 {nM}, {m}")
    yrow = ir.v(f"add i64 {ir.v(f'mul i64 {nm}, {P * osz}')}, {sp.y_addr}")
    arow = ir.v(f"add i64 {ir.v(f'mul i64 {i}, {npb * nr * 8}')}, "
                f"{ir.v(f'mul i64 {jl}, {nr * 8}')}")
    q, _, close_q = ir.loop("0", str(nr // 8))
    q64 = ir.v(f"mul i64 {q}, 64")
    ap = ir.v(f"getelementptr i8, ptr {accb}, i64 {ir.v(f'add i64 {arow}, {q64}')}")
    acc = ir.v(f"load <8 x i64>, ptr {ap}, align 64")
    vecs = {"acc": acc}
    cq = ir.v(f"add i64 {c0}, {ir.v(f'mul i64 {q}, 8')}")
    if sp.res_addr is not None:
        lanes = ir.v(f"add <8 x i64> {ir.splat('i64', 8, cq)}, {_vconst(8, list(range(8)))}")
        rmask = ir.v(f"icmp slt <8 x i64> {lanes}, {_vconst(8, P)}")
        vecs["res"] = _load_res(ir, sp, ir.v(f"add i64 {ir.v(f'mul i64 {nm}, {P}')}, {cq}"),
                                rmask, 8)
    val = VecExpr(ir, 8, vecs, [m]).val(sp.epilogue)
    if osz < 8:
        val = ir.v(f"trunc <8 x i64> {val} to <8 x {oty}>")
    # a whole chunk is one plain vector store; the last, partial chunk of a row is
    # copied lane by lane (a truncating llvm.masked.store here was compiled, for
    # AVX-512, into a store of a masked-off lane: tests/test_fuse.py)
    yo = ir.v(f"add i64 {yrow}, {ir.v(f'mul i64 {cq}, {osz}')}")
    yp = ir.v(f"getelementptr i8, ptr %base, i64 {yo}")
    whole, part, done = ir.label("ew"), ir.label("ep"), ir.label("ed")
    full = ir.v(f"icmp sle i64 {ir.v(f'add i64 {cq}, 8')}, {P}")
    ir.emit(f"br i1 {full}, label %{whole}, label %{part}")
    ir.lines.append(f"{whole}:")
    ir.emit(f"store <8 x {oty}> {val}, ptr {yp}, align {osz}")
    ir.emit(f"br label %{done}")
    ir.lines.append(f"{part}:")
    # the chunk's accumulators are consumed: park the values there, copy the lanes
    ir.emit(f"store <8 x {oty}> {val}, ptr {ap}, align 64")
    lane, _, close_lane = ir.loop("0", ir.v(f"sub i64 {P}, {cq}"))
    e = ir.v(f"load {oty}, ptr {ir.v(f'getelementptr {oty}, ptr {ap}, i64 {lane}')}, "
             f"align {osz}")
    ir.emit(f"store {oty} {e}, ptr {ir.v(f'getelementptr {oty}, ptr {yp}, i64 {lane}')}, "
            f"align {osz}")
    close_lane()
    ir.emit(f"br label %{done}")
    ir.lines.append(f"{done}:")
    close_q()
    close_i()
    close_jj()


# ---------------------------------------------------------------- int8 dot-product conv
#
# When x and w are 8-bit (the int8 scheme), the sums are formed by a u8 x s8 dot product
# of four adjacent k in i32 lanes: ``@opmlc_dpbusd16`` (spec/OPVM.md 5.1; the runtime
# defines it as AVX-512 VNNI vpdpbusd where the host has it, as plain widening vector
# code elsewhere: the same bits, since every sum is exact). With xu = x - x_zp + XZ and
# ws = w - WS (the bytes of x and w made u8 and s8: XZ = x_zp + 128 for i8 x, WS = 128
# for u8 w) and WZ = w_zp - WS,
#
#     sum_k (x - x_zp)(w - w_zp) = sum_k xu ws - XZ R[m] - WZ Cs[p] + K XZ WZ
#
# with R[m] = sum_k ws[m, k] (from the constant weights at compile time: a table in the
# kernel, never in VM memory) and Cs[p] = sum_k xu[k, p] (per panel, only when WZ != 0).
# The padding packs XZ (so x - x_zp is 0 there). |xu ws| <= 255 * 128, so K * 32640 <
# 2^31 keeps the i32 sum exact; it is widened to i64 before the corrections and the
# epilogue, whose arithmetic is the VM's. A work item is one panel of DNR output columns
# of one (image, group): its im2col columns are packed as bytes k-major, then
# interleaved by four k (panel[q][c][j] = xu[4q + j, c]); every DMR-row tile then runs
# DMR <16 x i32> accumulators over the K / 4 groups, each step one panel vector against
# four broadcast weight bytes per row, and writes its rows through the epilogue.

DNR = 16         # output columns of a dot-product panel (one <16 x i32> vector)
DMR = 16         # rows of its register tile
DPBUSD = "@opmlc_dpbusd16"
DPBUSD_DECL = "declare <16 x i32> @opmlc_dpbusd16(<16 x i32>, <64 x i8>, <64 x i8>)"
_DOT_BOUND = 255 * 128  # max |xu * ws|


@dataclass(frozen=True)
class DotPlan:
    """How :func:`gen_conv_dot` offsets x and w to u8 and s8 (see the section comment)."""

    x_zp_u8: int             # XZ: the byte of x_zp (and of the padding) after the offset
    w_flip: bool             # w is u8: its bytes are xor 0x80 (ws = w - 128)
    w_zp_s8: int             # WZ = w_zp - 128 if w is u8 else w_zp
    corr: tuple[int, ...]    # per output channel m: K XZ WZ - XZ R[m]


def dot_plan(sp: ConvSpec) -> DotPlan | None:
    """The dot-product parameters of a conv description, or None (another kernel)."""
    if sp.x_dtype not in ("i8", "u8") or sp.w_dtype not in ("i8", "u8") or \
            sp.w_rowsum is None:
        return None
    K = sp.reduction
    xz = sp.x_zp + (128 if sp.x_dtype == "i8" else 0)
    if not 0 <= xz <= 255 or K * _DOT_BOUND >= 1 << 31 or K == 0:
        return None
    ws = 128 if sp.w_dtype == "u8" else 0
    wz = sp.w_zp - ws
    corr = tuple(K * xz * wz - xz * (r - ws * K) for r in sp.w_rowsum)
    return DotPlan(x_zp_u8=xz, w_flip=bool(ws), w_zp_s8=wz, corr=corr)


def _kpad(sp: ConvSpec) -> int:
    return -(-sp.reduction // 4) * 4


def conv_dot_scratch_bytes(sp: ConvSpec) -> int:
    """One part's scratch: the k-major byte panel, the interleaved one, 128 bytes where a
    partial output row is parked, a tile's i32 sums (all 64-byte aligned)."""
    return 2 * _dot_half(sp) + 128 + 64 * DMR


def _dot_half(sp: ConvSpec) -> int:
    return -(-_kpad(sp) * DNR // 64) * 64


def _part_range(ir: _Ir, items: int) -> tuple[str, str]:
    """[lo, hi): part ``%part``'s share of ``items`` work items among ``%nparts``."""
    lo = ir.v(f"sdiv i64 {ir.v(f'mul i64 %part, {items}')}, %nparts")
    p1 = ir.v("add i64 %part, 1")
    hi = ir.v(f"sdiv i64 {ir.v(f'mul i64 {p1}, {items}')}, %nparts")
    return lo, hi


def _mat_block(ir: _Ir, ms: MatSpec, rest: str, NJ: int, width: int  # noqa: N803
               ) -> tuple[list[str], str, str, str, str]:
    """A matmul work item's column block and batch from ``rest`` = block + NJ * batch
    (row-major over ms.batch): (batch indices, first column j0, columns left N - j0, the
    lanes' in-range mask, the lanes' columns clamped into range for the epilogue's
    per-column loads)."""
    N = ms.cols  # noqa: N806
    jb = ir.v(f"urem i64 {rest}, {NJ}")
    rest = ir.v(f"udiv i64 {rest}, {NJ}")
    bidx = [""] * len(ms.batch)
    for lv in reversed(range(len(ms.batch))):
        bidx[lv] = ir.v(f"urem i64 {rest}, {ms.batch[lv]}")
        rest = ir.v(f"udiv i64 {rest}, {ms.batch[lv]}")
    j0 = ir.v(f"mul i64 {jb}, {width}")
    ncols = ir.v(f"sub i64 {N}, {j0}")
    lanes = ir.v(f"add <{width} x i64> {ir.splat('i64', width, j0)}, "
                 f"{_vconst(width, list(range(width)))}")
    mask = ir.v(f"icmp slt <{width} x i64> {lanes}, {_vconst(width, N)}")
    jv = ir.v(f"select <{width} x i1> {mask}, <{width} x i64> {lanes}, <{width} x i64> "
              f"{_vconst(width, N - 1)}")
    return bidx, j0, ncols, mask, jv


def _gep(ir: _Ir, p: str, off: str) -> str:
    return ir.v(f"getelementptr i8, ptr {p}, i64 {off}")


def _splat_bytes(ir: _Ir, w32: str) -> str:
    """Four weight bytes (an i32) broadcast to the 64 bytes of a dot-product operand."""
    return ir.v(f"bitcast <16 x i32> {ir.splat('i32', 16, w32)} to <64 x i8>")


def _store_cols(ir: _Ir, val: str, ety: str, esz: int, yp: str, ncols: str,
                scratch: str, n: int = 16) -> None:
    """y[0 : n] = val when all n columns are valid (ncols >= n), else lane by lane
    y[0 : ncols] through ``scratch`` (no masked narrowing store: see _conv_epilogue)."""
    whole, part, done = ir.label("dw"), ir.label("dp"), ir.label("dd")
    full = ir.v(f"icmp sge i64 {ncols}, {n}")
    ir.emit(f"br i1 {full}, label %{whole}, label %{part}")
    ir.lines.append(f"{whole}:")
    ir.emit(f"store <{n} x {ety}> {val}, ptr {yp}, align {esz}")
    ir.emit(f"br label %{done}")
    ir.lines.append(f"{part}:")
    ir.emit(f"store <{n} x {ety}> {val}, ptr {scratch}, align 64")
    lane, _, close = ir.loop("0", ncols)
    e = ir.v(f"load {ety}, ptr {ir.v(f'getelementptr {ety}, ptr {scratch}, i64 {lane}')}, "
             f"align {esz}")
    ir.emit(f"store {ety} {e}, ptr {ir.v(f'getelementptr {ety}, ptr {yp}, i64 {lane}')}, "
            f"align {esz}")
    close()
    ir.emit(f"br label %{done}")
    ir.lines.append(f"{done}:")


def _dot_item(ir: _Ir, it: str, NP: int, G: int) -> tuple[str, str, str]:  # noqa: N803
    """(image n, group g, panel pj) of work item ``it`` of a dot-product conv."""
    ng = ir.v(f"udiv i64 {it}, {NP}")
    pj = ir.v(f"urem i64 {it}, {NP}")
    return ir.v(f"udiv i64 {ng}, {G}"), ir.v(f"urem i64 {ng}, {G}"), pj


def _dot_columns(ir: _Ir, sp: ConvSpec, n: str, g: str, pj: str, kmaj: str, ety: str,
                 esz: int, u8_zp: int) -> tuple[str, str, str]:
    """Pack panel pj of (image n, group g) k-major into kmaj as unsigned words of ety
    (x - x_zp + u8_zp, :func:`_pack_columns`), the rows K..Kp zero; (first column p0,
    columns left, the columns' valid mask)."""
    P, HW = _prod(sp.out_shape), _prod(sp.in_shape)
    xsz, _ = DTYPE_INFO[sp.x_dtype]
    p0 = ir.v(f"mul i64 {pj}, {DNR}")
    ncols = ir.v(f"sub i64 {P}, {p0}")
    ch = ir.v(f"add i64 {ir.v(f'mul i64 {n}, {sp.channels}')}, "
              f"{ir.v(f'mul i64 {g}, {sp.in_per_group}')}")
    xo = ir.v(f"mul i64 {ch}, {HW * xsz}")
    xb = _gep(ir, "%base", ir.v(f"add i64 {xo}, {sp.x_addr}"))
    colmask, starts = _window_starts(ir, sp, p0, DNR)
    _pack_columns(ir, sp, xb, p0, colmask, starts, kmaj, ety, esz, DNR, u8_zp=u8_zp)
    for k in range(sp.reduction, _kpad(sp)):  # the last group's missing k: zero words
        ir.emit(f"store <16 x {ety}> zeroinitializer, ptr "
                f"{ir.v(f'getelementptr i8, ptr {kmaj}, i64 {k * DNR * esz}')}, "
                f"align {16 * esz}")
    return p0, ncols, colmask


def _interleave4(ir: _Ir, rows: list[str]) -> str:
    """Four <16 x i8> rows (k = 4q .. 4q + 3) as one dot-product operand: v[4c + j] =
    rows[j][c]."""
    ab = ir.v(f"shufflevector <16 x i8> {rows[0]}, <16 x i8> {rows[1]}, "
              f"<32 x i32> {_vconst(32, list(range(32)), 'i32')}")
    cd = ir.v(f"shufflevector <16 x i8> {rows[2]}, <16 x i8> {rows[3]}, "
              f"<32 x i32> {_vconst(32, list(range(32)), 'i32')}")
    inter = [16 * j + c for c in range(DNR) for j in range(4)]
    return ir.v(f"shufflevector <32 x i8> {ab}, <32 x i8> {cd}, "
                f"<64 x i32> {_vconst(64, inter, 'i32')}")


def _dot_row_out(ir: _Ir, sp: ConvSpec, a: str, m: str, corr: str, nM: str,  # noqa: N803
                 p0: str, colmask: str, ncols: str, parkp: str, cs: str | None) -> None:
    """Output row m of a dot-product conv tile from its sums a (<16 x i64>): + corr[m] +
    bias[m] (- cs, the columns' correction), the epilogue lane-wise (the residual read
    at the valid columns), stored at y[n, m, p0 : p0 + 16] (the last panel's columns
    through ``parkp``)."""
    from opmlc.backend.llvmgen import VecExpr

    M, P = sp.groups * sp.out_per_group, _prod(sp.out_shape)
    osz, _ = DTYPE_INFO[sp.y_dtype]
    oty = f"i{8 * osz}"
    cp = ir.v(f"getelementptr [{M} x i64], ptr {corr}, i64 0, i64 {m}")
    c = ir.v(f"load i64, ptr {cp}, align 8")
    if sp.bias_addr is not None:
        bsz, bsig = DTYPE_INFO[sp.bias_dtype]
        bo = ir.v(f"add i64 {ir.v(f'mul i64 {m}, {bsz}')}, {sp.bias_addr}")
        b = ir.v(f"load i{8 * bsz}, ptr {_gep(ir, '%base', bo)}, align {bsz}")
        if bsz < 8:
            b = ir.v(f"{_ext(bsig)} i{8 * bsz} {b} to i64")
        c = ir.v(f"add i64 {c}, {b}")
    a = ir.v(f"add <16 x i64> {a}, {ir.splat('i64', 16, c)}")
    if cs is not None:
        a = ir.v(f"sub <16 x i64> {a}, {cs}")
    val = a
    if sp.epilogue is not None:
        vecs = {"acc": a}
        if sp.res_addr is not None:
            row = ir.v(f"mul i64 {ir.v(f'add i64 {nM}, {m}')}, {P}")
            ro = ir.v(f"add i64 {row}, {p0}")
            vecs["res"] = _load_res(ir, sp, ro, colmask, 16)
        val = VecExpr(ir, 16, vecs, [m]).val(sp.epilogue)
    if osz < 8:
        val = ir.v(f"trunc <16 x i64> {val} to <16 x {oty}>")
    yo = ir.v(f"mul i64 {ir.v(f'add i64 {nM}, {m}')}, {P}")
    yo = ir.v(f"mul i64 {ir.v(f'add i64 {yo}, {p0}')}, {osz}")
    yo = ir.v(f"add i64 {yo}, {sp.y_addr}")
    _store_cols(ir, val, oty, osz, _gep(ir, "%base", yo), ncols, parkp)


def _row_tiles(ir: _Ir, rows: int, R: int, tile) -> None:  # noqa: N803
    """tile(R, r) for the full R-row tiles of ``rows`` (a loop), then tile(rest, r)."""
    full = rows // R
    if full:
        rt, _, close_r = ir.loop("0", str(full))
        tile(R, ir.v(f"mul i64 {rt}, {R}"))
        close_r()
    if rows % R:
        tile(rows % R, str(full * R))


def gen_conv_dot(sp: ConvSpec, dp: DotPlan, fname: str) -> tuple[str, set[str]]:
    """The int8 dot-product kernel of a q.conv / q.conv_rq (see the section comment)."""
    N, G, Mg = sp.batch, sp.groups, sp.out_per_group
    P = _prod(sp.out_shape)
    K, M, Kp = sp.reduction, G * Mg, _kpad(sp)
    NQ, KT = K // 4, K % 4
    NP = -(-P // DNR)
    items = N * G * NP
    half = _dot_half(sp)
    ir = _Ir()
    ir.decls.add(DPBUSD_DECL)
    corr = f"@{fname}.corr"
    ir.decls.add(f"{corr} = internal constant [{M} x i64] "
                 f"[{', '.join(f'i64 {c}' for c in dp.corr)}], align 8")
    po = ir.v(f"mul i64 %part, {conv_dot_scratch_bytes(sp)}")
    kmaj = ir.v(f"getelementptr i8, ptr {SCRATCH}, i64 {po}")
    panel = ir.v(f"getelementptr i8, ptr {kmaj}, i64 {half}")
    lo, hi = _part_range(ir, items)
    it, _, close_it = ir.loop(lo, hi)
    n, g, pj = _dot_item(ir, it, NP, G)
    p0, ncols, colmask = _dot_columns(ir, sp, n, g, pj, kmaj, "i8", 1, dp.x_zp_u8)
    # interleave: panel[q][c][j] = kmaj[4q + j][c]
    q, _, close_q = ir.loop("0", str(Kp // 4))
    src = ir.v(f"getelementptr i8, ptr {kmaj}, i64 {ir.v(f'mul i64 {q}, {4 * DNR}')}")
    rows = [ir.v(f"load <16 x i8>, ptr {ir.v(f'getelementptr i8, ptr {src}, i64 {16 * j}')}, "
                 f"align 16") for j in range(4)]
    v = _interleave4(ir, rows)
    ir.emit(f"store <64 x i8> {v}, ptr {_gep(ir, panel, ir.v(f'mul i64 {q}, 64'))}, "
            "align 64")
    close_q()
    cs = None
    if dp.w_zp_s8:  # Cs[p] = sum_k xu[k, p]: the panel against bytes of ones
        ones = _splat_bytes(ir, str(0x01010101))
        q, (acc,), close_q = ir.loop("0", str(Kp // 4), [("<16 x i32>", "zeroinitializer")])
        pv = ir.v(f"load <64 x i8>, ptr {_gep(ir, panel, ir.v(f'mul i64 {q}, 64'))}, "
                  "align 64")
        nxt = ir.v(f"call <16 x i32> {DPBUSD}(<16 x i32> {acc}, <64 x i8> {pv}, <64 x i8> {ones})")
        close_q([nxt])
        cs = ir.v(f"mul <16 x i64> {ir.v(f'sext <16 x i32> {acc} to <16 x i64>')}, "
                  f"{_vconst(16, dp.w_zp_s8)}")
    m0g = ir.v(f"mul i64 {g}, {Mg}")
    nM = ir.v(f"mul i64 {n}, {M}")
    parkp = _gep(ir, kmaj, str(2 * half))
    accs = _gep(ir, kmaj, str(2 * half + 128))

    def wbytes(wrow: str, qi: str, tail: bool) -> str:
        """The four weight bytes of group qi of a row (zero past K), broadcast."""
        off = ir.v(f"mul i64 {qi}, 4")
        if not tail:
            w32 = ir.v(f"load i32, ptr {_gep(ir, wrow, off)}, align 1")
        else:
            w32 = "0"
            for j in range(KT):
                b = ir.v(f"load i8, ptr {_gep(ir, wrow, str(4 * NQ + j))}, align 1")
                b = ir.v(f"shl i32 {ir.v(f'zext i8 {b} to i32')}, {8 * j}")
                w32 = ir.v(f"or i32 {w32}, {b}")
        if dp.w_flip:
            flip = sum(0x80 << (8 * j) for j in range(KT if tail else 4))
            w32 = ir.v(f"xor i32 {w32}, {flip}")
        return _splat_bytes(ir, w32)

    def tile(mr: int, r: str) -> None:
        mrow = [ir.v(f"add i64 {ir.v(f'add i64 {m0g}, {r}')}, {i}") for i in range(mr)]
        wrows = [_gep(ir, "%base", ir.v(f"add i64 {ir.v(f'mul i64 {m}, {K}')}, {sp.w_addr}"))
                 for m in mrow]
        acc = ["zeroinitializer"] * mr
        if NQ:
            q, acc, close_q = ir.loop("0", str(NQ), [("<16 x i32>", "zeroinitializer")] * mr)
            pv = ir.v(f"load <64 x i8>, ptr {_gep(ir, panel, ir.v(f'mul i64 {q}, 64'))}, "
                      "align 64")
            close_q([ir.v(f"call <16 x i32> {DPBUSD}(<16 x i32> {acc[i]}, <64 x i8> {pv}, "
                          f"<64 x i8> {wbytes(wrows[i], q, False)})") for i in range(mr)])
        if KT:
            pv = ir.v(f"load <64 x i8>, ptr {_gep(ir, panel, str(64 * NQ))}, align 64")
            acc = [ir.v(f"call <16 x i32> {DPBUSD}(<16 x i32> {acc[i]}, <64 x i8> {pv}, "
                        f"<64 x i8> {wbytes(wrows[i], str(NQ), True)})") for i in range(mr)]
        # the epilogue once, in a loop over the tile's rows (the sums parked in scratch):
        # a small function, not DMR unrolled copies of the requant
        for i in range(mr):
            ir.emit(f"store <16 x i32> {acc[i]}, ptr {_gep(ir, accs, str(64 * i))}, align 64")
        i, _, close_i = ir.loop("0", str(mr))
        m = ir.v(f"add i64 {ir.v(f'add i64 {m0g}, {r}')}, {i}")
        a = ir.v(f"load <16 x i32>, ptr {_gep(ir, accs, ir.v(f'mul i64 {i}, 64'))}, align 64")
        a = ir.v(f"sext <16 x i32> {a} to <16 x i64>")
        _dot_row_out(ir, sp, a, m, corr, nM, p0, colmask, ncols, parkp, cs)
        close_i()

    _row_tiles(ir, Mg, DMR, tile)
    close_it()
    head = [f"define void @{fname}(ptr %base, i64 %part, i64 %nparts) {{", "entry:"]
    return "\n".join(head + ir.lines + ["  ret void", "}"]), ir.decls


# ---------------------------------------------------------------- 16-bit dot-product conv
#
# The fixed scheme's narrow activations (i16 x, ``--act-dtype i16``) against its i16
# weights, on the same u8 x s8 dot product: both words are split into bytes. With xu =
# x - x_zp + XZ (XZ = x_zp + 32768: x xor 0x8000, in [0, 65535]) = 256 xh + xl and
# w = 256 wh + wl' + 128 (wh = w >> 8 signed, wl' = (w & 255) - 128, both s8),
#
#     sum_k xu w = 65536 A + 256 B + C + 128 Cs[p]
#     A = sum xh wh,  B = sum (xh wl' + xl wh),  C = sum xl wl',  Cs[p] = sum_k xu[k, p]
#
# each of A, B, C exact in i32 lanes while 2 K 255 * 128 < 2^31, and then, as for int8,
# sum_k (x - x_zp)(w - w_zp) = sum_k xu w - XZ R[m] - w_zp Cs[p] + K XZ w_zp. A work item
# is one panel of DNR columns of one (image, group) as in gen_conv_dot: its im2col
# columns are packed as u16 words, k-major, then split into a high-byte and a low-byte
# panel interleaved by four k; the group's weight rows are split into a high-byte and a
# low-byte copy (s8, K padded to a multiple of 4) when the part's previous item had
# another group; every D16R-row tile then runs 3 D16R <16 x i32> accumulators, four
# dot products per row and group of four k, and writes its rows through the epilogue.

D16R = 8                 # rows of the 16-bit tile (24 accumulators)
D16_MAX_W = 4 << 20      # bytes of a group's split weights at most (a part's scratch)
_DOT16_BOUND = 2 * 255 * 128  # max |xh wl' + xl wh|


@dataclass(frozen=True)
class Dot16Plan:
    """The corrections of :func:`gen_conv_dot16` (see the section comment)."""

    x_zp_u16: int            # XZ = x_zp + 32768
    corr: tuple[int, ...]    # per output channel m: K XZ w_zp - XZ R[m]


def dot16_plan(sp: ConvSpec) -> Dot16Plan | None:
    """The 16-bit dot-product parameters of a conv description, or None."""
    if sp.x_dtype != "i16" or sp.w_dtype != "i16" or sp.w_rowsum is None:
        return None
    K = sp.reduction
    if K == 0 or K * _DOT16_BOUND >= 1 << 31 or not -32768 <= sp.x_zp <= 32767:
        return None
    if 2 * sp.out_per_group * _kpad(sp) > D16_MAX_W:
        return None
    xz = sp.x_zp + 32768
    return Dot16Plan(x_zp_u16=xz,
                     corr=tuple(K * xz * sp.w_zp - xz * r for r in sp.w_rowsum))


def conv_dot16_scratch_bytes(sp: ConvSpec) -> int:
    """One part's scratch: the k-major u16 panel, the two byte panels, 128 bytes where a
    partial output row is parked, a tile's i32 sums, the group's two weight copies."""
    kp = _kpad(sp)
    return kp * DNR * 2 + 2 * kp * DNR + 128 + 3 * 64 * D16R + \
        -(-2 * sp.out_per_group * kp // 64) * 64  # parts 64-byte aligned


def gen_conv_dot16(sp: ConvSpec, dp: Dot16Plan, fname: str) -> tuple[str, set[str]]:
    """The 16-bit dot-product kernel of a q.conv / q.conv_rq (see the section comment)."""
    N, G, Mg = sp.batch, sp.groups, sp.out_per_group
    P = _prod(sp.out_shape)
    K, M, Kp = sp.reduction, G * Mg, _kpad(sp)
    NQ = Kp // 4
    NP = -(-P // DNR)
    items = N * G * NP
    ir = _Ir()
    ir.decls.add(DPBUSD_DECL)
    ir.decls.add("declare <32 x i16> @llvm.masked.load.v32i16.p0(ptr, i32 immarg, <32 x i1>, "
                 "<32 x i16>)")
    corr = f"@{fname}.corr"
    ir.decls.add(f"{corr} = internal constant [{M} x i64] "
                 f"[{', '.join(f'i64 {c}' for c in dp.corr)}], align 8")
    base = _gep(ir, SCRATCH, ir.v(f"mul i64 %part, {conv_dot16_scratch_bytes(sp)}"))
    kmaj = base
    ph = _gep(ir, kmaj, str(Kp * DNR * 2))
    pl = _gep(ir, ph, str(Kp * DNR))
    parkp = _gep(ir, pl, str(Kp * DNR))
    accs = _gep(ir, parkp, "128")
    wh = _gep(ir, accs, str(3 * 64 * D16R))
    wl = _gep(ir, wh, str(Mg * Kp))
    lo, hi = _part_range(ir, items)
    it, (last,), close_it = ir.loop(lo, hi, [("i64", "-1")])
    n, g, pj = _dot_item(ir, it, NP, G)
    # the group's weights split into bytes when this part's previous item had another
    sw, sd = ir.label("sw"), ir.label("sd")
    ir.emit(f"br i1 {ir.v(f'icmp ne i64 {g}, {last}')}, label %{sw}, label %{sd}")
    ir.lines.append(f"{sw}:")
    r, _, close_r = ir.loop("0", str(Mg))
    m = ir.v(f"add i64 {ir.v(f'mul i64 {g}, {Mg}')}, {r}")
    wrow = _gep(ir, "%base", ir.v(f"add i64 {ir.v(f'mul i64 {m}, {2 * K}')}, {sp.w_addr}"))
    dro = ir.v(f"mul i64 {r}, {Kp}")
    for c in range(-(-K // 32)):
        cnt = min(32, K - 32 * c)
        src = _gep(ir, wrow, str(64 * c))
        if cnt == 32:
            w = ir.v(f"load <32 x i16>, ptr {src}, align 2")
        else:
            mk = _vconst(32, ["true"] * cnt + ["false"] * (32 - cnt), "i1")
            w = ir.v(f"call <32 x i16> @llvm.masked.load.v32i16.p0(ptr {src}, i32 2, "
                     f"<32 x i1> {mk}, <32 x i16> zeroinitializer)")
        sh8 = _vconst(32, 8, "i16")
        hb = ir.v(f"trunc <32 x i16> {ir.v(f'ashr <32 x i16> {w}, {sh8}')} to <32 x i8>")
        lb = ir.v(f"xor <32 x i8> {ir.v(f'trunc <32 x i16> {w} to <32 x i8>')}, "
                  f"{_vconst(32, -128, 'i8')}")
        # a row's copy is Kp bytes: the last chunk's bytes past Kp are not stored
        keep = min(32, Kp - 32 * c)
        for dst, v in ((wh, hb), (wl, lb)):
            if keep < 32:
                v = ir.v(f"shufflevector <32 x i8> {v}, <32 x i8> poison, "
                         f"<{keep} x i32> {_vconst(keep, list(range(keep)), 'i32')}")
            off = ir.v(f"add i64 {dro}, {32 * c}")
            ir.emit(f"store <{keep} x i8> {v}, ptr {_gep(ir, dst, off)}, align 1")
    close_r()
    ir.emit(f"br label %{sd}")
    ir.lines.append(f"{sd}:")
    p0, ncols, colmask = _dot_columns(ir, sp, n, g, pj, kmaj, "i16", 2, dp.x_zp_u16)
    # split and interleave: ph[q][c][j] = kmaj[4q + j][c] >> 8, pl the low bytes; the
    # columns' sums Cs = 256 sum(ph) + sum(pl) against bytes of ones
    ones = _splat_bytes(ir, str(0x01010101))
    q, (csh, csl), close_q = ir.loop("0", str(NQ), [("<16 x i32>", "zeroinitializer")] * 2)
    src = _gep(ir, kmaj, ir.v(f"mul i64 {q}, {4 * DNR * 2}"))
    rows = [ir.v(f"load <16 x i16>, ptr {_gep(ir, src, str(32 * j))}, align 32")
            for j in range(4)]
    nxt = []
    for dst, acc, hi_byte in ((ph, csh, True), (pl, csl, False)):
        sh8 = _vconst(16, 8, "i16")
        bs = [ir.v(f"trunc <16 x i16> {ir.v(f'lshr <16 x i16> {v}, {sh8}')} to <16 x i8>")
              if hi_byte else ir.v(f"trunc <16 x i16> {v} to <16 x i8>") for v in rows]
        v = _interleave4(ir, bs)
        ir.emit(f"store <64 x i8> {v}, ptr {_gep(ir, dst, ir.v(f'mul i64 {q}, 64'))}, "
                "align 64")
        nxt.append(ir.v(f"call <16 x i32> {DPBUSD}(<16 x i32> {acc}, <64 x i8> {v}, "
                        f"<64 x i8> {ones})"))
    close_q(nxt)
    csh64 = ir.v(f"sext <16 x i32> {csh} to <16 x i64>")
    cs = ir.v(f"add <16 x i64> {ir.v(f'shl <16 x i64> {csh64}, {_vconst(16, 8)}')}, "
              f"{ir.v(f'sext <16 x i32> {csl} to <16 x i64>')}")
    # sum_k xu w - w_zp Cs = 65536 A + 256 B + C + (128 - w_zp) Cs: minus this
    colterm = ir.v(f"mul <16 x i64> {cs}, {_vconst(16, sp.w_zp - 128)}")
    m0g = ir.v(f"mul i64 {g}, {Mg}")
    nM = ir.v(f"mul i64 {n}, {M}")

    def wbytes(copy: str, row: str, qi: str) -> str:
        off = ir.v(f"add i64 {ir.v(f'mul i64 {row}, {Kp}')}, {ir.v(f'mul i64 {qi}, 4')}")
        return _splat_bytes(ir, ir.v(f"load i32, ptr {_gep(ir, copy, off)}, align 1"))

    def tile(mr: int, r: str) -> None:
        rws = [ir.v(f"add i64 {r}, {i}") for i in range(mr)]
        q, acc, close_q = ir.loop("0", str(NQ), [("<16 x i32>", "zeroinitializer")] * (3 * mr))
        vh = ir.v(f"load <64 x i8>, ptr {_gep(ir, ph, ir.v(f'mul i64 {q}, 64'))}, align 64")
        vl = ir.v(f"load <64 x i8>, ptr {_gep(ir, pl, ir.v(f'mul i64 {q}, 64'))}, align 64")
        nxt = []
        for i in range(mr):
            bh, bl = wbytes(wh, rws[i], q), wbytes(wl, rws[i], q)
            a_, b_, c_ = acc[3 * i: 3 * i + 3]
            a_ = ir.v(f"call <16 x i32> {DPBUSD}(<16 x i32> {a_}, <64 x i8> {vh}, <64 x i8> {bh})")
            b_ = ir.v(f"call <16 x i32> {DPBUSD}(<16 x i32> {b_}, <64 x i8> {vh}, <64 x i8> {bl})")
            b_ = ir.v(f"call <16 x i32> {DPBUSD}(<16 x i32> {b_}, <64 x i8> {vl}, <64 x i8> {bh})")
            c_ = ir.v(f"call <16 x i32> {DPBUSD}(<16 x i32> {c_}, <64 x i8> {vl}, <64 x i8> {bl})")
            nxt += [a_, b_, c_]
        close_q(nxt)
        for j, a in enumerate(acc):
            ir.emit(f"store <16 x i32> {a}, ptr {_gep(ir, accs, str(64 * j))}, align 64")
        # the epilogue once, in a loop over the tile's rows (the sums parked in scratch)
        i, _, close_i = ir.loop("0", str(mr))
        m = ir.v(f"add i64 {ir.v(f'add i64 {m0g}, {r}')}, {i}")
        ao = ir.v(f"mul i64 {i}, 192")

        def part(k: int) -> str:
            v = ir.v(f"load <16 x i32>, ptr {_gep(ir, accs, ir.v(f'add i64 {ao}, {64 * k}'))}, "
                     "align 64")
            return ir.v(f"sext <16 x i32> {v} to <16 x i64>")

        a = ir.v(f"shl <16 x i64> {part(0)}, {_vconst(16, 16)}")
        a = ir.v(f"add <16 x i64> {a}, {ir.v(f'shl <16 x i64> {part(1)}, {_vconst(16, 8)}')}")
        a = ir.v(f"add <16 x i64> {a}, {part(2)}")
        _dot_row_out(ir, sp, a, m, corr, nM, p0, colmask, ncols, parkp, colterm)
        close_i()

    _row_tiles(ir, Mg, D16R, tile)
    close_it([g])
    head = [f"define void @{fname}(ptr %base, i64 %part, i64 %nparts) {{", "entry:"]
    return "\n".join(head + ir.lines + ["  ret void", "}"]), ir.decls


# ---------------------------------------------------------------- depthwise conv
#
# A conv with one input channel per group (depthwise, and any conv of a one-channel x)
# as a direct stencil, no im2col: a work item is one output plane (image n, output
# channel m). It copies x's channel plane, x - x_zp widened to the lane type, into a
# zero-bordered scratch plane (the padding and every column a vector reads past the
# row: 0, so they add nothing), then every row of output runs DWL-column vectors:
# acc = sum over the K taps of plane[oh S_h + j_h D_h][ow S_w + j_w D_w] * (w[m, j] - w_zp)
# (a stride > 1 loads S_w DWL contiguous lanes and keeps every S_w-th), widened to i64,
# plus bias[m], through the epilogue and stored. The lanes are i32 when every sum is
# bounded below 2^31 (K max|x - x_zp| max|w - w_zp|: the int8 scheme), else wrapping
# i64, the VM's own arithmetic: the bytes equal the VM's either way.

DWL = 16            # output columns of one vector
DW_MAX_K = 64       # taps unrolled at most
DW_MAX_STRIDE = 4
DW_MAX_PLANE = 1 << 20  # bytes of one part's scratch plane at most
DW_MARK = "; opmlc depthwise stencil"


@dataclass(frozen=True)
class DwPlan:
    """The scratch plane of :func:`gen_conv_dw` (2-D; a 1-D conv is one row)."""

    wide: bool    # i64 lanes (else i32)
    rows: int     # Hp: (OH - 1) S_h + (KH - 1) D_h + 1
    cols: int     # Wp, the row pitch: ceil(OW / DWL) DWL S_w + (KW - 1) D_w
    dims: tuple   # ((KH, KW), (H, W), (OH, OW), (S_h, S_w), (D_h, D_w), (P_h, P_w))

    @property
    def esz(self) -> int:
        return 8 if self.wide else 4

    @property
    def plane_bytes(self) -> int:
        return -(-self.rows * self.cols * self.esz // 64) * 64


def _as_2d(sp: ConvSpec) -> tuple:
    if len(sp.kernel_shape) == 2:
        return (tuple(sp.kernel_shape), tuple(sp.in_shape), tuple(sp.out_shape),
                tuple(sp.strides), tuple(sp.dilations), tuple(sp.pads))
    return ((1, sp.kernel_shape[0]), (1, sp.in_shape[0]), (1, sp.out_shape[0]),
            (1, sp.strides[0]), (1, sp.dilations[0]), (0, sp.pads[0]))


def dw_plan(sp: ConvSpec) -> DwPlan | None:
    """The stencil plan of a conv with one input channel per group, or None."""
    if sp.in_per_group != 1 or len(sp.kernel_shape) not in (1, 2) or \
            sp.reduction > DW_MAX_K or max(sp.strides) > DW_MAX_STRIDE or \
            _prod(sp.out_shape) == 0:
        return None
    dims = _as_2d(sp)
    (KH, KW), _, (OH, OW), (SH, SW), (DH, DW), _ = dims
    xlo, xhi = _drange(sp.x_dtype)
    wlo, whi = _drange(sp.w_dtype)
    xb = max(abs(xlo - sp.x_zp), abs(xhi - sp.x_zp))
    wb = sp.w_absmax if sp.w_absmax is not None else \
        max(abs(wlo - sp.w_zp), abs(whi - sp.w_zp))
    plan = DwPlan(wide=sp.reduction * xb * wb >= 1 << 31,
                  rows=(OH - 1) * SH + (KH - 1) * DH + 1,
                  cols=-(-OW // DWL) * DWL * SW + (KW - 1) * DW, dims=dims)
    return plan if plan.plane_bytes <= DW_MAX_PLANE else None


def conv_dw_scratch_bytes(dp: DwPlan) -> int:
    """One part's scratch: the plane, DWL lanes of slack, 128 bytes to park a row end."""
    return dp.plane_bytes + 64 * dp.esz // 4 + 128


def _plane_rows(ir: _Ir, dp: DwPlan, xc: str, plane: str, x_dtype: str, x_zp: int,
                pad: str) -> None:
    """Copy the rows of x's plane at ``xc`` into the scratch plane (row pitch Wp, from
    row PT, column PL), x - x_zp widened (or narrowed) to the lanes; a row's lanes past x
    get ``pad``, which may spill into the next row's first columns: only its padding,
    or bytes its own copy writes later."""
    (_, _), (H, W), _, _, _, (PT, PL) = dp.dims
    Hp, Wp, esz = dp.rows, dp.cols, dp.esz
    lty = "i64" if dp.wide else "i32"
    vt = f"<{DWL} x {lty}>"
    xsz, xsig = DTYPE_INFO[x_dtype]
    xty = f"i{8 * xsz}"
    ncopy = min(W, Wp - PL)
    if ncopy <= 0 or min(H, Hp - PT) <= 0:
        return
    ir.decls.add(f"declare <{DWL} x {xty}> @llvm.masked.load.v{DWL}{xty}.p0(ptr, i32 immarg, "
                 f"<{DWL} x i1>, <{DWL} x {xty}>)")
    ih, _, close_ih = ir.loop("0", str(min(H, Hp - PT)))
    src = _gep(ir, xc, ir.v(f"mul i64 {ih}, {W * xsz}"))
    r0 = ir.v(f"add i64 {ir.v(f'mul i64 {ih}, {Wp}')}, {PT * Wp + PL}")
    dst = _gep(ir, plane, ir.v(f"mul i64 {r0}, {esz}"))
    c, _, close_c = ir.loop("0", str(-(-ncopy // DWL)))
    c0 = ir.v(f"mul i64 {c}, {DWL}")
    lanes = ir.v(f"add <{DWL} x i64> {ir.splat('i64', DWL, c0)}, "
                 f"{_vconst(DWL, list(range(DWL)))}")
    mask = ir.v(f"icmp slt <{DWL} x i64> {lanes}, {_vconst(DWL, ncopy)}")
    xv = ir.v(f"call <{DWL} x {xty}> @llvm.masked.load.v{DWL}{xty}.p0(ptr "
              f"{_gep(ir, src, ir.v(f'mul i64 {c0}, {xsz}'))}, i32 {xsz}, <{DWL} x i1> "
              f"{mask}, <{DWL} x {xty}> zeroinitializer)")
    if xsz < esz:
        xv = ir.v(f"{_ext(xsig)} <{DWL} x {xty}> {xv} to {vt}")
    elif xsz > esz:
        xv = ir.v(f"trunc <{DWL} x {xty}> {xv} to {vt}")
    if x_zp:
        xv = ir.v(f"sub {vt} {xv}, {_vconst(DWL, x_zp, lty)}")
    xv = ir.v(f"select <{DWL} x i1> {mask}, {vt} {xv}, {vt} {pad}")
    ir.emit(f"store {vt} {xv}, ptr {_gep(ir, dst, ir.v(f'mul i64 {c0}, {esz}'))}, "
            f"align {esz}")
    close_c()
    close_ih()


def _stencil_taps(ir: _Ir, dp: DwPlan, colp: str) -> list[str]:
    """The window's taps for the DWL output columns whose first window starts at
    ``colp`` in the plane: one vector per tap (a stride > 1 loads S_w DWL lanes and keeps
    every S_w-th)."""
    (KH, KW), _, _, (_, SW), (DH, DW), _ = dp.dims
    Wp, esz = dp.cols, dp.esz
    lty = "i64" if dp.wide else "i32"
    vt = f"<{DWL} x {lty}>"
    out = []
    for t in range(KH * KW):
        jh, jw = divmod(t, KW)
        tp = _gep(ir, colp, str((jh * DH * Wp + jw * DW) * esz))
        if SW == 1:
            out.append(ir.v(f"load {vt}, ptr {tp}, align {esz}"))
            continue
        wt = f"<{DWL * SW} x {lty}>"
        wide = ir.v(f"load {wt}, ptr {tp}, align {esz}")
        out.append(ir.v(f"shufflevector {wt} {wide}, {wt} poison, "
                        f"<{DWL} x i32> {_vconst(DWL, [SW * i for i in range(DWL)], 'i32')}"))
    return out


def gen_conv_dw(sp: ConvSpec, dp: DwPlan, fname: str) -> tuple[str, set[str]]:
    """The depthwise stencil kernel of a q.conv / q.conv_rq (see the section comment)."""
    from opmlc.backend.llvmgen import VecExpr

    (KH, KW), (H, W), (OH, OW), (SH, SW), (DH, DW), (PT, PL) = dp.dims
    N, C, G, Mg = sp.batch, sp.channels, sp.groups, sp.out_per_group
    M, K, P, Wp = G * Mg, sp.reduction, OH * OW, dp.cols
    NCH = -(-OW // DWL)
    xsz, _ = DTYPE_INFO[sp.x_dtype]
    wsz, wsig = DTYPE_INFO[sp.w_dtype]
    osz, _ = DTYPE_INFO[sp.y_dtype]
    wty, oty = f"i{8 * wsz}", f"i{8 * osz}"
    lty = "i64" if dp.wide else "i32"
    esz = dp.esz
    vt = f"<{DWL} x {lty}>"
    ir = _Ir()
    ir.decls.add("declare void @llvm.memset.p0.i64(ptr, i8, i64, i1 immarg)")
    plane = _gep(ir, SCRATCH, ir.v(f"mul i64 %part, {conv_dw_scratch_bytes(dp)}"))
    parkp = _gep(ir, plane, str(dp.plane_bytes + 64 * esz // 4))
    iota = _vconst(DWL, list(range(DWL)))
    lo, hi = _part_range(ir, N * M)
    it, _, close_it = ir.loop(lo, hi)
    n = ir.v(f"udiv i64 {it}, {M}")
    m = ir.v(f"urem i64 {it}, {M}")
    ch = ir.v(f"add i64 {ir.v(f'mul i64 {n}, {C}')}, {ir.v(f'udiv i64 {m}, {Mg}')}")
    xc = _gep(ir, "%base", ir.v(f"add i64 {ir.v(f'mul i64 {ch}, {H * W * xsz}')}, "
                                f"{sp.x_addr}"))
    # the plane: 0 everywhere, then the rows of x - x_zp (lanes past the row: 0)
    ir.emit(f"call void @llvm.memset.p0.i64(ptr {plane}, i8 0, i64 {dp.plane_bytes}, "
            "i1 false)")
    _plane_rows(ir, dp, xc, plane, sp.x_dtype, sp.x_zp, "zeroinitializer")
    # the taps' weights w[m, j] - w_zp, splat; bias[m]
    wrow = _gep(ir, "%base", ir.v(f"add i64 {ir.v(f'mul i64 {m}, {K * wsz}')}, {sp.w_addr}"))
    taps = []
    for t in range(K):
        wv = ir.v(f"load {wty}, ptr {_gep(ir, wrow, str(t * wsz))}, align {wsz}")
        if wsz < esz:
            wv = ir.v(f"{_ext(wsig)} {wty} {wv} to {lty}")
        elif wsz > esz:
            wv = ir.v(f"trunc {wty} {wv} to {lty}")
        if sp.w_zp:
            wv = ir.v(f"sub {lty} {wv}, {sp.w_zp}")
        taps.append(ir.splat(lty, DWL, wv))
    bias = None
    if sp.bias_addr is not None:
        bsz, bsig = DTYPE_INFO[sp.bias_dtype]
        bo = ir.v(f"add i64 {ir.v(f'mul i64 {m}, {bsz}')}, {sp.bias_addr}")
        b = ir.v(f"load i{8 * bsz}, ptr {_gep(ir, '%base', bo)}, align {bsz}")
        if bsz < 8:
            b = ir.v(f"{_ext(bsig)} i{8 * bsz} {b} to i64")
        bias = ir.splat("i64", DWL, b)
    nm = ir.v(f"add i64 {ir.v(f'mul i64 {n}, {M}')}, {m}")
    oh, _, close_oh = ir.loop("0", str(OH))
    rowp = _gep(ir, plane, ir.v(f"mul i64 {oh}, {SH * Wp * esz}"))
    cj, _, close_cj = ir.loop("0", str(NCH))
    ow0 = ir.v(f"mul i64 {cj}, {DWL}")
    colp = _gep(ir, rowp, ir.v(f"mul i64 {cj}, {DWL * SW * esz}"))
    acc = None
    for t, v in enumerate(_stencil_taps(ir, dp, colp)):
        prod = ir.v(f"mul {vt} {v}, {taps[t]}")
        acc = prod if acc is None else ir.v(f"add {vt} {acc}, {prod}")
    a = acc if dp.wide else ir.v(f"sext {vt} {acc} to <{DWL} x i64>")
    if bias is not None:
        a = ir.v(f"add <{DWL} x i64> {a}, {bias}")
    p0 = ir.v(f"add i64 {ir.v(f'mul i64 {oh}, {OW}')}, {ow0}")
    ncols = ir.v(f"sub i64 {OW}, {ow0}")
    val = a
    if sp.epilogue is not None:
        vecs = {"acc": a}
        if sp.res_addr is not None:
            rmask = ir.v(f"icmp slt <{DWL} x i64> {iota}, {ir.splat('i64', DWL, ncols)}")
            elem = ir.v(f"add i64 {ir.v(f'mul i64 {nm}, {P}')}, {p0}")
            vecs["res"] = _load_res(ir, sp, elem, rmask, DWL)
        val = VecExpr(ir, DWL, vecs, [m]).val(sp.epilogue)
    if osz < 8:
        val = ir.v(f"trunc <{DWL} x i64> {val} to <{DWL} x {oty}>")
    ye = ir.v(f"add i64 {ir.v(f'mul i64 {nm}, {P}')}, {p0}")
    yo = ir.v(f"add i64 {ir.v(f'mul i64 {ye}, {osz}')}, {sp.y_addr}")
    _store_cols(ir, val, oty, osz, _gep(ir, "%base", yo), ncols, parkp, DWL)
    close_cj()
    close_oh()
    close_it()
    head = [DW_MARK, f"define void @{fname}(ptr %base, i64 %part, i64 %nparts) {{", "entry:"]
    return "\n".join(head + ir.lines + ["  ret void", "}"]), ir.decls


# ---------------------------------------------------------------- max pool
#
# A q.max_pool (:class:`PoolSpec`) as the depthwise stencil's shape of loop (the same
# plane geometry, :func:`dw_plan`'s): a work item is one (image, channel) plane, copied
# into scratch widened to the lane type with every padding and past-the-row position at
# the dtype's minimum (never above a value inside the window), then DWL-column vectors
# take the max over the unrolled taps and are stored narrowed. Exact: the max of the
# window's values inside x, as the VM's cmov(-2^63) loop, when every window holds one
# position inside x (the IR's max_pool refuses an empty window; an unverified graph with
# one gets the loop nest).


POOL_MARK = "; opmlc max-pool stencil"


def _covered(o_n: int, k: int, s: int, d: int, pad: int, h: int) -> bool:
    """Every output position o < o_n along an axis has a tap o s - pad + j d inside [0, h)."""
    return all(any(0 <= o * s - pad + j * d < h for j in range(k)) for o in range(o_n))


def pool_plan(ps: PoolSpec) -> DwPlan | None:
    """The stencil plan of a max pool (lanes: i32 for words up to 32 bits, else i64)."""
    nd = len(ps.kernel_shape)
    if nd not in (1, 2) or max(ps.strides) > DW_MAX_STRIDE or _prod(ps.out_shape) == 0 or \
            _prod(ps.kernel_shape) > DW_MAX_K or ps.x_dtype == "bool":
        return None
    if not all(_covered(ps.out_shape[i], ps.kernel_shape[i], ps.strides[i], ps.dilations[i],
                        ps.pads[i], ps.in_shape[i]) for i in range(nd)):
        return None
    dims = _as_2d(ps)
    (KH, KW), _, (OH, OW), (SH, SW), (DH, DW), _ = dims
    plan = DwPlan(wide=DTYPE_INFO[ps.x_dtype][0] == 8,
                  rows=(OH - 1) * SH + (KH - 1) * DH + 1,
                  cols=-(-OW // DWL) * DWL * SW + (KW - 1) * DW, dims=dims)
    return plan if plan.plane_bytes <= DW_MAX_PLANE else None


def gen_pool_max(ps: PoolSpec, dp: DwPlan, fname: str) -> tuple[str, set[str]]:
    """The max-pool stencil kernel (see the section comment)."""
    (KH, KW), (H, W), (OH, OW), (SH, SW), (DH, DW), (PT, PL) = dp.dims
    P, Hp, Wp = OH * OW, dp.rows, dp.cols
    NCH = -(-OW // DWL)
    xsz, _ = DTYPE_INFO[ps.x_dtype]
    osz, _ = DTYPE_INFO[ps.y_dtype]
    oty = f"i{8 * osz}"
    lty = "i64" if dp.wide else "i32"
    esz = dp.esz
    vt = f"<{DWL} x {lty}>"
    low = _drange(ps.x_dtype)[0]
    ir = _Ir()
    plane = _gep(ir, SCRATCH, ir.v(f"mul i64 %part, {conv_dw_scratch_bytes(dp)}"))
    parkp = _gep(ir, plane, str(dp.plane_bytes + 64 * esz // 4))
    fill = _vconst(DWL, low, lty)
    lo, hi = _part_range(ir, ps.batch * ps.channels)
    it, _, close_it = ir.loop(lo, hi)
    xc = _gep(ir, "%base", ir.v(f"add i64 {ir.v(f'mul i64 {it}, {H * W * xsz}')}, "
                                f"{ps.x_addr}"))
    # the plane at the minimum (and DWL lanes of slack), then x's rows
    nfill = -(-(Hp * Wp + DWL) // DWL)
    f, _, close_f = ir.loop("0", str(nfill))
    ir.emit(f"store {vt} {fill}, ptr {_gep(ir, plane, ir.v(f'mul i64 {f}, {DWL * esz}'))}, "
            f"align {esz}")
    close_f()
    _plane_rows(ir, dp, xc, plane, ps.x_dtype, 0, fill)
    oh, _, close_oh = ir.loop("0", str(OH))
    rowp = _gep(ir, plane, ir.v(f"mul i64 {oh}, {SH * Wp * esz}"))
    cj, _, close_cj = ir.loop("0", str(NCH))
    ow0 = ir.v(f"mul i64 {cj}, {DWL}")
    colp = _gep(ir, rowp, ir.v(f"mul i64 {cj}, {DWL * SW * esz}"))
    acc = None
    for v in _stencil_taps(ir, dp, colp):
        if acc is None:
            acc = v
        else:
            gt = ir.v(f"icmp sgt {vt} {v}, {acc}")
            acc = ir.v(f"select <{DWL} x i1> {gt}, {vt} {v}, {vt} {acc}")
    val = acc
    if osz * 8 < int(lty[1:]):
        val = ir.v(f"trunc {vt} {val} to <{DWL} x {oty}>")
    elif osz * 8 > int(lty[1:]):
        val = ir.v(f"sext {vt} {val} to <{DWL} x {oty}>")
    p0 = ir.v(f"add i64 {ir.v(f'mul i64 {oh}, {OW}')}, {ow0}")
    ye = ir.v(f"add i64 {ir.v(f'mul i64 {it}, {P}')}, {p0}")
    yo = ir.v(f"add i64 {ir.v(f'mul i64 {ye}, {osz}')}, {ps.y_addr}")
    _store_cols(ir, val, oty, osz, _gep(ir, "%base", yo), ir.v(f"sub i64 {OW}, {ow0}"),
                parkp, DWL)
    close_cj()
    close_oh()
    close_it()
    head = [POOL_MARK, f"define void @{fname}(ptr %base, i64 %part, i64 %nparts) {{",
            "entry:"]
    return "\n".join(head + ir.lines + ["  ret void", "}"]), ir.decls


# ---------------------------------------------------------------- vector matmul
#
# A q.matmul / q.matmul_rq (:class:`MatSpec`) as MNR-column row strips: a work item is one
# (batch, row i, MNR columns j0..) strip, the rows varying fastest; over k, the scalar
# a[i, k] - a_zp times the MNR contiguous b[k, j0 + l] - b_zp (one masked vector load,
# nothing read past the last column) accumulate in i32 lanes when K * bound < 2^31 (every
# partial sum exact), else in wrapping i64 lanes; then init and the epilogue lane-wise
# (LaneVecExpr: per-column parameters gathered) and one store of the strip. The work items
# write disjoint bytes.

MNR = 256  # columns of a strip at most (4 cache lines of an 8-bit b row per k: the rows of
           # a batch-1 fc layer's weights are read in long runs, not 64 bytes per page)


def _strip(ms: MatSpec) -> int:
    """Columns of one strip: 256 for wide outputs, 64 (a cache line of 8-bit b) else."""
    return MNR if ms.cols >= MNR else 64


def gen_matmul(ms: MatSpec, fname: str) -> tuple[str, set[str]]:
    """The vector native kernel of a q.matmul / q.matmul_rq (see the section comment)."""
    from opmlc.backend.llvmgen import LaneVecExpr, VecExpr

    nb, M, N, K = len(ms.batch), ms.rows, ms.cols, ms.red
    MNR = _strip(ms)  # noqa: N806 - the strip width of this kernel
    NJ = -(-N // MNR)
    items = _prod(ms.batch) * M * NJ
    narrow = K * ms.bound < (1 << 31)
    lt = "i32" if narrow else "i64"
    vt = f"<{MNR} x {lt}>"
    asz, asig = DTYPE_INFO[ms.a.dtype]
    bsz, bsig = DTYPE_INFO[ms.b.dtype]
    osz, _ = DTYPE_INFO[ms.y_dtype]
    oty, bty = f"i{8 * osz}", f"i{8 * bsz}"
    ir = _Ir()
    ir.decls.add(f"declare <{MNR} x {bty}> @llvm.masked.load.v{MNR}{bty}.p0(ptr, i32 immarg, "
                 f"<{MNR} x i1>, <{MNR} x {bty}>)")
    park = _gep(ir, SCRATCH, ir.v(f"mul i64 %part, {8 * MNR}"))
    lo, hi = _part_range(ir, items)
    it, _, close_it = ir.loop(lo, hi)
    # rows innermost: the M strips of one column block run back to back while its K x MNR
    # weights stay in cache (GPT-2's 768 x 50257 lm_head streamed its 77 MB once per row)
    i = ir.v(f"urem i64 {it}, {M}")
    rest = ir.v(f"udiv i64 {it}, {M}")
    bidx, j0, ncols, mask, jv = _mat_block(ir, ms, rest, NJ, MNR)
    k, (acc,), close_k = ir.loop("0", str(K), [(vt, "zeroinitializer")])
    idx = bidx + [i, j0, k]
    r = VecExpr(ir, MNR, {}, idx)
    av = ir.v(f"load i{8 * asz}, ptr {r.ptr(ms.a.addr)}, align {asz}")
    av = ir.v(f"{_ext(asig)} i{8 * asz} {av} to {lt}") if 8 * asz < int(lt[1:]) else \
        (ir.v(f"trunc i64 {av} to {lt}") if 8 * asz > int(lt[1:]) else av)
    if ms.a_zp:
        av = ir.v(f"sub {lt} {av}, {ms.a_zp}")
    bv = ir.v(f"call <{MNR} x {bty}> @llvm.masked.load.v{MNR}{bty}.p0(ptr {r.ptr(ms.b.addr)}, "
              f"i32 {bsz}, <{MNR} x i1> {mask}, <{MNR} x {bty}> zeroinitializer)")
    if 8 * bsz < int(lt[1:]):
        bv = ir.v(f"{_ext(bsig)} <{MNR} x {bty}> {bv} to {vt}")
    elif 8 * bsz > int(lt[1:]):
        bv = ir.v(f"trunc <{MNR} x {bty}> {bv} to {vt}")
    if ms.b_zp:
        bv = ir.v(f"sub {vt} {bv}, {_vconst(MNR, ms.b_zp, lt)}")
    prod = ir.v(f"mul {vt} {bv}, {ir.splat(lt, MNR, av)}")
    close_k([ir.v(f"add {vt} {acc}, {prod}")])
    a64 = acc if lt == "i64" else ir.v(f"sext {vt} {acc} to <{MNR} x i64>")
    ex = LaneVecExpr(ir, MNR, {"acc": a64}, bidx + [i, "0", "0"], nb + 1, jv)
    init = ex.val(ms.init)
    a64 = ir.v(f"add <{MNR} x i64> {a64}, {ex.lit(init)}")
    ex.vecs["acc"] = a64
    val = ex.val(ms.value)
    val = ex.lit(val)
    if osz < 8:
        val = ir.v(f"trunc <{MNR} x i64> {val} to <{MNR} x {oty}>")
    yp = VecExpr(ir, MNR, {}, bidx + [i, j0]).ptr(ms.y)
    _store_cols(ir, val, oty, osz, yp, ncols, park, MNR)
    close_it()
    head = [f"define void @{fname}(ptr %base, i64 %part, i64 %nparts) {{", "entry:"]
    return "\n".join(head + ir.lines + ["  ret void", "}"]), ir.decls


# ---------------------------------------------------------------- int8 dot-product matmul
#
# A q.matmul / q.matmul_rq whose a and b are 8-bit and whose b zero point is b's offset
# (b_zp = 0 for i8 b, 128 for u8 b: the int8 scheme's symmetric weights) is summed by
# ``@opmlc_dpbusd16`` like the dot-product conv: with au = a - a_zp + AZ (a's byte made
# u8: a, or a xor 0x80 = a + 128 for i8; AZ = a_zp, or a_zp + 128) and bs = b - b_zp (b's
# byte made s8: b, or b xor 0x80 for u8),
#
#     sum_k (a - a_zp)(b - b_zp) = sum_k au bs - AZ Cs[j],   Cs[j] = sum_k bs[k, j]
#
# exact in i32 lanes while K * 255 * 128 < 2^31; Cs and the correction in i64, then init
# and the epilogue as in gen_matmul (the VM's arithmetic). A work item is (batch, block of
# MDN = 64 columns, chunk of MDC rows), the row chunks of a block consecutive: a part packs
# the block's b columns once (when the previous item of the part had another block) into
# its scratch as K/4 groups of four 64-byte vectors, panel[q][v][c][j] = bs[4q + j, 16v +
# c] (0 past K and past N), with Cs from the same vectors against bytes of ones (and the
# next block's b rows prefetched); the item's a rows are copied as au bytes (0 past K);
# then every MDM-row tile runs MDM x 4 <16 x i32> accumulators over the groups, each step
# four panel vectors against a row's four au bytes broadcast from the copy (a load, no
# shuffle), and writes its rows through the epilogue. The panel is reused by every row of
# the block: b is read from memory once per part and block, not once per row.
# A 16-bit a (the int8 scheme's mixed-precision activations) is split into two bytes:
# au = a - a_zp + AZ (AZ = a_zp + 32768, au in [0, 65535]) = 256 hi + lo, each byte a
# pseudo-row of the copy, so sum_k au bs = 256 sum_k hi bs + sum_k lo bs, both exact in
# i32 lanes by the same bound; a tile then holds MDM / 2 rows, the two sums joined in i64.
# A b zero point off b's offset (an activation b: attention's scores and context) adds
# BZ = b_zp - WS: sum_k (a - a_zp)(b - b_zp) = sum_k au bs - AZ Cs[j] - BZ Ra[i] with
# Ra[i] = sum_k (a[i, k] - a_zp), each row's sum taken while its copy is made.
# (bench/bench_matmul.py: 4 rows x 64 columns, 6 x 64 and the a copy measured; 6 x 64
# uses 24 of the 32 zmm registers with no spill.)

MDN = 64      # columns of a block (four <16 x i32> vectors)
MDM = 6       # rows of the register tile
MDC = 24      # rows of a work item (a multiple of MDM)
MDK_MAX = 4096  # K at most (a part's scratch: K * 64 panel bytes + MDC * K a bytes)


@dataclass(frozen=True)
class MatDotPlan:
    """How :func:`gen_matmul_dot` offsets a and b to u8 and s8 (see the section comment)."""

    a_flip: bool   # a is signed: its words are xor the sign bit (au = a + 128 or + 32768)
    b_flip: bool   # b is u8: its bytes are xor 0x80 (bs = b - 128)
    a_zp_u8: int   # AZ = a_zp (+ 128 for i8 a, + 32768 for i16 a)
    a_bytes: int = 1  # 2: a is i16, split into a high and a low byte pseudo-row
    b_zp_s8: int = 0  # BZ = b_zp - (128 for u8 or i16 b): nonzero, the rows' sums correct it
    b_bytes: int = 1  # 2: b is i16, split into a high and a low byte panel


def mat_dot_plan(ms: MatSpec) -> MatDotPlan | None:
    """The dot-product parameters of a matmul description, or None (gen_matmul)."""
    nb, K = len(ms.batch), ms.red
    if ms.a.dtype not in ("i8", "u8", "i16") or ms.b.dtype not in ("i8", "u8", "i16"):
        return None
    if K == 0 or K > MDK_MAX or K * _DOT_BOUND >= 1 << 31 or ms.a.addr.dyn or ms.b.addr.dyn:
        return None
    ast = dict(ms.a.addr.terms)
    bst = dict(ms.b.addr.terms)
    asz, bsz = DTYPE_INFO[ms.a.dtype][0], DTYPE_INFO[ms.b.dtype][0]
    if (K > 1 and ast.get(nb + 2, 0) != asz) or bst.get(nb + 1, 0) != bsz:
        return None
    wide = ms.a.dtype == "i16"
    return MatDotPlan(a_flip=ms.a.dtype != "u8", b_flip=ms.b.dtype == "u8",
                      a_zp_u8=ms.a_zp + (32768 if wide else 128 if ms.a.dtype == "i8" else 0),
                      a_bytes=2 if wide else 1, b_zp_s8=_mat_bz(ms), b_bytes=bsz)


def _mat_bz(ms: MatSpec) -> int:
    """BZ: b_zp less the offset of b's bytes (u8: 128; i16, split as 256 bh + bl' + 128:
    128)."""
    return ms.b_zp - (128 if ms.b.dtype in ("u8", "i16") else 0)


def _mat_kpad(ms: MatSpec) -> int:
    return -(-ms.red // 4) * 4


def mat_dot_scratch_bytes(ms: MatSpec) -> int:
    """One part's scratch: the packed panel (K/4 x 256 bytes), Cs (256), a tile's i32 sums
    (MDM x 256), 512 bytes where a partial output row is parked and the item's a rows as
    u8 (MDC x K rounded up to 64 bytes; twice that for i16 a, its two byte pseudo-rows),
    then, when BZ != 0, the rows' sums (MDC x i64)."""
    split = 2 if ms.a.dtype == "i16" else 1
    sb = 2 if ms.b.dtype == "i16" else 1
    return _mat_kpad(ms) * MDN * sb + 256 * sb + MDM * 256 + 512 + split * MDC * _mat_ka(ms) + \
        (8 * MDC if _mat_bz(ms) else 0)


def _mat_ka(ms: MatSpec) -> int:
    return -(-ms.red // 64) * 64


def gen_matmul_dot(ms: MatSpec, dp: MatDotPlan, fname: str) -> tuple[str, set[str]]:
    """The int8 dot-product kernel of a q.matmul / q.matmul_rq (see the section comment)."""
    from opmlc.backend.llvmgen import LaneVecExpr, VecExpr

    nb, M, N, K = len(ms.batch), ms.rows, ms.cols, ms.red
    Kp, KA = _mat_kpad(ms), _mat_ka(ms)
    S = dp.a_bytes  # pseudo-rows (bytes) per row of a
    SB = dp.b_bytes  # panels (bytes) per column of b
    MR = max(1, MDM // (S * SB))  # rows of a tile
    NQ, KT = K // 4, K % 4
    NJ = -(-N // MDN)
    NRC = -(-M // MDC)
    items = _prod(ms.batch) * NJ * NRC
    osz, _ = DTYPE_INFO[ms.y_dtype]
    oty = f"i{8 * osz}"
    ir = _Ir()
    ir.decls.add(DPBUSD_DECL)
    ir.decls.add("declare <64 x i8> @llvm.masked.load.v64i8.p0(ptr, i32 immarg, <64 x i1>, "
                 "<64 x i8>)")
    ir.decls.add("declare void @llvm.prefetch.p0(ptr, i32 immarg, i32 immarg, i32 immarg)")
    po = ir.v(f"mul i64 %part, {mat_dot_scratch_bytes(ms)}")
    panel = ir.v(f"getelementptr i8, ptr {SCRATCH}, i64 {po}")
    csp = _gep(ir, panel, str(Kp * MDN * SB))
    accs = _gep(ir, csp, str(256 * SB))
    park = _gep(ir, accs, str(MDM * 256))
    arow0 = _gep(ir, park, "512")
    lo, hi = _part_range(ir, items)
    it, (last,), close_it = ir.loop(lo, hi, [("i64", "-1")])
    rc = ir.v(f"urem i64 {it}, {NRC}")
    key = ir.v(f"udiv i64 {it}, {NRC}")  # (batch, block): the packed panel's
    bidx, j0, ncols, mask, jv = _mat_block(ir, ms, key, NJ, MDN)
    # pack the block when this part's previous item had another one
    pk, pd = ir.label("pk"), ir.label("pd")
    ir.emit(f"br i1 {ir.v(f'icmp ne i64 {key}, {last}')}, label %{pk}, label %{pd}")
    ir.lines.append(f"{pk}:")
    b0 = VecExpr(ir, MDN, {}, bidx + ["0", j0, "0"]).ptr(ms.b.addr)
    kst = dict(ms.b.addr.terms).get(nb + 2, 0)
    fill = _vconst(MDN, -128 if dp.b_flip else 0, "i8")  # a masked lane's byte: bs = 0
    ones = _splat_bytes(ir, str(0x01010101))

    if SB == 2:
        ir.decls.add("declare <64 x i16> @llvm.masked.load.v64i16.p0(ptr, i32 immarg, "
                     "<64 x i1>, <64 x i16>)")

    def brow(k: str) -> list[str]:
        """Row k of the block as SB byte vectors (i16 b: its high bytes, then its low
        bytes less 128)."""
        p = _gep(ir, b0, ir.v(f"mul i64 {k}, {kst}"))
        if NJ > 1:  # the next block's row: in cache by the time it is packed
            ir.emit(f"call void @llvm.prefetch.p0(ptr {_gep(ir, p, str(MDN * SB))}, i32 0, "
                    "i32 3, i32 1)")
        if SB == 2:
            w = ir.v(f"call <64 x i16> @llvm.masked.load.v64i16.p0(ptr {p}, i32 2, "
                     f"<64 x i1> {mask}, <64 x i16> zeroinitializer)")
            sh8 = _vconst(64, 8, "i16")
            hb = ir.v(f"trunc <64 x i16> {ir.v(f'ashr <64 x i16> {w}, {sh8}')} to <64 x i8>")
            lb = ir.v(f"xor <64 x i8> {ir.v(f'trunc <64 x i16> {w} to <64 x i8>')}, "
                      f"{_vconst(MDN, -128, 'i8')}")
            return [hb, lb]
        r = ir.v(f"call <64 x i8> @llvm.masked.load.v64i8.p0(ptr {p}, i32 1, <64 x i1> {mask}, "
                 f"<64 x i8> {fill})")
        return [ir.v(f"xor <64 x i8> {r}, {_vconst(MDN, -128, 'i8')}") if dp.b_flip else r]

    def group(q: str, rows: list[list[str]], cs: list[str]) -> list[str]:
        out = []
        for sb in range(SB):
            ab = ir.v(f"shufflevector <64 x i8> {rows[0][sb]}, <64 x i8> {rows[1][sb]}, "
                      f"<128 x i32> {_vconst(128, list(range(128)), 'i32')}")
            cd = ir.v(f"shufflevector <64 x i8> {rows[2][sb]}, <64 x i8> {rows[3][sb]}, "
                      f"<128 x i32> {_vconst(128, list(range(128)), 'i32')}")
            if sb == 0:
                gp = _gep(ir, panel, ir.v(f"mul i64 {q}, {4 * MDN * SB}"))
            for v in range(4):
                inter = [64 * j + 16 * v + c for c in range(16) for j in range(4)]
                pv = ir.v(f"shufflevector <128 x i8> {ab}, <128 x i8> {cd}, "
                          f"<64 x i32> {_vconst(64, inter, 'i32')}")
                ir.emit(f"store <64 x i8> {pv}, ptr {_gep(ir, gp, str(256 * sb + 64 * v))}, "
                        "align 64")
                out.append(ir.v(f"call <16 x i32> {DPBUSD}(<16 x i32> {cs[4 * sb + v]}, "
                                f"<64 x i8> {ones}, <64 x i8> {pv})"))
        return out

    cs = ["zeroinitializer"] * (4 * SB)
    if NQ:
        q, cs, close_q = ir.loop("0", str(NQ), [("<16 x i32>", "zeroinitializer")] * (4 * SB))
        k4 = ir.v(f"mul i64 {q}, 4")
        close_q(group(q, [brow(ir.v(f"add i64 {k4}, {j}")) for j in range(4)], cs))
    if KT:
        cs = group(str(NQ), [brow(str(4 * NQ + j)) if j < KT else ["zeroinitializer"] * SB
                             for j in range(4)], cs)
    for v in range(4 * SB):
        ir.emit(f"store <16 x i32> {cs[v]}, ptr {_gep(ir, csp, str(64 * v))}, align 64")
    ir.emit(f"br label %{pd}")
    ir.lines.append(f"{pd}:")
    corr = None
    if dp.a_zp_u8:  # AZ Cs[j], Cs = sum_k of b's bytes (i16 b: 256 Cs_high + Cs_low)
        c = ir.v(f"load <{MDN} x i32>, ptr {csp}, align 64")
        c = ir.v(f"sext <{MDN} x i32> {c} to <{MDN} x i64>")
        if SB == 2:
            cl = ir.v(f"load <{MDN} x i32>, ptr {_gep(ir, csp, '256')}, align 64")
            c = ir.v(f"add <{MDN} x i64> {ir.v(f'shl <{MDN} x i64> {c}, {_vconst(MDN, 8)}')}, "
                     f"{ir.v(f'sext <{MDN} x i32> {cl} to <{MDN} x i64>')}")
        corr = ir.v(f"mul <{MDN} x i64> {c}, {_vconst(MDN, dp.a_zp_u8)}")

    def abytes(arow: str, qi: str) -> str:
        """The four (u8) bytes of group qi of a copied a row, broadcast."""
        off = ir.v(f"mul i64 {qi}, 4")
        return _splat_bytes(ir, ir.v(f"load i32, ptr {_gep(ir, arow, off)}, align 4"))

    r0 = ir.v(f"mul i64 {rc}, {MDC}")
    nr = ir.v(f"sub i64 {M}, {r0}")
    nr = ir.v(f"select i1 {ir.v(f'icmp slt i64 {nr}, {MDC}')}, i64 {nr}, i64 {MDC}")
    # the item's a rows copied as u8 bytes (xor 0x80 for i8 a), KA bytes a row (i16 a: its
    # high then its low bytes, xor 0x8000 first, two pseudo-rows): the tiles then
    # broadcast each group's four bytes straight from memory; bytes past K are never
    # zero-extended into a sum (the panel's zeros past K multiply them)
    aty = "i16" if S == 2 else "i8"
    if S == 2:
        ir.decls.add("declare <64 x i16> @llvm.masked.load.v64i16.p0(ptr, i32 immarg, "
                     "<64 x i1>, <64 x i16>)")
    BZ = dp.b_zp_s8
    ras = _gep(ir, arow0, str(S * MDC * KA))  # BZ != 0: Ra[i] - K AZ, i64 a row
    t, _, close_t = ir.loop("0", nr)
    src = VecExpr(ir, MDN, {}, bidx + [ir.v(f"add i64 {r0}, {t}"), "0", "0"]).ptr(ms.a.addr)
    dst = _gep(ir, arow0, ir.v(f"mul i64 {t}, {S * KA}"))
    sums = ["zeroinitializer"] * S  # BZ != 0: the stored bytes' sums (hi, lo), i32 lanes
    ones = _splat_bytes(ir, str(0x01010101)) if BZ else None

    def rowsum(k: int, x: str) -> None:
        sums[k] = ir.v(f"call <16 x i32> {DPBUSD}(<16 x i32> {sums[k]}, <64 x i8> {x}, "
                       f"<64 x i8> {ones})")

    for c in range(KA // 64):
        n = min(64, K - 64 * c)
        p = _gep(ir, src, str(64 * c * S))
        if n == 64:
            x = ir.v(f"load <64 x {aty}>, ptr {p}, align 1")
        else:
            m = _vconst(64, ["true"] * n + ["false"] * (64 - n), "i1")
            x = ir.v(f"call <64 x {aty}> @llvm.masked.load.v64{aty}.p0(ptr {p}, i32 {S}, "
                     f"<64 x i1> {m}, <64 x {aty}> zeroinitializer)")
        if dp.a_flip:
            x = ir.v(f"xor <64 x {aty}> {x}, {_vconst(64, -(1 << (8 * S - 1)), aty)}")
        if BZ and n < 64:  # the row sums count no word past K
            x = ir.v(f"select <64 x i1> {m}, <64 x {aty}> {x}, <64 x {aty}> zeroinitializer")
        if S == 2:
            hi = ir.v(f"trunc <64 x i16> {ir.v(f'lshr <64 x i16> {x}, {_vconst(64, 8, aty)}')} "
                      "to <64 x i8>")
            ir.emit(f"store <64 x i8> {hi}, ptr {_gep(ir, dst, str(64 * c))}, align 64")
            x = ir.v(f"trunc <64 x i16> {x} to <64 x i8>")
            ir.emit(f"store <64 x i8> {x}, ptr {_gep(ir, dst, str(KA + 64 * c))}, align 64")
            if BZ:
                rowsum(0, hi)
                rowsum(1, x)
        else:
            ir.emit(f"store <64 x i8> {x}, ptr {_gep(ir, dst, str(64 * c))}, align 64")
            if BZ:
                rowsum(0, x)
    if BZ:
        ir.decls.add("declare i32 @llvm.vector.reduce.add.v16i32(<16 x i32>)")
        tot = [ir.v(f"sext i32 {ir.v(f'call i32 @llvm.vector.reduce.add.v16i32(<16 x i32> {v})')} "
                    "to i64") for v in sums]
        ra = tot[0] if S == 1 else ir.v(f"add i64 {ir.v(f'shl i64 {tot[0]}, 8')}, {tot[1]}")
        ra = ir.v(f"sub i64 {ra}, {K * dp.a_zp_u8}")
        ir.emit(f"store i64 {ra}, ptr {_gep(ir, ras, ir.v(f'mul i64 {t}, 8'))}, align 8")
    close_t()

    def tile(mr_rows: int, r: str) -> None:
        rr = ir.v(f"sub i64 {r}, {r0}")
        # the tile's pseudo-rows: S per row of a (i16: high byte, low byte)
        mr = mr_rows * S
        arows = []
        for t in range(mr):
            row = ir.v(f"mul i64 {ir.v(f'add i64 {rr}, {t // S}')}, {S * KA}")
            arows.append(_gep(ir, arow0, ir.v(f"add i64 {row}, {KA * (t % S)}")))
        # accumulators: (pseudo-row t, b panel sb, vector v) at 4 (t SB + sb) + v
        acc = ["zeroinitializer"] * (4 * mr * SB)

        def step(qi: str, acc: list[str]) -> list[str]:
            gp = _gep(ir, panel, ir.v(f"mul i64 {qi}, {4 * MDN * SB}")) if qi != str(NQ) \
                else _gep(ir, panel, str(NQ * 4 * MDN * SB))
            pv = [ir.v(f"load <64 x i8>, ptr {_gep(ir, gp, str(64 * v))}, align 64")
                  for v in range(4 * SB)]
            nxt = []
            for t in range(mr):
                ab = abytes(arows[t], qi)
                nxt += [ir.v(f"call <16 x i32> {DPBUSD}(<16 x i32> {acc[4 * SB * t + v]}, "
                             f"<64 x i8> {ab}, <64 x i8> {pv[v]})") for v in range(4 * SB)]
            return nxt

        if NQ:
            q, acc, close_q = ir.loop("0", str(NQ),
                                      [("<16 x i32>", "zeroinitializer")] * (4 * mr * SB))
            close_q(step(q, acc))
        if KT:
            acc = step(str(NQ), acc)
        for n, a in enumerate(acc):
            ir.emit(f"store <16 x i32> {a}, ptr {_gep(ir, accs, str(64 * n))}, align 64")
        # the epilogue once, in a loop over the tile's rows (the sums parked in scratch)
        t, _, close_t = ir.loop("0", str(mr_rows))
        i = ir.v(f"add i64 {r}, {t}")
        a = ir.v(f"load <{MDN} x i32>, ptr "
                 f"{_gep(ir, accs, ir.v(f'mul i64 {t}, {256 * S * SB}'))}, align 64")
        a = ir.v(f"sext <{MDN} x i32> {a} to <{MDN} x i64>")
        # the byte sums joined: sum au b = sum over (a byte sa, b byte sb) of their sum
        # times 256 for each high byte (i16 a: sa 0; i16 b: sb 0)
        for combo in range(S * SB):
            sa, sb = divmod(combo, SB)
            e = int(S == 2 and sa == 0) + int(SB == 2 and sb == 0)
            if combo:
                off = ir.v(f"add i64 {ir.v(f'mul i64 {t}, {256 * S * SB}')}, {256 * combo}")
                v = ir.v(f"load <{MDN} x i32>, ptr {_gep(ir, accs, off)}, align 64")
                v = ir.v(f"sext <{MDN} x i32> {v} to <{MDN} x i64>")
            else:
                v = a
            if e:
                v = ir.v(f"shl <{MDN} x i64> {v}, {_vconst(MDN, 8 * e)}")
            a = ir.v(f"add <{MDN} x i64> {a}, {v}") if combo else v
        if corr is not None:
            a = ir.v(f"sub <{MDN} x i64> {a}, {corr}")
        if BZ:
            ro = ir.v(f"mul i64 {ir.v(f'add i64 {rr}, {t}')}, 8")
            rt = ir.v(f"load i64, ptr {_gep(ir, ras, ro)}, align 8")
            bzr = ir.splat("i64", MDN, ir.v(f"mul i64 {rt}, {BZ}"))
            a = ir.v(f"sub <{MDN} x i64> {a}, {bzr}")
        ex = LaneVecExpr(ir, MDN, {"acc": a}, bidx + [i, "0", "0"], nb + 1, jv)
        a = ir.v(f"add <{MDN} x i64> {a}, {ex.lit(ex.val(ms.init))}")
        ex.vecs["acc"] = a
        val = ex.lit(ex.val(ms.value))
        if osz < 8:
            val = ir.v(f"trunc <{MDN} x i64> {val} to <{MDN} x {oty}>")
        yp = VecExpr(ir, MDN, {}, bidx + [i, j0]).ptr(ms.y)
        _store_cols(ir, val, oty, osz, yp, ncols, park, MDN)
        close_t()

    ft, _, close_f = ir.loop("0", ir.v(f"udiv i64 {nr}, {MR}"))
    tile(MR, ir.v(f"add i64 {r0}, {ir.v(f'mul i64 {ft}, {MR}')}"))
    close_f()
    rem = ir.v(f"urem i64 {nr}, {MR}")
    rt = ir.v(f"sub i64 {ir.v(f'add i64 {r0}, {nr}')}, {rem}")
    for mr in range(1, MR):
        yes, no = ir.label("rm"), ir.label("rn")
        ir.emit(f"br i1 {ir.v(f'icmp eq i64 {rem}, {mr}')}, label %{yes}, label %{no}")
        ir.lines.append(f"{yes}:")
        tile(mr, rt)
        ir.emit(f"br label %{no}")
        ir.lines.append(f"{no}:")
    close_it([key])
    head = [f"define void @{fname}(ptr %base, i64 %part, i64 %nparts) {{", "entry:"]
    return "\n".join(head + ir.lines + ["  ret void", "}"]), ir.decls


def gen_native(kernel: Kernel, fname: str) -> tuple[str, set[str], int] | None:
    """(function text, declarations, scratch bytes per part) for a kernel with a native
    description, or None to render its loop nest."""
    sp = kernel.native
    if sp is None:
        return None
    if isinstance(sp, PoolSpec):
        pp = pool_plan(sp)
        if pp is None:
            return None
        text, decls = gen_pool_max(sp, pp, fname)
        return text, decls, conv_dw_scratch_bytes(pp)
    if isinstance(sp, MatSpec):
        mp = mat_dot_plan(sp)
        if mp is not None:
            text, decls = gen_matmul_dot(sp, mp, fname)
            return text, decls, mat_dot_scratch_bytes(sp)
        text, decls = gen_matmul(sp, fname)
        return text, decls, 8 * MNR
    wp = dw_plan(sp)
    if wp is not None:
        text, decls = gen_conv_dw(sp, wp, fname)
        return text, decls, conv_dw_scratch_bytes(wp)
    dp = dot_plan(sp)
    if dp is not None:
        text, decls = gen_conv_dot(sp, dp, fname)
        return text, decls, conv_dot_scratch_bytes(sp)
    d16 = dot16_plan(sp)
    if d16 is not None:
        text, decls = gen_conv_dot16(sp, d16, fname)
        return text, decls, conv_dot16_scratch_bytes(sp)
    fp = float_plan(sp)
    if fp is not None:
        text, decls = gen_conv_float(sp, fp, fname)
        return text, decls, conv_float_scratch_bytes(sp, fp)
    if sp.epilogue is not None:
        return None  # a fused conv without the exact-float plan: its loop nest
    text, decls = gen_conv(sp, fname)
    return text, decls, conv_scratch_bytes(sp)


__all__ = ["DPBUSD", "DW_MARK", "POOL_MARK", "Dot16Plan", "DotPlan", "DwPlan", "FloatPlan",
           "MAX_PARTS", "SCRATCH", "conv_dot16_scratch_bytes", "conv_dot_scratch_bytes",
           "conv_dw_scratch_bytes", "conv_float_scratch_bytes",
           "conv_scratch_bytes", "dot16_plan", "dot_plan", "dw_plan", "float_plan", "gen_conv_dot",
           "gen_conv_dw", "gen_conv", "gen_pool_max", "pool_plan", "gen_conv_float",
           "gen_matmul_dot", "gen_native",
           "mat_dot_plan", "mat_dot_scratch_bytes", "MatDotPlan"]
