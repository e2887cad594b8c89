#!/usr/bin/env python3
"""Build the small ONNX test models that opmlc's test suite and benchmarks use.

The generated files are committed under ``models/`` so that the test suite needs
neither torch nor network access.  Re-run this script only to regenerate them.

Models (see models/README.md for inputs/outputs, op types and accuracy):

  digits_mlp_sklearn   sklearn MLPClassifier on the digits data, via skl2onnx
                       (also writes models/digits_test.npz, the held-out split)
  digits_cnn           small torch CNN on the 8x8 digits images
  gpt2_tiny            GPT-2-style decoder (torch), vocab 64, d 32, 2 layers, 2 heads, ctx 8
  llama_tiny           LLaMA-style decoder (torch), vocab 64, d 32, 2 layers, 4 heads, ctx 8
  charlm               char-level GPT (torch) trained on Python's LICENSE.txt and stdlib
                       docstrings: d 96, 3 layers, 4 heads, ctx 32 (+ charlm_heldout.npz)
  gpt2_small           GPT-2 small (torch), random seeded weights: vocab 50257, d 768,
                       12 layers, 12 heads, ctx 128 (--ctx), lm_head tied: 124M parameters,
                       a 650 MB file. Not committed, not built by default: ``--only
                       gpt2_small --out DIR`` (DIR other than models/); bench/bench_gpt2.py
  gpt2_small_mini      the same with 2 layers (the suite builds its like without torch,
                       tests/gpt2_graph.py)

How to run
----------
The sklearn model needs only the project venv (no torch)::

    .venv/bin/python scripts/make_models.py --only digits_mlp_sklearn

The torch models need a SEPARATE venv (never install torch into .venv)::

    python3.11 -m venv /tmp/venv-models
    /tmp/venv-models/bin/pip install "torch==2.13.0+cpu" onnx==1.23.2 onnxruntime==1.32.0 \\
        numpy==2.4.6 scikit-learn==1.9.1 skl2onnx==1.20.0 onnxscript==0.7.2
    /tmp/venv-models/bin/python scripts/make_models.py            # all four models
    /tmp/venv-models/bin/python scripts/make_models.py --only gpt2_tiny --out /tmp/m

("torch==2.13.0+cpu" is the CPU-only build of torch==2.13.0; plain "torch==2.13.0"
works too but pulls the CUDA packages.)  torch models are exported with the
TorchScript exporter (``torch.onnx.export(..., dynamo=False, opset_version=17)``),
which emits the classic ONNX ops (LayerNormalization, Trilu, Where, Einsum, ...).

Determinism: every random source is seeded, torch runs single-threaded with
deterministic algorithms, and the digits split is ``train_test_split(train_size=1500,
random_state=0, stratify=y)``.  Re-running on the same platform with the pinned
versions reproduces the files byte for byte (the script prints their sha256).

For each model the script prints the op-type histogram and file size, runs
onnx.checker, runs the model in onnxruntime against the sklearn/torch output
(max abs diff printed) and updates ``models/manifest.json`` (machine-readable
summary: inputs/outputs, ops, size, sha256, accuracy, versions).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import importlib.metadata
import json
import os
import sys
from pathlib import Path

import numpy as np

# ---------------------------------------------------------------------------
# Pinned versions (the ones the committed models were generated with).
# ---------------------------------------------------------------------------
PINNED = {
    "numpy": "2.4.6",
    "onnx": "1.23.2",
    "onnxruntime": "1.32.0",
    "scikit-learn": "1.9.1",
    "skl2onnx": "1.20.0",
}
PINNED_TORCH = {
    "torch": "2.13.0",  # installed as torch==2.13.0+cpu (CPU-only build)
    "onnxscript": "0.7.2",  # only needed by torch.onnx's import machinery
}

ONNX_OPSET_SKLEARN = 13  # default domain; ai.onnx.ml at ONNX_ML_OPSET
ONNX_ML_OPSET = 3
ONNX_OPSET_TORCH = 17  # >= 17 so nn.LayerNorm exports as LayerNormalization

SEED = 0
N_TRAIN = 1500

MODELS = ["digits_mlp_sklearn", "digits_cnn", "gpt2_tiny", "llama_tiny", "charlm"]
TORCH_MODELS = {"digits_cnn", "gpt2_tiny", "llama_tiny", "charlm", "gpt2_small",
                "gpt2_small_mini"}

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_versions(need_torch: bool) -> dict[str, str]:
    pins = dict(PINNED)
    if need_torch:
        pins.update(PINNED_TORCH)
    used = {}
    for dist, want in pins.items():
        have = _version(dist)
        used[dist] = have or "missing"
        base = (have or "").split("+")[0]
        if base != want:
            print(f"WARNING: {dist}=={have} but the models were generated with {dist}=={want}; "
                  "the output may differ from the committed files", file=sys.stderr)
    return used


def digits_split():
    """The digits data and the fixed train/test split used by both digits models.

    X: float32 [N, 64], raw pixel intensities 0..16 (no scaling); y: int64 labels.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    X = d.data.astype(np.float32)
    y = d.target.astype(np.int64)
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, train_size=N_TRAIN, random_state=SEED, stratify=y)
    return X_tr, X_te, y_tr, y_te


