"""The authoring API: LayerChoice / InputChoice in search and fixed mode, shared labels, `fixed()`."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nascompile import nn as nc
from nascompile.errors import ChoiceError


class Scale(nn.Module):
    """x * factor: a candidate whose output is known by hand."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def scales(*factors: float) -> dict[str, nn.Module]:
    return {f"s{i}": Scale(f) for i, f in enumerate(factors)}


def set_alpha(choice: nc.LayerChoice, values: list[float]) -> None:
    with torch.no_grad():
        choice.alpha.copy_(torch.tensor(values))


# --- LayerChoice ----------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha, expected_factor", [
    # softmax([0, 0, ln 2]) = [1/4, 1/4, 1/2]: the zero slot (last) takes half the mass and adds nothing,
    # so the mixture is 2/4 - 3/4 = -1/4 (it would be -1/2 if the zero slot were left out of the softmax).
    ([0.0, 0.0, math.log(2.0)], -0.25),
    # softmax([ln 3, 0, 0]) = [3/5, 1/5, 1/5]: 2*3/5 - 3/5 = 3/5 (it would be -1/5 if the zero slot were first).
    ([math.log(3.0), 0.0, 0.0], 0.6),
    # softmax([0, 0, 0]) = [1/3, 1/3, 1/3]: (2 - 3) / 3.
    ([0.0, 0.0, 0.0], -1.0 / 3.0),
])
def test_search_forward_is_the_softmax_mixture_with_the_zero_slot_last(alpha, expected_factor):
    choice = nc.LayerChoice(scales(2.0, -3.0), label="e")
    set_alpha(choice, alpha)
    x = torch.tensor([1.0, -2.0, 4.0])
    torch.testing.assert_close(choice(x), x * expected_factor, rtol=1e-6, atol=1e-6)


def test_search_forward_with_one_candidate_scales_by_its_weight():
    choice = nc.LayerChoice([Scale(1.0)])
    set_alpha(choice, [math.log(3.0), 0.0])  # weights [3/4, 1/4]
    torch.testing.assert_close(choice(torch.tensor([4.0])), torch.tensor([3.0]))


def test_alpha_has_one_logit_per_candidate_plus_the_zero_slot_and_a_small_init():
    torch.manual_seed(1)
    choices = [nc.LayerChoice([nn.Identity() for _ in range(7)]) for _ in range(300)]
    assert all(isinstance(c.alpha, nn.Parameter) and c.alpha.shape == (8,) and c.alpha.requires_grad for c in choices)
    values = torch.cat([c.alpha.detach() for c in choices])  # 2400 draws of 1e-3 * N(0, 1)
    assert 0.9e-3 < values.std().item() < 1.1e-3
    assert abs(values.mean().item()) < 1e-4
    assert values.abs().max().item() < 6e-3


def test_list_candidates_are_named_by_position_and_dict_candidates_by_key():
    listed = nc.LayerChoice([nn.ReLU(), nn.Identity()])
    assert listed.names == ["0", "1"] and len(listed) == 2
    named = nc.LayerChoice({"skip": nn.Identity(), "relu": nn.ReLU()}, label="e")
    assert named.names == ["skip", "relu"] and isinstance(named.candidates["relu"], nn.ReLU)
    x = torch.tensor([-1.0, 2.0])
    named.fix("relu")
    assert torch.equal(named(x), torch.tensor([0.0, 2.0]))
    named.fix(0)
    assert torch.equal(named(x), x)
    listed.fix("0")
    assert torch.equal(listed(x), torch.tensor([0.0, 2.0]))


def test_fixed_to_dropped_computes_zeros_shaped_like_a_candidate_output():
    choice = nc.LayerChoice({"lin": nn.Linear(2, 3)}, label="e")
    choice.fix([])
    out = choice(torch.ones(4, 2))
    assert out.shape == (4, 3) and torch.count_nonzero(out) == 0
    choice.unfix()
    assert torch.count_nonzero(choice(torch.ones(4, 2))) > 0


@pytest.mark.parametrize("bad", ["nope", 2, -1, ["s0"], True])
def test_fix_refuses_unknown_candidates(bad):
    choice = nc.LayerChoice(scales(1.0, 2.0), label="e")
    with pytest.raises(ChoiceError, match="'e'"):
        choice.fix(bad)


# --- shared labels --------------------------------------------------------------------------------
class Twin(nc.Supernet):
    def __init__(self):
        super().__init__()
        self.first = nc.LayerChoice(scales(2.0, -1.0), label="shared")
        self.second = nc.LayerChoice(scales(2.0, -1.0), label="shared")
        self.own = nc.LayerChoice(scales(2.0, -1.0), label="own")

    def forward(self, x):
        return self.first(x) + self.second(x) + self.own(x)


class Plain(nn.Module):
    def __init__(self, second_names=("s0", "s1")):
        super().__init__()
        self.first = nc.LayerChoice(scales(2.0, -1.0), label="shared")
        self.second = nc.LayerChoice(dict(zip(second_names, (Scale(2.0), Scale(-1.0)))), label="shared")

    def forward(self, x):
        return self.first(x) + self.second(x)


