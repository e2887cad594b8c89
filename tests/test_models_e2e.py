"""Whole models, compiled: integer reference == native == VM for every tensor and root.

Every node output is read out of memory at that node's boundary (``capture=True``; the
reference replays its values into the memory plan, ``Program.replay``) and compared byte
for byte; the final state root of the reference replay equals the engines', and with
``commit`` the node roots of native and VM are identical.

The nine light models of the onnx package (``onnx/backend/test/data/light``) have
constant-filled weights; they get seeded random weights here (as in test_frontend.py)
so that equality means something. Figures on the 2-core dev machine (fixed scheme,
n_synth=1; compile = import + quantize, then the back end; native = JIT, then one run;
the JIT grew with the tiled / exact-float conv kernels, the runs shrank):

    model          nodes  VM steps  quantize  back end   JIT    native run
    bvlc_alexnet      42  2.3e10      7.0 s    0.9 s    1.3 s    0.5 s
    densenet121      768  9.6e10      2.0 s    0.5 s   21.9 s    0.3 s
    inception_v1     229  5.8e10      0.5 s    0.2 s   11.2 s    0.1 s
    inception_v2     396  8.1e10      1.3 s    0.4 s   15.0 s    0.1 s
    resnet50         178  1.4e11      1.0 s    0.5 s    8.5 s    0.2 s
    shufflenet       209  3.4e9       0.1 s    0.2 s    7.1 s   <0.1 s
    squeezenet        95  1.2e10      0.1 s    0.1 s    4.3 s   <0.1 s
    vgg19             63  8.7e11     20.2 s    2.0 s    2.7 s    1.6 s
    zfnet512          42  4.5e10      6.2 s    1.1 s    1.2 s    0.7 s

The VM (the Python reference stepper, ~2e5 steps/s) runs the digits MLP (fast set), the
digits CNN and the two tiny decoders (slow set); the light models' 1e10+ steps are
native-only.
"""

from __future__ import annotations

import glob
import os
import time
from pathlib import Path

import numpy as np
import pytest
from backend_util import assert_same_run
from light_models import LIGHT, randomize_light

from opmlc import api
from opmlc_runtime.edge import EdgeWarning

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
LIGHT_NAMES = sorted(Path(p).stem[len("light_"):] for p in glob.glob(str(LIGHT / "*.onnx")))


def model_inputs(m: api.Model, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for s in m.program.inputs:
        if s["quant"]:
            out[s["name"]] = rng.standard_normal(s["shape"]).astype(np.float32)
        else:
            out[s["name"]] = rng.integers(0, 8, s["shape"]).astype(np.int64)
    return out


# ---------------------------------------------------------------- small models, three engines


def test_digits_mlp_every_tensor_three_engines() -> None:
    m = api.Model(api.compile(MODELS / "digits_mlp_sklearn.onnx"))
    x = model_inputs(m)
    ref = m.run(x, "ref", trace=True, capture=True)
    nat = m.run(x, "native", trace=True, capture=True)
    vm = m.run(x, "vm", trace=True, capture=True)
    assert len(ref.tensors) == sum(len(n["outputs"]) for n in m.meta["nodes"])
    assert len(ref.node_roots) == len(m.meta["nodes"])
    assert_same_run(m, ref, nat)
    assert_same_run(m, ref, vm)
    assert nat.initial_root == vm.initial_root == ref.initial_root


@pytest.mark.slow
@pytest.mark.parametrize("name", ["digits_cnn", "gpt2_tiny", "llama_tiny"])
def test_model_every_tensor_three_engines(name: str) -> None:
    """The VM on models of 1e6 - 2.4e6 steps (5 - 13 s each on the reference stepper)."""
    m = api.Model(api.compile(MODELS / f"{name}.onnx"))
    x = model_inputs(m)
    ref = m.run(x, "ref", trace=True, capture=True)
    assert_same_run(m, ref, m.run(x, "native", trace=True, capture=True))
    assert_same_run(m, ref, m.run(x, "vm", trace=True, capture=True))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["digits_mlp_sklearn", "digits_cnn"])
def test_digits_int8_native_vm(name: str) -> None:
    m = api.Model(api.compile(MODELS / f"{name}.onnx", scheme="int8"))
    x = model_inputs(m, 3)  # normal samples: a few past the calibrated int8 range, clamped
    with pytest.warns(EdgeWarning):
        ref = m.run(x, "ref", trace=True, capture=True, saturate=True)
    for engine in ("native", "vm"):
        with pytest.warns(EdgeWarning):
            res = m.run(x, engine, trace=True, capture=True, saturate=True)
        assert_same_run(m, ref, res)


def test_digits_accuracy_through_native() -> None:
    """The compiled MLP classifies the held-out digits as the float model does."""
    m = api.Model(api.compile(MODELS / "digits_mlp_sklearn.onnx"))
    data = np.load(MODELS / "digits_test.npz")
    xs, ys = data["X"][:60], data["y"][:60]
    hits = 0
    for xi, yi in zip(xs, ys, strict=True):
        out = m.dequantize(m.run({"input": xi.reshape(1, 64)}, "native").outputs)
        hits += int(np.argmax(out["probabilities"]) == yi)
    assert hits >= 55


# ---------------------------------------------------------------- the nine light models


def _light_case(name: str, scheme: str) -> tuple[api.Model, dict[str, np.ndarray], dict]:
    from opmlc.frontend import import_onnx
    from opmlc.quantize import quantize

    t0 = time.perf_counter()
    g = import_onnx(randomize_light(LIGHT / f"light_{name}.onnx"))
    # "fixed16": the fixed scheme with i16 activations (--act-dtype i16)
    qm = quantize(g, scheme.removesuffix("16"), n_synth=1,
                  fixed_act="i16" if scheme == "fixed16" else "i32")
    t1 = time.perf_counter()
    m = api.Model(api.compile(qm))
    t2 = time.perf_counter()
    m.program.native()
    t3 = time.perf_counter()
    x = {g.inputs[0]: np.random.default_rng(1).standard_normal(
        g.types[g.inputs[0]].shape).astype(np.float32)}
    return m, x, {"quantize": t1 - t0, "backend": t2 - t1, "jit": t3 - t2}


# (model, scheme): the fixed scheme on all nine, int8 and fixed16 on three
LIGHT_CASES = [(n, "fixed") for n in LIGHT_NAMES] + [
    ("squeezenet", "int8"), ("resnet50", "int8"), ("shufflenet", "int8"),
    ("squeezenet", "fixed16"), ("resnet50", "fixed16"), ("shufflenet", "fixed16")]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "scheme"), LIGHT_CASES, ids=[f"{n}-{s}" for n, s in LIGHT_CASES])
def test_light_model_native_equals_ref(name: str, scheme: str) -> None:
    """Native == the exact integer reference for every tensor and the final state root."""
    m, x, times = _light_case(name, scheme)
    t0 = time.perf_counter()
    nat = m.run(x, "native", capture=True)
    times["native"] = time.perf_counter() - t0
    ref = m.run(x, "ref", capture=True)
    assert_same_run(m, ref, nat)
    out = m.dequantize(nat.outputs)
    assert all(np.isfinite(v).all() for v in out.values())
    print(f"\n{name} {scheme}: {len(m.meta['nodes'])} nodes, {m.meta['total_steps']:.3g} "
          "steps; " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
    # the back end itself stays fast (quantization dominates compile time)
    assert times["backend"] < 30


def test_light_model_list() -> None:
    assert len(LIGHT_NAMES) == 9, LIGHT_NAMES
    assert os.path.exists(LIGHT / "light_squeezenet.onnx")
