"""`infer-shapes`: record each node's shape and dtype in its meta (`shape`, `dtype`).

The emitter uses dtypes for constants and shapes where ONNX needs static sizes; the optimization passes
use them to prove that a rewrite keeps every value's shape and dtype.

The ops that make up nearly all of a CNN (convolutions, pools, batch norm, activations, same-typed
elementwise arithmetic, concatenation) have shape rules (`SHAPE_RULES`), torch's own output-size
formulas. Every other op is computed by its kernel, on the values of its arguments: the example inputs,
constants and the values of other computed ops, or zeros shaped like a ruled argument. That is exact:
no op in the vocabulary has an output shape that depends on tensor *values*, only on numbers (`size`,
constants), and those are always computed. Computing every op instead took 12 ms for the DARTS example
(its convolutions at batch 1), the rules take 2; torch's `meta` device was slower still (its shape
functions are Python decompositions). A graph that still has choice ops is run by the interpreter, which
calls the candidate modules.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ..arch import mark_reductions
from ..errors import IRError, PipelineError
from ..ir.graph import Graph
from ..ir.interpreter import apply_op, input_errors, run_graph
from ..ir.text import DTYPES_BY_NAME, dtype_name
from .manager import PassContext, PassResult, register_pass

TensorType = dict[str, Any]  # {"shape": [...], "dtype": "f32"}


def type_of(value: Any) -> TensorType | None:
    """The `shape`/`dtype` meta of one computed value (None for lists and other non-tensors)."""
    if isinstance(value, torch.Tensor):
        return {"shape": list(value.shape), "dtype": dtype_name(value.dtype)}
    if isinstance(value, bool):
        return {"shape": [], "dtype": "bool"}
    if isinstance(value, int):
        return {"shape": [], "dtype": "i64"}
    if isinstance(value, float):
        return {"shape": [], "dtype": "f32"}
    return None


# --- shape rules: fn(argument types, attrs, params) -> type, or None to compute the op instead -------
def _window_output(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """torch's output length of a convolution or pooling window sliding over `size`."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (math.ceil(span / stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1  # the last window would start in the right padding
    return out


def _spatial(arg: TensorType, kernel, stride, padding, dilation, ceil_mode: bool, channels: int | None = None):
    shape = arg["shape"]
    if len(shape) not in (3, 4):
        return None
    sizes = [_window_output(shape[-2 + i], kernel[i], stride[i], padding[i], dilation[i], ceil_mode) for i in (0, 1)]
    if min(sizes) < 1:
        return None  # the window does not fit: let the kernel say so
    head = list(shape[:-3]) + [shape[-3] if channels is None else channels]
    return {"shape": head + sizes, "dtype": arg["dtype"]}


def _conv2d(args, attrs, params):
    weight = params["weight"]
    shape = args[0]["shape"]
    if len(shape) < 3 or shape[-3] != weight.shape[1] * attrs["groups"]:
        return None  # channels do not fit the weight: let the kernel say so
    return _spatial(args[0], list(weight.shape[2:]), attrs["stride"], attrs["padding"], attrs["dilation"], False,
                    channels=weight.shape[0])


def _pool(args, attrs, params):
    return _spatial(args[0], attrs["kernel_size"], attrs["stride"], attrs["padding"], attrs.get("dilation", [1, 1]),
                    attrs["ceil_mode"])


def _like_input(args, attrs, params):
    return dict(args[0])


def _batch_norm(args, attrs, params):
    shape = args[0]["shape"]
    if len(shape) < 2 or shape[1] != params["running_mean"].numel():
        return None  # channels do not fit the statistics: let the kernel say so
    return dict(args[0])


def _same_typed_elementwise(args, attrs, params):
    """n-ary arithmetic on tensors of one shape and dtype (anything else, e.g. broadcasting, is computed)."""
    first = args[0]
    if first["shape"] and all(a == first for a in args[1:]):
        return dict(first)
    return None


