"""The bad-input catalogue (issue 6): every user mistake gets one clear message naming what and where, its
own exit code, and leaves no output file behind.

| mistake | exit | test |
|---|---|---|
| NaN / +inf / -inf logits | 6 | test_bad_supernets |
| a layer choice with no logits given | 6 | test_a_layer_choice_with_no_logits |
| alphas whose shape does not fit the candidates (nn `alpha`, `--alphas`) | 6 / 4 | test_bad_supernets, test_bad_alphas_file |
| n_chosen larger than the candidates, or < 1 (when built, or set later) | 6 | test_bad_supernets, test_n_chosen_set_out_of_range_after_building |
| a choose_from label that does not exist | 6 | test_bad_supernets |
| one label on choices with different candidate counts | 6 | test_bad_supernets |
| a cycle (only IR text can hold one) | 7 | test_a_cycle_in_ir_text |
| a forward that branches on its inputs' values (file and line named) | 5 | test_bad_specs |
| a forward that draws random numbers (Gumbel/Dirichlet sampling, `torch.rand`, Python `random`) | 5 | test_bad_specs |
| architecture weights (softmax/sigmoid of a parameter) that no mixture pattern consumes | 6 | test_bad_specs |
| an in-place write through a view | 5 | test_bad_specs |
| an op with no ONNX lowering | 8 | test_bad_specs |
| an embedding with `max_norm` (it rewrites its weight at every lookup) | 5 | test_rnn_lift.py |
| a recurrent batched mixture whose weights have no zero (`none`) column, so no logits drop a predecessor | 5 | test_rnn_lift.py |
| example inputs nesting anything but tensors and lists of tensors | 9 | test_rnn_lift.py |
| a sequence-first model compiled with the batch at dim 0 (no `--batch-dim 1`) and `--fixed-length`: validation fails, nothing written | 11 | test_rnn_lift.py |
| `--fixed-length` not given and a time loop that cannot be proven step-invariant: unrolled, the summary says why (`fixed_length=False` in the API: refused) | 0 / 8 | test_rnn_lift.py |
| an input shape that does not fit the model | 9 | test_bad_options |
| a SPEC that does not exist or has no build() | 3 | test_bad_specs |
| weights: not a state dict, truncated, pickled code (refused, never run), missing/unexpected keys | 4 | test_bad_weights_exit_4 |
| weights or alphas: a text file, a directory, a zip archive declaring more than it may inflate to (checked before reading) | 4 | test_unreadable_or_oversized_weights_and_alphas_exit_4 |
| an output path in a missing or read-only directory, under a file, onto a directory | 10 | test_bad_output_paths, test_read_only_directory |
| a file system that fails while writing (read-only mount, full disk, I/O error) | 10 | test_output_on_a_failing_file_system, test_a_failing_move_leaves_no_file |
| validation beyond tolerance | 11 | test_validation_failure_exits_11_and_writes_nothing |
| `--static-batch --validate --batch-sizes` other than the fixed batch (without `--batch-sizes`, the fixed batch is validated) | 2 | test_validation_runs.py |
| a model onnxruntime cannot load or run (a float64 Conv): a validation failure, not a device error | 11 | test_validation_runs.py |
| NaN or infinite weights or buffers (a BatchNorm's running_var) in the discrete network, named as the model names them (refused before writing, with or without --validate); in a left-out candidate only: a warning naming it, the file is written | 4 / 0 | test_non_finite_weights_are_refused_naming_the_tensor, test_non_finite_tensors_of_kept_buffers_refused_of_pruned_candidates_warned |
| a model (parameter, buffer, or a tensor attribute a traced forward reads) or an example input on the meta device, named | 3 / 9 | test_a_model_on_the_meta_device_is_a_spec_error_naming_the_tensor |
| a SPEC that calls sys.exit/exit/quit (import, build(), forward, example_inputs()) or whose example_inputs() raises | 3 | test_a_spec_that_exits_or_raises_is_a_spec_error_naming_the_line |
| print() in a SPEC: goes to stderr, never into `report --json` or `export` output | 0 | test_the_specs_prints_go_to_stderr_not_into_results |
| an output path naming a directory (`-o newdir/`), or one file given as two outputs (`--decisions` = `-o`) | 10 | test_output_paths.py |
| SIGTERM while compiling or validating (plain or --log-json): no staging folder, no file | 143 | test_output_paths.py |
| Graphviz's dot hanging: stopped after `plot.DOT_TIMEOUT` seconds | 17 | test_output_paths.py |
| inspect on malformed metadata (wrong types, NaN, deep nesting, duplicate keys): exit 15; control characters escaped | 15 | test_ux_details.py |
| an alphas JSON with a duplicate key, 2,000-deep nesting or a 400-digit integer | 4 | test_ux_details.py |
| a flag out of range: --opset outside 14..21, --atol/--rtol/--near-tie negative or not finite, `export --name` without `--format genotype` | 2 | test_bad_flags_are_usage_errors |
| flags that do not apply: accuracy gates without --precision fp16/int8, --calibration without int8, --fresh-weights without --format pytorch, --format pytorch without -o, a gate outside [0, 1] | 2 | test_bad_flags_are_usage_errors |
| an fp16/int8 model that misses an accuracy gate (--max-abs, --min-cosine, --min-top1-agreement; top-1 on a model without a class output) | 18 | test_accuracy_gate_missed_exits_18 |
| int8 calibration data: missing, pickled objects (refused, never run), wrong shape, dtype or count, NaN, a `calibration_data()` that raises | 19 | test_bad_calibration_exits_19 |
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
import textwrap

import pytest
import torch

from nascompile import cli
from nascompile.errors import IRError
from nascompile.ir import parse_graph

from conftest import EXAMPLES, run_cli


def write_spec(tmp_path, text: str, name: str = "spec.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


SUPERNET = """
import math, sys, torch
from nascompile import nn as nc

