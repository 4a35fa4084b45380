"""`finalize` alone: IR text in, IR text out (Archai `Finalizers.finalize_node`, three rank conventions)."""

from __future__ import annotations

import math

import pytest

from nascompile.errors import ChoiceError, PipelineError
from nascompile.ir import parse_graph, print_graph
from nascompile.passes import PassContext
from nascompile.passes.darts_choice import darts_choice
from nascompile.passes.finalize import finalize

from conftest import layer_choice_line as lc
from conftest import run_pass

LN = math.log

# Three decided edges (chosen = slot 0), logits = ln of these exps, zero slot last:
#   edge  exps        darts p[chosen]   logit      renorm (zero left out)
#   A     [2, 1, 1]   2/4  = 0.5        ln 2       2/3
#   B     [9, 3, 12]  9/24 = 0.375      ln 9       3/4
#   C     [4, 1, 15]  4/20 = 0.2        ln 4       4/5
# Keeping one edge: darts keeps A, logit keeps B, renorm keeps C. Keeping two: darts A+B, logit and renorm B+C.
EXPS = {"A": (2, 1, 1), "B": (9, 3, 12), "C": (4, 1, 15)}


def edge(label: str, chosen: int | None = 0, exps=None, src: str = "x") -> str:
    values = [LN(e) for e in (exps or EXPS[label])]
    return lc(f"e{label}", src, label, values, chosen=chosen)


def canonical(text: str) -> str:
    """`text` as the printer writes it (the logits rounded to float32)."""
    return print_graph(parse_graph(text), values=True)


def decided(label: str) -> str:
    return lc(f"e{label}", "x", label, chosen=0)


def node_text(args: str = "%eA, %eB, %eC", attrs: str = "", outputs: str = "%s") -> str:
    return f"""graph {{
  %x = input() {{index=0}}
  %r = relu(%x)
{edge("A")}
{edge("B")}
{edge("C")}
  %s = sum({args}){attrs} loc("cell.n2")
  %output = output({outputs})
}}
"""


def expected(kept: list[str], args: str) -> str:
    lines = ["graph {", "  %x = input() {index=0}", "  %r = relu(%x)"] + [decided(k) for k in kept]
    return "\n".join(lines + [f'  %s = sum({args}) loc("cell.n2")', "  %output = output(%s)", "}", ""])


@pytest.mark.parametrize("rank, kept", [("darts", "A"), ("logit", "B"), ("renorm", "C")])
def test_each_rank_convention_keeps_its_own_best_edge(rank, kept):
    graph, ctx, result = run_pass(finalize, node_text(), max_final_edges=1, rank=rank)
    assert print_graph(graph) == expected([kept], f"%e{kept}")
    assert result.changed and result.overlay.kept == {"s": ["ABC".index(kept)]}
    record = ctx.decisions.finalize["s"]
    assert (record.rank, record.max_final_edges, record.path) == ({"darts": "softmax"}.get(rank, rank), 1, "cell.n2")
    assert [(e.label, e.kept) for e in record.edges] == [(x, x == kept) for x in "ABC"]


def test_recorded_ranks_are_the_hand_computed_ones():
    for rank, values in (("darts", [0.5, 0.375, 0.2]), ("logit", [LN(2), LN(9), LN(4)]), ("renorm", [2 / 3, 0.75, 0.8])):
        _, ctx, _ = run_pass(finalize, node_text(), max_final_edges=1, rank=rank)
        assert [e.rank for e in ctx.decisions.finalize["s"].edges] == pytest.approx(values, rel=1e-6)


@pytest.mark.parametrize("rank, kept", [("darts", "AB"), ("logit", "BC"), ("renorm", "BC")])
def test_two_final_edges_keep_port_order(rank, kept):
    graph, _, _ = run_pass(finalize, node_text(), max_final_edges=2, rank=rank)
    assert print_graph(graph) == expected(list(kept), ", ".join(f"%e{k}" for k in kept))


def test_the_context_supplies_the_defaults():
    graph, _, _ = run_pass(finalize, node_text(), ctx=PassContext(max_final_edges=1, rank="logit"))
    assert print_graph(graph) == expected(["B"], "%eB")
    graph, _, _ = run_pass(finalize, node_text())  # defaults: 2 edges, darts
    assert print_graph(graph) == expected(["A", "B"], "%eA, %eB")


