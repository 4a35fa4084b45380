"""Fast walks over a module tree, and the one walk a compile makes.

`nn.Module.modules()` and `parameters()` are recursive generators: each module costs a step per level of
depth, and a DARTS supernet holds thousands of candidate modules. These walks use an explicit stack.
A compile needs a few facts about every module (is it in training mode? does it have forward hooks? which
parameters and buffers does it hold?); `eval_mode` gathers them in one walk and keeps them while it is active, so the
lift's checks, the passes and the reference read them instead of walking again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn



def submodules(root: nn.Module) -> Iterator[nn.Module]:
    """`root` and every module under it, each once (a shared module is visited once), parents first."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        module = stack.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        yield module
        stack.extend(child for child in reversed(module._modules.values()) if child is not None)


_MISSING = object()


def member(module: nn.Module, name: str, default: object = None) -> object:
    """`getattr(module, name, default)` without raising inside `nn.Module.__getattr__` for a missing name.

    The recognizers probe every module for attributes that only a few have (`key`, `_ops`, `_alphas`); each
    miss made torch format an AttributeError message (3 us) on thousands of modules. Class attributes
    (methods, properties) are looked up as Python does; instance attributes, parameters, buffers and
    submodules read from their dicts; a class with a `__getattr__` of its own is asked through it.
    """
    cls = type(module)
    if _defined_by_class(cls, name):
        return getattr(module, name, default)
    state = module.__dict__
    if name in state:
        return state[name]
    for store in ("_parameters", "_buffers", "_modules"):
        values = state.get(store)
        if values is not None and name in values:
            return values[name]
    if cls.__getattr__ is not nn.Module.__getattr__:  # the class computes attributes of its own
        return getattr(module, name, default)
    return default


_CLASS_NAMES: dict[type, frozenset[str]] = {}  # while a compile is active (`eval_mode`): classes do not change then


def _defined_by_class(cls: type, name: str) -> bool:
    """Does `cls` or a base class define `name`? During a compile each class's names are gathered once."""
    if not _ACTIVE:
        return any(name in vars(base) for base in cls.__mro__)
    names = _CLASS_NAMES.get(cls)
    if names is None:
        names = _CLASS_NAMES[cls] = frozenset().union(*(vars(base) for base in cls.__mro__))
    return name in names


def has_member(module: nn.Module, name: str) -> bool:
    """`hasattr(module, name)`, without the exception of a miss (see `member`)."""
    return member(module, name, _MISSING) is not _MISSING


def named_tensors(root: nn.Module) -> Iterator[tuple[str, str, torch.Tensor]]:
    """(kind, dotted name, tensor) of every parameter ("weight"), buffer ("buffer") and plain tensor attribute
    ("attribute") under `root`, in module order, each tensor once under its first name (as `named_parameters`
    and `named_buffers` list them), in one walk instead of one recursive walk per kind."""
    seen_modules: set[int] = set()
    seen_tensors: set[int] = set()
    stack = [("", root)]
    while stack:
        path, module = stack.pop()
        if id(module) in seen_modules:
            continue
        seen_modules.add(id(module))
        prefix = f"{path}." if path else ""
        for kind, items in (("weight", module._parameters.items()), ("buffer", module._buffers.items()),
                            ("attribute", ((n, v) for n, v in vars(module).items() if isinstance(v, torch.Tensor)))):
            for name, tensor in items:
                if tensor is not None and id(tensor) not in seen_tensors:
                    seen_tensors.add(id(tensor))
                    yield kind, prefix + name, tensor
        stack.extend((prefix + name, child) for name, child in reversed(module._modules.items()) if child is not None)


def paths_of(root: nn.Module, wanted: set[int]) -> dict[int, str]:
    """id -> dotted path under `root` of the modules in `wanted` (ids), walking breadth first and only as
    deep as the last one found: a mixed op's candidates are its children or grandchildren, while the
    modules inside them are many. The shallowest path wins for a module registered under two."""
    found: dict[int, str] = {}
    seen = {id(root)}
    level = [("", root)]
    while level and len(found) < len(wanted):
        below = []
        for prefix, module in level:
            for name, child in module._modules.items():
                if child is None or id(child) in seen:
                    continue
                seen.add(id(child))
                path = f"{prefix}.{name}" if prefix else name
                if id(child) in wanted:
                    found[id(child)] = path
                below.append((path, child))
        level = below
    return found


def weights(root: nn.Module) -> Iterator[torch.Tensor]:
    """The parameters and floating-point buffers of `root` and its submodules (a shared tensor may repeat)."""
    for module in submodules(root):
        yield from (p for p in module._parameters.values() if p is not None)
        yield from (b for b in module._buffers.values() if b is not None and b.is_floating_point())


@dataclass(frozen=True)
class Survey:
    """What one walk found: the modules in training mode, whether any module has forward hooks, and the
    parameters and buffers of the tree, each once, without their names (names cost a string per tensor;
    `named_tensors` finds the few a message needs)."""

    training: tuple[nn.Module, ...]
    hooked: bool
    tensors: tuple[torch.Tensor, ...] = ()


def survey(root: nn.Module) -> Survey:
    """The walk behind `eval_mode`: reads each module's own dicts directly (no generators, no names)."""
    training: list[nn.Module] = []
    hooked = False
    tensors: list[torch.Tensor | None] = []
    seen: set[int] = set()
    stack: list[nn.Module | None] = [root]
    while stack:
        module = stack.pop()
        if module is None or id(module) in seen:
            continue
        seen.add(id(module))
        state = module.__dict__
        if state["training"]:
            training.append(module)
        if state["_forward_hooks"] or state["_forward_pre_hooks"]:
            hooked = True
        if state["_parameters"]:
            tensors += state["_parameters"].values()
        if state["_buffers"]:
            tensors += state["_buffers"].values()
        stack += state["_modules"].values()
    unique = {id(tensor): tensor for tensor in tensors if tensor is not None}  # a shared tensor once
    return Survey(tuple(training), hooked, tuple(unique.values()))


_ACTIVE: dict[int, Survey] = {}  # id(model) -> its survey, while an `eval_mode` of it is active


def active_survey(model: nn.Module) -> Survey | None:
    """The survey of `model` taken by the `eval_mode` now active for it (None outside one)."""
    return _ACTIVE.get(id(model))


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put `model` in eval mode for the duration, restoring every module's own flag afterwards.

    Only modules in training mode are touched (a supernet holds thousands of candidate modules, usually
    all in eval mode already). Nested inside an active `eval_mode` of the same model it does nothing:
    a compile walks the module tree once, not once per stage.
    """
    if id(model) in _ACTIVE:
        yield model
        return
    found = survey(model)
    if found.training:
        model.eval()
    _ACTIVE[id(model)] = Survey((), found.hooked, found.tensors)
    try:
        yield model
    finally:
        del _ACTIVE[id(model)]
        if not _ACTIVE:
            _CLASS_NAMES.clear()
        for module in found.training:
            module.training = True


def submodule_at(root: nn.Module, path: str) -> nn.Module:
    """`root.get_submodule(path)` read off the `_modules` dicts: no `nn.Module.__getattr__` per level (which
    the lift's tracing session wraps). A path that is not a chain of registered children raises
    AttributeError, as `get_submodule` does."""
    module = root
    if path:
        for name in path.split("."):
            child = module.__dict__["_modules"].get(name)
            if child is None:
                return root.get_submodule(path)  # its own message, or a module reached otherwise
            module = child
    return module
