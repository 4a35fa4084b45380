"""The `nascompile` command, run as a subprocess: outputs, exit codes, and nothing half-written."""

from __future__ import annotations

import json
import re
import textwrap

import onnx
import pytest
import torch

from conftest import EXAMPLES, run_cli

TRACE_DEPENDENT_SPEC = """
import torch

class Sneaky(torch.nn.Module):
    # computes x * 2 while being traced and x * 3 when run: the emitted model cannot match it
    def forward(self, x):
        if torch.fx._symbolic_trace.is_fx_tracing():
            return x * 2
        return x * 3

def build():
    return Sneaky()

def example_inputs():
    return (torch.randn(1, 4),)
"""

NAN_SPEC = """
import math, torch
from nascompile import nn as nc

class Net(nc.Supernet):
    def __init__(self):
        super().__init__()
        self.edge = nc.LayerChoice([torch.nn.ReLU(), torch.nn.Identity()], label="edge0")

    def forward(self, x):
        return self.edge(x)

def build():
    net = Net()
    net.edge.alpha.data[1] = math.nan
    return net

def example_inputs():
    return (torch.randn(1, 4),)
"""


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


def test_validation_failure_exits_11_and_writes_nothing(tmp_path):
    spec = write_spec(tmp_path, TRACE_DEPENDENT_SPEC)
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli("compile", spec, "-o", str(out / "m.onnx"), "--validate", "--decisions", str(out / "d.json"))
    assert proc.returncode == 11
    assert "validation failed" in proc.stderr and "FAILED" in proc.stderr
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("text, code, message", [
    (None, 3, "does not exist"),
    ("x = 1\n", 3, r"has no callable build\(\)"),
    ("def build():\n    raise ValueError('boom')\n", 3, r"build\(\) of SPEC .* raised ValueError: boom"),
    ("def build():\n    return 42\n", 3, "returned a int, not a torch.nn.Module"),
    ("import nonexistent_module_xyz\n", 3, "importing .* failed: ModuleNotFoundError"),
    (NAN_SPEC, 6, "layer choice 'edge0'.*non-finite logits at positions \\[1\\]"),
    ("import torch\nclass M(torch.nn.Module):\n    def forward(self, x):\n        return torch.fft.fft(x).real\n"
     "def build():\n    return M()\n", 8, "operation .*fft.* has no ONNX lowering"),
    ("import torch\nclass M(torch.nn.Module):\n    def forward(self, x):\n        return x if x.sum() > 0 else -x\n"
     "def build():\n    return M()\n", 5, "cannot lift module 'M': its forward branches"),
])
def test_bad_specs(tmp_path, text, code, message):
    spec = str(tmp_path / "missing.py") if text is None else write_spec(tmp_path, text)
    proc = run_cli("compile", spec, "-o", str(tmp_path / "m.onnx"), "--input-shape", "1,4")
    assert proc.returncode == code, proc.stderr
    assert re.search(message, proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "m.onnx").exists()


class _Payload:
    """Pickling this runs code on load: a weights_only loader must refuse it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _nb201_state(tmp_path):
    import nb201_cell

    return nb201_cell.build().state_dict()


@pytest.mark.parametrize("kind, message", [
    ("not_a_state_dict", "does not hold a state dict"),
    ("truncated", "truncated or not a torch.save file"),
    ("pickled_code", "refused to load weights file"),
    ("missing_keys", "missing 1 key\\(s\\): classifier.bias"),
    ("unexpected_keys", "unexpected 1 key\\(s\\): bogus"),
    ("wrong_shape", "classifier.bias has shape \\[3\\]"),
    ("missing_file", "does not exist"),
])
def test_bad_weights_exit_4(tmp_path, kind, message):
    weights = tmp_path / "w.pt"
    marker = tmp_path / "pwned"
    state = _nb201_state(tmp_path)
    if kind == "not_a_state_dict":
        torch.save([1, 2, 3], weights)
    elif kind == "truncated":
        torch.save(state, weights)
        weights.write_bytes(weights.read_bytes()[:1000])
    elif kind == "pickled_code":
        torch.save({"x": _Payload(str(marker))}, weights)
    elif kind == "missing_keys":
        del state["classifier.bias"]
        torch.save(state, weights)
    elif kind == "unexpected_keys":
        state["bogus"] = torch.zeros(1)
        torch.save(state, weights)
    elif kind == "wrong_shape":
        state["classifier.bias"] = torch.zeros(3)
        torch.save(state, weights)
    proc = run_cli("compile", str(EXAMPLES / "nb201_cell.py"), "-o", str(tmp_path / "m.onnx"), "--weights", str(weights))
    assert proc.returncode == 4, proc.stderr
    assert re.search(message, proc.stderr), proc.stderr
    assert not marker.exists(), "the pickled payload was executed"
    assert not (tmp_path / "m.onnx").exists()


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


@pytest.mark.parametrize("args, code, message", [
    (["--input-shape", "1,4,32,32"], 9, "conv2d at module 'stem.0'.*3 channels"),
    (["--input-shape", "1,x,32"], 9, "comma-separated integers"),
    (["--pipeline", "darts-choice,bogus"], 14, "unknown pass 'bogus'"),
    (["--pipeline", "finalize{rank}"], 14, "must be key=value"),
    (["--max-final-edges", "0"], 6, "max_final_edges must be a positive int"),
    (["--batch-sizes", "0"], 9, "must be positive integers"),
])
def test_bad_options(tmp_path, args, code, message):
    proc = run_cli("compile", str(EXAMPLES / "darts_cnn.py"), "-o", str(tmp_path / "m.onnx"), *args)
    assert proc.returncode == code, proc.stderr
    assert re.search(message, proc.stderr), proc.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_output_directory_missing_exits_10(tmp_path):
    proc = run_cli("compile", str(EXAMPLES / "nb201_cell.py"), "-o", str(tmp_path / "no" / "m.onnx"))
    assert proc.returncode == 10 and "does not exist" in proc.stderr


def test_cuda_requested_without_cuda_exits_13(tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers() and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = run_cli("compile", str(EXAMPLES / "nb201_cell.py"), "-o", str(tmp_path / "m.onnx"), "--validate",
                   "--device", "cuda")
    assert proc.returncode == 13 and "CUDA" in proc.stderr
    assert not (tmp_path / "m.onnx").exists()
