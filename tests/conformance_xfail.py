"""Expected failures of the ONNX node conformance run, per engine and per op.

``XFAIL[engine][op] = [(regex on the case name, reason), ...]``.  Every listed
case must fail (pytest ``xfail(strict=True)``): when a fix makes one pass, the
test run says so and the entry must go.  ``TESTED_ENGINES`` are the engines the
test suite runs the conformance cases on (``scripts/conformance.py`` reports
every registered engine).
"""

from __future__ import annotations

import re

TESTED_ENGINES = ("float",)

# element types the IR does not have (see opmlc.ir.graph.DTYPES)
EXOTIC_DTYPE = r"(?i)bfloat16|bf16|float8|e4m3|e5m2|float4|e2m1|int4|uint4|int2|uint2|e8m0|string"
_DTYPE_REASON = "bfloat16 / float8 / float4 / int4 / int2 / string are not IR element types"

XFAIL: dict[str, dict[str, list[tuple[str, str]]]] = {
    "float": {
        "Cast": [(EXOTIC_DTYPE, _DTYPE_REASON)],
        "CastLike": [(EXOTIC_DTYPE, _DTYPE_REASON)],
        "Celu": [(EXOTIC_DTYPE, _DTYPE_REASON)],
        "Compress": [(EXOTIC_DTYPE, _DTYPE_REASON)],
        "OneHot": [(EXOTIC_DTYPE, _DTYPE_REASON)],
        "ReverseSequence": [(EXOTIC_DTYPE, _DTYPE_REASON)],
        "Einsum": [(EXOTIC_DTYPE, _DTYPE_REASON)],
        "Equal": [(EXOTIC_DTYPE, _DTYPE_REASON)],
        "Range": [(EXOTIC_DTYPE, _DTYPE_REASON),
                  (r"positive_delta_expanded$", "the expansion loops with a trip count computed "
                   "from run-time inputs (only constant trip counts are unrolled)")],
        "Bernoulli": [(r".", "random sampling (RandomUniformLike) is out of scope: a "
                             "verifiable inference is deterministic")],
        "Attention": [(EXOTIC_DTYPE, _DTYPE_REASON)],
        "QuantizeLinear": [
            (EXOTIC_DTYPE, _DTYPE_REASON),
            (r"blocked", "blocked quantization (block_size > 0) is not supported"),
        ],
        "DequantizeLinear": [
            (EXOTIC_DTYPE, _DTYPE_REASON),
            (r"blocked", "blocked quantization (block_size > 0) is not supported"),
        ],
        "Dropout": [(r"^test_training_dropout(?!_zero_ratio)",
                     "training-mode Dropout (random masks) is out of scope for inference")],
        "CausalConvWithState": [(r"silu_fp16",
                                 "float16 expansion: the reference rounds each intermediate "
                                 "differently (1 ulp of f16 > rtol 1e-3)")],
    },
}


def xfail_reason(engine: str, op: str, case_name: str) -> str | None:
    """The reason ``case_name`` (attributed to ``op``) is expected to fail, or None."""
    for pattern, reason in XFAIL.get(engine, {}).get(op, []):
        if re.search(pattern, case_name):
            return reason
    return None
