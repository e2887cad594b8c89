"""Float IR -> integer IR.

``quantize(g, scheme, calibration)`` walks the float graph in order and rewrites each
node by its rule in :data:`RULES` (one function per float op, or per group for
movement ops and pointwise nonlinear ops) into the ``q.*`` ops of
:mod:`opmlc.ir.intops`.  Ranges come from calibration (the float reference
interpreter run on the calibration samples; synthetic samples when none are
given) and, for table-based ops, from the table itself (static range of f over
the table's domain).  Each float value ``v`` becomes one integer value of the
same name holding ``q`` with ``v ~= (q - zero_point) * scale``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from opmlc.errors import OpmlcError
from opmlc.ir import intops
from opmlc.ir.graph import FLOAT_DTYPES, Graph, Node, TensorType, dtype_name
from opmlc.ir.interp import evaluate
from opmlc.ir.ops import OPS, Group, canonical_attrs, infer_types, resize_axis_taps
from opmlc.quantize.masks import fold_masks, is_mask
from opmlc.quantize.mixed import INT8_DEFAULT, prepare_int8
from opmlc.quantize.params import (
    FIXED_ACT_BITS,
    FixedPolicy,
    Int8Policy,
    QParams,
    bits_of,
    mult_shift,
)
from opmlc_runtime.dtypes import int_range

PROGRESS_MIN_NODES = 50  # graphs with at least this many nodes report progress
SOFTMAX_RANGE = 16.0  # exp(x - max) is taken as 0 below -16 (fixed) / over the int8 codes
EXP_BITS = 30  # frac bits of the exp table in q.softmax
LUT_INTERVALS = 1024  # max intervals of a q.lut table over a wide (fixed) input


class QuantizeError(OpmlcError):
    """The graph cannot be quantized (unsupported op or operand form)."""


@dataclass
class QuantizedModel:
    """The integer graph and the quantization parameters at its edges and inside it.

    ``inputs`` / ``outputs``: graph input/output name -> QParams (None: an integer value
    that passes through unquantized, e.g. token ids or an argmax).  ``params``: every
    float value of the source graph -> (integer value name, QParams).
    """

    graph: Graph
    scheme: str
    inputs: dict[str, QParams | None]
    outputs: dict[str, QParams | None]
    params: dict[str, tuple[str, QParams | None]] = field(default_factory=dict)

    def quantize_inputs(self, inputs: dict[str, np.ndarray], saturate: bool = False
                        ) -> dict[str, np.ndarray]:
        """Float model inputs -> integer graph inputs by the runtime's edge rule and policy
        (:func:`opmlc_runtime.edge.quantize_input`: values it cannot represent are refused
        unless ``saturate``)."""
        from opmlc_runtime.edge import EdgeError, quantize_input

        out = {}
        for name in self.graph.inputs:
            p, t = self.inputs[name], self.graph.types[name]
            x = np.asarray(inputs[name])
            if p is None:
                out[name] = x.astype(t.np_dtype)
                continue
            try:
                out[name] = quantize_input(x, p.to_dict(), name, saturate)[0]
            except EdgeError as e:
                raise QuantizeError(str(e)) from None
        return out

    def dequantize_outputs(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: (self.outputs[k].dequantize(v) if self.outputs.get(k) else v)
                for k, v in outputs.items()}

    def run(self, inputs: dict[str, np.ndarray], saturate: bool = False
            ) -> dict[str, np.ndarray]:
        """Quantize float inputs, run the exact integer reference, dequantize outputs."""
        from opmlc.quantize.interp import evaluate_int

        return self.dequantize_outputs(evaluate_int(self.graph, self.quantize_inputs(
            inputs, saturate)))


# ---------------------------------------------------------------- calibration


@dataclass
class Calibration:
    ranges: dict[str, tuple[float, float]]
    envs: list[dict[str, np.ndarray]]  # float values of the first samples (for derived ranges)


def check_calibration_array(name: str, a: np.ndarray, is_float: bool) -> None:
    """Refuse calibration data that would give garbage scales: empty, non-numeric,
    holding NaN or inf, or (for a float input) constant, naming the array and the problem."""
    what = f"calibration array {name!r}"
    if a.dtype.kind not in "fiub":
        raise QuantizeError(f"{what} is {a.dtype}, not numbers")
    if a.size == 0:
        raise QuantizeError(f"{what} is empty (shape {list(a.shape)}); give at least one "
                            "sample")
    if a.dtype.kind == "f":
        nan, inf = int(np.count_nonzero(np.isnan(a))), int(np.count_nonzero(np.isinf(a)))
        if nan or inf:
            raise QuantizeError(f"{what} holds {nan} NaN and {inf} inf of {a.size} values; "
                                "calibration data must be finite")
    if is_float and a.min() == a.max():
        raise QuantizeError(f"{what} is constant (every value {a.flat[0].item()!r}): its range "
                            "would be zero and the scale degenerate; give varied samples "
                            "(or omit --calibrate for synthetic ones)")


def calibration_samples(g: Graph, calibration: dict[str, np.ndarray] | None, n_synth: int, seed: int
             ) -> list[dict[str, np.ndarray]]:
    if calibration:
        n = None
        per: dict[str, list[np.ndarray]] = {}
        unknown = sorted(k for k in calibration if k not in g.inputs)
        if unknown:
            raise QuantizeError(f"calibration data: {', '.join(map(repr, unknown))} is no "
                                f"graph input (the inputs are {list(g.inputs)})")
        for name in g.inputs:
            t = g.types[name]
            if name not in calibration:
                raise QuantizeError(f"calibration data has no array for graph input {name!r} "
                                    f"(has {sorted(calibration)})")
            a = np.asarray(calibration[name])
            check_calibration_array(name, a, t.dtype in FLOAT_DTYPES)
            if a.shape == t.shape:
                rows = [a]
            elif a.shape[1:] == t.shape:
                rows = list(a)
            elif t.shape and t.shape[0] == 1 and a.shape[1:] == t.shape[1:]:
                rows = [a[i:i + 1] for i in range(a.shape[0])]
            else:
                raise QuantizeError(f"calibration array {name!r} has shape {a.shape}; expected "
                                    f"{t.shape} or (N, ...) stacking samples of it")
            per[name] = rows
            n = len(rows) if n is None else min(n, len(rows))
        return [{k: v[i].astype(g.types[k].np_dtype) for k, v in per.items()}
                for i in range(n or 0)]
    rng = np.random.default_rng(seed)
    users = g.users()
    out = []
    for _ in range(n_synth):
        s = {}
        for name in g.inputs:
            t = g.types[name]
            if t.dtype in FLOAT_DTYPES:
                s[name] = rng.standard_normal(t.shape).astype(t.np_dtype)
            else:  # ids: uniform over the rows of the table they index, else 0
                hi = 1
                for u in users.get(name, []):
                    if u.op == "gather" and u.inputs[1] == name:
                        hi = g.types[u.inputs[0]].shape[u.attrs["axis"]]
                s[name] = rng.integers(0, max(hi, 1), t.shape).astype(t.np_dtype)
        out.append(s)
    return out


def physical_memory() -> int:
    """Bytes of RAM on this machine (0 when unknown)."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 0


def check_memory(g: Graph) -> None:
    """Refuse up front a graph whose values (held at once by the float reference during
    calibration) need more bytes than the machine has, naming the largest value."""
    have = physical_memory()
    sizes = {k: t.size * t.np_dtype.itemsize for k, t in g.types.items()}
    need = sum(sizes.values())
    if have and need > have:
        big = max(sizes, key=sizes.__getitem__)
        raise QuantizeError(f"the model's values need {need / 2**30:.3g} GiB with these "
                            f"shapes (largest: {big!r} {g.types[big]}) and this machine has "
                            f"{have / 2**30:.3g} GiB; give smaller --shape values")


