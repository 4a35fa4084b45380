"""`darts-choice` alone: IR text in, IR text out, and the decisions it records (NNI `sample_final`)."""

from __future__ import annotations

import math

import pytest

from nascompile.errors import ChoiceError
from nascompile.ir import print_graph
from nascompile.passes.darts_choice import darts_choice

from conftest import layer_choice_line as lc
from conftest import run_pass

E = math.e

# e0: logits [0, 1, 0] -> p = [1, e, 1] / (e + 2): chooses b, strength e/(e+2) = 0.576
# e1: logits [2, 0, 0] -> p = [e^2, 1, 1] / (e^2 + 2): chooses a, strength e^2/(e^2+2) = 0.787
# e2: logits [1, 1, 3] -> p = [e, e, e^3] / (2e + e^3): a and b tie (a wins, lowest index), strength 1/(2+e^2) = 0.107;
#     the zero slot has the largest probability but is never chosen.
# n keeps the two strongest edges, e1 and e0; e2's layer choice is removed (its label's decision is []).
CELL = f"""graph {{
  %x = input() {{index=0}}
  %y = input() {{index=1}}
{lc("e0", "x", "e0", [0, 1, 0])}
{lc("e1", "y", "e1", [2, 0, 0])}
{lc("e2", "x", "e2", [1, 1, 3])}
  %n = input_choice(%e0, %e1, %e2) {{choose_from=["e0", "e1", "e2"], label="n", n_chosen=K, reduction="RED"}} loc("cell.n")
  %output = output(%n)
}}
"""


def cell(k: str = "2", reduction: str = "sum") -> str:
    return CELL.replace("K", k).replace("RED", reduction)


def test_layer_choices_get_the_argmax_and_the_input_choice_keeps_the_two_strongest_edges():
    graph, ctx, result = run_pass(darts_choice, cell())
    assert print_graph(graph) == f"""graph {{
  %x = input() {{index=0}}
  %y = input() {{index=1}}
{lc("e0", "x", "e0", chosen=1)}
{lc("e1", "y", "e1", chosen=0)}
  %n = sum(%e0, %e1) {{choice="n"}} loc("cell.n")
  %output = output(%n)
}}
"""
    assert ctx.decisions.to_nni() == {"e0": "b", "e1": "a", "e2": [], "n": ["e0", "e1"]}
    assert result.changed
    assert result.overlay.chosen == {"e0": 1, "e1": 0, "e2": 0} and result.overlay.kept == {"n": [0, 1]}
    assert ctx.decisions.warnings == []


def test_recorded_probabilities_strengths_and_margins():
    _, ctx, _ = run_pass(darts_choice, cell())
    e0 = ctx.decisions.layer["e0"]
    assert e0.probabilities == pytest.approx([1 / (E + 2), E / (E + 2), 1 / (E + 2)], rel=1e-6)
    assert e0.strength == pytest.approx(E / (E + 2), rel=1e-6)
    assert e0.margin == pytest.approx(1.0)  # logit[b] - logit[a] = ln(p[b] / p[a]) = ln E
    assert e0.candidates[e0.runner_up] == "a"
    weights = ctx.decisions.input["n"].weights
    assert weights == pytest.approx([E / (E + 2), E**2 / (E**2 + 2), 1 / (2 + E**2)], rel=1e-6)
    assert ctx.decisions.layer["e2"].dropped_by == ["n"] and ctx.decisions.layer["e2"].dropped_at == ["%e2"]


def test_a_layer_choice_tie_goes_to_the_lowest_index_and_is_reported():
    _, ctx, _ = run_pass(darts_choice, cell())
    e2 = ctx.decisions.layer["e2"]
    assert e2.chosen_name == "a" and e2.tie == ["a", "b"] and e2.margin == 0.0
    assert any("layer choice 'e2': candidates ['a', 'b'] tie" in line and "chose 'a' (lowest index)" in line
               for line in ctx.decisions.ties())


def test_an_input_choice_tie_at_the_cut_keeps_the_lowest_position():
    # e0 and e1 have equal logits, so equal strengths; n keeps one: position 0
    text = f"""graph {{
  %x = input() {{index=0}}
{lc("e0", "x", "e0", [1, 0, 0])}
{lc("e1", "x", "e1", [1, 0, 0])}
  %n = input_choice(%e0, %e1) {{choose_from=["e0", "e1"], label="n", n_chosen=1, reduction="sum"}}
  %output = output(%n)
}}
"""
    graph, ctx, _ = run_pass(darts_choice, text)
    assert print_graph(graph).splitlines()[2:4] == [lc("e0", "x", "e0", chosen=0), '  %n = sum(%e0) {choice="n"}']
    assert ctx.decisions.to_nni() == {"e0": "a", "e1": [], "n": ["e0"]}
    assert ctx.decisions.input["n"].tie == [0, 1]
    assert "input choice 'n': inputs ['e0', 'e1'] tie at the cut; kept the lowest positions" in ctx.decisions.ties()


