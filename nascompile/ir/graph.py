"""The IR graph: a `networkx.MultiDiGraph` whose nodes are operations with one output value each.

Node data: `op` (a kind from `ops.OPS`), `attrs` (plain data), `params` (name -> tensor), `meta`
(`shape`, `dtype`, `source` module path). An edge u -> v with data `port=i` makes u's value the i-th
argument of v; a multigraph, because one value may feed two ports of one node (`x + x`).

The helpers below keep ports dense and ordered, so passes never touch edges by hand. The reading
helpers go to networkx's adjacency dicts (`_pred`, `_succ`, `_node`) directly: passes call them for
every node, and networkx's view objects cost several times more than the work itself.
"""

from __future__ import annotations

import copy
import functools
import heapq
import re
from collections.abc import Iterable
from typing import Any

import networkx as nx
from torch import nn

from ..module_tree import submodule_at
from .ops import OPS, with_defaults

_NAME_OK = re.compile(r"[^A-Za-z0-9_.\-]")


class Graph(nx.MultiDiGraph):
    """A nascompile IR graph. `graph.graph["root"]` may hold the nn.Module that candidate paths point into."""

    _structure_version = 0  # counts calls of networkx's node and edge mutators (`_counting_changes`)

    # --- building ---------------------------------------------------------------------------------
    def fresh_name(self, base: str) -> str:
        """A node name not used yet, derived from `base`."""
        base = _NAME_OK.sub("_", base) or "v"
        if base not in self:
            return base
        counters = self.graph.setdefault("_name_counters", {})
        i = counters.get(base, 0)
        while True:
            i += 1
            candidate = f"{base}_{i}"
            if candidate not in self:
                counters[base] = i
                return candidate

    def add_op(
        self,
        op: str,
        inputs: Iterable[str] = (),
        *,
        name: str | None = None,
        attrs: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> str:
        """Add one operation whose arguments are `inputs` (in port order); returns its name."""
        node = self.fresh_name(name or op)
        attrs = with_defaults(op, dict(attrs or {})) if op in OPS else dict(attrs or {})  # canonical, as parsed
        self.add_node(node, op=op, attrs=attrs, params=dict(params or {}), meta=dict(meta or {}))
        for port, src in enumerate(inputs):
            self.add_edge(src, node, port=port)
        return node

    # --- reading ----------------------------------------------------------------------------------
    def op(self, node: str) -> str:
        return self._node[node]["op"]

    def attrs(self, node: str) -> dict[str, Any]:
        return self._node[node]["attrs"]

    def params(self, node: str) -> dict[str, Any]:
        return self._node[node]["params"]

    def meta(self, node: str) -> dict[str, Any]:
        return self._node[node]["meta"]

    def inputs(self, node: str) -> list[str]:
        """Producers of `node`'s arguments, in port order."""
        pred = self._pred[node]
        if len(pred) == 1:  # most nodes read one value once: nothing to sort
            ((src, edges),) = pred.items()
            if len(edges) == 1:
                return [src]
        return [src for _, src in sorted(self._argument_edges(node))]

    def input_ports(self, node: str) -> list[int]:
        """The ports of `node`'s incoming edges, sorted (0..n-1 in a well-formed graph)."""
        return sorted(port for port, _ in self._argument_edges(node))

    def _argument_edges(self, node: str) -> list[tuple[int, str]]:
        return [(data["port"], src) for src, edges in self._pred[node].items() for data in edges.values()]

    def users(self, node: str) -> list[tuple[str, int]]:
        """(consumer, port) pairs reading `node`'s value, in a deterministic order."""
        return sorted((dst, data["port"]) for dst, edges in self._succ[node].items() for data in edges.values())

    def nodes_of(self, op: str) -> list[str]:
        """All nodes of one op kind, in insertion order."""
        return [n for n, data in self._node.items() if data["op"] == op]

    def graph_inputs(self) -> list[str]:
        return sorted(self.nodes_of("input"), key=lambda n: self.attrs(n)["index"])

    def output_node(self) -> str:
        outputs = self.nodes_of("output")
        if len(outputs) != 1:
            from ..errors import IRError

            raise IRError(f"an IR graph needs exactly one `output` node, found {len(outputs)}",
                          node=outputs[1] if len(outputs) > 1 else None)
        return outputs[0]

    def order(self) -> list[str]:
        """Topological order; ties go to the node inserted first, so the order is deterministic.

        (networkx's `lexicographical_topological_sort(graph, key=insertion rank)`, on the adjacency
        dicts: Kahn's algorithm taking the earliest-inserted ready node each time.) Raises
        `networkx.NetworkXUnfeasible` when the graph has a cycle.

        Kept until the nodes or edges change (`_structure_version`): a compile asks for the order
        of an unchanged graph again and again (the verifier after a pass, the next pass).
        """
        cached = self.__dict__.get("_order_cache")
        if cached is not None and cached[0] == self._structure_version:
            return list(cached[1])
        nodes = list(self._node)
        rank = {node: i for i, node in enumerate(nodes)}
        pred, succ = self._pred, self._succ
        waiting = {node: len(pred[node]) for node in nodes if pred[node]}
        ready = [i for i, node in enumerate(nodes) if not pred[node]]  # ranks: a sorted list is a heap
        order = []
        while ready:
            node = nodes[heapq.heappop(ready)]
            order.append(node)
            for user in succ[node]:
                waiting[user] -= 1
                if not waiting[user]:
                    heapq.heappush(ready, rank[user])
        if len(order) != len(rank):
            raise nx.NetworkXUnfeasible("the graph contains a cycle")
        self._order_cache = (self._structure_version, order)
        return list(order)

    @property
    def root(self) -> nn.Module | None:
        """The module whose submodules the layer choices' candidate paths name, if any."""
        return self.graph.get("root")

    def submodule(self, path: str) -> nn.Module:
        """The module at `path` under the root; IRError when there is no root or no such module."""
        from ..errors import IRError

        if self.root is None:
            raise IRError(f"the graph has no root module to find {path!r} in")
        try:
            return submodule_at(self.root, path)
        except AttributeError:
            raise IRError(f"the graph's root module ({type(self.root).__name__}) has no submodule {path!r}") from None

    # --- rewriting --------------------------------------------------------------------------------
    def set_inputs(self, node: str, inputs: Iterable[str]) -> None:
        """Replace all arguments of `node`."""
        self.remove_edges_from(list(self.in_edges(node, keys=True)))
        for port, src in enumerate(inputs):
            self.add_edge(src, node, port=port)

    def replace_uses(self, old: str, new: str) -> None:
        """Make every consumer of `old` read `new` instead, at the same ports."""
        for _, dst, key, port in list(self.out_edges(old, keys=True, data="port")):
            self.remove_edge(old, dst, key)
            self.add_edge(new, dst, port=port)

    def replace_op(self, node: str, op: str, inputs: Iterable[str], attrs: dict | None = None,
                   params: dict | None = None) -> None:
        """Turn `node` into another operation in place, keeping its name, users and meta."""
        data = self.nodes[node]
        data["op"] = op
        data["attrs"] = dict(attrs or {})
        data["params"] = dict(params or {})
        self.set_inputs(node, inputs)

    def clone(self) -> "Graph":
        """A copy whose node data can be changed without touching this graph (tensors are shared)."""
        other = Graph()
        other.graph.update({k: v for k, v in self.graph.items() if k != "_name_counters"})
        for node, data in self.nodes(data=True):
            other.add_node(node, op=data["op"], attrs=_copy_attrs(data["attrs"]),
                           params=dict(data["params"]), meta=dict(data["meta"]))
        other.add_edges_from(self.edges(keys=True, data=True))
        return other

    def count_ops(self) -> dict[str, int]:
        """How many nodes of each op kind, for summaries."""
        counts: dict[str, int] = {}
        for _, op in self.nodes(data="op"):
            counts[op] = counts.get(op, 0) + 1
        return counts


def _counting_changes(name: str) -> Any:
    """networkx's mutator `name`, bumping the graph's `_structure_version` first (so `order` recomputes)."""
    base = getattr(nx.MultiDiGraph, name)

    @functools.wraps(base)
    def mutator(self: Graph, *args: Any, **kwargs: Any) -> Any:
        self._structure_version += 1
        return base(self, *args, **kwargs)

    return mutator


for _name in ("add_node", "add_nodes_from", "remove_node", "remove_nodes_from", "add_edge", "add_edges_from",
              "add_weighted_edges_from", "remove_edge", "remove_edges_from", "update", "clear", "clear_edges"):
    setattr(Graph, _name, _counting_changes(_name))
del _name

_IMMUTABLE = (int, float, str, bool, type(None))


def _copy_attrs(value: Any) -> Any:
    """A deep copy of plain attribute data (ints, strings, lists, tuples, dicts of them) without
    `copy.deepcopy`'s memo and dispatch, which cost more than the rest of `Graph.clone`; any other value
    (a tensor, an object) goes to `copy.deepcopy`."""
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    if kind is dict:
        return {key: _copy_attrs(item) for key, item in value.items()}
    if kind is list:
        return [_copy_attrs(item) for item in value]
    if kind is tuple:
        return tuple(_copy_attrs(item) for item in value)
    return copy.deepcopy(value)