def op_histogram(model) -> dict[str, int]:
    c = collections.Counter()

    def walk(graph):
        for n in graph.node:
            key = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
            c[key] += 1
            for a in n.attribute:
                if a.g is not None and a.type == a.GRAPH:
                    walk(a.g)
                for g in a.graphs:
                    walk(g)

    walk(model.graph)
    return dict(sorted(c.items()))


def io_desc(model) -> dict:
    import onnx

    def one(v):
        t = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in t.shape.dim]
        return {"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
                "shape": dims}

    inits = {i.name for i in model.graph.initializer}
    return {"inputs": [one(v) for v in model.graph.input if v.name not in inits],
            "outputs": [one(v) for v in model.graph.output]}


def ort_session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def finish(name: str, path: Path, info: dict, versions: dict, manifest: dict) -> None:
    """Check, summarise and record one written model."""
    import onnx

    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    hist = op_histogram(model)
    data = path.read_bytes()
    size = len(data)
    sha = hashlib.sha256(data).hexdigest()
    opsets = {(o.domain or "ai.onnx"): o.version for o in model.opset_import}
    print(f"\n== {name}: {path} ({size} bytes, {size / 1024:.1f} KiB) sha256 {sha[:16]}")
    print(f"   opsets {opsets}")
    print(f"   ops ({sum(hist.values())} nodes): "
          + ", ".join(f"{k}:{v}" for k, v in hist.items()))
    for k, v in info.items():
        print(f"   {k}: {v}")
    entry = {"file": path.name, "size_bytes": size, "sha256": sha, "opsets": opsets,
             "op_histogram": hist, **io_desc(model), **info,
             "versions": {k: v for k, v in versions.items()
                          if name in TORCH_MODELS or k not in PINNED_TORCH}}
    manifest[name] = entry


# ---------------------------------------------------------------------------
# 1. sklearn MLP on digits
# ---------------------------------------------------------------------------
def make_digits_mlp_sklearn(out: Path, versions: dict, manifest: dict) -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.neural_network import MLPClassifier

    X_tr, X_te, y_tr, y_te = digits_split()
    np.savez(out / "digits_test.npz", X=X_te, y=y_te)
    print(f"wrote {out / 'digits_test.npz'}: X {X_te.shape} {X_te.dtype}, y {y_te.shape} "
          f"{y_te.dtype}")

    clf = MLPClassifier(hidden_layer_sizes=(32,), activation="relu", solver="adam",
                        max_iter=1000, random_state=SEED)
    clf.fit(X_tr, y_tr)
    acc_sk = float((clf.predict(X_te) == y_te).mean())

    onx = convert_sklearn(
        clf, name="digits_mlp_sklearn",
        initial_types=[("input", FloatTensorType([1, 64]))],
        target_opset={"": ONNX_OPSET_SKLEARN, "ai.onnx.ml": ONNX_ML_OPSET},
        options={id(clf): {"zipmap": False}},
    )
    onx.doc_string = ("sklearn MLPClassifier(hidden_layer_sizes=(32,), relu) on sklearn digits; "
                      "made by scripts/make_models.py")
    path = out / "digits_mlp_sklearn.onnx"
    path.write_bytes(onx.SerializeToString())

    sess = ort_session(path)
    labels, max_diff = [], 0.0
    proba_sk = clf.predict_proba(X_te)
    for i in range(len(X_te)):
        lab, proba = sess.run(None, {"input": X_te[i:i + 1]})
        labels.append(int(lab[0]))
        max_diff = max(max_diff, float(np.abs(proba - proba_sk[i:i + 1]).max()))
    labels = np.array(labels)
    acc_ort = float((labels == y_te).mean())
    agree = float((labels == clf.predict(X_te)).mean())
    finish("digits_mlp_sklearn", path, {
        "accuracy_heldout_sklearn": round(acc_sk, 4),
        "accuracy_heldout_onnxruntime": round(acc_ort, 4),
        "n_test": int(len(y_te)),
        "label_agreement_sklearn_vs_ort": agree,
        "max_abs_diff_proba_vs_ort": max_diff,
    }, versions, manifest)


