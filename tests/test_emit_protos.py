"""The emitter builds its nodes, attributes and initializers itself (`backend/protos.py`) for speed; these
tests hold it to the exact bytes onnx's own helpers (`helper.make_node`, `numpy_helper.from_array`,
`helper.make_tensor_value_info`) give, kind by kind and dtype by dtype, and for whole emitted supernets."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

import nascompile
import nascompile.backend.onnx as emitter
from nascompile.backend import protos
from nascompile.passes import PIPELINE_O0
from test_emit_lowerings import ARITHMETIC_CASES, CONV_CASES, POOL_CASES, SHAPE_CASES, Fn

from conftest import example


def helper_node(nodes, op_type, inputs, outputs, name, attrs):
    nodes.append(helper.make_node(op_type, inputs, outputs, name=name, **attrs))


def helper_tensor(tensors, name, array):
    tensors.append(numpy_helper.from_array(array, name))


def built(function, *args) -> bytes:
    """The bytes of the one message `function` appends to a fresh repeated field (of a GraphProto)."""
    graph = onnx.GraphProto()
    field = {protos.add_node: graph.node, helper_node: graph.node, protos.add_tensor: graph.initializer,
             helper_tensor: graph.initializer}[function]
    function(field, *args)
    assert len(field) == 1
    return field[0].SerializeToString()


SUBGRAPH = helper.make_graph([helper.make_node("Relu", ["a"], ["b"])], "body",
                             [helper.make_tensor_value_info("a", TensorProto.FLOAT, [None])],
                             [helper.make_tensor_value_info("b", TensorProto.FLOAT, [None])])
ATTRIBUTES = {
    "int": 3, "zero": 0, "negative": -2, "big": 2**62, "bool": True, "numpy_int": np.int64(4),
    "float": 0.1, "float_zero": 0.0, "numpy_float": np.float32(1.5), "str": "constant", "unicode": "ü",
    "bytes": b"raw", "ints": [1, 1, 2, 2], "one_int": [0], "tuple": (3, 3), "floats": [0.5, -1.25],
    "mixed_numbers": [1, 2.5], "numpy_ints": [np.int64(1), np.int64(2)], "strs": ["a", "b"],
    "tensor": helper.make_tensor("value", TensorProto.FLOAT, [1], [0]), "graph": SUBGRAPH, "none": None,
}


@pytest.mark.parametrize("kind", ATTRIBUTES)
def test_each_attribute_kind_has_the_helpers_bytes(kind):
    attrs = {"a_attr": ATTRIBUTES[kind]}
    assert built(protos.add_node, "Op", ["x"], ["y"], "n/Op", attrs) == \
        built(helper_node, "Op", ["x"], ["y"], "n/Op", attrs)


def test_attributes_are_sorted_and_none_ones_dropped_as_make_node_does():
    attrs = {"strides": [2, 2], "group": 4, "alpha": 0.2, "pads": None, "mode": "constant", "axes": [0]}
    mine = onnx.NodeProto.FromString(built(protos.add_node, "Op", ["x", "", "w"], ["y", "z"], "n", attrs))
    assert [a.name for a in mine.attribute] == ["alpha", "axes", "group", "mode", "strides"]
    assert mine.SerializeToString() == built(helper_node, "Op", ["x", "", "w"], ["y", "z"], "n", attrs)


def test_no_name_and_no_attributes():
    assert built(protos.add_node, "Identity", ["x"], ["y"], "", {}) == built(helper_node, "Identity", ["x"], ["y"], "", {})


def test_an_empty_list_fails_as_in_make_node():
    with pytest.raises(ValueError, match="Could not infer attribute `perm` type from empty iterator"):
        built(protos.add_node, "Transpose", ["x"], ["y"], "n", {"perm": []})


def _arrays():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((4, 3, 2)).astype(np.float32)
    cases = {f"{np.dtype(d).name}": (base * 10).astype(d) for d in
             (np.float32, np.float64, np.float16, np.int64, np.int32, np.int16, np.int8, np.uint8, np.bool_)}
    cases.update({
        "scalar": np.array(7, dtype=np.int64), "empty": np.zeros((0, 3), np.float32), "one": np.ones(1, np.float32),
        "transposed": base.reshape(4, 6).T, "strided": base[:, ::2, ::-1], "fortran": np.asfortranarray(base),
        "big_endian": base.astype(">f4"), "complex": base.astype(np.complex64),
        "nan_inf": np.array([np.nan, np.inf, -np.inf, -0.0], np.float32),
    })
    return cases


ARRAYS = _arrays()


def outcome(function, *args) -> bytes | tuple[type, str]:
    """The bytes `built` gives, or the error (type and message) it raises."""
    try:
        return built(function, *args)
    except Exception as exc:  # noqa: BLE001  (compared with the helper's own error)
        return type(exc), str(exc)


@pytest.mark.parametrize("kind", ARRAYS)
def test_each_tensor_dtype_and_layout_has_from_arrays_bytes(kind):
    mine = outcome(protos.add_tensor, "w", ARRAYS[kind])
    assert mine == outcome(helper_tensor, "w", ARRAYS[kind])
    assert isinstance(mine, bytes) or kind in ("big_endian", "complex")  # onnx refuses those two dtypes


def test_a_tensor_without_name():
    assert built(protos.add_tensor, "", ARRAYS["float32"]) == built(helper_tensor, "", ARRAYS["float32"])


def emitted(result, **options) -> bytes:
    return result.to_onnx(**options).SerializeToString()


def _same_with_helpers(result, monkeypatch, **options):
    fast = emitted(result, **options)
    monkeypatch.setattr(emitter, "add_node", helper_node)
    monkeypatch.setattr(emitter, "add_tensor", helper_tensor)
    monkeypatch.setattr(protos, "add_node", helper_node)  # the Scan body's (loops.py imports it when it runs)
    assert emitted(result, **options) == fast
    monkeypatch.undo()


def test_a_small_supernet_emits_the_helpers_bytes(monkeypatch):
    darts = example("darts_cnn")
    result = nascompile.compile(darts.build(n_layers=2), darts.example_inputs())
    for options in ({}, {"dynamic_spatial": True}, {"dynamic_batch": False}, {"opset": 18}):
        _same_with_helpers(result, monkeypatch, **options)


def test_a_time_loop_scan_emits_the_helpers_bytes(monkeypatch):
    rnn = example("darts_rnn")
    result = nascompile.compile(rnn.build(), rnn.example_inputs())
    loop, _ = result.time_loop()
    assert loop is not None
    _same_with_helpers(result, monkeypatch, loop=loop)


MODULES = {**{f"conv_{k}": (m, (1, m.in_channels, 9, 9)) for k, m in CONV_CASES.items()},
           **{f"pool_{k}": (m, (1, 3, 9, 9)) for k, m in POOL_CASES.items()},
           **{f"arith_{k}": (m, (1, 3, 4, 4)) for k, m in ARITHMETIC_CASES.items()},
           **{f"shape_{k}": (m, (1, 3, 4, 4)) for k, m in SHAPE_CASES.items()},
           "linear_3d": (nn.Linear(5, 4), (2, 3, 5)), "linear_3d_no_bias": (nn.Linear(5, 4, bias=False), (2, 3, 5)),
           "bn_linear": (nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4)), (2, 6)),
           "half": (nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).half(), (1, 3, 6, 6)),
           "select": (Fn(lambda x: x[:, 1] + x.select(1, 2)), (2, 3, 4))}


@pytest.mark.parametrize("name", MODULES)
def test_each_lowering_emits_the_helpers_bytes(name, monkeypatch):
    module, shape = MODULES[name]
    dtype = next(module.parameters(), torch.empty(0)).dtype
    result = nascompile.compile(module.eval(), (torch.randn(*shape).to(dtype),), pipeline=PIPELINE_O0)
    _same_with_helpers(result, monkeypatch)
