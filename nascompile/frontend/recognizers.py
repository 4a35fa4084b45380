"""Recognizers: how the lift finds the choice modules of one supernet family.

A recognizer claims modules (`claims`), turns a call of a claimed module into `layer_choice` /
`input_choice` IR nodes (`lift`), and can fix the claimed modules of a model to decisions so that the
model's own forward computes the discrete network (`fixed`, the validation reference).

Register your own with `register_recognizer` (see the README for a complete example).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from torch import nn

from ..errors import ChoiceError
from .arch_params import ArchParams
from .convert import Converter, V
from .pattern_choices import PatternChoices
from .trace_cache import TraceCache


class Recognizer(Protocol):
    name: str

    def claims(self, module: nn.Module) -> bool: ...

    def lift(self, cx: Converter, module: nn.Module, path: str, fx_node: Any, args: tuple, kwargs: dict) -> Any: ...

    def fixed(self, model: nn.Module, by_path: Mapping[str, Any]) -> contextlib.AbstractContextManager: ...


_FACTORIES: list[Callable[[], Recognizer]] = []


def register_recognizer(factory: Callable[[], Recognizer]) -> Callable[[], Recognizer]:
    """Add a recognizer (a class or zero-argument factory; one instance is made per compile).

    Recognizers registered later are asked first, so a user's recognizer can take over a module that a
    built-in one would also claim.
    """
    _FACTORIES.insert(0, factory)
    return factory


def default_recognizers() -> list[Recognizer]:
    """One instance of every registered recognizer (the built-in families register when
    `nascompile.frontend` is imported, so a user's recognizer is always asked before them)."""
    return [factory() for factory in _FACTORIES]


class ChoiceLifter:
    """The recognizers of one compile, asked in order, and the user's logits (`arch_params`) they read."""

    def __init__(self, recognizers: list[Recognizer], arch_params: ArchParams | None = None):
        self.recognizers = recognizers
        self.arch_params = arch_params if arch_params is not None else ArchParams()
        self._owner: dict[int, Recognizer | None] = {}
        self.traces = TraceCache()  # calls that trace alike share one trace (see trace_cache.py)
        self.patterns = PatternChoices()  # the mixtures found as patterns, and their reference
        self.made: list[str] = []  # layer choices the patterns lifted, in order
        self.made_by_call: dict[tuple, list[str]] = {}  # (caller prefix, fx call node) -> layer choices inside
        self.specializations: dict[Any, None] = {}  # branches taken at compile time (ordered set)

    def note_specializations(self, found: list) -> None:
        for item in found:
            self.specializations.setdefault(item, None)

    def check_constant(self, cx: Converter, value: Any) -> None:
        self.patterns.check_constant(cx, value)

    def call_submodule(self, cx: Converter, module: nn.Module, path: str, node: Any, args: tuple, kwargs: dict) -> Any:
        from .scopes import call_submodule

        return call_submodule(cx, self, module, path, node, args, kwargs)

    def owner(self, module: nn.Module) -> Recognizer | None:
        key = id(module)
        if key not in self._owner:
            self._owner[key] = next((r for r in self.recognizers if r.claims(module)), None)
        return self._owner[key]

    def claims(self, module: nn.Module) -> bool:
        return self.owner(module) is not None

    def lift(self, cx: Converter, module: nn.Module, path: str, fx_node: Any, args: tuple, kwargs: dict) -> Any:
        result = self.owner(module).lift(cx, module, path, fx_node, args, kwargs)
        if not isinstance(result, V):
            raise ChoiceError(f"recognizer {self.owner(module).name!r} returned no IR value for {path!r}")
        return result

    @contextlib.contextmanager
    def fixed(self, model: nn.Module, by_path: Mapping[str, Any]) -> Iterator[nn.Module]:
        """Fix every claimed module of `model` by module path (the reference forward).

        Each recognizer fixes only the modules it owns (claimed first), as in the lift.
        """
        modules = dict(model.named_modules())
        with contextlib.ExitStack() as stack:
            for recognizer in self.recognizers:
                mine = {path: decision for path, decision in by_path.items()
                        if path not in modules or self.owner(modules[path]) is recognizer}
                stack.enter_context(recognizer.fixed(model, mine))
            stack.enter_context(self.patterns.fixed(model, by_path))
            yield model
