"""The native executor: JIT-compiles the artifact's LLVM IR for the host CPU (llvmlite).

Each graph node k is ``void node_k(ptr base, i64 part, i64 nparts)`` writing the VM
memory buffer in place at the planned addresses. Large parallel kernels are split
over a thread pool (ctypes calls release the GIL); small ones run on the caller.

The machine code is cached on disk (``$OPMLC_CACHE_DIR`` or ``$XDG_CACHE_HOME/opmlc/jit``,
``~/.cache`` by default),
keyed by the sha256 of the IR text, the host CPU name and features, the optimisation
level and the LLVM version, so loading an artifact a second time skips the optimiser
and the code generator. ``OPMLC_JIT_CACHE=0`` turns the cache off.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_Fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
_lock = threading.Lock()
_inited = False
_pool: ThreadPoolExecutor | None = None
_threads: int | None = None
# A node this many VM steps or more is split over the threads (a VM step is ~0.1 ns of
# native work; handing a node to the pool costs tens of microseconds).
PARALLEL_MIN_STEPS = 4_000_000
# The driver (``run_all``) splits parallel nodes from this many steps: its threads meet at
# a spinning barrier after every node (about a microsecond), not a pool handoff.
DRIVER_SPLIT_MIN_STEPS = 200_000
# A program whose parallel nodes add up to fewer steps runs on one thread: waking the
# pool's threads for the run costs a few hundred microseconds (bench_native: the digits
# CNN, 1e6 steps, took 0.04 ms on one thread and 0.32 ms on two).
PROGRAM_SPLIT_MIN_STEPS = 20_000_000
MAX_THREADS = 64  # convgen.MAX_PARTS: one scratch panel per thread


def threads() -> int:
    """Threads a parallel node is split over: set_threads(n), else $OPMLC_THREADS, else
    the CPU count (at most 8)."""
    if _threads is not None:
        return _threads
    env = os.environ.get("OPMLC_THREADS")
    n = int(env) if env else min(os.cpu_count() or 1, 8)
    return max(1, min(n, MAX_THREADS))


def set_threads(n: int | None) -> None:
    """Use n threads from now on (None: back to $OPMLC_THREADS / the CPU count)."""
    global _threads, _pool
    with _lock:
        _threads = None if n is None else max(1, min(int(n), MAX_THREADS))
        if _pool is not None and _pool._max_workers < threads():  # noqa: SLF001
            _pool.shutdown(wait=True)
            _pool = None


def _init() -> None:
    global _inited
    import llvmlite.binding as llvm

    with _lock:
        if not _inited:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            _inited = True


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=threads(), thread_name_prefix="opmlc")
        return _pool


DRIVER = "opmlc_run_all"
_Driver = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                           ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p)


def _yield_symbol() -> bool:
    """Make libc's sched_yield resolvable by the JIT (the barrier's back-off)."""
    import llvmlite.binding as llvm

    try:
        fn = ctypes.CDLL(None).sched_yield
    except (AttributeError, OSError):
        return False
    llvm.add_symbol("sched_yield", ctypes.cast(fn, ctypes.c_void_p).value)
    return True


def _node_call(k: int) -> list[str]:
    """The drivers' call of node k through the function table ``%fns``: split over the
    parts when ``flags[k]`` is set, else part 0 alone; ends at label ``sync<k>``."""
    return [
        f"  br label %n{k}",
        f"n{k}:",
        f"  %fp{k} = getelementptr i8, ptr %flags, i64 {k}",
        f"  %f{k} = load i8, ptr %fp{k}, align 1",
        f"  %s{k} = icmp ne i8 %f{k}, 0",
        f"  br i1 %s{k}, label %par{k}, label %one{k}",
        f"par{k}:",
        f"  %fq{k} = getelementptr ptr, ptr %fns, i64 {k}",
        f"  %fn{k} = load ptr, ptr %fq{k}, align 8",
        f"  call void %fn{k}(ptr %base, i64 %part, i64 %nparts)",
        f"  br label %sync{k}",
        f"one{k}:",
        f"  br i1 %p0, label %run{k}, label %sync{k}",
        f"run{k}:",
        f"  %fr{k} = getelementptr ptr, ptr %fns, i64 {k}",
        f"  %fo{k} = load ptr, ptr %fr{k}, align 8",
        f"  call void %fo{k}(ptr %base, i64 0, i64 1)",
        f"  br label %sync{k}",
        f"sync{k}:",
    ]


def driver_ir(n_nodes: int, triple: str) -> str:
    """The runtime's drivers, a module of their own beside the artifact's kernels:

    ``void opmlc_run_all(ptr base, i64 part, i64 nparts, ptr flags, ptr sync, ptr fns)``
    runs the nodes in order, node k being the function at ``fns[k]`` (the kernels'
    ``node_k``, compiled in other modules): node k with (part, nparts) when flags[k] != 0,
    else on part 0 only with (0, 1); with nparts > 1 the parts then wait at a barrier
    (an arrival counter and a generation word at ``sync``, ``sync + 64``), so every
    node sees all writes of the nodes before it. Threads spin on the generation, with
    ``sched_yield`` every 4096 polls."""
    has_yield = _yield_symbol()
    pause = "call void @llvm.x86.sse2.pause()" if triple.startswith(("x86_64", "i686")) \
        else ""
    lines = [
        "define internal void @opmlc_barrier(ptr %sync, i64 %n) {",
        "entry:",
        "  %genp = getelementptr i8, ptr %sync, i64 64",
        "  %gen = load atomic i64, ptr %genp acquire, align 8",
        "  %c = atomicrmw add ptr %sync, i64 1 acq_rel",
        "  %n1 = sub i64 %n, 1",
        "  %last = icmp eq i64 %c, %n1",
        "  br i1 %last, label %release, label %spin",
        "release:",
        "  store atomic i64 0, ptr %sync monotonic, align 8",
        "  %g1 = add i64 %gen, 1",
        "  store atomic i64 %g1, ptr %genp release, align 8",
        "  ret void",
        "spin:",
        "  %i = phi i64 [ 0, %entry ], [ %i1, %next ]",
        "  %g = load atomic i64, ptr %genp acquire, align 8",
        "  %same = icmp eq i64 %g, %gen",
        "  br i1 %same, label %wait, label %done",
        "wait:",
        f"  {pause}" if pause else "  ; no pause instruction on this target",
        "  %i1 = add i64 %i, 1",
        "  %m = and i64 %i1, 4095",
        "  %y = icmp eq i64 %m, 0",
        "  br i1 %y, label %yield, label %next",
        "yield:",
        "  call i32 @sched_yield()" if has_yield else "  ; no sched_yield",
        "  br label %next",
        "next:",
        "  br label %spin",
        "done:",
        "  ret void",
        "}",
        "",
        f"define void @{DRIVER}(ptr %base, i64 %part, i64 %nparts, ptr %flags, ptr %sync, "
        "ptr %fns) {",
        "entry:",
        "  %multi = icmp sgt i64 %nparts, 1",
        "  %p0 = icmp eq i64 %part, 0",
    ]
    for k in range(n_nodes):
        lines += _node_call(k) + [
            f"  br i1 %multi, label %bar{k}, label %end{k}",
            f"bar{k}:",
            "  call void @opmlc_barrier(ptr %sync, i64 %nparts)",
            f"  br label %end{k}",
            f"end{k}:",
        ]
    lines += ["  ret void", "}", ""]
    lines += _trace_driver_lines(n_nodes)
    if has_yield:
        lines.append("declare i32 @sched_yield()")
    if pause:
        lines.append("declare void @llvm.x86.sse2.pause()")
    return "\n" + "\n".join(lines) + "\n"


TRACE_DRIVER = "opmlc_trace_all"
_TraceDriver = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p,
                                ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                                ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                ctypes.c_void_p)


# ``void opmlc_hash_range(ptr update, ptr levels, i64 top, i64 lo, i64 hi, i64 part,
# i64 nparts, ptr hsync)``, every part calling it: the paths of dirty leaf range [lo, hi)
# up to level ``top`` with ``update`` = the keccak JIT's serial merkle_update. Levels
# 1..K (K = floor(log2((hi - lo) / 512)), at most top) are split into subtrees: part p
# takes [b_p, b_p+1) with b_0 = lo, b_nparts = hi and the other bounds multiples of 2^K,
# so no node of those levels has children in two parts; one barrier; then part 0 hashes
# levels K+1..top over [lo >> K, ceil(hi / 2^K)) (``update`` on the level array from
# K). One barrier per range instead of one per wide level. Small ranges (K = 0) or one
# part: part 0 alone.
_HASH_RANGE = """
define internal void @opmlc_hash_range(ptr %upd, ptr %levels, i64 %top, i64 %lo, i64 %hi,
    i64 %part, i64 %nparts, ptr %hsync) {
entry:
  %n = sub i64 %hi, %lo
  %q = lshr i64 %n, 9
  %lz = call i64 @llvm.ctlz.i64(i64 %q, i1 false)
  %k0 = sub i64 63, %lz
  %kt = icmp slt i64 %k0, %top
  %k1 = select i1 %kt, i64 %k0, i64 %top
  %multi = icmp sgt i64 %nparts, 1
  %kpos = icmp sgt i64 %k1, 0
  %split = and i1 %multi, %kpos
  br i1 %split, label %par, label %ser
ser:
  %p0 = icmp eq i64 %part, 0
  br i1 %p0, label %serial, label %out
serial:
  call void %upd(ptr %levels, i64 %top, i64 %lo, i64 %hi)
  br label %out
par:
  %al = shl i64 1, %k1
  %am = sub i64 %al, 1
  %nm = xor i64 %am, -1
  %s0 = mul i64 %n, %part
  %s1 = udiv i64 %s0, %nparts
  %s2 = add i64 %lo, %s1
  %s3 = add i64 %s2, %am
  %s4 = and i64 %s3, %nm
  %sz = icmp eq i64 %part, 0
  %s5 = select i1 %sz, i64 %lo, i64 %s4
  %sc = icmp ult i64 %s5, %hi
  %bs = select i1 %sc, i64 %s5, i64 %hi
  %pp = add i64 %part, 1
  %e0 = mul i64 %n, %pp
  %e1 = udiv i64 %e0, %nparts
  %e2 = add i64 %lo, %e1
  %e3 = add i64 %e2, %am
  %e4 = and i64 %e3, %nm
  %el = icmp eq i64 %pp, %nparts
  %e5 = select i1 %el, i64 %hi, i64 %e4
  %ec = icmp ult i64 %e5, %hi
  %be = select i1 %ec, i64 %e5, i64 %hi
  %has = icmp ult i64 %bs, %be
  br i1 %has, label %mine, label %meet
mine:
  call void %upd(ptr %levels, i64 %k1, i64 %bs, i64 %be)
  br label %meet
meet:
  call void @opmlc_barrier(ptr %hsync, i64 %nparts)
  %q0 = icmp eq i64 %part, 0
  br i1 %q0, label %upper, label %out
upper:
  %lv = getelementptr ptr, ptr %levels, i64 %k1
  %tk = sub i64 %top, %k1
  %ul = lshr i64 %lo, %k1
  %uh0 = add i64 %hi, %am
  %uh = lshr i64 %uh0, %k1
  call void %upd(ptr %lv, i64 %tk, i64 %ul, i64 %uh)
  br label %out
out:
  ret void
}

