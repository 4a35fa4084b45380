"""The ONNX messages the emitter writes, built directly: nodes with their attributes, initializers, and the
typed inputs of the shape-inference skeleton.

`onnx.helper.make_node` and `numpy_helper.from_array` take any value and find its type by generic checks
(abstract base classes, `np.issubdtype`) on every attribute, and `from_array` builds a tensor that is then
copied into the model: for a supernet's thousands of nodes and weights that is most of the emitter's time.
The emitter writes few kinds of values, so these functions fill the fields of those kinds themselves, in
place where they can; any other value goes to onnx's helpers, which so keep deciding its form and its errors.
The bytes are the helpers' bytes: `tests/test_emit_protos.py` compares them for every kind and dtype.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from onnx import AttributeProto, GraphProto, NodeProto, TensorProto, helper, numpy_helper

#: numpy dtype (little-endian, as ONNX's raw_data is) -> ONNX element type, for the dtypes the emitter writes
TENSOR_TYPES = {np.dtype(code): onnx_type for code, onnx_type in (
    ("<f4", TensorProto.FLOAT), ("<f8", TensorProto.DOUBLE), ("<f2", TensorProto.FLOAT16),
    ("<i8", TensorProto.INT64), ("<i4", TensorProto.INT32), ("<i2", TensorProto.INT16), ("|i1", TensorProto.INT8),
    ("|u1", TensorProto.UINT8), ("|b1", TensorProto.BOOL))} if sys.byteorder == "little" else {}


def _attribute_fields(value: Any) -> dict[str, Any] | None:
    """The fields of an attribute holding `value` (as `helper.make_attribute` sets them), or None for a
    kind left to onnx's helper (bool, numpy scalars, tuples, empty or mixed lists, ...)."""
    kind = type(value)
    if kind is int:
        return {"i": value, "type": AttributeProto.INT}
    if kind is float:
        return {"f": value, "type": AttributeProto.FLOAT}
    if kind is str:
        return {"s": value.encode(), "type": AttributeProto.STRING}
    if kind is list and value:
        kinds = set(map(type, value))
        if kinds == {int}:
            return {"ints": value, "type": AttributeProto.INTS}
        if kinds == {float}:
            return {"floats": value, "type": AttributeProto.FLOATS}
        return None
    if kind is TensorProto:
        return {"t": value, "type": AttributeProto.TENSOR}
    if kind is GraphProto:
        return {"g": value, "type": AttributeProto.GRAPH}
    return None


def add_node(nodes: Any, op_type: str, inputs: Sequence[str], outputs: Sequence[str], name: str,
             attrs: Mapping[str, Any]) -> NodeProto:
    """Append to `nodes` (a repeated NodeProto field) the node `helper.make_node(op_type, inputs, outputs,
    name, **attrs)` would make: attributes sorted by name, None ones left out, an empty name not written."""
    node = nodes.add(op_type=op_type, input=inputs, output=outputs, **({"name": name} if name else {}))
    for key in sorted(attrs):
        value = attrs[key]
        if value is None:
            continue
        fields = _attribute_fields(value)
        if fields is None:
            node.attribute.append(helper.make_attribute(key, value))
        else:
            node.attribute.add(name=key, **fields)
    return node


def add_tensor(tensors: Any, name: str, array: np.ndarray) -> None:
    """Append `array` to `tensors` (a repeated TensorProto field) as `numpy_helper.from_array(array, name)`
    would make it, its bytes copied once (C order, whatever the array's strides). Dtypes outside
    `TENSOR_TYPES` go through `from_array` itself."""
    data_type = TENSOR_TYPES.get(array.dtype)
    if data_type is None:
        tensors.add().CopyFrom(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return
    tensors.add(dims=array.shape, data_type=data_type, raw_data=array.tobytes(), **({"name": name} if name else {}))


def add_tensor_input(values: Any, name: str, elem_type: int, dims: Sequence[int]) -> None:
    """Append to `values` (a repeated ValueInfoProto field) `helper.make_tensor_value_info(name, elem_type,
    dims)` for static `dims`: the shape is present even when `dims` is empty (a scalar, not an unknown rank)."""
    tensor = values.add(name=name).type.tensor_type
    tensor.elem_type = elem_type
    tensor.shape.SetInParent()
    for d in dims:
        tensor.shape.dim.add(dim_value=d)
