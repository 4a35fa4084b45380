"""Architecture parameters given by the user: `arch_params=` in the API, `--alphas FILE` on the command line.

A mapping from a key to logits. Which key names which logits depends on the supernet family: an NNI
mutable's `key`, a `nascompile.nn` label, a DARTS network's alphas attribute (`alphas_normal`, a matrix
with one row per edge), an Archai alphas parameter's name. Recognizers `take` the logits they need by
key; keys that no choice of the model asked for are an error, so a typo never goes unnoticed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import ChoiceError, NascompileError, WeightsError

#: Key prefix of a `DartsMutator.state_dict()` (its `choices` ParameterDict), stripped when loading.
MUTATOR_PREFIX = "choices."


class ArchParams:
    """User-given logits by key; remembers which keys the lift asked for and which it used."""

    def __init__(self, values: Mapping[str, Any] | None = None, source: str | None = None):
        if values is not None and not isinstance(values, Mapping):
            raise ChoiceError(f"arch_params must be a mapping of keys to logits, got {type(values).__name__}")
        self.values = dict(values or {})
        self.source = source  # the file they came from, for error messages
        self.asked: list[str] = []
        self.used: set[str] = set()
        self._tensors: dict[str, torch.Tensor] = {}

    def __bool__(self) -> bool:
        return bool(self.values)

    def error(self, message: str) -> NascompileError:
        """A file that does not fit the model is a weights error; a mapping given in the API a choice error."""
        if self.source is not None:
            return WeightsError(f"alphas file {self.source!r}: {message}")
        return ChoiceError(f"arch_params: {message}")

    def take(self, key: str, shape: tuple[int, ...] | torch.Size, where: str) -> torch.Tensor | None:
        """The user's logits for `key` (checked to have `shape`), or None when none were given.

        `where` names the choice asking (module path), for the error message.
        """
        if key not in self.asked:
            self.asked.append(key)
        if key not in self.values:
            return None
        tensor = self._tensors.get(key)
        if tensor is None:
            tensor = self._tensors[key] = self._as_tensor(key, self.values[key])
        if tuple(tensor.shape) != tuple(shape):
            raise self.error(f"{key!r} has shape {list(tensor.shape)}, but {where} expects {list(shape)}")
        self.used.add(key)
        return tensor

    def _as_tensor(self, key: str, value: Any) -> torch.Tensor:
        try:
            tensor = value.detach() if isinstance(value, torch.Tensor) else torch.tensor(value)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise self.error(f"{key!r} is not a list of numbers or a tensor ({exc})") from None
        if tensor.is_floating_point():
            return tensor.cpu()
        if tensor.dtype == torch.bool or tensor.is_complex():
            raise self.error(f"{key!r} holds {tensor.dtype} values, not logits")
        return tensor.to(torch.get_default_dtype()).cpu()

    def check_all_used(self) -> None:
        """Refuse keys no choice of the model asked for (a typo, or logits for another model)."""
        unknown = [key for key in self.values if key not in self.used and key not in self.asked]
        if unknown:
            known = ", ".join(repr(k) for k in self.asked[:12]) + (" ..." if len(self.asked) > 12 else "")
            raise self.error(f"{len(unknown)} key(s) match no choice of the model: "
                             f"{', '.join(repr(k) for k in unknown[:8])}{' ...' if len(unknown) > 8 else ''}; "
                             f"the model's choices take: {known or 'no logits at all'}")


def as_arch_params(values: Mapping[str, Any] | ArchParams | None) -> ArchParams:
    if isinstance(values, ArchParams):
        return values
    return ArchParams(values)


def load_alphas(path: str | Path) -> ArchParams:
    """Read an alphas file: a `.json` object of key -> (nested) list of numbers, or a torch state dict.

    The state dict is loaded with `torch.load(weights_only=True)`; a `DartsMutator.state_dict()` works
    as it is (its `choices.` key prefix is dropped).
    """
    from ..jsonio import loads_strict
    from ..spec import safe_load

    path = Path(path)
    source = str(path)
    if path.suffix.lower() == ".json":
        if not path.is_file():
            raise WeightsError(f"alphas file {source!r} does not exist")
        try:
            values = loads_strict(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise WeightsError(f"cannot read alphas file {source!r} as JSON: {exc}") from None
    else:
        values = safe_load(path, what="alphas")
        if isinstance(values, Mapping) and isinstance(values.get("state_dict"), Mapping):
            values = values["state_dict"]
    if not isinstance(values, Mapping) or not all(isinstance(k, str) for k in values):
        raise WeightsError(f"alphas file {source!r} must hold a mapping of keys to logits, e.g. "
                           '{"normal_n2_p0": [0.1, ...]}')
    if values and all(k.startswith(MUTATOR_PREFIX) for k in values):
        values = {k[len(MUTATOR_PREFIX):]: v for k, v in values.items()}
    return ArchParams(values, source=source)