declare i64 @llvm.ctlz.i64(i64, i1)
""".split("\n")


def _trace_driver_lines(n_nodes: int) -> list[str]:
    """``void opmlc_trace_all(ptr base, i64 part, i64 nparts, ptr flags, ptr sync,
    ptr update, ptr levels, i64 top, ptr roff, ptr rlh, ptr tops, ptr hsync)``: the nodes
    in order as ``opmlc_run_all`` runs them, and after node k (all parts past the
    barrier) the Merkle paths of its writes: for j in [roff[k], roff[k+1]) every part
    calls ``opmlc_hash_range(update, levels, top, rlh[2j], rlh[2j+1], part, nparts,
    hsync)`` (``update``: the keccak JIT's serial merkle_update; the range's lower
    levels split into one subtree per part); then part 0 copies node(top, 0) to
    ``tops[32k : 32k + 32]`` and, when node k had ranges, the parts meet at the barrier
    again, so node k + 1 writes nothing that is still being hashed. Node roots with one
    native call per thread: no per-node or per-level Python. With ranges on the last
    node only, it is ``opmlc_run_all`` followed by one Merkle update (the final root)."""
    lines = _HASH_RANGE + [
        "define internal void @opmlc_hash_node(ptr %upd, ptr %levels, i64 %top, ptr %roff,",
        "    ptr %rlh, i64 %k, i64 %part, i64 %nparts, ptr %hsync, ptr %sync, ptr %tops) {",
        "entry:",
        "  %oa = getelementptr i64, ptr %roff, i64 %k",
        "  %a = load i64, ptr %oa, align 8",
        "  %k1 = add i64 %k, 1",
        "  %ob = getelementptr i64, ptr %roff, i64 %k1",
        "  %b = load i64, ptr %ob, align 8",
        "  br label %head",
        "head:",
        "  %j = phi i64 [ %a, %entry ], [ %j1, %body ]",
        "  %more = icmp slt i64 %j, %b",
        "  br i1 %more, label %body, label %done",
        "body:",
        "  %j2 = mul i64 %j, 2",
        "  %lp = getelementptr i64, ptr %rlh, i64 %j2",
        "  %lo = load i64, ptr %lp, align 8",
        "  %hp = getelementptr i64, ptr %lp, i64 1",
        "  %hi = load i64, ptr %hp, align 8",
        "  call void @opmlc_hash_range(ptr %upd, ptr %levels, i64 %top, i64 %lo, i64 %hi,"
        " i64 %part, i64 %nparts, ptr %hsync)",
        "  %j1 = add i64 %j, 1",
        "  br label %head",
        "done:",
        "  %p0 = icmp eq i64 %part, 0",
        "  br i1 %p0, label %copy, label %meet",
        "copy:",
        "  %tlp = getelementptr ptr, ptr %levels, i64 %top",
        "  %tl = load ptr, ptr %tlp, align 8",
        "  %v = load <4 x i64>, ptr %tl, align 1",
        "  %to = mul i64 %k, 32",
        "  %tp = getelementptr i8, ptr %tops, i64 %to",
        "  store <4 x i64> %v, ptr %tp, align 1",
        "  br label %meet",
        "meet:",
        "  %multi = icmp sgt i64 %nparts, 1",
        "  %some = icmp slt i64 %a, %b",
        "  %wait = and i1 %multi, %some",
        "  br i1 %wait, label %bar, label %end",
        "bar:",
        "  call void @opmlc_barrier(ptr %sync, i64 %nparts)",
        "  br label %end",
        "end:",
        "  ret void",
        "}",
        "",
        f"define void @{TRACE_DRIVER}(ptr %base, i64 %part, i64 %nparts, ptr %flags, "
        "ptr %sync, ptr %upd, ptr %levels, i64 %top, ptr %roff, ptr %rlh, ptr %tops, "
        "ptr %hsync, ptr %fns) {",
        "entry:",
        "  %multi = icmp sgt i64 %nparts, 1",
        "  %p0 = icmp eq i64 %part, 0",
    ]
    for k in range(n_nodes):
        lines += _node_call(k) + [
            f"  br i1 %multi, label %bar{k}, label %hash{k}",
            f"bar{k}:",
            "  call void @opmlc_barrier(ptr %sync, i64 %nparts)",
            f"  br label %hash{k}",
            f"hash{k}:",
            "  call void @opmlc_hash_node(ptr %upd, ptr %levels, i64 %top, ptr %roff, "
            f"ptr %rlh, i64 {k}, i64 %part, i64 %nparts, ptr %hsync, ptr %sync, ptr %tops)",
        ]
    lines += ["  ret void", "}", ""]
    return lines


# A primitive the kernels may call (spec/OPVM.md 5.1); the runtime defines it for the host.
DPBUSD_DECL = "declare <16 x i32> @opmlc_dpbusd16(<16 x i32>, <64 x i8>, <64 x i8>)"
_DPBUSD_HEAD = ("define internal <16 x i32> @opmlc_dpbusd16(<16 x i32> %acc, <64 x i8> %a, "
                "<64 x i8> %b) #91 {")
_DPBUSD_VNNI = "\n".join([
    _DPBUSD_HEAD,
    "  %r = call <16 x i32> @llvm.x86.avx512.vpdpbusd.512(<16 x i32> %acc, <64 x i8> %a, "
    "<64 x i8> %b)",
    "  ret <16 x i32> %r",
    "}",
    "declare <16 x i32> @llvm.x86.avx512.vpdpbusd.512(<16 x i32>, <64 x i8>, <64 x i8>)",
    "attributes #91 = { alwaysinline }"])


def _dpbusd_generic() -> str:
    """r[i] = acc[i] + sum_{j<4} zext(a[4i + j]) * sext(b[4i + j]), wrapping i32 lanes."""
    lines = [_DPBUSD_HEAD,
             "  %az = zext <64 x i8> %a to <64 x i32>",
             "  %bs = sext <64 x i8> %b to <64 x i32>",
             "  %p = mul <64 x i32> %az, %bs"]
    for j in range(4):
        mask = ", ".join(f"i32 {4 * i + j}" for i in range(16))
        lines.append(f"  %p{j} = shufflevector <64 x i32> %p, <64 x i32> poison, "
                     f"<16 x i32> <{mask}>")
    lines += ["  %s01 = add <16 x i32> %p0, %p1", "  %s23 = add <16 x i32> %p2, %p3",
              "  %s = add <16 x i32> %s01, %s23", "  %r = add <16 x i32> %acc, %s",
              "  ret <16 x i32> %r", "}", "attributes #91 = { alwaysinline }"]
    return "\n".join(lines)


def vnni(features: str | None = None) -> bool:
    """Whether the kernels' dot products use AVX-512 VNNI: the host has it and
    ``$OPMLC_VNNI`` is not 0 (0 forces the plain vector fallback; the same bits)."""
    if os.environ.get("OPMLC_VNNI", "1") == "0":
        return False
    if features is None:
        import llvmlite.binding as llvm

        _init()
        features = llvm.get_host_cpu_features().flatten()
    return "+avx512vnni" in features.split(",")


def with_primitives(llvm_ir: str, use_vnni: bool) -> str:
    """The kernels with the primitives they declare defined for this host."""
    if DPBUSD_DECL not in llvm_ir:
        return llvm_ir
    return llvm_ir.replace(DPBUSD_DECL, _DPBUSD_VNNI if use_vnni else _dpbusd_generic())


def cache_dir() -> Path | None:
    if os.environ.get("OPMLC_JIT_CACHE", "1") == "0":
        return None
    d = os.environ.get("OPMLC_CACHE_DIR")
    if d:
        return Path(d)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "opmlc" / "jit"


def object_cache(text: str, cpu: str, feats: str, opt: int, triple: str, prefix: str = ""):
    """(cached object bytes or None, save callback) for MCJIT's object cache, keyed by the
    sha256 of the IR text, the host CPU name and features, the optimisation level, the
    LLVM version and the triple; writes are atomic and best effort."""
    import llvmlite.binding as llvm

    key = hashlib.sha256("\0".join([
        text, cpu, feats, str(opt), ".".join(map(str, llvm.llvm_version_info)),
        triple]).encode()).hexdigest()
    d = cache_dir()
    path = d / f"{prefix}{key}.o" if d is not None else None
    try:
        cached = path.read_bytes() if path is not None and path.is_file() else None
    except OSError:
        cached = None

    def save(_mod, buf: bytes) -> None:
        if path is None or cached is not None:
            return
        try:  # best effort: a read-only home only costs the next load a compile
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(buf)
            os.replace(tmp, path)
        except OSError:
            pass

    return cached, save


# Kernel IR at least this long (characters) is split into modules compiled in parallel.
_SPLIT_MIN_CHARS = 200_000
# At most this many bytes of scratch globals duplicated by the split (one copy per extra
# module): ResNet-50-light fixed (68 MB of scratch) gets 2 modules, int8 (9.5 MB) 8.
_SCRATCH_COPIES_MAX = 128 << 20


def jit_parts(llvm_ir: str) -> int:
    """Modules the kernels are compiled in: one per CPU (at most 8) for an IR of at least
    _SPLIT_MIN_CHARS, else 1; ``$OPMLC_JIT_THREADS`` overrides. Each module holds its
    own copy of the kernels' scratch global (the loader zero-fills it: resident memory),
    so the extra copies are kept under _SCRATCH_COPIES_MAX bytes."""
    env = os.environ.get("OPMLC_JIT_THREADS")
    if env:
        return max(1, int(env))
    if len(llvm_ir) < _SPLIT_MIN_CHARS:
        return 1
    m = re.search(r"^@opmlc_scratch = .*?\[(\d+) x i8\]", llvm_ir, re.MULTILINE)
    scratch = int(m.group(1)) if m else 0
    copies = _SCRATCH_COPIES_MAX // scratch if scratch else 7
    return max(1, min(os.cpu_count() or 1, 8, 1 + copies))


def split_kernels(llvm_ir: str, n_nodes: int, parts: int) -> list[str]:
    """The kernels' IR as ``parts`` modules (fewer when there are fewer nodes): each holds
    every top-level line that is not a node function (globals, declarations, attributes,
    helper functions such as the primitives: internal, so each module keeps its own copy
    and drops what it does not use) and a share of the ``node_k`` functions, balanced by
    length. A module's text is a function of the IR alone, so its object caches."""
    common: list[str] = []
    funcs: list[tuple[str, str]] = []
    lines = llvm_ir.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("define "):
            j = i
            while lines[j] != "}":
                j += 1
            text = "\n".join(lines[i:j + 1])
            name = line.split("@", 1)[1].split("(", 1)[0]
            if name.startswith("node_"):
                funcs.append((name, text))
            else:
                common.append(text)
            i = j + 1
            continue
        common.append(line)
        i += 1
    parts = max(1, min(parts, len(funcs)))
    bins: list[list[tuple[str, str]]] = [[] for _ in range(parts)]
    load = [0] * parts
    for name, text in sorted(funcs, key=lambda f: -len(f[1])):
        b = load.index(min(load))
        bins[b].append((name, text))
        load[b] += len(text)
    head = "\n".join(common)
    return [head + "\n" + "\n".join(t for _, t in sorted(b, key=lambda f: _node_index(f[0])))
            + "\n" for b in bins]


