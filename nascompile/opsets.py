"""The ONNX opsets nascompile emits: one place for the range that `--opset` and `to_onnx` check.

Kept free of imports so that the command line can name the range in its help without loading onnx.
Every lowering is written for this range and tested at both ends (`tests/test_opsets.py`); outside it
a file would either use operator versions the lowerings do not know, or be one that released
onnxruntimes cannot load.
"""

MIN_OPSET = 14
MAX_OPSET = 21
DEFAULT_OPSET = 17
