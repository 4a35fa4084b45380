"""The emitted file: checker, names, metadata, dynamic batch, determinism, external data, atomic writes."""

from __future__ import annotations

import json
import onnx
import pytest
import torch

import nascompile
from nascompile.backend.save import save_onnx
from nascompile.errors import OutputPathError, ValidationError

from conftest import example


@pytest.fixture(scope="module")
def nb201():
    module = example("nb201_cell")
    return nascompile.compile(module.build(), module.example_inputs())


def test_model_passes_full_check_and_reads_well(nb201, tmp_path):
    path = tmp_path / "m.onnx"
    nb201.save(path)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version >= 17
    initializers = {t.name for t in model.graph.initializer}
    assert "stem.0.weight" in initializers and "classifier.weight" in initializers
    assert any(name.startswith("layers.0.edges.edge_") and ".candidates." in name for name in initializers)
    assert all("/" in n.name for n in model.graph.node)  # "<module path>/<OpType>"
    assert [i.name for i in model.graph.input] == ["x"] and [o.name for o in model.graph.output] == ["output"]


def test_metadata_carries_the_decisions(nb201, tmp_path):
    path = tmp_path / "m.onnx"
    nb201.save(path)
    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert json.loads(props["nascompile.decisions"]) == nb201.decisions
    assert props["nascompile.version"] == nascompile.__version__


def test_batch_is_symbolic_by_default_and_static_on_request(nb201):
    dims = nb201.to_onnx().graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [3, 32, 32]
    static = nb201.to_onnx(dynamic_batch=False).graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in static] == [1, 10]


def test_same_input_gives_byte_identical_files(tmp_path):
    module = example("darts_cnn")
    first = nascompile.compile(module.build(), module.example_inputs()).to_onnx().SerializeToString()
    second = nascompile.compile(module.build(), module.example_inputs()).to_onnx().SerializeToString()
    assert first == second


def test_large_models_go_to_external_data(nb201, tmp_path):
    path = tmp_path / "big.onnx"
    files = save_onnx(nb201.to_onnx(), path, external_data_threshold=1000)
    assert files == [path, tmp_path / "big.onnx.data"]
    assert path.stat().st_size < 100_000 < (tmp_path / "big.onnx.data").stat().st_size
    report = nb201.validate(path)
    assert report.passed


def test_failed_validation_leaves_no_file(nb201, tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    original = nb201.reference
    monkeypatch.setattr(nb201, "reference", lambda *xs: [t + 1 for t in original(*xs)])
    with pytest.raises(ValidationError, match="FAILED"):
        nb201.save(path, validate="cpu", decisions_path=tmp_path / "d.json")
    assert list(tmp_path.iterdir()) == []


def test_missing_output_directory_is_a_clear_error(nb201, tmp_path):
    with pytest.raises(OutputPathError, match="does not exist"):
        nb201.save(tmp_path / "missing" / "m.onnx")


def test_validation_reports_every_batch_and_output(nb201, tmp_path):
    path = tmp_path / "m.onnx"
    report = nb201.save(path, validate="cpu", batch_sizes=(1, 3, 8)).validation
    assert [c.batch_size for c in report.comparisons] == [1, 3, 8]
    assert report.passed and report.max_abs < 1e-5
    assert "batch   8" in report.summary()


def test_two_outputs_keep_their_order(tmp_path):
    class TwoHeads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Conv2d(3, 4, 3)
            self.aux = torch.nn.Linear(4, 2)

        def forward(self, x):
            y = self.body(x)
            return y.relu(), self.aux(y.mean([2, 3]))

    result = nascompile.compile(TwoHeads(), (torch.randn(1, 3, 8, 8),))
    model = result.to_onnx()
    assert [o.name for o in model.graph.output] == ["output_0", "output_1"]
    assert result.save(tmp_path / "two.onnx", validate="cpu").validation.passed
