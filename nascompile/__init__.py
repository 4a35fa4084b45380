"""nascompile: compile DARTS-style supernets into validated, discrete ONNX models.

`compile` and `CompileResult` are imported on first use (PEP 562), so that importing a light part of the
package (the command line's parser, `nascompile.errors`) does not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import NascompileError
from .version import __version__

if TYPE_CHECKING:
    from .compiler import CompileResult, compile

__all__ = ["CompileResult", "NascompileError", "compile", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("compile", "CompileResult"):
        from . import compiler

        return getattr(compiler, name)
    raise AttributeError(f"module 'nascompile' has no attribute {name!r}")
