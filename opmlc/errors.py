"""User-facing errors of the compiler.

Every error a user can cause (bad file, unsupported op, dynamic shape, malformed
IR text) is an :class:`OpmlcError`; its message is one line that names the
thing at fault and says what to do.  The CLI prints ``str(err)`` and exits
non-zero; anything else escaping is a bug in opmlc.
"""

from __future__ import annotations


class OpmlcError(Exception):
    """Base class of all errors with a user-facing message."""


class ModelLoadError(OpmlcError):
    """The model file cannot be read or is not a valid ONNX model."""


class UnsupportedOpsError(OpmlcError):
    """The model uses ops opmlc does not implement.

    ``ops`` lists every offending ``(op_type, opset, node_name)`` at once.
    """

    def __init__(self, ops: list[tuple[str, int, str]], detail: str = "") -> None:
        self.ops = list(ops)
        listed = ", ".join(f"{op} (opset {ver}, node {name!r})" for op, ver, name in self.ops)
        msg = f"unsupported ops in model: {listed}"
        super().__init__(msg + (f"; {detail}" if detail else ""))


class ShapeError(OpmlcError):
    """A shape is dynamic, inconsistent, or not computable at compile time."""


class NeedsConstantError(ShapeError):
    """A shape-like operand (Reshape's shape, Slice's starts, ...) is a run-time value.

    ``input_name`` is set when that operand is a graph input, so a caller that
    knows its value (the ONNX backend API) can specialise the model on it.
    """

    def __init__(self, msg: str, input_name: str | None = None) -> None:
        super().__init__(msg)
        self.input_name = input_name


class IRError(OpmlcError):
    """An IR graph breaks an invariant checked by :func:`opmlc.ir.verify`."""


class IRParseError(OpmlcError):
    """IR text does not parse, or a referenced constant is missing."""
