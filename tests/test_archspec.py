"""Given architectures: parsing each form (`archspec.py`) and applying it to a supernet (`apply-arch`)."""

from __future__ import annotations

import json

import pytest
import torch

import nascompile
from nascompile.archspec import parse_arch, parse_nb201
from nascompile.errors import ChoiceError

from conftest import example

NB201 = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"

GENOTYPES_PY = '''
from collections import namedtuple
Genotype = namedtuple('Genotype', 'normal normal_concat reduce reduce_concat')
PRIMITIVES = ['none', 'max_pool_3x3']
DARTS_V2 = Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1),
    ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5],
    reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0),
    ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])
DARTS = DARTS_V2
'''


@pytest.fixture(scope="module")
def nb201():
    module = example("nb201_cell")
    return module.build(), module.example_inputs()


@pytest.fixture(scope="module")
def darts():
    module = example("darts_cnn")
    return module.build(n_layers=3), module.example_inputs()


def test_forms_are_told_apart(tmp_path):
    assert parse_arch(NB201).kind == "nb201"
    assert parse_arch('{"e": "conv"}').value == {"e": "conv"}
    assert parse_arch({"e": []}).kind == "nni"
    path = tmp_path / "genotypes.py"
    path.write_text(GENOTYPES_PY)
    spec = parse_arch(f"{path}:DARTS")  # an alias of DARTS_V2, read with ast (the file is never run)
    assert spec.kind == "genotype" and spec.value["normal"][5] == ("skip_connect", 0)
    assert spec.value["reduce_concat"] == [2, 3, 4, 5]
    (tmp_path / "a.txt").write_text(NB201 + "\n")
    assert parse_arch(str(tmp_path / "a.txt")).value == parse_nb201(NB201)


@pytest.mark.parametrize("text, message", [
    ("|nor_conv_3x3~1|", "node 1 must name one edge from each of the states 0..0"),
    ("|a~0|+|b~0|", "node 2 must name one edge"),
    ("|a~0|+", "is not a NAS-Bench-201 string"),
    ("Genotype(normal=[('a', 0)], normal_concat=__import__('os'), reduce=[], reduce_concat=[])", "must be a literal"),
    ("Genotype(normal=[('a', 0)])", "lacks normal_concat, reduce, reduce_concat"),
    ('{"e": 3}', "must be a candidate name, [] or a list"),
    ("{not json", "is not valid JSON"),
    ("no_such_file.json", "is neither a file nor an architecture string"),
])
def test_malformed_architectures_are_refused(text, message):
    with pytest.raises(ChoiceError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        parse_arch(text)


def test_genotypes_file_name_typo_suggests(tmp_path):
    path = tmp_path / "genotypes.py"
    path.write_text(GENOTYPES_PY)
    with pytest.raises(ChoiceError, match="did you mean 'DARTS_V2'"):
        parse_arch(f"{path}:DARTS_V3")


def test_nb201_string_with_zero_ops_validates(nb201, tmp_path):
    model, inputs = nb201
    result = nascompile.compile(model, inputs, arch=NB201, verify_each=True)
    assert result.decisions["edge_2_0"] == [] and result.decisions["edge_3_2"] == "nor_conv_1x1"
    assert result.decisions["node_2"] == ["edge_2_0", "edge_2_1"]  # n_chosen=None keeps every input
    report = result.save(tmp_path / "a.onnx", validate="cpu")
    assert report.validation.passed


def test_all_zero_cell_computes_zeros_like_the_supernet(nb201, tmp_path):
    model, inputs = nb201
    arch = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    result = nascompile.compile(model, inputs, arch=arch, verify_each=True)
    assert "zero" in result.graph.count_ops() or result.graph.count_ops().get("constant")
    assert result.save(tmp_path / "z.onnx", validate="cpu").validation.passed


def test_genotype_round_trip_reproduces_decisions_and_hash(darts):
    model, inputs = darts
    derived = nascompile.compile(model, inputs)
    given = nascompile.compile(model, inputs, arch=str(derived.genotype), verify_each=True)
    assert given.decisions == derived.decisions
    assert str(given.genotype) == str(derived.genotype)  # the node edges keep the genotype's order
    assert given.sha256 == derived.sha256
    from_json = nascompile.compile(model, inputs, arch=derived.to_json())
    assert from_json.sha256 == derived.sha256
    ref = given.reference()[0]
    assert torch.equal(ref, derived.reference()[0])


def test_nni_decisions_apply_and_edit(darts):
    model, inputs = darts
    decisions = dict(nascompile.compile(model, inputs).decisions)
    decisions["normal_n2_p0"] = "sep_conv_3x3"
    result = nascompile.compile(model, inputs, arch=json.dumps(decisions), verify_each=True)
    assert result.decisions["normal_n2_p0"] == "sep_conv_3x3"


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(normal_n2_p0="sepconv_3x3"), "has no candidate 'sepconv_3x3'; did you mean 'sep_conv_3x3'"),
    (lambda d: d.update(normal_n2_px="skip_connect"), "'normal_n2_px' names no choice of the supernet; did you mean"),
    (lambda d: d.update(normal_n3_switch=["normal_n3_p0"]), "keeps n_chosen=2 inputs, but the architecture keeps 1"),
    (lambda d: d.update(normal_n3_switch=["normal_n3_p0", "normal_n3_q1"]), "has no input 'normal_n3_q1'"),
    (lambda d: d.pop("normal_n2_p0"), "gives no op for layer choice 'normal_n2_p0'"),
])
def test_architectures_that_do_not_fit_are_refused(darts, edit, message):
    model, inputs = darts
    decisions = dict(nascompile.compile(model, inputs).decisions)
    edit(decisions)
    with pytest.raises(ChoiceError, match=message.replace("(", r"\(")):
        nascompile.compile(model, inputs, arch=decisions)


def test_genotype_that_does_not_fit_the_cells_is_refused(darts, nb201):
    model, inputs = darts
    genotype = str(nascompile.compile(model, inputs).genotype)
    with pytest.raises(ChoiceError, match="normal_concat is \\[2, 3, 4\\]"):
        nascompile.compile(model, inputs, arch=genotype.replace("normal_concat=range(2, 6)", "normal_concat=[2, 3, 4]"))
    with pytest.raises(ChoiceError, match="reads state 7"):
        nascompile.compile(model, inputs, arch=genotype.replace("('skip_connect', 1)", "('skip_connect', 7)", 1))
    with pytest.raises(ChoiceError, match="is not labelled 'normal' or 'reduce'"):
        nascompile.compile(*nb201, arch=genotype)
    with pytest.raises(ChoiceError, match="has 2 nodes after one input"):
        nascompile.compile(*nb201, arch="|skip_connect~0|+|none~0|skip_connect~1|")


def test_plain_sums_follow_the_genotype():
    """DARTS's own search code sums every edge of a node (finalize's nodes): the genotype picks the edges."""
    reference = example("darts_reference")
    model, inputs = reference.build(layers=3), reference.example_inputs()
    derived = nascompile.compile(model, inputs)
    given = nascompile.compile(model, inputs, arch=str(derived.genotype), verify_each=True)
    assert given.decisions == derived.decisions and str(given.genotype) == str(derived.genotype)
