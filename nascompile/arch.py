"""The derived architecture as cells of nodes and edges, read off the decided IR.

After `darts-choice` and `finalize`, and before `expand` turns choices into primitive ops, the graph
still shows the search space's structure: a *search node* aggregates edges (a sum made from an input
choice, or a sum of layer choices), an *edge* is a kept layer choice (its chosen op) or a fixed input.
Search nodes are grouped into *cells*: nodes that read one another or share an input belong together.
A cell's *inputs* are the values its edges read that no node of the cell computes (DARTS's c_{k-2} and
c_{k-1}), and its *concat* the nodes an output `cat` gathers. Genotypes, diagrams and the JSON
architecture description are all rendered from this one structure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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


def _edge_source(graph: Graph, producer: str) -> tuple[str, str, str | None]:
    """(op name, source IR node, label) of one input of a search node."""
    if graph.op(producer) == "layer_choice":
        attrs = graph.attrs(producer)
        chosen = attrs.get("chosen")
        return (None if chosen is None else attrs["candidates"][chosen]), graph.inputs(producer)[0], attrs["label"]
    return graph.op(producer), producer, None


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


def _group_cells(graph: Graph, search: list[str], edges: dict, order: dict) -> list[tuple[list[str], list[str]]]:
    """(inputs, nodes) of each cell: search nodes reading one another or sharing an input, joined."""
    parent = {n: n for n in search}

    def find(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    readers: dict[str, str] = {}
    for node in search:
        for _, source, _ in edges[node]:
            for other in ([source] if source in parent else []) + ([readers[source]] if source in readers else []):
                parent[find(other)] = find(node)
            readers.setdefault(source, node)
    members: dict[str, list[str]] = {}
    for node in search:
        members.setdefault(find(node), []).append(node)
    groups = []
    for nodes in sorted(members.values(), key=lambda ns: order[ns[0]]):
        in_cell = set(nodes)
        inputs = sorted({src for n in nodes for _, src, _ in edges[n] if src not in in_cell}, key=order.__getitem__)
        groups.append((inputs, nodes))
    return groups


def describe(graph: Graph, space: Architecture | None = None) -> Architecture:
    """The cells of `graph`, whose choices may be decided (edges show chosen ops) or not (ops are None).

    `space` is the description taken before any edge was pruned: cell membership and inputs come from it,
    so a cell input or node that lost all its edges keeps its number (DARTS numbers states that way).
    """
    order = {node: i for i, node in enumerate(graph.order())}
    search = sorted((n for n in graph.nodes if _is_search_node(graph, n)), key=order.__getitem__)
    edges = {n: [_edge_source(graph, src) for src in graph.inputs(n)] for n in search}
    if space is None:
        groups = [(inputs, nodes, [graph.meta(i).get("source", "") for i in inputs])
                  for inputs, nodes in _group_cells(graph, search, edges, order)]
    else:
        groups = [(c.inputs, [n.ir_node for n in c.nodes], c.input_sources) for c in space.cells]
    arch = Architecture()
    for inputs, nodes, input_sources in groups:
        states = inputs + nodes
        cell_nodes = [CellNode(n, [Edge(op, states.index(src), label) for op, src, label in edges.get(n, [])],
                               graph.attrs(n).get("choice") if n in graph else None) for n in nodes]
        concat: list[int] = []
        present = [n for n in nodes if n in graph]
        for user in sorted({u for n in present for u, _ in graph.users(n) if graph.op(u) == "cat"},
                           key=order.__getitem__):
            gathered = graph.inputs(user)
            if all(src in states for src in gathered) and len(gathered) > len(concat):
                concat = [states.index(src) for src in gathered]
        paths = [graph.meta(n).get("source", "") for n in present]
        arch.cells.append(Cell(name=_common_prefix(paths) or nodes[0], inputs=inputs, input_sources=input_sources,
                               nodes=cell_nodes, concat=concat))
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
            cell.reduces = max(nodes) < max(inputs)
