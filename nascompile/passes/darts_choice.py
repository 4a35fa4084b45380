"""`darts-choice`: the op of every layer choice and the inputs of every input choice, by the rule set.

NNI `DartsMutator.sample_final` generalized to the rule sets of `rules.py` (`ctx.rules`):
1. Every layer choice gets the exact argmax of its logits over the slots the rule set allows (all but
   the zero op, or all for NAS-Bench-201's rules; `ranking.choose`); all instances of one label share
   logits, so they share the decision.
2. Every input choice with `n_chosen = k` weighs each `choose_from` label by that layer choice's
   edge rank under the rule set (p[chosen] for DARTS and NNI 2; a label that is not a layer choice
   weighs 0 (-inf in log space), with a warning naming it), keeps the top k (ties: lowest position), and
   becomes its reduction (`sum`, `mean`, `cat`, or `pack` for `none`) over the kept inputs.
   `n_chosen = None` keeps every input.
3. A layer-choice label named at a dropped position of `choose_from` is dropped everywhere, as NNI zeroes
   it (`result[key] = zeros`): its decision is `[]` and every instance is removed with what only it fed.
"""

from __future__ import annotations

import difflib
import math

import networkx as nx
import torch

from ..arch import describe
from ..decisions import InputDecision, LayerDecision
from ..errors import ChoiceError
from ..ir.graph import Graph
from ..ir.interpreter import Overlay
from .manager import PassContext, PassResult, register_pass
from .ranking import Rank, choose, edge_rank, framework_top_k, top_k

REDUCTION_OPS = {"sum": "sum", "mean": "mean", "concat": "cat", "none": "pack"}


def _source(graph: Graph, node: str) -> str:
    return graph.meta(node).get("source") or f"%{node}"


def _group_by_label(graph: Graph, op: str) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for node in graph.nodes_of(op):
        groups.setdefault(graph.attrs(node)["label"], []).append(node)
    return groups


def _check_shared_label(graph: Graph, label: str, nodes: list[str]) -> None:
    """Instances of one label must agree on candidates and logits: they are one decision."""
    first = nodes[0]
    a, logits = graph.attrs(first), graph.params(first)["logits"]
    for other in nodes[1:]:
        b, other_logits = graph.attrs(other), graph.params(other)["logits"]
        if b["candidates"] != a["candidates"] or b.get("zero") != a.get("zero"):
            raise ChoiceError(
                f"layer choices {_source(graph, first)!r} and {_source(graph, other)!r} share label {label!r} but "
                f"have different candidates ({a['candidates']} vs {b['candidates']}); give them distinct labels")
        if other_logits is not logits and not torch.equal(other_logits, logits):
            raise ChoiceError(
                f"layer choices {_source(graph, first)!r} and {_source(graph, other)!r} share label {label!r} but "
                "hold different logits; tie them (nascompile.nn.tie_alphas) or give them distinct labels")


def decide_layer_choices(graph: Graph, ctx: PassContext, overlay: Overlay) -> dict[str, LayerDecision]:
    decided: dict[str, LayerDecision] = {}
    rules = ctx.rules
    for label, nodes in _group_by_label(graph, "layer_choice").items():
        _check_shared_label(graph, label, nodes)
        attrs = graph.attrs(nodes[0])
        choice = choose(graph.params(nodes[0])["logits"], attrs.get("zero"), label, _source(graph, nodes[0]),
                        rules.op, rules.framework_values, rules.framework_tie)
        names = attrs["candidates"]
        decided[label] = ctx.decisions.layer[label] = LayerDecision(
            label=label, candidates=list(names), zero=attrs.get("zero"),
            probabilities=choice.probabilities, chosen=choice.chosen, strength=choice.strength,
            runner_up=choice.runner_up, margin=choice.margin, tie=[names[i] for i in choice.tie],
            paths=[_source(graph, n) for n in nodes], framework_tie=[names[i] for i in choice.framework_tie],
            framework_pick=None if choice.framework_pick is None else names[choice.framework_pick])
        for node in nodes:
            graph.attrs(node)["chosen"] = choice.chosen
            overlay.chosen[node] = choice.chosen
    return decided


def layer_rank(graph: Graph, node: str, rank: str) -> Rank:
    """The edge rank of the decided layer choice `node` (PC-DARTS's betas read from its edge_logits)."""
    attrs, params = graph.attrs(node), graph.params(node)
    if rank == "pc-darts" and ("edge_logits" not in params or attrs.get("edge_index") is None):
        raise ChoiceError(f"layer choice {attrs['label']!r} ({_source(graph, node)}) has no edge-normalization logits "
                          "(edge_logits, edge_index), which the pc-darts rank multiplies in; the lift found none for "
                          "this supernet, so choose another rule set with --rules")
    return edge_rank(params["logits"], attrs["chosen"], attrs.get("zero"), rank, params.get("edge_logits"),
                     attrs.get("edge_index"))


def _check_label_exists(graph: Graph, node: str, key: str | None, known: set[str]) -> None:
    """A choose_from label that names no choice at all is a typo, not NNI's weight-0 case."""
    if not key or key in known:
        return
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}?" if close else "name the label of the layer choice feeding that input"
    raise ChoiceError(
        f"input choice {graph.attrs(node)['label']!r} ({_source(graph, node)}): choose_from label {key!r} names no "
        f"choice in the model; {hint} (a label that is not a layer choice, or None, weighs 0 as in NNI)")


NO_RANK = Rank(-math.inf, 0.0, 0.0)  # a choose_from entry that is no layer choice weighs 0


