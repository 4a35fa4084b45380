"""The numbers behind the decisions, exact: float64 and log space (rule sets are named in `rules.py`).

- `choose`: the op of one layer choice, the argmax of its logits over the slots the rule allows (all but
  the zero op, or all). Softmax and sigmoid are monotone, so this is the argmax of the probabilities,
  however saturated. A real tie (equal logits) keeps the lowest index.
- `edge_rank`: the strength of a decided edge under a rank (`rules.RANKS`), as a float64 `key` compared
  exactly (log p = logit - logsumexp for the softmax ranks; the logit for the raw and sigmoid ranks, which
  orders as the sigmoid does), the `value` shown to people (p, the logit, the sigmoid), and the `float32`
  value the family's own code would compare.
- `top_k`: keep the k best keys, sorted descending and stably, so ties go to the lowest position.
- `framework_pick` / `framework_top_k`: what the family's code would do with its float32 values, for
  reporting where those tie although the exact ranks do not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..errors import ChoiceError

#: The former `--rank` names (and `finalize{rank=...}`) -> the rank they mean.
RANK_ALIASES = {"darts": "softmax", "logit": "logit", "renorm": "renorm"}
RANK_CONVENTIONS = ("darts", "logit", "renorm", "softmax", "sigmoid", "pc-darts")


@dataclass
class Choice:
    probabilities: list[float]  # float64 softmax over all slots, the zero slot included
    chosen: int
    runner_up: int | None
    tie: list[int]  # slots whose logits equal the chosen one's (a real tie), when more than one
    framework_tie: list[int] = field(default_factory=list)  # slots tied in the framework's float32 values
    framework_pick: int | None = None  # what the framework would likely pick among them
    logits: list[float] = field(default_factory=list)  # float64

    @property
    def strength(self) -> float:
        return self.probabilities[self.chosen]

    @property
    def margin(self) -> float:
        """logit[chosen] - logit[runner-up]: the log of p[chosen] / p[runner-up] under softmax, exact however
        saturated (the near-tie margin, `decisions.py`)."""
        if self.runner_up is None:
            return math.inf
        return self.logits[self.chosen] - self.logits[self.runner_up]


@dataclass(frozen=True)
class Rank:
    key: float  # float64, compared
    value: float  # shown: a probability, a logit or a sigmoid
    float32: float  # what the family's own code compares


def check_logits(logits: torch.Tensor, label: str, where: str = "") -> None:
    """Refuse NaN or infinite logits: no rule can rank them."""
    if not torch.isfinite(logits).all():
        bad = [i for i, v in enumerate(logits.tolist()) if not math.isfinite(v)]
        raise ChoiceError(
            f"layer choice {label!r}{f' ({where})' if where else ''} has non-finite logits at positions "
            f"{bad}: {logits.tolist()}. Check the search for divergence, or fix the alphas before compiling."
        )


def as64(logits: torch.Tensor) -> torch.Tensor:
    return logits.detach().cpu().to(torch.float64)


def as32(logits: torch.Tensor) -> torch.Tensor:
    """The logits as the reference frameworks hold them (float32; wider dtypes are rounded to it)."""
    return logits.detach().cpu().to(torch.float32)


def softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax in float64 (exact enough to show; decisions never compare these)."""
    return torch.softmax(as64(logits), dim=-1)


def log_prob(values: list[float], i: int) -> float:
    """log softmax(values)[i] in float64, precise at both ends: log p = (x_i - m) - log1p(sum of the others'
    exp(x_j - m)), m the maximum. A saturated p (0.0 or 1.0 in float32, even in float64) keeps its order:
    near 0 as x_i - m, near 1 as -log1p(S) ~ -S, down to S ~ 1e-308."""
    top = max(range(len(values)), key=values.__getitem__)
    m = values[top]
    rest = math.fsum(math.exp(v - m) for j, v in enumerate(values) if j != top)
    return (values[i] - m) - math.log1p(rest)


def allowed_slots(n: int, zero: int | None, op_rule: str, exclude: tuple[int, ...] = ()) -> list[int]:
    return [i for i in range(n) if (op_rule == "any" or i != zero) and i not in exclude]


