"""The bad-input catalogue (issue 6): every way a user can get it wrong gives one clear paragraph naming what
and where (module path, label, file) and how to fix it, its own exit code, and no output file.

Where each item is tested (the CLI run in-process here, as a subprocess in `test_cli.py`):

| item                                                   | exit | test                                          |
|--------------------------------------------------------|------|-----------------------------------------------|
| NaN / +inf / -inf logits                               | 6    | test_cli::test_bad_specs, test_non_finite_... |
| a layer choice with no logits (NNI, no mutator)        | 6    | test_a_layer_choice_without_logits            |
| logits of the wrong shape (`alpha`, `--alphas`)        | 6, 4 | test_alpha_of_the_wrong_shape, ..._alphas_... |
| n_chosen < 1 or > candidates                           | 6    | test_n_chosen_out_of_range_*                  |
| a choose_from label that does not exist                | 6    | test_a_choose_from_label_naming_no_choice     |
| one label, different candidate counts                  | 6    | test_one_label_with_different_candidates      |
| a cycle (IR text only)                                 | 7    | test_a_cycle_in_ir_text                       |
| data-dependent control flow                            | 5    | test_cli::test_bad_specs                      |
| an op with no ONNX lowering                            | 8    | test_cli::test_bad_specs                      |
| an input shape that does not fit                       | 9    | test_cli::test_bad_options                    |
| SPEC missing, no build(), build() failing, not a module| 3    | test_cli::test_bad_specs                      |
| weights: not a state dict, truncated, pickled code,    | 4    | test_cli::test_bad_weights_exit_4             |
|   missing / unexpected keys, wrong shapes              |      |                                               |
| output in a missing or read-only directory, under a    | 10   | test_output_*                                 |
|   file, onto a directory, on a failing file system     |      |                                               |
| validation beyond tolerance                            | 11   | test_cli::test_validation_failure_exits_11... |
| ties and near-ties: warnings, not errors               | 0    | test_ties_and_near_ties_are_warned_about      |
"""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
import textwrap

import pytest

from nascompile import cli
from nascompile.errors import IRError
from nascompile.ir import parse_graph

from conftest import EXAMPLES


def run(capsys, *args: str) -> tuple[int, str]:
    """`nascompile ARGS` in this process: (exit code, stderr)."""
    code = cli.main(list(args))
    return code, capsys.readouterr().err


