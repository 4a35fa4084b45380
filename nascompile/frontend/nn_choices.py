"""Recognizer for supernets written with `nascompile.nn` (LayerChoice / InputChoice)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from .. import nn as ncnn
from ..errors import ChoiceError
from .convert import Converter, V
from .recognizers import register_recognizer


@register_recognizer
class NascompileChoices:
    """`nascompile.nn.LayerChoice` -> `layer_choice`, `nascompile.nn.InputChoice` -> `input_choice`."""

    name = "nascompile.nn"

    def claims(self, module: nn.Module) -> bool:
        return isinstance(module, (ncnn.LayerChoice, ncnn.InputChoice))

    def lift(self, cx: Converter, module: nn.Module, path: str, fx_node: Any, args: tuple, kwargs: dict) -> V:
        if kwargs:
            raise cx.fail(f"{type(module).__name__} is called with keyword arguments {sorted(kwargs)}")
        label = module.label if module.label is not None else path
        if isinstance(module, ncnn.LayerChoice):
            names = list(module.names)
            given = cx.choice_lifter.arch_params.take(label, module.alpha.shape, f"layer choice {path!r}")
            logits = module.alpha if given is None else given
            if tuple(logits.shape) != (len(names) + 1,):
                raise ChoiceError(
                    f"layer choice {label!r} ({path}) has alpha of shape {list(logits.shape)} but "
                    f"{len(names)} candidates: it needs {len(names) + 1} logits (the last for the zero op)")
            return cx.emit("layer_choice", list(args), params={"logits": logits.detach()}, attrs={
                "label": label, "candidates": names + [ncnn.ZERO_NAME],
                "modules": [f"{path}.candidates.{name}" for name in names] + [None], "zero": len(names)})
        if len(args) != 1 or not isinstance(args[0], (list, tuple)):
            raise cx.fail("an InputChoice is called with one list of tensors")
        inputs = list(args[0])
        if len(inputs) != module.n_candidates:
            raise ChoiceError(f"input choice {label!r} ({path}) has n_candidates={module.n_candidates} but is "
                              f"called with {len(inputs)} inputs; pass one tensor per candidate input")
        ncnn.check_n_chosen(module.n_chosen, module.n_candidates, f"input choice {label!r} ({path})")
        if any(x is None for x in inputs):
            raise cx.fail(f"input choice {label!r} receives None among its inputs")
        return cx.emit("input_choice", inputs, attrs={
            "label": label, "n_chosen": module.n_chosen, "choose_from": list(module.choose_from),
            "reduction": module.reduction})

    def fixed(self, model: nn.Module, by_path: Mapping[str, Any]):
        return ncnn.fixed(model, {}, by_path)
