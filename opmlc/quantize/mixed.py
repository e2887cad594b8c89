"""Mixed precision for the ``int8`` scheme: which float values are kept at 16 bits.

An ``int8`` mode is ``plain`` (every activation i8), ``auto`` (the default:
``norm+resid+out+attn`` for a graph holding a norm, i.e. a transformer, else ``plain``, so
convolutional nets keep i8 everywhere) or groups joined by ``+``; each group names values
of the float graph (after :func:`opmlc.quantize.masks.fold_masks`) that the quantizer then
gives affine **i16** params (``Int8Policy.wide``), the rest staying i8.
Weights stay i8 per channel in every mode, and every op keeps its integer semantics
(spec/QUANT.md): an i16 value is only a wider word for the same rules.

Groups (structural, so they name the same values whatever the calibration):

* ``out``    the graph's outputs (logits: 256 levels make near ties of the argmax);
* ``resid``  the residual stream: add / sub of two computed values, output and both
  operands (the skip connections of a transformer block, which layer norms then read,
  and the branch outputs added to them: an i8 branch output clips first);
* ``norm``   inputs and outputs of layer_norm / rms_norm (but an output read by the
  contraction that makes a graph output, the vocabulary projection, stays i8: its int8
  dot-product kernel is the model's largest cost), and the values of a norm written out
  (mean of squares, its root, the quotient: reduce_mean / pow / sqrt / div chains) up to
  the scaling by gamma;
* ``attn``   softmax inputs and outputs (attention probabilities), and the scores back
  through their scaling by constants to the matmul that makes them;
* ``act``    inputs and outputs of pointwise nonlinear ops (erf, sigmoid, tanh, gelu, ...)
  and the values between them (written-out GELU: x / sqrt2, erf, + 1, * x, * 0.5);
* ``all``    every float activation (w8a16: the upper bound of this family).

and two float rewrites before calibration, not groups: ``smooth``
(:func:`opmlc.quantize.smooth.smooth`, SmoothQuant) and ``gelu``
(:func:`opmlc.quantize.gelu.fold_gelu`: a written-out GELU as one op, two roundings for
five).  Neither helps here (all charlm positions: ``gelu`` 0.9684 / 0.125 for plain's
0.9684 / 0.119, ``auto+gelu`` 0.9848 / 0.051 for auto's 0.9849 / 0.047), so neither is
in ``auto``.

The default is chosen by measurement (bench/bench_lm.py --windows 0 --int8-mode M, all
41,120 held-out positions of the char-level GPT; bench/bench_int8_layers.py): greedy
agreement with the float model / max relative logit error

    plain 0.9684 / 0.119   norm+out 0.9793 / 0.110   norm+out+attn 0.9822 / 0.051
    norm+out+attn+act 0.9847 / 0.044   resid+out+attn 0.9806 / 0.067
    norm+resid+out+attn (auto) 0.9849 / 0.047   all 0.9904 / 0.027

``auto`` keeps 29 of charlm's 87 values at 16 bits (the residual stream, the branch
outputs added to it and the norm outputs but the last, the scores and probabilities, the
logits) and leaves the wide hidden values of the MLP (and so the inputs of its two
contractions) and the input of the vocabulary projection i8 (with it at i16: 0.9854 /
0.048, and +39% native time on a 50k-vocabulary GPT-2, whose largest matmul it is);
``smooth`` did not help (these models have no outlier
channels: the widest channel of a norm output is under 2.2x the median); ``all`` (w8a16)
is the most accurate and the least int8.
"""

from __future__ import annotations

import numpy as np

from opmlc.ir.graph import FLOAT_DTYPES, Graph, Node
from opmlc.ir.ops import OPS, Group
from opmlc.quantize.params import Int8Policy

GROUPS = ("out", "resid", "norm", "attn", "act", "all")
PASSES = ("smooth", "gelu")  # float rewrites before calibration, not groups
PLAIN = "plain"
AUTO = "auto"
AUTO_GROUPS = ("norm", "resid", "out", "attn")
INT8_DEFAULT = AUTO


def parse_mode(mode: str) -> tuple[str, ...]:
    """``plain`` -> (); ``resid+attn`` -> ('resid', 'attn'); unknown names refused."""
    from opmlc.quantize.quantize import QuantizeError

    if mode == PLAIN:
        return ()
    if mode == AUTO:
        return AUTO_GROUPS
    parts = tuple(p for p in mode.split("+") if p)
    bad = [p for p in parts if p not in GROUPS + PASSES]
    if bad or not parts:
        raise QuantizeError(f"unknown int8 mode {mode!r}: use {PLAIN!r}, {AUTO!r} or groups joined "
                            f"by '+' from {', '.join(GROUPS + PASSES)}")
    return parts


def has_norm(g: Graph) -> bool:
    """Does ``g`` hold a layer / RMS norm (as an op or written out)?"""
    return any(n.op in ("layer_norm", "rms_norm") or (n.op == "reduce_mean" and _written_norm(
        g, n, g.producers())) for n in g.nodes)


def _float_act(g: Graph, name: str) -> bool:
    return name not in g.consts and g.types[name].dtype in FLOAT_DTYPES


