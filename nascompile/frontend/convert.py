"""fx graph -> IR conversion.

Every fx value becomes either an IR value (`V`, naming the IR node that computes it) or a Python
constant. An fx operation none of whose arguments is an IR value is executed right away (constant
folding of parameter-only expressions such as `softmax(alphas)[i]`); the others are converted by the
table of their target (`functions.py`, `modules.py`) or, for choice modules, by a recognizer.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from ..errors import LoweringError, TraceError
from ..ir.graph import Graph
from ..ir.text import dtype_name


@dataclass(frozen=True)
class V:
    """An IR value: the name of the node computing it."""

    node: str


@dataclass(frozen=True)
class ShapeOf:
    """`x.shape` / `x.size()` of an IR value: indexing it gives `size` nodes."""

    value: V


def flatten_outputs(obj: Any) -> list[Any]:
    """Leaves of a (nested) tuple/list/dict output, in order: the model's output ports.

    None leaves are left out: a search network returns `(logits, None)` in eval mode, its auxiliary
    head running only in training.
    """
    if isinstance(obj, (tuple, list)):
        return [leaf for item in obj for leaf in flatten_outputs(item)]
    if isinstance(obj, dict):
        return [leaf for item in obj.values() for leaf in flatten_outputs(item)]
    return [] if obj is None else [obj]


def contains_value(obj: Any) -> bool:
    if isinstance(obj, (V, ShapeOf)):
        return True
    if isinstance(obj, (tuple, list)):
        return any(contains_value(item) for item in obj)
    if isinstance(obj, dict):
        return any(contains_value(item) for item in obj.values())
    return False


class Converter:
    """Builds IR nodes into `graph` from one traced fx graph (the whole model, or one candidate)."""

    def __init__(self, graph: Graph, root: nn.Module, prefix: str, choice_lifter: Callable | None):
        self.graph = graph
        self.root = root
        self.prefix = prefix  # module path of `root` inside the user's model ("" for the model itself)
        self.choice_lifter = choice_lifter
        self.fx_node: fx.Node | None = None
        self.partial_sums: dict[str, bool] = {}  # sum node -> may the next `+` absorb it

    # --- helpers used by the conversion tables ----------------------------------------------------
    def path(self, local: str = "") -> str:
        """Module path in the user's model for a path local to this converter's root."""
        return ".".join(p for p in (self.prefix, local) if p)

    @property
    def where(self) -> str:
        """Module path of the fx node being converted, for node meta and error messages."""
        node = self.fx_node
        if node is None:
            return self.path()
        if node.op == "call_module":
            return self.path(node.target)
        stack = node.meta.get("nn_module_stack") or {}
        local = next(reversed(stack.values()))[0] if stack else ""
        return self.path(local)

    def fail(self, message: str) -> TraceError:
        where = self.where or "<model>"
        return TraceError(f"at module {where!r}: {message}")

    def unsupported(self, what: str, hint: str = "") -> LoweringError:
        """An operation nascompile has no IR op / ONNX lowering for."""
        where = self.where or "<model>"
        return LoweringError(f"at module {where!r}: {what} has no ONNX lowering in nascompile{hint}")

    def emit(self, op: str, inputs=(), *, attrs=None, params=None, name: str | None = None) -> V:
        """Add an IR node for the operation being converted."""
        node = self.graph.add_op(op, [self.operand(x).node for x in inputs], name=self._node_name(op, name),
                                 attrs=attrs, params=params, meta={"source": self.where})
        return V(node)

    def _node_name(self, op: str, name: str | None) -> str:
        """Readable node names: the module path for module calls, else path-qualified fx names."""
        node = self.fx_node
        if name is None and node is not None:
            if node.op == "call_module":
                return self.path(node.target)
            return f"{self.where}.{node.name}" if self.where else node.name
        return self.path(name or "") or op

    def operand(self, value: Any) -> V:
        """An IR value for `value`, materializing Python constants as `constant` nodes."""
        if isinstance(value, V):
            return value
        if isinstance(value, ShapeOf):
            raise self.fail("a whole tensor shape cannot be used as a tensor; index it (x.shape[i])")
        if isinstance(value, torch.Tensor):
            return self.emit("constant", params={"value": value.detach()}, name="const")
        if isinstance(value, (bool, int, float)):
            return self.emit("constant", attrs={"value": value}, name="const")
        raise self.fail(f"value {value!r} of type {type(value).__name__} cannot be an operand")

    def module_at(self, target: str) -> nn.Module:
        return self.root.get_submodule(target)

    # --- the conversion loop ----------------------------------------------------------------------
    def convert(self, fx_graph: fx.Graph, inputs: list[V] | None = None) -> list[Any]:
        """Convert every fx node; `inputs` bind the placeholders (else graph `input` nodes are made).

        Returns the flattened output values.
        """
        from .functions import convert_call  # the tables import this module
        from .modules import convert_module

        env: dict[fx.Node, Any] = {}
        placeholders = [n for n in fx_graph.nodes if n.op == "placeholder"]
        if inputs is not None and len(inputs) != len(placeholders):
            raise self.fail(f"expects {len(placeholders)} inputs, the call site passes {len(inputs)}")
        outputs: list[Any] = []
        for node in fx_graph.nodes:
            self.fx_node = node
            if node.op == "placeholder":
                index = placeholders.index(node)
                env[node] = inputs[index] if inputs is not None else V(self.graph.add_op(  # named like forward's argument
                    "input", name=str(node.target).lstrip("*"), attrs={"index": index}, meta={"source": ""}))
                continue
            if node.op == "output":
                outputs = flatten_outputs(_load(node.args[0], env))
                continue
            args, kwargs = _load(node.args, env), _load(node.kwargs, env)
            if node.op == "get_attr":
                env[node] = fetch_attr(self.root, node.target)
            elif node.op == "call_module":
                module = self.module_at(node.target)
                if self.choice_lifter is not None and self.choice_lifter.claims(module):
                    env[node] = self.choice_lifter.lift(self, module, self.path(node.target), node, args, kwargs)
                elif not contains_value((args, kwargs)):
                    with torch.no_grad():
                        env[node] = module(*args, **kwargs)
                else:
                    env[node] = convert_module(self, module, args, kwargs)
            elif not contains_value((args, kwargs)) and node.op in ("call_function", "call_method"):
                env[node] = _fold(node, args, kwargs)
            else:
                env[node] = convert_call(self, node, args, kwargs)
        self.fx_node = None
        return outputs

    def record_input_meta(self, example_inputs: tuple) -> None:
        for node, example in zip(self.graph.graph_inputs(), example_inputs):
            if isinstance(example, torch.Tensor):
                self.graph.meta(node).update(shape=list(example.shape), dtype=dtype_name(example.dtype))


def _load(arg: Any, env: dict) -> Any:
    return fx.node.map_arg(arg, lambda n: env[n])


def fetch_attr(root: nn.Module, target: str) -> Any:
    """The attribute an fx `get_attr` target names under `root` (AttributeError when there is none)."""
    owner_path, _, name = target.rpartition(".")
    owner = root.get_submodule(owner_path) if owner_path else root
    return getattr(owner, name)


def _fold(node: fx.Node, args: tuple, kwargs: dict) -> Any:
    """Evaluate an operation on constants only (e.g. `softmax(alphas, -1)[2]`)."""
    with torch.no_grad():
        if node.op == "call_method":
            return getattr(args[0], node.target)(*args[1:], **kwargs)
        if node.target is operator.getitem and isinstance(args[0], torch.Tensor):
            return args[0][args[1]]
        return node.target(*args, **kwargs)
