"""Example inputs that are not a flat tuple of tensors: a forward taking a list of hidden states.

DARTS's recurrent model is called as `model(tokens, [hidden])`. The compiled graph takes one input per
tensor, in order (`input`, `hidden_0`); the structure is kept so that the model's own forward (the lift's
root binding, the validation reference) is called with the nesting it was written for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .errors import InputShapeError

Structure = Any  # None: one tensor; (list|tuple, [structures]): a sequence of them


def flatten_inputs(example_inputs: Any) -> tuple[tuple[torch.Tensor, ...], list[Structure] | None]:
    """(the tensors in order, the structure of each top-level input; None when every input is a tensor)."""
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,), None
    if not isinstance(example_inputs, Sequence) or isinstance(example_inputs, str):
        raise InputShapeError("example_inputs must be a tensor or a tuple of tensors, e.g. (torch.randn(1, 3, 32, 32),)")
    flat: list[torch.Tensor] = []
    structure = [_flatten(x, flat, depth=0) for x in example_inputs]
    return tuple(flat), (None if all(s is None for s in structure) else structure)


def _flatten(value: Any, flat: list, depth: int) -> Structure:
    if isinstance(value, torch.Tensor):
        flat.append(value)
        return None
    if isinstance(value, (list, tuple)) and value and depth < 4:
        return (type(value), [_flatten(v, flat, depth + 1) for v in value])
    raise InputShapeError("example_inputs must be tensors or (nested) lists of tensors, e.g. (tokens, [hidden]); "
                          f"got {type(value).__name__}")


def unflatten_inputs(flat: Sequence[torch.Tensor], structure: list[Structure] | None) -> tuple:
    """The model's call arguments from the flat tensors (the inverse of `flatten_inputs`)."""
    if structure is None:
        return tuple(flat)
    it = iter(flat)
    return tuple(_build(s, it) for s in structure)


def _build(structure: Structure, it) -> Any:
    if structure is None:
        return next(it)
    kind, items = structure
    return kind(_build(s, it) for s in items)


def leaf_names(name: str, structure: Structure) -> list[str]:
    """Graph input names for one top-level input: `hidden` -> `hidden_0`, `hidden_1`, ..."""
    if structure is None:
        return [name]
    return [leaf for i, s in enumerate(structure[1]) for leaf in leaf_names(f"{name}_{i}", s)]
