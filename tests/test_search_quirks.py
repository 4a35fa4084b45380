"""Search-time code in the supernet's fixed parts lifts and validates: zero ops, offset slices, sum(), None."""

from __future__ import annotations

import torch
from torch import nn

import nascompile
from nascompile.passes import PIPELINE_O0

from conftest import example

ops = example("darts_ops")


class Quirks(nn.Module):
    def __init__(self):
        super().__init__()
        self.zero = ops.Zero(1)
        self.strided_zero = ops.Zero(2)
        self.reduce = ops.FactorizedReduce(4, 4)
        self.drop = ops.DropPath(0.3)
        self.aux = nn.Linear(4, 3)

    def forward(self, x):
        y = sum([self.drop(x), self.zero(x), x * 2])  # sum() starts from the int 0
        z = self.reduce(y) + self.strided_zero(y)
        aux = self.aux(z.mean([2, 3])) if self.training else None
        return z, aux


def test_search_time_quirks_compile_and_validate(tmp_path):
    model = ops.randomize_batch_norm_statistics(Quirks()).eval()
    # -O0 keeps the quirks visible in the graph (-O1 would fold `x.mul(0.)` away)
    result = nascompile.compile(model, torch.randn(1, 4, 8, 8), pipeline=PIPELINE_O0, verify_each=True)
    counts = result.graph.count_ops()
    assert counts["slice"] == 2 and counts["mul"] == 3  # x[:, :, 1:, 1:] and x[:, :, ::2, ::2]; x.mul(0.) twice
    assert len(result.graph.inputs(result.graph.output_node())) == 1  # the None output is left out
    assert result.save(tmp_path / "quirks.onnx", validate="cpu").validation.passed