class Net(nc.Supernet):
    def __init__(self):
        super().__init__()
        self.a = nc.LayerChoice({"relu": torch.nn.ReLU(), "skip": torch.nn.Identity()}, label="edge0")
        self.b = nc.LayerChoice({"relu": torch.nn.ReLU(), "tanh": torch.nn.Tanh()}, label=LABEL_B)
        self.node = nc.InputChoice(2, n_chosen=N_CHOSEN, label="node", choose_from=["edge0", CHOOSE_B])

    def forward(self, x):
        return self.node([self.a(x), self.b(x)])

def build():
    net = Net()
    SETUP
    return net

def example_inputs():
    return (torch.randn(1, 4),)
"""


def supernet(setup: str = "pass", n_chosen: str = "1", label_b: str = '"edge1"', choose_b: str = '"edge1"') -> str:
    return (SUPERNET.replace("SETUP", setup).replace("N_CHOSEN", n_chosen).replace("LABEL_B", label_b)
            .replace("CHOOSE_B", choose_b))


@pytest.mark.parametrize("text, message", [
    (supernet("net.a.alpha.data[1] = math.nan"), r"layer choice 'edge0' \(a\) has non-finite logits at positions \[1\]"),
    (supernet("net.a.alpha.data[0] = math.inf"), r"layer choice 'edge0' \(a\) has non-finite logits at positions \[0\]"),
    (supernet("net.b.alpha.data[2] = -math.inf"), r"layer choice 'edge1' \(b\) has non-finite logits at positions \[2\]"),
    (supernet("net.a.alpha = torch.nn.Parameter(torch.zeros(5))"),
     r"layer choice 'edge0' \(a\) has alpha of shape \[5\] but 2 candidates: it needs 3 logits"),
    (supernet(n_chosen="3"), r"InputChoice\(label='node'\): n_chosen=3 must be None or an int between 1 and "
                             r"n_candidates=2"),
    (supernet(n_chosen="0"), r"n_chosen=0 must be None or an int between 1"),
    (supernet(choose_b='"edge2"'), r"choose_from label 'edge2' names no choice in the model; did you mean 'edge1'\?"),
    (supernet(label_b='"edge0"', choose_b='"edge0"'),
     r"layer choices 'a' and 'b' share label 'edge0' but have different candidates"),
], ids=["nan", "inf", "-inf", "alpha-shape", "n_chosen-3", "n_chosen-0", "unknown-label", "label-shared-by-unlike"])
def test_bad_supernets(tmp_path, text, message):
    proc = run_cli("compile", write_spec(tmp_path, text), "-o", str(tmp_path / "m.onnx"))
    assert proc.returncode == 6, proc.stderr
    assert re.search(message, proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("n_chosen", [0, 3])
def test_n_chosen_set_out_of_range_after_building(tmp_path, n_chosen):
    # the authoring API checks n_chosen when built; the lift checks it again for one changed afterwards
    proc = run_cli("compile", write_spec(tmp_path, supernet(f"net.node.n_chosen = {n_chosen}")),
                   "-o", str(tmp_path / "m.onnx"))
    assert proc.returncode == 6, proc.stderr
    assert re.search(rf"input choice 'node' \(node\): n_chosen={n_chosen} must be None or an int between 1 and "
                     r"n_candidates=2 \(None keeps every input\)", proc.stderr), proc.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_ties_and_near_ties_are_warnings_not_errors(tmp_path):
    spec = write_spec(tmp_path, supernet("net.a.alpha.data[:] = torch.tensor([1.0, 1.0, 0.0]); "
                                         "net.b.alpha.data[:] = torch.tensor([0.5, 0.5005, 0.0])", n_chosen="2"))
    proc = run_cli("compile", spec, "-o", str(tmp_path / "m.onnx"))
    assert proc.returncode == 0, proc.stderr
    assert "warning: layer choice 'edge0': candidates ['relu', 'skip'] tie" in proc.stderr
    assert re.search(r"warning: layer choice 'edge1': 'tanh' leads 'relu' by only 0.0005 in logit, "
                     r"ln p\[tanh\]/p\[relu\] \(near-tie threshold 0.01\)", proc.stderr), proc.stderr


NNI_WITHOUT_MUTATOR = f"""
import sys
sys.path.insert(0, {str(EXAMPLES)!r})
import nni_darts

