"""`simplify`: algebraic identities with neutral and absorbing operands.

    x * 1, 1 * x, x / 1, x - 0, x + 0, 0 + x   ->  x
    x * 0, 0 * x                               ->  zeros shaped like the product (a `zero` op)
    f(0) for f in relu, leaky_relu, tanh, ...  ->  that zero (f(0) = 0 and shapes agree)
    sum(x), mean(x), cat(x)                    ->  x

"0" and "1" are constants all of whose elements are 0 or 1, and any `zero` op. A rewrite is made only
when the value kept has the node's own shape and dtype (meta from `infer-shapes`), so broadcasting
and type promotion never change a result. Nodes are visited in topological order, so a chain such as
`relu(x * 0)` folds in one sweep.

Exactness: every rule is exact on finite values. `x * 0` is NaN where x is ±inf or NaN, while the
`zero` op gives 0 there; nascompile assumes finite activations, as the DARTS zero op (`x.mul(0.)`)
itself does.
"""

from __future__ import annotations

from ..ir.graph import Graph
from .manager import PassContext, PassResult, register_pass
from .patterns import bypass, can_stand_in, constant_equals, is_zero

#: Unary ops with f(0) = 0 that keep their input's shape (clip only when its range holds 0).
ZERO_PRESERVING = frozenset({"relu", "leaky_relu", "tanh", "hardswish", "silu", "identity", "clip"})


def _keeps_zero(graph: Graph, node: str) -> bool:
    if graph.op(node) != "clip":
        return True
    attrs = graph.attrs(node)
    return (attrs.get("min") is None or attrs["min"] <= 0) and (attrs.get("max") is None or attrs["max"] >= 0)


def propagate_zero(graph: Graph, node: str) -> bool:
    """Rewrite `node` when a zero operand makes its value zero: `x * 0`, and `f(0)` with f(0) = 0.

    Shared with `eliminate-zeros`, which must see zeros that appear while it removes zero terms.
    """
    op = graph.op(node)
    args = graph.inputs(node)
    if op == "mul":
        zeros = [x for x in args if is_zero(graph, x)]
        if not zeros:
            return False
        standing = next((z for z in zeros if can_stand_in(graph, node, z)), None)
        if standing is not None:
            bypass(graph, node, standing)
            return True
        like = next((x for x in args if can_stand_in(graph, node, x)), None)
        if like is None:
            return False
        graph.replace_op(node, "zero", [like])  # zeros shaped like the product, read from `like`
        return True
    if op in ZERO_PRESERVING and is_zero(graph, args[0]) and _keeps_zero(graph, node) \
            and can_stand_in(graph, node, args[0]):
        bypass(graph, node, args[0])
        return True
    return False


def _neutral_operand(graph: Graph, node: str) -> str | None:
    """The operand `node` reduces to: the other one of a neutral operand (x * 1, x / 1, x - 0, x + 0),
    or the only argument of an aggregation."""
    op = graph.op(node)
    args = graph.inputs(node)
    if op in ("sum", "mean", "cat") and len(args) == 1:
        return args[0]  # the aggregation of one value is that value, whatever its type
    if op not in ("mul", "div", "sub", "add") or len(args) != 2:
        return None
    a, b = args
    kept = []
    if op == "mul":
        kept = [x for x, other in ((a, b), (b, a)) if constant_equals(graph, other, 1)]
    elif op == "div" and constant_equals(graph, b, 1):
        kept = [a]
    elif op == "sub" and is_zero(graph, b):
        kept = [a]
    elif op == "add":
        kept = [x for x, other in ((a, b), (b, a)) if is_zero(graph, other)]
    return next((x for x in kept if can_stand_in(graph, node, x)), None)


def simplify_node(graph: Graph, node: str) -> bool:
    if propagate_zero(graph, node):
        return True
    kept = _neutral_operand(graph, node)
    if kept is None:
        return False
    bypass(graph, node, kept)
    return True


@register_pass("simplify")
def simplify(graph: Graph, ctx: PassContext) -> PassResult:
    changed = False
    for node in graph.order():
        changed |= simplify_node(graph, node)
    return PassResult(changed=changed)
