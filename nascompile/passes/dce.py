"""`dce`: dead-code elimination. Removes every node whose value no longer reaches the output."""

from __future__ import annotations

import networkx as nx

from ..ir.graph import Graph
from .manager import PassContext, PassResult, register_pass


@register_pass("dce")
def dce(graph: Graph, ctx: PassContext) -> PassResult:
    output = graph.output_node()
    live = nx.ancestors(graph, output) | {output}
    dead = [node for node in graph.nodes if node not in live and graph.op(node) != "input"]
    graph.remove_nodes_from(dead)
    return PassResult(changed=bool(dead))
