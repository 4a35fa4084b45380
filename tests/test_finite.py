"""Batched NaN/inf detection (`nascompile/finite.py`): exact on every kind of tensor a model holds."""

import math

import torch

from nascompile.finite import non_finite, non_finite_among


def test_flags_nan_and_both_infinities_in_every_floating_dtype_and_nothing_else():
    tensors = [
        torch.ones(3),                                            # 0 finite
        torch.tensor([1.0, math.nan, 2.0]),                       # 1 NaN
        torch.tensor([-math.inf, 0.0]),                           # 2 -inf
        torch.ones(2, dtype=torch.float64),                       # 3 finite float64
        torch.tensor([1, 2]),                                     # 4 integer: never
        torch.empty(0),                                           # 5 empty: never
        torch.tensor([math.nan, math.nan], dtype=torch.float16),  # 6 NaN in float16
        torch.tensor([math.inf], dtype=torch.bfloat16),           # 7 inf in bfloat16
        torch.nn.Parameter(torch.tensor([1.0, math.nan])),        # 8 a parameter that requires grad
        torch.tensor([3e38, 3e38]),                               # 9 finite, but its squared norm overflows
        torch.tensor([1 + 1j, complex(math.nan, 0)]),             # 10 complex NaN
        torch.tensor([[0.0, math.inf]]).to_sparse(),              # 11 sparse inf
        torch.tensor([[0.0, 1.0]]).to_sparse(),                   # 12 sparse finite
    ]
    found = non_finite_among(tensors)
    assert [i for i, _ in found] == [1, 2, 6, 7, 8, 10, 11]
    assert dict(found)[1] == (1, [1]) and dict(found)[11] == (1, [0, 1])  # counted and located, sparse too


def test_counts_and_locations_are_the_one_tensor_checks():
    tensors = [torch.zeros(2, 2), torch.tensor([[0.0, 1.0], [math.inf, math.nan]]), torch.tensor([math.nan])]
    assert non_finite_among(tensors) == [(1, (2, [1, 0])), (2, (1, [0]))]
    assert non_finite(tensors[1]) == (2, [1, 0])
    assert non_finite_among([torch.ones(4), torch.tensor([7])]) == []
    assert non_finite_among([]) == []


def test_groups_split_into_stacks_and_mixed_layouts_fall_back_to_one_by_one(monkeypatch):
    import nascompile.finite as finite

    monkeypatch.setattr(finite, "STACK_ELEMENTS", 8)  # 4-value tensors: two per stack
    tensors = [torch.ones(2, 2) for _ in range(5)] + [torch.ones(2, 2).to_sparse()]
    tensors[3][1, 1] = math.inf    # in the second stack
    tensors[4][0, 0] = math.nan    # alone in the third
    tensors[5] = torch.tensor([[0.0, 0.0], [math.nan, 0.0]]).to_sparse()  # sparse among dense: stacking fails
    assert finite.non_finite_among(tensors) == [(3, (1, [1, 1])), (4, (1, [0, 0])), (5, (1, [1, 0]))]
