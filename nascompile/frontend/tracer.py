"""The torch.fx tracer of the lift: one module's forward at a time, bound to its call site.

The lift converts a model top-down: it traces the root's forward, converts it, and traces each
submodule when the conversion meets a call of it (`convert.Converter`), with the values that call
passes. So, unlike `torch.fx.symbolic_trace`:
- every submodule call is a leaf `call_module` node: whether it is a candidate of a mixture (never
  traced unless chosen) or part of the network (traced next, at its call) is decided on the graph;
- arguments that are not tensors (`updateType='alpha'`, `drop_prob=0.`, a flag, a list of ints) are
  bound to their concrete values, defaults included; tensors and lists of tensors are placeholders;
- Python control flow takes its concrete branch (`concrete.Evaluator`): `if`, `len`, `iter`, `range`
  over values fixed at compile time; each branch is recorded as a specialization, a branch on the
  values of the inputs is refused with its file and line;
- plain tensor attributes (DARTS keeps its alphas as plain tensors) are traced as named `get_attr`s,
  so the expressions built from them can be traced back to their logits;
- a failure names the module path and the line of the user's code where it happened.
"""

from __future__ import annotations

import collections
import contextlib
import inspect
import operator
import sys
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.fx import _symbolic_trace as symbolic
from torch.fx._lazy_graph_module import _LazyGraphModule

from ..errors import SpecError, TraceError, meta_tensor_error
from . import module_calls
from .concrete import (Evaluator, RandomSampling, Specialization, as_index, traceback_location,
                       user_location)

PH = object()  # marks a parameter traced as a placeholder


@dataclass
class Binding:
    """How one call binds the traced forward's parameters: a placeholder or a concrete value each.

    `values[i]` is the call's value for the i-th placeholder (a real value or a `concrete.Tainted`
    stand-in provider), used only when control flow needs it.
    """

    names: list[str]  # parameter names, in forward's order (``*args`` items as name_0, name_1, ...)
    specs: list[Any]  # PH or the concrete value, per positional parameter
    kwarg_specs: dict[str, Any]  # keyword-only / **kwargs entries: PH or value
    placeholder_names: list[str]
    placeholder_value: Callable[[int], Any] = field(repr=False, default=lambda i: None)
    raw: list[Any] = field(repr=False, default_factory=list)  # the call's own values for the placeholders

    def key(self) -> tuple:
        """What a trace depends on besides the module: the concrete values, and the structure of what the
        placeholders stand for (list lengths, tensor shapes: a loop over a list of states is unrolled)."""
        return (tuple(_frozen(s) for s in self.specs) + tuple((k, _frozen(v)) for k, v in sorted(self.kwarg_specs.items()))
                + tuple(_skeleton(v) for v in self.raw))


def _skeleton(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), value.dtype)
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_skeleton(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((k, _skeleton(v)) for k, v in sorted(value.items(), key=lambda kv: repr(kv[0]))))
    return type(value).__name__


def _frozen(value: Any) -> Any:
    if value is PH:
        return "<placeholder>"
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_frozen(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((k, _frozen(v)) for k, v in sorted(value.items(), key=lambda kv: repr(kv[0]))))
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    return (type(value).__name__, value)


def bind_call(module: nn.Module, args: tuple, kwargs: dict, needs_placeholder: Callable[[Any], bool]) -> Binding:
    """Bind a call's arguments to `type(module).forward`'s parameters, defaults applied."""
    signature = forward_signature(type(module))
    try:
        bound = signature.bind(None, *args, **kwargs)
    except TypeError as exc:
        raise TraceError(f"{type(module).__name__}.forward cannot take the arguments it is called with: {exc}") from None
    bound.apply_defaults()
    names, specs, kwarg_specs, ph_names, ph_values = [], [], {}, [], []
    params = list(signature.parameters.values())[1:]
    for param in params:
        value = bound.arguments[param.name]
        if param.kind is param.VAR_POSITIONAL:
            for i, item in enumerate(value):
                names.append(f"{param.name}_{i}")
                specs.append(_spec(item, f"{param.name}_{i}", needs_placeholder, ph_names, ph_values))
        elif param.kind is param.VAR_KEYWORD:
            for key, item in value.items():
                kwarg_specs[key] = _spec(item, key, needs_placeholder, ph_names, ph_values)
        elif param.kind is param.KEYWORD_ONLY:
            kwarg_specs[param.name] = _spec(value, param.name, needs_placeholder, ph_names, ph_values)
        else:
            names.append(param.name)
            specs.append(_spec(value, param.name, needs_placeholder, ph_names, ph_values))
    return Binding(names, specs, kwarg_specs, ph_names, lambda i: ph_values[i], ph_values)


