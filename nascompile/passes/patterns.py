"""Small predicates and rewrites shared by the optimization passes.

Rewrites that replace a node by another value must not change the value's shape or dtype, which
numpy-style broadcasting and type promotion can do (`x * ones(2, 1, 1)` is larger than `x`; an int
tensor times `1.0` is float). `can_stand_in` checks that from the `shape`/`dtype` meta written by
`infer-shapes`; where that meta is missing, the passes leave the node alone.
"""

from __future__ import annotations

from typing import Any

import torch

from ..ir.graph import Graph


def bypass(graph: Graph, node: str, value: str) -> None:
    """Make every user of `node` read `value` instead, and remove `node`."""
    graph.replace_uses(node, value)
    graph.remove_node(node)


def sole_user(graph: Graph, node: str) -> str | None:
    """The one consumer of `node`'s value when it is read exactly once, else None."""
    if graph.out_degree(node) != 1:
        return None
    return next(iter(graph.successors(node)))


def is_scalar_constant(graph: Graph, node: str) -> bool:
    """A constant holding a Python number (attr `value`), not a tensor."""
    return graph.op(node) == "constant" and "value" not in graph.params(node)


def can_stand_in(graph: Graph, node: str, value: str) -> bool:
    """May `value` replace `node` for all of `node`'s users?

    Both must have the same known shape and dtype, and `value` must be a tensor: a Python-number
    constant would hand its users a number where they read a tensor.
    """
    meta_a, meta_b = graph.meta(node), graph.meta(value)
    return (meta_a.get("shape") is not None and meta_a.get("dtype") is not None
            and meta_a.get("shape") == meta_b.get("shape") and meta_a.get("dtype") == meta_b.get("dtype")
            and not is_scalar_constant(graph, value))


def constant_equals(graph: Graph, node: str, number: float) -> bool:
    """Is `node` a constant every element of which equals `number`? (Booleans do not count as numbers.)"""
    if graph.op(node) != "constant":
        return False
    params = graph.params(node)
    if "value" in params:
        tensor = params["value"]
        if tensor.dtype == torch.bool or tensor.numel() == 0:
            return False
        return bool((tensor == number).all())
    value: Any = graph.attrs(node).get("value")
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == number


def is_zero(graph: Graph, node: str) -> bool:
    """Is `node`'s value known to be all zeros: a `zero` op or an all-zero constant?"""
    return graph.op(node) == "zero" or constant_equals(graph, node, 0)
