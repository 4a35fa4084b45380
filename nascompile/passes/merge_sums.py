"""`merge-sums`: n-ary sums. `add` becomes `sum`, and a sum whose first term is another sum read by
nothing else takes that sum's terms in its place:

    sum(sum(a, b), c)  ->  sum(a, b, c)

Exact: an n-ary sum adds its terms left to right (the interpreter folds them in order and
onnxruntime's `Sum` accumulates input by input), so ((a + b) + c) is computed either way. A sum
nested at a later position, sum(a, sum(b, c)) = a + (b + c), is left alone: floating-point addition
is not associative, so flattening it would change rounding. A nested sum read elsewhere too is kept,
so no addition is done twice.
"""

from __future__ import annotations

from ..ir.graph import Graph
from .manager import PassContext, PassResult, register_pass
from .patterns import sole_user


@register_pass("merge-sums")
def merge_sums(graph: Graph, ctx: PassContext) -> PassResult:
    changed = False
    for node in graph.order():  # inner sums first, so each is already flat when its user merges it
        op = graph.op(node)
        if op == "add":
            graph.nodes[node]["op"] = "sum"
            changed = True
        elif op != "sum":
            continue
        terms = graph.inputs(node)
        first = terms[0]
        if graph.op(first) == "sum" and sole_user(graph, first) == node:
            graph.set_inputs(node, graph.inputs(first) + terms[1:])
            graph.remove_node(first)
            changed = True
    return PassResult(changed=changed)
