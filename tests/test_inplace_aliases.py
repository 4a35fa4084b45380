"""`y += t` writes into the tensor `y` names, so every alias of it sees the write (fx alone would trace
`y = y + t`): the ONNX file computes what eager PyTorch computes, without needing --validate to notice."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

import nascompile
from nascompile import nn as nc


def _iadd(self, x):
    y = x
    y += self.a(x)
    return y * x


def _isub(self, x):
    y = self.a(x)
    z = y
    z -= x
    return y + 1


def _imul(self, x):
    y = x * 1
    alias = y
    y *= self.a(x)
    return alias + y


def _number(self, x):
    n = 2
    m = n
    m += 1  # a Python number: only `m` changes
    return self.a(x) * n + m


@pytest.mark.parametrize("forward", [_iadd, _isub, _imul, _number], ids=lambda f: f.__name__)
def test_augmented_assignment_writes_through_aliases(tmp_path, forward):
    class Net(nc.Supernet):
        def __init__(self):
            super().__init__()
            self.a = nc.LayerChoice({"conv": nn.Conv2d(4, 4, 1), "relu": nn.ReLU()}, label="a")
            with torch.no_grad():
                self.a.alpha.copy_(torch.tensor([2.0, 0.0, -5.0]))

        forward = _iadd

    Net.forward = forward
    torch.manual_seed(0)
    model = Net().eval()
    x = torch.randn(1, 4, 6, 6)
    result = nascompile.compile(model, (x.clone(),))
    result.save(tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        model.a = model.a.candidates["conv"]  # the decision, fixed: eager PyTorch on a copy of the input
        expected = forward(model, x.clone()).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
