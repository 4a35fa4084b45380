"""DARTS-reference-style supernets (examples/darts_reference.py): lift, genotype, validation, errors."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

import nascompile
from nascompile.errors import ChoiceError, WeightsError
from nascompile.genotype import Genotype
from nascompile.ir import run_graph

from conftest import example, run_cli

darts = example("darts_reference")
PRIMITIVES = example("darts_ops").PRIMITIVES
STEPS = 4
ROWS = sum(2 + i for i in range(STEPS))  # 14 edges per cell


def reference_genotype(alphas_normal: torch.Tensor, alphas_reduce: torch.Tensor, names=PRIMITIVES,
                       zero: str = "none", steps: int = STEPS, multiplier: int = 4, keep: int = 2) -> Genotype:
    """DARTS's `Network.genotype()` rule, written out independently of nascompile, in exact arithmetic.

    Per node i (rows `offset .. offset + i + 1` of the alphas): the best op of an edge is its first
    maximal non-zero logit (DARTS takes the first maximal float32 probability, which ties where logits
    differ by less than float32 can tell: nascompile decides those exactly and reports them as framework
    ties, tests/test_rules.py); rank each incoming edge by that op's probability (float64), keep the
    `keep` (DARTS: 2) best (Python's stable sort: ties keep the lower input), and list them strongest
    first as (best non-zero op, input index).
    """
    def parse(logits):
        gene, offset = [], 0
        real = [k for k, name in enumerate(names) if name != zero]
        probabilities = F.softmax(logits.double(), dim=-1).tolist()
        for i in range(steps):
            rows = logits[offset:offset + i + 2].tolist()
            best = [max(real, key=lambda k, row=row: (row[k], -k)) for row in rows]  # first maximum
            strength = [probabilities[offset + j][k] for j, k in enumerate(best)]
            close = [(a, b) for a in strength for b in strength if a != b and abs(a - b) < 1e-12 * max(a, b)]
            assume(not close)  # closer than float64 tells: nascompile's log-space ranks may order them otherwise
            edges = sorted(range(i + 2), key=lambda j: -strength[j])[:keep]
            gene += [(names[best[j]], j) for j in edges]
            offset += i + 2
        return gene

    concat = range(2 + steps - multiplier, steps + 2)
    return Genotype(parse(alphas_normal), concat, parse(alphas_reduce), concat)


@pytest.fixture(scope="module")
def small_network():
    return darts.build(layers=3, c=4)  # cells: normal, reduce, reduce


@pytest.fixture(scope="module")
def compiled():
    model = darts.build()
    return model, nascompile.compile(model, darts.example_inputs(), verify_each=True)


def test_labels_name_the_alphas_rows_and_are_shared_by_cells_of_one_kind(compiled):
    _, result = compiled
    labels = set(result.decisions)
    assert labels == {f"alphas_{kind}[{row}]" for kind in ("normal", "reduce") for row in range(ROWS)}
    normal = result.choices.layer["alphas_normal[3]"]
    assert len(normal.paths) == 6 and normal.paths[0] == "cells.0._ops.3"  # 6 normal cells share the row


def test_decisions_and_genotype_equal_darts_rule(compiled):
    model, result = compiled
    expected = reference_genotype(model.alphas_normal, model.alphas_reduce)
    assert result.genotype == expected
    for kind, gene in (("normal", expected.normal), ("reduce", expected.reduce)):
        kept = {}
        offset = 0
        for i in range(STEPS):
            for op, j in gene[2 * i:2 * i + 2]:
                kept[offset + j] = op
            offset += i + 2
        for row in range(ROWS):
            assert result.decisions[f"alphas_{kind}[{row}]"] == kept.get(row, [])


def test_interpreter_and_onnx_equal_the_supernet_forward_with_one_hot_weights(compiled, tmp_path):
    model, result = compiled
    x = torch.randn(2, 3, 32, 32)
    expected = result.reference(x)
    assert len(expected) == 1  # (logits, None): the auxiliary head runs in training only
    torch.testing.assert_close(run_graph(result.graph, (x,))[0], expected[0], rtol=0, atol=1e-5)
    report = result.save(tmp_path / "darts.onnx", validate="cpu", batch_sizes=(1, 3))
    assert report.validation.passed and report.validation.max_abs < 1e-4


def test_reference_is_the_supernets_own_forward(compiled):
    """Fixing the MixedOps to one-hot weights must equal calling the network with those weights."""
    model, result = compiled
    x = torch.randn(1, 3, 32, 32)
    weights = {}
    for kind in ("normal", "reduce"):
        w = torch.zeros(ROWS, len(PRIMITIVES))
        for row in range(ROWS):
            decision = result.decisions[f"alphas_{kind}[{row}]"]
            if decision != []:
                w[row, PRIMITIVES.index(decision)] = 1
        weights[kind] = w
    with torch.no_grad():
        s0 = s1 = model.stem(x)
        for cell in model.cells:
            s0, s1 = s1, cell(s0, s1, weights["reduce" if cell.reduction else "normal"])
        logits = model.classifier(model.global_pooling(s1).flatten(1))
    torch.testing.assert_close(result.reference(x)[0], logits, rtol=0, atol=1e-6)


def test_hand_computed_genotype(small_network):
    """Node i's edge j gets op (i + j) % 7 + 1 with logit 1 + 0.1 * j: later inputs are stronger."""
    alphas = torch.zeros(ROWS, len(PRIMITIVES))
    offset = 0
    for i in range(STEPS):
        for j in range(i + 2):
            alphas[offset + j, (i + j) % 7 + 1] = 1 + 0.1 * j
        offset += i + 2
    result = nascompile.compile(small_network, torch.randn(1, 3, 16, 16),
                                arch_params={"alphas_normal": alphas, "alphas_reduce": alphas})
    gene = [("avg_pool_3x3", 1), ("max_pool_3x3", 0),
            ("sep_conv_3x3", 2), ("skip_connect", 1),
            ("dil_conv_3x3", 3), ("sep_conv_5x5", 2),
            ("max_pool_3x3", 4), ("dil_conv_5x5", 3)]
    assert result.genotype == Genotype(gene, range(2, 6), gene, range(2, 6))


logit_matrices = st.lists(st.lists(st.floats(-4, 4, width=32) | st.sampled_from([0.0, 1.0]),
                                   min_size=len(PRIMITIVES), max_size=len(PRIMITIVES)),
                          min_size=ROWS, max_size=ROWS).map(torch.tensor)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(normal=logit_matrices, reduce=logit_matrices)
def test_genotype_equals_darts_rule_on_random_alphas(small_network, normal, reduce):
    result = nascompile.compile(small_network, torch.randn(1, 3, 16, 16),
                                arch_params={"alphas_normal": normal, "alphas_reduce": reduce})
    assert result.genotype == reference_genotype(normal, reduce)


def test_genotype_indexes_states_even_when_a_cell_input_is_unused(small_network):
    """With one edge per node, no node may read s0; inputs are still numbered 0 (s0) and 1 (s1)."""
    alphas = torch.zeros(ROWS, len(PRIMITIVES))
    offset = 0
    for i in range(STEPS):
        alphas[offset, 1] = -5.0  # the edge from s0 is the weakest of every node
        alphas[offset + 1:offset + i + 2, 4] = torch.arange(1, i + 2) + 3.0
        offset += i + 2
    result = nascompile.compile(small_network, torch.randn(1, 3, 16, 16), max_final_edges=1,
                                arch_params={"alphas_normal": alphas, "alphas_reduce": alphas})
    assert result.genotype == reference_genotype(alphas, alphas, keep=1)
    assert result.genotype.normal == [("sep_conv_3x3", 1), ("sep_conv_3x3", 2), ("sep_conv_3x3", 3),
                                      ("sep_conv_3x3", 4)]


def test_cli_compiles_the_example_to_validated_onnx(tmp_path):
    out = tmp_path / "darts.onnx"
    proc = run_cli("compile", "examples/darts_reference.py", "-o", str(out), "--validate")
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and "genotype: Genotype(normal=[" in proc.stdout


def test_cli_alphas_file_replaces_the_alphas(tmp_path):
    alphas = {"alphas_normal": torch.randn(ROWS, 8).tolist(), "alphas_reduce": torch.randn(ROWS, 8).tolist()}
    path = tmp_path / "alphas.json"
    path.write_text(json.dumps(alphas))
    decisions = tmp_path / "decisions.json"
    proc = run_cli("compile", "examples/darts_reference.py", "-o", str(tmp_path / "d.onnx"), "--alphas", str(path),
                   "--decisions", str(decisions))
    assert proc.returncode == 0, proc.stderr
    expected = reference_genotype(torch.tensor(alphas["alphas_normal"]), torch.tensor(alphas["alphas_reduce"]))
    assert f"genotype: {expected}" in proc.stdout


# --- errors ----------------------------------------------------------------------------------------
def test_wrong_alphas_shape_names_the_key(small_network):
    with pytest.raises(ChoiceError, match=r"'alphas_normal' has shape \[13, 8\].*expects \[14, 8\]"):
        nascompile.compile(small_network, torch.randn(1, 3, 16, 16), arch_params={"alphas_normal": torch.zeros(13, 8)})


def test_unknown_alphas_key_in_a_file_is_a_weights_error(tmp_path):
    path = tmp_path / "alphas.json"
    path.write_text(json.dumps({"alphas_normall": [[0.0] * 8] * ROWS}))
    proc = run_cli("compile", "examples/darts_reference.py", "-o", str(tmp_path / "d.onnx"), "--alphas", str(path))
    assert proc.returncode == WeightsError.exit_code
    assert "'alphas_normall'" in proc.stderr and "alphas.json" in proc.stderr and "'alphas_normal'" in proc.stderr


class _Unnamed(nn.Module):
    """A DARTS-shaped mixed op whose module defines no PRIMITIVES of its length."""

    def __init__(self):
        super().__init__()
        self._ops = nn.ModuleList([nn.Identity(), nn.ReLU()])

    def forward(self, x, weights):
        return sum(w * op(x) for w, op in zip(weights, self._ops))


class _Net(nn.Module):
    def __init__(self, squash=F.softmax):
        super().__init__()
        self.op = _Unnamed()
        self.alphas = torch.zeros(1, 2)
        self.squash = squash

    def forward(self, x):
        return self.op(x, self.squash(self.alphas, dim=-1)[0])


def test_mixed_op_without_primitive_names_is_refused():
    with pytest.raises(ChoiceError, match="_Unnamed has 2 candidate ops.*PRIMITIVES"):
        nascompile.compile(_Net(), torch.randn(1, 3))


def test_weights_not_from_a_softmax_or_sigmoid_are_refused(monkeypatch):
    monkeypatch.setattr(_Unnamed, "PRIMITIVES", ["skip", "relu"], raising=False)
    with pytest.raises(ChoiceError, match="mixed op 'op' is called with weights that are not softmax"):
        nascompile.compile(_Net(squash=lambda a, dim: a.abs() / a.abs().sum()), torch.randn(1, 3))


def test_sigmoid_weights_are_fair_darts(monkeypatch):
    monkeypatch.setattr(_Unnamed, "PRIMITIVES", ["skip", "relu"], raising=False)
    result = nascompile.compile(_Net(squash=lambda a, dim: torch.sigmoid(a)), torch.randn(1, 3))
    (choice,) = result.lifted.nodes_of("layer_choice")
    assert result.lifted.attrs(choice)["weighting"] == "sigmoid"
