"""The numeric decision rules (`passes/ranking.py`) on hand-computed logits."""

from __future__ import annotations

import math

import pytest
import torch

from nascompile.errors import ChoiceError
from nascompile.passes.ranking import choose, edge_rank, top_k

LN = math.log


def logits(*exps: float) -> torch.Tensor:
    """Logits whose exponentials are `exps`, so every softmax below is a ratio of small integers."""
    return torch.tensor([LN(e) for e in exps])


# --- choose ---------------------------------------------------------------------------------------
def test_choose_takes_the_softmax_over_every_slot_and_never_the_zero_op():
    # exps [1, 3, 2, 4] -> p = [0.1, 0.3, 0.2, 0.4]; the zero slot (last) is the largest but never chosen
    choice = choose(logits(1, 3, 2, 4), zero=3, label="e")
    torch.testing.assert_close(torch.tensor(choice.probabilities), torch.tensor([0.1, 0.3, 0.2, 0.4]))
    assert choice.chosen == 1 and choice.runner_up == 2
    assert choice.strength == pytest.approx(0.3) and choice.margin == pytest.approx(math.log(3 / 2))  # ln .3/.2
    assert choice.tie == []


def test_choose_with_the_zero_op_first_as_darts_lists_it():
    choice = choose(logits(4, 1, 3, 2), zero=0, label="e")  # p = [0.4, 0.1, 0.3, 0.2]
    assert (choice.chosen, choice.runner_up) == (2, 3)
    assert choice.strength == pytest.approx(0.3)


def test_choose_without_a_zero_op_considers_every_slot():
    choice = choose(logits(1, 3, 2, 4), zero=None, label="e")
    assert (choice.chosen, choice.runner_up) == (3, 1) and choice.strength == pytest.approx(0.4)


def test_choose_ties_go_to_the_lowest_index_and_are_reported():
    choice = choose(torch.tensor([0.0, 2.0, 2.0, 2.0, 5.0]), zero=4, label="e")
    assert choice.chosen == 1 and choice.runner_up == 2
    assert choice.tie == [1, 2, 3] and choice.margin == 0.0


def test_choose_with_one_candidate_has_no_runner_up():
    choice = choose(torch.tensor([0.0, 0.0]), zero=1, label="e")  # p = [1/2, 1/2]: no tie with the zero op
    assert choice.chosen == 0 and choice.runner_up is None and choice.margin == math.inf and choice.tie == []
    assert choice.strength == 0.5


def test_choose_refuses_a_choice_of_only_the_zero_op():
    with pytest.raises(ChoiceError, match="layer choice 'e' has only the zero op"):
        choose(torch.tensor([1.0]), zero=0, label="e")


@pytest.mark.parametrize("bad, positions", [
    ([0.0, math.nan, 1.0], "[1]"),
    ([math.inf, 0.0, 1.0], "[0]"),
    ([0.0, 1.0, -math.inf], "[2]"),
    ([math.nan, math.inf, 0.0], "[0, 1]"),
])
def test_choose_refuses_non_finite_logits_naming_the_label(bad, positions):
    with pytest.raises(ChoiceError) as info:
        choose(torch.tensor(bad), zero=2, label="normal_n3_p1", where="cells.0.nodes.1.edges.1")
    message = str(info.value)
    assert "layer choice 'normal_n3_p1' (cells.0.nodes.1.edges.1)" in message
    assert f"non-finite logits at positions {positions}" in message


def test_choose_computes_in_the_logits_dtype():
    # 1 + 1e-8 is 1 in float32 (the spacing there is 1.2e-7), so the two candidates tie there, as the float32
    # reference frameworks would see them, while in float64 the second one wins.
    values = [1.0, 1.0 + 1e-8, -3.0]
    assert choose(torch.tensor(values, dtype=torch.float32), zero=2, label="e").tie == [0, 1]
    f64 = choose(torch.tensor(values, dtype=torch.float64), zero=2, label="e")
    assert f64.chosen == 1 and f64.tie == []


