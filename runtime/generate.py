"""Generation programs at the edge: a prompt in, the program's inputs out (spec/GENERATE.md).

An artifact compiled with ``opmlc compile --generate N`` records in its options::

    "generate": {"steps": N, "context": L, "vocab": V, "ids": <ids input>, "pos": "gen.pos",
                 "seed": "seed" | null, "tokens": "tokens", "sample": {...} | null}

Its inputs are the ids (1, L) (or (L,)), ``gen.pos`` (1,) and, when it samples, ``seed``
(1,). A user gives the prompt instead: ``{ids: P token ids}`` (a 1-D or 1 x P integer
array, 1 <= P <= L - N; under the model's name for its ids input, or simply ``ids``)
and, for a sampling program, ``{"seed": s}`` (an integer or a one-element integer array,
taken modulo 2^64 as a signed word). ``expand`` writes the
prompt into ids[0:P] (the rest 0: causality keeps it out of every logit the program reads)
and sets gen.pos = P - 1, the position whose logits choose the first new token.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class GenerateInputError(ValueError):
    """The prompt or seed given to a generation program is unusable (the message says why)."""


@dataclass(frozen=True)
class GenSpec:
    steps: int
    context: int
    vocab: int
    ids: str
    pos: str
    seed: str | None
    tokens: str
    sample: dict | None

    @classmethod
    def of(cls, meta: dict) -> GenSpec | None:
        g = (meta.get("options") or {}).get("generate")
        if not g:
            return None
        return cls(int(g["steps"]), int(g["context"]), int(g["vocab"]), str(g["ids"]),
                   str(g["pos"]), None if g.get("seed") is None else str(g["seed"]),
                   str(g["tokens"]), g.get("sample"))

    def describe(self) -> str:
        how = ("greedy" if self.sample is None else
               f"sampled (temperature {self.sample['temperature']}, top_k "
               f"{self.sample['top_k'] or 'all'})")
        return (f"generates {self.steps} tokens, {how}, context {self.context}, vocabulary "
                f"{self.vocab}: give {self.ids!r} = a prompt of 1..{self.context - self.steps}"
                " token ids" + (f" and {self.seed!r} = an integer" if self.seed else ""))

    def expand(self, inputs: dict, ids_shape: tuple[int, ...], ids_dtype: np.dtype) -> dict:
        """The program's inputs for a prompt (inputs already holding ``pos`` pass through)."""
        if self.pos in inputs:
            return inputs
        if self.ids not in inputs and "ids" in inputs:  # the generic name for the prompt
            inputs = {(self.ids if k == "ids" else k): v for k, v in inputs.items()}
        out = {k: v for k, v in inputs.items() if k not in (self.ids, self.seed)}
        if self.ids not in inputs:
            raise GenerateInputError(f"missing input {self.ids!r} (the prompt); this program "
                                     f"{self.describe()}")
        p = np.asarray(inputs[self.ids])
        if p.dtype.kind not in "iu":
            raise GenerateInputError(
                f"input {self.ids!r}: the prompt must be integer token ids, got {p.dtype}; "
                f"this program {self.describe()}")
        if p.ndim == 2 and p.shape[0] == 1:
            p = p[0]
        n, room = p.size, self.context - self.steps
        if p.ndim != 1 or not 1 <= n <= room:
            raise GenerateInputError(
                f"input {self.ids!r}: a prompt of shape {list(np.shape(inputs[self.ids]))}; "
                f"expected 1..{room} token ids (1-D or 1 x P): the context is {self.context} "
                f"and {self.steps} tokens are generated")
        if int(p.min()) < 0 or int(p.max()) >= self.vocab:
            raise GenerateInputError(
                f"input {self.ids!r}: token ids must lie in [0, {self.vocab - 1}] "
                f"(got {int(p.min())}..{int(p.max())})")
        ids = np.zeros(self.context, ids_dtype)
        ids[:n] = p
        out[self.ids] = ids.reshape(ids_shape)
        out[self.pos] = np.array([n - 1], np.int64)
        if self.seed is not None:
            if self.seed not in inputs:
                raise GenerateInputError(
                    f"missing input {self.seed!r}: this program samples, and the seed is an "
                    f"input (the same seed gives the same tokens on every engine)")
            s = np.asarray(inputs[self.seed])
            if s.dtype.kind not in "iu" or s.size != 1:
                raise GenerateInputError(f"input {self.seed!r}: one integer, got {s.dtype}"
                                         f"{list(s.shape)}")
            v = int(s.reshape(-1)[0]) % (1 << 64)
            out[self.seed] = np.array([v - (1 << 64) if v >> 63 else v], np.int64)
        return out


def read_vocab(path: str) -> list[str]:
    """A vocabulary file: a JSON list of token strings, or text with one token per line."""
    import json
    from pathlib import Path

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise GenerateInputError(f"--vocab {path}: cannot read: {e.strerror or e}") from None
    if path.endswith(".json"):
        try:
            v = json.loads(text)
        except ValueError as e:
            raise GenerateInputError(f"--vocab {path}: not JSON: {e}") from None
        if not isinstance(v, list) or not all(isinstance(t, str) for t in v):
            raise GenerateInputError(f"--vocab {path}: expected a JSON list of strings")
        return v
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


def encode_text(vocab: list[str], text: str) -> np.ndarray:
    """Greedy longest-match tokenization of ``text`` over ``vocab`` (exact for a character
    vocabulary); an unknown character is an error naming it."""
    index = {t: i for i, t in enumerate(vocab) if t}
    longest = max((len(t) for t in index), default=1)
    out, i = [], 0
    while i < len(text):
        for n in range(min(longest, len(text) - i), 0, -1):
            j = index.get(text[i: i + n])
            if j is not None:
                out.append(j)
                i += n
                break
        else:
            raise GenerateInputError(f"--prompt: {text[i]!r} (at {i}) is not in the vocabulary")
    return np.array(out, np.int64)


def decode_tokens(vocab: list[str], tokens: list[int]) -> str:
    return "".join(vocab[t] if 0 <= t < len(vocab) else f"<{t}>" for t in tokens)


__all__ = ["GenSpec", "GenerateInputError", "decode_tokens", "encode_text", "read_vocab"]
