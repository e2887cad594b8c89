"""keccak256 (Ethereum's, original Keccak padding 0x01; not SHA3-256) for the Merkle memory.

Three entry points:

- ``keccak256(data) = Keccak-256(data)``, any length (pycryptodome).
- ``keccak256_64(a, b) = keccak256(a || b)`` for one pair of 32-byte nodes (pycryptodome).
- ``hash_pairs(nodes)[i] = keccak256(nodes[2i] || nodes[2i+1])``, batched: a keccak-f[1600]
  JIT-compiled with llvmlite, looping over the batch in native code and split over
  threads (ctypes releases the GIL). ``hash_pairs_reference`` is the same function
  through pycryptodome; it is the fallback and the oracle the JIT is tested against.

Set ``OPMLC_KECCAK_JIT=0`` to force the fallback and ``OPMLC_KECCAK_THREADS=n`` to cap
the number of threads.
"""

from __future__ import annotations

import ctypes
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from Crypto.Hash import keccak as _pyc_keccak

__all__ = [
    "hash_pairs",
    "hash_pairs_reference",
    "jit_available",
    "keccak256",
    "keccak256_64",
    "path_update_fn",
    "update_address",
]

_RATE_LANES = 17  # 136-byte rate of keccak256 = 1088 bits / 64


def keccak256(data: bytes) -> bytes:
    """keccak256(data): 32-byte Ethereum Keccak-256 digest."""
    return _pyc_keccak.new(digest_bits=256, data=data).digest()


def keccak256_64(a: bytes, b: bytes) -> bytes:
    """keccak256(a || b) for two 32-byte nodes: one Merkle parent."""
    return _pyc_keccak.new(digest_bits=256, data=a + b).digest()


def _as_pairs(nodes: np.ndarray) -> np.ndarray:
    """View ``nodes`` ((2N, 32) or (N, 64) uint8) as a C-contiguous (N, 64) array."""
    nodes = np.asarray(nodes)
    if nodes.dtype != np.uint8 or nodes.ndim != 2 or nodes.shape[1] not in (32, 64):
        raise ValueError(
            f"hash_pairs wants a (2N, 32) or (N, 64) uint8 array, got {nodes.dtype} {nodes.shape}"
        )
    if nodes.shape[1] == 32 and nodes.shape[0] % 2:
        raise ValueError(f"hash_pairs wants an even number of 32-byte nodes, got {nodes.shape[0]}")
    return np.ascontiguousarray(nodes).reshape(-1, 64)


def _check_out(out: np.ndarray | None, n: int) -> np.ndarray:
    if out is None:
        return np.empty((n, 32), dtype=np.uint8)
    if out.dtype != np.uint8 or out.shape != (n, 32) or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous ({n}, 32) uint8 array")
    return out


