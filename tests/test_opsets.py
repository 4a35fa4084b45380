"""The supported opset range (`nascompile/opsets.py`) holds at both ends: the DARTS and NAS-Bench-201
examples emit, pass the ONNX checker and validate on onnxruntime at the oldest and the newest opset, and
`to_onnx` refuses one outside it (the command line refuses it while parsing: tests/test_catalogue.py)."""

from __future__ import annotations

import onnx
import pytest

import nascompile
from nascompile.errors import LoweringError
from nascompile.opsets import MAX_OPSET, MIN_OPSET

from conftest import example


@pytest.fixture(scope="module", params=["darts_cnn", "nb201_cell"])
def compiled(request):
    module = example(request.param)
    return nascompile.compile(module.build(), module.example_inputs())


@pytest.mark.parametrize("opset", [MIN_OPSET, MAX_OPSET])
def test_both_ends_of_the_range_validate(compiled, opset, tmp_path):
    report = compiled.save(tmp_path / "m.onnx", opset=opset, validate="cpu", batch_sizes=(2,))
    assert report.validation.passed
    assert onnx.load(str(tmp_path / "m.onnx")).opset_import[0].version == opset


@pytest.mark.parametrize("opset", [MIN_OPSET - 1, MAX_OPSET + 1])
def test_an_opset_outside_the_range_is_refused(compiled, opset):
    with pytest.raises(LoweringError, match=f"opset {opset} is not supported; nascompile emits opsets "
                                            f"{MIN_OPSET} to {MAX_OPSET}"):
        compiled.to_onnx(opset)
