"""What the search decided: per-choice records filled in by the decision passes.

`Decisions.to_nni()` gives NNI's exported-architecture format (layer-choice label -> chosen candidate
name, or `[]` when its edge was dropped; input-choice label -> kept inputs). `Decisions.report()` gives
everything a user asks after a search: probabilities, strength, margin to the runner-up, ties.
`Decisions.by_path()` gives the decision of every choice module by module path, which the reference
(the supernet's own forward with decisions fixed) applies.

A *near-tie* is a decision that a small change of the logits would flip: its margin is below a threshold
(`NEAR_TIE`, `--near-tie`). Every margin is a difference of what the rule compared, in log space:
- a layer choice: logit[chosen] - logit[runner-up], which is ln(p[chosen] / p[runner-up]) under softmax
  (the normalizer cancels), for every rule set (the op is the argmax of the logits);
- an input choice or a finalize node: its *cut margin*, the key of the weakest kept edge minus the key of
  the strongest dropped one, the key being log p[op] for the probability ranks (softmax, renorm,
  pc-darts: ln of the ratio of the two edges' probabilities) and the logit for the logit and sigmoid
  ranks (sigmoid orders as its logit does).
So a margin of 0.01 means probabilities 1 % apart (or logits 0.01 apart), at any scale: saturated
probabilities (0.0 in float32) keep their margins. Exact ties (margin 0) are reported as ties, not as
near-ties.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

#: Default near-tie threshold on a margin (see the module docstring).
NEAR_TIE = 0.01


def cut_margin(ranks: list[float | None], kept: list[bool]) -> float | None:
    """Weakest kept rank minus strongest dropped rank (None when nothing ranked was dropped, or when the
    difference is not finite: a dropped input of weight 0 is no near-tie).

    >>> cut_margin([0.5, 0.2, 0.45], [True, False, True])
    0.25
    >>> cut_margin([0.5, None], [True, True]) is None
    True
    """
    kept_ranks = [r for r, k in zip(ranks, kept) if k and r is not None]
    dropped_ranks = [r for r, k in zip(ranks, kept) if not k and r is not None]
    if not kept_ranks or not dropped_ranks:
        return None
    margin = min(kept_ranks) - max(dropped_ranks)
    return margin if math.isfinite(margin) else None


def key_units(rank: str) -> str:
    """What a cut margin under `rank` is a difference of (see the module docstring)."""
    return "logit" if rank in ("logit", "sigmoid") else "log p"


def is_near_tie(margin: float | None, threshold: float) -> bool:
    """0 < margin < threshold (an exact tie is a tie, reported as such)."""
    return margin is not None and math.isfinite(margin) and 0 < margin < threshold


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
    margin: float  # logit[chosen] - logit[runner_up] = ln(p[chosen] / p[runner_up]) (inf: no runner-up)
    tie: list[str] = field(default_factory=list)  # candidates tied for the maximum, when more than one
    paths: list[str] = field(default_factory=list)  # module paths of the instances
    framework_tie: list[str] = field(default_factory=list)  # tied in the family's own float32 values only
    framework_pick: str | None = None  # what the family's code would likely pick among them
    dropped_at: list[str] = field(default_factory=list)  # instances whose edge was dropped
    dropped_by: list[str] = field(default_factory=list)  # what dropped them: input-choice labels, finalize nodes
    excluded: list[str] = field(default_factory=list)  # candidates the rule set ruled out (P-DARTS's skip limit)

    @property
    def chosen_name(self) -> str:
        return self.candidates[self.chosen]

    @property
    def zero_chosen(self) -> bool:
        """The zero op itself was chosen (rule sets whose zero op is a real candidate, as NAS-Bench-201's)."""
        return self.zero is not None and self.chosen == self.zero

    @property
    def dropped(self) -> bool:
        """Dropped everywhere: the NNI decision is `[]`."""
        return bool(self.paths) and set(self.dropped_at) >= set(self.paths)

    @property
    def kept_instances(self) -> int:
        """How many instances (edges) of this label the discrete network keeps."""
        return len(set(self.paths) - set(self.dropped_at))

    def is_near_tie(self, threshold: float) -> bool:
        """The op choice could flip under a small change of the logits, and some edge still carries it.

        A label whose every edge was dropped is never a near-tie: which op it would have carried does not
        matter to the discrete network (NNI records `[]`).
        """
        return is_near_tie(self.margin, threshold) and not self.dropped


@dataclass
class InputDecision:
    """The darts-choice result for one input-choice label."""

    label: str
    choose_from: list[str | None]
    n_chosen: int | None
    reduction: str
    weights: list[float]  # strength of each choose_from label's layer choice (0 if none), in the rank's units
    kept: list[int]
    tie: list[int] = field(default_factory=list)  # positions tied across the keep/drop boundary
    paths: list[str] = field(default_factory=list)
    framework_tie: list[int] = field(default_factory=list)  # tied at the cut in the family's float32 values only
    framework_kept: list[int] | None = None  # what the family's code would likely keep then
    keys: list[float] = field(default_factory=list)  # what was compared (float64, log space; -inf for weight 0)

    def kept_items(self) -> list[str | int]:
        """Kept inputs as labels when choose_from names them all uniquely, else as positions."""
        labels = self.choose_from
        if all(isinstance(x, str) for x in labels) and len(set(labels)) == len(labels):
            return [labels[i] for i in self.kept]
        return list(self.kept)

    @property
    def cut_margin(self) -> float | None:
        """In log space: the compared keys (`keys`), or the weights when no keys were recorded (a given arch)."""
        keys = self.keys or self.weights
        return cut_margin(keys, [i in self.kept for i in range(len(keys))])


@dataclass
class EdgeRank:
    label: str | None  # layer-choice label, None for a required (fixed) edge
    rank: float | None  # shown: a probability, a logit or a sigmoid (the rank's units)
    kept: bool
    key: float | None = None  # what was compared: float64, log space for the probability ranks


@dataclass
class FinalizeDecision:
    """Which edges of one aggregation node `finalize` kept."""

    node: str
    path: str
    rank: str  # the rank convention used
    max_final_edges: int | None  # None: every edge kept
    edges: list[EdgeRank]
    tie: list[int] = field(default_factory=list)  # edge positions tied across the keep/drop boundary
    framework_tie: list[int] = field(default_factory=list)  # tied at the cut in the family's float32 values only
    framework_kept: list[int] | None = None  # edge positions the family's code would likely keep then

    @property
    def cut_margin(self) -> float | None:
        """In log space: the compared keys (log p, or the logit), the shown ranks where no key was recorded."""
        return cut_margin([e.rank if e.key is None else e.key for e in self.edges], [e.kept for e in self.edges])


@dataclass
class SkipLimitDecision:
    """P-DARTS's skip-connect limit in the normal cells that share one set of labels (`passes/skip_limit.py`)."""

    cells: list[str]
    limit: int
    before: int  # kept skip_connect edges before the limit
    after: int
    removed: list[str]  # labels that lost skip_connect, in the order P-DARTS takes it
    ties: list[str] = field(default_factory=list)  # real ties for the weakest skip, broken by edge order
    framework_ties: list[str] = field(default_factory=list)  # ties of P-DARTS's float32 values only

    def line(self) -> str:
        cells = f"{self.cells[0]!r}" + (f" (+{len(self.cells) - 1} sharing its labels)" if len(self.cells) > 1 else "")
        took = f"; skip_connect taken from {', '.join(map(repr, self.removed))}" if self.removed else ""
        return f"normal cell {cells}: {self.before} kept skip_connect edges, at most {self.limit} allowed{took}"


@dataclass
class Decisions:
    """All decisions of one compile, keyed by label (layer and input choices) and node (finalize)."""

    layer: dict[str, LayerDecision] = field(default_factory=dict)
    input: dict[str, InputDecision] = field(default_factory=dict)
    finalize: dict[str, FinalizeDecision] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    near_tie: float = NEAR_TIE  # the threshold `near_ties()` and `report()` use unless given another
    rules: Any = None  # rules.Chosen: the rule set that decided, and why it was chosen
    skip_limit: list[SkipLimitDecision] = field(default_factory=list)  # P-DARTS's limit, per normal cell kind

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
            for path in d.paths:  # a chosen zero op computes what a dropped edge computes: zeros
                out[path] = [] if path in d.dropped_at or d.zero_chosen else d.chosen_name
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
        lines += [line for d in self.skip_limit for line in d.ties]
        return lines + self.framework_ties()

    def rules_info(self) -> dict[str, Any] | None:
        """The rule set that decided, as plain data (None for decisions made outside `compile`)."""
        if self.rules is None:
            return None
        r = self.rules.rules
        return {"name": r.name, "framework": r.framework, "op": r.op, "rank": r.rank, "keep": r.keep,
                "max_skip_connects": self.rules.skip_limit, "chosen_by": self.rules.source, "description": r.doc}

    def framework_ties(self) -> list[str]:
        """One line per decision the family's own float32 code would leave to its tie order, though the
        exact (float64, log-space) ranks decide it; with what that code would likely pick."""
        if self.rules is None:
            return []
        rules = self.rules.rules
        who = f"{rules.framework} compares {rules.framework_values}"
        order = "highest" if rules.framework_tie == "highest" else "lowest"
        lines = []
        for d in self.layer.values():
            if d.framework_tie:
                lines.append(f"layer choice {d.label!r}: {who}, where candidates {d.framework_tie} tie; it would likely "
                             f"pick {d.framework_pick!r} ({order} index); the exact argmax of the logits is "
                             f"{d.chosen_name!r}")
        for d in self.input.values():
            if d.framework_tie:
                lines.append(f"input choice {d.label!r}: {who}, where inputs {d.framework_tie} tie at the cut; it "
                             f"would likely keep {d.framework_kept}; the exact ranks keep {list(d.kept)}")
        for d in self.finalize.values():
            if d.framework_tie:
                kept = [i for i, e in enumerate(d.edges) if e.kept]
                lines.append(f"finalize at {d.path or d.node!r}: {who}, where edges {d.framework_tie} tie at the cut; "
                             f"it would likely keep edges {d.framework_kept}; the exact ranks keep {kept}")
        return lines + [line for d in self.skip_limit for line in d.framework_ties]

    def near_ties(self, threshold: float | None = None) -> list[str]:
        """One line per decision whose margin is below `threshold` without being an exact tie.

        A dropped layer choice is left out (see `LayerDecision.is_near_tie`).
        """
        threshold = self.near_tie if threshold is None else threshold
        lines = []
        for d in self.layer.values():
            if d.is_near_tie(threshold):
                lines.append(f"layer choice {d.label!r}: {d.chosen_name!r} leads {d.candidates[d.runner_up]!r} by "
                             f"only {d.margin:.3g} in logit, ln p[{d.chosen_name}]/p[{d.candidates[d.runner_up]}] "
                             f"(near-tie threshold {threshold:g})")
        rank = self.rules.rules.rank if self.rules is not None else "softmax"
        for d in self.input.values():
            if is_near_tie(d.cut_margin, threshold):
                lines.append(f"input choice {d.label!r}: the weakest kept input leads the strongest dropped one by "
                             f"only {d.cut_margin:.3g} in {key_units(rank)} (near-tie threshold {threshold:g})")
        for d in self.finalize.values():
            if is_near_tie(d.cut_margin, threshold):
                lines.append(f"finalize at {d.path or d.node!r}: the weakest kept edge leads the strongest dropped "
                             f"one by only {d.cut_margin:.3g} in {key_units(d.rank)} ({d.rank} rank; near-tie "
                             f"threshold {threshold:g})")
        return lines

    def report(self, near_tie: float | None = None) -> dict[str, Any]:
        """Plain-data report of every decision (JSON-ready: a margin with no runner-up is None).

        Each entry says whether it is a `near_tie` (margin below `near_tie`, see the module docstring).
        """
        near_tie = self.near_tie if near_tie is None else near_tie
        layer = []
        for d in self.layer.values():
            entry = asdict(d)
            entry.update(chosen=d.chosen_name, chosen_index=d.chosen, dropped=d.dropped, kept_instances=d.kept_instances,
                         runner_up=None if d.runner_up is None else d.candidates[d.runner_up],
                         margin=d.margin if math.isfinite(d.margin) else None,
                         near_tie=d.is_near_tie(near_tie))
            layer.append(entry)
        return {
            "layer_choices": layer,
            "input_choices": [asdict(d) | {"kept": d.kept_items(), "kept_positions": list(d.kept),
                                           "keys": [k if math.isfinite(k) else None for k in d.keys],
                                           "cut_margin": d.cut_margin,
                                           "near_tie": is_near_tie(d.cut_margin, near_tie)}
                              for d in self.input.values()],
            "finalize": [asdict(d) | {"cut_margin": d.cut_margin, "near_tie": is_near_tie(d.cut_margin, near_tie)}
                         for d in self.finalize.values()],
            "rules": self.rules_info(),
            "skip_limit": [asdict(d) | {"summary": d.line()} for d in self.skip_limit],
            "ties": self.ties(),
            "framework_ties": self.framework_ties(),
            "near_tie_threshold": near_tie,
            "near_ties": self.near_ties(near_tie),
            "warnings": list(self.warnings),
        }