def _node_index(name: str) -> int:
    try:
        return int(name[len("node_"):])
    except ValueError:
        return -1


def jit_engine(llvm, mod, tm, opt: int, cached: bytes | None, save):  # noqa: ANN001, ANN201
    """An MCJIT engine for parsed module ``mod``, its machine code finalized: optimized at
    ``opt`` and saved through ``save`` on a cache miss, else loaded from ``cached`` (the
    object cache of :func:`object_cache`)."""
    if cached is None:
        pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=opt))
        pb.getModulePassManager().run(mod, pb)
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.set_object_cache(save, lambda _mod: cached)
    engine.finalize_object()
    return engine


class _Part:
    """One compiled module: its context, target machine and engine kept alive together."""

    def __init__(self, llvm, target, cpu: str, feats: str, opt: int, text: str) -> None:
        self.ctx = llvm.create_context()
        self.tm = target.create_target_machine(cpu=cpu, features=feats, opt=opt)
        cached, save = object_cache(text, cpu, feats, opt, target.triple)
        self.cache_hit = cached is not None
        mod = llvm.parse_assembly(text, context=self.ctx)
        mod.verify()
        self.nodes = [f.name for f in mod.functions
                      if f.name.startswith("node_") and not f.is_declaration]
        self.engine = jit_engine(llvm, mod, self.tm, opt, cached, save)

    def __del__(self) -> None:
        """The engine first, while this part still holds the context. Left to the default
        teardown, the engine's dispose drops its module's (last) reference to the context,
        which llvmlite then disposes *before* LLVMPY_DisposeExecutionEngine deletes that
        module: a use after free (seen as a bus error when the GC collected a module)."""
        engine = self.__dict__.pop("engine", None)
        if engine is not None:
            engine.close()


