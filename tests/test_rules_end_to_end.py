"""Rule sets end to end: the family's default with no flags, `--rules`, NB201's arch string, genotypes of
cells told apart by their shapes, and the rule set recorded in the ONNX file."""

from __future__ import annotations

import pytest
import torch

import nascompile
from nascompile.errors import ChoiceError
from nascompile.export import read_onnx_metadata

from conftest import example, run_cli

nb201 = example("nb201_cell")


def test_nb201_rules_choose_none_and_the_onnx_validates(tmp_path):
    model = nb201.build()
    result = nascompile.compile(model, nb201.example_inputs(), rules="nb201")
    assert result.choices.rules.source == "--rules"
    nones = [label for label, op in result.decisions.items() if op == "none"]
    assert nones and all(result.choices.layer[label].zero_chosen for label in nones)
    ops = result.arch_string.strip("|").replace("|+|", "|").split("|")
    assert len(ops) == 6 and sum(op.startswith("none~") for op in ops) == len(nones)
    report = result.save(tmp_path / "nb201.onnx", validate="cpu", batch_sizes=(1, 2))
    assert report.validation.passed
    assert read_onnx_metadata(tmp_path / "nb201.onnx").rules == "nb201"


def test_nb201_arch_string_under_darts_rules_matches_the_decisions():
    result = nascompile.compile(nb201.build(), nb201.example_inputs(), pipeline="darts-choice,finalize,expand",
                                rules="darts")
    d = result.decisions
    expected = "+".join("|" + "|".join(f"{d[f'edge_{j}_{i}']}~{i}" for i in range(j)) + "|" for j in (1, 2, 3))
    assert result.arch_string == expected and "none" not in expected


def test_cli_export_nb201_and_its_refusal_for_darts_cells(tmp_path):
    proc = run_cli("export", "examples/nb201_cell.py", "--format", "nb201", "--rules", "gdas", "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("|") and proc.stdout.count("+") == 2
    proc = run_cli("export", "examples/darts_cnn.py", "--format", "nb201", "-q")
    assert proc.returncode != 0 and "no NAS-Bench-201 arch string" in proc.stderr


def test_archai_cells_get_a_genotype_from_their_shapes():
    archai = example("archai_darts")
    result = nascompile.compile(archai.build(n_cells=3, init_ch=4), torch.randn(1, 3, 16, 16))
    assert [cell.reduces for cell in result.architecture.cells] == [False, True, True]
    assert result.genotype is not None and len(result.genotype.normal) == 8


def test_a_supernet_may_declare_its_rule_set_and_rules_overrides_it():
    class Declared(nb201.NB201Network):
        decision_rules = "gdas"

    torch.manual_seed(0)
    model = Declared().eval()
    result = nascompile.compile(model, nb201.example_inputs(), pipeline="darts-choice,finalize")
    assert (result.choices.rules.rules.name, result.choices.rules.source) == ("gdas", "the supernet's decision_rules")
    result = nascompile.compile(model, nb201.example_inputs(), pipeline="darts-choice,finalize", rules="darts")
    assert result.choices.rules.source == "--rules"
    model.decision_rules = "gdass"
    with pytest.raises(ChoiceError, match="declares decision_rules = 'gdass', which is no rule set"):
        nascompile.compile(model, nb201.example_inputs(), pipeline="darts-choice,finalize")
