"""The official ONNX node conformance cases, loaded for opmlc's engines.

Cases come from ``onnx/backend/test/data/node/*`` when the onnx package ships
that data, else they are generated in memory from ``onnx.backend.test.case``
(the same generator the shipped files come from).  Each case is attributed to
one ONNX op (from its name, e.g. ``test_reduce_mean_keepdims`` -> ReduceMean),
and an engine runs it iff it claims every op in the case's graph.

Used by ``tests/test_conformance.py`` and ``scripts/conformance.py``.
"""

from __future__ import annotations

import functools
import glob
import os
import warnings
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper


@dataclass
class Case:
    name: str
    op: str  # attributed ONNX op type
    model: onnx.ModelProto
    data_sets: list[tuple[list[np.ndarray], list[np.ndarray]]]
    rtol: float = 1e-3
    atol: float = 1e-7

    def ops(self) -> set[tuple[str, int]]:
        """(op_type, opset) of every node, subgraphs included."""
        opset = {o.domain or "": o.version for o in self.model.opset_import}
        out = set()

        def walk(graph: onnx.GraphProto) -> None:
            for n in graph.node:
                out.add((n.op_type if not n.domain else f"{n.domain}.{n.op_type}",
                         opset.get(n.domain or "", 0)))
                for a in n.attribute:
                    if a.g.node:
                        walk(a.g)

        walk(self.model.graph)
        return out

    def tensor_io(self) -> bool:
        """True iff every graph input and output is a plain tensor."""
        vis = list(self.model.graph.input) + list(self.model.graph.output)
        return all(v.type.HasField("tensor_type") for v in vis)


@functools.cache
def _op_names() -> dict[str, str]:
    """lowercase name without underscores -> ONNX op type (ai.onnx and ai.onnx.ml)."""
    return {s.name.lower(): s.name for s in onnx.defs.get_all_schemas_with_history()}


def attribute_op(case_name: str, model: onnx.ModelProto) -> str:
    """The op a case tests: longest schema name prefixing the de-underscored case name."""
    key = case_name.removeprefix("test_").replace("_", "").lower()
    names = _op_names()
    best = max((k for k in names if key.startswith(k)), key=len, default=None)
    if best is not None:
        return names[best]
    return model.graph.node[0].op_type if model.graph.node else "?"


def _from_files(root: str) -> list[Case]:
    cases = []
    for d in sorted(glob.glob(os.path.join(root, "test_*"))):
        model = onnx.load(os.path.join(d, "model.onnx"))
        sets = []
        for ds in sorted(glob.glob(os.path.join(d, "test_data_set_*"))):
            ins = [numpy_helper.to_array(onnx.load_tensor(f))
                   for f in sorted(glob.glob(os.path.join(ds, "input_*.pb")))]
            outs = [numpy_helper.to_array(onnx.load_tensor(f))
                    for f in sorted(glob.glob(os.path.join(ds, "output_*.pb")))]
            sets.append((ins, outs))
        name = os.path.basename(d)
        cases.append(Case(name, attribute_op(name, model), model, sets))
    return cases


def _arr(x: object) -> object:
    """Test data as numpy (some generators store TensorProto to keep exotic dtypes)."""
    return numpy_helper.to_array(x) if isinstance(x, onnx.TensorProto) else x


def _generated() -> list[Case]:
    from onnx.backend.test.case import node

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        raw = node.collect_testcases(None)
    out = []
    for c in raw:
        if c.model is None:
            continue
        sets = [([_arr(x) for x in ins], [_arr(y) for y in outs]) for ins, outs in c.data_sets]
        out.append(Case(c.name, attribute_op(c.name, c.model), c.model, sets,
                        c.rtol, c.atol))
    return out


@functools.cache
def all_cases() -> tuple[Case, ...]:
    """Every node conformance case, sorted by name."""
    root = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "node")
    cases = _from_files(root) if os.path.isdir(root) and os.listdir(root) else _generated()
    return tuple(sorted(cases, key=lambda c: c.name))


def claimed(case: Case, claims) -> bool:  # noqa: ANN001 - claims(op_type, opset) -> bool
    """True iff the engine claims every op of the case and its I/O are tensors."""
    return case.tensor_io() and all(claims(op, ver) for op, ver in case.ops())


def run_case(case: Case, engine: str) -> None:
    """Run every data set of ``case`` on ``engine``; AssertionError on mismatch."""
    from opmlc.onnx_backend import prepare

    rep = prepare(case.model, engine=engine)
    for ins, expected in case.data_sets:
        feed = {vi.name: x for vi, x in zip(case.model.graph.input, ins, strict=False)}
        got = rep.run(feed)
        assert len(got) == len(expected), f"{len(got)} outputs, expected {len(expected)}"
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            e = np.asarray(e)
            assert g.dtype == e.dtype, f"output {i}: dtype {g.dtype}, expected {e.dtype}"
            assert g.shape == e.shape, f"output {i}: shape {g.shape}, expected {e.shape}"
            if e.dtype.kind in "fc":
                np.testing.assert_allclose(g, e, rtol=case.rtol, atol=case.atol,
                                           err_msg=f"output {i}")
            else:
                np.testing.assert_array_equal(g, e, err_msg=f"output {i}")