# ---------------------------------------------------------------------------
# torch helpers
# ---------------------------------------------------------------------------
def torch_setup():
    import torch

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    return torch


def torch_export(model, args, path: Path, input_names, output_names, dynamic_axes=None):
    import warnings

    import torch

    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, str(path), dynamo=False, opset_version=ONNX_OPSET_TORCH,
                          input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, do_constant_folding=True)


# ---------------------------------------------------------------------------
# 2. small CNN on digits
# ---------------------------------------------------------------------------
def make_digits_cnn(out: Path, versions: dict, manifest: dict) -> None:
    torch = torch_setup()
    from torch import nn

    X_tr, X_te, y_tr, y_te = digits_split()

    class DigitsCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
            self.pool = nn.MaxPool2d(2)
            self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
            self.fc = nn.Linear(16 * 4 * 4, 10)

        def forward(self, x):  # x: float32 [B, 1, 8, 8], pixel values 0..16
            x = self.pool(torch.relu(self.conv1(x)))
            x = torch.relu(self.conv2(x))
            return self.fc(torch.flatten(x, 1))

    torch.manual_seed(SEED)
    model = DigitsCNN()
    xt = torch.from_numpy(X_tr.reshape(-1, 1, 8, 8))
    yt = torch.from_numpy(y_tr)
    xe = torch.from_numpy(X_te.reshape(-1, 1, 8, 8))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(SEED)
    for _epoch in range(40):
        model.train()
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), 50):
            idx = perm[i:i + 50]
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        logits_te = model(xe).numpy()
    acc_torch = float((logits_te.argmax(1) == y_te).mean())

    path = out / "digits_cnn.onnx"
    torch_export(model, (xe[:1],), path, ["input"], ["logits"])

    sess = ort_session(path)
    preds, max_diff = [], 0.0
    for i in range(len(X_te)):
        (lo,) = sess.run(None, {"input": X_te[i].reshape(1, 1, 8, 8)})
        preds.append(int(lo.argmax()))
        max_diff = max(max_diff, float(np.abs(lo - logits_te[i:i + 1]).max()))
    acc_ort = float((np.array(preds) == y_te).mean())
    finish("digits_cnn", path, {
        "accuracy_heldout_torch": round(acc_torch, 4),
        "accuracy_heldout_onnxruntime": round(acc_ort, 4),
        "n_test": int(len(y_te)),
        "max_abs_diff_logits_vs_ort": max_diff,
    }, versions, manifest)


# ---------------------------------------------------------------------------
# toy sequence task for the decoders
# ---------------------------------------------------------------------------
VOCAB, D_MODEL, N_LAYER, CTX = 64, 32, 2, 8


def toy_batch(torch, n: int, g):
    """Arithmetic progressions mod VOCAB: x_t = (a + b*t) % VOCAB, b in 1..4.

    Next token is predictable from the previous two, so a tiny decoder learns it
    and its logits become non-trivial.
    """
    a = torch.randint(0, VOCAB, (n, 1), generator=g)
    b = torch.randint(1, 5, (n, 1), generator=g)
    t = torch.arange(CTX + 1)[None, :]
    seq = (a + b * t) % VOCAB
    return seq[:, :-1], seq[:, 1:]


def train_decoder(torch, model, steps: int = 300):
    g = torch.Generator().manual_seed(SEED + 1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        x, y = toy_batch(torch, 64, g)
        loss = torch.nn.functional.cross_entropy(model(x).reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    # next-token accuracy on positions >= 2 (where the step is determined) of fresh sequences
    gt = torch.Generator().manual_seed(SEED + 2)
    x, y = toy_batch(torch, 512, gt)
    with torch.no_grad():
        logits = model(x)
    loss = float(torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1)))
    acc = float((logits.argmax(-1)[:, 1:] == y[:, 1:]).float().mean())
    return round(loss, 4), round(acc, 4)


