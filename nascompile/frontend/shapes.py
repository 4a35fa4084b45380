"""Shapes of IR values during the lift, computed only when the model's code asks for one.

A forward that reads a shape (`x.shape[1] // 4`, `if out.shape[2] == x.shape[2]`) gets the real
number: the example inputs fix every size but the batch. Types come from the infer-shapes rules
(torch's output-size formulas) or, for other ops, from running the op on zeros; a layer choice's
output is that of one of its candidates, run on zeros (all candidates of a mixture agree, or the
supernet itself would not run). Types are stored in the node's meta, as infer-shapes stores them.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import TraceError
from ..ir.graph import Graph
from ..ir.text import DTYPES_BY_NAME


def _typed(graph: Graph, node: str) -> bool:
    meta = graph.meta(node)
    return meta.get("shape") is not None and meta.get("dtype") is not None


def stand_in(graph: Graph, node: str) -> Any:
    """Zeros shaped like the value of `node` (a list of such for a list value); the real value of a
    constant or of a dimension size (a reshape reads those numbers)."""
    op = graph.op(node)
    if op == "size":
        return torch.tensor(shape_of(graph, graph.inputs(node)[0])[graph.attrs(node)["dim"]])
    if op == "constant":
        value = graph.params(node).get("value")
        return value if value is not None else graph.attrs(node)["value"]
    ensure_types(graph, node)
    meta = graph.meta(node)
    if "items" in meta:
        return [torch.zeros(t["shape"], dtype=DTYPES_BY_NAME[t["dtype"]]) for t in meta["items"]]
    return torch.zeros(meta["shape"], dtype=DTYPES_BY_NAME[meta["dtype"]])


def shape_of(graph: Graph, node: str) -> list[int]:
    ensure_types(graph, node)
    shape = graph.meta(node).get("shape")
    if shape is None:
        raise TraceError(f"the shape of {graph.meta(node).get('source') or node!r} is needed but it is a list")
    return list(shape)


def ensure_types(graph: Graph, node: str) -> None:
    """Compute the types of `node` and of the ancestors it needs, in topological order."""
    if _typed(graph, node) or "items" in graph.meta(node):
        return
    order, stack, seen = [], [(node, False)], set()
    while stack:
        current, expanded = stack.pop()
        if expanded:
            order.append(current)
            continue
        if current in seen or _typed(graph, current) or "items" in graph.meta(current):
            continue
        seen.add(current)
        stack.append((current, True))
        stack.extend((arg, False) for arg in graph.inputs(current))
    from . import module_calls

    with module_calls.eager():
        for current in order:
            _compute_type(graph, current)


def _compute_type(graph: Graph, node: str) -> None:
    from ..passes.infer_shapes import _ruled_type, type_of  # the passes import the frontend
    from ..ir.interpreter import apply_op

    op, args = graph.op(node), graph.inputs(node)
    meta = graph.meta(node)
    if op == "input":
        raise TraceError(f"graph input {node!r} has no example shape")
    found = _ruled_type(graph, node, args) if op not in ("layer_choice", "input_choice") else None
    if found is None:
        values = [stand_in(graph, a) for a in args]
        with torch.no_grad():
            if op == "layer_choice":
                value = _candidate_output(graph, node, values)
            elif op == "input_choice":
                value = _input_choice_output(graph.attrs(node), values)
            else:
                value = apply_op(op, values, graph.attrs(node), graph.params(node))
        if isinstance(value, list):
            meta["items"] = [type_of(v) for v in value]
            return
        found = type_of(value)
    meta.update(found or {})


def _candidate_output(graph: Graph, node: str, values: list) -> torch.Tensor:
    attrs = graph.attrs(node)
    if attrs.get("inline"):
        return values[0]
    for i, path in enumerate(attrs["modules"]):
        if path is not None and i != attrs.get("zero"):
            return graph.submodule(path)(*values)
    raise TraceError(f"layer choice {attrs['label']!r} has no candidate to compute its shape with")


def _input_choice_output(attrs: dict, values: list) -> Any:
    reduction = attrs.get("reduction", "sum")
    if reduction == "concat":
        return torch.cat(values, 1)
    if reduction == "none":
        return values
    return values[0]
