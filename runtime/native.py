"""The native executor: JIT-compiles the artifact's LLVM IR for the host CPU (llvmlite).

Each graph node k is ``void node_k(ptr base, i64 part, i64 nparts)`` writing the VM
memory buffer in place at the planned addresses. Large parallel kernels are split
over a thread pool (ctypes calls release the GIL); small ones run on the caller.

The machine code is cached on disk (``$OPMLC_CACHE_DIR`` or ``~/.cache/opmlc/jit``),
keyed by the sha256 of the IR text, the host CPU name and features, the optimisation
level and the LLVM version, so loading an artifact a second time skips the optimiser
and the code generator. ``OPMLC_JIT_CACHE=0`` turns the cache off.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
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
MAX_THREADS = 64  # llvmgen.MAX_PARTS: one scratch panel per thread


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


def cache_dir() -> Path | None:
    if os.environ.get("OPMLC_JIT_CACHE", "1") == "0":
        return None
    d = os.environ.get("OPMLC_CACHE_DIR")
    return Path(d) if d else Path.home() / ".cache" / "opmlc" / "jit"


class NativeModule:
    """The compiled kernels of one artifact (the engine must outlive the pointers)."""

    def __init__(self, llvm_ir: str, n_nodes: int, opt: int = 3) -> None:
        import llvmlite.binding as llvm

        _init()
        target = llvm.Target.from_default_triple()
        cpu, feats = llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()
        self.tm = target.create_target_machine(cpu=cpu, features=feats, opt=opt)
        key = hashlib.sha256("\0".join([
            llvm_ir, cpu, feats, str(opt), ".".join(map(str, llvm.llvm_version_info)),
            target.triple]).encode()).hexdigest()
        d = cache_dir()
        path = d / f"{key}.o" if d is not None else None
        cached = path.read_bytes() if path is not None and path.is_file() else None
        self.cache_hit = cached is not None
        mod = llvm.parse_assembly(llvm_ir)
        mod.verify()
        if cached is None:
            pb = llvm.create_pass_builder(
                self.tm, llvm.create_pipeline_tuning_options(speed_level=opt))
            pb.getModulePassManager().run(mod, pb)
        self.engine = llvm.create_mcjit_compiler(mod, self.tm)

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

        self.engine.set_object_cache(save, lambda _mod: cached)
        self.engine.finalize_object()
        self.fns = [_Fn(self.engine.get_function_address(f"node_{k}")) for k in range(n_nodes)]

    def run_node(self, k: int, base: int, parallel: bool = False) -> None:
        """Run node k on the buffer at address ``base``."""
        fn = self.fns[k]
        n = threads() if parallel else 1
        if n <= 1:
            fn(base, 0, 1)
            return
        pool = _get_pool()
        futs = [pool.submit(fn, base, p, n) for p in range(1, n)]
        fn(base, 0, n)
        for f in futs:
            f.result()


__all__ = ["MAX_THREADS", "NativeModule", "PARALLEL_MIN_STEPS", "cache_dir", "set_threads",
           "threads"]
