"""Integer IR -> .opvm: memory plan, VM code, native kernels (see compile.py).

The stages: ``fuse`` (contraction + requant chains into one node), ``lower`` (integer op
-> loop-nest ``Kernel``), ``kernel`` (the loop-nest IR), ``vmgen`` / ``llvmgen`` (its two
renderers: VM code with static step counts, LLVM IR for the native kernels),
``memplan`` (one byte layout for both), ``compile`` (the artifact).
"""
