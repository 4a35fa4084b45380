"""User-facing errors.

Every mistake a user can make maps to one exception class with its own CLI exit code, so scripts can
tell a bad weights file from a failed validation without parsing messages. Messages say what went
wrong, where (module path, label, file) and how to fix it.
"""

from __future__ import annotations


class NascompileError(Exception):
    """Base class: a problem with the user's input, reported without a traceback."""

    exit_code = 1
    kind = "error"


class UsageError(NascompileError):
    """Command-line options that do not go together (argparse reports a malformed one with the same code)."""

    exit_code = 2
    kind = "usage error"


class SpecError(NascompileError):
    """The SPEC (model file or `module:factory`) cannot be loaded."""

    exit_code = 3
    kind = "spec error"


class WeightsError(NascompileError):
    """A weights or alphas file is missing, unreadable, unsafe or does not fit the model."""

    exit_code = 4
    kind = "weights error"


class TraceError(NascompileError):
    """torch.fx cannot lift part of the model into the IR."""

    exit_code = 5
    kind = "trace error"


class ChoiceError(NascompileError):
    """Architecture choices are ill-formed: bad logits, labels, n_chosen, shapes of alphas."""

    exit_code = 6
    kind = "choice error"


class IRError(NascompileError):
    """An IR graph is malformed (verifier) or IR text does not parse.

    `node` names the IR node at fault, when there is one: the text parser turns it into a line and column.
    """

    exit_code = 7
    kind = "IR error"

    def __init__(self, message: str, node: str | None = None):
        super().__init__(message)
        self.node = node


class LoweringError(NascompileError):
    """An IR operation has no ONNX lowering, or its attributes cannot be expressed in ONNX."""

    exit_code = 8
    kind = "lowering error"


class InputShapeError(NascompileError):
    """The example input does not fit the model."""

    exit_code = 9
    kind = "input shape error"


class OutputPathError(NascompileError):
    """An output file cannot be written where the user asked."""

    exit_code = 10
    kind = "output error"


class ValidationError(NascompileError):
    """The emitted model does not match the PyTorch reference within tolerance."""

    exit_code = 11
    kind = "validation failed"


class VerifyEachError(NascompileError):
    """A pass changed what the graph computes (found by --verify-each)."""

    exit_code = 12
    kind = "verify-each failed"


class DeviceError(NascompileError):
    """The requested device or execution provider is not really available."""

    exit_code = 13
    kind = "device error"


class PipelineError(NascompileError):
    """A pass pipeline string names an unknown pass or has bad options."""

    exit_code = 14
    kind = "pipeline error"


class ModelFileError(NascompileError):
    """An ONNX file given to read (`nascompile inspect`) is missing, is not ONNX, or has no nascompile metadata."""

    exit_code = 15
    kind = "model file error"


class ExportError(NascompileError):
    """An export format does not apply to this architecture (a genotype of a non-DARTS search space)."""

    exit_code = 16
    kind = "export error"


class RenderError(NascompileError):
    """A diagram cannot be drawn: Graphviz's `dot` is missing or fails, or the format is unknown."""

    exit_code = 17
    kind = "render error"


class AccuracyError(NascompileError):
    """A reduced-precision model (fp16, int8) misses an accuracy gate (--min-top1-agreement, --max-abs, ...)."""

    exit_code = 18
    kind = "accuracy gate failed"


class CalibrationError(NascompileError):
    """Calibration data for int8 (--calibration, a SPEC's calibration_data()) is unreadable or does not fit."""

    exit_code = 19
    kind = "calibration error"


INTERNAL_ERROR_EXIT_CODE = 70


def meta_tensor_error(what: str, name: str) -> SpecError:
    """A tensor with a shape but no values: the model was built under torch.device('meta') or loaded lazily."""
    return SpecError(f"{what} {name!r} is on the meta device: it has a shape but no values (a model built under "
                     "torch.device('meta') or loaded lazily); build the model on a real device, or materialize it "
                     "(model.to_empty(device='cpu')) and load its weights with load_state_dict(..., assign=True)")