def decide_input_choice(graph: Graph, node: str, ctx: PassContext, strengths: dict[str, Rank],
                        known: set[str]) -> list[int]:
    attrs = graph.attrs(node)
    label, choose_from = attrs["label"], attrs["choose_from"]
    ranks = []
    for key in choose_from:
        if key not in strengths and attrs.get("n_chosen") is not None:
            _check_label_exists(graph, node, key, known)
            ctx.warn(f"input choice {label!r}: choose_from label {key!r} is not a layer choice; it weighs 0 "
                     "when selecting inputs (NNI's rule)")
        ranks.append(strengths.get(key, NO_RANK))
    kept, tie = top_k([r.key for r in ranks], attrs.get("n_chosen"))
    framework_kept, framework_tie = framework_top_k([r.float32 for r in ranks], attrs.get("n_chosen"),
                                                    ctx.rules.framework_tie)
    if tie or not framework_tie:
        framework_kept, framework_tie = None, []
    record = ctx.decisions.input.get(label)
    if record is None:
        ctx.decisions.input[label] = InputDecision(
            label=label, choose_from=list(choose_from), n_chosen=attrs.get("n_chosen"),
            reduction=attrs["reduction"], weights=[r.value for r in ranks], kept=kept, tie=tie,
            paths=[_source(graph, node)], framework_tie=framework_tie, framework_kept=framework_kept,
            keys=[r.key for r in ranks])
        return kept
    mine = {"choose_from": list(choose_from), "n_chosen": attrs.get("n_chosen"), "reduction": attrs["reduction"]}
    differ = [f"{key} ({getattr(record, key)!r} vs {value!r})" for key, value in mine.items()
              if getattr(record, key) != value]
    if differ:
        raise ChoiceError(
            f"input choices {record.paths[0]!r} and {_source(graph, node)!r} share label {label!r} but differ in "
            f"{', '.join(differ)}; one label is one decision, so give them distinct labels")
    record.paths.append(_source(graph, node))
    return kept


def _check_wiring(graph: Graph, node: str, args: list[str], known: set[str]) -> None:
    """An input produced directly by a layer choice must be the one `choose_from` names at that position."""
    attrs = graph.attrs(node)
    for port, (src, key) in enumerate(zip(args, attrs["choose_from"])):
        if key is not None and graph.op(src) == "layer_choice" and graph.attrs(src)["label"] != key:
            _check_label_exists(graph, node, key, known)  # a typo deserves its own message
            raise ChoiceError(
                f"input choice {attrs['label']!r} ({_source(graph, node)}): input {port} comes from layer choice "
                f"{graph.attrs(src)['label']!r} but choose_from names {key!r} there; list the labels in the order "
                "the inputs are passed")


def _drop_labels(graph: Graph, ctx: PassContext, dropped: dict[str, list[str]]) -> None:
    """NNI zeroes a dropped layer-choice label everywhere (`result[key] = zeros`), whatever the wiring.

    Every instance of such a label must be dead once the input choices are rewired; each is removed with
    everything only it fed (an op between the edge and the input choice, like drop_path, goes too).
    """
    if not dropped:
        return
    output = graph.output_node()
    live = nx.ancestors(graph, output) | {output}
    for label, by in dropped.items():
        record = ctx.decisions.layer[label]
        record.dropped_by.extend(b for b in by if b not in record.dropped_by)
        for node in _group_by_label(graph, "layer_choice").get(label, []):
            if node in live:
                user = next(u for u, _ in graph.users(node) if u in live)
                raise ChoiceError(
                    f"layer choice {label!r} ({_source(graph, node)}) is dropped by input choice {by[0]!r}, but its "
                    f"value is still read by %{user} ({_source(graph, user)}); NNI's rule removes a dropped layer "
                    "choice everywhere, so it cannot feed anything that is kept")
            record.dropped_at.append(_source(graph, node))
            graph.remove_nodes_from([node, *nx.descendants(graph, node)])


@register_pass("darts-choice")
def darts_choice(graph: Graph, ctx: PassContext) -> PassResult:
    clash = set(_group_by_label(graph, "layer_choice")) & set(_group_by_label(graph, "input_choice"))
    if clash:
        raise ChoiceError(f"label {sorted(clash)[0]!r} names both a layer choice and an input choice; their "
                          "decisions would overwrite each other, so give them distinct labels")
    if ctx.search_space is None:
        ctx.search_space = describe(graph)  # cells with every candidate edge, before anything is pruned
    overlay = Overlay()
    decided = decide_layer_choices(graph, ctx, overlay)
    first = {label: nodes[0] for label, nodes in _group_by_label(graph, "layer_choice").items()}
    strengths = {label: layer_rank(graph, first[label], ctx.rules.rank) for label in decided}
    dropped: dict[str, list[str]] = {}  # layer-choice label -> input choices that dropped it
    input_nodes = graph.nodes_of("input_choice")
    known = set(decided) | {graph.attrs(n)["label"] for n in input_nodes}
    for node in input_nodes:
        attrs = graph.attrs(node)
        args = graph.inputs(node)
        _check_wiring(graph, node, args, known)
        kept = decide_input_choice(graph, node, ctx, strengths, known)
        overlay.kept[node] = kept
        for port, key in enumerate(attrs["choose_from"]):
            if port not in kept and key in decided:
                dropped.setdefault(key, []).append(attrs["label"])
        graph.replace_op(node, REDUCTION_OPS[attrs["reduction"]], [args[i] for i in kept],
                         attrs={"choice": attrs["label"]} | ({"dim": 1} if attrs["reduction"] == "concat" else {}))
    _drop_labels(graph, ctx, dropped)
    return PassResult(changed=bool(decided or input_nodes), overlay=overlay)
