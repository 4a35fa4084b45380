"""Recognizer for supernets written as DARTS's reference code writes them (and its many forks).

Structure recognized, without importing anything from DARTS:
- a mixed op is a module with an `_ops` ModuleList whose `forward(x, weights)` takes the mixing weights;
- the candidate names are a `PRIMITIVES` list as long as `_ops` (an attribute of the op, or a global of
  the module defining its class, where DARTS's `from genotypes import PRIMITIVES` puts it); `none` is
  the zero op wherever it stands (DARTS lists it first);
- the weights are `softmax(alphas, dim=-1)[i]` (or `softmax(alphas[i], dim=-1)`) of a tensor attribute
  `alphas` of the network, usually a plain tensor. The lift follows the fx graph from the `weights`
  argument back to that tensor, so the logits are `alphas[i]` and the label is `"alphas_normal[3]"`:
  every normal cell reads the same rows, so they share labels and decisions, as in DARTS.

User-given logits (`arch_params`) are keyed by the alphas attribute (`{"alphas_normal": matrix}`).
The validation reference runs each `MixedOp`'s own forward with one-hot weights on its chosen op, or
zero weights where `finalize` dropped its edge.
"""

from __future__ import annotations

import functools
import inspect
import operator
import sys
from collections.abc import Mapping
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ..errors import ChoiceError
from ..module_tree import has_member, member
from .convert import fetch_attr, origin_of
from .mixtures import is_plain_mixture
from .origins import weight_vector
from .mixed_op import MixedOpCall, MixedOpRecognizer, one_hot
from .recognizers import register_recognizer

_SOFTMAX_FUNCTIONS = (F.softmax, torch.softmax)
_NAMES_ATTRIBUTES = ("PRIMITIVES", "primitives", "_primitives")


@functools.lru_cache(maxsize=None)
def _forward_parameters(cls: type) -> tuple[str, ...] | None:
    """Names of `cls.forward`'s parameters after `self`, or None if it takes *args / **kwargs."""
    try:
        params = list(inspect.signature(cls.forward).parameters.values())[1:]
    except (TypeError, ValueError):
        return None
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return None
    return tuple(p.name for p in params)


def primitive_names(module: nn.Module, n_ops: int) -> list[str] | None:
    """The candidate names of a mixed op: a `PRIMITIVES`-like list of length `n_ops`, found on the op,
    its class, or the module that defines its class."""
    places = [module, sys.modules.get(type(module).__module__)]
    for place in places:
        for attribute in _NAMES_ATTRIBUTES:
            names = getattr(place, attribute, None)
            if isinstance(names, (list, tuple)) and len(names) == n_ops and all(isinstance(n, str) for n in names):
                return list(names)
    return None


def _is_int_getitem(node: Any) -> bool:
    return (isinstance(node, fx.Node) and node.op == "call_function" and node.target is operator.getitem
            and isinstance(node.args[1], int))


def _softmax_input(node: Any) -> tuple[fx.Node, Any] | None:
    """(input, dim) when `node` is a softmax call, else None."""
    if not isinstance(node, fx.Node):
        return None
    if node.op == "call_function" and node.target in _SOFTMAX_FUNCTIONS:
        args = list(node.args)
    elif node.op == "call_method" and node.target == "softmax":
        args = list(node.args)
    else:
        return None
    dim = args[1] if len(args) > 1 else node.kwargs.get("dim")
    return args[0], dim


def alphas_row(node: Any) -> tuple[str, int | None, Any, bool] | None:
    """Where mixing weights come from: (get_attr target, row, softmax dim, row taken before the softmax).

    Matches softmax(alphas, dim)[row], softmax(alphas[row], dim) and softmax(alphas, dim) (row None);
    None for anything else.
    """
    row = None
    if _is_int_getitem(node):
        node, row = node.args
    softmax = _softmax_input(node)
    if softmax is None:
        return None
    node, dim = softmax
    row_first = row is None and _is_int_getitem(node)
    if row_first:
        node, row = node.args
    if not (isinstance(node, fx.Node) and node.op == "get_attr"):
        return None
    return node.target, row, dim, row_first


