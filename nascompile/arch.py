"""The derived architecture as cells of nodes and edges, read off the decided IR.

After `darts-choice` and `finalize`, and before `expand` turns choices into primitive ops, the graph
still shows the search space's structure: a *search node* aggregates edges (a sum made from an input
choice, or a sum of layer choices), an *edge* is a kept layer choice (its chosen op) or a fixed input.
Search nodes are grouped into *cells* by the module calls the lift recorded (`graph.graph["calls"]`):
a cell is the innermost call whose forward made two or more search nodes (else the one that made the
node), so cells that read one another directly, with no preprocessing conv between them, stay apart.
A cell's *inputs* are the values its edges read that no node of the cell computes (DARTS's c_{k-2} and
c_{k-1}), numbered by the call's argument they come from. An IR without recorded calls (hand-written
IR text) is grouped by connectivity: nodes that read one another or share an input belong together.
Its *concat* is the nodes an output `cat` gathers. Genotypes, diagrams and the JSON architecture
description are all rendered from this one structure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .ir.graph import Graph

AGGREGATION_OPS = ("sum", "mean", "cat", "pack")


@dataclass
class Edge:
    op: str | None  # the chosen candidate's name (None while undecided); for a fixed edge, the producing IR op
    source: int  # index into the cell's states: inputs first, then nodes
    label: str | None  # the layer choice's label; None for a fixed edge


@dataclass
class CellNode:
    ir_node: str
    edges: list[Edge]
    choice: str | None = None  # label of the input choice that made this node, if one did


@dataclass
class Cell:
    name: str  # the module path the cell's nodes share (e.g. "cells.3")
    inputs: list[str]  # IR nodes read by the cell and computed outside it
    input_sources: list[str]  # their module paths, for display
    nodes: list[CellNode]
    concat: list[int]  # states gathered into the cell's output (empty when no cat gathers them)
    reduces: bool | None = None  # its nodes are spatially smaller than its inputs (None: shapes unknown)
    edge_states: dict[str, int] = field(default_factory=dict, repr=False)  # layer choice -> state it reads

    def signature(self) -> tuple:
        """Equal for cells that derive the same structure (shared alphas make whole cell types equal)."""
        return (len(self.inputs), tuple(tuple((e.op, e.source) for e in n.edges) for n in self.nodes), tuple(self.concat))


@dataclass
class Architecture:
    cells: list[Cell] = field(default_factory=list)

    def distinct(self) -> list[tuple[Cell, list[str]]]:
        """One representative per distinct derived cell, with the names of all cells deriving it."""
        groups: dict[tuple, tuple[Cell, list[str]]] = {}
        for cell in self.cells:
            groups.setdefault(cell.signature(), (cell, []))[1].append(cell.name)
        return list(groups.values())


def _is_search_node(graph: Graph, node: str) -> bool:
    op = graph.op(node)
    if op == "input_choice":
        return True
    if op not in AGGREGATION_OPS:
        return False
    if "choice" in graph.attrs(node):
        return True
    return op == "sum" and any(graph.op(src) == "layer_choice" for src in graph.inputs(node))


def _add_single_edge_nodes(graph: Graph, search: list[str], edges: dict) -> None:
    """A node of one edge is the layer choice itself (NAS-Bench-201's node 1 is `sum([edge(x)])`): a layer
    choice whose value an edge of a search node reads is a state, so it is a search node with that one edge."""
    pending = [src for n in search for _, src, _, _ in edges[n]]
    while pending:
        node = pending.pop()
        if node in edges or graph.op(node) != "layer_choice":
            continue
        search.append(node)
        edges[node] = [_edge_source(graph, node)]
        pending.append(edges[node][0][1])


def _edge_source(graph: Graph, producer: str) -> tuple[str | None, str, str | None, str | None]:
    """(op name, source IR node, label, layer choice node) of one input of a search node."""
    if graph.op(producer) == "layer_choice":
        attrs = graph.attrs(producer)
        chosen = attrs.get("chosen")
        return ((None if chosen is None else attrs["candidates"][chosen]), graph.inputs(producer)[0],
                attrs["label"], producer)
    return graph.op(producer), producer, None, None


def _common_prefix(paths: list[str]) -> str:
    parts = [p.split(".") for p in paths if p]
    if not parts:
        return ""
    prefix = []
    for items in zip(*parts):
        if len(set(items)) != 1:
            break
        prefix.append(items[0])
    # "cells.3.nodes" names the cell as "cells.3": the path up to its last index
    numeric = [i for i, part in enumerate(prefix) if part.isdigit()]
    return ".".join(prefix[: numeric[-1] + 1] if numeric else prefix)


def _external(nodes: list[str], edges: dict, order: dict) -> list[str]:
    in_cell = set(nodes)
    return sorted({src for n in nodes for _, src, _, _ in edges[n] if src not in in_cell}, key=order.__getitem__)


def _group_cells(graph: Graph, search: list[str], edges: dict, order: dict) -> list[tuple[list[str], list[str], str]]:
    """(inputs, nodes, name) of each cell: search nodes reading one another or sharing an input, joined."""
    parent = {n: n for n in search}

    def find(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    readers: dict[str, str] = {}
    for node in search:
        for _, source, _, _ in edges[node]:
            for other in ([source] if source in parent else []) + ([readers[source]] if source in readers else []):
                parent[find(other)] = find(node)
            readers.setdefault(source, node)
    members: dict[str, list[str]] = {}
    for node in search:
        members.setdefault(find(node), []).append(node)
    return [(_external(nodes, edges, order), nodes, "") for nodes in sorted(members.values(), key=lambda ns: order[ns[0]])]


def _upstream(graph: Graph, starts: list[str], stop: set[str]) -> tuple[set[str], set[str]]:
    """The nodes `starts` are computed from without crossing `stop`, and the `stop` nodes they reach."""
    seen: set[str] = set()
    met: set[str] = set()
    stack = [n for n in starts if n not in stop]
    met.update(n for n in starts if n in stop)
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        for src in graph.inputs(node):
            if src in stop:
                met.add(src)
            elif src not in seen:
                stack.append(src)
    return seen, met


def _arguments_reached(graph: Graph, sources: list[str], stop: set[str]) -> dict[str, frozenset[str]]:
    """For each of `sources`, the `stop` nodes it is computed from (without crossing one): one memoized walk
    for all sources, instead of a walk up the whole graph per source (quadratic on a large cell-less net)."""
    reached: dict[str, frozenset[str]] = {}
    for source in sources:
        stack = [] if source in stop else [(source, False)]
        while stack:
            node, inputs_done = stack.pop()
            if node in reached:
                continue
            inputs = graph.inputs(node)
            if not inputs_done:
                stack.append((node, True))
                stack.extend((src, False) for src in inputs if src not in stop and src not in reached)
                continue
            found: set[str] = set()
            for src in inputs:
                found |= {src} if src in stop else reached[src]
            reached[node] = frozenset(found)
    return {source: frozenset({source}) if source in stop else reached[source] for source in sources}


def _number_inputs(graph: Graph, arguments: list[str], external: list[str]) -> list[str]:
    """The cell's inputs, each in the place of the call argument it is read from (or computed from, as a
    preprocessing conv computes DARTS's states from s0 and s1); an argument passed twice (`cell(s, s)`) is
    two inputs; arguments read by no edge keep their place before read ones; the rest follow in trace order."""
    slots: list[str | None] = [None] * len(arguments)
    extra: list[str] = []
    stop = set(arguments)
    derived = []
    for source in external:  # arguments read as they are take their own places first
        places = [i for i, arg in enumerate(arguments) if arg == source]
        free = [i for i in places if slots[i] is None]
        for i in free:
            slots[i] = source
        if not places:
            derived.append(source)
        elif not free:
            extra.append(source)
    reached_by = _arguments_reached(graph, derived, stop)
    for source in derived:
        reached = reached_by[source]
        free = [i for i, arg in enumerate(arguments) if arg in reached and slots[i] is None]
        if free:
            slots[free[0]] = source
        else:
            extra.append(source)
    last = max((i for i, slot in enumerate(slots) if slot is not None), default=-1)
    return [slot if slot is not None else arguments[i] for i, slot in enumerate(slots[: last + 1])] + extra


def _call_cells(graph: Graph, search: list[str], edges: dict, order: dict) -> list[tuple[list[str], list[str], str]] | None:
    """(inputs, nodes, name) of each cell, from the module calls the lift recorded (None when it recorded none)."""
    calls = graph.graph.get("calls")
    if calls is None:
        return None
    held_by = []  # (call, name, nodes it computed, search nodes among them)
    seen_paths: dict[str, int] = {}
    for call in calls:
        index = seen_paths[call["path"]] = seen_paths.get(call["path"], -1) + 1
        if not all(n in graph for n in (*call["inputs"], *call["outputs"])):
            continue  # a pass before this one rewrote the call's boundary
        inside = _upstream(graph, call["outputs"], set(call["inputs"]))[0]
        held = [n for n in search if n in inside]
        if held:
            held_by.append((call, call["path"] if index == 0 else f"{call['path']}#{index}", inside, held))
    groups: dict[int, tuple[Any, list[str]]] = {}
    for node in search:
        containing = sorted((c for c in held_by if node in c[2]), key=lambda c: len(c[2]))  # innermost first
        owner = next((c for c in containing if len(c[3]) > 1), containing[0] if containing else None)
        groups.setdefault(id(owner), (owner, []))[1].append(node)
    cells = []
    for owner, nodes in groups.values():
        arguments = owner[0]["inputs"] if owner is not None else graph.graph_inputs()
        cells.append((_number_inputs(graph, arguments, _external(nodes, edges, order)), nodes,
                      owner[1] if owner is not None else ""))
    return cells


def _places(states: list[str]) -> dict[str, list[int]]:
    """Where each state stands among a cell's states (an input passed twice stands twice): built once per cell,
    so that finding an edge's state costs no scan of the states (a net without cells has thousands)."""
    places: dict[str, list[int]] = {}
    for i, state in enumerate(states):
        places.setdefault(state, []).append(i)
    return places


def _edge_states(edges: list, states: list[str], places_of: dict[str, list[int]], known: dict[str, int]) -> list[int]:
    """The state each edge reads: the one recorded for its layer choice, else the place of its source
    among the states (the k-th edge reading an input passed twice reads its k-th place)."""
    out = []
    readings: dict[str, int] = {}
    for _, src, _, choice in edges:
        if choice in known:
            out.append(known[choice])
            continue
        places = places_of.get(src, [])
        k = readings[src] = readings.get(src, -1) + 1
        out.append(places[min(k, len(places) - 1)] if places else states.index(src))
    return out


def describe(graph: Graph, space: Architecture | None = None) -> Architecture:
    """The cells of `graph`, whose choices may be decided (edges show chosen ops) or not (ops are None).

    `space` is the description taken before any edge was pruned: cell membership and inputs come from it,
    so a cell input or node that lost all its edges keeps its number (DARTS numbers states that way).
    """
    order = {node: i for i, node in enumerate(graph.order())}
    search = [n for n in graph.nodes if _is_search_node(graph, n)]
    edges = {n: [_edge_source(graph, src) for src in graph.inputs(n)] for n in search}
    _add_single_edge_nodes(graph, search, edges)
    search.sort(key=order.__getitem__)
    if space is None:
        found = _call_cells(graph, search, edges, order)
        groups = [(inputs, nodes, [graph.meta(i).get("source", "") for i in inputs], name, {})
                  for inputs, nodes, name in (found if found is not None else _group_cells(graph, search, edges, order))]
    else:
        groups = [(c.inputs, [n.ir_node for n in c.nodes], c.input_sources, c.name, c.edge_states) for c in space.cells]
    arch = Architecture()
    for inputs, nodes, input_sources, name, known in groups:
        states = inputs + nodes
        places = _places(states)
        cell_nodes, edge_states = [], {}
        for n in nodes:
            node_edges = edges.get(n, [])
            sources = _edge_states(node_edges, states, places, known)
            edge_states.update({choice: i for (_, _, _, choice), i in zip(node_edges, sources) if choice is not None})
            cell_nodes.append(CellNode(n, [Edge(op, i, label) for (op, _, label, _), i in zip(node_edges, sources)],
                                       graph.attrs(n).get("choice") if n in graph else None))
        concat: list[int] = []
        present = [n for n in nodes if n in graph]
        for user in sorted({u for n in present for u, _ in graph.users(n) if graph.op(u) == "cat"},
                           key=order.__getitem__):
            gathered = graph.inputs(user)
            if all(src in states for src in gathered) and len(gathered) > len(concat):
                concat = [states.index(src) for src in gathered]
        paths = [graph.meta(n).get("source", "") for n in present]
        arch.cells.append(Cell(name=name or _common_prefix(paths) or nodes[0], inputs=inputs,
                               input_sources=input_sources, nodes=cell_nodes, concat=concat,
                               edge_states=known or edge_states))
    return arch


def _spatial_size(graph: Graph, node: str) -> int | None:
    shape = graph.meta(node).get("shape") if node in graph else None
    return math.prod(shape[2:]) if shape and len(shape) >= 3 else None


def mark_reductions(graph: Graph, architecture: Architecture) -> None:
    """Record on each cell whether it reduces the spatial size (a DARTS reduction cell), from the shapes
    `infer-shapes` put in the meta of its inputs and nodes; cells already marked are left alone."""
    for cell in architecture.cells:
        if cell.reduces is not None:
            continue
        inputs = [size for size in (_spatial_size(graph, n) for n in cell.inputs) if size is not None]
        nodes = [size for size in (_spatial_size(graph, n.ir_node) for n in cell.nodes) if size is not None]
        if inputs and nodes:
            cell.reduces = max(nodes) < min(inputs)  # a normal cell after a reduction reads a larger c_{k-2}