def refused(capsys, out_dir, *args: str, code: int, message: str, left: list[str] = ()) -> str:
    """Run, and check the refusal: exit code, one paragraph matching `message`, no traceback, nothing written
    (`out_dir` holds only what was there before: `left`)."""
    got, err = run(capsys, *args)
    assert got == code, err
    lines = [line for line in err.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("nascompile: "), err
    assert re.search(message, lines[0]), err
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(left), "a failed compile left files behind"
    return lines[0]


@pytest.fixture
def out(tmp_path):
    directory = tmp_path / "out"
    directory.mkdir()
    return directory


def spec_file(tmp_path, text: str) -> str:
    path = tmp_path / "spec.py"
    path.write_text(textwrap.dedent(text))
    return str(path)


ONE_CHOICE = """
import math, torch
from torch import nn
from nascompile import nn as nc

class Net(nc.Supernet):
    def __init__(self):
        super().__init__()
        self.edge = nc.LayerChoice({"relu": nn.ReLU(), "skip": nn.Identity()}, label="edge0")
        self.other = nc.LayerChoice({"relu": nn.ReLU(), "tanh": nn.Tanh()}, label="edge1")
        self.node = nc.InputChoice(n_chosen=1, label="node", choose_from=["edge0", "edge1"])

    def forward(self, x):
        return self.node([self.edge(x), self.other(x)])

def build():
    net = Net()
    BODY
    return net

def example_inputs():
    return (torch.randn(1, 4),)
"""


def one_choice(tmp_path, body: str) -> str:
    return spec_file(tmp_path, ONE_CHOICE.replace("BODY", body))


# --- choices --------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["math.inf", "-math.inf"])
def test_non_finite_logits(tmp_path, out, capsys, value):
    spec = one_choice(tmp_path, f"net.other.alpha.data[0] = {value}")
    refused(capsys, out, "compile", spec, "-o", str(out / "m.onnx"), code=6,
            message=r"layer choice 'edge1' \(other\) has non-finite logits at positions \[0\].*fix the alphas")


def test_a_layer_choice_without_logits(tmp_path, out, capsys):
    # NNI's classic LayerChoice holds no logits: they live in the DartsMutator, which is not attached here
    spec = spec_file(tmp_path, f"""
        import sys
        sys.path.insert(0, {str(EXAMPLES)!r})
        import nni_darts

        def build():
            return nni_darts.build(n_layers=3, channels=4, with_mutator=False)

        example_inputs = nni_darts.example_inputs
    """)
    refused(capsys, out, "compile", spec, "-o", str(out / "m.onnx"), code=6,
            message=r"no logits for layer choice 'normal_n0_p0' \(cells\.0\.mutable_ops\.0\.ops\.0, 7 candidates \+ the zero op\): pass the "
                    r"DartsMutator's choices as arch_params= \(API\) or --alphas FILE")


def test_alpha_of_the_wrong_shape(tmp_path, out, capsys):
    spec = one_choice(tmp_path, "net.edge.alpha = torch.nn.Parameter(torch.zeros(5))")
    refused(capsys, out, "compile", spec, "-o", str(out / "m.onnx"), code=6,
            message=r"layer choice 'edge0' \(edge\) has alpha of shape \[5\] but 2 candidates: it needs 3 logits")


@pytest.mark.parametrize("alphas, message", [
    ({"edge_1_0": [1.0, 2.0, 3.0]}, r"alphas file '.*a\.json': 'edge_1_0' has shape \[3\], but layer choice "
                                    r"'layers\.0\.edges\.edge_1_0' expects \[5\]"),
    ({"edge_1_O": [1.0] * 5}, r"alphas file '.*a\.json': 1 key\(s\) match no choice of the model: 'edge_1_O'; "
                              r"the model's choices take: 'edge_1_0'"),
])
def test_alphas_file_that_does_not_fit(tmp_path, out, capsys, alphas, message):
    (tmp_path / "a.json").write_text(json.dumps(alphas))
    refused(capsys, out, "compile", str(EXAMPLES / "nb201_cell.py"), "-o", str(out / "m.onnx"), "--alphas",
            str(tmp_path / "a.json"), code=4, message=message)


@pytest.mark.parametrize("n_chosen", [0, 3])
def test_n_chosen_out_of_range_when_built(tmp_path, out, capsys, n_chosen):
    spec = spec_file(tmp_path, ONE_CHOICE.replace("n_chosen=1", f"n_chosen={n_chosen}").replace("BODY", "pass"))
    refused(capsys, out, "compile", spec, "-o", str(out / "m.onnx"), code=6,
            message=rf"in build\(\) of SPEC '.*spec\.py': InputChoice\(label='node'\): n_chosen={n_chosen} must be None "
                    r"or an int between 1 and n_candidates=2")


@pytest.mark.parametrize("n_chosen", [0, 3])
def test_n_chosen_out_of_range_when_changed_later(tmp_path, out, capsys, n_chosen):
    spec = one_choice(tmp_path, f"net.node.n_chosen = {n_chosen}")
    refused(capsys, out, "compile", spec, "-o", str(out / "m.onnx"), code=6,
            message=rf"input choice 'node' \(node\): n_chosen={n_chosen} must be None or an int between 1 and "
                    r"n_candidates=2 \(None keeps every input\)")


def test_a_choose_from_label_naming_no_choice(tmp_path, out, capsys):
    spec = spec_file(tmp_path, ONE_CHOICE.replace('choose_from=["edge0", "edge1"]', 'choose_from=["edge0", "egde1"]')
                     .replace("BODY", "pass"))
    refused(capsys, out, "compile", spec, "-o", str(out / "m.onnx"), code=6,
            message=r"input choice 'node' \(node\): choose_from label 'egde1' names no choice in the model; did you "
                    r"mean 'edge1'\?")


@pytest.mark.parametrize("base", ["nc.Supernet", "nn.Module"])
def test_one_label_with_different_candidates(tmp_path, out, capsys, base):
    # a Supernet ties same-label alphas when built; a plain module is caught by darts-choice
    text = ONE_CHOICE.replace('label="edge1"', 'label="edge0"').replace('choose_from=["edge0", "edge1"]',
                                                                        'choose_from=["edge0", "edge0"]')
    spec = spec_file(tmp_path, text.replace("class Net(nc.Supernet)", f"class Net({base})").replace("BODY", "pass"))
    refused(capsys, out, "compile", spec, "-o", str(out / "m.onnx"), code=6,
            message=r"layer choices '(edge|other)' and '(edge|other)' share label 'edge0' but have different "
                    r"candidates \(\['relu', 'skip'.*\] vs \['relu', 'tanh'.*\]\); give them distinct labels")


def test_a_cycle_in_ir_text():
    text = """graph {
  %x = input() {index=0}
  %a = relu(%b)
  %b = relu(%a)
  %output = output(%b)
}
"""
    with pytest.raises(IRError) as info:
        parse_graph(text)
    assert re.fullmatch(r"IR text line 3, column 3: the IR graph has a cycle: %a -> %b -> %a; .*", str(info.value))
    assert info.value.exit_code == 7


# --- output paths ---------------------------------------------------------------------------------
NB201 = str(EXAMPLES / "nb201_cell.py")


def test_output_under_a_file(out, capsys):
    (out / "file").write_text("")
    refused(capsys, out, "compile", NB201, "-o", str(out / "file" / "m.onnx"), code=10,
            message=r"cannot write '.*file/m\.onnx': '.*file' is a file, not a directory", left=["file"])


def test_output_onto_a_directory(out, capsys):
    (out / "m.onnx").mkdir()
    code, err = run(capsys, "compile", NB201, "-o", str(out / "m.onnx"))
    assert code == 10 and re.search(r"'.*m\.onnx': it is a directory; give a file name", err), err
    assert [p.name for p in out.iterdir()] == ["m.onnx"] and list((out / "m.onnx").iterdir()) == []


def test_output_in_a_read_only_directory(out, capsys, monkeypatch):
    # Tests run as root in CI, where chmod does not stop writes: the permission check is what is exercised
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(out) else real_access(path, mode))
    refused(capsys, out, "compile", NB201, "-o", str(out / "m.onnx"), "--decisions", str(out / "d.json"), code=10,
            message=r"cannot write '.*m\.onnx': directory '.*out' is not writable; choose another output path")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only directories")
