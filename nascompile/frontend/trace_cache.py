"""One fx trace for candidates built alike.

The kept edges of a DARTS supernet repeat a handful of op structures (a 3x3 separable conv of 16 channels
in each of six normal cells), and each fx trace costs milliseconds of set-up. The trace of a module is a
function of what its forward can read: its class, its plain attributes, the names, shapes and dtypes of
its tensors (shapes are constants to the trace), and the same of every submodule. `structure_key` captures
exactly that; a module it cannot capture (an attribute that is not plain data, a hook, a choice inside) has
no key and is always traced. The cached graph names tensors and submodules by their paths relative to the
module, so the converter binds it to each module's own weights.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from .convert import fetch_attr

# What nn.Module.__init__ sets: bookkeeping that a forward does not read (tensors, children and hooks are
# looked at on their own below).
_MODULE_INTERNALS = frozenset(vars(nn.Module()))
_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
_PLAIN = (bool, int, float, str, type(None), torch.dtype, torch.device)


class _Uncacheable(Exception):
    pass


def _frozen(value: Any) -> Hashable:
    if isinstance(value, _PLAIN):
        return (type(value), value)
    if isinstance(value, (tuple, list)):
        return (type(value), tuple(_frozen(v) for v in value))
    if isinstance(value, torch.Tensor):  # a plain tensor attribute: the trace sees its shape at most (and a
        return ("tensor", tuple(value.shape), value.dtype, value.is_meta)  # meta one is refused as it is traced)
    raise _Uncacheable


def _key(module: nn.Module, is_choice: Callable[[nn.Module], bool], memo: dict[int, Hashable]) -> Hashable:
    known = memo.get(id(module))
    if known is not None:
        return known
    if is_choice(module) or any(getattr(module, hooks, None) for hooks in _HOOKS):
        raise _Uncacheable
    tensors = tuple((kind, name, None if t is None else (tuple(t.shape), t.dtype))
                    for kind in ("_parameters", "_buffers") for name, t in getattr(module, kind).items())
    attrs = tuple((name, _frozen(value)) for name, value in sorted(vars(module).items())
                  if name not in _MODULE_INTERNALS)
    children = tuple((name, None if child is None else _child_key(child, is_choice, memo))
                     for name, child in module._modules.items())
    key = memo[id(module)] = (type(module), module.training, tensors, attrs, children)
    return key


def _child_key(child: nn.Module, is_choice: Callable[[nn.Module], bool], memo: dict[int, Hashable]) -> Hashable:
    """A choice child is a leaf of every trace that calls it: only its kind and plain attributes can
    matter to that trace, not the candidates inside it."""
    if is_choice(child):
        attrs = tuple((name, _frozen(value)) for name, value in sorted(vars(child).items())
                      if name not in _MODULE_INTERNALS and isinstance(value, _PLAIN + (tuple, list)))
        return ("choice", type(child), attrs)
    return _key(child, is_choice, memo)


def structure_key(module: nn.Module, is_choice: Callable[[nn.Module], bool],
                  memo: dict[int, Hashable] | None = None) -> Hashable | None:
    """Equal keys mean equal traces; None when the module's trace cannot be shared. `memo` (id -> key) keeps
    the keys of one compile, whose modules do not change: a cell's key holds its nodes' keys, which their own
    traces ask for again."""
    try:
        return _key(module, is_choice, {} if memo is None else memo)
    except _Uncacheable:
        return None


def _binds_to(graph: fx.Graph, module: nn.Module) -> bool:
    """Every attribute the graph reads exists on `module` (fx stores tensors it creates, such as
    `_tensor_constant0`, on the traced module only)."""
    for node in graph.nodes:
        if node.op == "get_attr":
            try:
                fetch_attr(module, node.target)
            except AttributeError:
                return False
    return True


def _guards_hold(trace: Any, module: nn.Module, binding: Any) -> bool:
    """Does every branch the trace took go the same way for this call?"""
    if not trace.guards:
        return True
    from .concrete import Evaluator, RandomSampling
    from .tracer import _guard_value

    evaluator = Evaluator(module, binding.placeholder_value)
    try:
        return all(_guard_value(evaluator.value(node)[0]) == expected for node, expected in trace.guards)
    except (RandomSampling, Exception):
        return False


class TraceCache:
    """Traces by structure key and call binding, for one compile; a trace that took branches is reused
    only where the same branches are taken (its guards hold)."""

    def __init__(self) -> None:
        self._traces: dict[Hashable, list[Any]] = {}
        self._keys: dict[int, Hashable] = {}  # id(module) -> structure key, for this compile
        self.hits = 0

    def trace(self, module: nn.Module, is_choice: Callable[[nn.Module], bool], binding: Any,
              trace: Callable[[], Any]) -> Any:
        key = structure_key(module, is_choice, self._keys)
        if key is not None:
            key = (key, binding.key())
            for cached in self._traces.get(key, ()):
                if _binds_to(cached.graph, module) and _guards_hold(cached, module, binding):
                    self.hits += 1
                    return cached
        result = trace()
        if key is not None:
            self._traces.setdefault(key, []).append(result)
        return result
