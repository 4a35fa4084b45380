"""Converting a call of a submodule: trace it with the call's values, convert its forward in turn.

This is how the lift goes down the model (see `tracer.py`): the network's forward, then each cell at
its call, then each mixed op at its call, and stops at candidates of mixtures and at plain torch.nn
layers. A submodule whose forward only chains torch.nn layers is converted without a trace. Traces are
shared by calls that would trace alike (`trace_cache.py`).
"""

from __future__ import annotations

from typing import Any

import torch.fx as fx
from torch import nn

from ..errors import TraceError
from .concrete import Tainted
from .convert import ShapeOf, V, contains_value, needs_placeholder, origin_of
from .tracer import PH, Binding, ScopeTracer, Trace, bind_call, forward_signature


def stand_in_of(cx: Any, value: Any) -> Any:
    """The value control flow sees for a call argument: IR values as tainted zeros of their shape."""
    from .shapes import stand_in

    if isinstance(value, V):
        return Tainted(stand_in(cx.graph, value.node))
    if isinstance(value, ShapeOf):
        return stand_in(cx.graph, value.value.node).shape
    if isinstance(value, (list, tuple)):
        return type(value)(stand_in_of(cx, v) for v in value)
    if isinstance(value, dict):
        return {k: stand_in_of(cx, v) for k, v in value.items()}
    return value


def trace_call(cx: Any, lifter: Any, module: nn.Module, path: str, args: tuple, kwargs: dict) -> tuple[Trace, Binding]:
    """The trace of `module`'s forward for this call (shared with calls that trace alike)."""
    binding = bind_call(module, args, kwargs, needs_placeholder)
    values = [binding.placeholder_value(i) for i in range(len(binding.placeholder_names))]
    binding.placeholder_value = lambda i: stand_in_of(cx, values[i])
    trace = lifter.traces.trace(module, lifter.claims, binding, lambda: ScopeTracer(module, path, binding).run())
    lifter.note_specializations(trace.specializations)
    return trace, binding


def _bound_parts(module: nn.Module, args: tuple, kwargs: dict) -> tuple[list[Any], dict[str, Any]]:
    """The call's arguments as forward binds them, defaults applied: positional ones (``*args``
    flattened) and keyword ones (``**kwargs`` flattened), in the order `tracer.bind_call` uses."""
    signature = forward_signature(type(module))
    bound = signature.bind(None, *args, **kwargs)
    bound.apply_defaults()
    flat: list[Any] = []
    kw: dict[str, Any] = {}
    for param in list(signature.parameters.values())[1:]:
        value = bound.arguments[param.name]
        if param.kind is param.VAR_POSITIONAL:
            flat.extend(value)
        elif param.kind is param.VAR_KEYWORD:
            kw.update(value)
        elif param.kind is param.KEYWORD_ONLY:
            kw[param.name] = value
        else:
            flat.append(value)
    return flat, kw


def placeholders_of(module: nn.Module, binding: Binding, args: tuple, kwargs: dict) -> list[Any]:
    """What the call passes for each of the binding's placeholders (values, or the fx arguments)."""
    try:
        flat, kw = _bound_parts(module, args, kwargs)
    except TypeError:
        return [None] * len(binding.placeholder_names)
    out = [value for spec, value in zip(binding.specs, flat) if spec is PH]
    return out + [kw.get(key) for key, spec in binding.kwarg_specs.items() if spec is PH]


def call_submodule(cx: Any, lifter: Any, module: nn.Module, path: str, node: fx.Node, args: tuple, kwargs: dict) -> Any:
    """Convert the call `module(*args, **kwargs)` (fx node `node` of `cx`'s graph) into `cx.graph`."""
    from . import _convert_known, _forward_is_known  # the package's fast path for layer chains
    from .convert import Converter

    if not kwargs and len(args) == 1 and isinstance(args[0], V) and _forward_is_known(module, lifter):
        return _convert_known(cx.graph, lifter, module, path, args[0])
    trace, binding = trace_call(cx, lifter, module, path, args, kwargs)
    sources = placeholders_of(module, binding, node.args, node.kwargs)
    inputs = placeholders_of(module, binding, args, kwargs)
    origins = [origin_of(cx, src) for src in sources]
    child = Converter(cx.graph, module, path, lifter)
    before = len(lifter.made)
    result = child.convert(trace.graph, inputs=inputs, origins=origins)
    lifter.made_by_call[(cx.prefix, node)] = lifter.made[before:]
    record_call(cx.graph, path, inputs, [result, *child.mutated.values()])
    for index, value in child.mutated.items():  # the callee wrote into a tensor the caller passed
        if isinstance(sources[index], fx.Node):
            cx.pending_rebinds.append((sources[index], value))
    return result


def _value_nodes(obj: Any) -> list[str]:
    """The IR nodes of the values in a (nested) argument or result, in order."""
    if isinstance(obj, V):
        return [obj.node]
    if isinstance(obj, (list, tuple)):
        return [node for item in obj for node in _value_nodes(item)]
    if isinstance(obj, dict):
        return [node for item in obj.values() for node in _value_nodes(item)]
    return []


def record_call(graph: Any, path: str, inputs: list[Any], outputs: list[Any]) -> None:
    """Note one module call in `graph.graph["calls"]`: its module path, its IR inputs in argument order
    and its outputs. `arch.describe` reads cells off these boundaries (which nodes a cell's forward made,
    which argument each of its states came from): connectivity alone merges cells that no conv separates."""
    graph.graph.setdefault("calls", []).append(
        {"path": path, "inputs": _value_nodes(inputs), "outputs": _value_nodes(outputs)})


def lift_module(cx: Any, lifter: Any, module: nn.Module, path: str, inputs: list[V]) -> Any:
    """Convert `module`'s forward called on IR values `inputs` (a chosen candidate, `expand`)."""
    from .convert import Converter

    trace, binding = trace_call(cx, lifter, module, path, tuple(inputs), {})
    child = Converter(cx.graph, module, path, lifter)
    result = child.convert(trace.graph, inputs=placeholders_of(module, binding, tuple(inputs), {}),
                           origins=[None] * len(binding.placeholder_names))
    if child.mutated:
        raise TraceError(f"candidate {path!r} writes into its input in place; other edges read the same tensor, so "
                         "its discrete network would differ from the supernet: use out-of-place ops in candidates")
    return result


__all__ = ["call_submodule", "contains_value", "lift_module", "stand_in_of", "trace_call"]
