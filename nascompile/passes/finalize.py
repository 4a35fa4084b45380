"""`finalize`: Archai `Finalizers.finalize_node` on the IR, ranked by the rule set.

For every `sum` that aggregates edges (a DARTS cell node sums one edge per earlier state), an input
produced by a decided layer choice is a *ranked* edge and any other input is *required* (a fixed op,
Archai's rank None). Required edges are always kept; the ranked ones are sorted by rank, descending and
stably, and the first `max_final_edges` are kept, none being dropped when there are no more than that.
The rank is the rule set's (`ctx.rules.rank`, `rules.py`) unless `rank=` names one (`ranking.py`:
`darts`/`softmax`, `logit`, `renorm`, `sigmoid`, `pc-darts`); ranks are compared exactly (float64, log
space). `max_final_edges` defaults to 2 for the rule sets that keep the best edges, and to every edge
for those that keep all (NAS-Bench-201's).

Sums made by `darts-choice` from input choices are skipped: their input choice already decided them.

With a skip-connect limit (the `p-darts` rule set's 2, `max_skip_connects=N` / `--max-skip-connects N`),
P-DARTS's limit first takes `skip_connect` from the normal-cell edges it would, re-choosing their op
(`skip_limit.py`); the edges are then ranked and kept as above.
"""

from __future__ import annotations

from ..decisions import EdgeRank, FinalizeDecision
from ..errors import ChoiceError, PipelineError
from ..ir.graph import Graph
from ..ir.interpreter import Overlay
from .manager import PassContext, PassResult, register_pass
from .darts_choice import layer_rank
from .ranking import RANK_ALIASES, RANK_CONVENTIONS, Rank, check_logits, framework_top_k, top_k
from .skip_limit import layer_choice_of, limit_skip_connects


def _ranked_edge(graph: Graph, producer: str, rank: str) -> tuple[str, Rank] | None:
    """(label, rank) when `producer` is a layer choice (or an `edge` term ranked by one), None for a
    required edge."""
    producer = layer_choice_of(graph, producer)
    if producer is None:
        return None
    attrs = graph.attrs(producer)
    if attrs.get("chosen") is None:
        raise PipelineError(f"finalize found the undecided layer choice {attrs['label']!r}; run darts-choice first")
    logits = graph.params(producer)["logits"]
    check_logits(logits, attrs["label"], graph.meta(producer).get("source") or f"%{producer}")
    return attrs["label"], layer_rank(graph, producer, rank)


@register_pass("finalize")
def finalize(graph: Graph, ctx: PassContext, max_final_edges: int | None = None, rank: str | None = None,
             max_skip_connects: int | None = None) -> PassResult:
    k = ctx.max_final_edges if max_final_edges is None else max_final_edges
    if k is None:
        k = 2 if ctx.rules.keep == "top-k" else None
    rank = rank or ctx.rank or ctx.rules.rank
    if rank not in RANK_CONVENTIONS:
        raise ChoiceError(f"unknown rank convention {rank!r}; use one of {', '.join(RANK_CONVENTIONS)}")
    rank = RANK_ALIASES.get(rank, rank)
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
        raise ChoiceError(f"max_final_edges must be a positive int, got {k!r}")
    overlay = Overlay()
    limit = next((x for x in (max_skip_connects, ctx.max_skip_connects, ctx.rules.skip_limit) if x is not None), None)
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise ChoiceError(f"max_skip_connects must be an int >= 0, got {limit!r}")
        limit_skip_connects(graph, ctx, overlay, rank, k, limit)  # P-DARTS: may re-choose normal-cell ops
    for node in graph.nodes_of("sum"):
        if "choice" in graph.attrs(node):
            continue
        args = graph.inputs(node)
        edges = [_ranked_edge(graph, src, rank) for src in args]
        ranked_ports = [port for port, edge in enumerate(edges) if edge is not None]
        if not ranked_ports:
            continue
        ranks = [edges[p][1] for p in ranked_ports]
        kept_ranked, tie = top_k([r.key for r in ranks], k)
        kept_ports = sorted({p for p, e in enumerate(edges) if e is None} | {ranked_ports[i] for i in kept_ranked})
        framework_kept, framework_tie = framework_top_k([r.float32 for r in ranks], k, ctx.rules.framework_tie)
        if tie or not framework_tie:
            framework_kept, framework_tie = None, []
        source = graph.meta(node).get("source", "")
        ctx.decisions.finalize[node] = FinalizeDecision(
            node=node, path=source, rank=rank, max_final_edges=k,
            edges=[EdgeRank(e[0], e[1].value, port in kept_ports, e[1].key) if e else EdgeRank(None, None, True)
                   for port, e in enumerate(edges)],
            tie=[ranked_ports[i] for i in tie], framework_tie=[ranked_ports[i] for i in framework_tie],
            framework_kept=None if framework_kept is None else [ranked_ports[i] for i in framework_kept])
        if len(kept_ports) == len(args):
            continue
        overlay.kept[node] = kept_ports
        graph.set_inputs(node, [args[p] for p in kept_ports])
        for port in sorted(set(range(len(args))) - set(kept_ports)):
            producer = args[port]
            if producer not in graph or graph.out_degree(producer):
                continue  # still read elsewhere: only this edge is gone
            record = ctx.decisions.layer.get(edges[port][0])
            choice = graph.inputs(producer)[1] if graph.op(producer) == "edge" else producer
            if record is not None:
                record.dropped_at.append(graph.meta(choice).get("source") or f"%{choice}")
                record.dropped_by.append(f"finalize@{source or node}")
            graph.remove_node(producer)
    return PassResult(changed=bool(overlay), overlay=overlay)