@pytest.mark.parametrize("reduction, op_text", [
    ("sum", 'sum(%e0, %e1) {choice="n"}'),
    ("mean", 'mean(%e0, %e1) {choice="n"}'),
    ("concat", 'cat(%e0, %e1) {choice="n", dim=1}'),
    ("none", 'pack(%e0, %e1) {choice="n"}'),
])
def test_each_reduction_becomes_its_op(reduction, op_text):
    graph, ctx, _ = run_pass(darts_choice, cell(reduction=reduction))
    assert f'  %n = {op_text} loc("cell.n")' in print_graph(graph).splitlines()
    assert ctx.decisions.input["n"].reduction == reduction


def test_n_chosen_none_keeps_every_input_and_drops_nothing():
    graph, ctx, result = run_pass(darts_choice, cell(k="null"))
    assert '  %n = sum(%e0, %e1, %e2) {choice="n"} loc("cell.n")' in print_graph(graph).splitlines()
    assert ctx.decisions.to_nni() == {"e0": "b", "e1": "a", "e2": "a", "n": ["e0", "e1", "e2"]}
    assert result.overlay.kept == {"n": [0, 1, 2]}
    assert ctx.decisions.warnings == []


def test_n_chosen_one_keeps_only_the_strongest():
    graph, ctx, _ = run_pass(darts_choice, cell(k="1"))
    assert sorted(graph.nodes) == ["e1", "n", "output", "x", "y"]
    assert ctx.decisions.to_nni() == {"e0": [], "e1": "a", "e2": [], "n": ["e1"]}


# --- choose_from labels that are not layer choices ------------------------------------------------
BYPASS = f"""graph {{
  %x = input() {{index=0}}
  %y = input() {{index=1}}
{lc("e0", "x", "e0", [-5, -5, 0])}
  %n = input_choice(%y, %e0) {{choose_from=[null, "e0"], label="n", n_chosen=K, reduction="sum"}}
  %output = output(%n)
}}
"""


def test_a_label_that_is_not_a_layer_choice_weighs_zero_with_a_warning():
    # e0's strength is tiny (e^-5 / (2 e^-5 + 1) = 0.0067) but still beats the 0 of the unlabelled input
    graph, ctx, _ = run_pass(darts_choice, BYPASS.replace("K", "1"))
    assert '  %n = sum(%e0) {choice="n"}' in print_graph(graph).splitlines()
    assert ctx.decisions.input["n"].weights[0] == 0.0
    assert ctx.decisions.to_nni() == {"e0": "a", "n": [1]}  # positions: the labels do not name every input
    assert ctx.decisions.warnings == [
        "input choice 'n': choose_from label None is not a layer choice; it weighs 0 when selecting inputs (NNI's rule)"]


def test_an_unknown_label_still_warns_when_nothing_is_dropped():
    graph, ctx, _ = run_pass(darts_choice, BYPASS.replace("K", "2"))
    assert '  %n = sum(%y, %e0) {choice="n"}' in print_graph(graph).splitlines()
    assert len(ctx.decisions.warnings) == 1 and "label None" in ctx.decisions.warnings[0]


def test_n_chosen_none_does_not_weigh_and_does_not_warn():
    _, ctx, _ = run_pass(darts_choice, BYPASS.replace("K", "null"))
    assert ctx.decisions.warnings == [] and ctx.decisions.to_nni()["n"] == [0, 1]


def test_unknown_labels_tie_at_zero_and_the_lowest_position_is_kept():
    text = """graph {
  %x = input() {index=0}
  %y = input() {index=1}
  %n = input_choice(%x, %y) {choose_from=[null, null], label="n", n_chosen=1, reduction="sum"}
  %output = output(%n)
}
"""
    graph, ctx, _ = run_pass(darts_choice, text)
    assert '  %n = sum(%x) {choice="n"}' in print_graph(graph).splitlines()
    assert ctx.decisions.input["n"].tie == [0, 1] and len(ctx.decisions.warnings) == 1