def _cat(args, attrs, params):
    first = args[0]
    rank = len(first["shape"])
    if rank == 0 or any(len(a["shape"]) != rank or a["dtype"] != first["dtype"] for a in args):
        return None
    dim = attrs["dim"] % rank
    if any(a["shape"][:dim] + a["shape"][dim + 1:] != first["shape"][:dim] + first["shape"][dim + 1:] for a in args):
        return None  # mismatched sizes: let the kernel say so
    shape = list(first["shape"])
    shape[dim] = sum(a["shape"][dim] for a in args)
    return {"shape": shape, "dtype": first["dtype"]}


SHAPE_RULES: dict[str, Callable[..., TensorType | None]] = {
    "conv2d": _conv2d, "max_pool2d": _pool, "avg_pool2d": _pool, "cat": _cat,
    "batch_norm": _batch_norm,
    **{op: _like_input for op in ("relu", "clip", "leaky_relu", "sigmoid", "tanh", "hardswish",
                                  "hardsigmoid", "silu", "identity", "zero")},
    **{op: _same_typed_elementwise for op in ("sum", "mean", "add", "sub", "mul", "div")},
}


#: The rules are written for floating-point arguments (integer arithmetic promotes: int / int is float).
FLOAT_DTYPES = frozenset({"f32", "f64", "f16", "bf16"})


def _ruled_type(graph: Graph, node: str, args: list[str]) -> TensorType | None:
    rule = SHAPE_RULES.get(graph.op(node))
    if rule is None or not args:
        return None
    types = [graph.meta(a) for a in args]
    if any(t.get("shape") is None or t.get("dtype") not in FLOAT_DTYPES for t in types):
        return None
    return rule([{"shape": t["shape"], "dtype": t["dtype"]} for t in types], graph.attrs(node), graph.params(node))


def _zeros_like_meta(meta: dict) -> torch.Tensor:
    return torch.zeros(meta["shape"], dtype=DTYPES_BY_NAME[meta["dtype"]])


def infer_graph_types(graph: Graph, inputs: tuple) -> None:
    """Set `shape`/`dtype` meta on every node of a graph without choice ops (see the module docstring)."""
    values: dict[str, Any] = {}  # values of the computed nodes (inputs, constants, ops without a rule)
    for node in graph.graph_inputs():
        index = graph.attrs(node)["index"]
        if index >= len(inputs):
            raise IRError(f"the graph has input %{node} (index {index}) but only {len(inputs)} inputs were given")
        values[node] = inputs[index]
    for node in graph.order():
        data = graph.nodes[node]
        if data["op"] in ("input", "output"):
            continue
        args = graph.inputs(node)
        found = _ruled_type(graph, node, args)
        if found is None:
            arg_values = [values[a] if a in values else _zeros_like_meta(graph.meta(a)) for a in args]
            with input_errors(graph, node, arg_values):
                values[node] = apply_op(data["op"], arg_values, data["attrs"], data["params"])
            found = type_of(values[node])
        if found is not None:
            data["meta"].update(found)


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch on one intra-op thread for the duration, restoring the caller's setting.

    The values computed here are batch-1 examples, where thread start-up and contention cost more than
    they save (on a busy 2-core machine the DARTS example took 15 ms on one thread, 130-860 ms on two).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@register_pass("infer-shapes")
def infer_shapes(graph: Graph, ctx: PassContext) -> PassResult:
    if ctx.example_inputs is None:
        raise PipelineError("infer-shapes needs example inputs")
    with single_threaded(), torch.no_grad():
        if any(op in ("layer_choice", "input_choice") for _, op in graph.nodes(data="op")):
            run_graph(graph, ctx.example_inputs, on_value=lambda node, value: graph.meta(node).update(type_of(value) or {}))
        else:
            infer_graph_types(graph, tuple(ctx.example_inputs))
    if ctx.architecture is not None:
        mark_reductions(graph, ctx.architecture)  # a genotype's cell kinds come from the shapes
    return PassResult(changed=False)