def framework_values(logits: torch.Tensor, zero: int | None, values: str) -> list[float]:
    """The per-slot values a family's own code compares, in float32 (`RuleSet.framework_values`)."""
    x = as32(logits)
    if values == "raw logits":
        return x.tolist()
    if values == "float32 sigmoid":
        return torch.sigmoid(x).tolist()
    if values == "float32 softmax over the non-zero slots":
        keep = [i for i in range(x.numel()) if i != zero]
        out = [0.0] * x.numel()
        for i, p in zip(keep, torch.softmax(x[keep], dim=-1).tolist()):
            out[i] = p
        return out
    return torch.softmax(x, dim=-1).tolist()  # float32 softmax (and the alpha factor of PC-DARTS's product)


def framework_pick(values: list[float], slots: list[int], tie: str) -> tuple[list[int], int]:
    """(slots tied at the framework's maximum, the one its tie order picks)."""
    best = max(values[i] for i in slots)
    tied = [i for i in slots if values[i] == best]
    return tied, (tied[-1] if tie == "highest" else tied[0])


def choose(logits: torch.Tensor, zero: int | None, label: str, where: str = "", op_rule: str = "non-zero",
           values: str = "float32 softmax", tie: str = "lowest", exclude: tuple[int, ...] = ()) -> Choice:
    """The op of one layer choice: the exact argmax of the logits over the allowed slots (less `exclude`,
    the slots a rule set has ruled out: P-DARTS's removed skip-connects)."""
    check_logits(logits, label, where)
    slots = allowed_slots(logits.numel(), zero, op_rule, exclude)
    if not [i for i in slots if i != zero]:
        raise ChoiceError(f"layer choice {label!r} has only the zero op as candidate"
                          + (" once the rule set's exclusions are left out" if exclude else ""))
    x = as64(logits).tolist()
    order = sorted(slots, key=lambda i: -x[i])  # stable: ties keep the lowest index first
    exact_tie = [i for i in slots if x[i] == x[order[0]]]
    choice = Choice(softmax(logits).tolist(), order[0], order[1] if len(order) > 1 else None,
                    exact_tie if len(exact_tie) > 1 else [], logits=x)
    if not choice.tie:
        tied, pick = framework_pick(framework_values(logits, zero, values), slots, tie)
        if len(tied) > 1:
            choice.framework_tie, choice.framework_pick = tied, pick
    return choice


def edge_rank(logits: torch.Tensor, chosen: int, zero: int | None, rank: str,
              edge_logits: torch.Tensor | None = None, edge_index: int | None = None) -> Rank:
    """The strength of the edge whose op is `chosen`, under `rank` (see the module docstring)."""
    rank = RANK_ALIASES.get(rank, rank)
    x = as64(logits)
    values = x.tolist()
    if rank == "softmax":
        key = log_prob(values, chosen)
        return Rank(key, math.exp(key), torch.softmax(as32(logits), -1)[chosen].item())
    if rank == "renorm":
        keep = [i for i in range(x.numel()) if i != zero]
        key = log_prob([values[i] for i in keep], keep.index(chosen))
        return Rank(key, math.exp(key), torch.softmax(as32(logits)[keep], -1)[keep.index(chosen)].item())
    if rank == "logit":
        return Rank(x[chosen].item(), x[chosen].item(), as32(logits)[chosen].item())
    if rank == "sigmoid":
        return Rank(x[chosen].item(), torch.sigmoid(x[chosen]).item(), torch.sigmoid(as32(logits)[chosen]).item())
    if rank == "pc-darts":
        if edge_logits is None or edge_index is None:
            raise ChoiceError("the pc-darts rank needs the edge-normalization logits (edge_logits) of every edge")
        beta = as64(edge_logits)
        if not 0 <= edge_index < beta.numel():
            raise ChoiceError(f"edge_index {edge_index} is out of range for {beta.numel()} edge logits")
        key = log_prob(values, chosen) + log_prob(beta.tolist(), edge_index)
        alpha32 = torch.softmax(as32(logits), -1)[chosen]
        beta32 = torch.softmax(as32(edge_logits), -1)[edge_index]
        return Rank(key, math.exp(key), (alpha32 * beta32).item())
    raise ChoiceError(f"unknown rank convention {rank!r}; use one of {', '.join(RANK_CONVENTIONS)}")


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


def framework_top_k(values: list[float], k: int | None, tie: str = "lowest") -> tuple[list[int], list[int]]:
    """What a family's code keeps from its float32 `values` (stable sort; `tie` = which position wins a tie)."""
    if tie == "highest":
        n = len(values)
        kept, tied = top_k(values[::-1], k)
        return sorted(n - 1 - i for i in kept), sorted(n - 1 - i for i in tied)
    return top_k(values, k)