# --- shared labels ---------------------------------------------------------------------------------
def two_cells(second_logits=(0, 2, 0), second_candidates=("a", "b")) -> str:
    return f"""graph {{
  %x = input() {{index=0}}
{lc("c0s", "x", "s", [0, 2, 0], loc="cells.0.s")}
{lc("c0t", "x", "t", [0, 0, 0], loc="cells.0.t")}
  %c0n = input_choice(%c0s, %c0t) {{choose_from=["s", "t"], label="n", n_chosen=1, reduction="sum"}} loc("cells.0.n")
{lc("c1s", "c0n", "s", list(second_logits), candidates=second_candidates, loc="cells.1.s")}
{lc("c1t", "c0n", "t", [0, 0, 0], loc="cells.1.t")}
  %c1n = input_choice(%c1s, %c1t) {{choose_from=["s", "t"], label="n", n_chosen=1, reduction="sum"}} loc("cells.1.n")
  %output = output(%c1n)
}}
"""


def test_a_label_shared_by_two_cells_is_one_decision():
    # s: p = [1, e^2, 1] / (e^2 + 2) -> b, strength 0.787; t: uniform, strength 1/3 -> every cell keeps s
    graph, ctx, _ = run_pass(darts_choice, two_cells())
    assert print_graph(graph) == f"""graph {{
  %x = input() {{index=0}}
{lc("c0s", "x", "s", chosen=1, loc="cells.0.s")}
  %c0n = sum(%c0s) {{choice="n"}} loc("cells.0.n")
{lc("c1s", "c0n", "s", chosen=1, loc="cells.1.s")}
  %c1n = sum(%c1s) {{choice="n"}} loc("cells.1.n")
  %output = output(%c1n)
}}
"""
    assert ctx.decisions.to_nni() == {"s": "b", "t": [], "n": ["s"]}
    assert ctx.decisions.layer["s"].paths == ["cells.0.s", "cells.1.s"]
    assert ctx.decisions.layer["t"].dropped_at == ["cells.0.t", "cells.1.t"]
    assert ctx.decisions.input["n"].paths == ["cells.0.n", "cells.1.n"]
    assert ctx.decisions.by_path() == {"cells.0.s": "b", "cells.1.s": "b", "cells.0.t": [], "cells.1.t": [],
                                       "cells.0.n": [0], "cells.1.n": [0]}


def test_different_logits_under_one_label_are_refused():
    with pytest.raises(ChoiceError) as info:
        run_pass(darts_choice, two_cells(second_logits=(0, 1, 0)))
    assert "layer choices 'cells.0.s' and 'cells.1.s' share label 's' but hold different logits" in str(info.value)


def test_different_candidates_under_one_label_are_refused():
    with pytest.raises(ChoiceError) as info:
        run_pass(darts_choice, two_cells(second_candidates=("a", "c")))
    message = str(info.value)
    assert "layer choices 'cells.0.s' and 'cells.1.s' share label 's' but have different candidates" in message
    assert "['a', 'b', 'none'] vs ['a', 'c', 'none']" in message


# --- refusals --------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad, positions", [("nan", "[1]"), ("inf", "[1]"), ("-inf", "[1]")])
def test_non_finite_logits_are_refused_naming_the_label_and_module(bad, positions):
    text = cell().replace(lc("e1", "y", "e1", [2, 0, 0]),
                          lc("e1", "y", "e1", [2, 0, 0], loc="cells.3.e1").replace("[2.0, 0.0, 0.0]", f"[2.0, {bad}, 0.0]"))
    with pytest.raises(ChoiceError) as info:
        run_pass(darts_choice, text)
    assert f"layer choice 'e1' (cells.3.e1) has non-finite logits at positions {positions}" in str(info.value)


def test_a_dropped_layer_choice_read_elsewhere_is_refused():
    text = cell().replace("%output = output(%n)", "%output = output(%n, %e2)")
    with pytest.raises(ChoiceError) as info:
        run_pass(darts_choice, text)
    message = str(info.value)
    assert "layer choice 'e2' (%e2) is dropped by input choice 'n'" in message
    assert "still read by %output" in message


def test_a_graph_without_choices_is_unchanged():
    text = "graph {\n  %x = input() {index=0}\n  %r = relu(%x)\n  %output = output(%r)\n}\n"
    graph, ctx, result = run_pass(darts_choice, text)
    assert print_graph(graph) == text and not result.changed and ctx.decisions.to_nni() == {}


