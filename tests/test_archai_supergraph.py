"""Archai supergraph models (examples/archai_darts.py): Finalizers decisions with no flags (the archai rule set), validation."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import nascompile

from conftest import example, run_cli

archai = example("archai_darts")
X = torch.randn(1, 3, 16, 16)


def archai_finalizers(model, max_final_edges: int = 2) -> dict[tuple[int, int], set[tuple[int, str]]]:
    """Archai's `Finalizers.finalize_node` with `MixedOp.finalize` ranks, written out independently.

    Per node: each edge's op is the top non-`none` alpha (`topk(alphas[:-1], 1)`) and that alpha is its
    rank; with more ranked edges than `max_final_edges`, sort by rank descending (stable) and keep the first.
    Returns {(cell, node): {(input id, op name)}}.
    """
    names = archai.MixedOp.PRIMITIVES
    selected = {}
    for c, cell in enumerate(model.cells):
        for i, node in enumerate(cell.dag):
            ranked = []
            for edge in node:
                value, index = torch.topk(edge.op()._alphas[0].detach()[:-1], 1)
                ranked.append(((edge.input_ids[0], names[int(index)]), float(value)))
            if len(ranked) > max_final_edges:
                ranked.sort(key=lambda item: item[1], reverse=True)
                ranked = ranked[:max_final_edges]
            selected[(c, i)] = {desc for desc, _ in ranked}
    return selected


def kept_edges(model, result) -> dict[tuple[int, int], set[tuple[int, str]]]:
    """The same structure read off nascompile's decisions (by the mixed ops' module paths)."""
    paths = {id(m): name for name, m in model.named_modules()}
    by_path = result.choices.by_path()
    return {(c, i): {(edge.input_ids[0], by_path[paths[id(edge.op())]]) for edge in node
                     if by_path[paths[id(edge.op())]] != []}
            for c, cell in enumerate(model.cells) for i, node in enumerate(cell.dag)}


@pytest.fixture(scope="module")
def small_network():
    return archai.build(n_cells=3, init_ch=4)


def set_alphas(model, seed: int, scale: float) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(archai.ARCH_PARAM_SUFFIX):
                param.copy_(scale * torch.randn(param.shape, generator=generator))


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([1e-3, 0.1, 1.0, 10.0, 1000.0]), k=st.sampled_from([1, 2, 3]))
def test_default_decisions_equal_archai_finalizers(small_network, seed, scale, k):
    set_alphas(small_network, seed, scale)
    alphas = [p.detach()[:-1] for n, p in small_network.named_parameters() if n.endswith(archai.ARCH_PARAM_SUFFIX)]
    tops = [float(a.max()) for a in alphas]
    assume(len(set(tops)) == len(tops) and all(len(set(a.tolist())) == len(a) for a in alphas))  # no ties
    result = nascompile.compile(small_network, X, pipeline="darts-choice,finalize", max_final_edges=k)
    assert result.choices.rules.rules.name == "archai" and result.choices.rules.source == "family 'archai'"
    assert kept_edges(small_network, result) == archai_finalizers(small_network, k)


def test_labels_are_the_shared_alphas_parameters(small_network):
    set_alphas(small_network, 0, 1.0)
    result = nascompile.compile(small_network, X, pipeline="darts-choice,finalize")
    # cells 1 and 2 are reduction cells; cell 2 shares cell 1's alphas
    record = result.choices.layer["cells.1.dag.3.4._wrapped.alphas_arch_param"]
    assert record.paths == ["cells.1.dag.3.4._wrapped", "cells.2.dag.3.4._wrapped"]
    assert record.candidates[-1] == "none" and record.zero == 7
    assert len(result.decisions) == 2 * 14


def test_darts_and_logit_ranks_differ_on_real_alphas(small_network):
    """The rank convention matters: the same alphas give other edges under DARTS's rule."""
    differs = 0
    for seed in range(5):
        set_alphas(small_network, seed, 1.0)
        by_rank = [kept_edges(small_network, nascompile.compile(small_network, X, pipeline="darts-choice,finalize",
                                                                rank=rank)) for rank in ("logit", "darts")]
        differs += by_rank[0] != by_rank[1]
    assert differs > 0


def test_onnx_equals_the_supernets_own_forward(tmp_path):
    model = archai.build(n_cells=5, init_ch=8)
    result = nascompile.compile(model, X, verify_each=True)
    x = torch.randn(2, 3, 16, 16)
    assert len(result.reference(x)) == 1  # (logits, None): the aux tower runs in training only
    report = result.save(tmp_path / "archai.onnx", validate="cpu", batch_sizes=(1, 2))
    assert report.validation.passed and report.validation.max_abs < 1e-4


def test_cli_compiles_the_example_to_validated_onnx(tmp_path):
    proc = run_cli("compile", "examples/archai_darts.py", "-o", str(tmp_path / "archai.onnx"), "--validate")
    assert proc.returncode == 0, proc.stderr
    assert "validation on cpu" in proc.stdout
    assert "rules: archai (Archai Finalizers" in proc.stdout and "chosen by family 'archai'" in proc.stdout
