"""Rule sets (`rules.py`) on IR text: each family's own decisions, exact on saturated logits.

Hand-computed cases, one node of three edges (A, B, C), two candidates `a`, `b` plus the zero op `none`
(last), logits = ln of these exps, so every probability is a ratio of small integers:

    edge  exps         op (non-zero)  p[op] (darts)  logit    renorm   pc-darts (betas exps 1, 1, 8)
    A     [2, 1, 1]    a              2/4  = .5      ln 2     2/3      .5 x .1 = .05
    B     [9, 3, 12]   a  (none if    9/24 = .375    ln 9     3/4      .375 x .1 = .0375
                       choosable)
    C     [4, 1, 15]   a  (none ...)  4/20 = .2      ln 4     4/5      .2 x .8 = .16

Keeping one edge: darts, nni2, p-darts keep A; archai, logit, nni3, fair-darts keep B; renorm and
pc-darts keep C; nb201 and gdas keep every edge and choose `none` on B and C; drnas chooses `none` on B
and C too (DrNAS's genotype() takes the argmax over every candidate) and keeps C (p[none] = 15/20).
"""

from __future__ import annotations

import math
import random

import mpmath
import pytest
import torch

from nascompile.errors import ChoiceError
from nascompile.ir import parse_graph
from nascompile.passes import PassContext
from nascompile.passes.darts_choice import darts_choice
from nascompile.passes.finalize import finalize
from nascompile.passes.ranking import log_prob
from nascompile.rules import RULE_SETS, default_rules, get_rules, resolve_rules

LN = math.log
EXPS = {"A": (2, 1, 1), "B": (9, 3, 12), "C": (4, 1, 15)}
BETAS = [0.0, 0.0, LN(8)]


def edge_line(label: str, logits: list[float], index: int | None = None, family: str | None = None,
              betas: list[float] | None = None) -> str:
    attrs = ['candidates=["a", "b", "none"]'] + ([f"edge_index={index}"] if index is not None else [])
    attrs += ([f'family="{family}"'] if family else []) + [f'label="{label}"', 'modules=["m.a", "m.b", null]', "zero=2"]
    params = [f"logits: f32[3] = [{', '.join(repr(float(v)) for v in logits)}]"]
    if betas is not None:
        params.append(f"edge_logits: f32[{len(betas)}] = [{', '.join(repr(float(v)) for v in betas)}]")
    return f"  %e{label} = layer_choice(%x) {{{', '.join(attrs)}}} params({', '.join(params)})"


def node_text(logits: dict[str, list[float]], family: str | None = None, betas: list[float] | None = None) -> str:
    lines = [edge_line(label, values, i if betas else None, family, betas) for i, (label, values) in
             enumerate(logits.items())]
    args = ", ".join(f"%e{label}" for label in logits)
    return "\n".join(["graph {", "  %x = input() {index=0}", *lines, f'  %s = sum({args}) loc("cell.n2")',
                      "  %output = output(%s)", "}", ""])


HAND = {label: [LN(e) for e in exps] for label, exps in EXPS.items()}


def decide(text: str, rules: str | None = None, k: int | None = None):
    """darts-choice then finalize under `rules` (default: the graph's own); (decisions, finalize record)."""
    graph = parse_graph(text)
    chosen = resolve_rules(graph, rules)
    ctx = PassContext(rules=chosen.rules, max_final_edges=k)
    ctx.decisions.rules = chosen
    darts_choice(graph, ctx)
    finalize(graph, ctx)
    return ctx.decisions, ctx.decisions.finalize.get("s")


def kept(record) -> str:
    return "".join(e.label for e in record.edges if e.kept)


@pytest.mark.parametrize("rules, expected", [
    ("darts", "A"), ("nni2", "A"), ("p-darts", "A"),
    ("archai", "B"), ("logit", "B"), ("nni3", "B"), ("fair-darts", "B"),
    ("renorm", "C"), ("pc-darts", "C"),
])
def test_each_rule_set_keeps_its_own_best_edge(rules, expected):
    decisions, record = decide(node_text(HAND, betas=BETAS), rules, k=1)
    assert kept(record) == expected
    assert decisions.to_nni() == {label: ("a" if label == expected else []) for label in "ABC"}


