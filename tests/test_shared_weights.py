"""A weight used by several candidates, edges or calls is stored once in the ONNX file (issue 17, item 7)."""

from __future__ import annotations

import onnx
import torch
from torch import nn

import nascompile
from nascompile import nn as nc
from nascompile.passes import PIPELINE_O0


class Shared(nc.Supernet):
    """Two choices whose conv candidate is one module, a linear called twice, a 3-D linear called twice."""

    def __init__(self):
        super().__init__()
        conv = nn.Conv2d(4, 4, 3, padding=1)
        self.a = nc.LayerChoice({"conv": conv, "pool": nn.MaxPool2d(3, 1, 1)}, label="a")
        self.b = nc.LayerChoice({"conv": conv, "pool": nn.MaxPool2d(3, 1, 1)}, label="b")
        self.lin = nn.Linear(4, 4)
        self.seq = nn.Linear(8, 8, bias=False)

    def forward(self, x):
        y = self.a(x) + self.b(x)
        rows = y.flatten(2)  # (batch, 4, 64): a 3-D linear input
        z = self.seq(self.seq(rows[..., :8]))
        return self.lin(y.mean((2, 3))) + self.lin(z.mean(2)) * 2


def test_each_shared_tensor_is_one_initializer(tmp_path):
    net = Shared()
    with torch.no_grad():
        net.a.alpha.copy_(torch.tensor([2.0, 0, 0]))
        net.b.alpha.copy_(torch.tensor([2.0, 0, 0]))
    for pipeline in (PIPELINE_O0, None):
        result = nascompile.compile(net, torch.randn(1, 4, 8, 8), pipeline=pipeline)
        report = result.save(tmp_path / "m.onnx", validate="cpu")
        assert report.validation.passed
        names = [init.name for init in onnx.load(str(tmp_path / "m.onnx")).graph.initializer if init.dims != [1]]
        weights = [n for n in names if "conv" in n or "lin" in n or "seq" in n]
        assert sorted(weights) == ["a.candidates.conv.bias", "a.candidates.conv.weight", "lin.bias", "lin.weight",
                                   "seq.weight_t"], names
