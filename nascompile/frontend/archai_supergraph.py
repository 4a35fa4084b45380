"""Recognizer for Archai supergraph models (`archai.supergraph`, DARTS search), without importing Archai.

Structure recognized: a mixed op is a module with an `_ops` ModuleList, its alphas *inside* the op as
`_alphas` (a one-element list holding the logits tensor, so PyTorch does not register it twice), and
a `PRIMITIVES` list naming the ops, `none` last. Cells whose alphas come from a template cell hold the
template's tensor, so the label — the alphas' parameter name, e.g.
`cells.0.dag.2.1._op.alphas_arch_param` — is shared, as are the decisions. A cell node is a `sum` over
its `DagEdge`s, which `finalize` prunes; the family `archai` selects Archai's own rule with no flags
(`Finalizers`: an op's rank is its top non-zero logit, `MixedOp.finalize`).

User-given logits (`arch_params`) are keyed by the label. The validation reference runs each op's own
forward with its alphas replaced by logits whose softmax is one-hot on the chosen op (on `none` where
its edge was dropped: the edge then computes Archai's zero op).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..errors import ChoiceError
from ..module_tree import member
from .darts_reference import primitive_names
from .mixed_op import MixedOpCall, MixedOpRecognizer
from .recognizers import register_recognizer

_MISSING = object()


def _alphas_of(module: nn.Module) -> Any:
    return member(module, "_alphas")


@register_recognizer
class ArchaiMixedOps(MixedOpRecognizer):
    """Archai `MixedOp`s: `_ops` + `_alphas` (one tensor) + `PRIMITIVES`."""

    name = "archai-supergraph"
    family = "archai"
    zero_name = "none"

    def claims(self, module: nn.Module) -> bool:
        if not isinstance(member(module, "_ops"), nn.ModuleList):
            return False
        alphas = _alphas_of(module)
        return (isinstance(alphas, (list, tuple, nn.ParameterList)) and len(alphas) == 1
                and isinstance(alphas[0], torch.Tensor))

    def candidates(self, module: nn.Module) -> Mapping[str, nn.Module]:
        ops = list(module._ops)
        names = primitive_names(module, len(ops))
        if names is None or len(set(names)) != len(names):
            raise ChoiceError(f"{type(module).__name__} has {len(ops)} ops in `_ops` but no PRIMITIVES list of "
                              f"{len(ops)} distinct names (Archai's MixedOp has one as a class attribute)")
        return dict(zip(names, ops))

    def logits(self, module: nn.Module, call: MixedOpCall) -> torch.Tensor:
        return _alphas_of(module)[0]

    def run_fixed(self, module: nn.Module, forward: Any, chosen: int | None, args: tuple, kwargs: dict) -> Any:
        """The op's own forward with alphas whose softmax is one-hot on the chosen op (or on `none`)."""
        slot = chosen if chosen is not None else self.zero_slot(module)
        if slot is None:  # no zero op to stand for a dropped edge
            return super().run_fixed(module, forward, chosen, args, kwargs)
        own = _alphas_of(module)[0]
        logits = torch.full(own.shape, float("-inf"), dtype=own.dtype, device=own.device)
        logits[slot] = 0.0  # softmax: exactly 1 here, exactly 0 elsewhere
        saved = module.__dict__.get("_alphas", _MISSING)
        module.__dict__["_alphas"] = [logits]  # the instance dict shadows a registered ParameterList too
        try:
            return forward(*args, **kwargs)
        finally:
            if saved is _MISSING:
                del module.__dict__["_alphas"]
            else:
                module.__dict__["_alphas"] = saved
