"""fp16 and int8 files: conversion, accuracy figures, gates, calibration data, metadata."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import onnx
import pytest
import torch

import nascompile
from nascompile.accuracy import compare_outputs
from nascompile.backend.quantize import FP16_KEEP_FP32, sums_as_adds, topologically_sorted
from nascompile.calibration import calibration_batches, load_calibration_file
from nascompile.errors import AccuracyError, CalibrationError
from nascompile.runtime import make_session

from conftest import example

SAMPLES = 40  # accuracy inputs per test: enough for the statistics, cheap on a shared machine


@pytest.fixture(scope="module")
def nb201():
    module = example("nb201_cell")
    return nascompile.compile(module.build(), module.example_inputs())


def _types(model: onnx.ModelProto) -> set[int]:
    return {t.data_type for t in model.graph.initializer}


def test_fp16_keeps_float32_io_and_listed_ops(nb201, tmp_path):
    path = tmp_path / "m16.onnx"
    report = nb201.save(path, precision="fp16", validate="cpu", accuracy_samples=SAMPLES)
    model = onnx.load(path)
    io = [v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]]
    assert io == [onnx.TensorProto.FLOAT] * len(io)  # keep_io_types
    assert onnx.TensorProto.FLOAT16 in _types(model)
    assert report.validation.passed  # the fp32 model was validated first
    assert report.accuracy.cosine_min > 0.999 and report.accuracy.top1_agreement == 1.0
    assert report.accuracy.samples == SAMPLES
    # every op listed to stay fp32 reads float32: its inputs come through a Cast to float
    casts = {n.output[0]: n for n in model.graph.node if n.op_type == "Cast"}
    for node in model.graph.node:
        if node.op_type in FP16_KEEP_FP32:
            assert node.input[0] in casts and casts[node.input[0]].attribute[0].i == onnx.TensorProto.FLOAT


def test_int8_is_qdq_and_records_its_accuracy(nb201, tmp_path):
    path = tmp_path / "m8.onnx"
    data = torch.randn(16, 3, 32, 32)
    report = nb201.save(path, precision="int8", calibration=data, accuracy_samples=SAMPLES)
    model = onnx.load(path)
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and "Sum" not in ops
    assert onnx.TensorProto.INT8 in _types(model)
    props = {p.key: p.value for p in model.metadata_props}
    assert props["nascompile.precision"] == "int8"
    assert props["nascompile.calibration"] == "data: 16 inputs"
    stored = json.loads(props["nascompile.accuracy"])
    assert stored["samples"] == SAMPLES and stored["outputs"][0]["cosine_min"] == report.accuracy.cosine_min
    assert json.loads(props["nascompile.decisions"]) == nb201.decisions  # the fp32 metadata is kept
    onnx.checker.check_model(model, full_check=True)


def test_int8_without_data_warns_loudly(nb201, tmp_path):
    with pytest.warns(UserWarning, match="seeded random inputs, not on data"):
        nb201.save(tmp_path / "m8.onnx", precision="int8", accuracy_samples=8)
    props = {p.key: p.value for p in onnx.load(tmp_path / "m8.onnx").metadata_props}
    assert props["nascompile.calibration"].startswith("random:")


def test_a_missed_gate_writes_nothing(nb201, tmp_path):
    path = tmp_path / "m16.onnx"
    with pytest.raises(AccuracyError, match=r"max abs error .* > --max-abs 0") as info:
        nb201.save(path, precision="fp16", max_abs=0.0, min_top1_agreement=0.5, accuracy_samples=8,
                   decisions_path=tmp_path / "d.json")
    assert info.value.exit_code == 18 and "gate --min-top1-agreement 0.5: met" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_top1_gate_needs_a_class_output(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1))
    result = nascompile.compile(net, torch.randn(1, 3, 8, 8))
    with pytest.raises(AccuracyError, match="needs an output shaped"):
        result.save(tmp_path / "m.onnx", precision="fp16", min_top1_agreement=0.9, accuracy_samples=4)
    assert list(tmp_path.iterdir()) == []


def test_statistics():
    expected = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    actual = np.array([[1.0, 0.1, 0.0], [0.0, 0.0, 3.0]])
    stats = compare_outputs("out", actual, expected)
    assert stats.max_abs == 3.0 and stats.top1_matches == 1 and stats.top1_agreement == 0.5
    assert stats.cosine_min == 0.0 and stats.cosine == pytest.approx(0.5 / np.sqrt(1.01))
    zeros = compare_outputs("z", np.zeros((2, 3)), np.zeros((2, 3)))
    assert zeros.cosine == 1.0 and zeros.max_abs == 0.0


def test_sums_become_adds_in_order():
    from onnx import helper

    node = helper.make_node("Sum", ["a", "b", "c"], ["s"], name="n")
    vi = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [2]) for n in "abc"]
    graph = helper.make_graph([node], "g", vi, [helper.make_tensor_value_info("s", onnx.TensorProto.FLOAT, [2])])
    out = sums_as_adds(helper.make_model(graph))
    assert [(n.op_type, list(n.input), list(n.output)) for n in out.graph.node] == [
        ("Add", ["a", "b"], ["s.partial1"]), ("Add", ["s.partial1", "c"], ["s"])]
    feed = {n: np.array([1e8, 1.0], np.float32) * (1 if n != "b" else -1) for n in "abc"}
    assert np.array_equal(make_session(out.SerializeToString()).run(None, feed)[0], (feed["a"] + feed["b"]) + feed["c"])


def test_topological_sort_moves_producers_first():
    from onnx import helper

    nodes = [helper.make_node("Relu", ["t"], ["y"], name="late"), helper.make_node("Relu", ["x"], ["t"], name="early")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])])
    model = topologically_sorted(helper.make_model(graph))
    assert [n.name for n in model.graph.node] == ["early", "late"]


@pytest.mark.parametrize("data, match", [
    (torch.randn(4, 3, 16, 16), r"input 0 has shape \[4, 3, 16, 16\], expected \[N, 3, 32, 32\]"),
    (torch.zeros(4, 3, 32, 32, dtype=torch.int64), "dtype torch.int64"),
    (torch.full((2, 3, 32, 32), float("nan")), "NaN or infinite"),
    ([torch.randn(2, 3, 32, 32)] * 2, "holds 2 tensors but the model takes 1"),
    ({"x": torch.randn(2, 3, 32, 32)}, "must hold a tensor"),
    (torch.randn(0, 3, 32, 32), "N >= 1"),
])
def test_bad_calibration_data(data, match):
    with pytest.raises(CalibrationError, match=match):
        calibration_batches(data, (torch.randn(1, 3, 32, 32),), "calib.pt")


def test_calibration_files(tmp_path):
    array = np.random.default_rng(0).standard_normal((70, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "c.npy", array)
    torch.save([torch.from_numpy(array)], tmp_path / "c.pt")
    batches = calibration_batches(load_calibration_file(tmp_path / "c.npy"), (torch.randn(1, 3, 8, 8),), "c.npy")
    assert [len(b[0]) for b in batches] == [32, 32, 6]
    assert torch.equal(load_calibration_file(tmp_path / "c.pt")[0], torch.from_numpy(array))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CalibrationError, match="no pickled objects"):
        load_calibration_file(tmp_path / "obj.npy")
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "code.pt")
    with pytest.raises(CalibrationError, match="no pickled objects"):
        load_calibration_file(tmp_path / "code.pt")
    (tmp_path / "c.csv").write_text("1,2")
    with pytest.raises(CalibrationError, match=r"must be \.npy"):
        load_calibration_file(tmp_path / "c.csv")
    with pytest.raises(CalibrationError, match="does not exist"):
        load_calibration_file(tmp_path / "missing.npy")


def test_cli_int8_with_the_specs_calibration_data(tmp_path, capsys):
    from nascompile import cli

    from conftest import EXAMPLES

    spec = tmp_path / "spec.py"
    spec.write_text(f"import sys, torch\nsys.path.insert(0, {str(EXAMPLES)!r})\n"
                    "from nb201_cell import build, example_inputs\n\n"
                    "def calibration_data():\n"
                    "    return torch.randn(40, 3, 32, 32, generator=torch.Generator().manual_seed(3))\n")
    code = cli.main(["compile", str(spec), "-o", str(tmp_path / "m.onnx"), "--precision", "int8",
                     "--accuracy-samples", "10", "--min-top1-agreement", "0.5"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "seeded random inputs" not in captured.err
    assert "accuracy of int8 against the fp32 reference (10 seeded inputs, cpu):" in captured.out
    assert "gate --min-top1-agreement 0.5: met" in captured.out
    props = {p.key: p.value for p in onnx.load(tmp_path / "m.onnx").metadata_props}
    assert props["nascompile.calibration"] == "the SPEC's calibration_data(): 40 inputs"
    assert cli.main(["inspect", str(tmp_path / "m.onnx")]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("precision:"))
    assert re.fullmatch(r"precision: int8 \(10 inputs against fp32: cosine min [0-9.]+, max abs \S+, top-1 agreement "
                        r"[0-9.]+%\); calibration: the SPEC's calibration_data\(\): 40 inputs", line), line


def test_cli_pytorch_export(tmp_path, capsys):
    from nascompile import cli

    from conftest import EXAMPLES

    code = cli.main(["export", str(EXAMPLES / "nb201_cell.py"), "--format", "pytorch", "-o", str(tmp_path / "d"), "-q"])
    assert code == 0, capsys.readouterr().err
    source = (tmp_path / "d" / "model.py").read_text()
    assert "pipeline darts-choice,finalize,dce,expand,dce,infer-shapes." in source  # -O0: batch norms kept
    assert "nn.BatchNorm2d" in source and (tmp_path / "d" / "model.safetensors").is_file()


HEAVY = pytest.mark.slow  # the other DARTS-family examples: the same ops as darts_cnn, 5-10 s each


@pytest.mark.parametrize("name", ["nb201_cell", "darts_cnn", pytest.param("darts_reference", marks=HEAVY),
                                  pytest.param("nni_darts", marks=HEAVY), pytest.param("archai_darts", marks=HEAVY)])
def test_every_example_in_fp16_and_int8(name, tmp_path):
    module = example(name)
    result = nascompile.compile(module.build(), module.example_inputs())
    data = torch.randn(8, *module.example_inputs()[0].shape[1:])
    for precision, cosine in (("fp16", 0.999), ("int8", 0.95)):
        report = result.save(tmp_path / f"{precision}.onnx", precision=precision, accuracy_samples=16,
                             calibration=data if precision == "int8" else None, min_cosine=cosine)
        assert report.accuracy.cosine_min >= cosine


def test_cli_dynamic_spatial(tmp_path, capsys):
    from nascompile import cli

    from conftest import EXAMPLES

    code = cli.main(["compile", str(EXAMPLES / "nb201_cell.py"), "-o", str(tmp_path / "m.onnx"), "--validate",
                     "--dynamic-spatial", "--precision", "fp16", "--accuracy-samples", "4"])
    out = capsys.readouterr().out
    assert code == 0 and "batch   2  output at 64x64" in out
    dims = onnx.load(tmp_path / "m.onnx").graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"]