def build():
    return nni_darts.build(n_layers=2, channels=4, with_mutator=False)

def example_inputs():
    return nni_darts.example_inputs()
"""


def test_a_layer_choice_with_no_logits(tmp_path):
    proc = run_cli("compile", write_spec(tmp_path, NNI_WITHOUT_MUTATOR), "-o", str(tmp_path / "m.onnx"))
    assert proc.returncode == 6, proc.stderr
    assert re.search(r"no logits for layer choice '\w+' \(cells\.0\.", proc.stderr), proc.stderr
    assert "--alphas" in proc.stderr and not (tmp_path / "m.onnx").exists()


def test_bad_alphas_file(tmp_path):
    import json

    import nni_darts

    mutator = nni_darts.DartsMutator(nni_darts.build(n_layers=2, channels=4, with_mutator=False))
    alphas = {key: value.tolist() for key, value in mutator.choices.items()}
    key = sorted(alphas)[0]
    alphas[key] = alphas[key][:-1]
    (tmp_path / "alphas.json").write_text(json.dumps(alphas))
    proc = run_cli("compile", write_spec(tmp_path, NNI_WITHOUT_MUTATOR), "-o", str(tmp_path / "m.onnx"),
                   "--alphas", str(tmp_path / "alphas.json"))
    assert proc.returncode == 4, proc.stderr
    assert key in proc.stderr and "alphas.json" in proc.stderr and "shape" in proc.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_a_cycle_in_ir_text():
    text = "graph {\n  %x = input() {index=0}\n  %a = relu(%b)\n  %b = relu(%a)\n  %output = output(%b)\n}\n"
    with pytest.raises(IRError, match=r"the IR graph has a cycle: %a -> %b -> %a|the IR graph has a cycle: %b -> %a -> %b"):
        parse_graph(text)


@pytest.mark.parametrize("kind, message", [
    ("missing_dir", "directory .* does not exist; create it first"),
    ("parent_is_file", "is a file, not a directory"),
    ("is_dir", "it is a directory; give a file name"),
])
def test_bad_output_paths(tmp_path, kind, message):
    target = {"missing_dir": tmp_path / "no" / "m.onnx", "parent_is_file": tmp_path / "f.txt" / "m.onnx",
              "is_dir": tmp_path / "d"}[kind]
    (tmp_path / "f.txt").write_text("x")
    (tmp_path / "d").mkdir()
    proc = run_cli("compile", str(EXAMPLES / "nb201_cell.py"), "-o", str(target))
    assert proc.returncode == 10, proc.stderr
    assert re.search(message, proc.stderr), proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f.txt"]


def test_read_only_directory(tmp_path, monkeypatch, capsys):
    # Tests run as root in CI, where chmod cannot make a directory read-only: the check is made to fail instead.
    import nascompile.files

    real_access = nascompile.files.os.access
    monkeypatch.setattr(nascompile.files.os, "access",
                        lambda path, mode: False if str(path) == str(tmp_path) else real_access(path, mode))
    code = cli.main(["compile", str(EXAMPLES / "nb201_cell.py"), "-o", str(tmp_path / "m.onnx")])
    assert code == 10
    assert "is not writable; choose a directory you can write to" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("failure, reason", [
    (OSError(errno.EROFS, "Read-only file system"), "Read-only file system"),
    (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
    (PermissionError(errno.EACCES, "Permission denied"), "Permission denied"),
], ids=["read-only-mount", "disk-full", "permission"])
def test_output_on_a_failing_file_system(tmp_path, monkeypatch, capsys, failure, reason):
    # the directory passes the checks, then the OS refuses the write
    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr(tempfile, "mkdtemp", fail)
    code = cli.main(["compile", str(EXAMPLES / "nb201_cell.py"), "-o", str(tmp_path / "m.onnx")])
    assert code == 10
    assert re.search(rf"cannot write '.*m\.onnx': {reason} \(\w+Error\); choose another output path",
                     capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_a_failing_move_leaves_no_file(tmp_path, monkeypatch, capsys):
    # the model is moved into place, then the decisions file fails to move: neither is left behind
    real_replace, moves = os.replace, []

    def replace(src, dst):
        moves.append(dst)
        if len(moves) == 2:
            raise OSError(errno.EIO, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    code = cli.main(["compile", str(EXAMPLES / "nb201_cell.py"), "-o", str(tmp_path / "m.onnx"),
                     "--decisions", str(tmp_path / "d.json")])
    assert code == 10 and len(moves) == 2
    assert re.search(r"cannot write '.*m\.onnx', '.*d\.json': Input/output error", capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


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
    ("import torch\nclass M(torch.nn.Module):\n    def forward(self, x):\n        return torch.fft.fft(x).real\n"
     "def build():\n    return M()\n", 8, "operation .*fft.* has no ONNX lowering"),
    ("import torch\nclass M(torch.nn.Module):\n    def forward(self, x):\n        return x if x.sum() > 0 else -x\n"
     "def build():\n    return M()\n", 5, "cannot lift module 'M': its forward needs the truth value of a value computed from the model's inputs at M.forward line 4 \\(spec.py\\)"),
    ("import torch\nclass M(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
     "        self.a = torch.nn.Parameter(torch.zeros(2))\n        self.c = torch.nn.Conv2d(3, 3, 1)\n"
     "    def forward(self, x):\n        w = torch.softmax(self.a + torch.rand(2), -1)\n"
     "        return w[0] * self.c(x) + w[1] * x\n"
     "def build():\n    return M()\n", 5, "cannot lift module 'M': its forward draws random numbers"),
    ("import torch\nclass M(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
     "        self.a = torch.nn.Parameter(torch.zeros(2))\n        self.c = torch.nn.Conv2d(3, 3, 1)\n"
     "    def forward(self, x):\n        w = torch.sigmoid(self.a)\n        return self.c(x) * self.c(x) * w[0]\n"
     "def build():\n    return M()\n", 6, "architecture weights \\(a softmax or sigmoid of 'a'\\) reach the computation"),
    ("import torch\nclass M(torch.nn.Module):\n    def forward(self, x):\n        y = x[:, :1]\n        y.mul_(2)\n"
     "        return x\ndef build():\n    return M()\n", 5, "writes in place into a view"),
], ids=["missing", "no-build", "build-raises", "not-a-module", "import-error", "unsupported-op", "control-flow",
        "random-sampling", "unconsumed-arch-weights", "inplace-view"])
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



def _zip_bomb(path, state, inflated: int) -> None:
    """A torch.save archive plus one deflated entry of `inflated` zero bytes (a few hundred KB on disk)."""
    import zipfile

    torch.save(state, path)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        prefix = archive.namelist()[0].split("/")[0]
        archive.writestr(f"{prefix}/data/bomb", bytes(inflated))


@pytest.mark.parametrize("flag, kind, message", [
    ("--weights", "text", r"cannot read weights file .*: it is truncated or not a torch.save file \(KeyError"),
    ("--alphas", "text", r"cannot read alphas file .*: it is truncated or not a torch.save file \(KeyError"),
    ("--weights", "directory", r"weights file .* is a directory"),
    ("--alphas", "directory", r"alphas file .* is a directory"),
    ("--weights", "bomb", r"refused to load weights file .*: its archive declares 10\d,[\d,]+ bytes uncompressed, "
                          r"more than the \d[\d,]* this load allows"),
    ("--alphas", "bomb", r"refused to load alphas file .*: its archive declares 10\d,[\d,]+ bytes uncompressed"),
])
def test_unreadable_or_oversized_weights_and_alphas_exit_4(tmp_path, capsys, monkeypatch, flag, kind, message):
    from nascompile import spec

    path = tmp_path / "w.pt"
    if kind == "text":
        path.write_text("hello\n")
    elif kind == "directory":
        path.mkdir()
    else:  # weights may declare 4x the model's tensors + 64 MiB; alphas MAX_ARCHIVE_BYTES (lowered here)
        monkeypatch.setattr(spec, "MAX_ARCHIVE_BYTES", 1 << 20)
        _zip_bomb(path, _nb201_state(tmp_path), 100 << 20)
    code = cli.main(["compile", str(EXAMPLES / "nb201_cell.py"), "-o", str(tmp_path / "m.onnx"), flag, str(path), "-q"])
    assert code == 4
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "m.onnx").exists()


CHATTY_SPEC = """
import sys, torch
from nascompile import nn as nc
print("spec: imported")
IMPORT

