"""The public compile / load / run API (the commands that use it live in ``opmlc.cli``).

    art = opmlc.api.compile("model.onnx", scheme="fixed", output="model.opvm")
    model = opmlc.api.load("model.opvm")
    res = model.run({"x": x}, engine="native"|"vm"|"ref", commit=False)
    res.outputs, res.state_root, res.steps, res.node_roots

``engine="ref"`` runs the exact integer reference interpreter of the compiler on the
integer IR carried by the artifact (its constants are read from the memory image), then
replays its values into the memory plan (``Program.replay``): node k writes exactly its
output regions, so the reference gives the same ``state_root``, ``steps`` (the static
count) and, with ``commit``, ``node_roots`` as the engines — an independent check of both.

Outputs are the raw integers of the graph; ``model.dequantize(res.outputs)`` maps the
outputs that have quantization parameters to float32. ``capture=True`` adds every node
output, as it stands at that node's boundary, to ``res.tensors`` (decoded with
``model.tensors(res)``) for tensor-by-tensor comparisons between engines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from opmlc.errors import OpmlcError
from opmlc_runtime.artifact import Artifact
from opmlc_runtime.dtypes import np_dtype
from opmlc_runtime.engines import Program, RunResult
from opmlc_runtime.files import read_npz

ENGINES = ("native", "vm", "ref")


def _qdict(p: Any) -> dict | None:
    if p is None:
        return None
    d = p.to_dict()
    if isinstance(d.get("scale"), (list, tuple)):
        d["scale"] = [float(s) for s in d["scale"]]
    elif d.get("scale") is not None:
        d["scale"] = float(d["scale"])
    return d


def _npz_digest(data: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in sorted(data):
        a = np.ascontiguousarray(data[k])
        h.update(f"{k}:{a.dtype.str}:{list(a.shape)}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def compile(model: Any, *, scheme: str = "fixed",  # noqa: A001 - the public name
            calibration: dict[str, np.ndarray] | str | Path | None = None,
            shapes: dict[str, tuple[int, ...]] | None = None,
            output: str | Path | None = None, include_ir: bool = True,
            progress: Callable[[str], None] | None = None, fuse: bool = True) -> Artifact:
    """Compile ``model`` (ONNX path or ModelProto, a float IR Graph, or a QuantizedModel)
    to an artifact; write it to ``output`` if given. ``fuse``: fuse contraction + requant
    (+ clamp) chains into one node (recorded in the artifact's options)."""
    from opmlc.backend.compile import compile_graph
    from opmlc.ir.graph import Graph
    from opmlc.ir.text import print_graph
    from opmlc.quantize import QuantizedModel, quantize

    say = progress or (lambda m: None)
    if isinstance(calibration, (str, Path)):
        calibration = read_npz(calibration, "calibration")
    options: dict[str, Any] = {"scheme": scheme,
                               "shapes": {k: list(v) for k, v in sorted((shapes or {}).items())},
                               "calibration_sha256": _npz_digest(calibration)
                               if calibration else None, "fuse": bool(fuse)}
    if isinstance(model, QuantizedModel):
        qm, source = model, hashlib.sha256(print_graph(model.graph).encode()).hexdigest()
        options["scheme"] = qm.scheme
    else:
        if isinstance(model, Graph):
            g, source = model, hashlib.sha256(print_graph(model).encode()).hexdigest()
        else:
            from opmlc.frontend import import_onnx

            if isinstance(model, (str, Path)):
                try:
                    source = hashlib.sha256(Path(model).read_bytes()).hexdigest()
                except OSError as e:
                    raise OpmlcError(f"{model}: cannot read: {e.strerror or e}") from None
            else:
                source = hashlib.sha256(model.SerializeToString()).hexdigest()
            say("importing ONNX")
            g = import_onnx(model, shapes)
        say(f"quantizing {len(g.nodes)} float IR nodes ({scheme}; calibrating on "
            + ("the given inputs)" if calibration else "synthetic inputs)"))
        qm = quantize(g, scheme, calibration)
        say(f"quantized: {len(qm.graph.nodes)} integer IR nodes")
    art = compile_graph(qm.graph, quant_in={k: _qdict(v) for k, v in qm.inputs.items()},
                        quant_out={k: _qdict(v) for k, v in qm.outputs.items()},
                        options=options, source_sha256=source, include_ir=include_ir,
                        progress=say)
    if output is not None:
        art.save(output)
    return art


class Model:
    """A loaded artifact: ``run(inputs, engine, commit, capture)``."""

    def __init__(self, artifact: Artifact) -> None:
        self.artifact = artifact
        self.program = Program(artifact)
        self._ref_graph = None

    @property
    def meta(self) -> dict:
        return self.artifact.meta

    def run(self, inputs: dict[str, np.ndarray], engine: str = "native",
            commit: bool = False, capture: bool = False) -> RunResult:
        if engine == "ref":
            return self._run_ref(inputs, commit, capture)
        if engine not in ENGINES:
            raise OpmlcError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
        return self.program.run(inputs, engine, commit, capture)

    def dequantize(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs with quantization parameters as float32; the others unchanged."""
        return self.program.dequantize_outputs(outputs)

    def tensors(self, res: RunResult) -> dict[str, np.ndarray]:
        """``res.tensors`` (raw bytes of every node output) as arrays of the IR types."""
        g = self.ref_graph()
        return {k: np.frombuffer(v, g.types[k].np_dtype.newbyteorder("<")).astype(
                    g.types[k].np_dtype).reshape(g.types[k].shape) for k, v in
                res.tensors.items()}

    def ref_graph(self):
        """The integer IR with its constants read back from the memory image."""
        from opmlc.ir.text import parse_graph

        if self._ref_graph is not None:
            return self._ref_graph
        if self.artifact.ir_text is None:
            raise OpmlcError("this artifact carries no integer IR (compiled with --no-ir); "
                             "use --engine native or vm")
        consts = {}
        img = self.artifact.image
        for name, tstr, addr in self.meta["consts"]:
            dt, shape = tstr.split("[")
            shape = tuple(int(d) for d in shape.rstrip("]").split(",") if d)
            n = int(np.prod(shape, dtype=np.int64)) * np_dtype(dt).itemsize
            consts[name] = np.frombuffer(img[addr: addr + n], np_dtype(dt)).reshape(shape).copy()
        self._ref_graph = parse_graph(self.artifact.ir_text, consts=consts)
        return self._ref_graph

    def _run_ref(self, inputs: dict[str, np.ndarray], commit: bool = False,
                 capture: bool = False) -> RunResult:
        from opmlc.quantize.interp import evaluate_int

        g = self.ref_graph()
        self.program.check_names(inputs)
        enc = {}
        for sig in self.program.inputs:
            raw = self.program.encode_input(sig, inputs)
            enc[sig["name"]] = raw.view(np_dtype(sig["dtype"])).reshape(sig["shape"])
        env = evaluate_int(g, enc, return_all=True)
        values = {o: env[o] for n in g.nodes for o in n.outputs}
        res = self.program.replay(inputs, values, commit, engine="ref")
        if capture:
            res.tensors = {k: np.ascontiguousarray(v).astype(v.dtype.newbyteorder("<"))
                           .tobytes() for k, v in values.items()}
        return res


def load(path: str | Path) -> Model:
    return Model(Artifact.load(path))


__all__ = ["ENGINES", "Model", "compile", "load"]
