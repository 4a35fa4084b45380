"""`eliminate-identities`: users of an `identity` read its argument directly.

Identities come from `nn.Identity` (DARTS's `skip_connect`), dropout in inference, and rewrites.
Exact: an identity computes its argument. The emitter names graph outputs itself, so an output that
now reads a graph input or another output still gets its own name.
"""

from __future__ import annotations

from ..ir.graph import Graph
from .manager import PassContext, PassResult, register_pass
from .patterns import bypass


@register_pass("eliminate-identities")
def eliminate_identities(graph: Graph, ctx: PassContext) -> PassResult:
    identities = graph.nodes_of("identity")
    for node in identities:
        bypass(graph, node, graph.inputs(node)[0])
    return PassResult(changed=bool(identities))
