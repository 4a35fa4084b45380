"""Backends: IR -> ONNX (`onnx.py`) and writing the file (`save.py`)."""

from .onnx import DEFAULT_OPSET, LOWERINGS, to_onnx
from .save import save_onnx

__all__ = ["DEFAULT_OPSET", "LOWERINGS", "save_onnx", "to_onnx"]
