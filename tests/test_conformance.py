"""The official ONNX node conformance cases through ``opmlc.onnx_backend``.

Parametrized over every case whose ops the engine claims; known failures are
listed per op in ``conformance_xfail.py`` (strict xfail).  Cases of unclaimed ops
are not run here; ``docs/conformance.md`` counts them.

The compiled engines ``native`` and ``vm`` are checked against ``int`` (the exact
integer reference of the same quantized graph) rather than against the expected
outputs: the same arrays bit for bit, or both fail. A sample of every 20th claimed
case runs in the fast set; every case in the slow set (about a minute).
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from conformance_cases import all_cases, claimed, run_case
from conformance_xfail import TESTED_ENGINES, xfail_reason

from opmlc.onnx_backend import StepCapExceeded, engines, prepare


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


def _engine_outputs(case, engine: str) -> list | str:  # noqa: ANN001
    """Every data set's outputs, or the name of the exception the engine raised."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            rep = prepare(case.model, engine=engine)
            return [rep.run({vi.name: x for vi, x in zip(case.model.graph.input, ins,
                                                         strict=False)})
                    for ins, _ in case.data_sets]
    except StepCapExceeded:
        raise
    except Exception as e:  # noqa: BLE001 - any failure: both engines must fail
        return type(e).__name__


# cases where the integer reference (numpy) raises but the kernels have a defined result
DEFINED_WHERE_INT_RAISES = {
    r"^test_reduce_max_empty_set": "max over an empty set: the kernel gives the dtype's "
                                   "minimum (numpy's max raises)",
}


def _compiled_params(every: int) -> list:
    claims = engines()["native"].claims
    cases = [c for c in all_cases() if claimed(c, claims)]
    params = []
    for k, case in enumerate(cases):
        marks = [] if k % every == 0 else [pytest.mark.slow]
        params.append(pytest.param(case, id=case.name, marks=marks))
    return params


@pytest.mark.parametrize("case", _compiled_params(20))
def test_compiled_engines_equal_int(case) -> None:  # noqa: ANN001 - conformance_cases.Case
    want = _engine_outputs(case, "int")
    for engine in ("native", "vm"):
        try:
            got = _engine_outputs(case, engine)
        except StepCapExceeded:
            continue  # the VM declines large cases
        if isinstance(want, str) and not isinstance(got, str) and any(
                re.search(p, case.name) for p in DEFINED_WHERE_INT_RAISES):
            continue
        if isinstance(want, str) or isinstance(got, str):
            assert isinstance(want, str) and isinstance(got, str), (engine, want, got)
            continue
        for ds_want, ds_got in zip(want, got, strict=True):
            for w, g in zip(ds_want, ds_got, strict=True):
                assert w.dtype == g.dtype and w.shape == g.shape, engine
                np.testing.assert_array_equal(g, w, err_msg=engine)


def test_compiled_engines_registered() -> None:
    table = engines()
    assert {"float", "int", "native", "vm"} <= set(table)
