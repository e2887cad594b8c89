"""ONNX frontend: ``import_onnx(model, shapes=None) -> opmlc.ir.Graph``.

``model`` is a path (external data is read relative to it) or an
``onnx.ModelProto``; ``shapes`` fixes dynamic input dims, e.g.
``{"input": (1, 3, 224, 224)}`` (CLI: ``--shape input=1x3x224x224``).
Raises :class:`opmlc.errors.OpmlcError` subclasses with one-line messages.
"""

from __future__ import annotations

from opmlc.frontend.handlers import HANDLERS, supported_ops
from opmlc.frontend.importer import import_onnx, load_model

__all__ = ["import_onnx", "load_model", "HANDLERS", "supported_ops"]
