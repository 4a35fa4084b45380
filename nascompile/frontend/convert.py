"""fx graph -> IR conversion, one module's forward at a time.

Every fx value becomes an IR value (`V`, naming the IR node that computes it) or a Python constant.
An fx operation none of whose arguments is an IR value is executed right away (constant folding of
parameter-only expressions such as `softmax(alphas)[i]`), and the expression it came from is kept
(`origins`), so that mixture weights can be traced back to their logits across module boundaries.
The others are converted by the table of their target (`functions.py`, `modules.py`), by a
recognizer (choice modules), as a mixture (`mixtures.py`), or, for a call of any other submodule, by
tracing that submodule with the values of the call (`tracer.py`) and converting it in turn.

In-place operations get their real semantics: the mutated value is rebound, so every later read of
the tensor (through any name) sees the new value; an in-place write through a view is refused.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ..errors import ChoiceError, LoweringError, TraceError
from ..ir.graph import Graph
from ..ir.text import dtype_name
from ..module_tree import submodule_at


@dataclass(frozen=True)
class V:
    """An IR value: the name of the node computing it."""

    node: str


@dataclass(frozen=True)
class ShapeOf:
    """`x.shape` / `x.size()` of an IR value: indexing it gives its sizes."""

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


def needs_placeholder(obj: Any) -> bool:
    """Is a call argument traced as a placeholder (IR values, tensors), rather than bound concretely?"""
    if isinstance(obj, (V, ShapeOf, torch.Tensor)):
        return True
    if isinstance(obj, (tuple, list)):
        return any(needs_placeholder(item) for item in obj)
    if isinstance(obj, dict):
        return any(needs_placeholder(item) for item in obj.values())
    return False


# In-place calls: method names ending in `_`, operator.i*, functions with an inplace flag (its position).
_INPLACE_FUNCTIONS = {operator.iadd: None, operator.isub: None, operator.imul: None, operator.itruediv: None,
                      torch.relu_: None, F.relu_: None}
_INPLACE_FLAG_POSITION = {F.relu: 1, F.relu6: 1, F.silu: 1, F.hardswish: 1, F.hardsigmoid: 1, F.selu: 1,
                          F.elu: 2, F.celu: 2, F.leaky_relu: 2, F.hardtanh: 3, F.dropout: 3, F.dropout2d: 3}
_VIEW_METHODS = frozenset({"view", "reshape", "transpose", "permute", "narrow", "select", "expand", "squeeze",
                           "unsqueeze", "flatten", "unflatten", "view_as", "expand_as", "t", "chunk", "split",
                           "unbind", "as_strided", "diagonal", "__getitem__"})
_VIEW_FUNCTIONS = (operator.getitem, torch.transpose, torch.narrow, torch.select, torch.squeeze, torch.unsqueeze,
                   torch.flatten, torch.reshape, torch.chunk, torch.split, torch.unbind, torch.permute)


def is_inplace(node: fx.Node, module: nn.Module | None = None) -> bool:
    """Does this call write into its first argument?"""
    if node.op == "call_method":
        name = str(node.target)
        return name.endswith("_") and not name.startswith("_") or name in ("__iadd__", "__isub__", "__imul__",
                                                                            "__itruediv__")
    if node.op == "call_module":
        return bool(getattr(module, "inplace", False))
    if node.op != "call_function":
        return False
    if node.target in _INPLACE_FUNCTIONS:
        return True
    position = _INPLACE_FLAG_POSITION.get(node.target)
    if position is None:
        return False
    return bool(node.kwargs.get("inplace", node.args[position] if len(node.args) > position else False))


def _is_view(node: Any) -> bool:
    if not isinstance(node, fx.Node):
        return False
    if node.op == "call_method":
        return node.target in _VIEW_METHODS
    return node.op == "call_function" and node.target in _VIEW_FUNCTIONS


class Converter:
    """Builds IR nodes into `graph` from the trace of one module's forward (`root`, at `prefix`)."""

    def __init__(self, graph: Graph, root: nn.Module, prefix: str, choice_lifter: Any):
        self.graph = graph
        self.root = root
        self.prefix = prefix  # module path of `root` inside the user's model ("" for the model itself)
        self.choice_lifter = choice_lifter
        self.fx_node: fx.Node | None = None
        self.partial_sums: dict[str, bool] = {}  # sum node -> may the next `+` absorb it
        self.partial_locations: dict[str, Any] = {}  # sum node -> the line that made it
        self.kinds: dict[fx.Node, Any] = {}  # mixtures.classify: IR / Origin / None per fx node
        self.mutated: dict[int, Any] = {}  # placeholder index -> its value after an in-place write
        self.pending_rebinds: list[tuple[fx.Node, Any]] = []  # tensors a callee wrote into in place
        self.example_inputs: tuple | None = None  # the model's example inputs (root converter only)

    # --- helpers used by the conversion tables ----------------------------------------------------
    @property
    def model(self) -> nn.Module:
        """The whole model (origins and labels name tensors by their path in it)."""
        return self.graph.root if self.graph.root is not None else self.root

    def path(self, local: str = "") -> str:
        """Module path in the user's model for a path local to this converter's root."""
        return ".".join(p for p in (self.prefix, local) if p)

    @property
    def where(self) -> str:
        """Module path of the fx node being converted, for node meta and error messages."""
        node = self.fx_node
        if node is not None and node.op == "call_module":
            return self.path(node.target)
        return self.path()

    @property
    def line(self) -> str:
        """` (Cell.forward line 12 (model_search.py): `source`)` for the node being converted, if known."""
        location = self.fx_node.meta.get("location") if self.fx_node is not None else None
        if location is None:
            return ""
        source = f": `{location.source}`" if location.source else ""
        return f" ({location}{source})"

    def fail(self, message: str) -> TraceError:
        where = self.where or "<model>"
        return TraceError(f"at module {where!r}{self.line}: {message}")

    def unsupported(self, what: str, hint: str = "") -> LoweringError:
        """An operation nascompile has no IR op / ONNX lowering for."""
        where = self.where or "<model>"
        return LoweringError(f"at module {where!r}{self.line}: {what} has no ONNX lowering in nascompile{hint}")

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
            self.choice_lifter.check_constant(self, value)
            return self.emit("constant", params={"value": value.detach()}, name="const")
        if isinstance(value, (bool, int, float)):
            return self.emit("constant", attrs={"value": value}, name="const")
        raise self.fail(f"value {value!r} of type {type(value).__name__} cannot be an operand")

    def module_at(self, target: str) -> nn.Module:
        return submodule_at(self.root, target)

    def shape_of(self, value: V) -> list[int]:
        """The static shape of an IR value (computed on demand, `shapes.py`)."""
        from .shapes import shape_of

        return shape_of(self.graph, value.node)

    # --- the conversion loop ----------------------------------------------------------------------
    def convert(self, fx_graph: fx.Graph, inputs: list[Any] | None = None, origins: list[Any] | None = None) -> Any:
        """Convert every live fx node; `inputs` bind the placeholders (else graph `input` nodes are made),
        `origins` give the parameter-derived ones their expressions. Returns the forward's return value."""
        from . import mixtures
        from .functions import convert_call  # the tables import this module
        from .modules import convert_module

        env: dict[fx.Node, Any] = {}
        placeholders = [n for n in fx_graph.nodes if n.op == "placeholder"]
        if inputs is not None and len(inputs) != len(placeholders):
            raise self.fail(f"expects {len(placeholders)} inputs, the call site passes {len(inputs)}")
        kinds_in = [mixtures.IR if inputs is None or contains_value(inputs[i])
                    else (origins[i] if origins is not None else None) for i in range(len(placeholders))]
        self.kinds = mixtures.classify(fx_graph, kinds_in, self.prefix)
        plan = mixtures.find(fx_graph, self.kinds, self.model)
        live = _live_nodes(fx_graph, self)
        result: Any = None
        for node in fx_graph.nodes:
            self.fx_node = node
            if node.op == "placeholder":
                index = placeholders.index(node)
                env[node] = inputs[index] if inputs is not None else self._graph_input(node, index)
                continue
            if node.op == "output":
                result = _load(node.args[0], env)
                continue
            if node in plan.skip or node not in live:
                continue
            if node in plan.sums:
                env[node] = self.choice_lifter.patterns.lift_sum(self, plan.sums[node], env)
                continue
            if node in plan.batched:
                env[node] = self.choice_lifter.patterns.lift_batched(self, plan.batched[node], env)
                continue
            args, kwargs = _load(node.args, env), _load(node.kwargs, env)
            module = self.module_at(node.target) if node.op == "call_module" else None
            if node.op == "get_attr":
                env[node] = fetch_attr(self.root, node.target)
            elif module is not None and self.choice_lifter.claims(module):
                env[node] = self.choice_lifter.lift(self, module, self.path(node.target), node, args, kwargs)
            elif not contains_value((args, kwargs)):
                env[node] = self._fold(node, module, args, kwargs)
                self.choice_lifter.patterns.note_arch_value(env[node], self.kinds.get(node))
            elif module is not None and type(module) in _leaf_modules():
                env[node] = convert_module(self, module, args, kwargs)
            elif module is not None:
                env[node] = self.choice_lifter.call_submodule(self, module, self.path(node.target), node, args, kwargs)
            else:
                env[node] = convert_call(self, node, args, kwargs)
            if is_inplace(node, module) and node.args and isinstance(node.args[0], fx.Node) \
                    and isinstance(env.get(node.args[0]), V):  # `n += 1` on a Python number only rebinds `n`
                self._rebind_mutated(node, node.args[0], env, placeholders)
            while self.pending_rebinds:
                target, value = self.pending_rebinds.pop()
                env[target] = value
                if target.op == "placeholder":
                    self.mutated[placeholders.index(target)] = value
        self.fx_node = None
        return result

    def _fold(self, node: fx.Node, module: nn.Module | None, args: tuple, kwargs: dict) -> Any:
        """Evaluate an operation on constants only (e.g. `softmax(alphas, -1)[2]`)."""
        from .concrete import RandomSampling, run_deterministic

        if is_inplace(node, module) and isinstance(node.args[0], fx.Node) and node.args[0].op == "get_attr":
            raise self.fail(f"its forward writes into the model tensor {self.path(node.args[0].target)!r} "
                            f"in place ({node.target}); compute a new tensor instead")

        def call() -> Any:
            if module is not None:
                return module(*args, **kwargs)
            if node.op == "call_method":
                return getattr(args[0], node.target)(*args[1:], **kwargs)
            if node.target is operator.getitem and isinstance(args[0], torch.Tensor):
                return args[0][args[1]]
            return node.target(*args, **kwargs)

        try:
            with torch.no_grad():
                return run_deterministic(call)
        except RandomSampling:
            what = node.target if node.op != "call_module" else type(module).__name__
            raise self.fail(f"{getattr(what, '__name__', what)} draws random numbers (Gumbel or Dirichlet "
                            "sampling, noise); a compiled network cannot depend on a draw. Compile the "
                            "deterministic network the search derives (a forward without sampling)") from None

    def _graph_input(self, node: fx.Node, index: int) -> V:
        """A graph input named like forward's argument, typed by the example input when known."""
        meta: dict[str, Any] = {"source": ""}
        if self.example_inputs is not None and index < len(self.example_inputs):
            example = self.example_inputs[index]
            if isinstance(example, torch.Tensor):
                meta.update(shape=list(example.shape), dtype=dtype_name(example.dtype))
        return V(self.graph.add_op("input", name=str(node.target).lstrip("*"), attrs={"index": index}, meta=meta))

    def _rebind_mutated(self, node: fx.Node, target: fx.Node, env: dict, placeholders: list[fx.Node]) -> None:
        """After an in-place write into `target`, every later read of that tensor sees the result."""
        if _is_view(target):
            raise self.fail(f"{node.target} writes in place into a view of another tensor ({target.name}); "
                            "nascompile cannot follow the write into the base tensor: use the out-of-place op")
        env[target] = env[node]
        if target.op == "placeholder":
            self.mutated[placeholders.index(target)] = env[node]

    def record_input_meta(self, example_inputs: tuple) -> None:
        for node, example in zip(self.graph.graph_inputs(), example_inputs):
            if isinstance(example, torch.Tensor):
                self.graph.meta(node).update(shape=list(example.shape), dtype=dtype_name(example.dtype))