def _spec(value: Any, name: str, needs_placeholder: Callable[[Any], bool], ph_names: list, ph_values: list) -> Any:
    if needs_placeholder(value):
        ph_names.append(name)
        ph_values.append(value)
        return PH
    return value


_SIGNATURES: "weakref.WeakKeyDictionary[Any, inspect.Signature]" = weakref.WeakKeyDictionary()  # forward -> signature


def forward_signature(cls: type) -> inspect.Signature:
    """`inspect.signature(cls.forward)`, worked out once per forward function (each costs tens of
    microseconds, and a lift binds thousands of calls). Keyed by the function, weakly: a forward patched
    onto the class is a new key, and a class built at run time is not kept alive."""
    forward = cls.forward
    try:
        sig = _SIGNATURES.get(forward)
    except TypeError:  # a forward that is neither hashable nor weakly referable: not cached
        return inspect.signature(forward)
    if sig is None:
        sig = _SIGNATURES[forward] = inspect.signature(forward)
    return sig


class ConcreteProxy(fx.Proxy):
    """An fx proxy that answers `len`, `int`, `float` and indexing questions with concrete values."""

    def __len__(self) -> int:
        return len(self.tracer.concrete(self, "len()", structural=True))

    def __index__(self) -> int:
        return as_index(self.tracer.concrete(self, "an integer"))

    def __int__(self) -> int:
        return int(self.tracer.concrete(self, "int()"))

    def __float__(self) -> float:
        return float(self.tracer.concrete(self, "float()"))

    # `y += t` writes into the tensor `y` names (and every alias of it): fx.Proxy has no in-place dunders, so
    # Python would fall back to `y = y + t` and an alias read later (`y = x; y += t; y * x`) would be stale
    def __iadd__(self, other: Any) -> fx.Proxy:
        return self.tracer.create_proxy("call_function", operator.iadd, (self, other), {})

    def __isub__(self, other: Any) -> fx.Proxy:
        return self.tracer.create_proxy("call_function", operator.isub, (self, other), {})

    def __imul__(self, other: Any) -> fx.Proxy:
        return self.tracer.create_proxy("call_function", operator.imul, (self, other), {})

    def __itruediv__(self, other: Any) -> fx.Proxy:
        return self.tracer.create_proxy("call_function", operator.itruediv, (self, other), {})


@dataclass
class Trace:
    """One traced forward: its graph, the branches it took (to re-check before reusing it), and what
    those branches were, for the compile summary."""

    graph: fx.Graph
    guards: list[tuple[fx.Node, Any]]
    specializations: list[Specialization]


_PLAIN_ARGUMENTS = frozenset({int, float, bool, str, type(None)})