@pytest.mark.parametrize("cell1_choice, messages", [
    # Cell 0's input choice n keeps only s; cell 1's (another label, n_chosen null) keeps both s and t. NNI
    # zeroes the label t everywhere once n drops it, so cell 1 would read a removed edge: no exact export exists.
    ('label="n1", n_chosen=null', ["layer choice 't' (cells.1.t) is dropped by input choice 'n'",
                                   "still read by %c1n (cells.1.n)"]),
    # One label is one decision; with n_chosen 1 in cell 0 and 2 in cell 1 the two cells would keep different
    # inputs under one exported decision (and the reference, fixed by label, would differ from the IR).
    ('label="n", n_chosen=2', ["input choices 'cells.0.n' and 'cells.1.n' share label 'n' but differ", "n_chosen"]),
], ids=["label-dropped-in-one-cell-kept-in-another", "shared-input-label-disagrees"])
def test_cells_that_cannot_share_one_decision_are_refused(cell1_choice, messages):
    old = 'label="n", n_chosen=1, reduction="sum"} loc("cells.1.n")'
    text = two_cells()
    assert old in text
    with pytest.raises(ChoiceError) as info:
        run_pass(darts_choice, text.replace(old, cell1_choice + ', reduction="sum"} loc("cells.1.n")'))
    for message in messages:
        assert message in str(info.value)


def test_a_label_naming_both_a_layer_choice_and_an_input_choice_is_refused():
    text = cell(k="null").replace('label="n"', 'label="e0"')
    with pytest.raises(ChoiceError, match="label 'e0' names both a layer choice and an input choice"):
        run_pass(darts_choice, text)


def test_a_layer_choice_reaching_a_dropped_input_through_another_op_is_dropped():
    # NNI drops by choose_from label (`result[src_key] = zeros`), not by wiring: e2 is dropped by n even though
    # a relu sits between it and n (as NNI's DARTS example puts drop_path there), so its decision is [].
    text = cell().replace("%n = input_choice(%e0, %e1, %e2)", "%r2 = relu(%e2)\n  %n = input_choice(%e0, %e1, %r2)")
    _, ctx, _ = run_pass(darts_choice, text)
    assert ctx.decisions.to_nni() == {"e0": "b", "e1": "a", "e2": [], "n": ["e0", "e1"]}


def test_choose_from_must_name_the_layer_choice_wired_at_each_position():
    text = cell().replace('choose_from=["e0", "e1", "e2"]', 'choose_from=["e1", "e0", "e2"]')
    with pytest.raises(ChoiceError, match=r"input choice 'n' \(cell.n\): input 0 comes from layer choice 'e0' but "
                                          r"choose_from names 'e1' there"):
        run_pass(darts_choice, text)


def test_a_warning_shared_by_instances_of_one_label_is_given_once():
    text = cell().replace('%n = input_choice(%e0, %e1, %e2) {choose_from=["e0", "e1", "e2"]',
                          '%n = input_choice(%e0, %e1, %x) {choose_from=["e0", "e1", null]')
    text = text.replace("%output = output(%n)", '%n2 = input_choice(%e0, %e1, %y) {choose_from=["e0", "e1", null], '
                        'label="n", n_chosen=2, reduction="sum"} loc("cell2.n")\n  %output = output(%n, %n2)')
    _, ctx, _ = run_pass(darts_choice, text)
    assert len([w for w in ctx.decisions.warnings if "label None" in w]) == 1


def test_a_choose_from_label_that_names_no_choice_is_a_typo():
    text = BYPASS.replace("K", "1").replace("[null, ", '["e1", ')
    with pytest.raises(ChoiceError, match=r"choose_from label 'e1' names no choice in the model; did you mean 'e0'\?"):
        run_pass(darts_choice, text)


def test_the_label_of_an_input_choice_weighs_zero_as_in_nni():
    text = BYPASS.replace("K", "1").replace("[null, ", '["n", ')
    _, ctx, _ = run_pass(darts_choice, text)
    assert ctx.decisions.input["n"].weights[0] == 0.0 and "label 'n' is not a layer choice" in ctx.decisions.warnings[0]


def test_near_ties_are_listed_below_the_threshold_but_exact_ties_are_not():
    # margins in log space: e0 logit 1 - 0 = ln(p[b] / p[a]) = 1, e1 2, e2 an exact tie (and dropped);
    # n keeps e1 and e0 (p = E/(E+2)) over e2 (p = 1/(E^2+2)): cut margin ln(E(E^2+2)/(E+2)) = 1.688
    _, ctx, _ = run_pass(darts_choice, cell())
    assert ctx.decisions.input["n"].cut_margin == pytest.approx(1 + math.log((E**2 + 2) / (E + 2)))
    ctx.decisions.near_tie = 1.8
    near = ctx.decisions.near_ties()
    assert len(near) == 2
    assert near[0] == "layer choice 'e0': 'b' leads 'a' by only 1 in logit, ln p[b]/p[a] (near-tie threshold 1.8)"
    assert near[1] == ("input choice 'n': the weakest kept input leads the strongest dropped one by only 1.69 in "
                       "log p (near-tie threshold 1.8)")
    ctx.decisions.near_tie = 0.9
    assert ctx.decisions.near_ties() == []
