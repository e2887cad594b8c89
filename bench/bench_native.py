"""Native kernels vs onnxruntime, side by side in one process (issue 10's table).

    .venv/bin/python bench/bench_native.py [--repeat N] [--models a,b] [--schemes int8,fixed]
        [--threads 1,2] [--no-profile]

Per model, on the same random inputs (a seeded standard normal batch of --calib samples,
which also calibrates both quantizers; the timed input is the first sample):

* onnxruntime float32, and onnxruntime int8: the same model quantized by
  ``onnxruntime.quantization.quantize_static`` (QDQ, per-channel s8 weights, u8
  activations) calibrated on those samples;
* opmlc native under each scheme (``int8``, ``fixed``, and ``fixed16``: the fixed scheme
  with i16 activations, ``--act-dtype i16``): plain (no root), ``commit=True`` (the final
  state root) and ``trace=True`` (S0 and every node root);

each at 1 and 2 threads (``intra_op_num_threads`` / ``native.set_threads``), the median
of --repeat runs (>= 11) after two warm-up runs: onnxruntime's back to back, a scheme's
plain, +root and +trace round-robin (their ratios see the same load on a shared host),
with the process CPU time of those beside the wall time; then the compile and JIT
times (cold, cached). Then, for the --profile models (default ResNet-50-light) under
int8, a per-op profile with the achieved GMAC/s per core of the contractions against the
VNNI peak measured on this host (a loop of independent vpdpbusd, 64 MACs each).
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

from opmlc import api
from opmlc_runtime import native

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from light_models import LIGHT, randomize_light  # noqa: E402

MODELS = {
    "resnet50-light": "light_resnet50",
    "squeezenet-light": "light_squeezenet",
    "vgg19-light": "light_vgg19",
    "densenet121-light": "light_densenet121",
    "shufflenet-light": "light_shufflenet",
    "digits_cnn": ROOT / "models" / "digits_cnn.onnx",
}


SCHEMES = {"int8": {"scheme": "int8"}, "fixed": {"scheme": "fixed"},
           "fixed16": {"scheme": "fixed", "act_dtype": "i16"}}  # --schemes: compile options


def load_model(name: str) -> onnx.ModelProto:
    src = MODELS[name]
    if isinstance(src, Path):
        return onnx.load(str(src))
    return randomize_light(LIGHT / f"{src}.onnx")


def real_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def samples(model: onnx.ModelProto, n: int) -> dict[str, np.ndarray]:
    """n seeded standard-normal samples per float input, stacked on a new leading axis."""
    rng = np.random.default_rng(0)
    out = {}
    for i in real_inputs(model):
        shape = [d.dim_value or 1 for d in i.type.tensor_type.shape.dim]
        out[i.name] = rng.standard_normal([n, *shape]).astype(np.float32)
    return out


def ort_session(model: onnx.ModelProto | str, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    src = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def ort_int8(model: onnx.ModelProto, calib: dict[str, np.ndarray], tmp: Path) -> str:
    """The model quantized by onnxruntime (QDQ, per-channel s8 weights, u8 activations:
    the U8S8 form onnxruntime recommends on x86), calibrated on ``calib``; the path of
    the quantized file."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if model.opset_import[0].version < 13:  # the quantizer wants opset >= 10
        from onnx import version_converter

        model = version_converter.convert_version(model, 13)
    src, dst = tmp / "f32.onnx", tmp / "int8.onnx"
    onnx.save(model, str(src))
    n = len(next(iter(calib.values())))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{k: v[i] for k, v in calib.items()} for i in range(n)])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    return str(dst)


def macs(m: api.Model) -> list[int]:
    """Multiply-accumulates of every node (contractions; 0 for the rest)."""
    g = m.ref_graph()
    out = []
    for n in g.nodes:
        y = g.types[n.outputs[0]].shape
        if n.op in ("q.conv", "q.conv_rq", "q.conv_rq_add"):
            w = g.types[n.inputs[1]].shape
            out.append(int(np.prod(y)) * int(np.prod(w[1:])))
        elif n.op in ("q.matmul", "q.matmul_rq"):
            out.append(int(np.prod(y)) * int(g.types[n.inputs[0]].shape[-1]))
        else:
            out.append(0)
    return out


