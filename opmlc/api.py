"""The public compile / load / run API (the commands that use it live in ``opmlc.cli``).

    art = opmlc.api.compile("model.onnx", scheme="fixed", output="model.opvm")
    model = opmlc.api.load("model.opvm")
    res = model.run({"x": x}, engine="native"|"vm"|"stepper"|"ref", commit=False, trace=False)
    res.outputs, res.state_root, res.steps, res.node_roots, res.roots

``engine="ref"`` runs the exact integer reference interpreter of the compiler on the
integer IR carried by the artifact (its constants are read from the memory image), then
replays its values into the memory plan (``Program.replay``): node k writes exactly its
output regions, so the reference gives the same ``state_root``, ``steps`` (the static
count) and, with ``trace``, ``node_roots`` as the engines — an independent check of both.
``commit=True`` computes the final state root, ``trace=True`` every root (S0, each node
boundary, final); ``res.roots`` says which ("none", "final", "all").

Outputs are the raw integers of the graph; ``model.dequantize(res.outputs)`` maps the
outputs that have quantization parameters to float32. ``capture=True`` adds every node
output, as it stands at that node's boundary, to ``res.tensors`` (decoded with
``model.tensors(res)``) for tensor-by-tensor comparisons between engines.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from opmlc.errors import OpmlcError
from opmlc_runtime.artifact import Artifact
from opmlc_runtime.dtypes import np_dtype
from opmlc_runtime.edge import EdgeWarning
from opmlc_runtime.engines import Program, RunResult
from opmlc_runtime.files import read_npz

ENGINES = ("native", "vm", "stepper", "ref")


class IndexWarning(UserWarning):
    """An integer input used as a gather index lies outside its table: every engine clamps
    it (spec/QUANT.md, "Movement ops"), which is defined but rarely what was meant."""


# One equation of the IR text: %out: T[shape] = op(%a, %b, ...) {attrs}
_VAR = r'%("(?:[^"\\]|\\.)*"|[^\s:,(){}]+)'
_EQ = re.compile(rf"^\s*{_VAR}: (\w+)\[([\d,]*)\] = (\w+)\(([^)]*)\)(?: \{{(.*)\}})?\s*$")
_DECL = re.compile(rf"{_VAR}: (\w+)\[([\d,]*)\]")
_PASS = {"reshape", "transpose", "expand", "squeeze", "unsqueeze", "flatten", "tile", "slice"}


def _name(tok: str) -> str:
    return json.loads(tok) if tok.startswith('"') else tok


def index_uses(ir_text: str) -> dict[str, list[tuple[str, str, int]]]:
    """Graph inputs used (directly or through reshape-like movement ops) as the index
    operand of a gather / gather_elements: input -> [(node output, op, axis length)]."""
    shapes: dict[str, list[int]] = {}
    for m in _DECL.finditer(ir_text.split("\n", 1)[0]):
        shapes[_name(m.group(1))] = [int(d) for d in m.group(3).split(",") if d]
    root: dict[str, str] = {k: k for k in shapes}  # value -> the graph input it copies
    out: dict[str, list[tuple[str, str, int]]] = {}
    for line in ir_text.splitlines()[1:]:
        d = _DECL.match(line.strip())
        if d:
            shapes[_name(d.group(1))] = [int(v) for v in d.group(3).split(",") if v]
        m = _EQ.match(line)
        if not m:
            continue
        y, op = _name(m.group(1)), m.group(4)
        args = [_name(a.strip()[1:]) for a in m.group(5).split(",") if a.strip()]
        if op in _PASS and args and args[0] in root:
            root[y] = root[args[0]]
        elif op in ("gather", "gather_elements") and len(args) == 2 and args[1] in root:
            ax = re.search(r"axis=(-?\d+)", m.group(6) or "")
            xs = shapes.get(args[0])
            if ax and xs:
                out.setdefault(root[args[1]], []).append(
                    (y, op, xs[int(ax.group(1)) % len(xs)]))
    return out


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
            progress: Callable[[str], None] | None = None, fuse: bool = True,
            generate: int | None = None, context: int | None = None,
            sample: str | dict | None = None, int8_mode: str | None = None,
            act_dtype: str | None = None) -> Artifact:
    """Compile ``model`` (ONNX path or ModelProto, a float IR Graph, or a QuantizedModel)
    to an artifact; write it to ``output`` if given. ``fuse``: fuse contraction + requant
    (+ clamp) chains into one node (recorded in the artifact's options).

    ``generate=N``: ``model`` is a decoder (token ids (1, L) -> logits (1, L, V)); the
    artifact runs N steps of generation in one program (``opmlc.quantize.generate``):
    greedy, or with ``sample`` ("temperature=T,top_k=K" or a dict) drawn by q.sample from
    a seed input. ``context=L`` fixes the ids' sequence length of an ONNX model whose
    length is symbolic. ``Model.run({ids: prompt})`` then returns ``tokens``.

    ``int8_mode``: the int8 scheme's mixed precision (``opmlc.quantize.mixed``; default
    ``auto``), recorded in the options when given. ``act_dtype``: the fixed scheme's
    activation word (``i32``, the default, or ``i16``: spec/QUANT.md), recorded when given."""
    from opmlc.backend.compile import compile_graph
    from opmlc.ir.graph import Graph
    from opmlc.ir.text import print_graph
    from opmlc.quantize import QuantizedModel, quantize

    say = _throttled(progress) if progress else (lambda m: None)
    if isinstance(calibration, (str, Path)):
        calibration = read_npz(calibration, "calibration")
    if generate is None and (context is not None or sample is not None):
        raise OpmlcError("--context and --sample apply to --generate N only")
    if context is not None and not isinstance(model, (str, Path)):
        raise OpmlcError("context= applies to an ONNX file; give shapes= for other models")
    if context is not None:
        shapes = {**_context_shapes(model, context), **(shapes or {})}
    elif generate is not None and isinstance(model, (str, Path)):
        try:
            name, dims = _ids_input(model)
        except OpmlcError:  # not a decoder: unroll says so after the import
            name, dims = "", []
        if not all(isinstance(d, int) and d > 0 for d in dims) and name not in (shapes or {}):
            raise OpmlcError(f"{model}: the token ids {name!r} have a symbolic length "
                             f"{list(dims)}; give the context with --context L")
    options: dict[str, Any] = {"scheme": scheme,
                               "shapes": {k: list(v) for k, v in sorted((shapes or {}).items())},
                               "calibration_sha256": _npz_digest(calibration)
                               if calibration else None, "fuse": bool(fuse)}
    if int8_mode is not None:
        options["int8_mode"] = int8_mode
    if act_dtype is not None:
        options["act_dtype"] = act_dtype
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
        qm = quantize(g, scheme, calibration, progress=say,
                      **({"int8_mode": int8_mode} if int8_mode else {}),
                      **({"fixed_act": act_dtype} if act_dtype else {}))
        say(f"quantized: {len(qm.graph.nodes)} integer IR nodes")
    if generate is not None:
        from opmlc.quantize.generate import Sampling, unroll

        if isinstance(sample, str):
            sample = Sampling.parse(sample)
        elif isinstance(sample, dict):
            sample = Sampling(**sample)
        qm, rec = unroll(qm, int(generate), sample)
        options["generate"] = rec
        say(f"generation: {generate} steps unrolled into {len(qm.graph.nodes)} integer IR "
            f"nodes (context {rec['context']}, " + ("greedy" if sample is None else
                                                   f"sampled: {sample.to_dict()}") + ")")
    art = compile_graph(qm.graph, quant_in={k: _qdict(v) for k, v in qm.inputs.items()},
                        quant_out={k: _qdict(v) for k, v in qm.outputs.items()},
                        options=options, source_sha256=source, include_ir=include_ir,
                        progress=say)
    if output is not None:
        art.save(output)
    return art


def _throttled(say: Callable[[str], None], every: float = 1.0) -> Callable[[str], None]:
    """``say`` for the stage lines; the indented progress lines within a stage at most once
    a second (a slow stage shows them, a fast one stays quiet)."""
    import time

    last = [time.perf_counter()]

    def f(msg: str) -> None:
        now = time.perf_counter()
        if msg.startswith("  ") and now - last[0] < every:
            return
        last[0] = now
        say(msg)

    return f


def _ids_input(path: str | Path) -> tuple[str, list]:
    """(name, dims: ints, or names of symbolic dims) of the one integer input of an ONNX
    file (the token ids of a decoder)."""
    import onnx

    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - reported with the file name
        raise OpmlcError(f"{path}: cannot read the ONNX model: {e}") from None
    inits = {i.name for i in m.graph.initializer}
    ints = [i for i in m.graph.input if i.name not in inits and
            i.type.tensor_type.elem_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32)]
    if len(ints) != 1 or len(ints[0].type.tensor_type.shape.dim) not in (1, 2):
        raise OpmlcError(f"{path}: --context needs one integer token-ids input of rank 1 "
                         "or 2; give --shape NAME=1x<L> instead")
    return ints[0].name, [d.dim_value if d.HasField("dim_value") else d.dim_param or "?"
                          for d in ints[0].type.tensor_type.shape.dim]


def _context_shapes(path: str | Path, context: int) -> dict[str, tuple[int, ...]]:
    """``{ids: (1, context)}`` (or ``(context,)``) for the one integer input of an ONNX file."""
    name, dims = _ids_input(path)
    return {name: (1, context) if len(dims) == 2 else (context,)}


class Model:
    """A loaded artifact: ``run(inputs, engine, commit, capture)``."""

    def __init__(self, artifact: Artifact) -> None:
        self.artifact = artifact
        self.program = Program(artifact)
        self._ref_graph = None
        self._index_uses: dict[str, list[tuple[str, str, int]]] | None = None

    @property
    def meta(self) -> dict:
        return self.artifact.meta

    def run(self, inputs: dict[str, np.ndarray], engine: str = "native",
            commit: bool = False, capture: bool = False, saturate: bool = False,
            trace: bool = False) -> RunResult:
        """Run on ``engine``. A float input holding NaN, +-inf or values outside its
        quantized range is refused (``InputError``) unless ``saturate``: then it is
        clamped by the edge rule and an :class:`EdgeWarning` says how many values were.
        Integer inputs used as gather indices outside their table are clamped by every
        engine alike (spec/QUANT.md) and announced by an :class:`IndexWarning` first."""
        if engine not in ENGINES:
            raise OpmlcError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
        inputs = self.program.expand(inputs)  # a generation program: prompt -> inputs
        for msg in self.index_warnings(inputs):
            warnings.warn(msg, IndexWarning, stacklevel=2)
        if saturate:
            inputs = self.encode_inputs(inputs, saturate=True)
        if engine == "ref":
            return self._run_ref(inputs, commit, capture, trace)
        return self.program.run(inputs, engine, commit, capture, trace)

    def encode_inputs(self, inputs: dict[str, np.ndarray], saturate: bool = False
                      ) -> dict[str, np.ndarray]:
        """The integer arrays the engines write into S0 (float inputs quantized by the edge
        rule and its policy; with ``saturate`` an :class:`EdgeWarning` per clamped input)."""
        self.program.check_names(inputs)
        notes: list[str] = []
        out = {}
        for sig in self.program.inputs:
            raw = self.program.encode_input(sig, inputs, saturate, notes)
            out[sig["name"]] = raw.view(np_dtype(sig["dtype"])).reshape(sig["shape"])
        for msg in notes:
            warnings.warn(msg, EdgeWarning, stacklevel=3)
        return out

    def index_warnings(self, inputs: dict[str, np.ndarray]) -> list[str]:
        """One line per integer input whose values index past a gather's table (they run,
        clamped to [0, n - 1] after adding n to a negative index: spec/QUANT.md)."""
        if self._index_uses is None:
            text = self.artifact.ir_text
            self._index_uses = index_uses(text) if text and any(
                s.get("quant") is None for s in self.program.inputs) else {}
        msgs = []
        for name, uses in self._index_uses.items():
            x = inputs.get(name)
            if x is None:
                continue
            x = np.asarray(x)
            if x.dtype.kind not in "iub" or not x.size:
                continue
            x = x.astype(np.int64, copy=False) if x.dtype.kind != "u" else x
            for y, op, n in uses:
                bad = int(np.count_nonzero((x < -n) | (x >= n)))
                if bad:
                    msgs.append(f"input {name!r}: {bad} of {x.size} indices outside "
                                f"[-{n}, {n - 1}] for {op} -> {y} (a table of {n}); every "
                                f"engine clamps them to [0, {n - 1}] (spec/QUANT.md)")
        return msgs

    def trace(self, inputs: dict[str, np.ndarray], engine: str = "native"):
        """The phase-2 trace (:class:`opmlc_runtime.trace.Phase2`): S_0..S_n, the final root,
        the commitment and inclusion proofs (``opmlc trace``)."""
        from opmlc_runtime.trace import phase2

        return phase2(self.program, inputs, engine)

    def node_trace(self, inputs: dict[str, np.ndarray], node: int,
                   checkpoints: str | Path | None = None, engine: str = "vm"):
        """The phase-1 trace of node ``node`` (1-based; :class:`opmlc_runtime.trace.
        NodeReplay`): ``.root(t)``, ``.prove(t)``, ``.state(t)`` at any step of the node."""
        from opmlc_runtime.trace import NodeReplay

        return NodeReplay(self.program, inputs, node, checkpoints, engine=engine)

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
                 capture: bool = False, trace: bool = False) -> RunResult:
        from opmlc.quantize.interp import evaluate_int

        g = self.ref_graph()
        self.program.check_names(inputs)
        enc = {}
        for sig in self.program.inputs:
            raw = self.program.encode_input(sig, inputs)
            enc[sig["name"]] = raw.view(np_dtype(sig["dtype"])).reshape(sig["shape"])
        env = evaluate_int(g, enc, return_all=True)
        values = {o: env[o] for n in g.nodes for o in n.outputs}
        res = self.program.replay(inputs, values, trace, engine="ref", commit=commit)
        if capture:
            res.tensors = {k: np.ascontiguousarray(v).astype(v.dtype.newbyteorder("<"))
                           .tobytes() for k, v in values.items()}
        return res


def load(path: str | Path) -> Model:
    return Model(Artifact.load(path))


__all__ = ["ENGINES", "IndexWarning", "Model", "compile", "index_uses", "load"]