class ScopeTracer(fx.Tracer):
    """Traces `module`'s forward as `binding` says (see the module docstring)."""

    def __init__(self, module: nn.Module, path: str, binding: Binding):
        # no autowrapping of `math` functions: fx would scan the globals of every forward it meets
        super().__init__(autowrap_modules=(), param_shapes_constant=True)
        self.module = module
        self.path = path
        self.where = path or type(module).__name__
        self.binding = binding
        self.evaluator = Evaluator(module, binding.placeholder_value)
        self.guards: list[tuple[fx.Node, Any]] = []
        self.specializations: list[Specialization] = []
        self._own_names: dict[int, str] | None = None
        self._tensor_names: TensorNames | None = None
        self._paths: dict[int, str] | None = None  # id -> path, filled breadth first on demand
        self._frontier: collections.deque = collections.deque()

    # --- every submodule call is a leaf -----------------------------------------------------------
    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return m is not self.module

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return ConcreteProxy(node, self)

    def create_node(self, *args: Any, **kwargs: Any) -> fx.Node:
        """An fx node that remembers the line of the user's code that made it (for error messages)."""
        node = super().create_node(*args, **kwargs)
        node.meta["location"] = user_location()
        return node

    # --- the call site's binding ------------------------------------------------------------------
    def create_args_for_root(self, root_fn: Callable, is_module: bool, concrete_args: Any = None):
        b = self.binding
        placeholders = []
        for name in b.placeholder_names:
            proxy = self.create_proxy("placeholder", name, (), {})
            self.evaluator.register_placeholder(proxy.node)
            placeholders.append(proxy)

        def bound_forward(root: nn.Module, *proxies: Any) -> Any:
            it = iter(proxies)
            args = [next(it) if spec is PH else spec for spec in b.specs]
            kwargs = {key: next(it) if spec is PH else spec for key, spec in b.kwarg_specs.items()}
            return _with_hooks(root, root_fn, tuple(args), kwargs)

        return bound_forward, [self.module, *placeholders]

    # --- concrete answers for control flow --------------------------------------------------------
    def concrete(self, proxy: fx.Proxy, what: str, structural: bool = False) -> Any:
        """The concrete value of `proxy` where Python needs one (a branch, a length, an index).

        `structural`: only the value's length is used (iterating a list of tensors, `len(x)`), which
        is fixed at compile time even for values computed from the inputs.
        """
        node = proxy.node
        if structural and node.op == "placeholder":  # a list the caller passed: its length, no values needed
            raw = self.binding.raw[[n for n in node.graph.nodes if n.op == "placeholder"].index(node)]
            if isinstance(raw, (list, tuple)):
                return raw
        try:
            value, tainted = self.evaluator.value(proxy.node)
        except RandomSampling as exc:
            raise _random_sampling(self.where, user_location(), *exc.args) from None
        where = user_location()
        if tainted and not structural:
            line = f" at {where}" if where else ""
            source = f": `{where.source}`" if where and where.source else ""
            raise TraceError(
                f"cannot lift module {self.where!r}: its forward needs {what} of a value computed from the model's "
                f"inputs{line}{source}. A compiled network cannot branch on its inputs' values; branch on shapes, "
                "constructor arguments or parameters instead, or make this code part of a candidate that loses")
        self.guards.append((proxy.node, _guard_value(value)))
        if where is not None and not structural:  # a branch or a number; lengths are structure, not listed
            self.specializations.append(Specialization(str(where), where.source, _shown(value)))
        return value

    def to_bool(self, obj: fx.Proxy) -> bool:
        return bool(self.concrete(obj, "the truth value"))

    def iter(self, obj: fx.Proxy):
        value = self.concrete(obj, "the length", structural=True)
        return iter([obj[i] for i in range(len(value))])

    def keys(self, obj: fx.Proxy) -> Any:
        return self.concrete(obj, "the keys").keys()

    # --- named tensors ------------------------------------------------------------------------------
    def _name_of(self, tensor: torch.Tensor) -> str | None:
        """The tensor's path under the traced module: its own tensors first, the whole subtree on a miss
        (built once: a network's forward reads its own alphas, rarely a submodule's tensors)."""
        if self._own_names is None:
            self._own_names = _own_tensor_names(self.module)
        name = self._own_names.get(id(tensor))
        if name is None:
            if self._tensor_names is None:
                self._tensor_names = TensorNames(self.module)
            name = self._tensor_names.name_of(tensor)
        return name

    def create_arg(self, a: Any) -> Any:
        """fx's `create_arg`, with the commonest arguments answered first: a proxy is its node and a plain
        number, string or None is itself, as fx's own chain of checks (parameters, buffers, modules, opaque
        types) concludes after some 10 us per argument."""
        if type(a) in _PLAIN_ARGUMENTS:
            return a
        if isinstance(a, fx.Proxy):
            return a.node
        if isinstance(a, torch.Tensor):
            name = self._name_of(a)
            if name is not None:
                return self.create_node("get_attr", name, (), {})
        return super().create_arg(a)

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict[str, Any]) -> Any:
        if isinstance(attr_val, torch.Tensor):
            name = self._name_of(attr_val)
            if name is not None:
                if name not in parameter_proxy_cache:
                    parameter_proxy_cache[name] = self.create_proxy("get_attr", name, (), {})
                return parameter_proxy_cache[name]
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    def path_of_module(self, mod: nn.Module) -> str:
        """The path of a submodule the forward calls: a child, or deeper (a candidate in `self.edges[k]`,
        a method of a child running inline). Found on demand, breadth first: a supernet's cell holds thousands of
        candidate modules that its trace never calls."""
        if self._paths is None:
            self._paths, self._frontier = {}, collections.deque([("", self.module)])
        path = self._paths.get(id(mod))
        while path is None and self._frontier:  # breadth first: a child or grandchild is found at once
            prefix, current = self._frontier.popleft()
            for name, child in current._modules.items():
                if child is not None and id(child) not in self._paths:
                    full = f"{prefix}.{name}" if prefix else name
                    self._paths[id(child)] = full
                    self._frontier.append((full, child))
            path = self._paths.get(id(mod))
        if path is None:
            raise NameError(f"module {type(mod).__name__} is called by {self.where!r} but is not one of its submodules")
        return path

    # --- the trace ----------------------------------------------------------------------------------
    def trace(self, root: nn.Module, concrete_args: Any = None) -> fx.Graph:
        """`fx.Tracer.trace` of `root`'s forward, less what this tracer does not need: no patching of
        `nn.Module` per trace (module calls reach this tracer through `module_calls.tracing`, patched once
        per session) and no walk of the whole module tree for paths and tensor names (found on demand by
        `path_of_module` and `_name_of`). Functions registered with `torch.fx.wrap` are still wrapped."""
        if isinstance(root, _LazyGraphModule):  # a lazily compiled GraphModule: fx compiles it before tracing
            _LazyGraphModule.force_recompile(root)
        forward = type(root).forward
        self.root, self.root_module_name, self.submodule_paths = root, root._get_name(), None
        self.graph = fx.Graph(tracer_cls=type(self))
        code = forward.__code__
        self.graph._co_fields = {"co_name": code.co_name, "co_filename": code.co_filename,
                                 "co_firstlineno": code.co_firstlineno}
        self.tensor_attrs = {}  # fx's fallback naming of tensors; `create_arg` names them first
        self.parameter_proxy_cache: dict[str, fx.Proxy] = {}
        fn, args = self.create_args_for_root(forward, True, concrete_args)
        was_tracing = symbolic._is_fx_tracing_flag
        symbolic._is_fx_tracing_flag = True  # torch.fx.is_fx_tracing() is true inside, as under fx's own trace
        try:
            with module_calls.tracing(self), symbolic._new_patcher() as patcher:
                symbolic._patch_wrapped_functions(patcher)
                self.create_node("output", "output", (self.create_arg(fn(*args)),), {})
        finally:
            symbolic._is_fx_tracing_flag = was_tracing
        return self.graph

    def run(self) -> Trace:
        try:
            with _plain_tensor_attributes_visible(self.module, self.path), _no_sampling(self.where):
                graph = self.trace(self.module)
        except (TraceError, SpecError):
            raise
        except RandomSampling:
            raise _random_sampling(self.where, None) from None
        except Exception as exc:
            where = traceback_location(exc.__traceback__)
            message = str(exc).split("\n")[0]
            line = f" at {where}" if where else ""
            source = f": `{where.source}`" if where and where.source else ""
            raise TraceError(f"cannot lift module {self.where!r}{line}{source}: torch.fx cannot trace it "
                             f"({type(exc).__name__}: {message})") from None
        return Trace(graph, self.guards, self.specializations)


