"""ONNX niceties: value_info for every intermediate (strict shape inference), doc strings, --dynamic-spatial."""

from __future__ import annotations

import onnx
import pytest
import torch

import nascompile
from nascompile.errors import InputShapeError, LoweringError

from conftest import example


@pytest.fixture(scope="module")
def nb201():
    module = example("nb201_cell")
    return nascompile.compile(module.build(), module.example_inputs())


def _dims(value) -> list:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_every_intermediate_has_a_full_type(nb201):
    model = nb201.to_onnx()
    typed = {v.name: v for v in model.graph.value_info}
    outputs = {o.name for o in model.graph.output}
    for node in model.graph.node:
        for name in node.output:
            assert name in typed or name in outputs, name
    assert all(d.HasField("dim_value") or d.dim_param for v in typed.values() for d in v.type.tensor_type.shape.dim)
    assert _dims(typed["stem.0"]) == ["batch", 16, 32, 32]
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    assert len(inferred.graph.value_info) == len(model.graph.value_info)


def test_doc_strings_say_shape_and_meaning(nb201):
    model = nb201.to_onnx()
    assert model.graph.input[0].doc_string == "input 0 of the supernet's forward (argument 'x'): float32[batch, 3, 32, 32]"
    assert model.graph.output[0].doc_string == ("output 0 of the supernet's forward, computed by module 'classifier': "
                                                "float32[batch, 10]")


def test_dynamic_spatial_runs_at_two_sizes(nb201, tmp_path):
    report = nb201.save(tmp_path / "m.onnx", validate="cpu", dynamic_spatial=True)
    sizes = {c.output for c in report.validation.comparisons}
    assert sizes == {"output", "output at 64x64"} and report.validation.passed
    model = onnx.load(tmp_path / "m.onnx")
    assert _dims(model.graph.input[0]) == ["batch", 3, "height", "width"]
    assert _dims(model.graph.output[0]) == ["batch", 10]


def test_dynamic_spatial_refuses_a_pool_that_bakes_the_size(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(2))
    result = nascompile.compile(net, torch.randn(1, 3, 10, 10))
    with pytest.raises(LoweringError, match="depend on the input's height and width"):
        result.save(tmp_path / "m.onnx", dynamic_spatial=True)
    assert list(tmp_path.iterdir()) == []


def test_a_model_that_only_runs_at_its_example_size_is_refused(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.Flatten(), torch.nn.Linear(3 * 64, 5))
    result = nascompile.compile(net, torch.randn(1, 3, 8, 8))
    with pytest.raises(InputShapeError, match=r"does not run at 16x16 .*compile without --dynamic-spatial"):
        result.save(tmp_path / "m.onnx", validate="cpu", dynamic_spatial=True)
    assert list(tmp_path.iterdir()) == []
