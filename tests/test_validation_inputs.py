"""Validation gives the PyTorch reference and onnxruntime separate copies of every input (issue 17, item 0):
a reference that writes into its input can neither make a wrong file pass nor a right one fail."""

from __future__ import annotations

import torch
from onnx import TensorProto, helper

from nascompile.runtime import make_session, validate_session


def _session(nodes: list, output: str = "y"):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])
    y = helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", 8])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=[two])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return make_session(model.SerializeToString())


def test_a_reference_that_mutates_its_input_cannot_approve_a_wrong_file():
    # eager PyTorch: y = relu_(x) makes x relu(x) too, so x + y = 2 relu(x); the file computes x + relu(x)
    session = _session([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["x", "r"], ["y"])])

    def reference(inputs):
        (x,) = inputs
        y = torch.relu_(x)
        return [x + y]

    report = validate_session(session, reference, (torch.randn(1, 8),))
    assert not report.passed


def test_a_reference_that_mutates_its_input_does_not_fail_a_right_file():
    session = _session([helper.make_node("Mul", ["x", "two"], ["y"])])

    def reference(inputs):
        (x,) = inputs
        return [x.mul_(2)]

    report = validate_session(session, reference, (torch.randn(1, 8),), batch_sizes=(1, 3))
    assert report.passed and report.max_abs == 0.0


def test_compare_accepts_nan_and_infinities_in_the_same_places_only():
    import numpy as np

    from nascompile.runtime import compare

    e = np.array([1.0, np.nan, np.inf, -np.inf], dtype=np.float32)
    assert compare(e.copy(), e, 1e-4, 1e-3) == (0.0, 0.0, True)
    for bad in ([1.0, 0.0, np.inf, -np.inf], [1.0, np.nan, -np.inf, -np.inf], [np.nan, np.nan, np.inf, -np.inf]):
        assert compare(np.array(bad, dtype=np.float32), e, 1e-4, 1e-3)[2] is False
    assert compare(np.array([1.5], np.float32), np.array([1.0], np.float32), 1e-4, 1e-3)[:2] == (0.5, 0.5)
