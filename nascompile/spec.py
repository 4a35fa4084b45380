"""Loading what the CLI is pointed at: a SPEC (model factory) and weight files.

SPEC is `path/to/file.py` (its `build()` is called) or `package.module:factory`. A module may also
define `example_inputs()`, used when no `--input-shape` is given. Weights are loaded with
`torch.load(..., weights_only=True)`: a file holding pickled code is refused, never executed.
"""

from __future__ import annotations

import importlib
import importlib.util
import pickle
import sys
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import torch
from torch import nn

from .errors import InputShapeError, NascompileError, SpecError, WeightsError


@dataclass
class LoadedSpec:
    model: nn.Module
    example_inputs: Callable[[], Any] | None
    module: ModuleType


def _import_file(path: Path) -> ModuleType:
    name = f"nascompile_spec_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SpecError(f"cannot import {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent.resolve()))  # let the file import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise SpecError(f"importing {str(path)!r} failed: {type(exc).__name__}: {exc}; run `python {path}` to see "
                        "the error in full") from None
    finally:
        sys.path.remove(str(path.parent.resolve()))
    return module


def load_spec(spec: str, build_args: Mapping[str, Any] | None = None) -> LoadedSpec:
    """Import the SPEC and build its model, passing `build_args` as keyword arguments to the factory."""
    if spec.endswith(".py") or "/" in spec or "\\" in spec:
        path = Path(spec)
        if not path.is_file():
            raise SpecError(f"SPEC file {spec!r} does not exist; check the path (SPEC is path/to/file.py or "
                            "package.module:factory)")
        module, factory_name = _import_file(path), "build"
    else:
        module_name, sep, factory_name = spec.partition(":")
        if not sep or not module_name or not factory_name:
            raise SpecError(f"SPEC {spec!r} must be path/to/file.py or package.module:factory")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise SpecError(f"cannot import module {module_name!r} of SPEC {spec!r}: {type(exc).__name__}: {exc}; "
                           "is it installed, or is its directory on PYTHONPATH?") from None
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise SpecError(f"SPEC {spec!r} has no callable {factory_name}(); define one that returns the supernet")
    try:
        model = factory(**dict(build_args or {}))
    except TypeError as exc:
        if build_args and "argument" in str(exc):
            raise SpecError(f"{factory_name}() of SPEC {spec!r} does not take the build arguments "
                            f"{sorted(build_args)}: {exc}; see its signature for the names it takes") from None
        raise SpecError(f"{factory_name}() of SPEC {spec!r} raised TypeError: {exc}; fix the factory so that it "
                        "builds the supernet") from None
    except NascompileError:
        raise  # e.g. a ChoiceError from the authoring API: it says what is wrong better than a SpecError
    except Exception as exc:
        raise SpecError(f"{factory_name}() of SPEC {spec!r} raised {type(exc).__name__}: {exc}; fix the "
                        "factory so that it builds the supernet") from None
    if not isinstance(model, nn.Module):
        raise SpecError(f"{factory_name}() of SPEC {spec!r} returned a {type(model).__name__}, not a torch.nn.Module; "
                        "make it return the supernet module")
    example = getattr(module, "example_inputs", None)
    return LoadedSpec(model, example if callable(example) else None, module)


#: Largest uncompressed size a weights or alphas archive may declare when no model says what to expect.
MAX_ARCHIVE_BYTES = 1 << 30


def check_archive_size(path: Path, limit: int, what: str) -> None:
    """Refuse a torch.save zip archive whose entries declare more than `limit` bytes in all.

    The sizes come from the archive's central directory, read without inflating anything, so a small
    file that would inflate to gigabytes (a decompression bomb) is refused before it is read.
    """
    if not zipfile.is_zipfile(path):
        return  # the legacy format is not compressed: its size on disk bounds what it holds
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise WeightsError(f"cannot read {what} file {str(path)!r}: it is not a valid torch.save archive "
                           f"({type(exc).__name__}: {exc}); save it again with torch.save") from None
    if declared > limit:
        raise WeightsError(f"refused to load {what} file {str(path)!r}: its archive declares {declared:,} bytes "
                           f"uncompressed, more than the {limit:,} this load allows (the file is "
                           f"{path.stat().st_size:,} bytes); save only what is needed, e.g. "
                           "torch.save(model.state_dict(), path)")


def safe_load(path: str | Path, what: str = "weights", max_bytes: int | None = None) -> Any:
    """`torch.load(weights_only=True)` with clear errors for missing, truncated, oversized or unsafe files.

    `max_bytes` (default `MAX_ARCHIVE_BYTES`) bounds the archive's declared uncompressed size (`check_archive_size`).
    """
    path = Path(path)
    if path.is_dir():
        raise WeightsError(f"{what} file {str(path)!r} is a directory; give the file saved with torch.save")
    if not path.is_file():
        raise WeightsError(f"{what} file {str(path)!r} does not exist; check the path")
    check_archive_size(path, MAX_ARCHIVE_BYTES if max_bytes is None else max_bytes, what)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise WeightsError(
            f"refused to load {what} file {str(path)!r}: it holds pickled objects other than tensors, which could "
            f"run code ({first}). Save a plain state dict (torch.save(model.state_dict(), ...)).") from None
    except Exception as exc:  # torch.load fails on garbage in many ways (KeyError, EOFError, RuntimeError, ...)
        raise WeightsError(f"cannot read {what} file {str(path)!r}: it is truncated or not a torch.save file "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); save it again "
                           "with torch.save") from None


def state_dict_of(obj: Any, path: str | Path) -> Mapping[str, torch.Tensor]:
    """The state dict inside a loaded file (accepts {'state_dict': ...} checkpoints)."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise WeightsError(f"weights file {str(path)!r} does not hold a state dict (a mapping of names to tensors); "
                           "save one with torch.save(model.state_dict(), path)")
    return obj


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a state dict into `model`, refusing missing, unexpected or mis-shaped entries.

    The archive may declare at most four times the model's own tensors (a checkpoint with optimizer
    state fits) plus 64 MiB before anything is read.
    """
    expected = model.state_dict()
    expected_bytes = sum(t.numel() * t.element_size() for t in expected.values())
    state = state_dict_of(safe_load(path, max_bytes=4 * expected_bytes + (64 << 20)), path)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s): {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s): {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}")
        raise WeightsError(f"weights file {str(path)!r} does not fit the model: " + "; ".join(parts) +
                           "; was it saved from this SPEC's supernet, built with the same arguments?")
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise WeightsError(f"weights file {str(path)!r}: {key} has shape {list(tensor.shape)}, the model expects "
                               f"{list(expected[key].shape)}; was it saved from a supernet of another size?")
    model.load_state_dict(state, strict=True)


def parse_shape(text: str) -> tuple[int, ...]:
    """'1,3,32,32' -> (1, 3, 32, 32)."""
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        raise InputShapeError(f"input shape {text!r} must be comma-separated integers, e.g. 1,3,32,32") from None
    if not shape or any(d <= 0 for d in shape):
        raise InputShapeError(f"input shape {text!r} must have positive dimensions")
    return shape
