"""Finding NaN and infinity in many tensors at once.

A supernet holds thousands of small tensors (each BatchNorm has four), and one `torch.isfinite` call per
tensor costs more in dispatch than in arithmetic (so does `torch._foreach_norm`, which on the CPU runs one
norm per tensor: 4-5 us each). `non_finite_among` groups the tensors by dtype and shape, stacks each group
(a few dozen groups in a DARTS supernet; at most `STACK_ELEMENTS` values per stack, so the copy stays small)
and sums each stacked tensor's values: a tensor holding an infinity or a NaN has an infinite or NaN sum. The
converse fails only for finite values so large that their sum overflows, so each tensor a sum flags is
checked exactly, one by one, before it is named. A group that cannot be stacked (sparse tensors, tensors on
two devices) is checked one by one.
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


STACK_ELEMENTS = 1 << 18  # values per stacked copy: 1 MiB of float32, so the scan adds little to peak memory


def non_finite_among(tensors: Sequence[torch.Tensor]) -> list[tuple[int, tuple[int, list[int]]]]:
    """(index, what `non_finite` says of it) of each tensor holding NaN or infinity, in order (integer and
    empty tensors never do)."""
    groups: dict[tuple, list[int]] = {}
    for i, tensor in enumerate(tensors):  # two attribute reads per tensor: they are most of the cost
        groups.setdefault((tensor.dtype, tensor.shape), []).append(i)
    suspects: list[int] = []
    with torch.no_grad():
        for (dtype, shape), indices in groups.items():
            if not (dtype.is_floating_point or dtype.is_complex) or not shape.numel():
                continue
            step = max(1, STACK_ELEMENTS // shape.numel())
            for start in range(0, len(indices), step):
                suspects += _flagged(tensors, indices[start:start + step])
    exact = ((i, non_finite(_dense(tensors[i]))) for i in sorted(suspects))
    return [(i, found) for i, found in exact if found is not None]


def _flagged(tensors: Sequence[torch.Tensor], indices: list[int]) -> list[int]:
    """The indices among `indices` (tensors of one dtype and shape) whose values' sum is not finite."""
    try:
        sums = torch.stack([tensors[i] for i in indices]).reshape(len(indices), -1).sum(1)
    except (RuntimeError, NotImplementedError):  # sparse layouts, two devices: every one goes to the exact check
        return indices
    return [indices[j] for j in (~torch.isfinite(sums)).nonzero().flatten().tolist()]


def _dense(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to_dense() if tensor.is_sparse else tensor