def hash_pairs_reference(nodes: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """out[i] = keccak256(pairs[i]) with pairs = nodes viewed as (N, 64); via pycryptodome."""
    pairs = _as_pairs(nodes)
    out = _check_out(out, pairs.shape[0])
    for i in range(pairs.shape[0]):
        out[i] = np.frombuffer(keccak256(pairs[i].tobytes()), dtype=np.uint8)
    return out


# --- the JIT -----------------------------------------------------------------------------


def _round_constants() -> list[int]:
    """RC[i] of keccak-f[1600] from the LFSR x^8 + x^6 + x^5 + x^4 + 1 (FIPS 202, 3.2.5)."""
    state = 1
    out = []
    for _ in range(24):
        rc = 0
        for j in range(7):
            if state & 1:
                rc |= 1 << ((1 << j) - 1)
            state = ((state << 1) ^ 0x171) if state & 0x80 else (state << 1)
        out.append(rc)
    return out


def _rotation_offsets() -> list[int]:
    """r[x + 5y]: rho offsets, (t+1)(t+2)/2 mod 64 along (x, y) -> (y, 2x + 3y) (FIPS 202)."""
    r = [0] * 25
    x, y = 1, 0
    for t in range(24):
        r[x + 5 * y] = ((t + 1) * (t + 2) // 2) % 64
        x, y = y, (2 * x + 3 * y) % 5
    return r


# Pairs hashed together in the SIMD kernel (one 64-bit lane of a vector each).
_WIDTH = 8


def _build_ir() -> str:
    """LLVM IR of ``void keccak256_pairs(i64* in, i64* out, i64 n)`` and of
    ``keccak256_pairs_x8`` (same contract, n a multiple of 8).

    For i in [0, n): out[4i : 4i+4] = keccak256(in[8i : 8i+8]) (lanes little-endian).
    A 64-byte message fits one 136-byte rate block, so one permutation per hash: absorb
    lanes 0..7, pad 0x01 at byte 64 (lane 8) and 0x80 at byte 135 (top of lane 16).
    The 24 rounds are unrolled in straight-line SSA so LLVM keeps lanes in registers.
    The x8 variant runs the same permutation on <8 x i64> vectors, one hash per vector
    lane (8 independent hashes per iteration: AVX-512 vprolq / vpternlogq, or AVX2 pairs).
    """
    from llvmlite import ir

    mod = ir.Module(name="opmlc_keccak")
    f1 = _build_fn(ir, mod, "keccak256_pairs", 1)
    f8 = _build_fn(ir, mod, "keccak256_pairs_x8", _WIDTH)
    _build_path_update(ir, mod, f1, f8)
    return str(mod) + _PARALLEL_UPDATE


# Levels with fewer parents than this are hashed by part 0 alone (the others stop there):
# 128 hashes a part (~6 us) against a barrier of about a microsecond. ResNet-50-light
# int8's node roots: 23% of the hashes on part 0 alone at 1024, 6% at 256.
_PAR_MIN = 256

# ``void merkle_update_part(ptr levels, i64 top, i64 lo, i64 hi, i64 part, i64 nparts,
# ptr sync)``: merkle_update split over nparts threads calling it at once with part =
# 0..nparts-1: at each level with at least _PAR_MIN parents each part hashes its slice
# [lo + n*part/nparts, lo + n*(part+1)/nparts) of the n parents, then all meet at a
# barrier (arrivals at sync, generation at sync + 64) before the next level reads them;
# from the first smaller level on, part 0 finishes alone and the others return.
_PARALLEL_UPDATE = f"""
define internal void @opmlc_kbarrier(ptr %sync, i64 %n) {{
entry:
  %genp = getelementptr i8, ptr %sync, i64 64
  %gen = load atomic i64, ptr %genp acquire, align 8
  %c = atomicrmw add ptr %sync, i64 1 acq_rel
  %n1 = sub i64 %n, 1
  %last = icmp eq i64 %c, %n1
  br i1 %last, label %release, label %spin
release:
  store atomic i64 0, ptr %sync monotonic, align 8
  %g1 = add i64 %gen, 1
  store atomic i64 %g1, ptr %genp release, align 8
  ret void
spin:
  %i = phi i64 [ 0, %entry ], [ %i1, %wait ], [ %i1, %yield ]
  %g = load atomic i64, ptr %genp acquire, align 8
  %same = icmp eq i64 %g, %gen
  br i1 %same, label %wait, label %done
wait:
  %i1 = add i64 %i, 1
  %m = and i64 %i1, 1023
  %y = icmp eq i64 %m, 0
  br i1 %y, label %yield, label %spin
yield:
  @@YIELD@@
  br label %spin
done:
  ret void
}}

define void @merkle_update_part(ptr %levels, i64 %top, i64 %lo0, i64 %hi0, i64 %part,
                                i64 %nparts, ptr %sync) {{
entry:
  br label %head
head:
  %l = phi i64 [ 0, %entry ], [ %l1, %next ]
  %lo = phi i64 [ %lo0, %entry ], [ %plo, %next ]
  %hi = phi i64 [ %hi0, %entry ], [ %phi, %next ]
  %more = icmp slt i64 %l, %top
  br i1 %more, label %body, label %done
body:
  %plo = lshr i64 %lo, 1
  %hi1 = add i64 %hi, 1
  %phi = lshr i64 %hi1, 1
  %n = sub i64 %phi, %plo
  %l1 = add i64 %l, 1
  %srcp = getelementptr i64, ptr %levels, i64 %l
  %src = load ptr, ptr %srcp, align 8
  %dstp = getelementptr i64, ptr %levels, i64 %l1
  %dst = load ptr, ptr %dstp, align 8
  %wide = icmp sge i64 %n, {_PAR_MIN}
  br i1 %wide, label %split, label %alone
split:
  %a0 = mul i64 %n, %part
  %a1 = sdiv i64 %a0, %nparts
  %p1 = add i64 %part, 1
  %b0 = mul i64 %n, %p1
  %b1 = sdiv i64 %b0, %nparts
  %s = add i64 %plo, %a1
  %cnt = sub i64 %b1, %a1
  call void @opmlc_khash(ptr %src, ptr %dst, i64 %s, i64 %cnt)
  call void @opmlc_kbarrier(ptr %sync, i64 %nparts)
  br label %next
alone:
  %p0 = icmp eq i64 %part, 0
  br i1 %p0, label %solo, label %done
solo:
  call void @opmlc_khash(ptr %src, ptr %dst, i64 %plo, i64 %n)
  br label %next
next:
  br label %head
done:
  ret void
}}

define internal void @opmlc_khash(ptr %src, ptr %dst, i64 %s, i64 %cnt) {{
entry:
  %so = mul i64 %s, 64
  %sp = getelementptr i8, ptr %src, i64 %so
  %do = mul i64 %s, 32
  %dp = getelementptr i8, ptr %dst, i64 %do
  %n8 = and i64 %cnt, -{_WIDTH}
  call void @keccak256_pairs_x8(ptr %sp, ptr %dp, i64 %n8)
  %ro = mul i64 %n8, 64
  %rp = getelementptr i8, ptr %sp, i64 %ro
  %rdo = mul i64 %n8, 32
  %rd = getelementptr i8, ptr %dp, i64 %rdo
  %r = sub i64 %cnt, %n8
  call void @keccak256_pairs(ptr %rp, ptr %rd, i64 %r)
  ret void
}}
"""


def _build_path_update(ir, mod, f1, f8) -> None:
    """``void merkle_update(ptr levels, i64 top, i64 lo, i64 hi)``: with ``levels[l]`` the
    rows of tree level l (32-byte nodes, an even count; level 0 = leaves), rehash the
    parents of the dirty rows [lo, hi) of level 0 up to level ``top``: at each level
    lo = lo >> 1, hi = (hi + 1) >> 1, then rows [lo, hi) of level l + 1 = keccak256 of
    the pairs of level l under them. One native call instead of a Python loop per level."""
    i64 = ir.IntType(64)
    p64 = i64.as_pointer()
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [p64, i64, i64, i64]),
                     name="merkle_update")
    levels, top, lo0, hi0 = fn.args
    entry, head, body, done = (fn.append_basic_block(x) for x in ("entry", "head", "body",
                                                                   "done"))
    b = ir.IRBuilder(entry)
    b.branch(head)
    b = ir.IRBuilder(head)
    lv = b.phi(i64, name="l")
    lo = b.phi(i64, name="lo")
    hi = b.phi(i64, name="hi")
    lv.add_incoming(ir.Constant(i64, 0), entry)
    lo.add_incoming(lo0, entry)
    hi.add_incoming(hi0, entry)
    b.cbranch(b.icmp_signed("<", lv, top), body, done)
    b = ir.IRBuilder(body)
    one = ir.Constant(i64, 1)
    plo = b.lshr(lo, one)
    phi_ = b.lshr(b.add(hi, one), one)
    src = b.inttoptr(b.load(b.gep(levels, [lv])), p64)
    lv1 = b.add(lv, one)
    dst = b.inttoptr(b.load(b.gep(levels, [lv1])), p64)
    n = b.sub(phi_, plo)
    n8 = b.and_(n, ir.Constant(i64, -_WIDTH))
    b.call(f8, [b.gep(src, [b.mul(plo, ir.Constant(i64, 8))]),
                b.gep(dst, [b.mul(plo, ir.Constant(i64, 4))]), n8])
    rest = b.add(plo, n8)
    b.call(f1, [b.gep(src, [b.mul(rest, ir.Constant(i64, 8))]),
                b.gep(dst, [b.mul(rest, ir.Constant(i64, 4))]), b.sub(n, n8)])
    lv.add_incoming(lv1, body)
    lo.add_incoming(plo, body)
    hi.add_incoming(phi_, body)
    b.branch(head)
    ir.IRBuilder(done).ret_void()