def calibrate(g: Graph, calibration: dict[str, np.ndarray] | None = None, n_synth: int = 4,
              keep: int = 8, seed: int = 0,
              progress: Callable[[str], None] | None = None) -> Calibration:
    """Per float value (min, max) over the samples; float values of the first ``keep``.
    ``progress``: a line per sample on graphs of at least PROGRESS_MIN_NODES nodes."""
    check_memory(g)
    ranges: dict[str, tuple[float, float]] = {}
    envs = []
    samples = calibration_samples(g, calibration, n_synth, seed)
    say = progress if progress is not None and len(g.nodes) >= PROGRESS_MIN_NODES else None
    for i, s in enumerate(samples):
        if say:
            say(f"  calibration sample {i + 1}/{len(samples)}")
        env = evaluate(g, s, return_all=True)
        for k, v in env.items():
            if v.dtype.kind != "f" or v.size == 0:
                continue
            fin = v[np.isfinite(v)]
            if fin.size == 0:
                continue
            lo, hi = float(fin.min()), float(fin.max())
            if k in ranges:
                lo, hi = min(lo, ranges[k][0]), max(hi, ranges[k][1])
            ranges[k] = (lo, hi)
        if i < keep:
            envs.append({k: v for k, v in env.items() if v.dtype.kind == "f"
                         and k not in g.consts})
    return Calibration(ranges, envs)


# ---------------------------------------------------------------- the rewriter


