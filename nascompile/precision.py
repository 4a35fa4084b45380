"""`save(..., precision="fp16"|"int8")`: convert the fp32 model, measure it, gate it, record it.

The converted model is run on seeded inputs against the fp32 reference: the fp32 ONNX model it was made
from, which `--validate` checks against the supernet's own forward first (running that forward on a
thousand inputs would take minutes; onnxruntime takes seconds). Its accuracy (`accuracy.AccuracyReport`) goes into the ONNX metadata
(`nascompile.precision`, `nascompile.accuracy`, `nascompile.calibration`) and the gates decide whether
it is written at all.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import onnx
import torch

from .accuracy import AccuracyReport, enforce, measure_accuracy
from .backend.quantize import PRECISIONS, to_fp16, to_int8
from .calibration import RANDOM_SAMPLES, RANDOM_WARNING, calibration_batches, random_calibration
from .errors import CalibrationError

KEY_PRECISION = "nascompile.precision"
KEY_ACCURACY = "nascompile.accuracy"
KEY_CALIBRATION = "nascompile.calibration"
ACCURACY_SAMPLES = 1000
ACCURACY_BATCH = 50
ACCURACY_SEED = 1_000_003  # far from the validation seeds (0, 1, ...) and the random calibration's (0)


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")


def accuracy_batches(example_inputs: Sequence[torch.Tensor], samples: int, seed: int = ACCURACY_SEED,
                     batch: int = ACCURACY_BATCH) -> list[list[torch.Tensor]]:
    """`samples` seeded inputs shaped like the examples, in batches of at most `batch`."""
    from .runtime import random_inputs

    sizes = [min(batch, samples - start) for start in range(0, samples, batch)]
    return [random_inputs(example_inputs, size, seed + i) for i, size in enumerate(sizes)]


def calibration_for(example_inputs: Sequence[torch.Tensor], calibration: Any) -> tuple[list[list[torch.Tensor]], str]:
    """(batches, a description of their source) for int8; seeded noise, with a warning, when `calibration` is None."""
    if calibration is None:
        warnings.warn(RANDOM_WARNING.format(n=RANDOM_SAMPLES), UserWarning, stacklevel=3)
        return random_calibration(example_inputs), f"random: {RANDOM_SAMPLES} seeded standard-normal inputs"
    source = "calibration data"
    batches = calibration_batches(calibration, example_inputs, source)
    return batches, f"data: {sum(len(b[0]) for b in batches)} inputs"


def session_function(session) -> Callable[[list[torch.Tensor]], list[torch.Tensor]]:
    """An onnxruntime session as a function of input tensors, returning output tensors."""
    names = [i.name for i in session.get_inputs()]
    return lambda inputs: [torch.from_numpy(out) for out in session.run(None, {n: x.numpy() for n, x in zip(names, inputs)})]


def reduce_precision(model: onnx.ModelProto, precision: str, example_inputs: Sequence[torch.Tensor], *, path: str,
                     calibration: Any = None, calibration_source: str | None = None, device: str = "cpu",
                     samples: int = ACCURACY_SAMPLES, gates: dict[str, float | None] | None = None,
                     ) -> tuple[onnx.ModelProto, AccuracyReport]:
    """The fp32 `model` converted to `precision`, measured against `model` itself and gated.

    Raises AccuracyError (nothing is written) when a gate is missed.
    """
    from .runtime import make_session

    check_precision(precision)
    if samples < 1:
        raise ValueError(f"accuracy samples must be at least 1, not {samples}")
    metadata = {p.key: p.value for p in model.metadata_props}
    if precision == "fp16":
        converted, calibrated = to_fp16(model), None
    else:
        batches, calibrated = calibration_for(example_inputs, calibration)
        calibrated = calibration_source or calibrated
        try:
            converted = to_int8(model, [[x.numpy() for x in batch] for batch in batches])
        except (ValueError, RuntimeError) as exc:
            raise CalibrationError(f"int8 calibration failed: {str(exc).splitlines()[0]}") from None
    session = make_session(converted.SerializeToString(), device)
    reference = session_function(make_session(model.SerializeToString(), device))
    report = measure_accuracy(session, reference, accuracy_batches(example_inputs, samples), precision, device, gates)
    enforce(report, path)
    del converted.metadata_props[:]
    metadata[KEY_PRECISION] = precision
    metadata[KEY_ACCURACY] = json.dumps(report.to_dict(), sort_keys=True)
    if calibrated is not None:
        metadata[KEY_CALIBRATION] = calibrated
    for key, value in metadata.items():
        converted.metadata_props.add(key=key, value=value)
    return converted, report
