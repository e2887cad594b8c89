"""Float IR -> fixed-point integer IR with exactly specified semantics (spec/QUANT.md).

Public API::

    quantize(graph, scheme="fixed"|"int8", calibration=None, int8_mode="auto")
                                                         -> QuantizedModel
                    (int8_mode: which activations int8 keeps at 16 bits, quantize.mixed)
    QuantizedModel: .graph (integer Graph), .inputs / .outputs (name -> QParams | None),
                    .params (float value -> (int value, QParams)), .quantize_inputs(),
                    .dequantize_outputs(), .run(float_inputs)
    evaluate_int(qgraph, int_inputs, return_all=False)  -- the exact integer reference
    verify_int(qgraph)                                    -- integer-graph invariants
    quantize_report(graph, calibration, scheme) -> str    -- per-layer error vs float
    QParams, INT_OPS, prim (the VM primitives on numpy arrays)

The ``q.*`` integer ops are the IR's integer dialect (``opmlc.ir.intops``).
"""

from opmlc.ir import prim
from opmlc.ir.intops import INT_OPS
from opmlc.quantize.interp import evaluate_int, verify_int
from opmlc.quantize.params import QParams
from opmlc.quantize.quantize import QuantizedModel, QuantizeError, calibrate, quantize
from opmlc.quantize.report import layer_errors, quantize_report

__all__ = [
    "prim", "evaluate_int", "verify_int", "INT_OPS", "QParams", "QuantizedModel",
    "QuantizeError", "calibrate", "quantize", "layer_errors", "quantize_report",
]