def _build_fn(ir, mod, name: str, width: int) -> None:
    i64 = ir.IntType(64)
    ty = i64 if width == 1 else ir.VectorType(i64, width)
    rc = _round_constants()
    rot = _rotation_offsets()
    fnty = ir.FunctionType(ir.VoidType(), [i64.as_pointer(), i64.as_pointer(), i64])
    fn = ir.Function(mod, fnty, name=name)
    src, dst, n = fn.args
    entry, loop, done = (fn.append_basic_block(s) for s in ("entry", "loop", "done"))

    b = ir.IRBuilder(entry)
    b.cbranch(b.icmp_signed("<=", n, ir.Constant(i64, 0)), done, loop)

    b = ir.IRBuilder(loop)
    i = b.phi(i64, name="i")
    i.add_incoming(ir.Constant(i64, 0), entry)

    def const(v: int) -> ir.Constant:
        return ir.Constant(i64, v)

    def vconst(v: int) -> ir.Constant:
        return const(v) if width == 1 else ir.Constant(ty, [v] * width)

    def rotl(v, s: int):
        if s == 0:
            return v
        return b.or_(b.shl(v, vconst(s)), b.lshr(v, vconst(64 - s)))

    base_in = b.mul(i, const(8))
    lanes = [vconst(0)] * 25
    for j in range(8):
        if width == 1:
            lanes[j] = b.load(b.gep(src, [b.add(base_in, const(j))]), align=1)
            continue
        v = ir.Constant(ty, ir.Undefined)
        for w in range(width):  # word j of pair i + w
            x = b.load(b.gep(src, [b.add(base_in, const(8 * w + j))]), align=1)
            v = b.insert_element(v, x, const(w))
        lanes[j] = v
    lanes[8] = vconst(0x01)
    lanes[_RATE_LANES - 1] = vconst(0x80 << 56)

    for r in range(24):
        # theta
        c = []
        for x in range(5):
            v = lanes[x]
            for y in range(1, 5):
                v = b.xor(v, lanes[x + 5 * y])
            c.append(v)
        d = [b.xor(c[(x - 1) % 5], rotl(c[(x + 1) % 5], 1)) for x in range(5)]
        a = [b.xor(lanes[k], d[k % 5]) for k in range(25)]
        # rho and pi: B[y, 2x + 3y] = rotl(A[x, y], r[x, y])
        bb = [None] * 25
        for x in range(5):
            for y in range(5):
                bb[y + 5 * ((2 * x + 3 * y) % 5)] = rotl(a[x + 5 * y], rot[x + 5 * y])
        # chi
        lanes = [
            b.xor(
                bb[x + 5 * y],
                b.and_(b.xor(bb[(x + 1) % 5 + 5 * y], vconst(-1)), bb[(x + 2) % 5 + 5 * y]),
            )
            for y in range(5)
            for x in range(5)
        ]
        # iota
        lanes[0] = b.xor(lanes[0], vconst(rc[r]))

    base_out = b.mul(i, const(4))
    for j in range(4):
        if width == 1:
            b.store(lanes[j], b.gep(dst, [b.add(base_out, const(j))]), align=1)
            continue
        for w in range(width):
            x = b.extract_element(lanes[j], const(w))
            b.store(x, b.gep(dst, [b.add(base_out, const(4 * w + j))]), align=1)
    nxt = b.add(i, const(width))
    i.add_incoming(nxt, loop)
    b.cbranch(b.icmp_signed("<", nxt, n), loop, done)

    b = ir.IRBuilder(done)
    b.ret_void()
    return fn


