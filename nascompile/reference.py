"""The validation reference: the supernet's own forward with the decisions fixed.

Each choice module computes only its chosen candidate (a dropped edge computes zeros), with the
supernet's own modules and weights, in eval mode. The emitted model must match it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .frontend.convert import flatten_outputs
from .frontend.recognizers import ChoiceLifter
from .module_tree import submodules


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put `model` in eval mode for the duration, restoring every module's own flag afterwards.

    Only modules in training mode are touched (a supernet holds thousands of candidate modules, usually
    all in eval mode already), so a model in eval mode costs one walk over its modules.
    """
    training = [m for m in submodules(model) if m.training]
    if training:
        model.eval()
    try:
        yield model
    finally:
        for module in training:
            module.training = True


@torch.no_grad()
def reference_outputs(model: nn.Module, lifter: ChoiceLifter, by_path: Mapping[str, Any],
                      inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Flattened outputs of `model(*inputs)` with every choice fixed as `by_path` says."""
    from .inputs import unflatten_inputs

    with eval_mode(model), lifter.fixed(model, by_path):
        return flatten_outputs(model(*unflatten_inputs(inputs, getattr(lifter, "input_structure", None))))
