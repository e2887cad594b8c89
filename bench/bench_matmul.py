"""The int8 matmul kernels, old (gen_matmul: one row strip at a time, i32 vector mul+add)
vs new (gen_matmul_dot: VNNI vpdpbusd on 4-row x 64-column register tiles over a packed
b panel), against onnxruntime float32 on the same model, in one process at 1 thread.

    .venv/bin/python bench/bench_matmul.py [--repeat 11] [--cases charlm,ffn,lm_head,ffn16]

Cases: charlm int8 (models/charlm.onnx, the int8 scheme's default mixed precision: 8-bit
and 16-bit activations, attention's activation x activation matmuls), a GPT-2-small-like
MLP layer (x[128, 768] @ W[768, 3072]), its projection back (fc2: x[128, 3072] @
W[3072, 768]) and the lm_head (x[128, 768] @ W[768, 50257]), each a float ONNX MatMul
quantized by opmlc's int8 scheme; ffn16 and fc216 are those layers under ``--int8-mode
all`` (i16 activations: the dot-product kernel splits a into two bytes). Per
configuration: the median over
``--repeat`` runs (after two warm-up runs) of the matmul nodes' native kernel time
(Program.profile_native) and of the whole native run; onnxruntime's whole run (one
MatMul for the layer cases). GMAC/s against one core's measured vpdpbusd peak.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_native import ort_session, vnni_peak_gmacs  # noqa: E402

from opmlc import api  # noqa: E402
from opmlc.backend import convgen  # noqa: E402
from opmlc.frontend.importer import import_onnx  # noqa: E402
from opmlc.quantize import quantize  # noqa: E402
from opmlc_runtime import native  # noqa: E402

MATMUL_OPS = ("q.matmul", "q.matmul_rq")


def layer_model(M: int, K: int, N: int, seed: int = 0) -> onnx.ModelProto:
    """y = x @ W (+ b): a float MatMul + Add with constant weights."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((K, N)) / np.sqrt(K)).astype(np.float32)
    b = (0.1 * rng.standard_normal(N)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["xw"]),
         helper.make_node("Add", ["xw", "b"], ["y"])],
        "layer", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [M, K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [M, N])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def compiled(qm, new: bool) -> api.Model:
    """The quantized graph compiled with the new dot-product matmul (new) or without it."""
    plan = convgen.mat_dot_plan
    if not new:
        convgen.mat_dot_plan = lambda ms: None
    try:
        return api.Model(api.compile(qm))
    finally:
        convgen.mat_dot_plan = plan


def matmul_nodes(m: api.Model) -> list[tuple[int, int]]:
    """(node index, MACs) of the model's matmul nodes."""
    g = m.ref_graph()
    out = []
    for k, n in enumerate(g.nodes):
        if n.op in MATMUL_OPS:
            y = g.types[n.outputs[0]].shape
            out.append((k, int(np.prod(y)) * int(g.types[n.inputs[0]].shape[-1])))
    return out


def time_model(m: api.Model, xi: dict, repeat: int) -> tuple[float, float]:
    """(median seconds in the matmul kernels, median seconds of a whole native run)."""
    prog = m.program
    idx = [k for k, _ in matmul_nodes(m)]
    for _ in range(2):
        prog.profile_native(xi)
        prog.run(xi, "native")
    mm, whole = [], []
    for _ in range(repeat):
        per = prog.profile_native(xi)
        mm.append(sum(per[k] for k in idx))
    for _ in range(repeat):
        t = time.perf_counter()
        prog.run(xi, "native")
        whole.append(time.perf_counter() - t)
    return statistics.median(mm), statistics.median(whole)


def time_ort(model, x: dict, repeat: int) -> float:
    s = ort_session(model, 1)
    for _ in range(2):
        s.run(None, x)
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        s.run(None, x)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def case(name: str) -> tuple[onnx.ModelProto, object, dict, dict]:
    """(float model, quantized opmlc graph, float inputs for onnxruntime, run inputs)."""
    if name == "charlm":
        path = ROOT / "models" / "charlm.onnx"
        data = np.load(ROOT / "models" / "charlm_heldout.npz")
        qm = quantize(import_onnx(str(path)), "int8",
                      {"input_ids": data["calib"].astype(np.int64)})
        x = {"input_ids": data["X"][:1].astype(np.int64)}
        return onnx.load(str(path)), qm, x, x
    wide = name.endswith("16")  # the int8 scheme with every activation at i16
    M, K, N = {"ffn": (128, 768, 3072), "fc2": (128, 3072, 768),
               "lm_head": (128, 768, 50257)}[name.removesuffix("16")]
    model = layer_model(M, K, N)
    rng = np.random.default_rng(1)
    calib = {"x": rng.standard_normal((4, M, K)).astype(np.float32)}
    path = ROOT / "bench" / f".bench_matmul_{name}.onnx"
    onnx.save(model, str(path))
    try:
        qm = quantize(import_onnx(str(path)), "int8", calib,
                      int8_mode="all" if wide else "auto")
    finally:
        path.unlink()
    x = {"x": calib["x"][0]}
    return model, qm, x, x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--cases", default="charlm,ffn,fc2,lm_head,ffn16,fc216")
    a = ap.parse_args()
    native.set_threads(1)
    peak = vnni_peak_gmacs()
    print(f"1 thread; VNNI {'on' if native.vnni() else 'off'}; one core's vpdpbusd peak "
          f"{peak:.0f} GMAC/s" if peak else "1 thread; no VNNI")
    print(f"{'case':<8} {'MACs':>12} {'nodes new/all':>13} {'old ms':>9} {'new ms':>9} "
          f"{'old/new':>7} {'ort f32 ms':>10} {'new/ort':>7} {'old GMAC/s':>10} "
          f"{'new GMAC/s':>10} {'% peak':>6} {'run old':>8} {'run new':>8}")
    for name in a.cases.split(","):
        model, qm, xf, xr = case(name)
        new, old = compiled(qm, True), compiled(qm, False)
        nodes = matmul_nodes(new)
        macs = sum(k for _, k in nodes)
        ndot = sum(1 for k, _ in nodes if "opmlc_dpbusd16" in _node_ir(new, k))
        xi = new.encode_inputs(xr, saturate=True)
        t_old, r_old = time_model(old, xi, a.repeat)
        t_new, r_new = time_model(new, xi, a.repeat)
        t_ort = time_ort(model, xf, a.repeat)
        g_old, g_new = macs / t_old / 1e9, macs / t_new / 1e9
        pk = f"{100 * g_new / peak:5.1f}%" if peak else "-"
        print(f"{name:<8} {macs:12d} {f'{ndot}/{len(nodes)}':>13} {1e3 * t_old:9.3f} "
              f"{1e3 * t_new:9.3f} {t_old / t_new:7.2f} {1e3 * t_ort:10.3f} "
              f"{t_new / t_ort:7.2f} {g_old:10.1f} {g_new:10.1f} {pk:>6} "
              f"{1e3 * r_old:8.2f} {1e3 * r_new:8.2f}")
    native.set_threads(None)


def _node_ir(m: api.Model, k: int) -> str:
    """The LLVM IR text of node k's function."""
    ir = m.program.art.llvm_ir
    start = ir.find(f"define void @node_{k}(")
    return ir[start:ir.find("\n}\n", start)]


if __name__ == "__main__":
    main()