def test_required_edges_are_always_kept():
    graph, ctx, result = run_pass(finalize, node_text(args="%eA, %r, %eB, %x, %eC"), max_final_edges=1)
    assert print_graph(graph) == expected(["A"], "%eA, %r, %x")
    assert result.overlay.kept == {"s": [0, 1, 3]}
    assert [(e.label, e.rank, e.kept) for e in ctx.decisions.finalize["s"].edges][1] == (None, None, True)


@pytest.mark.parametrize("k", [3, 4, 10])
def test_no_edge_is_dropped_when_there_are_no_more_than_max_final_edges(k):
    text = node_text()
    graph, ctx, result = run_pass(finalize, text, max_final_edges=k)
    assert print_graph(graph, values=True) == canonical(text)
    assert not result.changed and not result.overlay
    assert all(e.kept for e in ctx.decisions.finalize["s"].edges)


def test_sums_made_from_input_choices_are_skipped():
    text = node_text(attrs=' {choice="n2_switch"}')
    graph, ctx, result = run_pass(finalize, text, max_final_edges=1)
    assert print_graph(graph, values=True) == canonical(text)
    assert not result.changed and ctx.decisions.finalize == {}


def test_sums_without_layer_choices_are_left_alone():
    text = node_text(args="%r, %x")
    graph, ctx, result = run_pass(finalize, text, max_final_edges=1)
    assert print_graph(graph, values=True) == canonical(text) and ctx.decisions.finalize == {} and not result.changed


def test_ties_keep_the_lowest_position_and_are_reported():
    text = f"""graph {{
  %x = input() {{index=0}}
{edge("C")}
{edge("A")}
{edge("A2", exps=EXPS["A"])}
  %s = sum(%eC, %eA2, %eA) loc("cell.n2")
  %output = output(%s)
}}
"""
    graph, ctx, _ = run_pass(finalize, text, max_final_edges=1)
    assert graph.inputs("s") == ["eA2"] and "eA" not in graph and "eC" not in graph
    assert ctx.decisions.finalize["s"].tie == [1, 2]
    assert "finalize at 'cell.n2': edges ['A2', 'A'] tie at the cut; kept the lowest positions" in ctx.decisions.ties()


def test_a_dropped_edge_whose_layer_choice_is_read_elsewhere_keeps_the_layer_choice():
    graph, _, _ = run_pass(finalize, node_text(outputs="%s, %eC"), max_final_edges=1)
    assert graph.inputs("s") == ["eA"] and "eB" not in graph
    assert graph.inputs("output") == ["s", "eC"]


def test_undecided_layer_choices_are_refused():
    text = node_text().replace(edge("B"), edge("B", chosen=None))
    with pytest.raises(PipelineError, match="finalize found the undecided layer choice 'B'; run darts-choice first"):
        run_pass(finalize, text, max_final_edges=1)


@pytest.mark.parametrize("rank", ["darts", "logit", "renorm"])
@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_non_finite_logits_are_refused_naming_the_label(rank, bad):
    text = node_text().replace(f"{LN(9)!r}, ", f"{bad}, ", 1)
    assert bad in text
    with pytest.raises(ChoiceError, match="layer choice 'B'.*non-finite logits at positions \\[0\\]"):
        run_pass(finalize, text, max_final_edges=1, rank=rank)


@pytest.mark.parametrize("options, message", [
    (dict(rank="best"), "unknown rank convention 'best'; use one of darts, logit, renorm"),
    (dict(max_final_edges=0), "max_final_edges must be a positive int, got 0"),
    (dict(max_final_edges=1.5), "max_final_edges must be a positive int, got 1.5"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(ChoiceError) as info:
        run_pass(finalize, node_text(), **options)
    assert message in str(info.value)


def test_after_darts_choice_an_edge_dropped_by_finalize_is_an_empty_decision():
    undecided = node_text().replace(edge("A"), edge("A", chosen=None)).replace(edge("B"), edge("B", chosen=None)) \
        .replace(edge("C"), edge("C", chosen=None))
    graph, ctx, _ = run_pass(darts_choice, undecided)
    finalize(graph, ctx, max_final_edges=1, rank="renorm")
    assert ctx.decisions.to_nni() == {"A": [], "B": [], "C": "a"}
    assert ctx.decisions.layer["A"].dropped_by == ["finalize@cell.n2"]
