"""The README's "Your own mixed op" example, run exactly as written, and the MixedOpRecognizer defaults."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch
from torch import nn

import nascompile
from nascompile.errors import ChoiceError
from nascompile.frontend import MixedOpRecognizer
from nascompile.frontend.recognizers import default_recognizers

from conftest import ROOT, example

MARKER = "<!-- custom-recognizer-example -->"


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(re.escape(MARKER) + r"\s*```python\n(.*?)```", text, re.S)
    assert match, f"README.md has no python block after {MARKER}"
    return match.group(1)


def test_readme_example_runs_as_written(tmp_path):
    code = readme_example()
    (tmp_path / "out").mkdir()  # the README's commands write into the repository's out/
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    promised = re.search(r"print\(result\.decisions\)\s*#\s*(.*)", code).group(1)
    assert proc.stdout.strip() == promised  # the README shows the real output
    assert (tmp_path / "out" / "net.onnx").is_file()  # written only once validated


class Zero(nn.Module):
    def forward(self, x):
        return x.mul(0.)


class Branches(nn.Module):
    """A mixed op with a zero op among its candidates, whose logits one parameter holds for two ops."""

    def __init__(self, alpha: nn.Parameter):
        super().__init__()
        self.ops = nn.ModuleDict({"conv": nn.Conv2d(2, 2, 1), "skip": nn.Identity(), "none": Zero()})
        self.alpha = alpha

    def forward(self, x):
        return sum(w * op(x) for w, op in zip(self.alpha.softmax(-1), self.ops.values()))


class BranchesRecognizer(MixedOpRecognizer):
    name = "branches"

    def claims(self, module):
        return isinstance(module, Branches)

    def candidates(self, module):
        return dict(module.ops)

    def logits(self, module, call):
        return module.alpha


class TwoOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        shared = nn.Parameter(torch.tensor([0.0, 1.0, 3.0]))  # `none` is strongest but never chosen
        self.a, self.b = Branches(shared), Branches(shared)

    def forward(self, x):
        return self.a(x), self.b(x) * 2


def test_defaults_label_by_tensor_name_share_logits_and_never_choose_none(tmp_path):
    result = nascompile.compile(TwoOutputs().eval(), torch.randn(1, 2, 4, 4), recognizers=[BranchesRecognizer()])
    assert result.decisions == {"a.alpha": "skip"}  # one label: both ops hold the same parameter
    record = result.choices.layer["a.alpha"]
    assert record.zero == 2 and record.paths == ["a", "b"]
    assert len(result.reference()) == 2
    assert result.save(tmp_path / "two.onnx", validate="cpu").validation.passed


def test_arch_params_override_by_label_and_check_shape():
    model = TwoOutputs().eval()
    result = nascompile.compile(model, torch.randn(1, 2, 4, 4), recognizers=[BranchesRecognizer()],
                                arch_params={"a.alpha": [5.0, 0.0, 0.0]})
    assert result.decisions == {"a.alpha": "conv"}
    with pytest.raises(ChoiceError, match=r"'a.alpha' has shape \[2\], but mixed op 'a' expects \[3\]"):
        nascompile.compile(model, torch.randn(1, 2, 4, 4), recognizers=[BranchesRecognizer()],
                           arch_params={"a.alpha": [5.0, 0.0]})


def test_a_users_recognizer_takes_over_from_a_built_in_one(tmp_path):
    """Asked first, it owns the lift and the reference of the modules it claims (here DARTS's MixedOp)."""
    darts = example("darts_reference")

    class FixedLogits(MixedOpRecognizer):
        name = "fixed-logits"

        def claims(self, module):
            return isinstance(module, darts.MixedOp)

        def candidates(self, module):
            return dict(zip(darts.PRIMITIVES, module._ops))

        def logits(self, module, call):
            return torch.arange(8.0)  # dil_conv_5x5 everywhere

        def label(self, module, call, logits):
            return call.path

        def inputs(self, module, args, kwargs):
            return [args[0]]

    model = darts.build(layers=3, c=4)
    result = nascompile.compile(model, torch.randn(1, 3, 16, 16), recognizers=[FixedLogits(), *default_recognizers()])
    assert {str(v) for v in result.decisions.values()} == {"dil_conv_5x5", "[]"}
    assert result.save(tmp_path / "d.onnx", validate="cpu").validation.passed