def vnni_peak_gmacs() -> float | None:
    """GMAC/s of one core running independent vpdpbusd (16 accumulators, 64 MACs each)."""
    if not native.vnni():
        return None
    import llvmlite.binding as llvm

    body = "\n".join(
        f"  %a{j}n = call <16 x i32> @opmlc_dpbusd16(<16 x i32> %a{j}, <64 x i8> %x, "
        f"<64 x i8> %y{j % 2})" for j in range(16))
    phis = "\n".join(f"  %a{j} = phi <16 x i32> [ zeroinitializer, %entry ], [ %a{j}n, %loop ]"
                     for j in range(16))
    acc = " ".join(f"%s{j} = add <16 x i32> %s{j - 1}, %a{j}n\n" if j else "" for j in range(16))
    acc = acc.replace("%s0", "%a0n")
    ir = "\n".join([
        native.DPBUSD_DECL,
        "define void @peak(ptr %o, ptr %p, i64 %n) {",
        "entry:",
        "  %x = load <64 x i8>, ptr %p, align 1",
        "  %yp = getelementptr i8, ptr %p, i64 64",
        "  %y0 = load <64 x i8>, ptr %yp, align 1",
        "  %y1 = xor <64 x i8> %y0, %x",
        "  br label %loop",
        "loop:",
        "  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]",
        phis, body,
        "  %i1 = add i64 %i, 1",
        "  %c = icmp slt i64 %i1, %n",
        "  br i1 %c, label %loop, label %done",
        "done:",
        "  " + acc.strip().replace("\n ", "\n  "),
        "  store <16 x i32> %s15, ptr %o, align 1",
        "  ret void",
        "}"])
    mod = native.NativeModule.__new__(native.NativeModule)  # only for _init
    del mod
    native._init()  # noqa: SLF001
    target = llvm.Target.from_default_triple()
    tm = target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                      features=llvm.get_host_cpu_features().flatten(), opt=3)
    m = llvm.parse_assembly(native.with_primitives(ir, True))
    pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=3))
    pb.getModulePassManager().run(m, pb)
    eng = llvm.create_mcjit_compiler(m, tm)
    eng.finalize_object()
    fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)(
        eng.get_function_address("peak"))
    buf = np.arange(256, dtype=np.uint8)
    out = np.zeros(16, np.int32)
    n = 2_000_000
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        fn(out.ctypes.data, buf.ctypes.data, n)
        best = min(best, time.perf_counter() - t)
    return n * 16 * 64 / best / 1e9