def _with_hooks(module: nn.Module, forward: Callable, args: tuple, kwargs: dict) -> Any:
    """`forward` with the module's own forward pre-hooks and hooks around it, as `module(...)` runs them
    (so they are traced too)."""
    if module._forward_pre_hooks_with_kwargs or module._forward_hooks_with_kwargs:
        raise TraceError(f"module {type(module).__name__} has forward hooks taking keyword arguments, which "
                         "nascompile does not trace; remove them before compiling")
    for hook in module._forward_pre_hooks.values():
        result = hook(module, args)
        if result is not None:
            args = result if isinstance(result, tuple) else (result,)
    out = forward(module, *args, **kwargs)
    for hook in module._forward_hooks.values():
        result = hook(module, args, out)
        if result is not None:
            out = result
    return out


class _no_sampling:
    """Refuse a forward that draws from torch's, Python's or numpy's generator while it is traced
    (`torch.rand(2)` runs right away; SETN-style `random.choice(self.edges[key])`): the traced graph
    would be one random sample.

    Reading the three generators' states costs about a millisecond, so the lift watches them once around
    all its traces (`watch_whole_lift`); only when that sees a draw does it lift again watching each
    trace, to name the module and raise. A trace outside such a watch watches itself.
    """

    whole_lift_watched = False

    def __init__(self, where: str):
        self.where = where
        self.state: Any = None

    def __enter__(self):
        if not _no_sampling.whole_lift_watched:
            self.state = _generator_states()
        return self

    def __exit__(self, exc_type, *exc_info):
        if exc_type is None and self.state is not None and not _same_generator_states(self.state):
            raise TraceError(f"cannot lift module {self.where!r}: its forward draws random numbers (torch, Python's "
                             "`random` or numpy: it samples noise or a path of the supernet); a compiled network "
                             "cannot depend on a draw. Compile the deterministic network the search derives (a "
                             "forward without sampling, e.g. the mode that mixes or takes the argmax)")
        return False


