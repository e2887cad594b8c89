"""Verifiable generation on the trained char-level GPT: the integer program's continuations
against the float model's (spec/GENERATE.md, issue 11 part 2).

    .venv/bin/python bench/bench_generate.py [--prompts 32] [--prompt-len 16] [--steps 16]
                                             [--threads 2] [--json]

For each held-out window of models/charlm_heldout.npz, the first ``--prompt-len``
characters are the prompt. The float model generates greedily with onnxruntime (one
full-context forward per token, as the program does); opmlc compiles ``--generate N`` for
each scheme (calibrated on the stored training windows) and runs the program natively.
Reported per scheme: the share of generated tokens equal to the float model's at the same
position, the share of whole continuations equal, the mean index of the first divergence,
the VM steps per generated token, and the wall time per generated token against
onnxruntime float32's in the same run (median over the prompts).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opmlc import api  # noqa: E402

MODEL = ROOT / "models/charlm.onnx"


def float_generate(sess: ort.InferenceSession, prompt: np.ndarray, steps: int, L: int
                   ) -> tuple[list[int], float]:
    ids = np.zeros((1, L), np.int64)
    ids[0, : prompt.size] = prompt
    out, t0 = [], time.perf_counter()
    for i in range(steps):
        t = prompt.size - 1 + i
        logits = sess.run(None, {"input_ids": ids})[0]
        tok = int(np.argmax(logits[0, t]))
        out.append(tok)
        ids[0, t + 1] = tok
    return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--prompt-len", type=int, default=16)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--schemes", default="fixed,int8")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    data = np.load(ROOT / "models/charlm_heldout.npz")
    vocab = str(data["vocab"][0])
    X = data["X"].astype(np.int64)
    idx = np.linspace(0, len(X) - 1, a.prompts).astype(int)
    prompts = [X[i][: a.prompt_len] for i in idx]
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    sess = ort.InferenceSession(str(MODEL), so, providers=["CPUExecutionProvider"])
    L = sess.get_inputs()[0].shape[1]
    float_gen = [float_generate(sess, p, a.steps, L) for p in prompts]
    t_float = float(np.median([t for _, t in float_gen])) / a.steps
    rows = []
    example = None
    for scheme in a.schemes.split(","):
        t0 = time.perf_counter()
        m = api.Model(api.compile(str(MODEL), scheme=scheme, generate=a.steps,
                                  calibration={"input_ids": data["calib"].astype(np.int64)}))
        t_compile = time.perf_counter() - t0
        m.run({"input_ids": prompts[0]})  # JIT warm-up
        same_tok = same_all = 0
        first_div, times = [], []
        for p, (ftoks, _) in zip(prompts, float_gen, strict=True):
            t0 = time.perf_counter()
            toks = m.run({"input_ids": p}, "native").outputs["tokens"].tolist()
            times.append(time.perf_counter() - t0)
            eq = [x == y for x, y in zip(toks, ftoks, strict=True)]
            same_tok += sum(eq)
            same_all += all(eq)
            first_div.append(eq.index(False) if not all(eq) else a.steps)
            if example is None:
                example = ("".join(vocab[t] for t in p), "".join(vocab[t] for t in ftoks),
                           "".join(vocab[t] for t in toks))
        n = len(prompts)
        rows.append({"scheme": scheme, "token_agreement": same_tok / (n * a.steps),
                     "continuations_equal": same_all / n,
                     "mean_first_divergence": float(np.mean(first_div)),
                     "vm_steps_per_token": m.meta["total_steps"] / a.steps,
                     "nodes": len(m.meta["nodes"]), "compile_s": t_compile,
                     "ms_per_token": 1e3 * float(np.median(times)) / a.steps,
                     "ort_f32_ms_per_token": 1e3 * t_float,
                     "ratio_vs_ort_f32": float(np.median(times)) / a.steps / t_float})
    if a.json:
        print(json.dumps({"prompts": len(prompts), "prompt_len": a.prompt_len,
                          "steps": a.steps, "threads": a.threads, "rows": rows}, indent=1))
        return 0
    print(f"charlm: {len(prompts)} held-out prompts of {a.prompt_len} characters, "
          f"{a.steps} greedy tokens each ({len(prompts) * a.steps} tokens), "
          f"{a.threads} threads")
    print(f"{'scheme':<7}{'token agree':>12}{'cont. equal':>12}{'1st diff':>9}"
          f"{'VM steps/tok':>14}{'nodes':>7}{'compile s':>10}{'ms/tok':>8}{'ORT ms/tok':>11}"
          f"{'ratio':>7}")
    for r in rows:
        print(f"{r['scheme']:<7}{r['token_agreement']:>12.4f}{r['continuations_equal']:>12.3f}"
              f"{r['mean_first_divergence']:>9.2f}{r['vm_steps_per_token']:>14,.0f}"
              f"{r['nodes']:>7}{r['compile_s']:>10.1f}{r['ms_per_token']:>8.2f}"
              f"{r['ort_f32_ms_per_token']:>11.2f}{r['ratio_vs_ort_f32']:>7.2f}")
    if example:
        print(f"example: prompt {example[0]!r}\n  float   {example[1]!r}\n  integer "
              f"{example[2]!r} (last scheme)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