def bench_model(name: str, schemes: list[str], threads: list[int], repeat: int,
                ncalib: int) -> tuple[dict, dict]:
    """Times of every configuration of one model: two warm-up runs, then ``repeat`` runs
    back to back (each engine in its steady state), a pause between configurations.
    (Interleaving the configurations run by run was tried: it slowed onnxruntime's float32
    run by up to 1.8x, cold caches and clocks after each switch, so it is not used.)"""
    model = load_model(name)
    calib = samples(model, ncalib)
    x = {k: v[0] for k, v in calib.items()}
    r: dict = {}
    ort_runs: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            q = ort_int8(model, calib, Path(tmp))
        except Exception as e:  # noqa: BLE001 - report and go on
            print(f"  {name}: onnxruntime int8 failed: {type(e).__name__}: {e}")
            q = None
        for th in threads:
            s = ort_session(model, th)
            ort_runs[("ort f32", th)] = lambda s=s: s.run(None, x)
            if q is not None:
                s8 = ort_session(q, th)
                ort_runs[("ort int8", th)] = lambda s=s8: s.run(None, x)
    kept = {}
    for scheme in schemes:
        t = time.perf_counter()
        try:
            m = api.Model(api.compile(model, calibration=calib, **SCHEMES[scheme]))
        except Exception as e:  # noqa: BLE001 - report and go on
            print(f"  {name}: opmlc {scheme} failed: {type(e).__name__}: {e}")
            continue
        r[(scheme, "compile")] = time.perf_counter() - t
        prog = m.program
        os.environ["OPMLC_JIT_CACHE"] = "0"
        t = time.perf_counter()
        native.NativeModule(prog.art.llvm_ir, len(prog.nodes))
        r[(scheme, "jit")] = time.perf_counter() - t
        del os.environ["OPMLC_JIT_CACHE"]
        native.NativeModule(prog.art.llvm_ir, len(prog.nodes))  # fill the cache
        t = time.perf_counter()
        prog.native()
        r[(scheme, "jit cached")] = time.perf_counter() - t
        xi = m.encode_inputs(x, saturate=True)
        prog.run(xi, "native", trace=True)  # the first root builds the image's tree
        kept[scheme] = (m, xi)
    for th in threads:
        native.set_threads(th)
        runs = {k: f for k, f in ort_runs.items() if k[1] == th}
        for scheme, (m, xi) in kept.items():
            for label, kw in (("", {}), (" +root", {"commit": True}),
                              (" +trace", {"trace": True})):
                runs[(scheme + label, th)] = (
                    lambda p=m.program, xi=xi, kw=kw: p.run(xi, "native", **kw))
        times: dict = {k: [] for k in runs}
        cpu: dict = {k: [] for k in runs}
        # onnxruntime in blocks; a scheme's plain, +root and +trace runs round-robin, so
        # their ratios (the commitment's cost) see the same load on a shared host
        groups = [[k] for k in runs if k[0] in ("ort f32", "ort int8")]
        groups += [[(s + label, th) for label in ("", " +root", " +trace")] for s in kept]
        for group in groups:
            time.sleep(0.2)  # onnxruntime's pool threads spin a while after its runs
            for rnd in range(repeat + 2):
                for k in group:
                    c, t = time.process_time(), time.perf_counter()
                    runs[k]()
                    if rnd >= 2:  # two warm-up rounds
                        times[k].append(time.perf_counter() - t)
                        cpu[k].append(time.process_time() - c)
        for k, ts in times.items():
            r[k] = 1000 * statistics.median(ts)
            r[(*k, "cpu")] = 1000 * statistics.median(cpu[k])
    native.set_threads(None)
    return r, kept