_KernelFn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
_UpdateFn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                             ctypes.c_int64)
_PartFn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                           ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)


class _Jit:
    """The compiled module; the engine must outlive the function pointer."""

    def __init__(self) -> None:
        import llvmlite.binding as llvm

        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        target = llvm.Target.from_default_triple()
        self.tm = target.create_target_machine(
            cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=3
        )
        from .native import _yield_symbol

        # the barrier's back-off: sched_yield every 1024 polls where libc has it
        text = _build_ir().replace("@@YIELD@@", "call i32 @sched_yield()\n" if _yield_symbol()
                                   else "; no sched_yield")
        if "@sched_yield" in text:
            text += "\ndeclare i32 @sched_yield()\n"
        # the machine code is cached on disk like the kernels' (runtime/native.py)
        from .native import jit_engine, object_cache

        mod = llvm.parse_assembly(text)
        mod.verify()
        cached, save = object_cache(text, llvm.get_host_cpu_name(),
                                    llvm.get_host_cpu_features().flatten(), 3, target.triple)
        self.engine = jit_engine(llvm, mod, self.tm, 3, cached, save)
        self.cache_hit = cached is not None
        self.fn1 = _KernelFn(self.engine.get_function_address("keccak256_pairs"))
        self.fn8 = _KernelFn(self.engine.get_function_address("keccak256_pairs_x8"))
        self.update = _UpdateFn(self.engine.get_function_address("merkle_update"))
        self.update_part = _PartFn(self.engine.get_function_address("merkle_update_part"))

    def fn(self, src: int, dst: int, n: int) -> None:
        """Hash n pairs: the SIMD kernel over the multiple of 8, the scalar one after."""
        n8 = n - n % _WIDTH
        if n8:
            self.fn8(src, dst, n8)
        if n > n8:
            self.fn1(src + 64 * n8, dst + 32 * n8, n - n8)