def test_drnas_takes_the_argmax_over_every_candidate_and_ranks_by_it():
    # DrNAS's DARTS-space genotype(): k_best over all of W[j] (its PRIMITIVES has no `none`), edges by max(W[x])
    decisions, record = decide(node_text(HAND), "drnas", k=1)
    assert {label: d.chosen_name for label, d in decisions.layer.items()} == {"A": "a", "B": "none", "C": "none"}
    assert kept(record) == "C" and [e.rank for e in record.edges] == pytest.approx([0.5, 0.5, 0.75])
    without_none = {label: values[:2] for label, values in HAND.items()}  # DrNAS's own space: no zero op
    text = node_text(without_none).replace('["a", "b", "none"]', '["a", "b"]').replace("f32[3]", "f32[2]") \
        .replace(', "m.b", null]', ', "m.b"]').replace(", zero=2", "")
    for rules in ("drnas", "darts"):  # A: 2/3, B: 9/12, C: 4/5, all choosing a
        decisions, record = decide(text, rules, k=1)
        assert kept(record) == "C" and {d.chosen_name for d in decisions.layer.values()} == {"a"}


def test_pc_darts_ranks_are_the_products_with_the_betas():
    _, record = decide(node_text(HAND, betas=BETAS), "pc-darts", k=1)
    assert [e.rank for e in record.edges] == pytest.approx([0.05, 0.0375, 0.16], rel=1e-6)
    assert record.rank == "pc-darts"


@pytest.mark.parametrize("rules", ["nb201", "gdas"])
def test_nb201_rules_choose_none_and_keep_every_edge(rules):
    decisions, record = decide(node_text(HAND), rules)
    assert decisions.to_nni() == {"A": "a", "B": "none", "C": "none"}
    assert record.max_final_edges is None and kept(record) == "ABC"
    assert decisions.by_path() == {"%eA": "a", "%eB": [], "%eC": []}  # a chosen zero op computes zeros


def test_fair_darts_shows_sigmoids_and_keeps_two_by_default():
    _, record = decide(node_text(HAND), "fair-darts")
    assert kept(record) == "BC" and record.max_final_edges == 2
    assert [e.rank for e in record.edges] == pytest.approx([2 / 3, 0.9, 0.8])  # sigmoid(ln e) = e / (1 + e)


# --- saturated logits: float32 probabilities underflow, the exact ranks do not ---------------------
# The zero op's logit 2000 dwarfs the others: in float32 every p of a non-zero slot is exactly 0.0.
SATURATED = {"A": [0.0, 5.0, 2000.0], "B": [10.0, 0.0, 2000.0], "C": [-3.0, 1.0, 2000.0]}


def test_saturated_op_choice_is_the_argmax_of_the_logits():
    decisions, _ = decide(node_text(SATURATED), "darts")
    assert {label: d.chosen_name for label, d in decisions.layer.items()} == {"A": "b", "B": "a", "C": "b"}
    a = decisions.layer["A"]
    assert a.tie == [] and a.framework_tie == ["a", "b"] and a.framework_pick == "a"
    assert any("DARTS genotype() compares float32 softmax, where candidates ['a', 'b'] tie; it would likely pick "
               "'a'" in line for line in decisions.ties())


@pytest.mark.parametrize("rules, expected", [("darts", "B"), ("pc-darts", "B"), ("renorm", "A"), ("logit", "B"),
                                             ("fair-darts", "B")])