class DrawDuringLift(Exception):
    """A generator's state changed during a lift watched as a whole: lift again watching each trace."""


@contextlib.contextmanager
def watch_whole_lift() -> Iterator[None]:
    """One generator-state check around a whole lift instead of one per trace (see `_no_sampling`)."""
    if _no_sampling.whole_lift_watched:  # already watched from outside
        yield
        return
    before = _generator_states()
    _no_sampling.whole_lift_watched = True
    try:
        yield
    except Exception:
        if not _same_generator_states(before):  # the draw is the first fault; it may have caused this one
            raise DrawDuringLift from None
        raise
    finally:
        _no_sampling.whole_lift_watched = False
    if not _same_generator_states(before):
        raise DrawDuringLift


def _generator_states() -> tuple:
    import random

    return random.getstate(), _numpy_state(), torch.random.get_rng_state()


def _same_generator_states(before: tuple) -> bool:
    import random

    python, numpy, torch_state = before
    return (random.getstate() == python and _same_numpy_state(numpy)
            and torch.equal(torch.random.get_rng_state(), torch_state))


def _numpy_state() -> Any:
    np = sys.modules.get("numpy")
    return None if np is None else np.random.get_state()


def _same_numpy_state(before: Any) -> bool:
    after = _numpy_state()
    if before is None or after is None:
        return True
    return before[0] == after[0] and (before[1] == after[1]).all() and before[2:] == after[2:]


def _random_sampling(where: str, location: Any, op: str | None = None) -> TraceError:
    line = f" at {location}" if location else ""
    source = f": `{location.source}`" if location and location.source else ""
    what = f" ({op})" if op else ""
    return TraceError(
        f"cannot lift module {where!r}{line}{source}: its forward draws random numbers{what} (Gumbel or Dirichlet "
        "sampling, noise); a compiled network cannot depend on a draw. Compile the deterministic network the "
        "search derives (e.g. the argmax of the logits: a forward without sampling, as in eval mode)")


def _guard_value(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), value.dtype, tuple(value.flatten().tolist()) if value.numel() <= 64 else id(value))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, len(value))
    return value


