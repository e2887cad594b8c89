"""The opmlc CLI, in-process through main(argv) and once as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from opmlc.cli import COMMANDS, main
from opmlc.cli.common import parse_shape_flags
from opmlc.errors import ShapeError
from opmlc.frontend import import_onnx
from opmlc.ir import parse_graph, print_graph, verify
from opmlc_runtime.asm import assemble, disassemble
from opmlc_runtime.stepper import VM

ROOT = Path(__file__).resolve().parent.parent
DOT = ROOT / "examples" / "dot.s"
SUM = ROOT / "examples" / "sum.s"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_asm_disasm_round_trip(tmp_path: Path, capsys) -> None:
    binary = tmp_path / "dot.bin"
    code, _, err = run(capsys, "asm", DOT, "-o", binary)
    assert code == 0 and err == ""
    image = binary.read_bytes()
    assert image == assemble(DOT.read_text()) + bytes(-len(image) % 8)
    code, out, _ = run(capsys, "disasm", binary)
    assert code == 0
    assert out == disassemble(image)
    again = tmp_path / "again.s"
    again.write_text(out)
    run(capsys, "asm", again, "-o", tmp_path / "again.bin")
    assert (tmp_path / "again.bin").read_bytes() == image


def test_vm_text(capsys) -> None:
    code, out, _ = run(capsys, "vm", DOT)
    assert code == 0
    fields = dict(line.split(None, 1) for line in out.splitlines())
    assert fields["status"] == "HALTED"
    assert fields["r13"] == "0x53 (83)"  # acc
    assert fields["r14"] == "0x19 (25)"  # requantized y


def test_vm_json_sum(capsys) -> None:
    code, out, _ = run(capsys, "vm", SUM, "--json", "--depth", "10")
    assert code == 0
    result = json.loads(out)
    assert result["status"] == "HALTED"
    assert int(result["regs"]["r12"], 16) == 999999999955
    vm = VM.from_image(assemble(SUM.read_text()), 10)
    vm.run()
    assert result["root"] == "0x" + vm.root().hex()
    assert result["step"] == vm.core.step


def test_vm_binary_and_step_limit(tmp_path: Path, capsys) -> None:
    binary = tmp_path / "sum.bin"
    run(capsys, "asm", SUM, "-o", binary)
    code, out, _ = run(capsys, "vm", binary, "--steps", "5", "--json")
    result = json.loads(out)
    assert code == 0 and result["status"] == "RUNNING" and result["step"] == 5


def test_prove(capsys) -> None:
    code, out, _ = run(capsys, "vm", DOT, "--prove", "7", "--json")
    assert code == 0
    proof = json.loads(out)
    assert set(proof) == {"step", "pre_root", "post_root", "witness"}
    vm = VM.from_image(assemble(DOT.read_text()), 20)
    vm.run(7)
    assert proof["step"] == 7
    assert proof["pre_root"] == "0x" + vm.root().hex()
    assert proof["witness"] == "0x" + vm.witness().hex()
    vm.step()
    assert proof["post_root"] == "0x" + vm.root().hex()


def _one_error_line(capsys, *argv) -> str:
    code, out, err = run(capsys, *argv)
    assert code != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("opmlc: error: ")
    return lines[0]


def test_error_unknown_mnemonic(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.s"
    bad.write_text("halt\nad r1, r2, r3\n")
    line = _one_error_line(capsys, "asm", bad, "-o", tmp_path / "x.bin")
    assert "line 2: unknown mnemonic 'ad' (did you mean 'add'?)" in line
    assert str(bad) in line
    _one_error_line(capsys, "vm", bad)


def test_error_malformed_binary(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x50" * 13)
    assert "malformed binary" in _one_error_line(capsys, "vm", bad)


def test_error_missing_file(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nope.s"
    assert "No such file" in _one_error_line(capsys, "vm", missing)
    assert "No such file" in _one_error_line(capsys, "disasm", tmp_path / "nope.bin")
    assert "No such file" in _one_error_line(capsys, "asm", missing, "-o", tmp_path / "o")


def test_error_step_past_the_end(capsys) -> None:
    vm = VM.from_image(assemble(DOT.read_text()), 20)
    n = vm.run()
    line = _one_error_line(capsys, "vm", DOT, "--prove", str(n), "--json")
    assert f"step past the end: program halted after {n} steps" in line
    _one_error_line(capsys, "vm", DOT, "--prove", str(n + 10))
    code, _, _ = run(capsys, "vm", DOT, "--prove", str(n - 1), "--json")  # the halt step
    assert code == 0


def test_error_program_too_big(tmp_path: Path, capsys) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(128))
    assert "does not fit" in _one_error_line(capsys, "vm", big, "--depth", "1")


def test_spec_check(capsys) -> None:
    code, out, _ = run(capsys, "spec", "--check")
    assert code == 0 and "up to date" in out


def test_spec_check_stale(tmp_path: Path, capsys) -> None:
    stale = tmp_path / "ISA.md"
    stale.write_text((ROOT / "spec" / "ISA.md").read_text().replace("`halt`", "`stop`", 1))
    assert "run `opmlc spec`" in _one_error_line(capsys, "spec", "--check", "--path", stale)
    code, out, _ = run(capsys, "spec", "--path", stale)
    assert code == 0 and "updated" in out


def test_verifier_missing_generator_is_one_line(monkeypatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setitem(sys.modules, "opmlc_isagen.solidity", None)  # import fails
    line = _one_error_line(capsys, "verifier", "-o", tmp_path)
    assert "opmlc_isagen.solidity" in line


def test_solc_error_is_one_line(monkeypatch, tmp_path: Path, capsys) -> None:
    """SolcError (opmlc_isagen's own error class) reaches the user as one line."""
    from opmlc_isagen import solidity
    from opmlc_isagen.solc import SolcError

    def fail(_out):  # noqa: ANN001, ANN202
        raise SolcError("solc rejected the sources:\nError: x\n  --> OpmlcStep.sol:1:1")

    monkeypatch.setattr(solidity, "write_verifier", fail)
    line = _one_error_line(capsys, "verifier", "-o", tmp_path)
    assert "solc rejected the sources: Error: x" in line


def test_commands_table() -> None:
    assert {name for name, *_ in COMMANDS} >= {"asm", "disasm", "vm", "spec", "verifier"}


def test_subprocess(tmp_path: Path) -> None:
    """The real entry point (python -m opmlc): output and a clean one-line error."""
    ok = subprocess.run([sys.executable, "-m", "opmlc", "vm", str(SUM), "--json"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["status"] == "HALTED"
    bad = subprocess.run([sys.executable, "-m", "opmlc", "vm", str(tmp_path / "none.s")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0
    assert "Traceback" not in bad.stderr
    assert bad.stderr.strip().startswith("opmlc: error: ")
    assert len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [["vm", str(DOT), "--prove", "-1"]])
def test_error_negative_step(argv, capsys) -> None:
    _one_error_line(capsys, *argv)


MODELS = ROOT / "models"


def test_ir_float_and_quantized(capsys) -> None:
    code, out, _ = run(capsys, "ir", str(MODELS / "digits_cnn.onnx"))
    assert code == 0 and " = conv(" in out and "q." not in out
    code, out, _ = run(capsys, "ir", str(MODELS / "digits_cnn.onnx"), "--scheme", "int8")
    assert code == 0 and " = q.conv(" in out and " = q.requant(" in out and " = conv(" not in out


def test_quantize_report(capsys) -> None:
    code, out, _ = run(capsys, "quantize-report", str(MODELS / "digits_cnn.onnx"))
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert "logits" in rows
    assert float(rows["logits"][-1]) < 1e-2  # relative error of the output under `fixed`


def test_error_ir_missing_model(tmp_path: Path, capsys) -> None:
    line = _one_error_line(capsys, "ir", str(tmp_path / "nope.onnx"))
    assert "nope.onnx" in line


# ---------------------------------------------------------------- ir, shared flags


def test_shape_flag_parsing() -> None:
    assert parse_shape_flags(["a=1x3x224x224", "b:0=7"]) == {"a": (1, 3, 224, 224), "b:0": (7,)}
    with pytest.raises(ShapeError, match="NAME="):
        parse_shape_flags(["1x3"])


def test_cmd_ir_prints_parseable_text(capsys: pytest.CaptureFixture[str]) -> None:
    path = ROOT / "models" / "digits_cnn.onnx"
    if not path.exists():
        pytest.skip("models/ not generated")
    assert main(["ir", str(path)]) == 0
    text = capsys.readouterr().out
    g = import_onnx(path)
    assert text == print_graph(g)
    assert verify(parse_graph(text, consts=g.consts)) == g


def test_verifier_check(tmp_path: Path, capsys) -> None:
    """`opmlc verifier --check` passes on the committed contract and fails on a stale one."""
    assert main(["verifier", "--check"]) == 0
    assert main(["verifier", "-o", str(tmp_path)]) == 0
    (contract,) = tmp_path.glob("*.sol")
    assert main(["verifier", "-o", str(tmp_path), "--check"]) == 0
    contract.write_text(contract.read_text().replace("pragma", "// pragma", 1))
    capsys.readouterr()
    line = _one_error_line(capsys, "verifier", "-o", tmp_path, "--check")
    assert "out of date" in line and contract.name in line


@pytest.mark.parametrize("prog", [DOT, SUM])
def test_vm_engine_choice(capsys, prog: Path) -> None:
    """`opmlc vm --engine vm` (the fast VM) prints what the reference stepper prints."""
    outs = {}
    for engine in ("stepper", "vm"):
        code, out, _ = run(capsys, "vm", prog, "--json", "--engine", engine)
        assert code == 0
        code, proof, _ = run(capsys, "vm", prog, "--json", "--engine", engine, "--prove", "7")
        assert code == 0
        outs[engine] = (json.loads(out), json.loads(proof))
    assert outs["vm"] == outs["stepper"]


def test_run_engines_agree(tmp_path: Path, capsys) -> None:
    """`opmlc run` on native, vm (fast), stepper and ref: the same outputs and roots."""
    import numpy as np

    art = tmp_path / "mlp.opvm"
    assert main(["compile", str(ROOT / "models" / "digits_mlp_sklearn.onnx"), "-o", str(art),
                 "-q"]) == 0
    x = tmp_path / "x.npy"
    np.save(x, np.load(ROOT / "models" / "digits_test.npz")["X"][:1])
    docs = []
    for engine in ("native", "vm", "stepper", "ref"):
        code, out, _ = run(capsys, "run", art, "--input", f"input={x}", "--engine", engine,
                           "--trace", "--json")
        assert code == 0
        d = json.loads(out)
        assert d.pop("engine") == engine
        docs.append(d)
    assert all(d == docs[0] for d in docs[1:])
