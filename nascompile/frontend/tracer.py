"""The torch.fx tracer used by the lift.

Differences from `torch.fx.Tracer`:
- choice modules (anything a registered recognizer claims) stay single `call_module` nodes, so their
  candidates are not traced until one of them is chosen;
- plain tensor attributes of modules (DARTS keeps `alphas_normal` as a plain tensor) are traced as
  `get_attr` nodes, so the expressions built from them can be folded and traced back to their logits;
- parameter and buffer look-ups use maps built once, instead of fx's scan over all named buffers for
  every tensor constant it meets (quadratic on a supernet);
- the candidates inside choice modules are detached while tracing (see `_candidates_detached`), so
  tracing costs what the modules outside the choices cost, not what the whole supernet holds;
- a failure names the module path where tracing stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from ..errors import TraceError

_CONTROL_FLOW_HINT = (
    "its forward branches or loops on tensor values, which a static graph cannot express; "
    "compute the branch from constructor arguments instead, or make the module a candidate of a choice"
)


class LiftTracer(fx.Tracer):
    """fx tracer with nascompile's leaf policy, fast attribute look-up and error locations."""

    def __init__(self, is_choice: Callable[[nn.Module], bool]):
        super().__init__(param_shapes_constant=True)
        self.is_choice = is_choice
        self.failed_path: str | None = None
        self._tensor_names: dict[int, str] = {}
        self._choices: set[int] = set()  # ids of the choice modules found before their candidates were detached

    # --- leaf policy ------------------------------------------------------------------------------
    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if id(m) in self._choices or self.is_choice(m):
            return True
        return super().is_leaf_module(m, module_qualified_name)

    # --- fast look-up of parameters, buffers and plain tensor attributes --------------------------
    def _index_tensors(self, root: nn.Module) -> None:
        self._tensor_names = tensor_names(root)

    def create_arg(self, a: Any) -> Any:
        if isinstance(a, torch.Tensor):
            name = self._tensor_names.get(id(a))
            if name is not None:
                return self.create_node("get_attr", name, (), {})
        return super().create_arg(a)

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict[str, Any]) -> Any:
        if isinstance(attr_val, torch.Tensor):
            name = self._tensor_names.get(id(attr_val))
            if name is not None:
                if name not in parameter_proxy_cache:
                    parameter_proxy_cache[name] = self.create_proxy("get_attr", name, (), {})
                return parameter_proxy_cache[name]
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    # --- error location ---------------------------------------------------------------------------
    def call_module(self, m: nn.Module, forward: Callable, args: tuple, kwargs: dict) -> Any:
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_path is None:
                self.failed_path = self.path_of_module(m)
            raise

    def trace_module(self, root: nn.Module, what: str) -> fx.Graph:
        """Trace `root`; `what` names it in errors (its path in the user's model)."""
        detached = _candidates_detached(root, self.is_choice)
        with detached:
            self._choices = detached.choices
            if not detached.saved:
                return self._trace_reporting(root, what)
            try:
                return self._trace(root)
            except Exception:
                pass
        # A forward outside the choices reached into their candidates: trace again with them attached.
        self.failed_path = None
        return self._trace_reporting(root, what)

    def _trace(self, root: nn.Module) -> fx.Graph:
        self._index_tensors(root)
        with _plain_tensor_attributes_visible(root):
            return self.trace(root)

    def _trace_reporting(self, root: nn.Module, what: str) -> fx.Graph:
        """`_trace`, turning any failure into a TraceError naming the module where it stopped."""
        try:
            return self._trace(root)
        except TraceError:
            raise
        except Exception as exc:
            inner = self.failed_path
            where = what if not inner else (f"{what}.{inner}" if what else inner)
            where = where or type(root).__name__
            message = str(exc).split("\n")[0]
            reason = _CONTROL_FLOW_HINT if "control flow" in message else "it cannot be traced by torch.fx"
            raise TraceError(
                f"cannot lift module {where!r}: {reason} ({type(exc).__name__}: {message})"
            ) from None


class _candidates_detached:
    """Detach the children of every choice module below `root` for the duration.

    Choice modules are leaves of the trace: their candidates are never called. Yet fx's `trace()` walks
    every submodule of the root (to name modules and collect tensor attributes), and so do the tensor
    index and `_plain_tensor_attributes_visible`; in a supernet nearly all modules are candidates (4,600
    of the DARTS example's 4,841). With them detached, those walks cost what the rest of the model costs.
    Each module is asked `is_choice` before its children are detached, and the answers are kept in
    `choices`, so the leaf policy never judges a choice by its emptied shell.
    """

    def __init__(self, root: nn.Module, is_choice: Callable[[nn.Module], bool]):
        self.root = root
        self.is_choice = is_choice
        self.choices: set[int] = set()
        self.saved: list[tuple[nn.Module, dict]] = []

    def __enter__(self):
        seen, stack = {id(self.root)}, [self.root]
        while stack:
            for child in stack.pop()._modules.values():
                if child is None or id(child) in seen:
                    continue
                seen.add(id(child))
                if self.is_choice(child):
                    self.choices.add(id(child))
                    if child._modules:
                        self.saved.append((child, child._modules))
                        object.__setattr__(child, "_modules", {})
                else:
                    stack.append(child)
        return self

    def __exit__(self, *exc_info):
        for module, children in self.saved:
            object.__setattr__(module, "_modules", children)
        return False


def tensor_names(root: nn.Module) -> dict[int, str]:
    """id -> dotted name of every parameter, buffer and plain tensor attribute under `root`.

    A tensor reachable under several names (shared alphas) gets the first one in module order.
    """
    names: dict[int, str] = {}
    for path, module in root.named_modules(remove_duplicate=False):
        prefix = f"{path}." if path else ""
        for name, value in vars(module).items():
            if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
                names.setdefault(id(value), prefix + name)
        for name, tensor in module._buffers.items():
            if tensor is not None:
                names.setdefault(id(tensor), prefix + name)
        for name, tensor in module._parameters.items():
            if tensor is not None:
                names.setdefault(id(tensor), prefix + name)
    return names


class _plain_tensor_attributes_visible:
    """Route reads of plain tensor attributes through the tracer while tracing.

    fx only sees parameters and buffers; a plain tensor attribute (DARTS's alphas) would be baked in as
    an anonymous constant. For the duration of the trace each such attribute is registered as a
    non-persistent buffer, which fx turns into a named `get_attr`; afterwards it is restored.
    """

    def __init__(self, root: nn.Module):
        self.root = root
        self.moved: list[tuple[nn.Module, str, torch.Tensor]] = []

    def __enter__(self):
        for module in self.root.modules():
            for name, value in list(vars(module).items()):
                if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
                    delattr(module, name)
                    module.register_buffer(name, value, persistent=False)
                    self.moved.append((module, name, value))
        return self

    def __exit__(self, *exc_info):
        for module, name, value in reversed(self.moved):
            del module._buffers[name]
            module._non_persistent_buffers_set.discard(name)
            object.__setattr__(module, name, value)
        return False
