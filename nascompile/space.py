"""Finite search spaces: enumerate every architecture, name it, and tell isomorphic ones apart.

`enumerate_space` lists every architecture of a supernet whose only decisions are ops: every layer
choice picks one of its candidates or its zero op, and every input choice keeps all its inputs
(`n_chosen=None`), as in NAS-Bench-201 (5 ops on 6 edges: 15,625 architectures). Spaces whose input
choices select inputs are refused: most of their combinations differ only in edges nobody keeps.

A space is *NAS-Bench-201-shaped* (`nb201_nodes`) when every cell has one input and node j has one edge
from each earlier state, its op naming it; then an architecture has a NAS-Bench-201 string and the
isomorphism NAS-Bench-201 defines (`nb201_isomorphism_key`), under which 15,625 cells are 6,466.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

from .arch import Architecture
from .archspec import NONE_OP, nb201_string, node_choice_label
from .errors import ChoiceError
from .ir.graph import Graph

#: Refuse to enumerate spaces larger than this.
MAX_ENUMERATED = 10_000_000


def _layer_options(graph: Graph) -> dict[str, list[Any]]:
    """Layer-choice label -> its decisions: each real candidate, then [] for its zero op (if it has one)."""
    options: dict[str, list[Any]] = {}
    for node in graph.nodes_of("layer_choice"):
        attrs = graph.attrs(node)
        if attrs["label"] not in options:
            zero = attrs.get("zero")
            options[attrs["label"]] = [c for i, c in enumerate(attrs["candidates"]) if i != zero] + \
                ([[]] if zero is not None else [])
    return options


def space_size(graph: Graph) -> int:
    """How many architectures `enumerate_space` yields (ChoiceError when the space is not enumerable)."""
    for node in graph.nodes_of("input_choice"):
        if graph.attrs(node).get("n_chosen") is not None:
            raise ChoiceError(f"input choice {graph.attrs(node)['label']!r} selects n_chosen="
                              f"{graph.attrs(node)['n_chosen']} inputs: --all enumerates spaces whose only decisions "
                              "are ops (NAS-Bench-201); give the architectures with --archs instead")
    options = _layer_options(graph)
    if not options:
        raise ChoiceError("the supernet has no layer choices: there is nothing to enumerate")
    size = 1
    for values in options.values():
        size *= len(values)
    if size > MAX_ENUMERATED:
        raise ChoiceError(f"the search space holds {size:,} architectures, more than --all enumerates "
                          f"({MAX_ENUMERATED:,}); give the architectures with --archs instead")
    return size


def enumerate_space(graph: Graph) -> Iterator[dict[str, Any]]:
    """Every architecture, as NNI decisions, in a fixed order (labels in lift order, candidates in theirs)."""
    space_size(graph)
    options = _layer_options(graph)
    inputs = {graph.attrs(n)["label"]: list(graph.attrs(n)["choose_from"]) for n in graph.nodes_of("input_choice")}
    for values in itertools.product(*options.values()):
        yield dict(zip(options, values)) | {label: list(kept) for label, kept in inputs.items()}


def nb201_nodes(decisions: dict[str, Any], graph: Graph, space: Architecture) -> list[list[tuple[str, int]]] | None:
    """The architecture as NAS-Bench-201 nodes [(op, state), ...], or None if the space is not NB201-shaped."""
    found = None
    for cell in space.cells:
        if len(cell.inputs) != 1:
            return None
        nodes = []
        for k, node in enumerate(cell.nodes):
            if sorted(e.source for e in node.edges) != list(range(k + 1)) or any(e.label is None for e in node.edges):
                return None
            if node_choice_label(graph, node.ir_node) is not None and \
                    graph.attrs(node.ir_node).get("n_chosen") is not None:
                return None
            ops = []
            for edge in sorted(node.edges, key=lambda e: e.source):
                value = decisions.get(edge.label)
                if not (isinstance(value, str) or value == []):
                    return None
                ops.append((NONE_OP if value == [] else value, edge.source))
            nodes.append(ops)
        if found is not None and nodes != found:
            return None  # cells with their own labels: no single string
        found = nodes
    return found


def nb201_isomorphism_key(nodes: list[list[tuple[str, int]]]) -> str:
    """NAS-Bench-201's canonical form of a cell: equal for cells it counts as one.

    Built bottom-up: state 0 is `x`; an edge's term is the zero mark `#` when its op is `none` or its
    source's form is exactly `#`, its source's form for `skip_connect`, else `(source)@op`; a node's form
    joins its terms, sorted, with `+`. The cell's form is that of its last node. Over the 5 NAS-Bench-201
    ops this makes 6,466 classes of the 15,625 cells.

    >>> a = [[("nor_conv_3x3", 0)], [("skip_connect", 0), ("none", 1)]]
    >>> b = [[("avg_pool_3x3", 0)], [("skip_connect", 0), ("none", 1)]]
    >>> nb201_isomorphism_key(a) == nb201_isomorphism_key(b)
    True
    """
    forms = ["x"]
    for node in nodes:
        terms = []
        for op, state in node:
            source = forms[state]
            terms.append("#" if op == NONE_OP or source == "#" else source if op == "skip_connect"
                         else f"({source})@{op}")
        forms.append("+".join(sorted(terms)))
    return forms[-1]


def arch_key(decisions: dict[str, Any], graph: Graph, space: Architecture) -> str:
    """A stable name of an architecture of this space: its NAS-Bench-201 string, else its canonical decisions."""
    nodes = nb201_nodes(decisions, graph, space)
    if nodes is not None:
        return nb201_string(nodes)
    return json.dumps(decisions, sort_keys=True, separators=(",", ":"))
