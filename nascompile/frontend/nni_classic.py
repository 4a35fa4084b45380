"""Recognizer for NNI's classic NAS mutables (`nni.nas.pytorch.mutables`), without importing NNI.

Recognized by their attributes:
- a layer choice has a string `key`, `reduction`, `return_mask` and its candidates as child modules
  (in order); DartsMutator adds one zero-op logit after them, so its logits have `len + 1` entries;
- an input choice has a string `key`, `n_candidates`, `choose_from`, `n_chosen`, `reduction` and
  `return_mask`, and is called with a list (or a dict keyed by `choose_from`) of tensors.

Keys are labels: mutables sharing a key share logits and decisions, as in NNI. The logits of a key come
from the user's `arch_params` (the mutator's `choices`: key -> logits; `--alphas FILE` on the command
line), else from the `DartsMutator` that NNI attaches to each mutable (`mutable.mutator.choices[key]`).
Decisions then follow `DartsMutator.sample_final` (the `darts-choice` pass).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .. import nn as ncnn
from ..errors import ChoiceError
from ..module_tree import has_member, member
from .convert import Converter, V
from .mixed_op import MixedOpCall, MixedOpRecognizer
from .recognizers import register_recognizer

_INPUT_CHOICE_ATTRIBUTES = ("n_candidates", "choose_from", "n_chosen", "reduction", "return_mask")


def _has_key(module: nn.Module) -> bool:
    return isinstance(member(module, "key"), str)


def is_input_choice(module: nn.Module) -> bool:
    return _has_key(module) and all(has_member(module, a) for a in _INPUT_CHOICE_ATTRIBUTES)


def is_layer_choice(module: nn.Module) -> bool:
    return (_has_key(module) and has_member(module, "reduction") and has_member(module, "return_mask")
            and not has_member(module, "n_candidates") and len(module._modules) > 0)


def _zero_name(names: list[str]) -> str:
    """Display name of DartsMutator's extra zero slot, distinct from the candidates' names."""
    name = ncnn.ZERO_NAME
    while name in names:
        name = f"_{name}"
    return name


@register_recognizer
class NniClassicMutables(MixedOpRecognizer):
    """NNI classic `LayerChoice` -> `layer_choice`, `InputChoice` -> `input_choice`."""

    name = "nni-classic"
    family = "nni2"
    zero_name = None  # the zero op is DartsMutator's implicit last slot

    def claims(self, module: nn.Module) -> bool:
        return _has_key(module) and (is_layer_choice(module) or is_input_choice(module))

    # --- layer choices ----------------------------------------------------------------------------
    def candidates(self, module: nn.Module) -> Mapping[str, nn.Module | None]:
        named = {name: child for name, child in module._modules.items() if child is not None}
        return named | {_zero_name(list(named)): None}

    def arch_logits(self, module: nn.Module, call: MixedOpCall) -> tuple[str, torch.Tensor]:
        key = module.key
        shape = (len(self.candidates(module)),)
        where = f"layer choice {key!r} ({call.path}, {shape[0] - 1} candidates + the zero op)"
        if module.return_mask:
            raise ChoiceError(f"{where} has return_mask=True; nascompile compiles choices that return a tensor")
        given = call.arch_params.take(key, shape, where)
        if given is not None:
            return key, given
        choices = getattr(module.__dict__.get("mutator"), "choices", None)  # a ParameterDict in NNI
        if isinstance(choices, (Mapping, nn.ParameterDict)) and key in choices:
            logits = choices[key]
            if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != shape:
                raise ChoiceError(f"the mutator's logits for {where} have shape "
                                  f"{list(getattr(logits, 'shape', []))}, expected {list(shape)}")
            return key, logits
        raise ChoiceError(f"no logits for {where}: pass the DartsMutator's choices as arch_params= (API) or "
                          "--alphas FILE (command line), or attach the mutator to the model")

    # --- input choices ----------------------------------------------------------------------------
    def lift(self, cx: Converter, module: nn.Module, path: str, fx_node: Any, args: tuple, kwargs: dict) -> V:
        if not is_input_choice(module):
            return super().lift(cx, module, path, fx_node, args, kwargs)
        key = module.key
        where = f"input choice {key!r} ({path})"
        if module.return_mask:
            raise ChoiceError(f"{where} has return_mask=True; nascompile compiles choices that return a tensor")
        ncnn.check_n_chosen(module.n_chosen, module.n_candidates, where)
        if module.reduction not in ncnn.REDUCTIONS:
            raise ChoiceError(f"{where} has reduction {module.reduction!r}, not one of {ncnn.REDUCTIONS}")
        inputs = self._input_list(module, where, *args, **kwargs)
        if any(x is None for x in inputs):
            raise cx.fail(f"{where} receives None among its inputs")
        return cx.emit("input_choice", inputs, attrs={
            "label": key, "n_chosen": module.n_chosen, "choose_from": list(module.choose_from),
            "reduction": module.reduction})

    @staticmethod
    def _input_list(module: nn.Module, where: str, *args: Any, **kwargs: Any) -> list[Any]:
        """The inputs in `choose_from` order: NNI accepts a list, or a dict keyed by `choose_from`."""
        if len(args) + len(kwargs) != 1:
            raise ChoiceError(f"{where} is called with {len(args) + len(kwargs)} arguments; it takes one list or dict")
        inputs = next(iter(kwargs.values())) if kwargs else args[0]
        if isinstance(inputs, Mapping):
            missing = [k for k in module.choose_from if k not in inputs]
            if missing:
                raise ChoiceError(f"{where} is called with a dict lacking its choose_from keys {missing}")
            inputs = [inputs[k] for k in module.choose_from]
        if not isinstance(inputs, (list, tuple)) or len(inputs) != module.n_candidates:
            raise ChoiceError(f"{where} must be called with a list of its {module.n_candidates} inputs")
        return list(inputs)

    # --- the validation reference -----------------------------------------------------------------
    def fixed_forward(self, module: nn.Module, path: str, decision: Any) -> Any:
        """Layer choices run their chosen candidate; input choices reduce their kept inputs."""
        if not is_input_choice(module):
            return super().fixed_forward(module, path, decision)
        where = f"input choice {module.key!r} ({path})"

        def fixed_forward(*args: Any, **kwargs: Any) -> Any:
            inputs = self._input_list(module, where, *args, **kwargs)
            return ncnn.reduce_inputs([inputs[i] for i in decision], module.reduction)

        return fixed_forward
