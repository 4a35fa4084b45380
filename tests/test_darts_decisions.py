"""The DARTS example compiled: decisions equal DARTS's own `genotype()` rule applied to the alphas here, and
the final IR computes what the supernet computes with those decisions fixed."""

from __future__ import annotations

import re

import pytest
import torch

import nascompile
from nascompile.passes import PIPELINE_O0
from nascompile import nn as nc
from nascompile.ir import run_graph

from conftest import example

darts_cnn = example("darts_cnn")

N_NODES = 4
N_OPS = 7  # the slots before the zero op `none`, which is the last of the 8 logits


def alphas_by_label(model) -> dict[str, tuple[list[str], torch.Tensor]]:
    """label -> (candidate names, alpha), read off the LayerChoices (instances of one label share one alpha)."""
    found: dict[str, tuple[list[str], torch.Tensor]] = {}
    for _, choice in nc.layer_choices(model):
        names, alpha = found.setdefault(choice.label, (choice.names, choice.alpha))
        assert alpha is choice.alpha and names == choice.names == list(darts_cnn.OPS)
        assert alpha.shape == (N_OPS + 1,)
    return found


def genotype_decisions(model) -> dict[str, object]:
    """DARTS `genotype()`, in NNI's exported format.

    Per node, W = softmax over the 8 slots of each incoming edge (none last); the two edges with the highest
    max non-none weight are kept (a stable sort, so ties keep the earlier edge); a kept edge's op is the argmax
    over the non-none slots (first maximum); a dropped edge is [].
    """
    alphas = alphas_by_label(model)
    decisions: dict[str, object] = {}
    for kind in sorted({label.split("_")[0] for label in alphas}):
        for i in range(N_NODES):
            labels = [f"{kind}_n{i + 2}_p{j}" for j in range(i + 2)]
            weights = [torch.softmax(alphas[label][1].detach(), dim=-1).tolist() for label in labels]
            strength = [max(w[:N_OPS]) for w in weights]
            kept = sorted(range(len(labels)), key=lambda j: -strength[j])[:2]
            for j, label in enumerate(labels):
                best = max(range(N_OPS), key=lambda k: weights[j][k])
                decisions[label] = alphas[label][0][best] if j in kept else []
            decisions[f"{kind}_n{i + 2}_switch"] = [labels[j] for j in sorted(kept)]
    return decisions


def expected_candidates(model, decisions) -> set[tuple[int, int, int, str]]:
    """(cell, node, edge, op) of every candidate module the discrete network must contain."""
    out = set()
    for c, cell in enumerate(model.cells):
        kind = "reduce" if cell.reduction else "normal"
        for i in range(N_NODES):
            for j in range(i + 2):
                op = decisions[f"{kind}_n{i + 2}_p{j}"]
                if op != []:
                    out.add((c, i, j, op))
    return out


CANDIDATE_PATH = re.compile(r"cells\.(\d+)\.nodes\.(\d+)\.edges\.(\d+)\.candidates\.(\w+)")


def candidates_in(graph) -> set[tuple[int, int, int, str]]:
    found = set()
    for node in graph.nodes:
        match = CANDIDATE_PATH.match(graph.meta(node).get("source") or "")
        if match:
            c, i, j, op = match.groups()
            found.add((int(c), int(i), int(j), op))
    return found


CASES = [
    pytest.param(dict(), id="default"),
    pytest.param(dict(seed=1), id="seed1"),
    pytest.param(dict(seed=2), id="seed2"),
    pytest.param(dict(seed=3, n_layers=5), id="5-layers"),
    pytest.param(dict(seed=4, n_layers=3), id="3-layers"),
    pytest.param(dict(seed=5, n_layers=2), id="2-layers-reduce-only"),
    pytest.param(dict(searched=False), id="near-uniform"),
    pytest.param(dict(seed=6, searched=False), id="near-uniform-seed6"),
]


@pytest.fixture(scope="module", params=CASES)
def compiled(request):
    model = darts_cnn.build(**request.param)
    result = nascompile.compile(model, darts_cnn.example_inputs(), verify_each=True)
    return model, result


def test_decisions_equal_the_darts_genotype_rule(compiled):
    model, result = compiled
    expected = genotype_decisions(model)
    assert result.decisions == expected
    n_kinds = len({cell.reduction for cell in model.cells})
    assert len(expected) == n_kinds * (14 + N_NODES)  # 14 edges and 4 switches per cell type
    assert sum(1 for v in expected.values() if isinstance(v, str)) == n_kinds * 2 * N_NODES


def test_report_probabilities_are_the_softmax_of_the_alphas(compiled):
    model, result = compiled
    alphas = alphas_by_label(model)
    report = {entry["label"]: entry for entry in result.report["layer_choices"]}
    assert set(report) == set(alphas)
    for label, (_, alpha) in alphas.items():
        expected = torch.softmax(alpha.detach(), dim=-1)
        assert report[label]["probabilities"] == pytest.approx(expected.tolist(), rel=1e-6)
        assert report[label]["candidates"][-1] == "none"
        assert report[label]["strength"] == pytest.approx(expected[:N_OPS].max().item(), rel=1e-6)
    assert result.report["ties"] == [] and result.warnings == []


def test_the_final_graph_holds_only_the_chosen_candidates(compiled):
    model, _ = compiled
    # -O0: every chosen candidate keeps its nodes (-O1 would remove identities, fold batch norms, ...)
    result = nascompile.compile(model, darts_cnn.example_inputs(), pipeline=PIPELINE_O0)
    ops = result.graph.count_ops()
    assert "layer_choice" not in ops and "input_choice" not in ops
    assert candidates_in(result.graph) == expected_candidates(model, genotype_decisions(model))
    switches = [n for n in result.graph.nodes_of("sum") if "choice" in result.graph.attrs(n)]
    assert len(switches) == len(model.cells) * N_NODES
    assert all(len(result.graph.inputs(n)) == 2 for n in switches)


def test_the_final_ir_computes_the_fixed_supernet(compiled):
    model, result = compiled
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    actual = run_graph(result.graph, (x,))
    assert len(actual) == 1 and actual[0].shape == (2, 10)
    torch.testing.assert_close(actual[0], result.reference(x)[0], rtol=1e-5, atol=1e-5)
    # the same supernet fixed with the decisions derived above, not the compiler's
    with torch.no_grad(), nc.fixed(model, genotype_decisions(model)):
        expected = model(x)
    torch.testing.assert_close(actual[0], expected, rtol=1e-5, atol=1e-5)
    assert all(m._fixed is None for m in model.modules() if isinstance(m, (nc.LayerChoice, nc.InputChoice)))