def test_output_in_a_chmod_read_only_directory(out, capsys):
    out.chmod(0o555)
    try:
        refused(capsys, out, "compile", NB201, "-o", str(out / "m.onnx"), code=10, message="is not writable")
    finally:
        out.chmod(0o755)


@pytest.mark.parametrize("failure, reason", [
    (OSError(errno.EROFS, "Read-only file system"), "Read-only file system"),
    (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
    (PermissionError(errno.EACCES, "Permission denied"), "Permission denied"),
])
def test_output_on_a_failing_file_system(out, capsys, monkeypatch, failure, reason):
    # what the OS says when the directory passes the checks but writing fails (a read-only mount, a full disk)
    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr(tempfile, "mkdtemp", fail)
    refused(capsys, out, "compile", NB201, "-o", str(out / "m.onnx"), code=10,
            message=rf"cannot write '.*m\.onnx': {reason} \(\w+Error\); choose another output path")


def test_a_failing_move_leaves_no_file(out, capsys, monkeypatch):
    # the model is moved into place, then the decisions file fails to move: neither is left
    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(errno.EIO, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    refused(capsys, out, "compile", NB201, "-o", str(out / "m.onnx"), "--decisions", str(out / "d.json"), code=10,
            message=r"cannot write '.*m\.onnx', '.*d\.json': Input/output error")
    assert len(calls) == 2


# --- ties and near-ties are not errors ------------------------------------------------------------
def test_ties_and_near_ties_are_warned_about(tmp_path, out, capsys):
    # edge0: relu and skip tie exactly, p = e / (2e + 1) = 0.422319 each. edge1: tanh beats relu by
    # p(tanh) - p(relu) = 4.2e-5, and node keeps edge1 over edge0 by 0.422343 - 0.422319 = 2.4e-5: near-ties
    spec = one_choice(tmp_path, "net.edge.alpha.data = torch.tensor([1.0, 1.0, 0.0]); "
                                "net.other.alpha.data = torch.tensor([1.0, 1.0001, 0.0])")
    code, err = run(capsys, "compile", spec, "-o", str(out / "m.onnx"), "-q", "--decisions", str(out / "d.json"))
    assert code == 0 and sorted(p.name for p in out.iterdir()) == ["d.json", "m.onnx"]
    assert json.loads((out / "d.json").read_text()) == {"edge0": [], "edge1": "tanh", "node": ["edge1"]}
    assert err.splitlines() == [
        "warning: layer choice 'edge0': candidates ['relu', 'skip'] tie at p=0.422319; chose 'relu' (lowest index)",
        "warning: layer choice 'edge1': near-tie, 'tanh' beats 'relu' by 4.22e-05 (< 0.001)",
        "warning: input choice 'node': near-tie at the cut, kept inputs lead by 2.44e-05 (< 0.001)",
    ], err
    code, err = run(capsys, "compile", spec, "-o", str(out / "m.onnx"), "-q", "--near-tie", "3e-5")
    assert code == 0 and err.splitlines() == [
        "warning: layer choice 'edge0': candidates ['relu', 'skip'] tie at p=0.422319; chose 'relu' (lowest index)",
        "warning: input choice 'node': near-tie at the cut, kept inputs lead by 2.44e-05 (< 3e-05)",
    ], err
