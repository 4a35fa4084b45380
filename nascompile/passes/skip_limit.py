"""P-DARTS's skip-connect limit, exact: which normal-cell edges lose `skip_connect` (the `p-darts` rules).

After its last stage, P-DARTS (train_search.py) derives the cell as DARTS does over each edge's
switched-on ops (`none`'s probability zeroed): op = argmax of p, each node keeps its 2 edges of highest
p[op]. Then, in the normal cell only, while more than M kept edges carry `skip_connect`
(`check_sk_number`), the kept skip edge of lowest p[skip_connect] (`delete_min_sk_prob`: the first such
edge on ties) has that probability set to 0, every edge chooses its op again among what is left
(`keep_1_on`) and every node keeps its 2 best edges again (`keep_2_branches`): an edge dropped before may
come back, one kept before may go. Its probabilities are not renormalized: an edge that lost its skip
ranks by p[its next op] under the original softmax. The paper keeps M = 2 (`--max-skip-connects N`).

The result equals DARTS's derivation with `skip_connect` ruled out on the edges that lost it, so here
`limit_skip_connects` only finds those edges (by label) and re-chooses their op (`ranking.choose` with
that slot excluded); `finalize` then ranks and keeps the edges as usual. Compared as the rule set's ranks
(float64, log space). A real tie for the weakest skip removes the first edge (P-DARTS's `np.argmin`),
reported; where P-DARTS's float32 probabilities tie although the exact ones do not, that is reported too.

Reduction cells are left alone (P-DARTS restricts the normal cell only). A cell's kind is what its labels
say (`alphas_normal[3]`), else whether it reduces the spatial size, measured by running the decided graph
on the example inputs. Taking skip_connect from an edge with no other op but `none` is refused: P-DARTS
would rank it at p = 0 and could keep it with no op.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..arch import Cell, describe
from ..decisions import SkipLimitDecision
from ..errors import ChoiceError
from ..genotype import cell_kind
from ..ir.graph import Graph
from ..ir.interpreter import Overlay, run_graph
from .manager import PassContext
from .ranking import Rank, choose, edge_rank, top_k

SKIP = "skip_connect"  # P-DARTS's PRIMITIVES[3], counted by check_sk_number


def layer_choice_of(graph: Graph, producer: str) -> str | None:
    """The layer choice an aggregated edge comes from (through a PC-DARTS `edge` term), None for a fixed edge."""
    if graph.op(producer) == "edge":
        producer = graph.inputs(producer)[1]
    return producer if graph.op(producer) == "layer_choice" else None


@dataclass
class _Edge:
    label: str
    position: int  # P-DARTS's edge index within the cell: nodes in order, inputs in order
    skip: int | None  # the slot of skip_connect
    rank: Rank  # of the op darts-choice chose
    is_skip: bool
    without: Rank | None  # of the op chosen once skip_connect is ruled out (None: no op is left)


def _edge(graph: Graph, node: str, position: int, rank: str, ctx: PassContext) -> _Edge:
    attrs, params = graph.attrs(node), graph.params(node)
    names, chosen = attrs["candidates"], attrs["chosen"]
    skip = names.index(SKIP) if SKIP in names else None

    def rank_of(op: int) -> Rank:
        return edge_rank(params["logits"], op, attrs.get("zero"), rank, params.get("edge_logits"),
                         attrs.get("edge_index"))

    without = None
    if skip is not None and chosen == skip:
        try:
            without = rank_of(_rechoose(graph, node, ctx, skip).chosen)
        except ChoiceError:  # nothing but the zero op left
            without = None
    return _Edge(attrs["label"], position, skip, rank_of(chosen), chosen == skip and skip is not None, without)


def _rechoose(graph: Graph, node: str, ctx: PassContext, skip: int):
    attrs = graph.attrs(node)
    rules = ctx.rules
    return choose(graph.params(node)["logits"], attrs.get("zero"), attrs["label"],
                  graph.meta(node).get("source") or f"%{node}", rules.op, rules.framework_values, rules.framework_tie,
                  exclude=(skip,))


def _cell_edges(graph: Graph, cell: Cell, rank: str, ctx: PassContext) -> list[list[_Edge]]:
    """The ranked edges of each node of a cell, in input order (required edges are kept whatever happens)."""
    nodes, position = [], 0
    for cell_node in cell.nodes:
        if cell_node.ir_node not in graph:
            continue
        if cell_node.choice is not None:
            raise ChoiceError(f"the {ctx.rules.name} rule set limits skip-connects in normal cells, but node "
                              f"{graph.meta(cell_node.ir_node).get('source') or cell_node.ir_node!r} of cell "
                              f"{cell.name!r} is an input choice, which darts-choice has already decided; pass "
                              "--max-skip-connects only for cells whose nodes sum layer choices")
        edges = []
        for producer in graph.inputs(cell_node.ir_node):
            choice = layer_choice_of(graph, producer)
            if choice is not None:
                edges.append(_edge(graph, choice, position, rank, ctx))
                position += 1
        nodes.append(edges)
    return nodes


def _kept_skips(nodes: list[list[_Edge]], removed: set[str], k: int | None) -> list[_Edge]:
    """The kept edges carrying skip_connect once the `removed` labels have lost it (keep_1_on, keep_2_branches)."""
    skips = []
    for edges in nodes:
        keys = [e.without.key if e.label in removed else e.rank.key for e in edges]
        kept, _ = top_k(keys, k)
        for i in kept:
            e = edges[i]
            if e.is_skip and e.label not in removed:
                skips.append(e)
    return skips


def _limit_cell(cell: Cell, nodes: list[list[_Edge]], k: int | None, limit: int, framework: str) -> SkipLimitDecision:
    removed: list[str] = []
    skips = _kept_skips(nodes, set(removed), k)
    record = SkipLimitDecision(cells=[cell.name], limit=limit, before=len(skips), after=len(skips), removed=removed)
    while len(skips) > limit:
        weakest = min(skips, key=lambda e: e.rank.key)  # the first of equal ones, as np.argmin
        tied = [e.label for e in skips if e.rank.key == weakest.rank.key]
        if len(tied) > 1:
            record.ties.append(f"skip-connect limit in cell {cell.name!r}: edges {tied} tie for the weakest "
                               f"skip_connect; took it from the first, {weakest.label!r} (P-DARTS's order)")
        else:
            low = min(e.rank.float32 for e in skips)
            tied32 = [e.label for e in skips if e.rank.float32 == low]
            if len(tied32) > 1:
                record.framework_ties.append(
                    f"skip-connect limit in cell {cell.name!r}: {framework} compares float32 p[skip_connect], where "
                    f"edges {tied32} tie for the weakest; it would likely take it from {tied32[0]!r} (the first); "
                    f"the exact ranks take it from {weakest.label!r}")
        if weakest.without is None:
            raise ChoiceError(f"P-DARTS's skip-connect limit takes skip_connect from layer choice {weakest.label!r} in "
                              f"cell {cell.name!r}, which has no other candidate but the zero op (P-DARTS would keep "
                              "an edge with no op, or drop it); raise --max-skip-connects or choose another rule set "
                              "with --rules")
        removed.append(weakest.label)
        skips = _kept_skips(nodes, set(removed), k)
    record.after = len(skips)
    return record


def _measured_kinds(graph: Graph, ctx: PassContext, cells: list[Cell]) -> dict[str, str]:
    """Cell name -> "normal"/"reduce" from the spatial sizes the decided graph computes on the example inputs."""
    if ctx.example_inputs is None or graph.root is None:
        return {}
    sizes: dict[str, int] = {}

    def record(node: str, value) -> None:
        if hasattr(value, "shape") and len(value.shape) >= 3:
            sizes[node] = math.prod(value.shape[2:])

    run_graph(graph, ctx.example_inputs, on_value=record)
    kinds = {}
    for cell in cells:
        inputs = [sizes[n] for n in cell.inputs if n in sizes]
        nodes = [sizes[n.ir_node] for n in cell.nodes if n.ir_node in sizes]
        if inputs and nodes:
            kinds[cell.name] = "reduce" if max(nodes) < max(inputs) else "normal"
    return kinds


def cell_kinds(graph: Graph, ctx: PassContext, cells: list[Cell]) -> list[str]:
    """Each cell's kind: its labels', else measured; refused when neither tells."""
    kinds = [cell_kind(cell) for cell in cells]
    if None in kinds:
        measured = _measured_kinds(graph, ctx, [c for c, kind in zip(cells, kinds) if kind is None])
        kinds = [kind or measured.get(cell.name) for cell, kind in zip(cells, kinds)]
    unknown = [cell.name for cell, kind in zip(cells, kinds) if kind is None]
    if unknown:
        raise ChoiceError(f"the {ctx.rules.name} rule set limits skip-connects in normal cells only, but nascompile "
                          f"cannot tell whether cell {unknown[0]!r} is a normal or a reduction cell (its labels do not "
                          "say 'normal' or 'reduce', and no example inputs measure its spatial size); compile with "
                          "example inputs, or choose a rule set without the limit (--rules darts)")
    return kinds


def limit_skip_connects(graph: Graph, ctx: PassContext, overlay: Overlay, rank: str, k: int | None,
                        limit: int) -> None:
    """Rule `skip_connect` out of the normal-cell edges P-DARTS's limit takes it from, re-choosing their op."""
    space = ctx.search_space or describe(graph)
    cells = [(cell, _cell_edges(graph, cell, rank, ctx)) for cell in space.cells]
    cells = [(cell, nodes) for cell, nodes in cells if any(e.skip is not None for edges in nodes for e in edges)]
    if not cells:  # a label shared by two cells has one candidate list: cells without skip_connect are unaffected
        ctx.warn(f"the {ctx.rules.name} rule set limits skip-connects, but no layer choice has a candidate named "
                 f"{SKIP!r} (P-DARTS's name): the limit removed nothing")
        return
    kinds = cell_kinds(graph, ctx, [cell for cell, _ in cells])
    labels_in: dict[str, list[str]] = {}  # label -> every cell holding it
    records: dict[tuple, SkipLimitDecision] = {}
    for (cell, nodes), kind in zip(cells, kinds):
        for edges in nodes:
            for e in edges:
                labels_in.setdefault(e.label, []).append(cell.name)
        if kind != "normal":
            continue
        signature = tuple(tuple(e.label for e in edges) for edges in nodes)
        if signature in records:  # cells sharing their alphas (DARTS's normal cells) decide alike
            records[signature].cells.append(cell.name)
        else:
            records[signature] = _limit_cell(cell, nodes, k, limit, ctx.rules.framework)
    removed_in: dict[str, list[str]] = {}  # label -> the normal cells that took skip_connect from it
    for record in records.values():
        for label in record.removed:
            removed_in.setdefault(label, []).extend(record.cells)
    for label, removed_cells in removed_in.items():
        others = [name for name in labels_in[label] if name not in removed_cells]
        if others:
            raise ChoiceError(f"P-DARTS's skip-connect limit takes skip_connect from layer choice {label!r} in cell "
                              f"{removed_cells[0]!r}, but cell {others[0]!r} shares that label and keeps it; one label is "
                              "one decision, so give the cells distinct labels or choose another rule set (--rules)")
    ctx.decisions.skip_limit = list(records.values())
    for label in removed_in:
        _rule_out_skip(graph, ctx, overlay, label)


def _rule_out_skip(graph: Graph, ctx: PassContext, overlay: Overlay, label: str) -> None:
    nodes = [n for n in graph.nodes_of("layer_choice") if graph.attrs(n)["label"] == label]
    skip = graph.attrs(nodes[0])["candidates"].index(SKIP)
    choice = _rechoose(graph, nodes[0], ctx, skip)
    record = ctx.decisions.layer.get(label)
    if record is not None:
        names = record.candidates
        record.chosen, record.strength = choice.chosen, choice.strength
        record.runner_up, record.margin = choice.runner_up, choice.margin
        record.tie = [names[i] for i in choice.tie]
        record.framework_tie = [names[i] for i in choice.framework_tie]
        record.framework_pick = None if choice.framework_pick is None else names[choice.framework_pick]
        record.excluded = [SKIP]
    for node in nodes:
        graph.attrs(node)["chosen"] = choice.chosen
        overlay.chosen[node] = choice.chosen
