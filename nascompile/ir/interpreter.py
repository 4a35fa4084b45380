"""Run an IR graph with PyTorch.

Used to check passes (`--verify-each`: a pass must not change what the graph computes under the
decisions it made), to infer shapes, and as a plain reference for tests. Choice ops run with the
candidate modules found under the graph's root module; an `Overlay` says which decisions to apply to
a graph that does not record them yet.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import InputShapeError, IRError, NascompileError
from ..nn import reduce_inputs
from .graph import Graph


@dataclass
class Overlay:
    """Decisions applied on top of a graph while interpreting it.

    `chosen`: layer-choice node -> candidate index, or None for a dropped edge (computes zeros).
    `kept`: node -> the argument ports it keeps (input choices, and sums pruned by `finalize`).
    """

    chosen: dict[str, int | None] = field(default_factory=dict)
    kept: dict[str, list[int]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.chosen or self.kept)


def _slice(x: torch.Tensor, dims, starts, ends, steps) -> torch.Tensor:
    index = [slice(None)] * x.dim()
    for dim, start, end, step in zip(dims, starts, ends, steps):
        index[dim] = slice(start, end, step)
    return x[tuple(index)]


def _reshape(x: torch.Tensor, *sizes: Any, shape) -> torch.Tensor:
    dynamic = iter(sizes)
    return x.reshape([int(next(dynamic)) if d is None else d for d in shape])


def _constant(*, value=None, params, **_) -> Any:
    return params["value"] if "value" in params else value


def _unary(fn: Callable) -> Callable:
    return lambda x, **_: fn(x)


# op -> fn(*argument values, **attrs, params=...) for the ops whose meaning needs no graph context
_KERNELS: dict[str, Callable[..., Any]] = {
    "conv2d": lambda x, *, stride, padding, dilation, groups, params, **_: F.conv2d(
        x, params["weight"], params.get("bias"), stride, padding, dilation, groups),
    "batch_norm": lambda x, *, eps, params, **_: F.batch_norm(
        x, params["running_mean"], params["running_var"], params.get("weight"), params.get("bias"),
        training=False, eps=eps),
    "linear": lambda x, *, params, **_: F.linear(x, params["weight"], params.get("bias")),
    "embedding": lambda x, *, params, **_: F.embedding(x, params["weight"]),
    "matmul": lambda a, b, **_: torch.matmul(a, b),
    "relu": _unary(F.relu),
    "clip": lambda x, *, min, max, **_: torch.clamp(x, min, max),
    "leaky_relu": lambda x, *, negative_slope, **_: F.leaky_relu(x, negative_slope),
    "sigmoid": _unary(torch.sigmoid),
    "tanh": _unary(torch.tanh),
    "hardswish": _unary(F.hardswish),
    "hardsigmoid": _unary(F.hardsigmoid),
    "silu": _unary(F.silu),
    "max_pool2d": lambda x, *, kernel_size, stride, padding, dilation, ceil_mode, **_: F.max_pool2d(
        x, kernel_size, stride, padding, dilation, ceil_mode),
    "avg_pool2d": lambda x, *, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
    **_: F.avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override),
    "adaptive_avg_pool2d": lambda x, *, output_size, **_: F.adaptive_avg_pool2d(x, output_size),
    "reduce_mean": lambda x, *, dims, keepdim, **_: x.mean(dims, keepdim=keepdim),
    "reduce_sum": lambda x, *, dims, keepdim, **_: x.sum(dims, keepdim=keepdim),
    "log_softmax": lambda x, *, dim, **_: F.log_softmax(x, dim),
    "select": lambda x, *, dim, index, **_: x.select(dim, index),
    "unsqueeze": lambda x, *, dim, **_: x.unsqueeze(dim),
    "add": lambda a, b, **_: a + b,
    "sub": lambda a, b, **_: a - b,
    "mul": lambda a, b, **_: a * b,
    "div": lambda a, b, **_: a / b,
    "sum": lambda *xs, **_: reduce_inputs(xs, "sum"),
    "mean": lambda *xs, **_: reduce_inputs(xs, "mean"),
    "cat": lambda *xs, dim, **_: torch.cat(xs, dim),
    "slice": lambda x, *, dims, starts, ends, steps, **_: _slice(x, dims, starts, ends, steps),
    "flatten": lambda x, *, start_dim, end_dim, **_: torch.flatten(x, start_dim, end_dim),
    "transpose": lambda x, *, perm, **_: x.permute(*perm),
    "reshape": lambda x, *sizes, shape, **_: _reshape(x, *sizes, shape=shape),
    "size": lambda x, *, dim, **_: x.size(dim),
    "pad": lambda x, *, pads, value, **_: F.pad(x, pads, value=value),
    "identity": lambda x, **_: x,
    "zero": lambda x, **_: torch.zeros_like(x),
    "pack": lambda *xs, **_: list(xs),
    "getitem": lambda xs, *, index, **_: xs[index],
    "edge": lambda x, choice, **_: x,
    "constant": _constant,
}


def apply_op(op: str, args: Sequence[Any], attrs: dict[str, Any], params: dict[str, Any]) -> Any:
    """The value of one primitive op (not a choice, input or output) on argument values."""
    return _KERNELS[op](*args, **attrs, params=params)


@contextlib.contextmanager
def input_errors(graph: Graph, node: str, args: Sequence[Any]) -> Iterator[None]:
    """Report torch's failure to compute `node` on its arguments as an input that does not fit the model."""
    try:
        yield
    except NascompileError:
        raise
    except (RuntimeError, ValueError, IndexError, TypeError) as exc:
        shapes = [list(a.shape) if isinstance(a, torch.Tensor) else a for a in args]
        source = graph.meta(node).get("source") or "<model>"
        raise InputShapeError(
            f"{graph.op(node)} at module {source!r} (node %{node}) fails on its inputs of shape {shapes}: "
            f"{str(exc).splitlines()[0]}. Give an input the model accepts (--input-shape, or the SPEC's "
            "example_inputs()).") from None