# --- edge_rank ------------------------------------------------------------------------------------
# Three edges, two candidates each plus the zero op (last). With max_final_edges=1 finalize keeps the
# best-ranked edge, and each convention keeps a different one:
#   edge  exps        darts p[chosen]   logit (ln of exp)   renorm (zero left out)
#   A     [2, 1, 1]   2/4  = 0.5        ln 2 = 0.693        2/3 = 0.667
#   B     [9, 3, 12]  9/24 = 0.375      ln 9 = 2.197        9/12 = 0.75
#   C     [4, 1, 15]  4/20 = 0.2        ln 4 = 1.386        4/5  = 0.8
# darts keeps A (0.5 > 0.375 > 0.2); logit keeps B (2.197 > 1.386 > 0.693); renorm keeps C (0.8 > 0.75 > 0.667).
# B's large zero slot hurts it under darts but not under renorm; its large raw logit wins under logit.
THREE_EDGES = {"A": (2, 1, 1), "B": (9, 3, 12), "C": (4, 1, 15)}
EXPECTED_RANKS = {
    "darts": {"A": 0.5, "B": 0.375, "C": 0.2},
    "logit": {"A": LN(2), "B": LN(9), "C": LN(4)},
    "renorm": {"A": 2 / 3, "B": 0.75, "C": 0.8},
}


@pytest.mark.parametrize("convention", ["darts", "logit", "renorm"])
def test_edge_rank_conventions_on_hand_computed_logits(convention):
    for edge, exps in THREE_EDGES.items():
        rank = edge_rank(logits(*exps), chosen=0, zero=2, rank=convention).value
        assert rank == pytest.approx(EXPECTED_RANKS[convention][edge], rel=1e-6), edge


@pytest.mark.parametrize("convention, kept", [("darts", "A"), ("logit", "B"), ("renorm", "C")])
def test_the_three_conventions_keep_three_different_edges(convention, kept):
    ranks = [edge_rank(logits(*exps), 0, 2, convention).key for exps in THREE_EDGES.values()]
    positions, tie = top_k(ranks, 1)
    assert [list(THREE_EDGES)[p] for p in positions] == [kept] and tie == []


def test_darts_rank_is_the_chosen_strength():
    values = logits(1, 3, 2, 4)
    assert edge_rank(values, 1, 3, "darts").value == pytest.approx(choose(values, 3, "e").strength)


def test_renorm_rank_leaves_out_the_zero_slot_wherever_it_is():
    # zero first: exps [4, 1, 3] -> renorm of slot 2 = 3/4; zero None -> all slots: 3/8
    assert edge_rank(logits(4, 1, 3), 2, 0, "renorm").value == pytest.approx(0.75)
    assert edge_rank(logits(4, 1, 3), 2, None, "renorm").value == pytest.approx(3 / 8)


def test_edge_rank_refuses_an_unknown_convention():
    with pytest.raises(ChoiceError, match="unknown rank convention 'best'; use one of darts, logit, renorm, softmax"):
        edge_rank(logits(1, 1), 0, 1, "best")


# --- top_k ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("ranks, k, kept, tie", [
    ([0.5, 0.2, 0.9], 2, [0, 2], []),  # kept in position order, not rank order
    ([0.5, 0.2, 0.9], 1, [2], []),
    ([0.5, 0.2, 0.9], None, [0, 1, 2], []),  # n_chosen None keeps all
    ([0.5, 0.2, 0.9], 3, [0, 1, 2], []),  # no more than k: none dropped
    ([0.5, 0.2, 0.9], 5, [0, 1, 2], []),
    ([0.3, 0.5, 0.3, 0.3], 2, [0, 1], [0, 2, 3]),  # three tie for the last place: lowest position wins
    ([0.2, 0.2], 1, [0], [0, 1]),
    ([0.0, 0.0, 0.0], 2, [0, 1], [0, 1, 2]),  # all labels unknown: weights 0, first k kept
    ([0.5, 0.5, 0.1], 2, [0, 1], []),  # a tie inside the kept set decides nothing
    ([0.1, 0.5, 0.5], 1, [1], [1, 2]),
    ([-1.0, -3.0, -2.0], 2, [0, 2], []),  # raw logits may be negative
])
def test_top_k(ranks, k, kept, tie):
    assert top_k(ranks, k) == (kept, tie)
