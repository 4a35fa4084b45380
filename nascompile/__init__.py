"""nascompile: compile DARTS-style supernets into validated, discrete ONNX models."""

from .compiler import CompileResult, compile
from .errors import NascompileError
from .version import __version__

__all__ = ["CompileResult", "NascompileError", "compile", "__version__"]