class NativeModule:
    """The compiled kernels of one artifact (the engine must outlive the pointers)."""

    def __init__(self, llvm_ir: str, n_nodes: int, opt: int = 3) -> None:
        import llvmlite.binding as llvm

        _init()
        target = llvm.Target.from_default_triple()
        cpu, feats = llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()
        self.vnni = vnni(feats)
        if not self.vnni:  # compile as for a host without VNNI (the forced fallback too)
            feats = ",".join(f"-{f[1:]}" if f in ("+avx512vnni", "+avxvnni") else f
                             for f in feats.split(","))
        texts = split_kernels(with_primitives(llvm_ir, self.vnni), n_nodes,
                              jit_parts(llvm_ir))
        texts.append(driver_ir(n_nodes, target.triple))
        # one LLVM context, target machine and engine per module, compiled (or loaded
        # from the object cache) on threads of their own: llvmlite's calls release the GIL
        with ThreadPoolExecutor(max_workers=len(texts), thread_name_prefix="opmlc-jit") as ex:
            self._parts = list(ex.map(
                lambda t: _Part(llvm, target, cpu, feats, opt, t), texts))
        self.cache_hit = all(p.cache_hit for p in self._parts)
        addr = {}
        for part in self._parts[:-1]:
            for name in part.nodes:
                addr[name] = part.engine.get_function_address(name)
        self._fn_table = (ctypes.c_void_p * max(n_nodes, 1))(
            *[addr[f"node_{k}"] for k in range(n_nodes)])
        self.fns = [_Fn(addr[f"node_{k}"]) for k in range(n_nodes)]
        self.n_nodes = n_nodes
        drv = self._parts[-1].engine
        self._run_all = _Driver(drv.get_function_address(DRIVER))
        self._trace_all = _TraceDriver(drv.get_function_address(TRACE_DRIVER))
        self._hsync = (ctypes.c_int64 * 16)()  # the hashing's barrier words
        # barrier words: arrivals at offset 0, generation at offset 64 (own cache lines)
        self._sync = (ctypes.c_int64 * 16)()
        # one run at a time: the parts' scratch panels and the barrier are per module
        self._busy = threading.Lock()

    def run_all(self, base: int, flags: bytes, nparts: int | None = None) -> None:
        """Run every node in order on the buffer at ``base`` with one native call per
        thread: node k is split over the threads when ``flags[k]`` is 1 (as
        ``run_node(k, base, True)`` splits it), else part 0 runs it whole; the threads
        meet at a barrier after every node. The same bytes as ``run_node`` node by node.
        ``nparts``: at most this many threads."""
        n = min(threads(), nparts or threads()) if any(flags) else 1  # nothing to split:
        # no handoff, no barriers
        fl = ctypes.c_char_p(flags)
        sync = ctypes.addressof(self._sync)
        with self._busy:
            if n <= 1:
                self._run_all(base, 0, 1, fl, sync, self._fn_table)
                return
            pool = _get_pool()
            futs = [pool.submit(self._run_all, base, p, n, fl, sync, self._fn_table)
                    for p in range(1, n)]
            self._run_all(base, 0, n, fl, sync, self._fn_table)
            for f in futs:
                f.result()

    def trace_all(self, base: int, flags: bytes, update: int, levels: int, top: int,
                  roff: int, rlh: int, tops: int, nparts: int | None = None) -> None:
        """``run_all`` with every node's Merkle paths rehashed after it (``update``: the
        address of the keccak JIT's serial merkle_update; ``levels``: the tree's level
        pointers, ``top`` its dense top level; node k's dirty leaf ranges are the pairs
        ``rlh[2j], rlh[2j + 1]`` for j in [roff[k], roff[k + 1])): node(top, 0) after node
        k lands in ``tops[32k : 32k + 32]``. The same bytes and nodes as ``run_node`` then
        ``Memory.root`` node by node. Every thread takes part, whatever the flags (at most
        ``nparts``)."""
        n = min(threads(), nparts or threads())
        fl = ctypes.c_char_p(flags)
        sync, hsync = ctypes.addressof(self._sync), ctypes.addressof(self._hsync)
        args = (fl, sync, update, levels, top, roff, rlh, tops, hsync, self._fn_table)
        with self._busy:
            if n <= 1:
                self._trace_all(base, 0, 1, *args)
                return
            pool = _get_pool()
            futs = [pool.submit(self._trace_all, base, p, n, *args) for p in range(1, n)]
            self._trace_all(base, 0, n, *args)
            for f in futs:
                f.result()

    def run_node(self, k: int, base: int, parallel: bool = False) -> None:
        """Run node k on the buffer at address ``base``."""
        fn = self.fns[k]
        n = threads() if parallel else 1
        with self._busy:
            if n <= 1:
                fn(base, 0, 1)
                return
            pool = _get_pool()
            futs = [pool.submit(fn, base, p, n) for p in range(1, n)]
            fn(base, 0, n)
            for f in futs:
                f.result()


__all__ = ["DPBUSD_DECL", "DRIVER", "DRIVER_SPLIT_MIN_STEPS", "MAX_THREADS", "NativeModule",
           "PARALLEL_MIN_STEPS", "PROGRAM_SPLIT_MIN_STEPS", "TRACE_DRIVER", "cache_dir",
           "driver_ir", "object_cache", "jit_parts", "set_threads", "split_kernels", "threads",
           "vnni", "with_primitives"]
