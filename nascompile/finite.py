"""Finding NaN and infinity in many tensors at once.

A supernet holds thousands of small tensors (each BatchNorm has four), and one `torch.isfinite` call per
tensor costs more in dispatch than in arithmetic. `non_finite_among` asks torch for every tensor's Euclidean norm in
one batched call per dtype and device (`torch._foreach_norm`, as gradient clipping does): a tensor holding
an infinity or a NaN has an infinite or NaN norm. The converse fails only for finite values so large that
their squares overflow, so each tensor the norm flags is checked exactly, one by one, before it is named.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def non_finite(tensor: torch.Tensor) -> tuple[int, list[int]] | None:
    """(how many, index of the first) NaN or infinite values of a floating tensor; None when all are finite."""
    if not (tensor.is_floating_point() or tensor.is_complex()):
        return None
    bad = ~torch.isfinite(tensor.detach())
    if not bad.any():
        return None
    return int(bad.sum()), [int(i) for i in bad.nonzero()[0]]


def non_finite_among(tensors: Sequence[torch.Tensor]) -> list[tuple[int, tuple[int, list[int]]]]:
    """(index, what `non_finite` says of it) of each tensor holding NaN or infinity, in order (integer and
    empty tensors never do)."""
    groups: dict[tuple, list[int]] = {}
    for i, tensor in enumerate(tensors):
        dtype = tensor.dtype
        if dtype.is_floating_point or dtype.is_complex:
            groups.setdefault((dtype, tensor.device, tensor.is_sparse or dtype.is_complex), []).append(i)
    suspects: list[int] = []
    with torch.no_grad():
        for (_, _, one_by_one), indices in groups.items():
            if one_by_one:  # no batched norm for sparse layouts; complex ones are rare
                suspects += indices
                continue
            norms = torch.stack(torch._foreach_norm([tensors[i] for i in indices], 2))
            suspects += [indices[j] for j in (~torch.isfinite(norms)).nonzero().flatten().tolist()]
    exact = ((i, non_finite(_dense(tensors[i]))) for i in sorted(suspects))
    return [(i, found) for i, found in exact if found is not None]


def _dense(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to_dense() if tensor.is_sparse else tensor