_jit: _Jit | None = None
_jit_failed = False
_jit_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
# Below this many pairs per thread, thread hand-off costs more than it saves.
_MIN_PAIRS_PER_THREAD = 4096


def _get_jit() -> _Jit | None:
    """Compile once, lazily; None (with one warning) if llvmlite cannot build it."""
    global _jit, _jit_failed
    if _jit is not None or _jit_failed:
        return _jit
    with _jit_lock:
        if _jit is None and not _jit_failed:
            if os.environ.get("OPMLC_KECCAK_JIT", "1") == "0":
                _jit_failed = True
            else:
                try:
                    _jit = _Jit()
                except Exception as exc:  # any llvmlite failure: fall back, stay correct
                    _jit_failed = True
                    warnings.warn(
                        f"keccak JIT unavailable ({exc}); using pycryptodome (slow)",
                        RuntimeWarning,
                        stacklevel=3,
                    )
    return _jit


def jit_available() -> bool:
    """True when ``hash_pairs`` runs the llvmlite kernel (compiling it if needed)."""
    return _get_jit() is not None


def _threads() -> int:
    env = os.environ.get("OPMLC_KECCAK_THREADS")
    if env:
        return max(1, int(env))
    return max(1, min(os.cpu_count() or 1, 8))


def _get_pool(n: int) -> ThreadPoolExecutor:
    """A pool of at least n workers (replaced, never shrunk, when more are asked for)."""
    global _pool, _pool_size
    with _jit_lock:
        if _pool is None or _pool_size < n:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="keccak")
            _pool_size = n
        return _pool


def path_update_fn():
    """``update(levels, top, lo, hi)``: the JIT's merkle_update (see _build_path_update)
    split over the hashing threads when the range is wide (merkle_update_part, one
    hand-off per call, not per level); None when the JIT is unavailable."""
    jit = _get_jit()
    if jit is None:
        return None

    def update(levels: int, top: int, lo: int, hi: int) -> None:
        n = min(_threads(), (((hi + 1) >> 1) - (lo >> 1)) // _MIN_PAIRS_PER_THREAD)
        if n <= 1 or top <= 0:
            jit.update(levels, top, lo, hi)
            return
        sync = np.zeros(16, np.int64)
        sp = sync.ctypes.data
        pool = _get_pool(n - 1)
        futs = [pool.submit(jit.update_part, levels, top, lo, hi, p, n, sp)
                for p in range(1, n)]
        jit.update_part(levels, top, lo, hi, 0, n, sp)
        for f in futs:
            f.result()

    return update


def update_address() -> int | None:
    """The address of the JIT's serial ``merkle_update(levels, top, lo, hi)`` (see
    _build_path_update), for native callers that split a range themselves
    (native.opmlc_hash_range); None when the JIT is unavailable."""
    jit = _get_jit()
    if jit is None:
        return None
    return jit.engine.get_function_address("merkle_update")


def hash_pairs(nodes: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """out[i] = keccak256(nodes[2i] || nodes[2i+1]) for i in [0, N).

    ``nodes``: (2N, 32) or (N, 64) uint8. ``out``: optional C-contiguous (N, 32) uint8
    destination (e.g. a slice of a tree level), written in place. Returns ``out``.
    """
    jit = _get_jit()
    if jit is None:
        return hash_pairs_reference(nodes, out)
    pairs = _as_pairs(nodes)
    n = pairs.shape[0]
    out = _check_out(out, n)
    if n == 0:
        return out
    src, dst = pairs.ctypes.data, out.ctypes.data
    threads = min(_threads(), n // _MIN_PAIRS_PER_THREAD)
    if threads <= 1:
        jit.fn(src, dst, n)
        return out
    # Contiguous chunks; the calling thread runs the last one.
    bounds = [n * t // threads for t in range(threads + 1)]
    pool = _get_pool(threads - 1)
    futs = [
        pool.submit(jit.fn, src + 64 * lo, dst + 32 * lo, hi - lo)
        for lo, hi in zip(bounds[:-2], bounds[1:-1], strict=True)
    ]
    jit.fn(src + 64 * bounds[-2], dst + 32 * bounds[-2], n - bounds[-2])
    for f in futs:
        f.result()
    return out
