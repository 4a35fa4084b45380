"""-O0 / -O1 end to end: the optimized DARTS network is smaller, computes the same, and validates."""

from __future__ import annotations

import onnx
import pytest
import torch

import nascompile
from nascompile.passes import PIPELINE_O0, PIPELINE_O1

from conftest import example, run_cli


def _randomize_batch_norm_statistics(model: torch.nn.Module) -> None:
    """Trained-looking statistics, so that folding batch norms is tested on real numbers."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.5)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) * 2 + 0.2)
            if module.affine:
                module.weight.data.copy_(1 + 0.3 * torch.randn(module.num_features, generator=generator))
                module.bias.data.copy_(0.3 * torch.randn(module.num_features, generator=generator))


@pytest.fixture(scope="module")
def darts_levels():
    module = example("darts_cnn")
    model = module.build()
    _randomize_batch_norm_statistics(model)
    inputs = module.example_inputs()
    o0 = nascompile.compile(model, inputs, pipeline=PIPELINE_O0)
    o1 = nascompile.compile(model, inputs, verify_each=True)  # -O1 is the default; every pass checked
    return o0, o1


def test_o1_is_the_default_pipeline(darts_levels):
    assert darts_levels[1].pipeline == PIPELINE_O1


def test_o1_folds_batch_norms_skips_and_shared_relus(darts_levels):
    o0, o1 = (result.graph.count_ops() for result in darts_levels)
    assert "identity" in o0 and "identity" not in o1
    # only the batch norms after DARTS's pools remain (count_include_pad=False on shared states)
    graph = darts_levels[1].graph
    assert all(graph.op(graph.inputs(bn)[0]) in ("max_pool2d", "avg_pool2d") for bn in graph.nodes_of("batch_norm"))
    # one ReLU per distinct argument
    relu_args = [graph.inputs(r)[0] for r in graph.nodes_of("relu")]
    assert len(relu_args) == len(set(relu_args)) < o0["relu"]


def test_o1_lays_out_factorized_reduce_and_cell_outputs_for_onnxruntime(darts_levels):
    o0, o1 = (result.graph.count_ops() for result in darts_levels)
    assert o0["slice"] == 4 and "slice" not in o1  # FactorizedReduce's crops became zero taps (slice-as-conv)
    # split-cat-convs: of the 8 cell concatenations only the last (read by the classifier's pooling) is made;
    # the 4 FactorizedReduce concatenations stay: 2 of convolutions (skip_connect in reduction cells), 2 of the
    # sums their split convolutions became (preprocessing of the cells after reduction cells)
    assert o0["cat"] == 12 and o1["cat"] == 5
    graph = darts_levels[1].graph
    assert sum(all(graph.op(p) == "conv2d" for p in graph.inputs(cat)) for cat in graph.nodes_of("cat")) == 2


def test_o1_onnx_validates_and_has_fewer_layout_breakers(darts_levels, tmp_path):
    o0, o1 = darts_levels
    ops = []
    for name, result in (("o0", o0), ("o1", o1)):
        report = result.save(tmp_path / f"{name}.onnx", validate="cpu", batch_sizes=(1, 3))
        assert report.validation.passed, report.validation.summary()
        ops.append([node.op_type for node in onnx.load(str(tmp_path / f"{name}.onnx")).graph.node])
    assert ops[0].count("BatchNormalization") == 81 and ops[1].count("BatchNormalization") == 6
    assert "Slice" in ops[0] and "Slice" not in ops[1] and ops[1].count("Concat") < ops[0].count("Concat")


def test_nb201_o1_verifies_each_pass_and_validates(tmp_path):
    module = example("nb201_cell")
    model = module.build(cells_per_stage=2)
    _randomize_batch_norm_statistics(model)
    result = nascompile.compile(model, module.example_inputs(), verify_each=True)
    graph = result.graph
    # every batch norm after a convolution folded; the head's, after the last cell's sum, stays
    assert [graph.op(graph.inputs(bn)[0]) for bn in graph.nodes_of("batch_norm")] == ["sum"]
    assert result.save(tmp_path / "nb201.onnx", validate="cpu").validation.passed


def test_cli_darts_validates_with_verify_each(tmp_path):
    out = tmp_path / "darts.onnx"
    done = run_cli("compile", "examples/darts_cnn.py", "-o", str(out), "--validate", "--verify-each")
    assert done.returncode == 0, done.stderr
    assert out.exists() and "ok" in done.stdout


def test_cli_o0_keeps_the_unoptimized_graph(tmp_path):
    out = tmp_path / "darts.onnx"
    done = run_cli("compile", "examples/darts_cnn.py", "-o", str(out), "-O0", "-q")
    assert done.returncode == 0, done.stderr
    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert {"BatchNormalization", "Identity"} <= ops


def test_cli_optimization_level_and_pipeline_exclude_each_other(tmp_path):
    done = run_cli("compile", "examples/darts_cnn.py", "-o", str(tmp_path / "x.onnx"), "-O1", "--pipeline", "dce")
    assert done.returncode == 2 and "not allowed with argument" in done.stderr