def test_saturated_edge_ranks_keep_their_order(rules, expected):
    # darts: log p = 10 - 2000 (B) > 5 - 2000 (A) > 1 - 2000 (C), while every p is 0.0 in float32.
    # renorm (zero left out) saturates the other way: p = 1 / (1 + e^-200) (A), 1 / (1 + e^-150) (B),
    # 1 / (1 + e^-120) (C) are all 1.0, even in float64; log p ~ -e^-200 > -e^-150 > -e^-120 keeps A.
    logits = SATURATED if rules != "renorm" else {"A": [0.0, 200.0, 1.0], "B": [150.0, 0.0, 1.0],
                                                  "C": [0.0, 120.0, 1.0]}
    betas = [0.0, 0.0, 0.0] if rules == "pc-darts" else None
    decisions, record = decide(node_text(logits, betas=betas), rules, k=1)
    assert kept(record) == expected and record.tie == []
    if rules in ("darts", "pc-darts", "renorm"):  # float32 ranks tie: reported, with the likely pick
        assert record.framework_tie == [0, 1, 2] and record.framework_kept == [0]
        assert any("tie at the cut; it would likely keep edges [0]" in line for line in decisions.ties())


def test_log_prob_is_precise_at_both_ends():
    assert log_prob([0.0, 2000.0], 0) == -2000.0
    assert log_prob([200.0, 0.0], 0) == pytest.approx(-math.exp(-200), rel=1e-12)
    assert log_prob([200.0, 0.0], 0) > log_prob([150.0, 0.0], 0)
    assert log_prob([math.log(3), 0.0], 0) == pytest.approx(math.log(0.75))


def test_a_real_tie_keeps_the_lowest_index_and_nni3_reports_its_own_order():
    tied = {"A": [1.0, 0.0, 0.0], "B": [1.0, 0.0, 0.0], "C": [-1.0, 0.0, 0.0]}
    decisions, record = decide(node_text(tied), "nni3", k=1)
    assert kept(record) == "A" and record.tie == [0, 1]
    assert record.framework_tie == []  # a real tie is reported as one, not as a float32 artefact
    near = {"A": [1.0, 0.0, 0.0], "B": [1.0 + 2 ** -30, 0.0, 0.0], "C": [-1.0, 0.0, 0.0]}
    decisions, record = decide(node_text(near).replace("f32", "f64"), "nni3", k=1)
    assert kept(record) == "B" and record.tie == []


# --- property: random logits at every scale equal an exact derivation written here -----------------
def exact_log_prob(values, i):
    mpmath.mp.dps = 60
    xs = [mpmath.mpf(v) for v in values]
    return xs[i] - mpmath.log(mpmath.fsum(mpmath.exp(x) for x in xs))


def brute_force(logits: dict[str, list[float]], rules: str, betas: list[float], k: int):
    """(ops, kept labels) by the rule set's definition, in 60-digit arithmetic; None when the cut is closer
    than float64 can tell."""
    rule = RULE_SETS[rules]
    ops, keys = {}, {}
    for n, (label, x) in enumerate(logits.items()):
        slots = [0, 1, 2] if rule.op == "any" else [0, 1]
        op = max(slots, key=lambda i: (x[i], -i))
        ops[label] = op
        if rule.rank == "softmax":
            keys[label] = exact_log_prob(x, op)
        elif rule.rank == "renorm":
            keys[label] = exact_log_prob(x[:2], op)
        elif rule.rank in ("logit", "sigmoid"):
            keys[label] = mpmath.mpf(x[op])
        else:
            keys[label] = exact_log_prob(x, op) + exact_log_prob(betas, n)
    if rule.keep == "all":
        return ops, set(logits)
    order = sorted(keys, key=lambda label: -keys[label])
    gap = abs(keys[order[k - 1]] - keys[order[k]])
    if gap <= mpmath.mpf(1e-9) * (1 + abs(keys[order[k]])):
        return None
    return ops, set(order[:k])


@pytest.mark.parametrize("rules", sorted(RULE_SETS))
def test_random_logits_at_every_scale_equal_the_exact_derivation(rules):
    rng = random.Random(rules)
    checked = 0
    for trial in range(40):
        scale = rng.choice([1e-6, 1e-3, 1.0, 30.0, 300.0, 3000.0])
        logits = {label: [float(torch.tensor(scale * rng.gauss(0, 1)).float()) for _ in range(3)] for label in "ABCD"}
        betas = [float(torch.tensor(scale * rng.gauss(0, 1)).float()) for _ in range(4)]
        k = rng.choice([1, 2, 3])
        want = brute_force(logits, rules, betas, k)
        if want is None or any(len(set(x[:2])) < 2 for x in logits.values()):
            continue
        keep_all = RULE_SETS[rules].keep == "all"  # an explicit k would override: leave it to the rule set
        decisions, record = decide(node_text(logits, betas=betas), rules, k=None if keep_all else k)
        assert {label: d.chosen for label, d in decisions.layer.items()} == want[0], (trial, logits)
        assert {e.label for e in record.edges if e.kept} == want[1], (trial, logits, k)
        checked += 1
    assert checked >= 20  # the filters above leave most trials in


