"""The native executor: JIT-compiles the artifact's LLVM IR for the host CPU (llvmlite).

Each graph node k is ``void node_k(ptr base, i64 part, i64 nparts)`` writing the VM
memory buffer in place at the planned addresses. Large parallel kernels are split
over a thread pool (ctypes calls release the GIL); small ones run on the caller.
"""

from __future__ import annotations

import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor

_Fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
_lock = threading.Lock()
_inited = False
_pool: ThreadPoolExecutor | None = None
# A node this many VM steps or more is split over the threads.
PARALLEL_MIN_STEPS = 200_000


def threads() -> int:
    env = os.environ.get("OPMLC_THREADS")
    n = int(env) if env else min(os.cpu_count() or 1, 8)
    return max(1, min(n, 64))  # 64: llvmgen.MAX_PARTS, the scratch panels


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


class NativeModule:
    """The compiled kernels of one artifact (the engine must outlive the pointers)."""

    def __init__(self, llvm_ir: str, n_nodes: int, opt: int = 3) -> None:
        import llvmlite.binding as llvm

        _init()
        target = llvm.Target.from_default_triple()
        self.tm = target.create_target_machine(
            cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(),
            opt=opt)
        mod = llvm.parse_assembly(llvm_ir)
        mod.verify()
        pb = llvm.create_pass_builder(self.tm,
                                      llvm.create_pipeline_tuning_options(speed_level=opt))
        pb.getModulePassManager().run(mod, pb)
        self.engine = llvm.create_mcjit_compiler(mod, self.tm)
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


__all__ = ["NativeModule", "PARALLEL_MIN_STEPS", "threads"]
