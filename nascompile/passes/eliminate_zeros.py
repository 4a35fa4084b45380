"""`eliminate-zeros`: zero terms leave sums.

A value is zero when it is a `zero` op or an all-zero constant, or becomes one here (`x * 0` and
f(0) = 0, the rules of `simplify`, applied in the same topological sweep so zeros flow on).

- zero terms are dropped from a `sum` (or `add`) when a remaining term has the sum's own shape and
  dtype, so broadcasting and type promotion give the same result without them;
- a sum left with one term becomes that term;
- a sum of only zeros becomes one of its zero terms that has the sum's shape and dtype: it is still a
  zero value, so the sums that read it drop it in turn, and where it reaches the output it stays a
  `zero` op (zeros shaped at run time, the batch dimension included).

Exact: adding +0 or -0 to a value leaves it unchanged, except that -0 + +0 is +0 (equal as numbers).
"""

from __future__ import annotations

from ..ir.graph import Graph
from .manager import PassContext, PassResult, register_pass
from .patterns import bypass, can_stand_in, is_zero
from .simplify import propagate_zero


def drop_zero_terms(graph: Graph, node: str) -> bool:
    """Remove the zero terms of the sum `node` where that keeps its type; True if it changed."""
    terms = graph.inputs(node)
    kept = [t for t in terms if not is_zero(graph, t)]
    if len(kept) == len(terms):
        return False
    if not kept:  # only zeros: the sum is one of them
        zero = next((t for t in terms if can_stand_in(graph, node, t)), None)
        if zero is None:
            return False
        bypass(graph, node, zero)
        return True
    if not any(can_stand_in(graph, node, t) for t in kept):
        return False  # the zeros broadcast the result or promote its dtype
    if len(kept) == 1:
        bypass(graph, node, kept[0])
    else:
        graph.set_inputs(node, kept)
    return True


@register_pass("eliminate-zeros")
def eliminate_zeros(graph: Graph, ctx: PassContext) -> PassResult:
    changed = False
    for node in graph.order():
        if graph.op(node) in ("sum", "add"):
            changed |= drop_zero_terms(graph, node)
        else:
            changed |= propagate_zero(graph, node)
    return PassResult(changed=changed)
