"""opmlc: a compiler toolchain for verifiable (optimistic) ML inference.

Pipeline: ``frontend`` (ONNX -> IR) -> ``ir`` -> ``quantize`` (float IR -> integer IR)
-> ``backend`` (integer IR -> VM bytecode, native kernels).
The execution side (ISA, reference VM, Merkle state) lives in ``opmlc_runtime``
(the ``runtime/`` folder), which never imports the compiler; the generators that
consume the ISA table (Solidity verifier, ISA.md tables) in ``opmlc_isagen``
(the ``isagen/`` folder).
"""

__version__ = "0.1.0"


def compile(*args, **kwargs):  # noqa: A001 - the public name users expect
    """Compile a model to a .opvm artifact; see :func:`opmlc.api.compile`."""
    from opmlc.api import compile as _compile

    return _compile(*args, **kwargs)


def load(*args, **kwargs):
    """Load a .opvm artifact for running; see :func:`opmlc.api.load`."""
    from opmlc.api import load as _load

    return _load(*args, **kwargs)