def wide_values(g: Graph, groups: tuple[str, ...]) -> frozenset[str]:
    """The float values of ``g`` kept at 16 bits by ``groups`` (see the module docstring)."""
    out: set[str] = set()
    producers = g.producers()
    users = g.users()
    if "all" in groups:
        return frozenset(k for k in g.types if _float_act(g, k))
    if "out" in groups:
        out.update(o for o in g.outputs if _float_act(g, o))
    for n in g.nodes:
        acts = [i for i in n.inputs if _float_act(g, i)]
        if "resid" in groups and n.op in ("add", "sub") and len(acts) == 2:
            out.update(acts + [o for o in n.outputs if _float_act(g, o)])
        if "norm" in groups and n.op in ("layer_norm", "rms_norm"):
            out.update(acts[:1] + [o for o in n.outputs if _float_act(g, o)
                                   and not _feeds_head(g, o, users)])
        if "norm" in groups and n.op == "reduce_mean":
            out.update(_written_norm(g, n, producers))
        if "attn" in groups and n.op == "softmax":
            out.update(acts[:1] + list(n.outputs) + _scores(g, n.inputs[0], producers))
        if "act" in groups and OPS[n.op].pointwise and OPS[n.op].group is Group.NONLINEAR:
            out.update(acts + [o for o in n.outputs if _float_act(g, o)])
    if "act" in groups:
        out.update(_act_glue(g, out))
    return frozenset(o for o in out if _float_act(g, o))


def _act_glue(g: Graph, seeds: set[str]) -> set[str]:
    """Values a written-out activation computes from a nonlinear op's output within three
    pointwise steps: by a constant (+ 1, * 0.5) or a product of two activations (x * phi,
    silu(a) * b); it stops at contractions and norms."""
    users = g.users()
    got: set[str] = set()
    frontier = [o for n in g.nodes if OPS[n.op].pointwise and OPS[n.op].group is
                Group.NONLINEAR for o in n.outputs if _float_act(g, o)]
    for _ in range(3):
        nxt = []
        for v in frontier:
            for u in users.get(v, []):
                other = [i for i in u.inputs if i != v]
                if u.op in ("add", "sub", "mul", "div") and (
                        all(i in g.consts for i in other) or u.op == "mul"):
                    nxt.extend(o for o in u.outputs if o not in got and _float_act(g, o))
        got.update(nxt)
        frontier = nxt
    return got


def _feeds_head(g: Graph, v: str, users: dict[str, list[Node]]) -> bool:
    """Is ``v`` read by a contraction that makes a graph output (directly or through a
    bias add): the vocabulary projection, the largest matmul of a language model, which
    keeps its 8-bit input (measured: no loss on charlm; +39% native time with an i16 input
    on a 50k-vocabulary GPT-2)?"""
    for u in users.get(v, []):
        if u.op not in ("matmul", "einsum"):
            continue
        y = u.outputs[0]
        if y in g.outputs or any(w.op == "add" and w.outputs[0] in g.outputs
                                 for w in users.get(y, [])):
            return True
    return False


def _scores(g: Graph, x: str, producers: dict[str, Node]) -> list[str]:
    """The values a softmax input is computed from by constants (the 1/sqrt(d) scaling, a
    position bias), back to the contraction that makes the scores, which is included."""
    got = []
    p = producers.get(x)
    while p is not None and p.op in ("mul", "div", "add", "sub") and sum(
            i not in g.consts for i in p.inputs) == 1:
        x = next(i for i in p.inputs if i not in g.consts)
        got.append(x)
        p = producers.get(x)
    return got


def _written_norm(g: Graph, rm: Node, producers: dict[str, Node]) -> set[str]:
    """A norm written out, ``x / sqrt(reduce_mean(x^2) + eps)``: x, the square, the mean,
    the sum with eps, the root and the quotient (not the scaling by gamma after it)."""
    src = producers.get(rm.inputs[0])
    if src is None or not (src.op == "pow" or (src.op == "mul" and src.inputs[0] ==
                                                src.inputs[1])):
        return set()
    vals = {src.inputs[0], rm.inputs[0], rm.outputs[0]}
    users = g.users()
    v = rm.outputs[0]
    for _ in range(4):  # + eps, sqrt, then div (or reciprocal, then mul)
        us = [u for u in users.get(v, []) if u.op in ("add", "sqrt", "reciprocal", "div",
                                                      "mul")]
        if len(us) != 1:
            break
        v = us[0].outputs[0]
        vals.add(v)
        if us[0].op in ("div", "mul"):
            break
    return vals


def prepare_int8(g: Graph, mode: str, calibration: dict[str, np.ndarray] | None,
                 n_synth: int, seed: int) -> tuple[Graph, Int8Policy]:
    """The float graph to quantize under int8 ``mode`` (smoothed when the mode says
    ``smooth``) and the policy holding its 16-bit values."""
    groups = parse_mode(mode)
    if mode == AUTO and not has_norm(g):
        groups = ()
    if "gelu" in groups:
        from opmlc.quantize.gelu import fold_gelu

        g = fold_gelu(g)
    if "smooth" in groups:
        from opmlc.quantize.smooth import smooth

        g = smooth(g, calibration, n_synth=n_synth, seed=seed)
    return g, Int8Policy(wide_values(g, tuple(x for x in groups if x not in PASSES)))


__all__ = ["AUTO", "GROUPS", "INT8_DEFAULT", "PLAIN", "has_norm", "parse_mode", "prepare_int8",
           "wide_values"]
