"""A corpus of bad inputs fed to every subcommand: exactly one line on stderr, a non-zero
exit, no traceback and no internal error (issue 12)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from opmlc import api
from opmlc.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parent.parent
MLP = ROOT / "models" / "digits_mlp_sklearn.onnx"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("corpus")
    f = {"dir": d, "missing": d / "missing.onnx"}

    def put(name: str, data: bytes) -> None:
        f[name] = d / name
        f[name].write_bytes(data)

    put("empty.onnx", b"")
    put("garbage.onnx", b"\x08\x07garbage" * 10)
    put("text.onnx", b"hello world\n")
    import onnx

    future = onnx.load(str(MLP))
    for o in future.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = 2**33  # beyond any release (and a C int)
    put("future.onnx", future.SerializeToString())
    from onnx import TensorProto, helper

    pool = helper.make_graph(  # a window wholly in the padding (pads past the kernel)
        [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 1], pads=[0, 1, 0, 0])],
        "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    put("pool_pads.onnx", helper.make_model(
        pool, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())
    good = api.compile(str(MLP)).to_bytes()
    put("good.opvm", good)
    put("gen.opvm", api.compile(str(ROOT / "models" / "gpt2_tiny.onnx"), generate=3,
                                sample="temperature=1,top_k=4").to_bytes())
    put("vocab.json", b'["a", "b"')
    put("trunc.opvm", good[:len(good) // 2])
    put("flip.opvm", good[:100] + bytes([good[100] ^ 1]) + good[101:])
    put("empty.opvm", b"")
    put("bad.s", b"addi r1, r2\n")
    put("big.s", b".zero 100000000000\n")
    put("org.s", b".org 0x100000000000\nhalt\n")
    put("odd.bin", b"\x00" * 7)
    put("notnpy.npy", b"not numpy")
    put("notnpz.npz", b"PK not a zip")
    for name, arr in {"nan.npy": np.full((1, 64), np.nan, np.float32),
                      "inf.npy": np.full((1, 64), np.inf, np.float32),
                      "huge.npy": np.full((1, 64), 1e30, np.float32),
                      "flat.npy": np.zeros(64, np.float32),
                      "wide.npy": np.zeros((1, 65), np.float32),
                      "str.npy": np.array(["a"] * 64).reshape(1, 64),
                      "int_big.npy": np.full((1, 64), 1 << 40, np.int64),
                      "ok.npy": np.full((1, 64), 3, np.float32),
                      "prompt.npy": np.array([1, 2], np.int64)}.items():
        np.save(d / name, arr)
        f[name] = d / name
    for name, arr in {"cal_nan.npz": np.full((4, 1, 64), np.nan, np.float32),
                      "cal_empty.npz": np.zeros((0, 1, 64), np.float32),
                      "cal_const.npz": np.ones((4, 1, 64), np.float32),
                      "cal_shape.npz": np.arange(21, dtype=np.float32).reshape(3, 7)}.items():
        np.savez(d / name, input=arr)
        f[name] = d / name
    return f


CORPUS: list[tuple[str, list[str]]] = [
    # ir / quantize-report / compile: bad models, shapes, calibration
    ("ir-missing", ["ir", "{missing}"]),
    ("ir-empty", ["ir", "{empty.onnx}"]),
    ("ir-garbage", ["ir", "{garbage.onnx}"]),
    ("ir-text", ["ir", "{text.onnx}"]),
    ("ir-opset-future", ["ir", "{future.onnx}"]),
    ("compile-opset-future", ["compile", "{future.onnx}", "-o", "{dir}/o.opvm", "-q"]),
    ("compile-pool-pads", ["compile", "{pool_pads.onnx}", "-o", "{dir}/o.opvm", "-q"]),
    ("ir-dir", ["ir", "{dir}"]),
    ("ir-shape-syntax", ["ir", str(MLP), "--shape", "input=axb"]),
    ("ir-shape-negative", ["ir", str(MLP), "--shape", "input=-1x64"]),
    ("ir-shape-unknown", ["ir", str(MLP), "--shape", "nope=1x64"]),
    ("ir-shape-mismatch", ["ir", str(MLP), "--shape", "input=100000000000x64"]),
    ("ir-cal-nan", ["ir", str(MLP), "--scheme", "fixed", "--calibrate", "{cal_nan.npz}"]),
    ("report-empty", ["quantize-report", "{empty.onnx}"]),
    ("report-cal-empty", ["quantize-report", str(MLP), "--calibrate", "{cal_empty.npz}"]),
    ("report-cal-notnpz", ["quantize-report", str(MLP), "--calibrate", "{notnpz.npz}"]),
    ("compile-garbage", ["compile", "{garbage.onnx}", "-o", "{dir}/o.opvm", "-q"]),
    ("compile-cal-nan", ["compile", str(MLP), "--calibrate", "{cal_nan.npz}", "-o",
                         "{dir}/o.opvm", "-q"]),
    ("compile-cal-const", ["compile", str(MLP), "--calibrate", "{cal_const.npz}", "-o",
                           "{dir}/o.opvm", "-q"]),
    ("compile-cal-shape", ["compile", str(MLP), "--calibrate", "{cal_shape.npz}", "-o",
                           "{dir}/o.opvm", "-q"]),
    ("compile-cal-npy", ["compile", str(MLP), "--calibrate", "{nan.npy}", "-o",
                         "{dir}/o.opvm", "-q"]),
    ("compile-out-dir-missing", ["compile", str(MLP), "-o", "{dir}/no/such/o.opvm", "-q"]),
    ("compile-out-is-dir", ["compile", str(MLP), "-o", "{dir}", "-q"]),
    ("compile-out-is-model", ["compile", "{empty.onnx}", "-o", "{empty.onnx}", "-q"]),
    # run / inspect: bad artifacts and inputs
    ("run-missing", ["run", "{missing}", "--input", "input={nan.npy}"]),
    ("run-empty", ["run", "{empty.opvm}", "--input", "input={nan.npy}"]),
    ("run-trunc", ["run", "{trunc.opvm}", "--input", "input={nan.npy}"]),
    ("run-flip", ["run", "{flip.opvm}", "--input", "input={nan.npy}"]),
    ("run-onnx", ["run", str(MLP), "--input", "input={nan.npy}"]),
    ("run-nan", ["run", "{good.opvm}", "--input", "input={nan.npy}"]),
    ("run-inf", ["run", "{good.opvm}", "--input", "input={inf.npy}"]),
    ("run-huge", ["run", "{good.opvm}", "--input", "input={huge.npy}"]),
    ("run-nan-vm", ["run", "{good.opvm}", "--input", "input={nan.npy}", "--engine", "vm"]),
    ("run-nan-ref", ["run", "{good.opvm}", "--input", "input={nan.npy}", "--engine", "ref"]),
    ("run-flat", ["run", "{good.opvm}", "--input", "input={flat.npy}"]),
    ("run-wide", ["run", "{good.opvm}", "--input", "input={wide.npy}"]),
    ("run-str", ["run", "{good.opvm}", "--input", "input={str.npy}"]),
    ("run-int-big", ["run", "{good.opvm}", "--input", "input={int_big.npy}"]),
    ("run-notnpy", ["run", "{good.opvm}", "--input", "input={notnpy.npy}"]),
    ("run-no-input", ["run", "{good.opvm}"]),
    ("run-unknown-input", ["run", "{good.opvm}", "--input", "x={flat.npy}"]),
    ("run-bad-flag", ["run", "{good.opvm}", "--input", "nonsense"]),
    ("run-twice", ["run", "{good.opvm}", "--input", "input={wide.npy}", "--input",
                   "input={wide.npy}"]),
    ("run-out-is-input", ["run", "{good.opvm}", "--input", "input={flat.npy}", "-o",
                          "{flat.npy}"]),
    ("compile-generate-not-decoder", ["compile", str(MLP), "--generate", "2", "-o",
                                      "{dir}/o.opvm", "-q"]),
    ("compile-generate-too-many", ["compile", str(ROOT / "models" / "gpt2_tiny.onnx"),
                                   "--generate", "8", "-o", "{dir}/o.opvm", "-q"]),
    ("compile-sample-bad", ["compile", str(ROOT / "models" / "gpt2_tiny.onnx"), "--generate",
                            "2", "--sample", "temperature=-1", "-o", "{dir}/o.opvm", "-q"]),
    ("compile-sample-no-generate", ["compile", str(MLP), "--sample", "top_k=3", "-o",
                                    "{dir}/o.opvm", "-q"]),
    ("run-gen-no-seed", ["run", "{gen.opvm}", "--input", "input_ids={prompt.npy}"]),
    ("run-gen-long-prompt", ["run", "{gen.opvm}", "--input", "input_ids={int_big.npy}",
                             "--seed", "1"]),
    ("run-gen-float-prompt", ["run", "{gen.opvm}", "--input", "input_ids={flat.npy}",
                              "--seed", "1"]),
    ("run-gen-prompt-no-vocab", ["run", "{gen.opvm}", "--prompt", "ab", "--seed", "1"]),
    ("run-gen-vocab-bad", ["run", "{gen.opvm}", "--prompt", "ab", "--vocab", "{vocab.json}",
                           "--seed", "1"]),
    ("run-gen-vocab-missing", ["run", "{gen.opvm}", "--prompt", "ab", "--vocab",
                               "{missing}", "--seed", "1"]),
    ("run-seed-not-gen", ["run", "{good.opvm}", "--input", "input={ok.npy}", "--seed", "1"]),
    ("trace-gen-no-seed", ["trace", "{gen.opvm}", "--input", "input_ids={prompt.npy}"]),
    ("inspect-missing", ["inspect", "{missing}"]),
    ("inspect-empty", ["inspect", "{empty.opvm}"]),
    ("inspect-trunc", ["inspect", "{trunc.opvm}"]),
    ("inspect-flip", ["inspect", "{flip.opvm}"]),
    ("inspect-onnx", ["inspect", str(MLP)]),
    # asm / disasm / vm
    ("asm-missing", ["asm", "{missing}", "-o", "{dir}/p.bin"]),
    ("asm-bad", ["asm", "{bad.s}", "-o", "{dir}/p.bin"]),
    ("asm-zero-huge", ["asm", "{big.s}", "-o", "{dir}/p.bin"]),
    ("asm-org-huge", ["asm", "{org.s}", "-o", "{dir}/p.bin"]),
    ("asm-out-is-source", ["asm", "{bad.s}", "-o", "{bad.s}"]),
    ("asm-binary-in", ["asm", "{good.opvm}", "-o", "{dir}/p.bin"]),
    ("disasm-missing", ["disasm", "{missing}"]),
    ("vm-missing", ["vm", "{missing}"]),
    ("vm-odd", ["vm", "{odd.bin}"]),
    ("vm-bad-asm", ["vm", "{bad.s}"]),
    ("vm-steps-negative", ["vm", str(ROOT / "examples" / "sum.s"), "--steps", "-1"]),
    ("vm-depth-0", ["vm", str(ROOT / "examples" / "sum.s"), "--depth", "0"]),
    ("vm-depth-99", ["vm", str(ROOT / "examples" / "sum.s"), "--depth", "99"]),
    ("vm-depth-small", ["vm", str(ROOT / "examples" / "sum.s"), "--depth", "1"]),
    ("vm-prove-negative", ["vm", str(ROOT / "examples" / "sum.s"), "--prove", "-3"]),
    ("vm-prove-past-end", ["vm", str(ROOT / "examples" / "sum.s"), "--prove", "10000000"]),
    # trace (its bad inputs share the run's input path)
    ("trace-missing", ["trace", "{missing}", "--input", "input={flat.npy}"]),
    ("trace-trunc", ["trace", "{trunc.opvm}", "--input", "input={flat.npy}"]),
    ("trace-nan", ["trace", "{good.opvm}", "--input", "input={nan.npy}"]),
    ("trace-flat", ["trace", "{good.opvm}", "--input", "input={flat.npy}"]),
    ("trace-node-past-end", ["trace", "{good.opvm}", "--input", "input={wide.npy}",
                             "--node", "999"]),
    ("trace-step-past-end", ["trace", "{good.opvm}", "--input", "input={ok.npy}",
                             "--node", "1", "--step", "999999999"]),
    ("trace-checkpoints-file", ["trace", "{good.opvm}", "--input", "input={ok.npy}",
                                "--node", "1", "--step", "3", "--checkpoints", "{bad.s}"]),
    # challenge
    ("challenge-missing", ["challenge", "{missing}", "--input", "input={ok.npy}"]),
    ("challenge-nan", ["challenge", "{good.opvm}", "--input", "input={nan.npy}"]),
    ("challenge-fault-syntax", ["challenge", "{good.opvm}", "--input", "input={ok.npy}",
                                "--fault", "node=one"]),
    ("challenge-fault-node", ["challenge", "{good.opvm}", "--input", "input={ok.npy}",
                              "--fault", "node=999"]),
    ("challenge-fault-step", ["challenge", "{good.opvm}", "--input", "input={ok.npy}",
                              "--fault", "node=1,step=999999999"]),
    ("challenge-silent", ["challenge", "{good.opvm}", "--input", "input={ok.npy}",
                          "--silent", "nobody"]),
    ("challenge-rpc-down", ["challenge", "{good.opvm}", "--input", "input={ok.npy}",
                            "--liar", "submitter", "--rpc", "http://127.0.0.1:9"]),
    # spec / verifier
    ("spec-missing", ["spec", "--path", "{missing}"]),
    ("spec-no-markers", ["spec", "--path", "{bad.s}"]),
    ("verifier-out-is-file", ["verifier", "-o", "{bad.s}"]),
]


def test_corpus_covers_every_subcommand() -> None:
    assert {argv[0] for _, argv in CORPUS} == {c[0] for c in COMMANDS}


@pytest.mark.parametrize("argv", [a for _, a in CORPUS], ids=[n for n, _ in CORPUS])
def test_bad_input_one_line(files: dict[str, Path], capsys, argv: list[str]) -> None:
    args = [re.sub(r"\{([^}]+)\}", lambda m: str(files[m.group(1)]), a) for a in argv]
    rc = main(args)
    _, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if not ln.startswith("opmlc: [")]
    assert rc not in (0, 70), (rc, err)
    assert len(lines) == 1 and lines[0].startswith("opmlc: error: "), err
    assert "Traceback" not in err and "internal error" not in err