def check_decoder(torch, model, path: Path, versions, manifest, name, extra) -> None:
    g = torch.Generator().manual_seed(SEED + 3)
    sess = ort_session(path)
    max_diff = 0.0
    for _ in range(8):
        ids = torch.randint(0, VOCAB, (1, CTX), generator=g)
        with torch.no_grad():
            ref = model(ids).numpy()
        (lo,) = sess.run(None, {"input_ids": ids.numpy()})
        assert lo.shape == (1, CTX, VOCAB), lo.shape
        assert np.isfinite(lo).all()
        max_diff = max(max_diff, float(np.abs(lo - ref).max()))
    finish(name, path, {**extra, "max_abs_diff_logits_vs_ort": max_diff}, versions, manifest)


def fix_seq_dim(path: Path, seq: int = CTX) -> None:
    """Pin a 'seq' dynamic dim (used at export so shape ops stay in the graph) to `seq`."""
    import onnx

    m = onnx.load(str(path))
    for v in list(m.graph.input) + list(m.graph.output):
        for d in v.type.tensor_type.shape.dim:
            if d.HasField("dim_param"):
                d.dim_value = seq
    del m.graph.value_info[:]
    m = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    del m.graph.value_info[:]  # keep the file minimal: the compiler infers shapes itself
    onnx.save(m, str(path))


# ---------------------------------------------------------------------------
# 3. GPT-2-style decoder
# ---------------------------------------------------------------------------
def make_gpt2_tiny(out: Path, versions: dict, manifest: dict) -> None:
    torch = torch_setup()
    from torch import nn

    n_head = 2

    class CausalSelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = nn.Linear(D_MODEL, 3 * D_MODEL)  # fused qkv -> Split
            self.c_proj = nn.Linear(D_MODEL, D_MODEL)

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = self.c_attn(x).split(D_MODEL, dim=2)
            hd = D_MODEL // n_head  # a Python constant: the scale below is a plain Mul
            q = q.view(B, T, n_head, hd).transpose(1, 2)
            k = k.view(B, T, n_head, hd).transpose(1, 2)
            v = v.view(B, T, n_head, hd).transpose(1, 2)
            att = (q @ k.transpose(-2, -1)) * (1.0 / hd ** 0.5)
            mask = torch.tril(torch.ones(T, T, dtype=x.dtype))  # -> Trilu
            att = att.masked_fill(mask == 0, -1e4)  # -> Equal, Where
            att = torch.softmax(att, dim=-1)
            y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
            return self.c_proj(y)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(D_MODEL)
            self.attn = CausalSelfAttention()
            self.ln_2 = nn.LayerNorm(D_MODEL)
            self.mlp = nn.Sequential(nn.Linear(D_MODEL, 4 * D_MODEL), nn.GELU(),  # exact erf GELU
                                     nn.Linear(4 * D_MODEL, D_MODEL))

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT2Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(VOCAB, D_MODEL)
            self.wpe = nn.Embedding(CTX, D_MODEL)
            self.h = nn.ModuleList([Block() for _ in range(N_LAYER)])
            self.ln_f = nn.LayerNorm(D_MODEL)
            self.lm_head = nn.Linear(D_MODEL, VOCAB, bias=False)

        def forward(self, idx):  # idx: int64 [B, T]
            T = idx.shape[1]
            pos = torch.arange(T, dtype=torch.long)
            x = self.wte(idx) + self.wpe(pos)
            for blk in self.h:
                x = blk(x)
            return self.lm_head(self.ln_f(x))

    torch.manual_seed(SEED)
    model = GPT2Tiny()
    loss, acc = train_decoder(torch, model)
    path = out / "gpt2_tiny.onnx"
    ids = torch.zeros(1, CTX, dtype=torch.long)
    # static export: shape arithmetic folds to constants (llama_tiny keeps it in the graph)
    torch_export(model, (ids,), path, ["input_ids"], ["logits"])
    check_decoder(torch, model, path, versions, manifest, "gpt2_tiny", {
        "toy_task": "next token of x_t=(a+b*t)%64, b in 1..4",
        "toy_task_loss": loss, "toy_task_next_token_accuracy_pos_ge_2": acc,
        "n_params": sum(p.numel() for p in model.parameters()),
    })


