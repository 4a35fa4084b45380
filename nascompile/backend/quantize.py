"""fp32 ONNX -> fp16 or int8 ONNX, with onnxruntime's own conversion tools.

- fp16: `onnxruntime.transformers.float16.convert_float_to_float16` with `keep_io_types=True`: inputs and
  outputs stay float32 (callers feed the same arrays), everything else runs in half precision except the
  ops of `FP16_KEEP_FP32`, which the converter wraps in casts.
- int8: `onnxruntime.quantization.quantize_static`, QDQ format, MinMax calibration, weights int8 per output
  channel, activations uint8 (onnxruntime's recommended pairing on x86 CPUs, whose int8 kernels take
  unsigned activations). n-ary `Sum` nodes become chains of `Add` first (same left-to-right order):
  onnxruntime quantizes `Add` (QLinearAdd) but not `Sum`, which would otherwise dequantize, add in
  float and requantize at every DARTS cell node.

No rewrite of the arithmetic is written here: both conversions are the maintained libraries'.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

PRECISIONS = ("fp32", "fp16", "int8")

#: Ops kept in float32 in fp16 models, and why (the fp16 converter wraps each in Cast nodes).
FP16_KEEP_FP32 = {
    "BatchNormalization": "variances and eps (1e-5) lie below fp16's smallest normal number (6.1e-5), so "
                          "1/sqrt(var + eps) would lose most of its digits",
    "GlobalAveragePool": "a mean over a whole feature map adds H*W terms: in fp16 (11-bit significand) the "
                         "small ones vanish and large sums overflow at 65504",
    "ReduceMean": "the same long accumulation as GlobalAveragePool",
}


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` in half precision, inputs/outputs float32, the ops of `FP16_KEEP_FP32` in float32."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    blocked = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(FP16_KEEP_FP32))
    with _quiet_logging():
        converted = convert_float_to_float16(model, keep_io_types=True, op_block_list=blocked)
    return topologically_sorted(converted)


def topologically_sorted(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with its nodes in an order the ONNX checker accepts (each after the producers of its inputs).

    The fp16 converter appends the Cast nodes of the graph inputs at the end; onnxruntime does not mind,
    `onnx.checker` does. Nodes keep their relative order where the data allows it.
    """
    nodes = list(model.graph.node)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output}
    placed: list[int] = []
    done: set[int] = set()

    def place(i: int) -> None:  # depth-first over producers, iterative (graphs can be deep)
        stack = [(i, False)]
        while stack:
            j, ready = stack.pop()
            if j in done:
                continue
            if ready:
                done.add(j)
                placed.append(j)
                continue
            stack.append((j, True))
            stack.extend((producer[name], False) for name in reversed(nodes[j].input)
                         if name in producer and producer[name] not in done)

    for i in range(len(nodes)):
        place(i)
    if placed != list(range(len(nodes))):
        ordered = [nodes[i] for i in placed]
        del model.graph.node[:]
        model.graph.node.extend(ordered)
    return model


def sums_as_adds(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` whose n-ary `Sum` nodes are chains of 2-input `Add` nodes, added left to right."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes = []
    for node in out.graph.node:
        if node.op_type != "Sum" or len(node.input) < 2:
            nodes.append(node)
            continue
        acc = node.input[0]
        for i, term in enumerate(node.input[1:], start=1):
            last = i == len(node.input) - 1
            result = node.output[0] if last else f"{node.output[0]}.partial{i}"
            nodes.append(helper.make_node("Add", [acc, term], [result], name=node.name if last else f"{node.name}.add{i}"))
            acc = result
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


def to_int8(model: onnx.ModelProto, calibration: Iterable[Sequence[np.ndarray]]) -> onnx.ModelProto:
    """`model` statically quantized (QDQ) with ranges from running it on the `calibration` batches.

    Each batch is one tuple of arrays, one per graph input, in the graph's input order.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    names = [i.name for i in model.graph.input]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(calibration)

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else dict(zip(names, batch))

    with tempfile.TemporaryDirectory(prefix="nascompile-int8-") as tmp, _quiet_logging():
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(sums_as_adds(model).SerializeToString())  # a path: every onnxruntime version takes one
        quantize_static(str(source), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        quantized = onnx.load(str(target))
    del quantized.metadata_props[:]  # the caller sets the metadata once, for every precision alike
    return quantized


@contextlib.contextmanager
def _quiet_logging() -> Iterator[None]:
    """Silence the conversion libraries' advice on the root logger (pre-processing hints and the like)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)
