"""The loop-nest kernel IR shared by the VM and the native code generators.

Every integer IR node lowers (``opmlc.backend.lower``) to one :class:`Kernel`: a
list of statements over static loops whose scalar expressions are exactly the VM's
ALU instructions on 64-bit words. ``vmgen`` renders a kernel as VM bytecode and
``llvmgen`` as LLVM IR; both implement each scalar op with the instruction's
semantics (``opmlc_runtime.isa``), so the two agree bit for bit by construction and
the tests check it on every op.

    Expr  := Const(v) | Idx(level) | Var(name) | Load(dtype, addr) | Op(name, args)
    Stmt  := Store(dtype, addr, value) | Let(name, value) | Loop(extent, body)
    Addr  := base + sum(stride_l * idx_l) + sum(stride_e * e)     (bytes, absolute)

* ``Idx(l)`` is the index (0..extent-1) of the l-th enclosing loop (0 = outermost).
* ``Load`` widens to 64 bits (sign-extends ``i*``, zero-extends ``u8``/``bool``);
  ``Store`` writes the low bytes (the lowerings saturate before they narrow).
* ``Op`` names are ISA mnemonics of the R format (``add``, ``mul``, ``mulh``, ``sra``,
  ``srar``, ``slt``, ``min``, ``div``, ...), ``cmov(a, c, d) = c != 0 ? a : d``, and
  ``sat(x, n)`` / ``satu(x, n)`` with a constant n.
* Loop trip counts are static and no statement depends on data for control: the
  number of VM steps of a kernel is a function of its shape alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from opmlc_runtime.dtypes import TABLE

MASK = (1 << 64) - 1

# dtype -> (bytes, signed) for values in memory (the machine's table, opmlc_runtime.dtypes)
DTYPE_INFO: dict[str, tuple[int, bool]] = {
    name: (d.size, d.signed) for name, d in TABLE.items() if d.is_int}

R_OPS = frozenset({"add", "sub", "mul", "mulh", "and", "or", "xor", "sll", "srl", "sra",
                   "srar", "slt", "sltu", "min", "max", "div"})
OPS = R_OPS | {"cmov", "sat", "satu"}


def s64(v: int) -> int:
    v &= MASK
    return v - (1 << 64) if v >> 63 else v


@dataclass(frozen=True)
class Const:
    value: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", s64(int(self.value)))


@dataclass(frozen=True)
class Idx:
    level: int


@dataclass(frozen=True)
class Var:
    name: str


@dataclass(frozen=True)
class Addr:
    """``base + sum(stride * Idx(level) for level, stride in terms) + sum(stride * e for e,
    stride in dyn)`` in bytes."""

    base: int
    terms: tuple[tuple[int, int], ...] = ()
    dyn: tuple[tuple[Expr, int], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "terms", tuple(
            (int(lv), int(s)) for lv, s in self.terms if s != 0))


@dataclass(frozen=True)
class Load:
    dtype: str
    addr: Addr


@dataclass(frozen=True)
class Op:
    name: str
    args: tuple[Expr, ...]


Expr = Union[Const, Idx, Var, Load, Op]  # noqa: UP007 - used at runtime in isinstance


@dataclass(frozen=True)
class Store:
    dtype: str
    addr: Addr
    value: Expr


@dataclass(frozen=True)
class Let:
    name: str
    value: Expr


@dataclass(frozen=True)
class Loop:
    extent: int
    body: tuple[Stmt, ...]


Stmt = Union[Store, Let, Loop]  # noqa: UP007


@dataclass(frozen=True)
class ConvSpec:
    """A q.conv (q.conv_rq) node described for its hand-tiled native kernel
    (``opmlc.backend.convgen``): with m = g * out_per_group + mm and per spatial axis
    i = o * stride - pad + j * dilation,

        acc[n, m, o] = bias[m] + sum_{c, j} (x[n, g * in_per_group + c, i] - x_zp)
                                          * (w[m, c, j] - w_zp)        (0 where i pads)
        y[n, m, o]   = acc if epilogue is None else epilogue(acc)

    Addresses are absolute byte addresses in the memory image; arrays are row-major."""

    batch: int                     # N, images in x and y
    channels: int                  # C, channels of x (all groups)
    groups: int                    # G
    out_per_group: int             # Mg, output channels per group (y has G * Mg)
    in_per_group: int              # Cg, input channels per group (C = G * Cg)
    kernel_shape: tuple[int, ...]  # the window, one extent per spatial axis
    in_shape: tuple[int, ...]      # x's spatial shape
    out_shape: tuple[int, ...]     # y's spatial shape
    strides: tuple[int, ...]       # per spatial axis
    dilations: tuple[int, ...]     # per spatial axis
    pads: tuple[int, ...]          # padding before each spatial axis (the end follows)
    x_addr: int                    # x: (N, C, *in_shape) of x_dtype
    x_dtype: str
    x_zp: int
    w_addr: int                    # w: (G * Mg, Cg, *kernel_shape) of w_dtype
    w_dtype: str
    w_zp: int
    w_absmax: int | None           # max |w - w_zp| of the constant weights; None: unknown
    y_addr: int                    # y: (N, G * Mg, *out_shape) of y_dtype
    y_dtype: str                   # i64 unless the epilogue narrows
    bias_addr: int | None = None   # bias: (G * Mg,) of bias_dtype, or None (0)
    bias_dtype: str | None = None
    epilogue: Expr | None = None   # requant + clamp of Var("acc"); Idx(0) is m
    w_rowsum: tuple[int, ...] | None = None  # sum_{c, j} w[m, c, j] per m; None: unknown
    res_addr: int | None = None    # q.conv_rq_add: the residual r, y's shape, of res_dtype;
    res_dtype: str | None = None   # the epilogue reads r[n, m, o] as Var("res")

    @property
    def reduction(self) -> int:
        """K = in_per_group * prod(kernel_shape), the length of each sum."""
        k = self.in_per_group
        for e in self.kernel_shape:
            k *= e
        return k


@dataclass(frozen=True)
class PoolSpec:
    """A q.max_pool node described for its native stencil (``convgen.gen_pool_max``):
    y[n, c, o] = max over the window's positions i = o * stride - pad + j * dilation that
    lie inside x of x[n, c, i] (every window holds one: the IR's max_pool refuses an
    empty window, and convgen checks)."""

    batch: int
    channels: int
    kernel_shape: tuple[int, ...]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads: tuple[int, ...]           # padding before each spatial axis
    x_addr: int
    x_dtype: str
    y_addr: int
    y_dtype: str


@dataclass(frozen=True)
class MatSpec:
    """A q.matmul (q.matmul_rq) node described for its vectorised native kernel
    (``opmlc.backend.convgen.gen_matmul``), in the loop nest's own terms: levels
    0..nb-1 are the batch, nb the row i, nb + 1 the column j, nb + 2 the reduction k, and

        acc = init + sum_k (Load(a) - a_zp) * (Load(b) - b_zp)
        y   = value      (an expression of Var("acc"), i.e. the epilogue, or Var("acc"))

    stored at ``y`` for every (batch, i, j). ``b`` is contiguous along j (stride = its
    element size) and ``y`` too; ``bound``: max |a - a_zp| * |b - b_zp| over the dtypes."""

    batch: tuple[int, ...]
    rows: int
    cols: int
    red: int
    a: Load
    a_zp: int
    b: Load
    b_zp: int
    init: Expr
    value: Expr
    y: Addr
    y_dtype: str
    bound: int


@dataclass
class Kernel:
    """One node's code. ``parallel``: the top-level loops may be split over threads
    (their iterations write disjoint bytes and read nothing the kernel writes).

    ``native``: an optional description of the same computation (a conv's shapes,
    addresses and zero points: :class:`ConvSpec`) from which ``llvmgen`` emits a tiled,
    vectorised kernel (``convgen``) instead of rendering ``body``; it must write exactly
    the bytes ``body`` writes (tests/test_native*.py check it). The VM always runs
    ``body``.

    ``collapse``: the first ``collapse`` levels of the top-level loop nest (each level's
    body the next loop alone) are independent too: a parallel native kernel splits their
    flattened iterations, not only the first level's (a masked softmax's rows under a
    batch of 1)."""

    name: str
    body: list[Stmt] = field(default_factory=list)
    parallel: bool = False
    native: ConvSpec | MatSpec | PoolSpec | None = None
    collapse: int = 0


# ---------------------------------------------------------------- expression builders

ExprLike = Union[Expr, int]  # noqa: UP007


def E(x: ExprLike) -> Expr:
    return Const(x) if isinstance(x, int) else x


def op(name: str, *args: ExprLike) -> Expr:
    """``name(args)`` with constant folding of all-constant arguments and a few identities."""
    a = tuple(E(x) for x in args)
    if all(isinstance(x, Const) for x in a):
        return Const(eval_op(name, [x.value for x in a]))
    if name in ("add", "sub", "or", "xor") and isinstance(a[1], Const) and a[1].value == 0:
        return a[0]
    if name == "add" and isinstance(a[0], Const) and a[0].value == 0:
        return a[1]
    if name == "mul" and isinstance(a[1], Const) and a[1].value == 1:
        return a[0]
    if name == "mul" and isinstance(a[0], Const) and a[0].value == 1:
        return a[1]
    if name in ("sll", "srl", "sra", "srar") and isinstance(a[1], Const) and a[1].value == 0:
        return a[0]
    return Op(name, a)


def add(a: ExprLike, b: ExprLike) -> Expr:
    return op("add", a, b)


def sub(a: ExprLike, b: ExprLike) -> Expr:
    return op("sub", a, b)


def mul(a: ExprLike, b: ExprLike) -> Expr:
    return op("mul", a, b)


def smin(a: ExprLike, b: ExprLike) -> Expr:
    return op("min", a, b)


def smax(a: ExprLike, b: ExprLike) -> Expr:
    return op("max", a, b)


def cmov(a: ExprLike, c: ExprLike, d: ExprLike) -> Expr:
    return op("cmov", a, c, d)


def _sat_of(name: str) -> tuple[str, int]:
    """The instruction and width that clamp a word to the range of ``name``."""
    d = TABLE[name]
    if d.kind == "bool":
        return "satu", 1
    return ("sat" if d.signed else "satu"), 8 * d.size


# u64 has none: satu clamps to at most 63 bits (norm:sat)
SAT_BITS = {name: _sat_of(name) for name, d in TABLE.items() if d.is_int and name != "u64"}


def saturate(x: ExprLike, dtype: str) -> Expr:
    """Clamp to the range of ``dtype`` (``sat``/``satu``); i64 is the identity."""
    kind, n = SAT_BITS[dtype]
    if kind == "sat" and n == 64:
        return E(x)
    return op(kind, x, n)


# ---------------------------------------------------------------- scalar semantics


def eval_op(name: str, args: list[int]) -> int:
    """The exact value of one op on signed 64-bit ints (the ISA's ``py`` semantics)."""
    from opmlc_runtime.isa import BY_MNEMONIC

    u = [x & MASK for x in args]
    if name == "cmov":
        return s64(u[0] if u[1] != 0 else u[2])
    return s64(BY_MNEMONIC[name].py(u[0], u[1]))  # an R op, or sat / satu (n = u[1])


def walk_exprs(stmts: list[Stmt] | tuple[Stmt, ...]):
    """Every Expr reachable from ``stmts`` (pre-order), including address dyn terms."""
    def ex(e: Expr):
        yield e
        if isinstance(e, Op):
            for a in e.args:
                yield from ex(a)
        elif isinstance(e, Load):
            for d, _ in e.addr.dyn:
                yield from ex(d)

    for s in stmts:
        if isinstance(s, Loop):
            yield from walk_exprs(s.body)
        elif isinstance(s, Store):
            yield from ex(s.value)
            for d, _ in s.addr.dyn:
                yield from ex(d)
        else:
            yield from ex(s.value)


__all__ = [
    "Addr", "Const", "ConvSpec", "DTYPE_INFO", "E", "Expr", "Idx", "Kernel", "Let", "Load",
    "MatSpec", "PoolSpec",
    "Loop", "Op", "OPS", "R_OPS", "Stmt", "Store", "Var", "add", "cmov", "eval_op", "mul",
    "op", "saturate", "smax", "smin", "sub", "walk_exprs",
]
