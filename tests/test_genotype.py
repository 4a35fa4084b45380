"""`result.genotype` for search spaces written with nascompile.nn, and where no genotype exists."""

from __future__ import annotations

import torch
from torch import nn

import nascompile
from nascompile import nn as nc
from nascompile.arch import Architecture, Cell, CellNode, Edge
from nascompile.decisions import Decisions, EdgeRank, FinalizeDecision
from nascompile.genotype import Genotype, darts_genotype

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


# --- darts_genotype on hand-built records ----------------------------------------------------------
def _cell(kind: str, name: str, decisions: Decisions, concat=(2, 3)) -> Cell:
    """Two nodes over inputs s0, s1: node 0 keeps both inputs (s1 stronger); node 1 keeps s0 and node 0."""
    label = f"alphas_{kind}"
    plan = {f"{name}.n0": [(True, .2, "skip", 0), (True, .7, "conv", 1)],
            f"{name}.n1": [(True, .1, "pool", 0), (False, .05, None, 1), (True, .4, "conv", 2)]}
    nodes = []
    for ir_node, edges in plan.items():
        decisions.finalize[ir_node] = FinalizeDecision(
            ir_node, name, "darts", 2, [EdgeRank(f"{label}[{j}]", rank, kept) for kept, rank, _, j in edges])
        nodes.append(CellNode(ir_node, [Edge(op, j, f"{label}[{j}]") for kept, _, op, j in edges if kept]))
    return Cell(name, ["s0", "s1"], ["", ""], nodes, list(concat))


def test_genotype_of_hand_built_cells():
    decisions = Decisions()
    arch = Architecture([_cell("normal", "c0", decisions), _cell("reduce", "c1", decisions),
                         _cell("normal", "c2", decisions)])
    gene = [("conv", 1), ("skip", 0), ("conv", 2), ("pool", 0)]
    assert darts_genotype(decisions, arch) == Genotype(gene, range(2, 4), gene, range(2, 4))


def test_no_genotype_when_cells_of_one_kind_differ_or_a_kind_is_missing():
    decisions = Decisions()
    other = _cell("normal", "c2", decisions, concat=(3,))
    arch = Architecture([_cell("normal", "c0", decisions), _cell("reduce", "c1", decisions), other])
    assert darts_genotype(decisions, arch) is None
    assert darts_genotype(decisions, Architecture([_cell("normal", "c0", decisions)])) is None
