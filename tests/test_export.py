"""Export formats: NNI JSON, DARTS genotype text, the versioned architecture description and its hash,
and `nascompile inspect` reading them back from an emitted ONNX file."""

from __future__ import annotations

import hashlib
import json

import onnx
import pytest
import torch
from onnx import TensorProto, helper

import nascompile
from nascompile.errors import ModelFileError
from nascompile.export import canonical_json, content_hash, read_onnx_metadata

from conftest import EXAMPLES, example, run_cli

darts_cnn = example("darts_cnn")


@pytest.fixture(scope="module")
def darts():
    return nascompile.compile(darts_cnn.build(), darts_cnn.example_inputs())


def test_description_lists_cells_nodes_edges_and_decisions(darts):
    doc = darts.description()
    assert doc["format"] == "nascompile-architecture" and doc["version"] == 1
    assert len(doc["cells"]) == 8 and doc["decisions"] == darts.decisions
    cell = doc["cells"][0]
    assert [i["index"] for i in cell["inputs"]] == [0, 1] and [n["index"] for n in cell["nodes"]] == [2, 3, 4, 5]
    assert cell["concat"] == [2, 3, 4, 5]
    for node in cell["nodes"]:  # each edge names its chosen op, its label and an earlier state
        for edge in node["edges"]:
            assert edge["source"] < node["index"] and darts.decisions[edge["label"]] == edge["op"]
    assert doc["genotype"] == str(darts.genotype)


def test_the_hash_is_the_sha256_of_the_canonical_description_without_itself(darts):
    doc = json.loads(darts.to_json())
    body = {k: v for k, v in doc.items() if k != "sha256"}
    expected = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert doc["sha256"] == expected == darts.sha256 == content_hash(doc)
    assert canonical_json({"b": 1, "a": [1.5, None]}) == '{"a":[1.5,null],"b":1}'


def test_same_architecture_same_hash_and_a_changed_decision_changes_it(darts):
    again = nascompile.compile(darts_cnn.build(), darts_cnn.example_inputs(), pipeline="darts-choice,finalize,dce,expand")
    assert again.sha256 == darts.sha256  # the pipeline is not part of the architecture
    other = nascompile.compile(darts_cnn.build(seed=1), darts_cnn.example_inputs())
    assert other.decisions != darts.decisions and other.sha256 != darts.sha256


def test_onnx_metadata_carries_the_description_and_inspect_reads_it(darts, tmp_path):
    path = tmp_path / "darts.onnx"
    darts.save(path)
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["nascompile.architecture.sha256"] == darts.sha256
    assert json.loads(props["nascompile.architecture"]) == darts.description()
    stored = read_onnx_metadata(path)
    assert stored.hash_ok and stored.decisions == darts.decisions and stored.sha256 == darts.sha256
    proc = run_cli("inspect", str(path))
    assert proc.returncode == 0, proc.stderr
    assert f"architecture sha256: {darts.sha256} (matches the stored description; the graph and weights are not " \
           "covered by it)" in proc.stdout
    assert "normal_n3_p0      [] (edge dropped)" in proc.stdout and "genotype: Genotype(" in proc.stdout
    proc = run_cli("inspect", str(path), "--json")
    assert json.loads(proc.stdout)["decisions"] == darts.decisions


def test_inspect_refuses_a_tampered_hash(darts, tmp_path):
    model = darts.to_onnx()
    for prop in model.metadata_props:
        if prop.key == "nascompile.architecture":
            prop.value = prop.value.replace("avg_pool_3x3", "max_pool_3x3", 1)
    path = tmp_path / "tampered.onnx"
    onnx.save(model, str(path))
    assert read_onnx_metadata(path).hash_ok is False
    proc = run_cli("inspect", str(path))
    assert proc.returncode == ModelFileError.exit_code and "DOES NOT MATCH" in proc.stdout
    assert "metadata was changed" in proc.stderr


def test_inspect_errors_clearly_on_files_it_cannot_use(tmp_path):
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a protobuf\n" * 10)
    plain = tmp_path / "plain.onnx"
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(plain))
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    cases = {str(text): "is not an ONNX model", str(plain): "without nascompile metadata",
             str(empty): "is not an ONNX model", str(tmp_path / "missing.onnx"): "does not exist"}
    for path, message in cases.items():
        proc = run_cli("inspect", path)
        assert proc.returncode == ModelFileError.exit_code, (path, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr


def test_export_command_formats(tmp_path):
    spec = str(EXAMPLES / "darts_cnn.py")
    proc = run_cli("export", spec, "--format", "nni", "-q")
    assert proc.returncode == 0, proc.stderr
    nni = json.loads(proc.stdout)
    assert nni["normal_n2_switch"] == ["normal_n2_p0", "normal_n2_p1"] and nni["normal_n3_p0"] == []
    proc = run_cli("export", spec, "--format", "genotype", "--name", "SEARCHED", "-q")
    assert proc.returncode == 0 and proc.stdout.startswith("SEARCHED = Genotype(normal=[(")
    assert proc.stdout.rstrip().endswith("reduce_concat=range(2, 6))")
    out = tmp_path / "arch.json"
    proc = run_cli("export", spec, "-o", str(out), "-q")
    doc = json.loads(out.read_text())
    assert proc.returncode == 0 and proc.stdout == "" and doc["sha256"] == content_hash(doc)


def test_genotype_export_of_a_space_that_is_not_darts_shaped_says_why():
    proc = run_cli("export", str(EXAMPLES / "nb201_cell.py"), "--format", "genotype", "-q")
    assert proc.returncode == 16 and proc.stdout == ""
    assert "has no DARTS genotype" in proc.stderr and "--format json" in proc.stderr


def test_a_description_without_cells_still_hashes():
    result = nascompile.compile(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1)), torch.randn(1, 3, 4, 4))
    doc = result.description()
    assert doc["cells"] == [] and doc["decisions"] == {} and doc["genotype"] is None
    assert doc["sha256"] == content_hash(doc)
