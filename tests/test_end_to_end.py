"""End to end: the bundled examples compile, match the reference, and validate on onnxruntime."""

from __future__ import annotations

import pytest
import torch

import nascompile
from nascompile.ir import run_graph

from conftest import example


@pytest.fixture(scope="module")
def darts():
    module = example("darts_cnn")
    model = module.build()
    return nascompile.compile(model, module.example_inputs(), verify_each=True)


def test_darts_discrete_graph_has_only_chosen_ops(darts):
    ops = darts.graph.count_ops()
    assert "layer_choice" not in ops and "input_choice" not in ops
    # 8 cells x 4 nodes, two edges each: 32 two-input sums, one per cell node (the other sums are
    # split-cat-convs' partial sums of the preprocessing convolutions)
    sums = [n for n in darts.graph.nodes_of("sum") if darts.graph.attrs(n).get("choice")]
    assert len(sums) == 32 and all(len(darts.graph.inputs(n)) == 2 for n in sums)


def test_darts_interpreter_equals_fixed_supernet(darts):
    x = torch.randn(3, 3, 32, 32)
    expected = darts.reference(x)
    actual = run_graph(darts.graph, (x,))
    torch.testing.assert_close(actual[0], expected[0], rtol=0, atol=1e-6)


def test_darts_onnx_validates_on_cpu(darts, tmp_path):
    report = darts.save(tmp_path / "darts.onnx", validate="cpu", batch_sizes=(1, 4))
    assert report.validation.passed
    assert report.validation.max_abs < 1e-5


def test_nb201_keeps_every_edge_and_validates(tmp_path):
    module = example("nb201_cell")
    result = nascompile.compile(module.build(cells_per_stage=2), module.example_inputs(), verify_each=True)
    decisions = result.decisions
    assert decisions["node_3"] == ["edge_3_0", "edge_3_1", "edge_3_2"]
    assert all(isinstance(decisions[f"edge_{j}_{i}"], str) for j in range(1, 4) for i in range(j))
    assert result.save(tmp_path / "nb201.onnx", validate="cpu").validation.passed


def test_a_module_with_a_forward_hook_is_refused():
    from torch import nn

    from nascompile import nn as nc
    from nascompile.errors import TraceError

    class Net(nc.Supernet):
        def __init__(self):
            super().__init__()
            self.c = nc.LayerChoice({"a": nn.Sequential(nn.ReLU()), "b": nn.Identity()}, label="c")

        def forward(self, x):
            return self.c(x)

    net = Net()
    net.c.candidates["a"].register_forward_hook(lambda module, args, out: out * 2)
    with pytest.raises(TraceError, match="module 'c.candidates.a' has forward hooks"):
        nascompile.compile(net, (torch.randn(1, 3),))
