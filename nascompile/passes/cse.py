"""`cse`: common subexpression elimination. Two nodes compute the same value when they apply the
same op, with the same attributes and the same parameter tensors, to the same arguments; the later one
is replaced by the earlier. DARTS cells apply one ReLU to one state on several edges (every
`sep_conv`/`dil_conv` edge from that state starts with it): those become one ReLU.

- Parameters match by identity (the same tensor object, as when a module is reused), never by
  comparing weights; constants match by value (small tensors by their bytes).
- The two-argument `add`, `mul` and `sum` are commutative, exactly (IEEE a + b == b + a), so their
  arguments match in either order. Longer sums are matched in order only (reordering changes rounding).
- Graph inputs and outputs and undecided choices are never merged.

Nodes are visited in topological order, so arguments are already merged when their users are keyed
and whole chains (relu -> conv -> batch_norm on one state) merge in one sweep.
"""

from __future__ import annotations

from typing import Any

from ..ir.graph import Graph
from .manager import PassContext, PassResult, register_pass
from .patterns import bypass

NEVER_MERGED = frozenset({"input", "output", "layer_choice", "input_choice"})
COMMUTATIVE = frozenset({"add", "mul", "sum"})
#: Tensor constants up to this many elements are compared by value, larger ones by identity.
SMALL_CONSTANT = 4096


def _param_key(name: str, tensor: Any, by_value: bool) -> tuple:
    if by_value and tensor.numel() <= SMALL_CONSTANT:
        return name, str(tensor.dtype), tuple(tensor.shape), tensor.detach().cpu().numpy().tobytes()
    return name, id(tensor)


def value_key(graph: Graph, node: str) -> tuple:
    """What determines `node`'s value: op, arguments, attributes and parameters."""
    data = graph.nodes[node]
    op = data["op"]
    args = graph.inputs(node)
    if op in COMMUTATIVE and len(args) == 2:
        args = sorted(args)
    attrs = repr(sorted(data["attrs"].items()))  # repr tells 1 from 1.0 and True, and 0.0 from -0.0
    params = tuple(_param_key(k, data["params"][k], op == "constant") for k in sorted(data["params"]))
    return op, tuple(args), attrs, params


@register_pass("cse")
def cse(graph: Graph, ctx: PassContext) -> PassResult:
    first_of: dict[tuple, str] = {}
    merged = 0
    for node in graph.order():
        if graph.op(node) in NEVER_MERGED:
            continue
        key = value_key(graph, node)
        earlier = first_of.setdefault(key, node)
        if earlier != node:
            bypass(graph, node, earlier)
            merged += 1
    return PassResult(changed=bool(merged))
