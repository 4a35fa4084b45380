"""nascompile: compile DARTS-style supernets into validated, discrete ONNX models."""

from .compiler import CompileResult, compile
from .errors import NascompileError

__version__ = "0.1.0"
__all__ = ["CompileResult", "NascompileError", "compile", "__version__"]
