"""Per-layer quantization error against the float reference (``opmlc quantize-report``
prints :func:`quantize_report`)."""

from __future__ import annotations

import numpy as np

from opmlc.ir.graph import Graph
from opmlc.ir.interp import evaluate
from opmlc.quantize.interp import evaluate_int
from opmlc.quantize.mixed import INT8_DEFAULT
from opmlc.quantize.params import FRAC_CLAMP, TINY, QParams
from opmlc.quantize.quantize import QuantizedModel, calibration_samples, quantize


def layer_errors(qm: QuantizedModel, graph: Graph, samples: list[dict[str, np.ndarray]]
                 ) -> list[dict]:
    """For every float value with an integer counterpart: max |float - dequant(int)|, the
    float absmax, and relative error = max abs error / absmax, over ``samples``."""
    acc: dict[str, list[float]] = {}
    for s in samples:
        fenv = evaluate(graph, s, return_all=True)
        # saturation is part of the error being measured
        ienv = evaluate_int(qm.graph, qm.quantize_inputs(s, saturate=True), return_all=True)
        for fname, (qname, p) in qm.params.items():
            if p is None or fname not in fenv or qname not in ienv or fname in graph.consts:
                continue
            f = fenv[fname].astype(np.float64)
            d = p.dequantize(ienv[qname]).astype(np.float64)
            if f.shape != d.shape:
                continue
            fin = np.isfinite(f)
            err = float(np.max(np.abs(f - d)[fin])) if fin.any() else 0.0
            amax = float(np.max(np.abs(f[fin]))) if fin.any() else 0.0
            a = acc.setdefault(fname, [0.0, 0.0])
            a[0], a[1] = max(a[0], err), max(a[1], amax)
    order = {o: i for i, n in enumerate(graph.nodes) for o in n.outputs}
    rows = []
    for fname, (err, amax) in sorted(acc.items(), key=lambda kv: order.get(kv[0], -1)):
        _, p = qm.params[fname]
        rows.append({"value": fname, "dtype": p.dtype, "scale": p.scale,
                     "zero_point": p.zero_point, "max_abs_err": err, "absmax": amax,
                     "rel_err": err / amax if amax > 0 else 0.0,
                     "degenerate": degenerate(p, amax)})
    return rows


def degenerate(p: QParams, absmax: float) -> str:
    """Why the scale chosen for a value is degenerate ('' when it is not): not a finite
    positive number, clamped frac bits (fixed), a zero calibrated range (int8: the range
    widened to TINY), or a value that is zero on every sample."""
    s = np.asarray(p.scale, np.float64)
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        return "scale not finite and positive"
    if p.frac_bits is not None and p.frac_bits in FRAC_CLAMP:
        return f"frac bits clamped at {p.frac_bits}"
    if p.axis is None and p.dtype == "i8" and float(s) * 255 <= TINY * 1.001:
        return "zero calibrated range"
    if absmax == 0.0:
        return "zero on every sample"
    return ""


def quantize_report(graph: Graph, calibration: dict[str, np.ndarray] | None = None,
                    scheme: str = "fixed", max_samples: int = 16,
                    int8_mode: str | None = None, act_dtype: str | None = None) -> str:
    """Quantize ``graph`` with ``calibration`` and tabulate per-layer errors (text);
    ``int8_mode``: the int8 scheme's mixed precision (``opmlc.quantize.mixed``);
    ``act_dtype``: the fixed scheme's activation word."""
    qm = quantize(graph, scheme, calibration, **({"int8_mode": int8_mode} if int8_mode else {}),
                  **({"fixed_act": act_dtype} if act_dtype else {}))
    samples = calibration_samples(graph, calibration, 4, seed=1)[:max_samples]
    rows = layer_errors(qm, graph, samples)
    wide = sum(1 for _, p in qm.params.values() if p is not None and p.dtype == "i16"
               and scheme == "int8")
    lines = [f"quantize-report scheme={scheme}"
             + (f" int8-mode={int8_mode or INT8_DEFAULT} (i16 values: {wide})"
                if scheme == "int8" else "") + f" samples={len(samples)} "
             f"int-nodes={len(qm.graph.nodes)}",
             f"{'value':40s} {'dtype':5s} {'scale':>11s} {'zp':>5s} {'absmax':>11s} "
             f"{'max_abs_err':>11s} {'rel_err':>9s}"]
    for r in rows:
        lines.append(f"{r['value'][:40]:40s} {r['dtype']:5s} {r['scale']:11.4e} "
                     f"{r['zero_point']:5d} {r['absmax']:11.4e} {r['max_abs_err']:11.4e} "
                     f"{r['rel_err']:9.2e}" + (f" ! {r['degenerate']}" if r["degenerate"]
                                               else ""))
    bad = [r["value"] for r in rows if r["degenerate"]]
    if bad:
        lines.append(f"! {len(bad)} layer{'s' if len(bad) > 1 else ''} with a degenerate "
                     "scale: check the calibration data covers their inputs")
    return "\n".join(lines) + "\n"


__all__ = ["layer_errors", "quantize_report"]