def _shown(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else f"tensor of shape {list(value.shape)}"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of length {len(value)}"
    return value


def _own_tensor_names(module: nn.Module) -> dict[int, str]:
    names: dict[int, str] = {}
    for name, tensor in _own_tensor_items(module):
        names.setdefault(id(tensor), name)
    return names


class TensorNames:
    """id -> dotted name of the tensors under `root` (parameters, buffers, plain tensor attributes; a
    tensor reachable under several names, as shared alphas are, gets the first in module order), read lazily:
    the module walk goes only as far as the tensors asked for (a lift asks in module order, so a
    compile walks the model once at most, and not at all past the last choice).

    A parameter is named by a second walk that reads only the buffer and parameter dicts (`name_of`): a
    parameter is never a plain tensor attribute, so that walk gives it the same name without looking at
    every attribute of every module (the mixed ops' logits are parameters, and the template cells that own
    them may sit deep in the model)."""

    def __init__(self, root: nn.Module):
        self._names: dict[int, str] = {}
        self._walk: Iterator[tuple[str, nn.Module]] | None = _modules_in_order(root)
        self._registered: dict[int, str] = {}
        self._registered_walk: Iterator[tuple[str, nn.Module]] | None = _modules_in_order(root)

    def get(self, key: int, default: Any = None) -> str | None:
        while key not in self._names and self._walk is not None:
            try:
                path, module = next(self._walk)
            except StopIteration:
                self._walk = None
                break
            prefix = f"{path}." if path else ""
            for name, tensor in _own_tensor_items(module):
                self._names.setdefault(id(tensor), prefix + name)
        return self._names.get(key, default)

    def name_of(self, tensor: torch.Tensor) -> str | None:
        """`get(id(tensor))`, by the cheaper walk when `tensor` is a parameter."""
        if not isinstance(tensor, nn.Parameter):
            return self.get(id(tensor))
        key = id(tensor)
        while key not in self._registered and self._registered_walk is not None:
            try:
                path, module = next(self._registered_walk)
            except StopIteration:
                self._registered_walk = None
                break
            prefix = f"{path}." if path else ""
            for store in (module._buffers, module._parameters):
                for name, value in store.items():
                    if value is not None:
                        self._registered.setdefault(id(value), prefix + name)
        return self._registered.get(key)


def _modules_in_order(root: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """(path, module) in `named_modules` order, each module once under its first path (a shared module's
    tensors take their first names anyway); an explicit stack instead of nested generators."""
    seen: set[int] = set()
    stack = [("", root)]
    while stack:
        path, module = stack.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        yield path, module
        prefix = f"{path}." if path else ""
        stack.extend((prefix + name, child) for name, child in reversed(module._modules.items()) if child is not None)


def _own_tensor_items(module: nn.Module):
    """(name, tensor) of a module's plain tensor attributes, buffers and parameters, in that order."""
    for name, value in vars(module).items():
        if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
            yield name, value
    for name, tensor in module._buffers.items():
        if tensor is not None:
            yield name, tensor
    for name, tensor in module._parameters.items():
        if tensor is not None:
            yield name, tensor


class _plain_tensor_attributes_visible:
    """Route reads of the module's own plain tensor attributes through the tracer while tracing.

    fx only sees parameters and buffers; a plain tensor attribute (DARTS's alphas) would be baked in as
    an anonymous constant. For the duration of the trace each such attribute of the traced module is
    registered as a non-persistent buffer, which fx turns into a named `get_attr`; afterwards it is
    restored. (Submodules read their own attributes in their own traces.)
    """

    def __init__(self, module: nn.Module, path: str):
        self.module = module
        self.path = path
        self.moved: list[tuple[str, torch.Tensor]] = []

    def __enter__(self):
        module = self.module
        for name, value in list(vars(module).items()):
            if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
                if value.is_meta:  # parameters and buffers were checked before the lift (`compiler.scan_tensors`)
                    raise meta_tensor_error("tensor attribute", f"{self.path}.{name}" if self.path else name)
                delattr(module, name)
                module.register_buffer(name, value, persistent=False)
                self.moved.append((name, value))
        return self

    def __exit__(self, *exc_info):
        for name, value in reversed(self.moved):
            del self.module._buffers[name]
            self.module._non_persistent_buffers_set.discard(name)
            object.__setattr__(self.module, name, value)
        return False
