"""Calibration inputs for int8: a tensor file, a SPEC's `calibration_data()`, or seeded noise.

The data is one tensor per model input, shaped (samples, *example_shape[1:]): a `.npy` file (loaded with
`allow_pickle=False`, one input), a `.pt` file (`torch.load(weights_only=True)`: a tensor, or a
list/tuple of tensors for several inputs), or what `calibration_data()` returns (the same forms). Pickled
code is refused, never run. Without any, `random_calibration` makes seeded normal noise and
`RANDOM_WARNING` says why that is not enough.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import CalibrationError

CALIBRATION_BATCH = 32
RANDOM_SAMPLES = 64
RANDOM_WARNING = ("int8 is calibrated on {n} seeded random inputs, not on data: its quantization ranges fit noise, "
                  "so its accuracy on real inputs is unknown. Pass --calibration DATA (a .npy/.pt tensor of real "
                  "inputs) or define calibration_data() in the SPEC for real accuracy.")


def load_calibration_file(path: str | os.PathLike) -> Any:
    """The tensors stored in a `.npy` or `.pt` file, loaded without running pickled code."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"calibration file {str(path)!r} does not exist or is not a file")
    try:
        if path.suffix == ".npy":
            return torch.from_numpy(np.load(path, allow_pickle=False))
        if path.suffix in (".pt", ".pth"):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # numpy and torch raise many types for a bad file
        raise CalibrationError(f"cannot read calibration file {str(path)!r}: {type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'} (only plain tensors "
                               "are loaded: no pickled objects)") from None
    raise CalibrationError(f"calibration file {str(path)!r} must be .npy (one input) or .pt (a tensor or a list "
                           "of tensors, one per model input)")


def calibration_batches(data: Any, example_inputs: Sequence[torch.Tensor], source: str,
                        batch_size: int = CALIBRATION_BATCH) -> list[list[torch.Tensor]]:
    """`data` (a tensor or a list/tuple of tensors, one per input) checked and split into batches."""
    tensors = [data] if isinstance(data, (torch.Tensor, np.ndarray)) else data
    if not isinstance(tensors, (list, tuple)) or not all(isinstance(t, (torch.Tensor, np.ndarray)) for t in tensors):
        raise CalibrationError(f"{source} must hold a tensor, or a list/tuple of tensors (one per model input), "
                               f"not {type(data).__name__}")
    tensors = [torch.as_tensor(t) for t in tensors]
    if len(tensors) != len(example_inputs):
        raise CalibrationError(f"{source} holds {len(tensors)} tensors but the model takes {len(example_inputs)} inputs")
    count = None
    for i, (tensor, example) in enumerate(zip(tensors, example_inputs)):
        expected = ["N", *example.shape[1:]]
        if tensor.dim() != example.dim() or tuple(tensor.shape[1:]) != tuple(example.shape[1:]) or len(tensor) == 0:
            raise CalibrationError(f"{source}: input {i} has shape {list(tensor.shape)}, expected "
                                   f"[{', '.join(map(str, expected))}] with N >= 1 samples")
        if not tensor.is_floating_point():
            raise CalibrationError(f"{source}: input {i} has dtype {tensor.dtype}; calibration inputs are floats")
        if not torch.isfinite(tensor).all():
            raise CalibrationError(f"{source}: input {i} holds NaN or infinite values")
        if count is not None and len(tensor) != count:
            raise CalibrationError(f"{source}: the inputs hold different numbers of samples ({count} and {len(tensor)})")
        count = len(tensor)
    return [[t[start:start + batch_size].to(example.dtype).contiguous() for t, example in zip(tensors, example_inputs)]
            for start in range(0, count, batch_size)]


def random_calibration(example_inputs: Sequence[torch.Tensor], samples: int = RANDOM_SAMPLES,
                       seed: int = 0) -> list[list[torch.Tensor]]:
    """Seeded standard-normal inputs shaped like the examples (see `RANDOM_WARNING`)."""
    generator = torch.Generator().manual_seed(seed)
    data = [torch.randn((samples, *x.shape[1:]), generator=generator, dtype=x.dtype) for x in example_inputs]
    return calibration_batches(data, example_inputs, "random calibration")
