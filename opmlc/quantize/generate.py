"""Verifiable generation: N decoder steps unrolled into one integer program.

A decoder here is an integer graph with one token-id input ``ids`` of shape (1, L) or (L,)
and a logits output of shape (1, L, V) or (L, V): the full-sequence, fixed-context graph,
whose logits at position t depend on ids[0..t] only (causality). ``unroll`` copies it N
times (spec/GENERATE.md)::

    ids_0 = ids (the prompt, zero-padded to L);  pos_0 = gen.pos = P - 1
    step i:  logits_i = decoder(ids_i)                     (the copy's values are named s<i>/...)
             tok_i    = argmax(logits_i[pos_i])            (greedy: ties -> lowest index)
                      | q.sample(logits_i[pos_i], exp table, seed, counter = i)
             pos_i+1  = pos_i + 1
             ids_i+1  = where(arange(L) == pos_i+1, tok_i, ids_i)
    tokens = concat(tok_0, ..., tok_N-1)

The copies share the decoder's constants (weights are stored once) and run the same
integer ops as the single-step model, so the tokens equal a Python loop over the integer
reference of that model; the whole generation is one static schedule, one claim, one
trace and one dispute game.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from opmlc.errors import OpmlcError
from opmlc.ir.graph import Graph, Node, TensorType
from opmlc.ir.ops import canonical_attrs
from opmlc.quantize.quantize import EXP_BITS, SOFTMAX_RANGE, QuantizedModel

POS = "gen.pos"
SEED = "seed"
TOKENS = "tokens"


class GenerateError(OpmlcError):
    """The model is not a decoder ``unroll`` can drive, or the options are out of range."""


@dataclass(frozen=True)
class Sampling:
    """``--sample temperature=T,top_k=K`` (top_k 0: the whole vocabulary)."""

    temperature: float = 1.0
    top_k: int = 0

    @classmethod
    def parse(cls, text: str) -> Sampling:
        vals: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            k, sep, v = part.partition("=")
            if not sep or k.strip() not in ("temperature", "top_k"):
                raise GenerateError(f"--sample {text!r}: expected temperature=T,top_k=K "
                                    f"(got {part!r})")
            vals[k.strip()] = v.strip()
        try:
            s = cls(float(vals.get("temperature", 1.0)), int(vals.get("top_k", 0)))
        except ValueError:
            raise GenerateError(f"--sample {text!r}: temperature must be a number and "
                                "top_k an integer") from None
        if not (s.temperature > 0 and math.isfinite(s.temperature)) or s.top_k < 0:
            raise GenerateError(f"--sample {text!r}: temperature must be > 0 and top_k >= 0")
        return s

    def to_dict(self) -> dict:
        return {"temperature": self.temperature, "top_k": self.top_k}


def decoder_io(qm: QuantizedModel) -> tuple[str, str, int, int]:
    """(ids input, logits output, context L, vocabulary V) of a decoder, or a clear error."""
    g = qm.graph
    ids = [i for i in g.inputs if qm.inputs.get(i) is None and g.types[i].dtype.startswith(
        ("i", "u")) and g.types[i].shape[-1] > 1 and (g.types[i].rank == 1 or (
            g.types[i].rank == 2 and g.types[i].shape[0] == 1))]
    if len(g.inputs) != 1 or len(ids) != 1:
        raise GenerateError(
            "--generate needs a decoder with exactly one input, the token ids of shape "
            "(1, L) or (L,); this model takes "
            + ", ".join(f"{i}: {g.types[i]}" for i in g.inputs))
    L = g.types[ids[0]].shape[-1]
    cand = [o for o in g.outputs if qm.outputs.get(o) is not None and (
        g.types[o].rank == 3 and g.types[o].shape[:2] == (1, L) or
        g.types[o].rank == 2 and g.types[o].shape[0] == L)]
    if len(cand) != 1:
        raise GenerateError(
            f"--generate needs exactly one logits output of shape (1, {L}, V) or ({L}, V); "
            "this model returns " + ", ".join(f"{o}: {g.types[o]}" for o in g.outputs))
    return ids[0], cand[0], L, g.types[cand[0]].shape[-1]


def sample_table(scale: float, temperature: float) -> tuple[np.ndarray, int, int]:
    """The q.sample exp table for logit codes of ``scale``: knots d (code units, <= 0) every
    2^k from lo, t = round(exp(d * scale / temperature) * 2^EXP_BITS), t[0] = 0 (weights
    below e^-16 of the row's best are 0, as in q.softmax). Returns (table, lo, k)."""
    span = max(int(math.ceil(SOFTMAX_RANGE * temperature / scale)), 1)
    k = max(0, math.ceil(math.log2(span / 2048)))
    n = -(-span // (1 << k))
    lo = -n * (1 << k)
    knots = (lo + np.arange(n + 1, dtype=np.int64) * (1 << k)) * (scale / temperature)
    table = np.floor(np.exp(knots) * 2.0**EXP_BITS + 0.5).astype(np.int64)
    table[0] = 0
    return table, lo, k


def unroll(qm: QuantizedModel, steps: int, sample: Sampling | None = None
           ) -> tuple[QuantizedModel, dict]:
    """The N-step generation program of decoder ``qm`` and its ``generate`` record (stored
    in the artifact's options; the runtime reads it to turn a prompt into the inputs)."""
    ids, logits, L, V = decoder_io(qm)
    if not 1 <= steps <= L - 1:
        raise GenerateError(f"--generate {steps}: needs 1 <= N <= L - 1 = {L - 1} "
                            f"(the context is {L} tokens and the prompt needs at least one)")
    src = qm.graph
    it = src.types[ids]
    lt = src.types[logits]
    axis = lt.rank - 2  # the sequence axis of the logits
    out = Graph([ids, POS], [TOKENS], dict(src.consts), [], {ids: it, POS: TensorType(
        "i64", (1,))}, f"{src.name}_generate{steps}")
    for c in src.consts:
        out.types[c] = src.types[c]

    def const(name: str, arr: np.ndarray) -> str:
        out.consts[name] = arr
        out.types[name] = TensorType.of(arr)
        return name

    def node(op: str, ins: list[str], name: str, ty: TensorType, **attrs: object) -> str:
        out.nodes.append(Node(op, tuple(ins), (name,), canonical_attrs(op, attrs)))
        out.types[name] = ty
        return name

    one = const("gen.one", np.ones((1,), np.int64))
    arange = const("gen.arange", np.arange(L, dtype=np.int64).reshape(it.shape))
    rq_one = const("gen.rq_mult", np.ones((), np.int64))
    rq_zero = const("gen.rq_shift", np.zeros((), np.int64))
    table = lo = k = None
    if sample is not None:
        p = qm.outputs[logits]
        if p is None or np.ndim(p.scale) != 0:
            raise GenerateError("--sample needs logits with one (per-tensor) scale")
        table, lo, k = sample_table(float(p.scale), sample.temperature)
        const("gen.exp", table)
        out.inputs.append(SEED)
        out.types[SEED] = TensorType("i64", (1,))
    cur_ids, pos, toks = ids, POS, []
    for i in range(steps):
        def rn(name: str, i: int = i, cur: str = cur_ids) -> str:
            return name if name in src.consts else cur if name == ids else f"s{i}/{name}"

        for n in src.nodes:
            out.nodes.append(Node(n.op, tuple(rn(x) for x in n.inputs),
                                  tuple(rn(o) for o in n.outputs), n.attrs))
            for o in n.outputs:
                out.types[rn(o)] = src.types[o]
        lg = rn(logits)
        row_shape = lt.shape[:axis] + (1, V)
        row = node("gather", [lg, pos], f"g{i}/row", TensorType(lt.dtype, row_shape), axis=axis)
        tok_shape = row_shape[:-1]
        if sample is None:
            tok = node("q.argmax", [row], f"g{i}/tok", TensorType("i64", tok_shape),
                       axis=len(row_shape) - 1, keepdims=0, select_last_index=0)
        else:
            tok = node("q.sample", [row, "gen.exp", SEED], f"g{i}/tok",
                       TensorType("i64", tok_shape), lo=lo, step_bits=k,
                       top_k=sample.top_k, counter=i)
        tok = node("reshape", [tok], f"g{i}/tok1", TensorType("i64", (1,)), shape=[1])
        toks.append(tok)
        if i + 1 == steps:
            break
        nxt = node("q.add", [pos, one], f"g{i + 1}/pos", TensorType("i64", (1,)), dtype="i64")
        hit = node("q.cmp", [arange, nxt], f"g{i}/hit", TensorType("u8", it.shape), kind="eq")
        val = tok if it.dtype == "i64" else node(
            "q.requant", [tok, rq_one, rq_zero], f"g{i}/tok_{it.dtype}",
            TensorType(it.dtype, (1,)), dtype=it.dtype)
        cur_ids = node("q.where", [hit, val, cur_ids], f"g{i + 1}/ids", it)
        pos = nxt
    node("concat", toks, TOKENS, TensorType("i64", (steps,)), axis=0)
    out.remove_dead()
    from opmlc.quantize.interp import verify_int

    verify_int(out)
    rec = {"steps": steps, "context": L, "vocab": V, "ids": ids, "pos": POS,
           "seed": SEED if sample else None, "tokens": TOKENS,
           "sample": sample.to_dict() if sample else None}
    qins = {ids: None, POS: None} | ({SEED: None} if sample else {})
    return QuantizedModel(out, qm.scheme, qins, {TOKENS: None}, {}), rec


__all__ = ["GenerateError", "POS", "SEED", "Sampling", "TOKENS", "decoder_io", "sample_table",
           "unroll"]