def _leaf_modules() -> dict:
    from .modules import _MODULES

    return _MODULES


def _live_nodes(fx_graph: fx.Graph, cx: Converter) -> set[fx.Node]:
    """Nodes the output needs, in-place writes and the nodes they need (a branch's condition is dead)."""
    live: set[fx.Node] = set()
    stack = []
    for node in fx_graph.nodes:
        if node.op == "output":
            stack.append(node)
        elif node.op in ("call_method", "call_function") and is_inplace(node):
            stack.append(node)
        elif node.op == "call_module" and getattr(submodule_at(cx.root, node.target), "inplace", False):
            stack.append(node)
    while stack:
        node = stack.pop()
        if node in live:
            continue
        live.add(node)
        stack.extend(node.all_input_nodes)
    return live


def _load(arg: Any, env: dict) -> Any:
    return fx.node.map_arg(arg, lambda n: env[n])


def fetch_attr(root: nn.Module, target: str) -> Any:
    """The attribute an fx `get_attr` target names under `root` (AttributeError when there is none)."""
    owner_path, _, name = target.rpartition(".")
    owner = submodule_at(root, owner_path)
    return getattr(owner, name)


def origin_of(cx: Converter, arg: Any) -> Any:
    """The origin of an fx argument (None for IR values and plain constants), for binding a call's
    placeholders: a parameter-derived value keeps its expression across the module boundary."""
    if isinstance(arg, fx.Node):
        kind = cx.kinds.get(arg)
        return None if isinstance(kind, str) else kind
    return None

