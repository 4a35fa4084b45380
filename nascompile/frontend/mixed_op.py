"""`MixedOpRecognizer`: the shared shape of every recognizer for a DARTS mixed op.

A mixed op is a module computing `Σ_i w_i · candidate_i(x)` with `w = softmax(logits)`. A recognizer
for one family says only what differs between families: which modules it claims, the candidates (name
and submodule, in the order of the logits), where the logits live and which label they carry. The
lift (`layer_choice` node), the lookup of user-given logits (`arch_params`) and the validation
reference (`fixed`) are written once, here. The DARTS-reference, Archai and NNI frontends build on it,
and so can a user for their own mixed-op class (see the README):

    @register_recognizer
    class MyMixedOps(MixedOpRecognizer):
        def claims(self, module): return isinstance(module, MyMixedOp)
        def candidates(self, module): return dict(zip(module.names, module.branches))
        def logits(self, module, call): return module.alpha
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from .. import nn as ncnn
from ..errors import ChoiceError
from ..module_tree import paths_of
from .arch_params import ArchParams
from .convert import Converter, V
from .tracer import TensorNames


@dataclass
class MixedOpCall:
    """One call of a claimed module, as the lift sees it: where, the fx node, the converted arguments."""

    cx: Converter
    path: str  # module path in the user's model
    fx_node: fx.Node
    args: tuple
    kwargs: dict

    @property
    def arch_params(self) -> ArchParams:
        return self.cx.choice_lifter.arch_params

    names: Any  # id -> dotted name of the model's tensors (a dict or a lazy `TensorNames`)

    def tensor_name(self, tensor: torch.Tensor) -> str | None:
        """Dotted name of `tensor` in the whole model (first one in module order when shared), if any."""
        return self.names.name_of(tensor) if isinstance(self.names, TensorNames) else self.names.get(id(tensor))


@contextlib.contextmanager
def patched_forward(module: nn.Module, forward: Any) -> Iterator[nn.Module]:
    """Make `module(...)` call `forward` for the duration (an instance attribute shadows the class's)."""
    if "forward" in module.__dict__:
        raise ChoiceError(f"{type(module).__name__} already has a patched forward; is it fixed twice?")
    module.forward = forward
    try:
        yield module
    finally:
        del module.__dict__["forward"]


def one_hot(n: int, chosen: int | None, like: torch.Tensor | None = None) -> torch.Tensor:
    """Mixing weights of a decided op: 1 on the chosen slot, all zeros for a dropped edge."""
    weights = torch.zeros(n) if like is None else torch.zeros(n, dtype=like.dtype, device=like.device)
    if chosen is not None:
        weights[chosen] = 1
    return weights


class MixedOpRecognizer:
    """Base class of recognizers for DARTS mixed ops (see the module docstring).

    Implement `claims`, `candidates` and `logits`; override `label`, `inputs`, `arch_logits` or
    `run_fixed` where a family differs from the defaults.
    """

    name = "mixed-op"
    #: The search family whose decision rule applies (the default rule set; see the IR's layer_choice doc).
    family: str | None = None
    #: Name of the candidate that is DARTS's zero op (`none`), when the op lists it among its candidates.
    #: A slot whose module is None is an implicit zero op (NNI's extra logit) whatever its name.
    zero_name: str | None = "none"

    # --- what a family must say -------------------------------------------------------------------
    def claims(self, module: nn.Module) -> bool:
        raise NotImplementedError

    def candidates(self, module: nn.Module) -> Mapping[str, nn.Module | None]:
        """Candidate name -> submodule of `module`, in the order of the logits (None: implicit zero slot)."""
        raise NotImplementedError

    def logits(self, module: nn.Module, call: MixedOpCall) -> torch.Tensor:
        """The op's own architecture logits, one per candidate."""
        raise NotImplementedError

    # --- defaults a family may override -----------------------------------------------------------
    def label(self, module: nn.Module, call: MixedOpCall, logits: torch.Tensor) -> str:
        """The choice's label: the logits' name in the model (shared logits give one label), else the path."""
        return call.tensor_name(logits) or call.path

    def arch_logits(self, module: nn.Module, call: MixedOpCall) -> tuple[str, torch.Tensor]:
        """(label, logits): the user's `arch_params[label]` when given, else the op's own logits."""
        own = self.logits(module, call)
        if not isinstance(own, torch.Tensor):
            raise ChoiceError(f"recognizer {self.name!r}: logits of {call.path!r} are a {type(own).__name__}, "
                              "not a tensor")
        label = self.label(module, call, own)
        given = call.arch_params.take(label, own.shape, f"mixed op {call.path!r}")
        return label, (own if given is None else given)

    def inputs(self, module: nn.Module, args: tuple, kwargs: dict) -> list[Any]:
        """The values the candidates are applied to (default: the positional arguments)."""
        if kwargs:
            raise ChoiceError(f"{type(module).__name__} is called with keyword arguments {sorted(kwargs)}; "
                              f"recognizer {self.name!r} passes only positional arguments to its candidates")
        return list(args)

    def run_fixed(self, module: nn.Module, forward: Any, chosen: int | None, args: tuple, kwargs: dict) -> Any:
        """The op fixed to slot `chosen` (None: its edge was dropped), for the validation reference.

        Default: run only the chosen candidate; a dropped edge gives zeros shaped like a candidate's
        output. Families whose forward takes the mixing weights override this to run the op's own
        `forward` with one-hot weights instead.
        """
        slots = list(self.candidates(module).values())
        inputs = self.inputs(module, args, kwargs)
        if chosen is not None:
            return slots[chosen](*inputs)
        zero = self.zero_slot(module)
        real = next(m for i, m in enumerate(slots) if m is not None and i != zero)
        return torch.zeros_like(real(*inputs))

    def extra_attrs(self, module: nn.Module, call: MixedOpCall) -> dict[str, Any]:
        """More layer_choice attributes for this call (e.g. `weighting`, `family`); none by default."""
        return {}

    # --- the shared machinery ---------------------------------------------------------------------
    def _model_tensor_names(self, cx: Converter) -> Any:
        """Names of the whole model's tensors, read lazily once per compile (recognizers are made per compile)."""
        root = cx.graph.root
        if root is None:
            return {}
        if getattr(self, "_names_of", None) is None or self._names_of[0] is not root:
            self._names_of = (root, TensorNames(root))
        return self._names_of[1]

    def zero_slot(self, module: nn.Module) -> int | None:
        slots = list(self.candidates(module).items())
        implicit = [i for i, (_, m) in enumerate(slots) if m is None]
        named = [i for i, (name, _) in enumerate(slots) if self.zero_name is not None and name == self.zero_name]
        found = implicit or named
        if len(found) > 1:
            raise ChoiceError(f"recognizer {self.name!r}: {type(module).__name__} has {len(found)} zero slots")
        return found[0] if found else None

    def lift(self, cx: Converter, module: nn.Module, path: str, fx_node: Any, args: tuple, kwargs: dict) -> V:
        call = MixedOpCall(cx, path, fx_node, args, kwargs, self._model_tensor_names(cx))
        slots = list(self.candidates(module).items())
        if not slots:
            raise ChoiceError(f"mixed op {path!r} ({type(module).__name__}) has no candidates")
        label, logits = self.arch_logits(module, call)
        if tuple(logits.shape) != (len(slots),):
            raise ChoiceError(f"mixed op {path!r} (label {label!r}) has {len(slots)} candidates "
                              f"{[name for name, _ in slots]} but logits of shape {list(logits.shape)}")
        local = paths_of(module, {id(m) for _, m in slots if m is not None})
        modules = []
        for name, candidate in slots:
            if candidate is not None and (candidate is module or id(candidate) not in local):
                raise ChoiceError(f"recognizer {self.name!r}: candidate {name!r} of {path!r} is not a submodule of it")
            modules.append(None if candidate is None else f"{path}.{local[id(candidate)]}")
        return cx.emit("layer_choice", self.inputs(module, args, kwargs), params={"logits": logits.detach()},
                       attrs={"label": label, "candidates": [name for name, _ in slots], "modules": modules,
                              "zero": self.zero_slot(module)} | ({"family": self.family} if self.family else {})
                       | self.extra_attrs(module, call))

    @contextlib.contextmanager
    def fixed(self, model: nn.Module, by_path: Mapping[str, Any]) -> Iterator[nn.Module]:
        """Fix every claimed module named in `by_path` (chosen candidate name, or [] for a dropped edge)."""
        with contextlib.ExitStack() as stack:
            for path, module in model.named_modules():
                if path in by_path and self.claims(module):
                    stack.enter_context(patched_forward(module, self.fixed_forward(module, path, by_path[path])))
            yield model

    def fixed_forward(self, module: nn.Module, path: str, decision: Any) -> Any:
        """A forward for `module` fixed to `decision` (a candidate name, or [] for a dropped edge)."""
        chosen = None
        if decision != ncnn.DROPPED:
            names = list(self.candidates(module))
            if decision not in names:
                raise ChoiceError(f"decision {decision!r} for mixed op {path!r} is not one of its candidates {names}")
            chosen = names.index(decision)
        forward = type(module).forward.__get__(module)

        def fixed_forward(*args: Any, **kwargs: Any) -> Any:
            return self.run_fixed(module, forward, chosen, args, kwargs)

        return fixed_forward