def inline_slots(attrs: dict) -> list[int]:
    """The candidate index of each input of an inline layer choice (every slot but the zero op)."""
    return [i for i in range(len(attrs["candidates"])) if i != attrs.get("zero")]


def inline_choice(attrs: dict, logits: torch.Tensor, chosen: int | None, dropped: bool, args: Sequence[Any]) -> Any:
    """An inline layer choice (its inputs are its candidates' values): the chosen one, zeros for a dropped
    edge or a chosen zero op, else the softmax mixture."""
    slots = inline_slots(attrs)
    if dropped or (chosen is not None and chosen == attrs.get("zero")):
        return torch.zeros_like(args[0])
    if chosen is not None:
        return args[slots.index(chosen)]
    weights = torch.softmax(logits, dim=-1)
    return functools.reduce(torch.add, [weights[k] * x for k, x in zip(slots, args)])


class Interpreter:
    """Evaluates a graph node by node in topological order."""

    def __init__(self, graph: Graph, overlay: Overlay | None = None):
        self.graph = graph
        self.overlay = overlay or Overlay()

    def module(self, path: str, node: str) -> torch.nn.Module:
        root = self.graph.root
        if root is None:
            raise IRError(f"node %{node} needs module {path!r}, but the graph has no root module to run it")
        return self.graph.submodule(path)

    def layer_choice(self, node: str, args: Sequence[Any]) -> Any:
        attrs = self.graph.attrs(node)
        modules = attrs["modules"]
        chosen = self.overlay.chosen[node] if node in self.overlay.chosen else attrs.get("chosen")
        if attrs.get("inline"):
            return inline_choice(attrs, self.graph.params(node)["logits"], chosen,
                                 node in self.overlay.chosen and chosen is None, args)
        if (node in self.overlay.chosen and chosen is None) or (chosen is not None and chosen == attrs.get("zero")):
            # a dropped edge, or the zero op chosen (NAS-Bench-201's rules): zeros shaped like a real candidate's output
            first = next(i for i, path in enumerate(modules) if path is not None and i != attrs["zero"])
            return torch.zeros_like(self.module(modules[first], node)(*args))
        if chosen is not None:
            return self.module(modules[chosen], node)(*args)
        weights = torch.softmax(self.graph.params(node)["logits"], dim=-1)
        terms = [weights[i] * self.module(path, node)(*args) for i, path in enumerate(modules) if path is not None]
        return functools.reduce(torch.add, terms)

    def run(self, inputs: Sequence[Any], on_value: Callable[[str, Any], None] | None = None) -> list[Any]:
        """Values of the output node's arguments for the given graph inputs.

        A value is dropped once its last user has run, so memory follows the live values, not the graph.
        """
        graph = self.graph
        values: dict[str, Any] = {}
        users_left = {node: len(users) for node, users in graph.succ.items()}
        for node in graph.graph_inputs():
            index = graph.attrs(node)["index"]
            if index >= len(inputs):
                raise IRError(f"the graph has input %{node} (index {index}) but only {len(inputs)} inputs were given")
            values[node] = inputs[index]
        result: list[Any] = []
        for node in graph.order():
            data = graph.nodes[node]
            op = data["op"]
            if op == "input":
                continue
            sources = graph.inputs(node)
            args = [values[src] for src in sources]
            for src in set(sources):
                users_left[src] -= 1
                if not users_left[src]:
                    del values[src]
            if node in self.overlay.kept:
                args = [args[i] for i in self.overlay.kept[node]]
            if op == "output":
                result = args
                continue
            with input_errors(graph, node, args):
                if op == "layer_choice":
                    value = self.layer_choice(node, args)
                elif op == "input_choice":
                    value = reduce_inputs(args, data["attrs"]["reduction"])
                else:
                    value = apply_op(op, args, data["attrs"], data["params"])
            values[node] = value
            if on_value is not None:
                on_value(node, value)
        return result


@torch.no_grad()
def run_graph(graph: Graph, inputs: Sequence[Any], overlay: Overlay | None = None,
              on_value: Callable[[str, Any], None] | None = None) -> list[Any]:
    """Run `graph` on `inputs` (one per graph input); returns the list of output values."""
    return Interpreter(graph, overlay).run(inputs, on_value)