# --- the default rule set ------------------------------------------------------------------------
@pytest.mark.parametrize("family, name", [("archai", "archai"), ("nni2", "nni2"), ("darts", "darts"),
                                          ("pc-darts", "pc-darts"), ("nb201", "nb201"), (None, "darts")])
def test_the_default_follows_the_family(family, name):
    chosen = default_rules(parse_graph(node_text(HAND, family)))
    assert chosen.rules.name == name
    assert chosen.source == (f"family {family!r}" if family else "default")


def test_sigmoid_weighting_and_edge_logits_imply_their_family():
    text = node_text(HAND).replace('label="A"', 'label="A", weighting="sigmoid"')
    assert default_rules(parse_graph(text)).rules.name == "fair-darts"
    assert default_rules(parse_graph(node_text(HAND, betas=BETAS))).rules.name == "pc-darts"


def test_mixed_families_are_refused_naming_them_and_rules_overrides():
    text = node_text(HAND, "archai").replace('family="archai", label="B"', 'family="nni2", label="B"')
    with pytest.raises(ChoiceError, match=r"mixes layer choices of several families: archai \(e.g. 'A'\); "
                                          r"nni2 \(e.g. 'B'\).*pass --rules NAME"):
        default_rules(parse_graph(text))
    assert resolve_rules(parse_graph(text), "archai").source == "--rules"


def test_unknown_names_are_refused():
    with pytest.raises(ChoiceError, match="unknown rule set 'dart'; use one of darts, nni2"):
        get_rules("dart")
    with pytest.raises(ChoiceError, match="family 'enas', which no rule set knows"):
        default_rules(parse_graph(node_text(HAND, "enas")))
    with pytest.raises(ChoiceError, match="--rank logit and --rules darts disagree"):
        resolve_rules(parse_graph(node_text(HAND)), "darts", "logit")


def test_pc_darts_without_betas_is_refused_naming_the_label():
    with pytest.raises(ChoiceError, match="layer choice 'A' .* no edge-normalization logits"):
        decide(node_text(HAND), "pc-darts")


# --- NNI 3: a replica of DifferentiableMixedCell.export (NNI 3.0), written from its source ---------
def nni3_cell_export(node_logits: dict[str, list[float]], op_names=("a", "b"), num_ops_per_node: int = 2):
    """One node: (alpha, input j, op) over every input and real op (the cell's extra zero logit skipped),
    sorted descending; the first occurrence of each input moved to the front, in order; the first k taken."""
    weights = sorted(((alpha[k], j, name) for j, alpha in enumerate(node_logits.values())
                      for k, name in enumerate(op_names)), reverse=True)
    first = sorted(weights.index(next(w for w in weights if w[1] == j)) for j in range(len(node_logits)))
    weights = [weights[i] for i in first] + [w for i, w in enumerate(weights) if i not in first]
    return {(j, name) for _, j, name in weights[:num_ops_per_node]}


def test_nni3_equals_a_replica_of_its_cell_export_on_random_logits():
    rng = random.Random(3)
    for _ in range(200):
        logits = {label: [float(torch.tensor(rng.gauss(0, 3)).float()) for _ in range(3)] for label in "ABCD"}
        tops = sorted(max(x[:2]) for x in logits.values())
        if len(set(tops)) < len(tops):
            continue  # a real tie: nascompile keeps the lower input, NNI 3 the higher (reported)
        decisions, record = decide(node_text(logits), "nni3")
        ours = {("ABCD".index(e.label), decisions.layer[e.label].chosen_name) for e in record.edges if e.kept}
        assert ours == nni3_cell_export(logits)