class Net(nc.Supernet):
    def __init__(self):
        super().__init__()
        self.a = nc.LayerChoice({"relu": torch.nn.ReLU(), "skip": torch.nn.Identity()}, label="a")

    def forward(self, x):
        print("spec: forward")
        FORWARD
        return self.a(x)

def build():
    print("spec: build")
    BUILD
    return Net()

def example_inputs():
    EXAMPLE
    return (torch.randn(1, 4),)
"""


def chatty_spec(tmp_path, **code: str) -> str:
    text = CHATTY_SPEC
    for place in ("IMPORT", "FORWARD", "BUILD", "EXAMPLE"):
        text = text.replace(place, code.get(place.lower(), "pass"))
    return write_spec(tmp_path, text)


@pytest.mark.parametrize("place, code, where", [
    ("import", "quit()", "in <module>()"), ("build", "sys.exit(0)", "in build()"),
    ("forward", "sys.exit(0)", "in forward()"), ("example", "exit(1)", "in example_inputs()"),
    ("example", "raise OSError('no data')", "raised OSError: no data at "),
])
def test_a_spec_that_exits_or_raises_is_a_spec_error_naming_the_line(tmp_path, capsys, place, code, where):
    spec = chatty_spec(tmp_path, **{place: code})
    assert cli.main(["compile", spec, "-o", str(tmp_path / "m.onnx"), "-q"]) == 3
    err = capsys.readouterr().err
    assert f"{spec}:" in err and where in err, err
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("args", [["report", "--json"], ["export"], ["export", "--format", "nni"],
                                  ["compile", "-o", "m.onnx", "--validate", "-q"]])
def test_the_specs_prints_go_to_stderr_not_into_results(tmp_path, capsys, monkeypatch, args):
    import json

    monkeypatch.chdir(tmp_path)
    command, *rest = args
    assert cli.main([command, chatty_spec(tmp_path), *rest]) == 0
    captured = capsys.readouterr()
    assert "spec: forward" in captured.err and "spec: build" in captured.err and "spec:" not in captured.out
    if command != "compile":
        json.loads(captured.out)


@pytest.mark.parametrize("value", ["math.nan", "math.inf"])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, capsys, value):
    spec = write_spec(tmp_path, f"""
        import math, torch
        from nascompile import nn as nc

        class Net(nc.Supernet):
            def __init__(self):
                super().__init__()
                self.a = nc.LayerChoice({{"relu": torch.nn.ReLU(), "skip": torch.nn.Identity()}}, label="a")
                self.lin = torch.nn.Linear(4, 4)

            def forward(self, x):
                return self.lin(self.a(x))

        def build():
            net = Net()
            net.lin.weight.data[1, 2] = {value}
            return net

        def example_inputs():
            return (torch.randn(1, 4),)
        """)
    code = cli.main(["compile", spec, "-o", str(tmp_path / "m.onnx"), "-q"])
    assert code == 4
    assert "weight 'lin.weight' (of linear) holds 1 non-finite value(s) (NaN or inf; the first at index [1, 2])" \
        in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("where, code, message", [
    ("net.bn.running_var[1] = math.inf", 4, "buffer 'bn.running_var' (of batch_norm) holds 1 non-finite value(s)"),
    ("net.bn.running_mean[2] = math.nan", 4, "buffer 'bn.running_mean' (of batch_norm) holds 1 non-finite value(s) "
                                             "(NaN or inf; the first at index [2])"),
    ("net.a.candidates['conv'].weight.data[0, 0] = math.nan", 0,
     "warning: weight 'a.candidates.conv.weight' holds 1 non-finite value(s) (NaN or inf), but only candidates or "
     "layers the discrete network leaves out use it"),
])
def test_non_finite_tensors_of_kept_buffers_refused_of_pruned_candidates_warned(tmp_path, capsys, where, code, message):
    spec = write_spec(tmp_path, f"""
        import math, torch
        from nascompile import nn as nc

        class Net(nc.Supernet):
            def __init__(self):
                super().__init__()
                self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
                self.bn = torch.nn.BatchNorm2d(4)
                self.a = nc.LayerChoice({{"relu": torch.nn.ReLU(), "conv": torch.nn.Conv2d(4, 4, 1)}}, label="a")
                with torch.no_grad():
                    self.a.alpha.copy_(torch.tensor([1.0, 0.0, -5.0]))  # relu wins

            def forward(self, x):
                return self.a(self.bn(self.conv(x)))

        def build():
            net = Net()
            with torch.no_grad():
                {where}
            return net

        def example_inputs():
            return (torch.randn(1, 3, 8, 8),)
        """)
    out = tmp_path / "m.onnx"
    assert cli.main(["compile", spec, "-o", str(out), "-q", *(["--validate"] if code == 0 else [])]) == code
    assert message in capsys.readouterr().err
    assert out.exists() == (code == 0)


@pytest.mark.parametrize("build, code, message", [
    ("with torch.device('meta'):\n        return Net()", 3, "parameter 'conv.weight' is on the meta device"),
    ("net = Net()\n    net.register_buffer('scale', torch.ones(4, device='meta'))\n    return net", 3,
     "buffer 'scale' is on the meta device"),
    ("net = Net()\n    net.shift = torch.zeros(1, device='meta')\n    return net", 3,
     "tensor attribute 'shift' is on the meta device"),
    ("return Net()", 9, "example input 0 is on the meta device"),
])
def test_a_model_on_the_meta_device_is_a_spec_error_naming_the_tensor(tmp_path, capsys, build, code, message):
    device = ", device='meta'" if code == 9 else ""
    spec = tmp_path / "spec.py"
    spec.write_text(f"""import torch