# ---------------------------------------------------------------------------
# 4. LLaMA-style decoder
# ---------------------------------------------------------------------------
def make_llama_tiny(out: Path, versions: dict, manifest: dict) -> None:
    torch = torch_setup()
    from torch import nn

    n_head = 4
    hd = D_MODEL // n_head
    d_ff = 64
    eps = 1e-5

    class RMSNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(D_MODEL))

        def forward(self, x):  # Pow, ReduceMean, Add, Sqrt, Div/Reciprocal, Mul
            return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * self.weight

    def rotate_half(x):  # Slice, Neg, Concat
        x1 = x[..., : hd // 2]
        x2 = x[..., hd // 2:]
        return torch.cat((-x2, x1), dim=-1)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.wq = nn.Linear(D_MODEL, D_MODEL, bias=False)
            self.wk = nn.Linear(D_MODEL, D_MODEL, bias=False)
            self.wv = nn.Linear(D_MODEL, D_MODEL, bias=False)
            self.wo = nn.Linear(D_MODEL, D_MODEL, bias=False)

        def forward(self, x, cos, sin, mask):
            B, T, _ = x.shape
            q = self.wq(x).view(B, T, n_head, hd).transpose(1, 2)
            k = self.wk(x).view(B, T, n_head, hd).transpose(1, 2)
            v = self.wv(x).view(B, T, n_head, hd).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            scores = torch.einsum("bhqd,bhkd->bhqk", q, k) / hd ** 0.5  # Einsum
            scores = scores + mask
            p = torch.softmax(scores, dim=-1)
            o = torch.einsum("bhqk,bhkd->bhqd", p, v)
            return self.wo(o.transpose(1, 2).reshape(B, T, D_MODEL))

    class MLP(nn.Module):  # SwiGLU
        def __init__(self):
            super().__init__()
            self.w1 = nn.Linear(D_MODEL, d_ff, bias=False)
            self.w3 = nn.Linear(D_MODEL, d_ff, bias=False)
            self.w2 = nn.Linear(d_ff, D_MODEL, bias=False)

        def forward(self, x):
            a = self.w1(x)
            return self.w2(a * torch.sigmoid(a) * self.w3(x))  # SiLU as x*sigmoid(x)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn_norm = RMSNorm()
            self.attn = Attention()
            self.mlp_norm = RMSNorm()
            self.mlp = MLP()

        def forward(self, x, cos, sin, mask):
            x = x + self.attn(self.attn_norm(x), cos, sin, mask)
            return x + self.mlp(self.mlp_norm(x))

    class LlamaTiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(VOCAB, D_MODEL)
            self.layers = nn.ModuleList([Block() for _ in range(N_LAYER)])
            self.norm = RMSNorm()
            self.lm_head = nn.Linear(D_MODEL, VOCAB, bias=False)
            inv_freq = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
            self.register_buffer("inv_freq", inv_freq, persistent=False)

        def forward(self, idx):  # idx: int64 [B, T]
            B, T = idx.shape[0], idx.shape[1]  # -> Shape
            x = self.embed(idx)
            # rotary tables, computed in the graph: Range, Mul, Concat, Cos, Sin, Unsqueeze, Expand
            pos = torch.arange(T, dtype=torch.float32)
            freqs = pos[:, None] * self.inv_freq[None, :]
            emb = torch.cat((freqs, freqs), dim=-1)
            cos = emb.cos()[None, None].expand(B, n_head, T, hd)
            sin = emb.sin()[None, None].expand(B, n_head, T, hd)
            # additive causal mask: 0 on/below the diagonal, -1e4 above -> Trilu
            mask = torch.triu(torch.full((T, T), -1e4), diagonal=1)[None, None]
            for layer in self.layers:
                x = layer(x, cos, sin, mask)
            return self.lm_head(self.norm(x))

    torch.manual_seed(SEED)
    model = LlamaTiny()
    loss, acc = train_decoder(torch, model)
    path = out / "llama_tiny.onnx"
    ids = torch.zeros(1, CTX, dtype=torch.long)
    # exported with a dynamic sequence axis so that Shape/Range/ConstantOfShape/Expand stay
    # in the graph, then the input/output dims are pinned to [1, 8] (fix_seq_dim)
    torch_export(model, (ids,), path, ["input_ids"], ["logits"],
                 dynamic_axes={"input_ids": {1: "seq"}, "logits": {1: "seq"}})
    fix_seq_dim(path)
    check_decoder(torch, model, path, versions, manifest, "llama_tiny", {
        "toy_task": "next token of x_t=(a+b*t)%64, b in 1..4",
        "toy_task_loss": loss, "toy_task_next_token_accuracy_pos_ge_2": acc,
        "n_params": sum(p.numel() for p in model.parameters()),
    })


# ---------------------------------------------------------------------------
# 5. a small character-level GPT trained on text that ships with Python
# ---------------------------------------------------------------------------
CHARLM_CTX = 32
CHARLM_SOURCES = [  # stdlib files whose docstrings (with LICENSE.txt) make the corpus
    "argparse.py", "collections/__init__.py", "functools.py", "inspect.py", "json/__init__.py",
    "logging/__init__.py", "os.py", "pathlib.py", "subprocess.py", "threading.py", "typing.py",
    "unittest/case.py", "textwrap.py", "string.py", "random.py", "statistics.py", "shutil.py",
    "tarfile.py", "zipfile.py", "tempfile.py", "enum.py", "dataclasses.py", "contextlib.py",
    "heapq.py", "bisect.py", "difflib.py", "fractions.py", "decimal.py", "_pydecimal.py",
    "calendar.py", "configparser.py", "csv.py", "pprint.py", "queue.py", "sched.py",
]


def charlm_corpus() -> str:
    """Python's LICENSE.txt, then every docstring of CHARLM_SOURCES in file order (ast),
    each paragraph-joined; characters outside printable ASCII and newline become '?'."""
    import ast

    lib = Path(sys.base_prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    parts = [(lib / "LICENSE.txt").read_text(encoding="utf-8")]
    for rel in CHARLM_SOURCES:
        tree = ast.parse((lib / rel).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                 ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 40:
                    parts.append(doc.strip() + "\n")
    text = "\n".join(parts)
    return "".join(c if (32 <= ord(c) < 127 or c == "\n") else "?" for c in text)


def make_charlm(out: Path, versions: dict, manifest: dict) -> None:
    """nanoGPT-style char-level GPT: vocab = the corpus's characters, d 96, 3 layers, 4 heads,
    context 32, causal mask by masked_fill(-inf) (the usual idiom); trained on the first 90%
    of the corpus, the last 10% held out (windows in charlm_heldout.npz)."""
    torch = torch_setup()
    from torch import nn

    text = charlm_corpus()
    vocab = sorted(set(text))
    V, T, D, L, H = len(vocab), CHARLM_CTX, 96, 3, 4
    stoi = {c: i for i, c in enumerate(vocab)}
    data = np.array([stoi[c] for c in text], np.int64)
    split = int(len(data) * 0.9)
    train, held = data[:split], data[split:]

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
            self.qkv, self.proj = nn.Linear(D, 3 * D), nn.Linear(D, D)
            self.fc, self.out = nn.Linear(D, 4 * D), nn.Linear(4 * D, D)
            self.register_buffer("tril", torch.tril(torch.ones(T, T)).view(1, 1, T, T))

        def forward(self, x):
            B, t, _ = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(D, dim=2)
            q, k, v = (z.view(B, t, H, D // H).transpose(1, 2) for z in (q, k, v))
            att = (q @ k.transpose(-2, -1)) * (1.0 / (D // H) ** 0.5)
            att = att.masked_fill(self.tril[:, :, :t, :t] == 0, float("-inf"))
            y = torch.softmax(att, dim=-1) @ v
            x = x + self.proj(y.transpose(1, 2).contiguous().view(B, t, D))
            return x + self.out(nn.functional.gelu(self.fc(self.ln2(x))))

    class CharGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(V, D), nn.Embedding(T, D)
            self.blocks = nn.ModuleList(Block() for _ in range(L))
            self.ln_f, self.head = nn.LayerNorm(D), nn.Linear(D, V, bias=False)

        def forward(self, idx):  # idx: int64 [B, T]
            t = idx.shape[1]
            x = self.wte(idx) + self.wpe(torch.arange(t))
            for b in self.blocks:
                x = b(x)
            return self.head(self.ln_f(x))

    torch.manual_seed(SEED)
    model = CharGPT()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    g = np.random.default_rng(SEED)
    steps, batch = 2500, 32
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    tr = torch.from_numpy(train)
    for step in range(steps):
        ix = torch.from_numpy(g.integers(0, len(train) - T - 1, batch))
        xb = torch.stack([tr[i:i + T] for i in ix])
        yb = torch.stack([tr[i + 1:i + T + 1] for i in ix])
        loss = nn.functional.cross_entropy(model(xb).reshape(-1, V), yb.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 500 == 0:
            print(f"   charlm step {step}: loss {loss.item():.3f}")
    model.eval()
    n_win = (len(held) - 1) // T
    X = np.stack([held[i * T:(i + 1) * T] for i in range(n_win)])
    Y = np.stack([held[i * T + 1:(i + 1) * T + 1] for i in range(n_win)])
    cal = np.stack([train[i:i + T] for i in g.integers(0, len(train) - T, 64)])
    with torch.no_grad():
        pred = model(torch.from_numpy(X)).argmax(-1).numpy()
        hl = nn.functional.cross_entropy(model(torch.from_numpy(X)).reshape(-1, V),
                                         torch.from_numpy(Y).reshape(-1)).item()
    acc = float((pred == Y).mean())
    np.savez(out / "charlm_heldout.npz", X=X.astype(np.uint8), Y=Y.astype(np.uint8),
             calib=cal.astype(np.uint8), vocab=np.array(["".join(vocab)]))
    path = out / "charlm.onnx"
    torch_export(model, (torch.zeros(1, T, dtype=torch.long),), path, ["input_ids"], ["logits"])
    sess = ort_session(path)
    with torch.no_grad():
        want = model(torch.from_numpy(X[:8])).numpy()
    got = np.concatenate([sess.run(None, {"input_ids": X[i:i + 1]})[0] for i in range(8)])
    finish("charlm", path, {
        "corpus": "LICENSE.txt + docstrings of CHARLM_SOURCES (Python "
                  f"{sys.version_info[0]}.{sys.version_info[1]}), {len(text)} chars",
        "vocab": V, "context": T, "d_model": D, "layers": L, "heads": H,
        "n_params": sum(p.numel() for p in model.parameters()),
        "train_steps": steps, "final_train_loss": round(loss.item(), 4),
        "heldout_positions": int(Y.size), "heldout_loss": round(hl, 4),
        "heldout_next_char_accuracy": round(acc, 4),
        "max_abs_logit_diff_torch_vs_onnxruntime": float(np.abs(want - got).max()),
    }, versions, manifest)


# ---------------------------------------------------------------------------
# 6. GPT-2 small (real size, random weights): built for the bench, never committed
# ---------------------------------------------------------------------------
# name -> (layers, d_model, heads, vocab); the context is --ctx (GPT2_CTX by default).
GPT2_CONFIGS = {
    "gpt2_small": (12, 768, 12, 50257),  # 124M parameters (lm_head tied to wte)
    "gpt2_small_mini": (2, 768, 12, 50257),  # the same vocabulary and width, 2 layers
}
# 128 positions: a full fixed-context forward is ~16 GMAC (2e11 VM steps), a few seconds
# natively on one core; GPT-2's own 1024 would be ~10x that for nothing the bench learns.
GPT2_CTX = 128


def gpt2_module(torch, layers: int, d: int, heads: int, vocab: int, ctx: int):
    """GPT-2 (Radford et al. 2019; the HF GPT2LMHeadModel layout): pre-LN blocks, fused
    qkv, causal mask by -1e4 as the original, erf GELU, lm_head tied to the token table;
    weights initialised as GPT-2 does (N(0, 0.02), residual projections / sqrt(2 L))."""
    from torch import nn

    hd = d // heads

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = nn.Linear(d, 3 * d)
            self.c_proj = nn.Linear(d, d)
            self.register_buffer("bias", torch.tril(torch.ones(ctx, ctx)), persistent=False)

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = self.c_attn(x).split(d, dim=2)
            q = q.view(B, T, heads, hd).transpose(1, 2)
            k = k.view(B, T, heads, hd).transpose(1, 2)
            v = v.view(B, T, heads, hd).transpose(1, 2)
            att = (q @ k.transpose(-2, -1)) * (1.0 / hd ** 0.5)
            att = att.masked_fill(self.bias[:T, :T] == 0, -1e4)
            y = torch.softmax(att, dim=-1) @ v
            return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(d)
            self.attn = Attention()
            self.ln_2 = nn.LayerNorm(d)
            self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT2(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(vocab, d)
            self.wpe = nn.Embedding(ctx, d)
            self.h = nn.ModuleList([Block() for _ in range(layers)])
            self.ln_f = nn.LayerNorm(d)
            self.lm_head = nn.Linear(d, vocab, bias=False)
            self.lm_head.weight = self.wte.weight  # tied, as GPT-2
            for name, p in self.named_parameters():
                if name.endswith("bias"):
                    nn.init.zeros_(p)
                elif ".ln_" in name or name.startswith("ln_"):
                    nn.init.ones_(p)
                else:
                    std = 0.02 / (2 * layers) ** 0.5 if name.endswith("c_proj.weight") or \
                        name.endswith("mlp.2.weight") else 0.02
                    nn.init.normal_(p, 0.0, std)

        def forward(self, idx):  # idx: int64 [B, T]
            pos = torch.arange(idx.shape[1], dtype=torch.long)
            x = self.wte(idx) + self.wpe(pos)
            for blk in self.h:
                x = blk(x)
            return self.lm_head(self.ln_f(x))

    return GPT2()


def make_gpt2(name: str, out: Path, versions: dict, manifest: dict, ctx: int) -> None:
    import time

    torch = torch_setup()
    layers, d, heads, vocab = GPT2_CONFIGS[name]
    torch.manual_seed(SEED)
    model = gpt2_module(torch, layers, d, heads, vocab, ctx).eval()
    path = out / f"{name}.onnx"
    ids = torch.zeros(1, ctx, dtype=torch.long)
    t = time.perf_counter()
    torch_export(model, (ids,), path, ["input_ids"], ["logits"])  # static, as gpt2_tiny
    print(f"exported {path} in {time.perf_counter() - t:.1f} s")
    g = torch.Generator().manual_seed(SEED + 3)
    ids = torch.randint(0, vocab, (1, ctx), generator=g)
    with torch.no_grad():
        ref = model(ids).numpy()
    (lo,) = ort_session(path).run(None, {"input_ids": ids.numpy()})
    assert lo.shape == (1, ctx, vocab), lo.shape
    finish(name, path, {
        "vocab": vocab, "context": ctx, "d_model": d, "layers": layers, "heads": heads,
        "n_params": sum(p.numel() for p in model.parameters()),
        "weights": "random, seeded (GPT-2 init), lm_head tied to wte",
        "max_abs_diff_logits_vs_ort": float(np.abs(lo - ref).max()),
    }, versions, manifest)


BUILDERS = {
    "digits_mlp_sklearn": make_digits_mlp_sklearn,
    "digits_cnn": make_digits_cnn,
    "gpt2_tiny": make_gpt2_tiny,
    "llama_tiny": make_llama_tiny,
    "charlm": make_charlm,
}
BIG = set(GPT2_CONFIGS)  # never written into models/ nor its manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", action="append", choices=MODELS + list(GPT2_CONFIGS),
                    help="build only this model (repeatable); default: all")
    ap.add_argument("--out", default=str(ROOT / "models"), help="output folder (default models/)")
    ap.add_argument("--ctx", type=int, default=GPT2_CTX,
                    help=f"context of the gpt2_small models (default {GPT2_CTX})")
    args = ap.parse_args(argv)
    names = args.only or MODELS
    out = Path(args.out)
    if BIG & set(names) and out.resolve() == (ROOT / "models").resolve():
        ap.error(f"{', '.join(sorted(BIG & set(names)))}: too big to commit; "
                 "give --out another folder (bench/bench_gpt2.py uses /tmp/opmlc-gpt2)")
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    need_torch = any(n in TORCH_MODELS for n in names)
    if need_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("torch is not installed in this interpreter; use the separate venv described "
                  "in the docstring, or --only digits_mlp_sklearn", file=sys.stderr)
            return 2
    versions = check_versions(need_torch)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    for name in names:
        if name in GPT2_CONFIGS:
            make_gpt2(name, out, versions, manifest, args.ctx)
        else:
            BUILDERS[name](out, versions, manifest)
        manifest = {k: manifest[k] for k in [*MODELS, *GPT2_CONFIGS] if k in manifest}
        manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    print(f"\nwrote {manifest_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
