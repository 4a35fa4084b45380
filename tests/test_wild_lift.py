"""Supernets written as DARTS-family search code writes them compile as written (tests/wild_supernets.py).

Each compile is checked three ways: the decisions equal the family's own derivation, written here as
that family's `genotype()` computes it; the ONNX file equals the family's discrete network, built here
by running the supernet with logits that weigh exactly the derived ops (not by nascompile's
reference); and `--validate`'s reference agrees. Refusals name the module, the file and the line.
"""

from __future__ import annotations

import math

import onnxruntime as ort
import pytest
import torch

import nascompile
from nascompile.errors import ChoiceError, TraceError

import wild_supernets as W

X = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def build(cls, seed=0):
    torch.manual_seed(seed)
    return W.randomize_bn(cls(), seed)


def onnx_output(result, tmp_path, x=X, index=-1):
    path = tmp_path / "m.onnx"
    report = result.save(path, validate="cpu")
    assert report.validation.passed
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[index])


def one_hot_rows(tensor, rows):
    """Logits whose softmax weighs exactly the op `rows[i]` on row i (`none` for a dropped edge)."""
    with torch.no_grad():
        tensor.detach().fill_(-math.inf)
        for i, op in enumerate(rows):
            tensor.detach()[i, op] = 0.0


def darts_rows(genotype_cell, steps):
    """Per edge row, the op the derived cell keeps on it, or `none` where the edge is dropped."""
    rows, start, n, it = [], 0, 2, iter(genotype_cell)
    for _ in range(steps):
        kept = dict((j, op) for op, j in (next(it), next(it)))
        rows += [W.PRIMITIVES.index(kept.get(j, "none")) for j in range(n)]
        start += n
        n += 1
    return rows


def test_defaulted_arguments_and_logit_shape_queries_take_their_concrete_branch(tmp_path):
    model = build(W.DefaultsNetwork)
    result = nascompile.compile(model, (X[:1],))
    normal, reduce = model.genotype()
    assert result.genotype.normal == normal and result.genotype.reduce == reduce
    specs = result.lifted.graph["specializations"]
    assert any("DefaultsNetwork.forward line" in s and "`if alphas.size(1) == 1:` -> False" in s for s in specs)
    got = onnx_output(result, tmp_path)
    one_hot_rows(model.alphas_normal, darts_rows(normal, model.steps))
    one_hot_rows(model.alphas_reduce, darts_rows(reduce, model.steps))
    with torch.no_grad():
        torch.testing.assert_close(got, model(X), rtol=1e-4, atol=1e-5)


def test_an_inline_mixture_in_a_cell_forward_is_a_choice_per_edge(tmp_path):
    model = build(W.InlineNetwork)
    result = nascompile.compile(model, (X[:1],))
    graph = result.lifted
    choices = graph.nodes_of("layer_choice")
    assert len(choices) == 6
    assert {graph.attrs(n)["family"] for n in choices} == {"nb201"}
    assert all(graph.attrs(n)["candidates"] == W.NB201_OPS for n in choices)
    assert graph.meta(choices[0])["source"] == "cell.edges.1<-0"
    onnx_output(result, tmp_path)


def test_a_mixed_op_reached_through_another_method(tmp_path):
    model = build(W.MethodNetwork)
    result = nascompile.compile(model, (X[:1],))
    assert sorted(result.decisions) == ["alpha[0]", "alpha[1]", "alpha[2]"]
    best = [W.PRIMITIVES[max(range(1, 5), key=lambda k: float(row[k]))] for row in model.alpha.detach().softmax(-1)]
    kept = [result.decisions[f"alpha[{i}]"] for i in range(3)]
    assert [op for op in kept if op != []] == [b for b, k in zip(best, kept) if k != []]
    onnx_output(result, tmp_path)


def test_partial_channels_and_edge_normalization_are_kept_whole(tmp_path):
    model = build(W.PartialNetwork)
    result = nascompile.compile(model, (X[:1],))
    graph = result.lifted
    choices = graph.nodes_of("layer_choice")
    assert len(choices) == 10 and len(graph.nodes_of("edge")) == 10
    attrs = graph.attrs(choices[0])
    assert attrs["family"] == "pc-darts" and attrs["edge_label"] == "betas_normal[0:2]"
    torch.testing.assert_close(graph.params(choices[0])["edge_logits"], model.betas_normal[0:2])
    specs = graph.graph["specializations"]
    assert any("`if temp1.shape[2] == x.shape[2]:` -> False" in s for s in specs)  # the reduction cell
    assert graph.count_ops().get("transpose") == 10  # each mixed op keeps its channel shuffle
    onnx_output(result, tmp_path)


