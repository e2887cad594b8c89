"""opmlc: a compiler toolchain for verifiable (optimistic) ML inference.

Pipeline: ``frontend`` (ONNX -> IR) -> ``ir`` -> ``quantize`` (float IR -> integer IR)
-> ``backend`` (integer IR -> VM bytecode, native kernels, Solidity verifier).
The execution side (ISA, reference VM, Merkle state) lives in ``opmlc_runtime``
(the ``runtime/`` folder), which never imports the compiler.
"""

__version__ = "0.1.0"
