"""The `nascompile` command, run as a subprocess: outputs, exit codes, and nothing half-written."""

from __future__ import annotations

import json
import textwrap

import onnx
import torch

from conftest import EXAMPLES, run_cli

def write_spec(tmp_path, text: str, name: str = "spec.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_compile_validate_writes_model_and_decisions(tmp_path):
    out, decisions = tmp_path / "darts.onnx", tmp_path / "decisions.json"
    proc = run_cli("compile", str(EXAMPLES / "darts_cnn.py"), "-o", str(out), "--validate", "--decisions", str(decisions))
    assert proc.returncode == 0, proc.stderr
    onnx.checker.check_model(onnx.load(out), full_check=True)
    chosen = json.loads(decisions.read_text())
    assert chosen["normal_n2_switch"] == ["normal_n2_p0", "normal_n2_p1"] and len(chosen) == 36
    assert "batch   2  output" in proc.stdout and f"wrote {out}" in proc.stdout
    assert "discrete:" in proc.stdout and "supernet:" in proc.stdout


def test_quiet_prints_nothing(tmp_path):
    proc = run_cli("compile", str(EXAMPLES / "nb201_cell.py"), "-o", str(tmp_path / "m.onnx"), "-q")
    assert proc.returncode == 0 and proc.stdout == ""


def test_print_after_and_verify_each(tmp_path):
    proc = run_cli("compile", str(EXAMPLES / "nb201_cell.py"), "-o", str(tmp_path / "m.onnx"), "--verify-each",
                   "--print-after", "darts-choice", "-q")
    assert proc.returncode == 0, proc.stderr
    assert "// IR after darts-choice" in proc.stderr and "layer_choice(" in proc.stderr
    assert "// IR after expand" not in proc.stderr


def test_module_factory_spec(tmp_path):
    (tmp_path / "mypkg.py").write_text("import torch\ndef make():\n    return torch.nn.Conv2d(3, 4, 3)\n")
    env_path = str(tmp_path)
    proc = run_cli("compile", "mypkg:make", "-o", str(tmp_path / "m.onnx"), "--input-shape", "1,3,8,8", cwd=env_path)
    assert proc.returncode == 0, proc.stderr


def test_weights_are_loaded(tmp_path):
    import nb201_cell

    model = nb201_cell.build(seed=1)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    proc = run_cli("compile", str(EXAMPLES / "nb201_cell.py"), "-o", str(tmp_path / "m.onnx"), "--weights",
                   str(tmp_path / "w.pt"), "--validate", "--decisions", str(tmp_path / "d.json"))
    assert proc.returncode == 0, proc.stderr
    import nascompile

    expected = nascompile.compile(model, nb201_cell.example_inputs()).decisions
    assert json.loads((tmp_path / "d.json").read_text()) == expected
