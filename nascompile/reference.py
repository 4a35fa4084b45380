"""The validation reference: the supernet's own forward with the decisions fixed.

Each choice module computes only its chosen candidate (a dropped edge computes zeros), with the
supernet's own modules and weights, in eval mode. The emitted model must match it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .frontend.convert import flatten_outputs
from .frontend.recognizers import ChoiceLifter
from .module_tree import eval_mode

__all__ = ["eval_mode", "reference_outputs"]


@torch.no_grad()
def reference_outputs(model: nn.Module, lifter: ChoiceLifter, by_path: Mapping[str, Any],
                      inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Flattened outputs of `model(*inputs)` with every choice fixed as `by_path` says."""
    from .inputs import unflatten_inputs

    with eval_mode(model), lifter.fixed(model, by_path):
        return flatten_outputs(model(*unflatten_inputs(inputs, getattr(lifter, "input_structure", None))))
