"""`result.genotype` for search spaces written with nascompile.nn, and where no genotype exists."""

from __future__ import annotations

import torch
from torch import nn

import nascompile
from nascompile import nn as nc

from conftest import example
from test_darts_reference import reference_genotype


def test_nascompile_nn_darts_example_has_darts_genotype():
    darts_cnn = example("darts_cnn")
    model = darts_cnn.build(n_layers=3)
    result = nascompile.compile(model, darts_cnn.example_inputs())
    alphas = {choice.label: choice.alpha.detach() for _, choice in nc.layer_choices(model)}
    matrices = [torch.stack([alphas[f"{kind}_n{i + 2}_p{j}"] for i in range(4) for j in range(i + 2)])
                for kind in ("normal", "reduce")]
    names = list(darts_cnn.OPS) + [nc.ZERO_NAME]
    assert result.genotype == reference_genotype(*matrices, names=names, zero=nc.ZERO_NAME)


def test_search_spaces_that_are_not_darts_shaped_have_no_genotype():
    nb201 = example("nb201_cell")
    result = nascompile.compile(nb201.build(cells_per_stage=1), nb201.example_inputs())
    assert result.architecture is not None and result.genotype is None


def test_nascompile_nn_labels_take_arch_params():
    model = nn.Sequential(nc.LayerChoice({"relu": nn.ReLU(), "skip": nn.Identity()}, label="e"))
    result = nascompile.compile(model, torch.randn(1, 3), arch_params={"e": [0.0, 2.0, 1.0]})
    assert result.decisions == {"e": "skip"}
