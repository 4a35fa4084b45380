"""`apply-arch`: apply a given architecture (`ctx.arch`) instead of deciding from logits.

It takes the place of `darts-choice` and `finalize` (`compile(..., arch=...)` swaps them for it) and
leaves the graph as they would: each layer choice decided (`chosen`), each input choice turned into its
reduction over the kept inputs, each plain sum of layer choices reduced to the edges the architecture
keeps, and the layer choices no input keeps removed with what only they fed (`darts_choice.drop_labels`).

Every name is checked: a label that names no choice, an op that is not a candidate, an input choice
keeping the wrong number of inputs, or a live layer choice left without a decision is a ChoiceError
naming it, with a suggestion.

The zero op (`none`, or `[]` for an edge that is kept) makes its edge compute zeros, exactly as the
supernet's own forward does with that decision: in a sum the edge is left out; a sum left with no edge
becomes a `zero` op shaped like the first real candidate's output; elsewhere the zero op is refused.

The decision records say what was given, not what logits would rank: a layer choice's probabilities are
one-hot on its op; an input choice's weights and a sum's edge ranks count down from the strongest kept
edge in the architecture's order (a genotype lists them so), dropped edges 0, so the genotype re-emitted
from the result lists each node's edges in the given order.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

from ..archspec import GivenArch, node_choice_label, parse_arch, resolve
from ..arch import describe
from ..decisions import EdgeRank, FinalizeDecision, InputDecision, LayerDecision
from ..errors import ChoiceError, PipelineError
from ..ir.graph import Graph
from ..ir.interpreter import Overlay
from ..nn import ZERO_NAME
from .darts_choice import REDUCTION_OPS, _drop_labels, _group_by_label, _source
from .manager import PassContext, PassResult, register_pass

#: Sum-like reductions, where leaving out a zero edge is exact.
_SUMS = ("sum",)


def _suggest(name: str, known: list[str], what: str) -> str:
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.5)
    return f"did you mean {close[0]!r}?" if close else f"{what}: {', '.join(map(str, known))}"


def _ranks(positions: list[int], order: list[int], n: int) -> list[float]:
    """Kept positions count down from len(order) in the given order; the rest 0."""
    ranked = [p for p in order if p in positions] + [p for p in positions if p not in order]
    ranks = [0.0] * n
    for i, p in enumerate(ranked):
        ranks[p] = float(len(ranked) - i)
    return ranks


def _layer_decisions(graph: Graph, ctx: PassContext, given: GivenArch, overlay: Overlay) -> dict[str, bool]:
    """Decide every layer choice the architecture names; returns label -> is the zero op."""
    zero_of: dict[str, bool] = {}
    for label, nodes in _group_by_label(graph, "layer_choice").items():
        attrs = graph.attrs(nodes[0])
        candidates, zero = list(attrs["candidates"]), attrs.get("zero")
        for other in nodes[1:]:
            if graph.attrs(other)["candidates"] != candidates:
                raise ChoiceError(f"layer choices {_source(graph, nodes[0])!r} and {_source(graph, other)!r} share "
                                  f"label {label!r} but have different candidates; give them distinct labels")
        real = [c for i, c in enumerate(candidates) if i != zero]
        value = given.decisions.get(label)
        if value is None:  # fine if no input keeps it (`_check_decided` runs once the inputs are applied)
            chosen, is_zero = (zero if zero is not None else 0), False
        elif value == [] or value == ZERO_NAME or (zero is not None and value == candidates[zero]):
            chosen, is_zero = (zero if zero is not None else 0), True
        elif isinstance(value, str) and value in real:
            chosen, is_zero = candidates.index(value), False
        else:
            raise ChoiceError(f"architecture {given.origin}: layer choice {label!r} ({_source(graph, nodes[0])}) has no "
                              f"candidate {value!r}; {_suggest(value, real, 'its candidates')} (or [] / "
                              f"{ZERO_NAME!r} for the zero op)")
        probabilities = [1.0 if i == chosen else 0.0 for i in range(len(candidates))]
        ctx.decisions.layer[label] = LayerDecision(
            label=label, candidates=candidates, zero=zero, probabilities=probabilities, chosen=chosen, strength=1.0,
            runner_up=None, margin=math.inf, paths=[_source(graph, n) for n in nodes])
        if value is None:
            continue
        zero_of[label] = is_zero
        first_real = next(i for i in range(len(candidates)) if i != zero)
        for node in nodes:
            graph.attrs(node)["chosen"] = first_real if is_zero else chosen
            overlay.chosen[node] = None if is_zero else chosen
    return zero_of


def _positions(graph: Graph, node: str, value: Any, given: GivenArch) -> list[int]:
    attrs = graph.attrs(node)
    label, choose_from = attrs["label"], list(attrs["choose_from"])
    n = len(graph.inputs(node))
    if not isinstance(value, list):
        raise ChoiceError(f"architecture {given.origin}: input choice {label!r} takes a list of kept inputs, got "
                          f"{value!r}")
    positions = []
    for item in value:
        if isinstance(item, int) and not isinstance(item, bool) and 0 <= item < n:
            positions.append(item)
        elif isinstance(item, str) and item in choose_from:
            positions.append(choose_from.index(item))
        else:
            named = [c for c in choose_from if c is not None]
            raise ChoiceError(f"architecture {given.origin}: input choice {label!r} ({_source(graph, node)}) has no "
                              f"input {item!r}; {_suggest(item, named, 'its inputs') if named else f'positions 0..{n - 1}'}")
    if len(set(positions)) != len(positions):
        raise ChoiceError(f"architecture {given.origin}: input choice {label!r} lists an input twice: {value!r}")
    n_chosen = attrs.get("n_chosen")
    expected = n if n_chosen is None else n_chosen
    if len(positions) != expected:
        rule = "keeps every input (n_chosen=None)" if n_chosen is None else f"keeps n_chosen={n_chosen} inputs"
        raise ChoiceError(f"architecture {given.origin}: input choice {label!r} ({_source(graph, node)}) {rule}, but "
                          f"the architecture keeps {len(positions)}: {value!r}; the architecture does not fit this "
                          "search space")
    return positions


def _zero_edges(graph: Graph, args: list[str], ports: list[int], zero_of: dict[str, bool]) -> list[int]:
    return [p for p in ports if graph.op(args[p]) == "layer_choice" and zero_of.get(graph.attrs(args[p])["label"])]


def _reduce(graph: Graph, node: str, op: str, args: list[str], ports: list[int], zero_of: dict[str, bool],
            attrs: dict) -> None:
    """Make `node` the reduction `op` of the inputs at `ports`, leaving out zero edges where exact."""
    zeros = _zero_edges(graph, args, ports, zero_of)
    if zeros and op not in _SUMS:
        label = graph.attrs(args[zeros[0]])["label"]
        raise ChoiceError(f"layer choice {label!r} ({_source(graph, args[zeros[0]])}) is given the zero op, but it "
                          f"feeds a {op!r} reduction; nascompile applies the zero op only to edges that are summed")
    kept = [args[p] for p in ports if p not in zeros]
    if kept or not zeros:
        graph.replace_op(node, op, kept, attrs=attrs)
    else:  # every kept edge is zero: zeros shaped like the first such edge's first real candidate
        graph.replace_op(node, "zero", [args[zeros[0]]])


@register_pass("apply-arch")
def apply_arch(graph: Graph, ctx: PassContext) -> PassResult:
    if ctx.arch is None:
        raise PipelineError("apply-arch needs an architecture: compile(..., arch=...) or --arch FILE|STRING")
    if ctx.search_space is None:
        ctx.search_space = describe(graph)
    given = ctx.arch if isinstance(ctx.arch, GivenArch) else resolve(parse_arch(ctx.arch), graph, ctx.search_space)
    layer_labels = _group_by_label(graph, "layer_choice")
    input_nodes = graph.nodes_of("input_choice")
    known = sorted(set(layer_labels) | {graph.attrs(n)["label"] for n in input_nodes})
    for label in given.decisions:
        if label not in known:
            raise ChoiceError(f"architecture {given.origin}: {label!r} names no choice of the supernet; "
                              f"{_suggest(label, known, 'its labels')}")
    overlay = Overlay()
    zero_of = _layer_decisions(graph, ctx, given, overlay)
    dropped: dict[str, list[str]] = {}
    for node in input_nodes:
        attrs = graph.attrs(node)
        label, args = attrs["label"], graph.inputs(node)
        value = given.decisions.get(label, list(range(len(args))) if attrs.get("n_chosen") is None else None)
        if value is None:
            raise ChoiceError(f"architecture {given.origin}: gives no kept inputs for input choice {label!r} "
                              f"({_source(graph, node)}, n_chosen={attrs['n_chosen']})")
        kept = sorted(_positions(graph, node, value, given))
        order = given.order.get(label, _positions(graph, node, value, given))
        record = ctx.decisions.input.setdefault(label, InputDecision(
            label=label, choose_from=list(attrs["choose_from"]), n_chosen=attrs.get("n_chosen"),
            reduction=attrs["reduction"], weights=_ranks(kept, order, len(args)), kept=kept))
        record.paths.append(_source(graph, node))
        overlay.kept[node] = kept
        for port, key in enumerate(attrs["choose_from"]):
            if port not in kept and key in layer_labels:
                dropped.setdefault(key, []).append(label)
        _reduce(graph, node, REDUCTION_OPS[attrs["reduction"]], args, kept, zero_of,
                {"choice": label} | ({"dim": 1} if attrs["reduction"] == "concat" else {}))
    _drop_labels(graph, ctx, dropped)
    _apply_sums(graph, ctx, given, zero_of, overlay)
    _mark_zero_instances(graph, ctx, zero_of)
    _check_decided(graph, given)
    return PassResult(changed=True, overlay=overlay)


def _apply_sums(graph: Graph, ctx: PassContext, given: GivenArch, zero_of: dict[str, bool], overlay: Overlay) -> None:
    """Plain sums of layer choices (finalize's nodes): keep the edges whose op is not the zero op."""
    for node in graph.nodes_of("sum"):
        if "choice" in graph.attrs(node):
            continue
        args = graph.inputs(node)
        ranked = [p for p, src in enumerate(args) if graph.op(src) == "layer_choice"]
        if not ranked:
            continue
        labels = {p: graph.attrs(args[p])["label"] for p in ranked}
        kept = [p for p in range(len(args)) if p not in ranked or not zero_of.get(labels[p], False)]
        ranks = _ranks([p for p in kept if p in ranked], given.order.get(node, []), len(args))
        source = graph.meta(node).get("source", "")
        ctx.decisions.finalize[node] = FinalizeDecision(
            node=node, path=source, rank="given", max_final_edges=len([p for p in kept if p in ranked]),
            edges=[EdgeRank(labels.get(p), ranks[p] if p in ranked else None, p in kept) for p in range(len(args))])
        if len(kept) < len(args):
            overlay.kept[node] = kept
        _reduce(graph, node, "sum", args, list(range(len(args))), zero_of, dict(graph.attrs(node)))


def _mark_zero_instances(graph: Graph, ctx: PassContext, zero_of: dict[str, bool]) -> None:
    """Every instance of a zero-op label computes zeros: recorded as dropped (NNI's `[]`), as the reference fixes it."""
    for label, is_zero in zero_of.items():
        if is_zero:
            record = ctx.decisions.layer[label]
            record.dropped_at.extend(p for p in record.paths if p not in record.dropped_at)
            record.dropped_by.append("architecture")
    for node in [n for n in graph.nodes_of("layer_choice") if not graph.out_degree(n)]:
        graph.remove_node(node)  # left out of its sum: nothing reads it any more


def _check_decided(graph: Graph, given: GivenArch) -> None:
    for node in graph.nodes_of("layer_choice"):
        label = graph.attrs(node)["label"]
        if graph.attrs(node).get("chosen") is None:
            raise ChoiceError(f"architecture {given.origin}: gives no op for layer choice {label!r} "
                              f"({_source(graph, node)}), which the network keeps; add \"{label}\": \"<op>\" (one of "
                              f"{[c for i, c in enumerate(graph.attrs(node)['candidates']) if i != graph.attrs(node).get('zero')]})")


#: The passes that decide from logits, which a given architecture replaces.
DECIDING_PASSES = ("darts-choice", "finalize")


def arch_pipeline(pipeline: str) -> str:
    """`pipeline` with its deciding passes replaced by one `apply-arch` (where `darts-choice` was).

    >>> arch_pipeline("darts-choice,finalize{rank=logit},dce,expand")
    'apply-arch,dce,expand'
    """
    from .manager import parse_pipeline

    steps, out = parse_pipeline(pipeline), []
    for name, options in steps:
        if name == "apply-arch" or (name in DECIDING_PASSES and "apply-arch" not in out):
            out.append("apply-arch")
        elif name not in DECIDING_PASSES:
            opts = " ".join(f"{k.replace('_', '-')}={str(v).lower() if isinstance(v, bool) else v}"
                            for k, v in options.items())
            out.append(name + (f"{{{opts}}}" if opts else ""))
    if "apply-arch" not in out:
        raise PipelineError(f"pipeline {pipeline!r} runs no decision pass (darts-choice) for the given architecture "
                            "to replace; add apply-arch where the decisions are to be made")
    return ",".join(out)
