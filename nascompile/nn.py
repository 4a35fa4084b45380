"""Authoring API: the two choice modules a DARTS supernet is written with.

`LayerChoice` is a DARTS mixed op: in search mode it returns the softmax-weighted sum of its
candidates, with one extra logit for the implicit zero op (last slot, as NNI's `DartsMutator` adds
it). `InputChoice` is a cell node choosing among its inputs. Both can be *fixed* to a decision, so the
supernet's own forward computes the discrete network: that is the reference nascompile validates
against.

Choices that carry the same label share one set of logits (DARTS shares alphas across all normal
cells and across all reduction cells). Sharing is set up by `tie_alphas`, which `Supernet` subclasses
call automatically at the end of their `__init__`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .errors import ChoiceError

#: Display name of the implicit zero slot of a `LayerChoice`.
ZERO_NAME = "none"
#: Input-choice reductions, as in NNI's classic `InputChoice`.
REDUCTIONS = ("sum", "mean", "concat", "none")
#: Decision value of a layer choice whose edge was dropped (NNI's exported format).
DROPPED: list = []


def is_plain_int(value: Any) -> bool:
    """An int that is not a bool (True would otherwise pass as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def reduce_inputs(tensors: Sequence[torch.Tensor], reduction: str) -> Any:
    """Reduce the selected inputs of an input choice (shared by the modules and the IR interpreter)."""
    if reduction == "none":
        return list(tensors)
    if not tensors:
        raise ChoiceError("an input choice kept no inputs to reduce")
    if len(tensors) == 1:
        return tensors[0]
    if reduction == "concat":
        return torch.cat(list(tensors), dim=1)
    total = functools.reduce(torch.add, tensors)
    return total / len(tensors) if reduction == "mean" else total


def check_n_chosen(n_chosen: Any, n_candidates: int, where: str) -> None:
    """`n_chosen` keeps that many inputs: None (all of them) or 1..n_candidates; anything else cannot be derived."""
    if n_chosen is not None and (not is_plain_int(n_chosen) or not 1 <= n_chosen <= n_candidates):
        raise ChoiceError(
            f"{where}: n_chosen={n_chosen!r} must be None or an int between 1 and n_candidates={n_candidates} "
            "(None keeps every input)."
        )


class LayerChoice(nn.Module):
    """A DARTS mixed op over named candidate modules plus an implicit zero op.

    `candidates` is a list (names "0", "1", ...) or a mapping name -> module. `alpha` holds one logit per
    candidate plus the zero slot (last), initialised to `1e-3 * randn` as NNI's `DartsMutator` does.

    >>> lc = LayerChoice({"relu": nn.ReLU(), "skip": nn.Identity()}, label="e0")
    >>> lc.names, tuple(lc.alpha.shape)
    (['relu', 'skip'], (3,))
    """

    def __init__(self, candidates: Sequence[nn.Module] | Mapping[str, nn.Module], label: str | None = None):
        super().__init__()
        if isinstance(candidates, Mapping):
            named = [(str(name), module) for name, module in candidates.items()]
        else:
            named = [(str(i), module) for i, module in enumerate(candidates)]
        where = f"LayerChoice(label={label!r})"
        if not named:
            raise ChoiceError(f"{where} has no candidates; give at least one module.")
        for name, module in named:
            if not isinstance(module, nn.Module):
                raise ChoiceError(f"{where}: candidate {name!r} is a {type(module).__name__}, not an nn.Module.")
            if name == ZERO_NAME:
                raise ChoiceError(
                    f"{where}: candidate name {ZERO_NAME!r} is reserved for the implicit zero op "
                    "(the last logit); drop that candidate or rename it."
                )
            if not name or "." in name:
                raise ChoiceError(f"{where}: candidate name {name!r} must be non-empty and contain no '.'.")
        if label is not None and not isinstance(label, str):
            raise ChoiceError(f"LayerChoice label must be a string, got {label!r}.")
        self.label = label
        self.names = [name for name, _ in named]
        self.candidates = nn.ModuleDict()
        for name, module in named:
            try:
                self.candidates[name] = module
            except KeyError as exc:  # ModuleDict refuses names that shadow its own attributes
                raise ChoiceError(f"{where}: candidate name {name!r} cannot be used ({exc}); rename it.") from None
        self.alpha = nn.Parameter(1e-3 * torch.randn(len(named) + 1))
        self._fixed: int | None = None  # index of the chosen candidate, -1 when dropped, None in search

    def __len__(self) -> int:
        return len(self.names)

    def fix(self, choice: str | int | list) -> None:
        """Fix to one candidate (by name or index), or to the zero op with `[]` (edge dropped)."""
        if isinstance(choice, list):
            if choice:
                raise ChoiceError(f"LayerChoice {self.label!r}: a fixed choice is one name or [], got {choice!r}.")
            self._fixed = -1
        elif is_plain_int(choice) and 0 <= choice < len(self.names):
            self._fixed = choice
        elif isinstance(choice, str) and choice in self.names:
            self._fixed = self.names.index(choice)
        else:
            raise ChoiceError(f"LayerChoice {self.label!r} has no candidate {choice!r}; candidates: {self.names}.")

    def unfix(self) -> None:
        """Back to the search-mode mixture."""
        self._fixed = None

    def forward(self, *args: Any) -> torch.Tensor:
        if self._fixed is None:
            weights = torch.softmax(self.alpha, dim=-1)
            outputs = [weights[i] * module(*args) for i, module in enumerate(self.candidates.values())]
            return functools.reduce(torch.add, outputs)
        if self._fixed < 0:
            # A dropped edge computes the zero op; shape it like a candidate's output.
            return torch.zeros_like(next(iter(self.candidates.values()))(*args))
        return self.candidates[self.names[self._fixed]](*args)

    def extra_repr(self) -> str:
        return f"label={self.label!r}, candidates={self.names}"


class InputChoice(nn.Module):
    """A node choosing `n_chosen` of its `n_candidates` inputs, reduced by `reduction`.

    `choose_from` names, per input, the label of the layer choice producing it: NNI's `DartsMutator`
    keeps the inputs whose layer choices have the strongest edges. `n_chosen=None` keeps all inputs.
    """

    def __init__(
        self,
        n_candidates: int | None = None,
        n_chosen: int | None = None,
        label: str | None = None,
        choose_from: Sequence[str | None] | None = None,
        reduction: str = "sum",
    ):
        super().__init__()
        where = f"InputChoice(label={label!r})"
        if n_candidates is None:
            if choose_from is None:
                raise ChoiceError(f"{where} needs n_candidates or choose_from.")
            n_candidates = len(choose_from)
        if not is_plain_int(n_candidates) or n_candidates < 1:
            raise ChoiceError(f"{where}: n_candidates must be a positive int, got {n_candidates!r}.")
        if choose_from is None:
            choose_from = [None] * n_candidates
        choose_from = list(choose_from)
        if len(choose_from) != n_candidates:
            raise ChoiceError(
                f"{where}: choose_from has {len(choose_from)} labels but n_candidates is {n_candidates}."
            )
        check_n_chosen(n_chosen, n_candidates, where)
        if reduction not in REDUCTIONS:
            raise ChoiceError(f"{where}: reduction {reduction!r} is not one of {', '.join(REDUCTIONS)}.")
        self.label = label
        self.n_candidates = n_candidates
        self.n_chosen = n_chosen
        self.choose_from = choose_from
        self.reduction = reduction
        self._fixed: list[int] | None = None

    def fix(self, kept: Sequence[int]) -> None:
        """Fix to the given input positions."""
        kept = sorted(int(i) for i in kept)
        if any(not 0 <= i < self.n_candidates for i in kept) or len(set(kept)) != len(kept):
            raise ChoiceError(f"InputChoice {self.label!r}: bad kept positions {kept} for {self.n_candidates} inputs.")
        self._fixed = kept

    def unfix(self) -> None:
        self._fixed = None

    def forward(self, inputs: Sequence[torch.Tensor]) -> Any:
        inputs = list(inputs)
        if len(inputs) != self.n_candidates:
            raise ChoiceError(
                f"InputChoice {self.label!r} expects {self.n_candidates} inputs, got {len(inputs)}."
            )
        kept = range(self.n_candidates) if self._fixed is None else self._fixed
        return reduce_inputs([inputs[i] for i in kept], self.reduction)

    def extra_repr(self) -> str:
        return f"label={self.label!r}, n_chosen={self.n_chosen}, reduction={self.reduction!r}"


def layer_choices(model: nn.Module) -> Iterator[tuple[str, LayerChoice]]:
    """(module path, module) of every `LayerChoice` in `model`, in module order."""
    for path, module in model.named_modules():
        if isinstance(module, LayerChoice):
            yield path, module


def tie_alphas(model: nn.Module) -> nn.Module:
    """Make all layer choices with the same label share the first one's `alpha` parameter.

    Choices sharing a label must have the same candidate names; otherwise their decisions could not be
    one. Returns `model` for chaining.
    """
    first: dict[str, tuple[str, LayerChoice]] = {}
    for path, choice in layer_choices(model):
        if choice.label is None:
            continue
        if choice.label not in first:
            first[choice.label] = (path, choice)
            continue
        owner_path, owner = first[choice.label]
        if owner.names != choice.names:
            raise ChoiceError(
                f"layer choices {owner_path!r} and {path!r} share label {choice.label!r} but have different "
                f"candidates ({owner.names} vs {choice.names}); give them distinct labels."
            )
        if choice.alpha is not owner.alpha:
            choice.alpha = owner.alpha
    return model


class Supernet(nn.Module):
    """Base class for supernets: ties the alphas of same-label choices once construction is done."""

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def init_then_tie(self: nn.Module, *args: Any, **kw: Any) -> None:
            init(self, *args, **kw)
            tie_alphas(self)

        cls.__init__ = init_then_tie


def _input_positions(choice: InputChoice, kept: Sequence[str | int]) -> list[int]:
    """Map a decision's kept inputs (labels from `choose_from`, or positions) to positions."""
    positions = []
    for item in kept:
        if is_plain_int(item):
            positions.append(item)
        elif item in choice.choose_from:
            positions.append(choice.choose_from.index(item))
        else:
            raise ChoiceError(
                f"decision for input choice {choice.label!r} keeps {item!r}, which is not in its choose_from "
                f"{choice.choose_from}."
            )
    return positions


@contextlib.contextmanager
def fixed(model: nn.Module, decisions: Mapping[str, Any], by_path: Mapping[str, Any] | None = None):
    """Temporarily fix every choice in `model` to `decisions` (NNI exported-architecture format).

    `decisions` maps labels to a candidate name (or `[]`) for layer choices and to the kept inputs
    (labels or positions) for input choices. `by_path` overrides single modules by module path, for
    decisions that differ between instances of one label. Choices left undecided stay in search mode.
    """
    by_path = dict(by_path or {})
    touched: list[LayerChoice | InputChoice] = []
    try:
        for path, module in model.named_modules():
            if not isinstance(module, (LayerChoice, InputChoice)):
                continue
            label = module.label if module.label is not None else path
            if path in by_path:
                decision = by_path[path]
            elif label in decisions:
                decision = decisions[label]
            else:
                continue
            if isinstance(module, LayerChoice):
                module.fix(decision)
            else:
                module.fix(_input_positions(module, decision))
            touched.append(module)
        yield model
    finally:
        for module in touched:
            module.unfix()