def test_supernet_subclass_ties_alphas_of_one_label():
    model = Twin()
    assert model.first.alpha is model.second.alpha
    assert model.own.alpha is not model.first.alpha
    params = list(model.parameters())
    assert sum(p is model.first.alpha for p in params) == 1
    assert len(params) == 2


def test_tie_alphas_on_a_plain_module():
    model = Plain()
    assert model.first.alpha is not model.second.alpha
    assert nc.tie_alphas(model) is model
    assert model.second.alpha is model.first.alpha
    assert [name for name, _ in model.named_parameters()] == ["first.alpha"]


@pytest.mark.parametrize("make", [Twin, lambda: nc.tie_alphas(Plain())])
def test_a_training_step_updates_the_shared_alpha_once_for_both(make):
    model = make()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    assert sum(len(group["params"]) for group in optimizer.param_groups) == len(list(model.parameters()))
    set_alpha(model.first, [0.0, 0.0, 0.0])
    x = torch.tensor([1.0])
    # d/d alpha of the shared choice's output sum: each use contributes p_i * (f_i - mixture), f = [2, -1, 0],
    # p = 1/3 each, mixture = 1/3, so one use gives [5/9, -4/9, -1/9] and two uses twice that.
    model.first(x).add(model.second(x)).sum().backward()
    torch.testing.assert_close(model.first.alpha.grad, torch.tensor([10 / 9, -8 / 9, -2 / 9]))
    optimizer.step()
    expected = torch.tensor([-5 / 9, 4 / 9, 1 / 9])
    torch.testing.assert_close(model.first.alpha.detach(), expected)
    torch.testing.assert_close(model.second.alpha.detach(), expected)


def test_different_candidates_under_one_label_are_refused():
    with pytest.raises(ChoiceError) as info:
        nc.tie_alphas(Plain(second_names=("s0", "other")))
    message = str(info.value)
    assert "'first'" in message and "'second'" in message and "'shared'" in message
    assert "['s0', 's1'] vs ['s0', 'other']" in message


def test_supernet_refuses_different_candidates_under_one_label():
    class Bad(nc.Supernet):
        def __init__(self):
            super().__init__()
            self.a = nc.LayerChoice(scales(1.0), label="x")
            self.b = nc.LayerChoice(scales(1.0, 2.0), label="x")

    with pytest.raises(ChoiceError, match="share label 'x' but have different candidates"):
        Bad()


# --- InputChoice ----------------------------------------------------------------------------------
A, B, C = torch.tensor([[1.0, 2.0]]), torch.tensor([[10.0, 20.0]]), torch.tensor([[100.0, 200.0]])


@pytest.mark.parametrize("reduction, everything, first_and_last", [
    ("sum", [[111.0, 222.0]], [[101.0, 202.0]]),
    ("mean", [[37.0, 74.0]], [[50.5, 101.0]]),
    ("concat", [[1.0, 2.0, 10.0, 20.0, 100.0, 200.0]], [[1.0, 2.0, 100.0, 200.0]]),
])
def test_input_choice_reductions_in_search_and_fixed_mode(reduction, everything, first_and_last):
    choice = nc.InputChoice(3, n_chosen=2, label="n", reduction=reduction)
    assert torch.equal(choice([A, B, C]), torch.tensor(everything))  # search mode reduces every input
    choice.fix([2, 0])
    assert torch.equal(choice([A, B, C]), torch.tensor(first_and_last))
    choice.fix([1])
    assert torch.equal(choice([A, B, C]), B)  # one kept input is passed through
    choice.unfix()
    assert torch.equal(choice([A, B, C]), torch.tensor(everything))


def test_input_choice_none_reduction_returns_the_list():
    choice = nc.InputChoice(3, n_chosen=None, reduction="none")
    out = choice([A, B, C])
    assert isinstance(out, list) and len(out) == 3 and all(o is t for o, t in zip(out, (A, B, C)))
    choice.fix([2, 1])
    out = choice([A, B, C])
    assert len(out) == 2 and out[0] is B and out[1] is C


def test_input_choice_counts_its_inputs_from_choose_from():
    choice = nc.InputChoice(choose_from=["e0", "e1"], n_chosen=1, label="n")
    assert choice.n_candidates == 2 and choice.choose_from == ["e0", "e1"]
    assert nc.InputChoice(2).choose_from == [None, None]
    with pytest.raises(ChoiceError, match="expects 2 inputs, got 3"):
        choice([A, B, C])


