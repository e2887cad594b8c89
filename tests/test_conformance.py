"""The official ONNX node conformance cases through ``opmlc.onnx_backend``.

Parametrized over every case whose ops the engine claims; known failures are
listed per op in ``conformance_xfail.py`` (strict xfail).  Cases of unclaimed ops
are not run here; ``docs/conformance.md`` counts them.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conformance_cases import all_cases, claimed, run_case
from conformance_xfail import TESTED_ENGINES, xfail_reason

from opmlc.onnx_backend import engines


def _params() -> list:
    params = []
    table = engines()
    for engine in TESTED_ENGINES:
        claims = table[engine].claims
        for case in all_cases():
            if not claimed(case, claims):
                continue
            reason = xfail_reason(engine, case.op, case.name)
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(pytest.param(engine, case, id=f"{engine}-{case.name}", marks=marks))
    return params


@pytest.mark.parametrize(("engine", "case"), _params())
def test_node_case(engine: str, case) -> None:  # noqa: ANN001 - conformance_cases.Case
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        run_case(case, engine)


def test_conformance_claims_many_cases() -> None:
    """The float engine claims several hundred cases (a guard against silent un-claiming)."""
    n = sum(claimed(c, engines()["float"].claims) for c in all_cases())
    assert n >= 800


def test_backend_module_api() -> None:
    """Module-level functions as in onnxruntime.backend."""
    from onnx import helper

    import opmlc.onnx_backend as backend

    assert backend.supports_device("CPU") and not backend.supports_device("CUDA")
    node = helper.make_node("Relu", ["x"], ["y"])
    x = np.array([[-1.0, 2.0]], np.float32)
    (y,) = backend.run_node(node, [x])
    np.testing.assert_array_equal(y, [[0.0, 2.0]])
    with pytest.raises(Exception, match="unknown engine"):
        backend.prepare(helper.make_model(helper.make_graph(
            [node], "g", [helper.make_tensor_value_info("x", 1, [1, 2])],
            [helper.make_tensor_value_info("y", 1, [1, 2])])), engine="nope")