from nascompile import nn as nc

class Net(nc.Supernet):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.a = nc.LayerChoice({{"relu": torch.nn.ReLU(), "conv": torch.nn.Conv2d(4, 4, 1)}}, label="edge0")

    def forward(self, x):
        y = self.a(self.conv(x))
        return y + self.shift if hasattr(self, "shift") else y  # a plain tensor attribute the forward reads

def build():
    {build}

def example_inputs():
    return (torch.randn(1, 3, 8, 8{device}),)
""")
    assert cli.main(["compile", str(spec), "-o", str(tmp_path / "m.onnx"), "-q"]) == code
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("args, code, message", [
    (["--input-shape", "1,4,32,32"], 9, "conv2d at module 'stem.0'.*3 channels"),
    (["--input-shape", "1,x,32"], 9, "comma-separated integers"),
    (["--pipeline", "darts-choice,bogus"], 14, "unknown pass 'bogus'"),
    (["--pipeline", "finalize{rank}"], 14, "must be key=value"),
    (["--max-final-edges", "0"], 6, "max_final_edges must be a positive int"),
    (["--batch-sizes", "0"], 9, "must be positive integers"),
    (["--input-shape", "100000,100000,100000"], 9, "needs 4,000,000,000,000,000 bytes of float32"),
])
def test_bad_options(tmp_path, args, code, message):
    proc = run_cli("compile", str(EXAMPLES / "darts_cnn.py"), "-o", str(tmp_path / "m.onnx"), *args)
    assert proc.returncode == code, proc.stderr
    assert re.search(message, proc.stderr), proc.stderr
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("args, message", [
    (["compile", "-o", "m.onnx", "--opset", "99"], "opset 99 is not supported; nascompile emits opsets 14 to 21"),
    (["compile", "-o", "m.onnx", "--opset", "13"], "opset 13 is not supported"),
    (["compile", "-o", "m.onnx", "--opset", "100000000000"], "opset 100000000000 is not supported"),
    (["compile", "-o", "m.onnx", "--atol", "-1"], "argument --atol: '-1' must be a finite number >= 0"),
    (["compile", "-o", "m.onnx", "--atol", "nan"], "argument --atol: 'nan' must be a finite number >= 0"),
    (["compile", "-o", "m.onnx", "--rtol", "inf"], "argument --rtol: 'inf' must be a finite number >= 0"),
    (["compile", "-o", "m.onnx", "--near-tie", "-1"], "argument --near-tie: '-1' must be a finite number >= 0"),
    (["report", "--near-tie", "x"], "argument --near-tie: 'x' is not a number"),
    (["export", "--format", "nni", "--name", "X"], "usage error: --name applies to --format genotype only"),
    (["compile", "-o", "m.onnx", "--max-abs", "0.1"], "usage error: --max-abs gate fp16/int8 models"),
    (["compile", "-o", "m.onnx", "--precision", "fp16", "--calibration", "c.npy"],
     "usage error: --calibration applies to --precision int8 only"),
    (["compile", "-o", "m.onnx", "--precision", "fp16", "--min-cosine", "1.5"], "'1.5' must lie between 0 and 1"),
    (["export", "--fresh-weights"], "usage error: --fresh-weights applies to --format pytorch only"),
    (["export", "--format", "pytorch"], "usage error: --format pytorch needs -o DIRECTORY"),
])
def test_bad_flags_are_usage_errors(tmp_path, args, message):
    command, *rest = args
    proc = run_cli(command, str(EXAMPLES / "nb201_cell.py"), *rest, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []


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


@pytest.mark.parametrize("gate, message", [
    (["--max-abs", "0"], r"max abs error .* > --max-abs 0"),
    (["--min-cosine", "1"], r"worst cosine similarity .* < --min-cosine 1"),
])
def test_accuracy_gate_missed_exits_18(tmp_path, capsys, gate, message):
    code = cli.main(["compile", str(EXAMPLES / "nb201_cell.py"), "-o", str(tmp_path / "m.onnx"), "--precision", "fp16",
                     "--accuracy-samples", "8", "--decisions", str(tmp_path / "d.json"), *gate])
    err = capsys.readouterr().err
    assert code == 18, err
    assert "accuracy gate failed" in err and re.search(message, err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind, message", [
    ("missing", "does not exist"),
    ("pickle", "no pickled objects"),
    ("shape", r"input 0 has shape \[4, 3, 16, 16\], expected \[N, 3, 32, 32\]"),
    ("nan", "NaN or infinite"),
    ("spec-raises", r"calibration_data\(\) failed: RuntimeError: no data here"),
])
def test_bad_calibration_exits_19(tmp_path, capsys, kind, message):
    import numpy as np

    out = tmp_path / "out"
    out.mkdir()
    spec, data = str(EXAMPLES / "nb201_cell.py"), tmp_path / "c.npy"
    if kind == "pickle":
        np.save(data, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif kind in ("shape", "nan"):
        np.save(data, np.full((4, 3, 16, 16) if kind == "shape" else (4, 3, 32, 32), np.nan if kind == "nan" else 0.0,
                              np.float32))
    args = [] if kind == "spec-raises" else ["--calibration", str(data)]
    if kind == "spec-raises":
        spec = write_spec(tmp_path, f"""
            import sys
            sys.path.insert(0, {str(EXAMPLES)!r})
            from nb201_cell import build, example_inputs

            def calibration_data():
                raise RuntimeError("no data here")
            """)
    code = cli.main(["compile", spec, "-o", str(out / "m.onnx"), "--precision", "int8", "--accuracy-samples", "4", *args])
    err = capsys.readouterr().err
    assert code == 19, err
    assert "calibration error" in err and re.search(message, err), err
    assert list(out.iterdir()) == []
