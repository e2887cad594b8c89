"""Integer IR -> .opvm: memory plan, VM code, native kernels (see compile.py).

ONNX-backend engines (merged by ``opmlc.onnx_backend.engines()``), each the ``int``
engine's pipeline — quantize the float graph (fixed scheme, calibrated on the inputs of
the run), then the exact integer graph — compiled to an artifact and executed:

* ``native``: the JIT-compiled native kernels;
* ``vm``: the reference VM stepper (Python, ~2e5 steps/s). A case whose compiled
  program takes more than :data:`VM_STEP_CAP` steps raises :class:`StepCapExceeded`:
  the conformance run counts it as not claimed rather than as a failure.

Both dequantize the outputs at the edges, so they return what ``int`` returns, bit for
bit (the engines equal the integer reference).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from opmlc.errors import OpmlcError

VM_STEP_CAP = 200_000


class StepCapExceeded(OpmlcError):
    """The compiled program needs more VM steps than the engine's cap."""


def _qdict(p) -> dict | None:  # noqa: ANN001 - QParams
    if p is None:
        return None
    d = p.to_dict()
    s = d.get("scale")
    d["scale"] = [float(v) for v in s] if isinstance(s, (list, tuple)) else (
        None if s is None else float(s))
    return d


def _engine(name: str, step_cap: int | None = None) -> Callable:
    def factory(graph):  # noqa: ANN001, ANN202 - onnx_backend Factory signature
        def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            from opmlc.backend.compile import compile_graph
            from opmlc.quantize import quantize
            from opmlc_runtime.engines import Program

            qm = quantize(graph, "fixed", dict(inputs))
            art = compile_graph(qm.graph, quant_in={k: _qdict(v) for k, v in qm.inputs.items()},
                                quant_out={k: _qdict(v) for k, v in qm.outputs.items()},
                                include_ir=False)
            steps = int(art.meta["total_steps"])
            if step_cap is not None and steps > step_cap:
                raise StepCapExceeded(f"{steps} VM steps exceed the {name} engine's cap of "
                                      f"{step_cap}")
            res = Program(art).run(qm.quantize_inputs(inputs), name)
            return qm.dequantize_outputs(res.outputs)

        return run

    factory.__doc__ = f"ONNX-backend engine {name!r}: quantize, compile, run on {name}."
    return factory


ENGINES = {"native": _engine("native"), "vm": _engine("vm", VM_STEP_CAP)}

__all__ = ["ENGINES", "StepCapExceeded", "VM_STEP_CAP"]
