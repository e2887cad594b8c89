"""The public compile / load / run API and the ``compile``, ``run``, ``inspect`` commands.

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

CLI functions (wired by ``opmlc/cli.py``): ``add_compile_args`` / ``cmd_compile``,
``add_run_args`` / ``cmd_run``, ``add_inspect_args`` / ``cmd_inspect``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from opmlc.errors import OpmlcError
from opmlc_runtime.artifact import Artifact, ArtifactError
from opmlc_runtime.dtypes import np_dtype
from opmlc_runtime.engines import InputError, Program, RunResult

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
        with np.load(calibration) as z:
            calibration = {k: z[k] for k in z.files}
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


# ---------------------------------------------------------------- CLI


def add_compile_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="ONNX model file")
    p.add_argument("-o", "--output", required=True, help="output .opvm file")
    p.add_argument("--scheme", choices=("fixed", "int8"), default="fixed")
    p.add_argument("--calibrate", metavar="FILE.npz", help="calibration inputs by name")
    p.add_argument("--shape", action="append", default=[], metavar="NAME=DIMS",
                   help="fix a dynamic input shape, e.g. --shape input=1x3x224x224")
    p.add_argument("--no-ir", action="store_true", help="do not embed the integer IR text")
    p.add_argument("--no-fuse", action="store_true",
                   help="keep contractions, requants and clamps as separate nodes (no fusion)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress messages (by default each stage, and every tenth of the "
                        "nodes on models with many, is reported on stderr)")


def _progress_printer() -> Callable[[str], None]:
    """Progress lines on stderr, each with the seconds since the compile started."""
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        print(f"opmlc: [{time.perf_counter() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    return say


def cmd_compile(args: argparse.Namespace) -> int:
    from opmlc.frontend import parse_shape_flags

    say = (lambda m: None) if args.quiet else _progress_printer()
    art = compile(args.model, scheme=args.scheme, calibration=args.calibrate,
                  shapes=parse_shape_flags(args.shape), output=args.output,
                  include_ir=not args.no_ir, progress=say,
                  fuse=not getattr(args, "no_fuse", False))
    m = art.meta
    say(f"wrote {args.output}: {len(m['nodes'])} nodes, {m['total_steps']} VM steps, "
        f"memory {m['memory']['total']} bytes (depth {m['depth']})")
    return 0


def add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifact", help=".opvm file")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                   help="an input array (repeat per input; or FILE.npz holding every input "
                        "by name). Float arrays are quantized with the input's parameters; "
                        "integer arrays are taken as already-quantized values")
    p.add_argument("--engine", choices=ENGINES, default="native",
                   help="native kernels, the reference VM stepper, or the compiler's exact "
                        "integer reference interpreter (all give the same bits and roots)")
    p.add_argument("--commit", action="store_true",
                   help="compute the state root after every graph node (phase-2 commitment)")
    p.add_argument("--raw", action="store_true",
                   help="the raw integer outputs (default: dequantized to float32 where the "
                        "output has quantization parameters)")
    p.add_argument("-o", "--output", metavar="OUT.npz", help="save the outputs by name")
    p.add_argument("--json", action="store_true",
                   help='print {"engine", "outputs", "state_root", "steps"} (+ "initial_root", '
                        '"node_roots" with --commit) as JSON')


def _load_array(name: str, path: str) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError as e:
        raise OpmlcError(f"--input {name}: cannot read {path}: {e.strerror or e}") from None
    if head[:2] == b"PK":
        raise OpmlcError(f"--input {name}: {path} is an .npz archive, not a .npy array; pass "
                         f"NAME=FILE.npy per input, or --input {path} alone to take every "
                         "input from the archive by name")
    if head != b"\x93NUMPY":
        raise OpmlcError(f"--input {name}: {path} is not a .npy file (save it with numpy.save)")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise OpmlcError(f"--input {name}: {path}: unreadable .npy file: "
                         f"{' '.join(str(e).split())}") from None


def _read_inputs(flags: list[str]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for f in flags:
        name, sep, path = f.partition("=")
        if not sep and f.endswith(".npz"):
            try:
                with np.load(f, allow_pickle=False) as z:
                    out.update((k, z[k]) for k in z.files)
            except (OSError, ValueError, EOFError) as e:
                raise OpmlcError(f"--input {f}: cannot read the .npz archive: "
                                 f"{' '.join(str(e).split())}") from None
            continue
        if not sep or not name:
            raise OpmlcError(f"bad --input {f!r}; expected NAME=FILE.npy (or FILE.npz)")
        if name in out:
            raise OpmlcError(f"--input {name} given twice")
        out[name] = _load_array(name, path)
    return out


def run_result_json(res: RunResult, outputs: dict[str, np.ndarray], commit: bool) -> dict:
    """The ``--json`` document (the same keys for every engine)."""
    d = res.to_json(commit)
    d["outputs"] = {k: v.tolist() for k, v in outputs.items()}
    return d


def cmd_run(args: argparse.Namespace) -> int:
    try:
        model = load(args.artifact)
        res = model.run(_read_inputs(args.input), engine=args.engine, commit=args.commit)
    except (ArtifactError, InputError) as e:
        raise OpmlcError(str(e)) from None
    outs = res.outputs if args.raw else model.dequantize(res.outputs)
    if args.output:
        try:
            np.savez(args.output, **outs)
        except OSError as e:
            raise OpmlcError(f"-o {args.output}: cannot write: {e.strerror or e}") from None
    if args.json:
        print(json.dumps(run_result_json(res, outs, args.commit)))
        return 0
    for k, v in outs.items():
        print(f"{k}: {v.dtype}{list(v.shape)} {np.array2string(v, threshold=20)}")
    print(f"state_root: 0x{res.state_root.hex()}  steps: {res.steps}")
    if args.commit:
        for n, r in zip(model.meta["nodes"], res.node_roots, strict=True):
            print(f"  {n['name']:<40} 0x{r.hex()}")
    return 0


def add_inspect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifact", help=".opvm file")
    p.add_argument("--json", action="store_true", help="print the metadata as JSON")


def cmd_inspect(args: argparse.Namespace) -> int:
    try:
        art = Artifact.load(args.artifact)
    except ArtifactError as e:
        raise OpmlcError(str(e)) from None
    m = art.meta
    if args.json:
        print(json.dumps(m, indent=1, sort_keys=True))
        return 0
    print(f"{args.artifact}: opvm format {m['format_version']}, ISA {m['isa_version']}, "
          f"{m['compiler']}")
    print(f"  source sha256 {m['source_sha256']}; options {json.dumps(m['options'])}")
    print(f"  memory {m['memory']['total']} bytes, depth {m['depth']}; image "
          f"{m['memory']['image_nbytes']} bytes; code {m['code']['nbytes']} bytes, halt at "
          f"{m['code']['halt']:#x}")
    for kind in ("inputs", "outputs"):
        for s in m[kind]:
            q = f" quant {json.dumps(s['quant'])}" if s["quant"] else ""
            print(f"  {kind[:-1]} {s['name']}: {s['dtype']}{s['shape']} at "
                  f"{s['address']:#x}{q}")
    print(f"  {len(m['nodes'])} nodes, {m['total_steps']} steps:")
    for n in m["nodes"]:
        print(f"    {n['name']:<40} entry {n['entry']:#8x}  steps {n['steps']:>12}")
    return 0


__all__ = ["ENGINES", "Model", "add_compile_args", "add_inspect_args", "add_run_args",
           "cmd_compile", "cmd_inspect", "cmd_run", "compile", "load"]