def test_an_auxiliary_term_stays_in_the_discrete_network(tmp_path):
    model = build(W.AuxNetwork)
    result = nascompile.compile(model, (X[:1],))
    chosen = result.decisions["alphas[0]"]
    got = onnx_output(result, tmp_path)
    with torch.no_grad():
        x = model.stem(X)
        expected = model.edge._ops[W.PRIMITIVES.index(chosen)](x) + 0.5 * x
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_candidate_names_from_switches_and_per_edge_lists():
    switched = nascompile.compile(build(W.SwitchedNetwork), (X[:1],)).lifted
    names = {switched.attrs(n)["label"]: switched.attrs(n)["candidates"] for n in switched.nodes_of("layer_choice")}
    assert names == {"alphas_normal[0]": ["none", "skip_connect", "conv_3x3"],
                     "alphas_wide[0]": ["none", "max_pool_3x3", "conv_3x3", "conv_1x1"]}
    per_edge = nascompile.compile(build(W.PerEdgeNetwork), (X[:1],)).lifted
    names = [per_edge.attrs(n)["candidates"] for n in per_edge.nodes_of("layer_choice")]
    assert names == W.OP_LISTS["primitives_normal"]


def test_random_sampling_is_refused_with_its_line():
    with pytest.raises(TraceError, match=r"GumbelNetwork.*line \d+ \(wild_supernets.py\).*draws random numbers \(exponential_\)"):
        nascompile.compile(build(W.GumbelNetwork), (X[:1],))


def test_branching_on_input_values_is_refused_with_its_line():
    with pytest.raises(TraceError, match=r"InputBranchNetwork.forward line \d+ \(wild_supernets.py\): `if x.mean\(\) > 0:`"):
        nascompile.compile(W.InputBranchNetwork().eval(), (X[:1],))


def test_architecture_weights_no_pattern_consumes_are_never_a_silent_supernet():
    with pytest.raises(ChoiceError, match=r"softmax or sigmoid of 'alpha'.*--allow-no-choices"):
        nascompile.compile(build(W.UnrecognizedNetwork), (X[:1],))
    result = nascompile.compile(build(W.UnrecognizedNetwork), (X[:1],), allow_no_choices=True)
    assert result.decisions == {}


def test_a_conversion_error_names_the_line():
    import torch.nn as nn

    class FFT(nn.Module):
        def forward(self, x):
            return torch.fft.fft(x).real

    with pytest.raises(nascompile.errors.LoweringError, match=r"FFT.forward line \d+ \(test_wild_lift.py\): `return torch.fft"):
        nascompile.compile(FFT(), (X[:1],))


def test_fair_darts_sigmoid_weights_are_read_by_the_darts_fast_path_too():
    import torch.nn as nn

    class PlainMixedOp(nn.Module):  # `_ops` + forward(x, weights): the DARTS-reference recognizer's fast path
        PRIMITIVES = W.PRIMITIVES

        def __init__(self, c):
            super().__init__()
            self._ops = nn.ModuleList(W.make_op(p, c) for p in W.PRIMITIVES)

        def forward(self, x, weights):
            return sum(w * op(x) for w, op in zip(weights, self._ops))

    class Sigmoid(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1)
            self.edge = PlainMixedOp(8)
            self.alphas_normal = nn.Parameter(torch.randn(1, len(W.PRIMITIVES)))

        def forward(self, x):
            return self.edge(self.stem(x), torch.sigmoid(self.alphas_normal)[0])

    model = build(Sigmoid)
    result = nascompile.compile(model, (X[:1],))
    (choice,) = result.lifted.nodes_of("layer_choice")
    assert result.lifter.owner(model.edge).name == "darts-reference"
    assert result.lifted.attrs(choice)["weighting"] == "sigmoid"
    assert result.lifted.attrs(choice)["family"] == "fair-darts"