@pytest.mark.parametrize("kwargs, message", [
    (dict(), "needs n_candidates or choose_from"),
    (dict(n_candidates=0), "n_candidates must be a positive int, got 0"),
    (dict(n_candidates=2.0), "n_candidates must be a positive int, got 2.0"),
    (dict(n_candidates=3, choose_from=["a", "b"]), "choose_from has 2 labels but n_candidates is 3"),
    (dict(n_candidates=2, n_chosen=0), "n_chosen=0 must be None or an int between 1 and n_candidates=2"),
    (dict(n_candidates=2, n_chosen=3), "n_chosen=3 must be None or an int between 1 and n_candidates=2"),
    (dict(n_candidates=2, n_chosen=True), "n_chosen=True must be None or an int"),
    (dict(n_candidates=True), "n_candidates must be a positive int, got True"),
    (dict(n_candidates=2, reduction="max"), "reduction 'max' is not one of sum, mean, concat, none"),
])
def test_input_choice_constructor_errors(kwargs, message):
    with pytest.raises(ChoiceError) as info:
        nc.InputChoice(label="node", **kwargs)
    assert "InputChoice(label='node')" in str(info.value) and message in str(info.value)


@pytest.mark.parametrize("kept", [[3], [-1], [0, 0]])
def test_input_choice_fix_refuses_bad_positions(kept):
    with pytest.raises(ChoiceError, match="InputChoice 'n': bad kept positions"):
        nc.InputChoice(3, label="n").fix(kept)


@pytest.mark.parametrize("candidates, label, message", [
    ([], "e", "has no candidates"),
    ({}, "e", "has no candidates"),
    ([nn.ReLU(), "relu"], "e", "candidate '1' is a str, not an nn.Module"),
    ({"none": nn.ReLU()}, "e", "candidate name 'none' is reserved for the implicit zero op"),
    ({"a.b": nn.ReLU()}, "e", "candidate name 'a.b' must be non-empty and contain no '.'"),
    ({"": nn.ReLU()}, "e", "candidate name '' must be non-empty"),
    ({"training": nn.ReLU()}, "e", "candidate name 'training' cannot be used"),
    ([nn.ReLU()], 5, "label must be a string, got 5"),
])
def test_layer_choice_constructor_errors(candidates, label, message):
    with pytest.raises(ChoiceError) as info:
        nc.LayerChoice(candidates, label=label)
    assert message in str(info.value)


# --- fixed() --------------------------------------------------------------------------------------
class Cell(nn.Module):
    def __init__(self):
        super().__init__()
        self.e0 = nc.LayerChoice(scales(2.0, 3.0), label="e0")
        self.e1 = nc.LayerChoice(scales(5.0, 7.0), label="e1")
        self.node = nc.InputChoice(2, n_chosen=1, label="n", choose_from=["e0", "e1"])
        self.unlabelled = nc.LayerChoice(scales(1.0, 100.0))

    def forward(self, x):
        return self.unlabelled(self.node([self.e0(x), self.e1(x)]))


def search_mode(model: nn.Module) -> bool:
    return all(m._fixed is None for m in model.modules() if isinstance(m, (nc.LayerChoice, nc.InputChoice)))


def test_fixed_applies_nni_decisions_and_restores_search_mode():
    model = Cell()
    x = torch.tensor([1.0])
    decisions = {"e0": "s1", "e1": [], "n": ["e0"], "unlabelled": "s1"}  # unlabelled: labelled by its path
    with nc.fixed(model, decisions) as same:
        assert same is model
        assert torch.equal(model(x), torch.tensor([300.0]))  # e0 -> x*3, kept alone, then x*100
        assert torch.count_nonzero(model.e1(x)) == 0
    assert search_mode(model)


def test_fixed_accepts_positions_and_overrides_by_path():
    model = Cell()
    x = torch.tensor([1.0])
    with nc.fixed(model, {"e0": "s0", "e1": "s1", "n": [0, 1], "unlabelled": "s0"}, by_path={"e1": "s0"}):
        assert torch.equal(model(x), torch.tensor([7.0]))  # 2 + 5 (e1 overridden by path)
    assert search_mode(model)


def test_fixed_leaves_undecided_choices_in_search_mode():
    model = Cell()
    with nc.fixed(model, {"e0": "s0"}):
        assert model.e0._fixed == 0 and model.e1._fixed is None and model.node._fixed is None
    assert search_mode(model)


def test_fixed_restores_search_mode_when_the_body_raises():
    model = Cell()
    with pytest.raises(RuntimeError, match="boom"):
        with nc.fixed(model, {"e0": "s0", "e1": "s1", "n": ["e1"]}):
            raise RuntimeError("boom")
    assert search_mode(model)


def test_fixed_restores_what_it_fixed_when_a_decision_is_bad():
    model = Cell()
    with pytest.raises(ChoiceError, match="LayerChoice 'e1' has no candidate 'bogus'"):
        with nc.fixed(model, {"e0": "s0", "e1": "bogus"}):
            pass
    assert search_mode(model)


def test_fixed_refuses_an_input_label_not_in_choose_from():
    with pytest.raises(ChoiceError, match=r"input choice 'n' keeps 'e7', which is not in its choose_from \['e0', 'e1'\]"):
        with nc.fixed(Cell(), {"n": ["e7"]}):
            pass