def profile(name: str, m: api.Model, xi: dict, threads: int, peak: float | None) -> None:
    prog = m.program
    native.set_threads(threads)
    runs = [prog.profile_native(xi) for _ in range(7)]
    native.set_threads(None)
    per = [statistics.median(ts) for ts in zip(*runs, strict=True)]
    mac = macs(m)
    by, cnt, bym = collections.Counter(), collections.Counter(), collections.Counter()
    for n, t, k in zip(prog.nodes, per, mac, strict=True):
        by[n["op"]] += t
        cnt[n["op"]] += 1
        bym[n["op"]] += k
    tot = sum(per)
    pk = f"{peak:.0f} GMAC/s per core (measured vpdpbusd loop)" if peak else "no VNNI"
    print(f"\n{name} int8 native profile ({threads} thread(s), sum of node medians "
          f"{1000 * tot:.1f} ms; {sum(mac) / 1e9:.2f} GMAC; VNNI peak {pk}):")
    print(f"  {'op':<14} {'nodes':>5} {'ms':>8} {'%':>6} {'GMAC':>7} {'GMAC/s/core':>11} "
          f"{'% of peak':>9}")
    for o, t in by.most_common():
        g = bym[o] / 1e9
        rate = g / t / threads if g else 0
        share = f"{100 * rate / peak:8.1f}%" if g and peak else ""
        print(f"  {o:<14} {cnt[o]:5} {1000 * t:8.2f} {100 * t / tot:6.1f} {g:7.3f} "
              f"{rate:11.1f} {share:>9}")
    convs = [(t, k, n) for t, k, n in zip(per, mac, prog.nodes, strict=True) if k]
    worst = sorted(convs, key=lambda c: c[1] / c[0])[:5]
    print("  slowest contractions (GMAC/s per core): " + ", ".join(
        f"{n['name']} {k / t / threads / 1e9:.0f}" for t, k, n in worst))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--schemes", default="int8,fixed,fixed16")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--calib", type=int, default=8, help="calibration samples")
    ap.add_argument("--profile", default="resnet50-light",
                    help="models whose int8 run gets a per-op profile (comma-separated)")
    ap.add_argument("--no-profile", action="store_true")
    args = ap.parse_args()
    import logging

    import onnxruntime as ort

    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's pre-processing advice
    ort.set_default_logger_severity(3)  # and its sessions' unused-initializer warnings
    schemes = args.schemes.split(",")
    threads = [int(t) for t in args.threads.split(",")]
    cols = [("ort f32", "ort f32"), ("ort int8", "ort int8")]
    for s in schemes:
        cols += [(s, s), (s + " +root", "+root"), (s + " +trace", "+trace")]
    print(f"median of {args.repeat} runs after 2 warm-ups, ms; load: "
          f"{os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} on {os.cpu_count()} CPUs; "
          f"VNNI: {native.vnni()}")
    head = f"{'model':<18} {'thr':>3} | " + " ".join(f"{c[1]:>9}" for c in cols)
    head += " | " + " ".join(f"{s + '/f32':>10} {s + '/i8':>9}" for s in schemes)
    head += " | " + " ".join(f"{'root ' + s:>10} {'trace ' + s:>11}" for s in schemes)
    print(head)
    kept = {}
    for name in args.models.split(","):
        r, k = bench_model(name, schemes, threads, args.repeat, args.calib)
        kept[name] = k
        for th in threads:
            line = f"{name:<18} {th:>3} | " + " ".join(
                f"{r.get((c[0], th), float('nan')):9.2f}" for c in cols)
            g = lambda k, r=r: r.get(k, float("nan"))  # noqa: E731
            line += " | " + " ".join(
                f"{g((s, th)) / g(('ort f32', th)):10.2f} "
                f"{g((s, th)) / g(('ort int8', th)):9.2f}" for s in schemes)
            line += " | " + " ".join(
                f"{100 * (g((s + ' +root', th)) / g((s, th)) - 1):+9.0f}% "
                f"{100 * (g((s + ' +trace', th)) / g((s, th)) - 1):+10.0f}%" for s in schemes)
            print(line, flush=True)
            c = lambda k, r=r, th=th: r.get((k, th, "cpu"), float("nan"))  # noqa: E731
            print(f"{'':<18} {th:>3}   process CPU ms (all threads, spinning included): "
                  + "; ".join(f"{s} {c(s):.1f}, +root {c(s + ' +root') - c(s):+.1f} "
                              f"({100 * (c(s + ' +root') / c(s) - 1):+.0f}%), +trace "
                              f"{c(s + ' +trace') - c(s):+.1f} "
                              f"({100 * (c(s + ' +trace') / c(s) - 1):+.0f}%)"
                              for s in schemes), flush=True)
        print(f"{'':<18}     compile / cold JIT / cached JIT, s: " + "; ".join(
            f"{s} {r[(s, 'compile')]:.2f} / {r[(s, 'jit')]:.2f} / {r[(s, 'jit cached')]:.2f}"
            for s in schemes if (s, "compile") in r), flush=True)
    wanted = [] if args.no_profile else [
        n for n in args.profile.split(",") if "int8" in kept.get(n, {})]
    peak = vnni_peak_gmacs() if wanted else None
    for name in wanted:
        m, xi = kept[name]["int8"]
        for th in threads:
            profile(name, m, xi, th, peak)


if __name__ == "__main__":
    main()