class _Q:
    def __init__(self, g: Graph, pol: FixedPolicy | Int8Policy, cal: Calibration) -> None:
        self.g, self.pol, self.cal = g, pol, cal
        self.fixed = pol.name == "fixed"
        self.out = Graph(name=g.name)
        self.qmap: dict[str, tuple[str, QParams | None]] = {}
        self.users = g.users()
        self.producers = g.producers()
        self.range_alias: dict[str, str] = {}
        self.fused_bias: dict[int, tuple[Node, str]] = {}
        self.skip: set[int] = set()
        self.forced: dict[str, QParams] = {}  # a QDQ model's own activation params

    # ---- values
    def is_float(self, name: str) -> bool:
        return self.g.types[name].dtype in FLOAT_DTYPES

    def value_range(self, name: str) -> tuple[float, float]:
        """The calibrated (or, for a constant, exact) float range ``(lo, hi)`` of ``name``."""
        name = self.range_alias.get(name, name)
        if name in self.g.consts:  # infinities and mask values saturate (spec/QUANT.md 4.1)
            a = self.g.consts[name].astype(np.float64).reshape(-1)
            a = a[np.isfinite(a) & ~is_mask(a)] if a.dtype.kind == "f" else a
            return (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        return self.cal.ranges.get(name, (0.0, 0.0))

    def act(self, name: str) -> QParams:
        if name in self.forced:
            return self.forced[name]
        return self.pol.act_of(name, *self.value_range(name))

    def dq_const(self, name: str) -> tuple[np.ndarray, QParams] | None:
        """(integers, params) of a value made by dequantize_linear of an integer constant."""
        p = self.producers.get(name)
        if p is None or p.op != "dequantize_linear" or p.inputs[0] not in self.g.consts:
            return None
        return self.g.consts[p.inputs[0]], qdq_params(self, p)

    def const_value(self, name: str) -> np.ndarray | None:
        """The float value of a constant, or of dequantize_linear of constants."""
        if name in self.g.consts:
            return self.g.consts[name]
        p = self.producers.get(name)
        if p is not None and p.op == "dequantize_linear" and all(
                i in self.g.consts for i in p.inputs):
            return OPS[p.op].ref(*(self.g.consts[i] for i in p.inputs), **p.attrs)
        return None

    def get(self, name: str) -> tuple[str, QParams | None]:
        if name in self.qmap:
            return self.qmap[name]
        if name in self.g.consts:
            arr = self.g.consts[name]
            if arr.dtype.kind == "f":
                p = self.act(name)
                q = p.quantize(arr)
                self.qmap[name] = (self.const(name, q), p)
            elif arr.dtype == np.bool_:
                self.qmap[name] = (self.const(name, arr.astype(np.uint8)), None)
            else:
                self.qmap[name] = (self.const(name, arr), None)
            return self.qmap[name]
        raise QuantizeError(f"value {name!r} used before it was quantized")

    def const(self, base: str, arr: np.ndarray) -> str:
        return self.out.add_const(base, np.array(arr, order="C"))

    def emit(self, op: str, inputs: list[str], attrs: dict[str, Any], base: str,
             n_out: int = 1) -> list[str]:
        attrs = canonical_attrs(op, attrs)
        types = infer_types(op, [self.out.types[i] for i in inputs], attrs)
        names = []
        for k, t in enumerate(types):
            nm = self.out.fresh_name(base if n_out == 1 else f"{base}.{k}")
            self.out.types[nm] = t
            names.append(nm)
        self.out.nodes.append(Node(op, tuple(inputs), tuple(names), attrs))
        return names

    def set(self, fname: str, qname: str, p: QParams | None) -> None:
        self.qmap[fname] = (qname, p)

    def bound(self, fname: str, p: QParams, headroom: float = 16.0) -> float:
        """Nominal integer magnitude of value ``fname`` in params ``p`` (with headroom)."""
        lo, hi = self.value_range(fname)
        s = np.min(np.asarray(p.scale, np.float64))
        return (max(abs(lo), abs(hi)) / s + abs(p.zero_point) + 1) * headroom

    # ---- requantization
    def requant(self, x: str, r: np.ndarray | float, out: QParams, base: str,
                x_zp: int = 0, in_bits: int = 31, bias: np.ndarray | None = None) -> str:
        """y = sat(srar((x - x_zp) * m + bias, s) + zp) with m * 2^-s ~= r."""
        m, s = mult_shift(r, in_bits)
        ins = [x, self.const(base + ".m", m), self.const(base + ".s", np.asarray(s, np.int64))]
        if bias is not None:
            ins.append(self.const(base + ".b", np.rint(np.asarray(bias) * 2.0**s)
                                  .astype(np.int64)))
        return self.emit("q.requant", ins, {"x_zp": x_zp, "zp": out.zero_point,
                                            "dtype": out.dtype}, base)[0]

    def convert(self, fname: str, out: QParams, base: str) -> str:
        """The value ``fname`` re-expressed in params ``out``."""
        qn, p = self.get(fname)
        if p is None:
            raise QuantizeError(f"value {fname!r} is an integer tensor where a real is needed")
        if p == out:
            return qn
        return self.requant(qn, p.scale / out.scale, out, base, x_zp=p.zero_point,
                            in_bits=bits_of(self.bound(fname, p)))


# ---------------------------------------------------------------- rules

RULES: dict[str, Callable[[_Q, Node], None]] = {}


def rule(*names: str) -> Callable:
    def deco(fn: Callable[[_Q, Node], None]) -> Callable[[_Q, Node], None]:
        for n in names:
            RULES[n] = fn
        return fn

    return deco


def _contract_out(q: _Q, n: Node) -> str:
    fb = q.fused_bias.get(id(n))
    return fb[0].outputs[0] if fb else n.outputs[0]


def _bias_ints(q: _Q, name: str, acc_scale: np.ndarray) -> np.ndarray:
    """A contraction's bias in accumulator units: a QDQ model's own int32 bias when its
    scale is the accumulator's (as onnxruntime's quantizer writes it), else rounded."""
    dq = q.dq_const(name)
    acc_scale = np.asarray(acc_scale, np.float64)
    if dq is not None:
        bq, pb = dq
        sb = np.asarray(pb.scale, np.float64)
        if np.allclose(sb, acc_scale, rtol=1e-5, atol=0) and not pb.zero_point:
            return bq.astype(np.int64)
    bias = np.asarray(q.const_value(name), np.float64)
    return np.rint(bias / acc_scale).astype(np.int64)


def qdq_params(q: _Q, n: Node) -> QParams:
    """The params of a quantize_linear / dequantize_linear node: scale (per tensor, or a
    tuple along ``axis``), zero point (one value) and the integer dtype."""
    _, s, z = n.inputs
    if s not in q.g.consts or z not in q.g.consts:
        raise QuantizeError(f"{n.op} -> {n.outputs[0]}: scale and zero point must be constants")
    sc, zp = q.g.consts[s].astype(np.float64), q.g.consts[z]
    if zp.size > 1 and not (zp == zp.reshape(-1)[0]).all():
        raise QuantizeError(f"{n.op} -> {n.outputs[0]}: per-channel zero points that differ "
                            "are not supported")
    dt = dtype_name(zp.dtype)
    if sc.size > 1:
        return QParams(dt, tuple(float(v) for v in sc.reshape(-1)), int(zp.reshape(-1)[0]),
                       None, int(n.attrs["axis"]))
    return QParams(dt, float(sc.reshape(-1)[0]), int(zp.reshape(-1)[0]) if zp.size else 0)


@rule("dequantize_linear")
def _dequantize_linear(q: _Q, n: Node) -> None:
    """The integers are the value: a constant's own, or the quantize_linear's output."""
    x, p = n.inputs[0], qdq_params(q, n)
    if x in q.g.consts:
        return q.set(n.outputs[0], q.const(x, q.g.consts[x]), p)
    qx, px = q.get(x)
    if px is not None and px != p:
        raise QuantizeError(f"dequantize_linear -> {n.outputs[0]}: params differ from those "
                            f"of {x!r}")
    q.set(n.outputs[0], qx, p)


@rule("quantize_linear")
def _quantize_linear(q: _Q, n: Node) -> None:
    """y = x in the node's params (a passthrough when x already has them)."""
    p = qdq_params(q, n)
    if isinstance(p.scale, tuple):
        raise QuantizeError(f"quantize_linear -> {n.outputs[0]}: per-channel activation "
                            "scales are not supported")
    q.set(n.outputs[0], q.convert(n.inputs[0], p, n.outputs[0]), p)


def _acc_to_out(q: _Q, acc: str, acc_scale: np.ndarray, fout: str, base: str,
                ch_shape: tuple[int, ...] | None) -> None:
    py = q.act(fout)
    r = np.asarray(acc_scale, np.float64) / py.scale
    if r.ndim and ch_shape is not None:
        r = r.reshape(ch_shape)
    in_bits = bits_of(max(abs(v) for v in q.value_range(fout)) / float(np.min(acc_scale)) * 16)
    y = q.requant(acc, r, py, fout, in_bits=in_bits)
    q.set(fout, y, py)


@rule("matmul")
def _matmul(q: _Q, n: Node) -> None:
    a, b = n.inputs
    fout = _contract_out(q, n)
    dq = q.dq_const(b)
    if dq is not None and dq[0].ndim == 2 and (dq[1].axis in (None, 1) or not isinstance(
            dq[1].scale, tuple)):
        wq, pw = dq  # a QDQ model's own integer weights (per column or per tensor)
    elif q.is_float(b) and b in q.g.consts and q.g.consts[b].ndim == 2:
        pw, wq = q.pol.weight(q.g.consts[b], axis=1)
    else:
        wq = None
    if wq is not None:
        qa, pa = q.get(a)
        wn = q.const(b, wq)
        acc_scale = pa.scale * np.asarray(pw.scale, np.float64)
        ins = [qa, wn]
        fb = q.fused_bias.get(id(n))
        if fb:
            ins.append(q.const(fb[1], _bias_ints(q, fb[1], acc_scale).reshape(-1)))
        acc = q.emit("q.matmul", ins, {"a_zp": pa.zero_point, "b_zp": pw.zero_point},
                     fout + ".acc")[0]
        _acc_to_out(q, acc, acc_scale, fout, fout, None)
        return
    qa, pa = q.get(a)
    qb, pb = q.get(b)
    acc = q.emit("q.matmul", [qa, qb], {"a_zp": pa.zero_point, "b_zp": pb.zero_point},
                 fout + ".acc")[0]
    _acc_to_out(q, acc, np.asarray(pa.scale * pb.scale), fout, fout, None)


@rule("einsum")
def _einsum(q: _Q, n: Node) -> None:
    if len(n.inputs) != 2:
        raise QuantizeError(f"einsum {n.attrs['equation']!r} with {len(n.inputs)} operands: "
                            "only two-operand einsum is quantized")
    (qa, pa), (qb, pb) = q.get(n.inputs[0]), q.get(n.inputs[1])
    fout = n.outputs[0]
    acc = q.emit("q.einsum", [qa, qb], {"equation": n.attrs["equation"],
                                        "a_zp": pa.zero_point, "b_zp": pb.zero_point},
                 fout + ".acc")[0]
    _acc_to_out(q, acc, np.asarray(pa.scale * pb.scale), fout, fout, None)


@rule("conv")
def _conv(q: _Q, n: Node) -> None:
    x, w = n.inputs[:2]
    dq = q.dq_const(w)
    if w not in q.g.consts and dq is None:
        raise QuantizeError(f"conv -> {n.outputs[0]}: weights must be constant")
    qx, px = q.get(x)
    if dq is not None:  # a QDQ model's own integer weights
        wq, pw = dq
        wf = wq
    else:
        wf = q.g.consts[w]
        pw, wq = q.pol.weight(wf, axis=0)
    acc_scale = px.scale * np.asarray(pw.scale, np.float64)
    ins = [qx, q.const(w, wq)]
    if len(n.inputs) == 3:
        ins.append(q.const(n.inputs[2], _bias_ints(q, n.inputs[2], acc_scale)))
    fout = n.outputs[0]
    acc = q.emit("q.conv", ins, {**n.attrs, "x_zp": px.zero_point, "w_zp": pw.zero_point},
                 fout + ".acc")[0]
    nd = wf.ndim - 2
    _acc_to_out(q, acc, acc_scale, fout, fout, (-1,) + (1,) * nd)


def _int_binary(q: _Q, n: Node, op: str, **attrs: Any) -> None:
    (qa, _), (qb, _) = q.get(n.inputs[0]), q.get(n.inputs[1])
    dt = q.g.types[n.outputs[0]].dtype
    y = q.emit(op, [qa, qb], {**attrs, "dtype": dt}, n.outputs[0])[0]
    q.set(n.outputs[0], y, None)


@rule("add", "sub")
def _add(q: _Q, n: Node) -> None:
    if id(n) in q.skip:
        return
    a, b = n.inputs
    sign = -1 if n.op == "sub" else 1
    if not q.is_float(n.outputs[0]):
        return _int_binary(q, n, "q.add", b_mult=sign)
    (qa, pa), (qb, pb) = q.get(a), q.get(b)
    py = q.act(n.outputs[0])
    ra, rb = pa.scale / py.scale, pb.scale / py.scale
    in_bits = max(bits_of(q.bound(a, pa)), bits_of(q.bound(b, pb))) + 1
    m, s = mult_shift(np.array([ra, rb]), in_bits)
    y = q.emit("q.add", [qa, qb], {"a_zp": pa.zero_point, "b_zp": pb.zero_point,
                                   "a_mult": int(m[0]), "b_mult": sign * int(m[1]),
                                   "shift": s, "zp": py.zero_point, "dtype": py.dtype},
               n.outputs[0])[0]
    q.set(n.outputs[0], y, py)


def _scale_by_const(q: _Q, x: str, c: np.ndarray, fout: str, bias: np.ndarray | None = None
                    ) -> None:
    """y = x * c (+ bias), c and bias float constants broadcast against x: one q.requant."""
    qx, px = q.get(x)
    py = q.act(fout)
    r = np.asarray(c, np.float64) * px.scale / py.scale
    b = None if bias is None else np.asarray(bias, np.float64) / py.scale
    y = q.requant(qx, r, py, fout, x_zp=px.zero_point, in_bits=bits_of(q.bound(x, px)), bias=b)
    q.set(fout, y, py)


def _float_const(q: _Q, name: str) -> np.ndarray | None:
    a = q.g.consts.get(name)
    return a if a is not None and a.dtype.kind == "f" else None


@rule("mul")
def _mul(q: _Q, n: Node) -> None:
    a, b = n.inputs
    if not q.is_float(n.outputs[0]):
        return _int_binary(q, n, "q.mul")
    ca, cb = _float_const(q, a), _float_const(q, b)
    if cb is not None and ca is None:
        return _scale_by_const(q, a, cb, n.outputs[0])
    if ca is not None and cb is None:
        return _scale_by_const(q, b, ca, n.outputs[0])
    _mul_act(q, a, b, n.outputs[0])


def _mul_act(q: _Q, a: str, b: str, fout: str) -> None:
    (qa, pa), (qb, pb) = q.get(a), q.get(b)
    py = q.act(fout)
    in_bits = bits_of(q.bound(a, pa)) + bits_of(q.bound(b, pb))
    m, s = mult_shift(pa.scale * pb.scale / py.scale, in_bits)
    y = q.emit("q.mul", [qa, qb], {"a_zp": pa.zero_point, "b_zp": pb.zero_point,
                                   "mult": int(m), "shift": s, "zp": py.zero_point,
                                   "dtype": py.dtype}, fout)[0]
    q.set(fout, y, py)


@rule("div")
def _div(q: _Q, n: Node) -> None:
    a, b = n.inputs
    if not q.is_float(n.outputs[0]):  # integers: truncating division, as ONNX Div
        return _int_binary(q, n, "q.div")
    cb = _float_const(q, b)
    if cb is not None:
        with np.errstate(divide="ignore"):
            return _scale_by_const(q, a, np.where(cb == 0, 0.0, 1.0 / cb.astype(np.float64)),
                                   n.outputs[0])
    _div_act(q, q.get(a), q.get(b), b, n.outputs[0])


def _div_act(q: _Q, qa_pa: tuple[str, QParams], qb_pb: tuple[str, QParams], b: str,
             fout: str) -> None:
    (qa, pa), (qb, pb) = qa_pa, qb_pb
    py = q.act(fout)
    if q.fixed:  # y = (a / b) * 2^(fy + fb - fa): one q.div
        k = py.frac_bits + pb.frac_bits - pa.frac_bits
        if -31 <= k <= 31:
            y = q.emit("q.div", [qa, qb], {"shift": k, "dtype": py.dtype}, fout)[0]
            q.set(fout, y, py)
            return
    # t = (a - za) / (b - zb) * 2^k in i64 with ~24 significant bits, then requantize
    ratio = max(abs(v) for v in q.value_range(fout)) / (pa.scale / pb.scale)
    k = int(min(max(23 - math.floor(math.log2(max(ratio, 1e-30))), -31), 31))
    t = q.emit("q.div", [qa, qb], {"a_zp": pa.zero_point, "b_zp": pb.zero_point, "shift": k,
                                   "dtype": "i64"}, fout + ".div")[0]
    y = q.requant(t, pa.scale / pb.scale * 2.0**-k / py.scale, py, fout, in_bits=40)
    q.set(fout, y, py)


@rule("mod")
def _mod(q: _Q, n: Node) -> None:
    if q.is_float(n.outputs[0]):
        raise QuantizeError(f"mod -> {n.outputs[0]}: float fmod is not quantized")
    _int_binary(q, n, "q.mod", fmod=n.attrs["fmod"])


_CMP = {"equal": "eq", "less": "lt", "less_or_equal": "le", "greater": "gt",
        "greater_or_equal": "ge", "and": "and", "or": "or", "xor": "xor"}


@rule(*_CMP)
def _compare(q: _Q, n: Node) -> None:
    """Comparisons of reals compare their codes in one set of params (the union of both
    ranges; a passthrough when both already share params); of integers and booleans, the
    integers. Output: u8 0 / 1."""
    a, b = n.inputs
    (qa, pa), (qb, pb) = q.get(a), q.get(b)
    if pa is not None and pb is not None and pa != pb:
        lo = min(q.value_range(a)[0], q.value_range(b)[0])
        hi = max(q.value_range(a)[1], q.value_range(b)[1])
        p = q.pol.act(lo, hi)
        qa, qb = q.convert(a, p, n.outputs[0] + ".a"), q.convert(b, p, n.outputs[0] + ".b")
    elif (pa is None) != (pb is None):
        raise QuantizeError(f"{n.op} -> {n.outputs[0]}: compares a real with an integer")
    y = q.emit("q.cmp", [qa, qb], {"kind": _CMP[n.op]}, n.outputs[0])[0]
    q.set(n.outputs[0], y, None)


@rule("not")
def _not(q: _Q, n: Node) -> None:
    qx, _ = q.get(n.inputs[0])
    zero = q.const(n.outputs[0] + ".zero", np.zeros((), np.uint8))
    q.set(n.outputs[0], q.emit("q.cmp", [qx, zero], {"kind": "eq"}, n.outputs[0])[0], None)


@rule("reciprocal")
def _reciprocal(q: _Q, n: Node) -> None:
    one = q.pol.act(1.0, 1.0)
    qone = q.const(n.outputs[0] + ".one", one.quantize(np.ones((), np.float64)))
    _div_act(q, (qone, one), q.get(n.inputs[0]), n.inputs[0], n.outputs[0])


@rule("neg")
def _neg(q: _Q, n: Node) -> None:
    _scale_by_const(q, n.inputs[0], np.asarray(-1.0), n.outputs[0])


@rule("pow")
def _pow(q: _Q, n: Node) -> None:
    e = q.g.consts.get(n.inputs[1])
    if e is not None and e.size == 1:
        ev = float(e.reshape(-1)[0])
        if ev == 2.0:
            return _mul_act(q, n.inputs[0], n.inputs[0], n.outputs[0])
        if ev == 1.0:
            return q.set(n.outputs[0], *q.get(n.inputs[0]))
        if ev == 0.5:
            return _sqrt_of(q, n.inputs[0], n.outputs[0])
        return _lut(q, n, lambda v: np.power(v, ev))
    raise QuantizeError(f"pow -> {n.outputs[0]}: exponent must be a constant scalar")


def _sqrt_of(q: _Q, x: str, fout: str) -> None:
    qx, px = q.get(x)
    lo, hi = q.value_range(fout)
    py = q.pol.act_of(fout, 0.0, max(hi, math.sqrt(max(q.value_range(x)[1], 0.0)), 1e-6))
    if q.fixed:
        fy = min(py.frac_bits, (31 + px.frac_bits) // 2)
        py = QParams(py.dtype, 2.0**-fy, 0, fy)  # the activation word (i32, or i16)
        y = q.emit("q.sqrt", [qx], {"shift": 2 * fy - px.frac_bits, "dtype": py.dtype},
                   fout)[0]
    else:  # t = isqrt((x - zx) * 2^(2k)) = sqrt(x - zx) * 2^k, then requantize
        k = 12
        t = q.emit("q.sqrt", [qx], {"x_zp": px.zero_point, "shift": 2 * k, "dtype": "i64"},
                   fout + ".sqrt")[0]
        y = q.requant(t, math.sqrt(px.scale) * 2.0**-k / py.scale, py, fout, in_bits=24)
    q.set(fout, y, py)


@rule("sqrt")
def _sqrt(q: _Q, n: Node) -> None:
    _sqrt_of(q, n.inputs[0], n.outputs[0])


@rule("relu")
def _relu(q: _Q, n: Node) -> None:
    qx, px = q.get(n.inputs[0])
    hi = (1 << (int(px.dtype[1:]) - 1)) - 1
    y = q.emit("q.clamp", [qx], {"lo": px.zero_point, "hi": hi}, n.outputs[0])[0]
    q.set(n.outputs[0], y, px)


@rule("clip")
def _clip(q: _Q, n: Node) -> None:
    qx, px = q.get(n.inputs[0])
    dlo, dhi = int_range(px.dtype)
    lo = dlo if n.attrs["min"] == -math.inf else int(px.quantize(np.asarray(n.attrs["min"])))
    hi = dhi if n.attrs["max"] == math.inf else int(px.quantize(np.asarray(n.attrs["max"])))
    y = q.emit("q.clamp", [qx], {"lo": lo, "hi": hi}, n.outputs[0])[0]
    q.set(n.outputs[0], y, px)


@rule("identity")
def _identity(q: _Q, n: Node) -> None:
    q.set(n.outputs[0], *q.get(n.inputs[0]))


@rule("cast")
def _cast(q: _Q, n: Node) -> None:
    src, dst = q.g.types[n.inputs[0]].dtype, n.attrs["to"]
    qx, px = q.get(n.inputs[0])
    if src in FLOAT_DTYPES and dst in FLOAT_DTYPES:
        return q.set(n.outputs[0], qx, px)
    if px is None and dst not in FLOAT_DTYPES and dst != "bool":
        if q.out.types[qx].dtype == dst:
            return q.set(n.outputs[0], qx, None)
        one = q.const(n.outputs[0] + ".one", np.ones((), np.int64))
        zero = q.const(n.outputs[0] + ".zero", np.zeros((), np.int64))
        y = q.emit("q.requant", [qx, one, zero], {"dtype": dst}, n.outputs[0])[0]
        return q.set(n.outputs[0], y, None)
    raise QuantizeError(f"cast {src} -> {dst} of {n.inputs[0]!r} is not quantized")


@rule("where")
def _where(q: _Q, n: Node) -> None:
    c, a, b = n.inputs
    qc, _ = q.get(c)
    if not q.is_float(n.outputs[0]):
        y = q.emit("q.where", [qc, q.get(a)[0], q.get(b)[0]], {}, n.outputs[0])[0]
        return q.set(n.outputs[0], y, None)
    py = q.act(n.outputs[0])
    qa, qb = q.convert(a, py, n.outputs[0] + ".a"), q.convert(b, py, n.outputs[0] + ".b")
    y = q.emit("q.where", [qc, qa, qb], {}, n.outputs[0])[0]
    q.set(n.outputs[0], y, py)


@rule("concat")
def _concat(q: _Q, n: Node) -> None:
    if not q.is_float(n.outputs[0]):
        return _movement(q, n)
    py = q.act(n.outputs[0])
    ins = [q.convert(x, py, f"{n.outputs[0]}.in{i}") for i, x in enumerate(n.inputs)]
    y = q.emit("concat", ins, n.attrs, n.outputs[0])[0]
    q.set(n.outputs[0], y, py)


def _movement(q: _Q, n: Node) -> None:
    ins = [q.get(i) for i in n.inputs]
    p = ins[0][1]
    attrs = dict(n.attrs)
    if n.op == "pad" and p is not None:
        attrs["value"] = float(p.quantize(np.asarray(attrs["value"])))
    outs = q.emit(n.op, [i for i, _ in ins], attrs, n.outputs[0], len(n.outputs))
    if len(n.outputs) > 1:  # rename k-th output to the float name when free
        outs = _rename(q, outs, list(n.outputs))
    for fo, qo in zip(n.outputs, outs, strict=True):
        q.set(fo, qo, p)


def _rename(q: _Q, names: list[str], wanted: list[str]) -> list[str]:
    node = q.out.nodes[-1]
    new = []
    for nm, w in zip(names, wanted, strict=True):
        if w not in q.out.types:
            q.out.types[w] = q.out.types.pop(nm)
            nm = w
        new.append(nm)
    node.outputs = tuple(new)
    return new


@rule("softmax")
def _softmax(q: _Q, n: Node) -> None:
    qx, px = q.get(n.inputs[0])
    wide_in = q.fixed or px.dtype not in ("i8", "u8")  # int8: a knot per 8-bit code
    span = SOFTMAX_RANGE / px.scale if wide_in else 255
    if q.fixed:
        py = q.pol.act(0.0, 1.0)
        out_bits, zp = py.frac_bits, 0
    else:  # scale 2^-bits, zero point -2^(bits-1): bits 8, or 16 for a wide output
        out_bits = int(q.pol.act_of(n.outputs[0], 0.0, 1.0).dtype[1:])
        zp = -(1 << (out_bits - 1))
        py = QParams(f"i{out_bits}", 2.0**-out_bits, zp)
    span = max(int(math.ceil(span)), 1)
    k = max(0, math.ceil(math.log2(span / 2048)))
    nint = -(-span // (1 << k))
    lo = -nint * (1 << k)
    knots = (lo + np.arange(nint + 1, dtype=np.int64) * (1 << k)) * px.scale
    table = np.floor(np.exp(knots) * 2.0**EXP_BITS + 0.5).astype(np.int64)
    if wide_in:
        table[0] = 0  # exp(d) := 0 for d <= -SOFTMAX_RANGE
    tn = q.const(n.outputs[0] + ".exp", table)
    ins = [qx, tn] + [q.get(k)[0] for k in n.inputs[1:]]  # the keep mask (masks.py)
    y = q.emit("q.softmax", ins, {"axis": n.attrs["axis"], "lo": lo, "step_bits": k,
                                       "out_bits": out_bits, "zp": zp, "dtype": py.dtype},
               n.outputs[0])[0]
    q.set(n.outputs[0], y, py)


NORM_BITS, SD_BITS = 16, 8


@rule("layer_norm", "rms_norm")
def _norm(q: _Q, n: Node) -> None:
    x = n.inputs[0]
    qx, px = q.get(x)
    axis = n.attrs["axis"]
    shp = q.g.types[x].shape[axis:]
    consts = [q.g.consts.get(i) for i in n.inputs[1:]]
    if any(c is None for c in consts):
        raise QuantizeError(f"{n.op} -> {n.outputs[0]}: scale and bias must be constants")
    gamma = np.broadcast_to(consts[0].astype(np.float64), shp)
    fout = n.outputs[0]
    py = q.act(fout)
    xb = max(abs(v) for v in q.value_range(x)) / px.scale + abs(px.zero_point)
    pre = max(0, bits_of(xb * 4) - 18)
    unit = px.scale * 2.0**pre
    eps = int(round(n.attrs["epsilon"] / unit**2 * 2.0 ** (2 * SD_BITS)))
    fg = FixedPolicy._frac(float(np.max(np.abs(gamma))), 16)
    out_frac = py.frac_bits if q.fixed else 20
    fg = max(fg, out_frac - NORM_BITS)
    gq = np.floor(gamma * 2.0**fg + 0.5).astype(np.int64)
    F = NORM_BITS + fg
    ins = [qx, q.const(n.inputs[1], gq)]
    if n.op == "layer_norm":
        beta = np.broadcast_to(consts[1].astype(np.float64), shp)
        ins.append(q.const(n.inputs[2], np.floor(beta * 2.0**F + 0.5).astype(np.int64)))
    attrs = {"axis": axis, "x_zp": px.zero_point, "pre": pre, "eps": max(eps, 1),
             "norm_bits": NORM_BITS, "sd_bits": SD_BITS}
    op = "q." + n.op
    if q.fixed:
        y = q.emit(op, ins, {**attrs, "shift": F - out_frac, "dtype": py.dtype}, fout)[0]
    else:
        t = q.emit(op, ins, {**attrs, "shift": F - out_frac, "dtype": "i64"}, fout + ".n")[0]
        y = q.requant(t, 2.0**-out_frac / py.scale, py, fout, in_bits=40)
    q.set(fout, y, py)


def _reduce_axes_count(q: _Q, n: Node) -> int:
    shp = q.g.types[n.inputs[0]].shape
    return int(np.prod([shp[a] for a in n.attrs["axes"]]))


@rule("reduce_mean", "reduce_sum")
def _reduce_sum(q: _Q, n: Node) -> None:
    qx, px = q.get(n.inputs[0])
    cnt = _reduce_axes_count(q, n)
    t = q.emit("q.reduce_sum", [qx], {**n.attrs, "x_zp": px.zero_point},
               n.outputs[0] + ".sum")[0]
    py = q.act(n.outputs[0])
    r = px.scale / py.scale / (cnt if n.op == "reduce_mean" else 1)
    in_bits = bits_of(q.bound(n.inputs[0], px) * cnt)
    q.set(n.outputs[0], q.requant(t, r, py, n.outputs[0], in_bits=in_bits), py)


@rule("reduce_max")
def _reduce_max(q: _Q, n: Node) -> None:
    qx, px = q.get(n.inputs[0])
    q.set(n.outputs[0], q.emit("q.reduce_max", [qx], n.attrs, n.outputs[0])[0], px)


@rule("max_pool")
def _max_pool(q: _Q, n: Node) -> None:
    qx, px = q.get(n.inputs[0])
    q.set(n.outputs[0], q.emit("q.max_pool", [qx], n.attrs, n.outputs[0])[0], px)


@rule("average_pool")
def _average_pool(q: _Q, n: Node) -> None:
    qx, px = q.get(n.inputs[0])
    a = {k: v for k, v in n.attrs.items() if k != "count_include_pad"}
    t = q.emit("q.sum_pool", [qx], {**a, "x_zp": px.zero_point}, n.outputs[0] + ".sum")[0]
    shp = q.g.types[n.inputs[0]].shape
    ones = np.ones((1, 1) + shp[2:], np.int8)
    if n.attrs["count_include_pad"]:
        nd = len(shp) - 2
        pads = a["pads"]
        ones = np.pad(ones, [(0, 0), (0, 0)] + [(pads[i], pads[i + nd]) for i in range(nd)],
                      constant_values=1)
        a = {**a, "pads": [0] * (2 * nd)}
    counts = intops.q_sum_pool(ones, x_zp=0, **a).astype(np.float64)
    py = q.act(n.outputs[0])
    r = px.scale / py.scale / np.maximum(counts, 1)
    in_bits = bits_of(q.bound(n.inputs[0], px) * counts.max())
    q.set(n.outputs[0], q.requant(t, r, py, n.outputs[0], in_bits=in_bits), py)


@rule("argmax", "argmin")
def _argmax(q: _Q, n: Node) -> None:
    """argmax of the codes (scale > 0: the same order as the reals); argmin = argmax of the
    codes negated exactly in i64 (first / last index as asked)."""
    qx, _ = q.get(n.inputs[0])
    if n.op == "argmin":
        m1 = q.const(n.outputs[0] + ".m", np.asarray(-1, np.int64))
        s0 = q.const(n.outputs[0] + ".s", np.asarray(0, np.int64))
        qx = q.emit("q.requant", [qx, m1, s0], {"dtype": "i64"}, n.outputs[0] + ".neg")[0]
    q.set(n.outputs[0], q.emit("q.argmax", [qx], n.attrs, n.outputs[0])[0], None)


@rule("batch_norm")
def _batch_norm(q: _Q, n: Node) -> None:
    x = n.inputs[0]
    cs = [q.g.consts.get(i) for i in n.inputs[1:]]
    if any(c is None for c in cs):
        raise QuantizeError(f"batch_norm -> {n.outputs[0]}: parameters must be constants")
    scale, bias, mean, var = (c.astype(np.float64) for c in cs)
    a = scale / np.sqrt(var + n.attrs["epsilon"])
    b = bias - mean * a
    shp = (-1,) + (1,) * (q.g.types[x].rank - 2)
    _scale_by_const(q, x, a.reshape(shp), n.outputs[0], bias=b.reshape(shp))


@rule("gelu")
def _gelu(q: _Q, n: Node) -> None:
    approx = n.attrs["approximate"]

    def phi(v: np.ndarray) -> np.ndarray:
        if approx == "tanh":
            return 0.5 * (1 + np.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3)))
        return 0.5 * (1 + OPS["erf"].ref(v / math.sqrt(2)))

    p = _lut_values(q, n.inputs[0], phi, n.outputs[0] + ".phi")
    q.set(n.outputs[0] + ".phi", *p)
    _mul_act(q, n.inputs[0], n.outputs[0] + ".phi", n.outputs[0])


def _lut_values(q: _Q, x: str, f: Callable[[np.ndarray], np.ndarray], fout: str
                ) -> tuple[str, QParams]:
    """y = f(x) as a q.lut: exact per code for 8-bit inputs, else linear interpolation between
    at most LUT_INTERVALS + 1 knots spaced 2^k over the calibrated input range (widened by 1/8
    each side); out of range the end knots hold.  Output params from the table's own range."""
    qx, px = q.get(x)
    if px.dtype == "i8":
        lo, k, nint = -128, 0, 255
    else:
        lo_f, hi_f = q.value_range(x)
        w = max(hi_f - lo_f, 1e-6)
        lo_f, hi_f = lo_f - w / 8, hi_f + w / 8
        lo = math.floor(lo_f / px.scale) + px.zero_point
        hi = math.ceil(hi_f / px.scale) + px.zero_point
        span = max(hi - lo, 1)
        k = max(0, math.ceil(math.log2(span / LUT_INTERVALS)))
        nint = -(-span // (1 << k))
    codes = lo + np.arange(nint + 1, dtype=np.int64) * (1 << k)
    with np.errstate(all="ignore"):
        vals = np.asarray(f((codes - px.zero_point).astype(np.float64) * px.scale), np.float64)
    fin = vals[np.isfinite(vals)]
    clo, chi = q.value_range(fout) if fout in q.cal.ranges else (0.0, 0.0)
    if px.dtype == "i8" and fout in q.cal.ranges:  # codes outside the calibrated range clip
        vlo, vhi = clo, chi
    else:
        vlo = min(float(fin.min()) if fin.size else 0.0, clo)
        vhi = max(float(fin.max()) if fin.size else 0.0, chi)
    vals = np.clip(np.nan_to_num(vals, nan=0.0, posinf=vhi, neginf=vlo), vlo, vhi)
    py = q.pol.act_of(fout, vlo, vhi)
    table = py.quantize(vals)
    tn = q.const(fout + ".table", table)
    y = q.emit("q.lut", [qx, tn], {"lo": int(lo), "step_bits": int(k), "dtype": py.dtype},
               fout)[0]
    return y, py


def _lut(q: _Q, n: Node, f: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
    if f is None:
        ref, attrs = OPS[n.op].ref, n.attrs
        f = lambda v: ref(v, **attrs)  # noqa: E731
    q.set(n.outputs[0], *_lut_values(q, n.inputs[0], f, n.outputs[0]))


def _derive(q: _Q, name: str, f: Callable[[dict[str, np.ndarray]], np.ndarray]) -> None:
    """Calibrated range of a value the float graph does not have, from the kept samples."""
    lo, hi = math.inf, -math.inf
    for env in q.cal.envs:
        v = f(env)
        lo, hi = min(lo, float(v.min())), max(hi, float(v.max()))
    q.cal.ranges[name] = (lo, hi) if lo <= hi else (0.0, 0.0)


@rule("lrn")
def _lrn(q: _Q, n: Node) -> None:
    """y = x * t^-beta, t = bias + alpha/size * (window sum over channels of x^2):
    q.mul, reshape + q.sum_pool over the channel axis, q.requant, q.lut, q.mul."""
    x, y = n.inputs[0], n.outputs[0]
    size, alpha, beta, bias = (n.attrs[k] for k in ("size", "alpha", "beta", "bias"))
    shp = q.g.types[x].shape
    lo, hi = (size - 1) // 2, size // 2

    def tf(env: dict[str, np.ndarray]) -> np.ndarray:
        sq = np.square(env[x].astype(np.float64))
        sqp = np.pad(sq, [(0, 0), (lo, hi)] + [(0, 0)] * (len(shp) - 2))
        acc = sum(sqp[:, k:k + shp[1]] for k in range(size))
        return bias + alpha / size * acc

    _derive(q, y + ".sq", lambda env: np.square(env[x].astype(np.float64)))
    _derive(q, y + ".t", tf)
    _derive(q, y + ".p", lambda env: tf(env) ** -beta)
    _mul_act(q, x, x, y + ".sq")
    qs, ps = q.get(y + ".sq")
    rest = int(np.prod(shp[2:]))
    r = q.emit("reshape", [qs], {"shape": [shp[0], 1, shp[1], rest]}, y + ".sq4")[0]
    s = q.emit("q.sum_pool", [r], {"kernel_shape": [size, 1], "strides": [1, 1],
                                   "pads": [lo, 0, hi, 0], "dilations": [1, 1],
                                   "x_zp": ps.zero_point},
               y + ".win")[0]
    s = q.emit("reshape", [s], {"shape": list(shp)}, y + ".win4")[0]
    pt = q.act(y + ".t")
    t = q.requant(s, alpha / size * ps.scale / pt.scale, pt, y + ".t", in_bits=40,
                  bias=np.asarray(bias / pt.scale))
    q.set(y + ".t", t, pt)
    q.set(y + ".p", *_lut_values(q, y + ".t", lambda v: np.maximum(v, 1e-12) ** -beta,
                                 y + ".p"))
    _mul_act(q, x, y + ".p", y)


RESIZE_WEIGHT_BITS = 28  # fraction bits of a q.resize's product weights (all axes)


@rule("resize")
def _resize(q: _Q, n: Node) -> None:
    """q.resize in the input's params: nearest copies codes; linear / cubic interpolate
    them with exact integer weights (``intops_index.resize_int_taps``), the result
    saturating in the input's dtype (cubic may overshoot); extrapolated points hold the
    code of extrapolation_value."""
    qx, px = q.get(n.inputs[0])
    a = {k: v for k, v in n.attrs.items() if k != "extrapolation_value"}
    ev = n.attrs["extrapolation_value"]
    dt = q.out.types[qx].dtype
    lo, hi = int_range(dt)
    if px is None:
        fill, zp = int(np.clip(np.rint(ev), lo, hi)), 0
    else:
        fill, zp = int(np.clip(px.quantize(np.asarray(ev)), lo, hi)), px.zero_point
    shape = q.g.types[n.inputs[0]].shape
    nax = sum(resize_axis_taps(shape[d], a["sizes"][d], d, n.attrs) is not None
              for d in range(len(shape)))
    fb = min(16, RESIZE_WEIGHT_BITS // max(nax, 1))  # |sum| < 1.5^nax 2^(F nax) 2^32 < 2^63
    y = q.emit("q.resize", [qx], {**a, "x_zp": zp, "zp": zp, "fill": fill, "dtype": dt,
                                  "frac_bits": fb}, n.outputs[0])[0]
    q.set(n.outputs[0], y, px)


@rule("topk")
def _topk(q: _Q, n: Node) -> None:
    """Selection on the codes (scale > 0 keeps the order): values keep the input's params,
    indices are plain integers."""
    qx, px = q.get(n.inputs[0])
    outs = _rename(q, q.emit("q.topk", [qx], n.attrs, n.outputs[0], 2), list(n.outputs))
    q.set(n.outputs[0], outs[0], px)
    q.set(n.outputs[1], outs[1], None)


@rule("scatter_elements", "scatter_nd")
def _scatter(q: _Q, n: Node) -> None:
    """The movement op on codes, data and updates in one set of params (the union of their
    ranges and the output's); none / max / min are exact there, add when the zero point is
    0 (the fixed scheme), mul of reals is refused."""
    data, idx, upd = n.inputs
    fout, red = n.outputs[0], n.attrs["reduction"]
    if not q.is_float(fout):
        return _movement(q, n)
    if red == "mul":
        raise QuantizeError(f"{n.op} -> {fout}: reduction 'mul' of real tensors is not "
                            "quantized (a product needs a rescale per update); use the "
                            "float engine or reduction none/add/max/min")
    rs = [q.value_range(v) for v in (data, upd, fout)]
    p = q.pol.act(min(r[0] for r in rs), max(r[1] for r in rs))
    if red == "add" and p.zero_point != 0:
        raise QuantizeError(f"{n.op} -> {fout}: reduction 'add' needs a zero point of 0 "
                            f"(params here have {p.zero_point}); compile with --scheme fixed")
    ins = [q.convert(data, p, fout + ".data"), q.get(idx)[0], q.convert(upd, p, fout + ".upd")]
    q.set(fout, q.emit(n.op, ins, n.attrs, fout)[0], p)


# ---------------------------------------------------------------- driver


def _prepare(q: _Q) -> None:
    """Fusions decided before the walk: matmul + constant bias add (bias enters the i64
    accumulator); for int8, a contraction/add feeding only a relu takes the relu's range."""
    g = q.g
    for n in g.nodes:  # QDQ: a value quantized by quantize_linear takes that node's params
        if n.op == "quantize_linear" and n.inputs[0] not in q.forced:
            p = qdq_params(q, n)
            if not isinstance(p.scale, tuple):
                q.forced[n.inputs[0]] = p
    for n in g.nodes:
        b = q.const_value(n.inputs[1]) if n.op == "matmul" else None
        dq = q.dq_const(n.inputs[1]) if b is not None else None
        if dq is not None and isinstance(dq[1].scale, tuple) and dq[1].axis != 1:
            continue  # per-row weight scales: no accumulator-scale bias
        if b is not None and b.ndim == 2:
            us = q.users.get(n.outputs[0], [])
            if len(us) != 1 or us[0].op != "add" or n.outputs[0] in g.outputs:
                continue
            add = us[0]
            other = add.inputs[1] if add.inputs[0] == n.outputs[0] else add.inputs[0]
            c = q.const_value(other)
            ncol = q.const_value(n.inputs[1]).shape[1]
            if c is None or c.dtype.kind != "f" or c.size != ncol or (
                    c.ndim and c.shape[-1] != ncol):
                continue
            if g.types[add.outputs[0]].shape != g.types[n.outputs[0]].shape:
                continue
            q.fused_bias[id(n)] = (add, other)
            q.skip.add(id(add))
    for n in g.nodes:  # softmax inputs: the range of the elements that matter
        if n.op == "softmax" and n.inputs[0] not in g.consts and q.cal.envs:
            keep = n.inputs[1] if len(n.inputs) > 1 else None
            _softmax_range(q, n.inputs[0], n.attrs["axis"], keep)
    if not q.fixed:
        for n in g.nodes:
            if n.op == "relu":
                p = q.producers.get(n.inputs[0])
                if p is not None and p.op in ("conv", "matmul", "add") and len(
                        q.users.get(n.inputs[0], [])) == 1:
                    q.range_alias[n.inputs[0]] = n.outputs[0]


def _softmax_range(q: _Q, x: str, axis: int, keep: str | None = None) -> None:
    """Range of a softmax input over the calibration elements within SOFTMAX_RANGE of their
    row max (among the kept elements, with a keep mask): elements further below (e.g. -1e4
    attention masks) may saturate, since their exp is below e^-16 of the row's largest term
    either way."""
    lo, hi = math.inf, -math.inf
    for env in q.cal.envs:
        v = env[x].astype(np.float64)
        if keep is not None:
            k = q.g.consts[keep] if keep in q.g.consts else env.get(keep)
            if k is not None:
                v = np.where(np.broadcast_to(np.asarray(k) != 0, v.shape), v, -np.inf)
        with np.errstate(invalid="ignore"):
            keep_v = v[np.isfinite(v) & (v - np.max(v, axis=axis, keepdims=True)
                                         > -SOFTMAX_RANGE)]
        if keep_v.size == 0:
            continue
        lo, hi = min(lo, float(keep_v.min())), max(hi, float(keep_v.max()))
    if lo <= hi:
        q.cal.ranges[x] = (lo, hi)


def _dispatch(op: str) -> Callable[[_Q, Node], None]:
    if op in RULES:
        return RULES[op]
    d = OPS[op]
    if d.group is Group.MOVEMENT:
        return _movement
    if d.pointwise and d.arity == (1, 1) and d.group in (Group.NONLINEAR, Group.ELEMENTWISE):
        return _lut
    return None  # type: ignore[return-value]


def quantize(graph: Graph, scheme: str = "fixed",
             calibration: dict[str, np.ndarray] | None = None, *, act_bits: int = 24,
             n_synth: int = 4, seed: int = 0, int8_mode: str = INT8_DEFAULT,
             fixed_act: str = "i32",
             progress: Callable[[str], None] | None = None) -> QuantizedModel:
    """Rewrite float graph ``graph`` into an integer graph under ``scheme`` (``fixed``|``int8``).

    ``calibration``: arrays by input name (one sample, or N samples stacked on a new
    leading axis or along a batch axis of size 1); without it ``n_synth`` synthetic samples
    (standard normal floats, ids uniform over the table they index) are used.
    ``int8_mode``: which activations the int8 scheme keeps at 16 bits (and whether it
    smooths first), :mod:`opmlc.quantize.mixed`; ignored by ``fixed`` and QDQ models.
    ``fixed_act``: the fixed scheme's activation word, ``i32`` (``act_bits`` significant
    bits) or ``i16`` (13 significant bits, 8x headroom: half the memory and hashing, a
    coarser grid); the int8 scheme refuses anything but the default.
    ``progress``: lines on the calibration samples and every tenth of the nodes (graphs of
    at least PROGRESS_MIN_NODES nodes).
    """
    qdq = any(n.op in ("quantize_linear", "dequantize_linear") for n in graph.nodes)
    if qdq:
        scheme = "int8"  # a QDQ model: its own int8 params, int8 rules for the rest
    if fixed_act not in FIXED_ACT_BITS:
        raise QuantizeError(f"fixed-scheme activations are one of {sorted(FIXED_ACT_BITS)}, "
                            f"not {fixed_act!r}")
    if fixed_act != "i32" and scheme != "fixed":
        raise QuantizeError(f"--act-dtype {fixed_act} applies to the fixed scheme, not "
                            f"{scheme!r}" + (" (this is a QDQ model: its own int8 params)"
                                             if qdq else ""))
    if scheme == "fixed":
        pol: FixedPolicy | Int8Policy = FixedPolicy(
            act_bits if fixed_act == "i32" else FIXED_ACT_BITS[fixed_act], act_dtype=fixed_act)
    elif scheme == "int8":
        pol = Int8Policy()
    else:
        raise QuantizeError(f"unknown quantization scheme {scheme!r} (use 'fixed' or 'int8')")
    graph = fold_masks(Graph(list(graph.inputs), list(graph.outputs), dict(graph.consts),
                             list(graph.nodes), dict(graph.types), graph.name))
    if scheme == "int8" and not qdq:
        graph, pol = prepare_int8(graph, int8_mode, calibration, n_synth, seed)
    bad = [(n.op, n.outputs[0]) for n in graph.nodes if _dispatch(n.op) is None]
    if bad:
        raise QuantizeError("ops without a quantization rule: " + ", ".join(
            f"{op} (node -> {o})" for op, o in bad))
    cal = calibrate(graph, calibration, n_synth=n_synth, seed=seed, progress=progress)
    q = _Q(graph, pol, cal)
    _prepare(q)
    inputs: dict[str, QParams | None] = {}
    for name in graph.inputs:
        t = graph.types[name]
        if t.dtype in FLOAT_DTYPES:
            p = q.act(name)
            q.out.types[name] = TensorType(p.dtype, t.shape)
        elif t.dtype == "bool":
            p = None
            q.out.types[name] = TensorType("u8", t.shape)
        else:
            p = None
            q.out.types[name] = t
        q.out.inputs.append(name)
        q.set(name, name, p)
        inputs[name] = p
    total = len(graph.nodes)
    every = -(-total // 10) if progress is not None and total >= PROGRESS_MIN_NODES else 0
    for k, n in enumerate(graph.nodes):
        if every and k and k % every == 0:
            progress(f"  quantized {k}/{total} nodes ({100 * k // total}%)")
        try:
            _dispatch(n.op)(q, n)
        except QuantizeError:
            raise
        except Exception as e:  # noqa: BLE001 - name the node for the user
            raise QuantizeError(f"quantizing {n.op} -> {', '.join(n.outputs)}: {e}") from e
    outputs: dict[str, QParams | None] = {}
    for o in graph.outputs:
        qn, p = q.get(o)
        if qn != o:
            if o in q.out.types:
                raise QuantizeError(f"output name {o!r} is taken in the integer graph")
            t = q.out.types[qn]
            q.out.nodes.append(Node("reshape", (qn,), (o,), {"shape": list(t.shape)}))
            q.out.types[o] = t
        q.out.outputs.append(o)
        outputs[o] = p
    q.out.remove_dead()
    from opmlc.quantize.interp import verify_int

    verify_int(q.out)
    return QuantizedModel(q.out, pol.name, inputs, outputs, dict(q.qmap))


__all__ = ["QuantizedModel", "QuantizeError", "Calibration", "calibrate", "quantize", "RULES"]