@register_recognizer
class DartsReferenceMixedOps(MixedOpRecognizer):
    """DARTS reference `MixedOp`s: `_ops` + `forward(x, weights)`, logits traced back through the softmax."""

    name = "darts-reference"
    family = "darts"
    zero_name = "none"

    def claims(self, module: nn.Module) -> bool:
        if not isinstance(member(module, "_ops"), nn.ModuleList):
            return False
        params = _forward_parameters(type(module))
        return (params is not None and len(params) == 2 and not has_member(module, "_alphas")
                and is_plain_mixture(module))

    def candidates(self, module: nn.Module) -> Mapping[str, nn.Module]:
        ops = list(module._ops)
        names = primitive_names(module, len(ops))
        if names is None:
            raise ChoiceError(
                f"{type(module).__name__} has {len(ops)} candidate ops in `_ops` but nascompile found no list of "
                f"{len(ops)} candidate names for them: define PRIMITIVES (as DARTS's genotypes.py does) in the module "
                f"{type(module).__module__!r} or as an attribute of the op")
        if len(set(names)) != len(names):
            raise ChoiceError(f"{type(module).__name__}'s PRIMITIVES {names} name a candidate twice")
        return dict(zip(names, ops))

    def _bound(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[Any, Any]:
        """(x, weights) from a call `op(x, weights)`, however the arguments were passed."""
        x_name, w_name = _forward_parameters(type(module))
        values = dict(zip((x_name, w_name), args)) | kwargs
        if set(values) != {x_name, w_name}:
            raise ChoiceError(f"{type(module).__name__} must be called as op({x_name}, {w_name})")
        return values[x_name], values[w_name]

    def inputs(self, module: nn.Module, args: tuple, kwargs: dict) -> list[Any]:
        return [self._bound(module, args, kwargs)[0]]

    def arch_logits(self, module: nn.Module, call: MixedOpCall) -> tuple[str, torch.Tensor]:
        """Follow `weights` back to `softmax(alphas)[row]` (or FairDARTS's `sigmoid(alphas)[row]`,
        `origins.weight_vector`), across modules: label `alphas[row]`, logits `alphas[row]`."""
        weights = self._bound(module, call.args, call.kwargs)[1]
        fx_weights = self._bound(module, call.fx_node.args, call.fx_node.kwargs)[1]
        where = f"mixed op {call.path!r}"
        vector = weight_vector(origin_of(call.cx, fx_weights))
        if vector is None or not isinstance(weights, torch.Tensor):
            raise ChoiceError(
                f"{where} is called with weights that are not softmax(alphas, dim=-1)[i] (or sigmoid) of a tensor attribute "
                f"(they come from {fx_weights}); nascompile reads the architecture logits behind that softmax")
        logits = vector[1]
        alphas = fetch_attr(call.cx.model, logits.path)
        own = logits.value_of(alphas)
        if own.dim() != 1:
            raise ChoiceError(f"{where}: the weights are a softmax of {logits.label!r}, which is not one vector of "
                              "logits (one row per edge)")
        fn = vector[0]
        expected = torch.softmax(own.detach(), -1) if fn == "softmax" else torch.sigmoid(own.detach())
        if own.shape != weights.shape or not (torch.equal(expected, weights)  # the usual case, and 10x cheaper
                                              or torch.allclose(expected, weights, atol=1e-6)):
            raise ChoiceError(f"{where}: its weights are not {fn}({logits.label})")
        self._weighting[call.path] = fn
        given = call.arch_params.take(logits.path, alphas.shape, f"the alphas {logits.path!r} of {call.path!r}")
        if given is not None:
            own = logits.value_of(given)
        return logits.label, own

    def __init__(self) -> None:
        self._weighting: dict[str, str] = {}  # mixed-op path -> softmax | sigmoid (FairDARTS)

    def extra_attrs(self, module: nn.Module, call: MixedOpCall) -> dict[str, Any]:
        if self._weighting.get(call.path) == "sigmoid":
            return {"weighting": "sigmoid", "family": "fair-darts"}
        return {}

    def run_fixed(self, module: nn.Module, forward: Any, chosen: int | None, args: tuple, kwargs: dict) -> Any:
        """The op's own forward with one-hot weights on the chosen op (all zeros for a dropped edge)."""
        x, weights = self._bound(module, args, kwargs)
        return forward(x, one_hot(len(module._ops), chosen, like=weights))
