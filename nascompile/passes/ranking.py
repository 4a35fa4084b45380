"""The numeric rules behind the decisions, in one place.

- `choose`: NNI `DartsMutator.sample_final` — p = softmax over all logits *including* the zero slot,
  in the logits' own dtype; the chosen op is the argmax of p over the non-zero slots. Tie rule: the
  lowest index wins (DARTS's `genotype()` keeps the first maximum too).
- `edge_rank`: the rank of a chosen op under each convention:
  `darts` (p[chosen], softmax including the zero slot: DARTS `genotype()`, NNI `edges_max`),
  `logit` (the raw logit: Archai `MixedOp.finalize`), `renorm` (softmax over the non-zero slots only:
  NASLib).
- `top_k`: keep the k best by rank, sorted descending and stably, so ties go to the lowest position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import ChoiceError

RANK_CONVENTIONS = ("darts", "logit", "renorm")


@dataclass
class Choice:
    probabilities: list[float]
    chosen: int
    runner_up: int | None
    tie: list[int]

    @property
    def strength(self) -> float:
        return self.probabilities[self.chosen]

    @property
    def margin(self) -> float:
        if self.runner_up is None:
            return math.inf
        return self.probabilities[self.chosen] - self.probabilities[self.runner_up]


def check_logits(logits: torch.Tensor, label: str, where: str = "") -> None:
    """Refuse NaN or infinite logits: no rule can rank them."""
    if not torch.isfinite(logits).all():
        bad = [i for i, v in enumerate(logits.tolist()) if not math.isfinite(v)]
        raise ChoiceError(
            f"layer choice {label!r}{f' ({where})' if where else ''} has non-finite logits at positions "
            f"{bad}: {logits.tolist()}. Check the search for divergence, or fix the alphas before compiling."
        )


def softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax in the logits' own floating dtype, on the CPU (as the reference frameworks compute it)."""
    logits = logits.detach().cpu()
    if not logits.is_floating_point():
        logits = logits.float()
    return torch.softmax(logits, dim=-1)


def choose(logits: torch.Tensor, zero: int | None, label: str, where: str = "") -> Choice:
    """The NNI/DARTS op choice for one layer choice."""
    check_logits(logits, label, where)
    probs = softmax(logits).tolist()
    slots = [i for i in range(len(probs)) if i != zero]
    if not slots:
        raise ChoiceError(f"layer choice {label!r} has only the zero op as candidate")
    order = sorted(slots, key=lambda i: -probs[i])  # stable: ties keep the lowest index first
    best = probs[order[0]]
    tie = [i for i in slots if probs[i] == best]
    return Choice(probs, order[0], order[1] if len(order) > 1 else None, tie if len(tie) > 1 else [])


def edge_rank(logits: torch.Tensor, chosen: int, zero: int | None, convention: str) -> float:
    """Rank of a layer choice's edge under `convention` (see module docstring)."""
    if convention == "darts":
        return softmax(logits)[chosen].item()
    if convention == "logit":
        return logits.detach().cpu()[chosen].item()
    if convention == "renorm":
        keep = [i for i in range(logits.numel()) if i != zero]
        return softmax(logits.detach().cpu()[keep])[keep.index(chosen)].item()
    raise ChoiceError(f"unknown rank convention {convention!r}; use one of {', '.join(RANK_CONVENTIONS)}")


def top_k(ranks: list[float], k: int | None) -> tuple[list[int], list[int]]:
    """Positions of the k best ranks (all when k is None or >= len), in position order, and the tie.

    The tie lists the positions whose rank equals the rank at the cut when that rank is found on both
    sides of it: those the tie rule (lowest position first) decided.
    """
    if k is None or k >= len(ranks):
        return list(range(len(ranks))), []
    order = sorted(range(len(ranks)), key=lambda i: -ranks[i])
    kept = sorted(order[:k])
    cut = ranks[order[k - 1]]
    tie = [i for i in range(len(ranks)) if ranks[i] == cut] if ranks[order[k]] == cut else []
    return kept, tie
