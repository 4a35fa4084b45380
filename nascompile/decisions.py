"""What the search decided: per-choice records filled in by the decision passes.

`Decisions.to_nni()` gives NNI's exported-architecture format (layer-choice label -> chosen candidate
name, or `[]` when its edge was dropped; input-choice label -> kept inputs). `Decisions.report()` gives
everything a user asks after a search: probabilities, strength, margin to the runner-up, ties.
`Decisions.by_path()` gives the decision of every choice module by module path, which the reference
(the supernet's own forward with decisions fixed) applies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class LayerDecision:
    """The darts-choice result for one layer-choice label (shared by all its instances)."""

    label: str
    candidates: list[str]
    zero: int | None
    probabilities: list[float]  # softmax over all slots, the zero slot included
    chosen: int  # index into candidates
    strength: float  # probabilities[chosen]: the DARTS edge strength
    runner_up: int | None
    margin: float  # strength - probabilities[runner_up] (inf when there is no runner-up)
    tie: list[str] = field(default_factory=list)  # candidates tied for the maximum, when more than one
    paths: list[str] = field(default_factory=list)  # module paths of the instances
    dropped_at: list[str] = field(default_factory=list)  # instances whose edge was dropped
    dropped_by: list[str] = field(default_factory=list)  # what dropped them: input-choice labels, finalize nodes

    @property
    def chosen_name(self) -> str:
        return self.candidates[self.chosen]

    @property
    def dropped(self) -> bool:
        """Dropped everywhere: the NNI decision is `[]`."""
        return bool(self.paths) and set(self.dropped_at) >= set(self.paths)


@dataclass
class InputDecision:
    """The darts-choice result for one input-choice label."""

    label: str
    choose_from: list[str | None]
    n_chosen: int | None
    reduction: str
    weights: list[float]  # strength of each choose_from label's layer choice (0 if none)
    kept: list[int]
    tie: list[int] = field(default_factory=list)  # positions tied across the keep/drop boundary
    paths: list[str] = field(default_factory=list)

    def kept_items(self) -> list[str | int]:
        """Kept inputs as labels when choose_from names them all uniquely, else as positions."""
        labels = self.choose_from
        if all(isinstance(x, str) for x in labels) and len(set(labels)) == len(labels):
            return [labels[i] for i in self.kept]
        return list(self.kept)


@dataclass
class EdgeRank:
    label: str | None  # layer-choice label, None for a required (fixed) edge
    rank: float | None
    kept: bool


@dataclass
class FinalizeDecision:
    """Which edges of one aggregation node `finalize` kept."""

    node: str
    path: str
    rank: str  # the rank convention used
    max_final_edges: int
    edges: list[EdgeRank]
    tie: list[int] = field(default_factory=list)  # edge positions tied across the keep/drop boundary


@dataclass
class Decisions:
    """All decisions of one compile, keyed by label (layer and input choices) and node (finalize)."""

    layer: dict[str, LayerDecision] = field(default_factory=dict)
    input: dict[str, InputDecision] = field(default_factory=dict)
    finalize: dict[str, FinalizeDecision] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    near_tie: float = 1e-3  # a margin below this (in the rank's own units) is a near-tie, warned about

    def to_nni(self) -> dict[str, Any]:
        """NNI's exported-architecture format."""
        out: dict[str, Any] = {}
        for label, d in self.layer.items():
            out[label] = [] if d.dropped else d.chosen_name
        for label, d in self.input.items():
            out[label] = d.kept_items()
        return out

    def by_path(self) -> dict[str, Any]:
        """Module path -> decision of that module instance (name or [] / kept positions)."""
        out: dict[str, Any] = {}
        for d in self.layer.values():
            for path in d.paths:
                out[path] = [] if path in d.dropped_at else d.chosen_name
        for d in self.input.values():
            for path in d.paths:
                out[path] = list(d.kept)
        return out

    def ties(self) -> list[str]:
        """One line per tie that a deterministic rule (lowest index first) broke."""
        lines = []
        for d in self.layer.values():
            if d.tie:
                lines.append(f"layer choice {d.label!r}: candidates {d.tie} tie at p={d.strength:.6g}; "
                             f"chose {d.chosen_name!r} (lowest index)")
        for d in self.input.values():
            if d.tie:
                tied = [d.choose_from[i] if d.choose_from[i] is not None else i for i in d.tie]
                lines.append(f"input choice {d.label!r}: inputs {tied} tie at the cut; kept the lowest "
                             "positions")
        for d in self.finalize.values():
            if d.tie:
                tied = [d.edges[i].label for i in d.tie]
                lines.append(f"finalize at {d.path or d.node!r}: edges {tied} tie at the cut; kept the lowest "
                             "positions")
        return lines

    def near_ties(self) -> list[str]:
        """One line per decision won by a margin below `near_tie` (exact ties are listed by `ties()`).

        Layer choices (kept ones: a dropped edge's op does not matter): p[chosen] - p[runner-up]. Input choices and finalize: the weakest kept rank minus the
        strongest dropped one, in that rank's units (probabilities, or raw logits for `rank="logit"`).
        """
        lines = []
        for d in self.layer.values():
            if not d.tie and not d.dropped and d.margin < self.near_tie:
                lines.append(f"layer choice {d.label!r}: near-tie, {d.chosen_name!r} beats "
                             f"{d.candidates[d.runner_up]!r} by {d.margin:.3g} (< {self.near_tie:g})")
        for d in self.input.values():
            gap = _cut_margin(d.weights, d.kept)
            if not d.tie and gap is not None and gap < self.near_tie:
                lines.append(f"input choice {d.label!r}: near-tie at the cut, kept inputs lead by {gap:.3g} "
                             f"(< {self.near_tie:g})")
        for d in self.finalize.values():
            ranked = [(i, e) for i, e in enumerate(d.edges) if e.rank is not None]
            gap = _cut_margin([e.rank for _, e in ranked], [k for k, (_, e) in enumerate(ranked) if e.kept])
            if not d.tie and gap is not None and gap < self.near_tie:
                lines.append(f"finalize at {d.path or d.node!r}: near-tie at the cut, kept edges lead by {gap:.3g} "
                             f"(< {self.near_tie:g})")
        return lines

    def report(self) -> dict[str, Any]:
        """Plain-data report of every decision (JSON-ready)."""
        layer = []
        for d in self.layer.values():
            entry = asdict(d)
            entry.update(chosen=d.chosen_name, dropped=d.dropped,
                         runner_up=None if d.runner_up is None else d.candidates[d.runner_up])
            layer.append(entry)
        return {
            "layer_choices": layer,
            "input_choices": [asdict(d) | {"kept": d.kept_items()} for d in self.input.values()],
            "finalize": [asdict(d) for d in self.finalize.values()],
            "ties": self.ties(),
            "near_ties": self.near_ties(),
            "near_tie_threshold": self.near_tie,
            "warnings": list(self.warnings),
        }


def _cut_margin(ranks: list[float], kept: list[int]) -> float | None:
    """Weakest kept rank minus strongest dropped rank; None when nothing was dropped."""
    dropped = [r for i, r in enumerate(ranks) if i not in kept]
    if not dropped or not kept:
        return None
    return min(ranks[i] for i in kept) - max(dropped)
