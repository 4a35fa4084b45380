"""`infer-shapes`' shape rules agree with torch's kernels: on whole example networks and on random
convolution and pooling geometries (ceil_mode included)."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

import nascompile
from nascompile.ir.interpreter import Interpreter
from nascompile.passes import PIPELINE_O0
from nascompile.passes.infer_shapes import SHAPE_RULES, type_of

from conftest import example


def _rule(op, shape, attrs, params=None):
    return SHAPE_RULES[op]([{"shape": shape, "dtype": "f32"}], attrs, params or {})


@pytest.mark.parametrize("name, build", [("darts_cnn", {"n_layers": 5}), ("nb201_cell", {"cells_per_stage": 1})])
def test_rules_agree_with_running_the_example_networks(name, build):
    module = example(name)
    inputs = module.example_inputs()
    result = nascompile.compile(module.build(**build), inputs, pipeline=PIPELINE_O0)
    graph = result.graph
    computed = {}
    Interpreter(graph).run(inputs, on_value=lambda node, value: computed.__setitem__(node, type_of(value)))
    for node, found in computed.items():
        assert {k: graph.meta(node)[k] for k in ("shape", "dtype")} == found, node


@pytest.mark.parametrize("seed", range(200))
def test_convolution_and_pooling_geometry_match_torch(seed):
    rng = random.Random(seed)
    size = [rng.randint(1, 12), rng.randint(1, 12)]
    kernel = [rng.randint(1, 4), rng.randint(1, 4)]
    stride = [rng.randint(1, 3), rng.randint(1, 3)]
    dilation = [rng.randint(1, 2), rng.randint(1, 2)]
    padding = [rng.randint(0, k // 2) for k in kernel]  # torch's pools allow at most half the kernel
    ceil_mode = rng.random() < 0.5
    x = torch.zeros(2, 3, *size)
    cases = [
        ("conv2d", lambda: F.conv2d(x, torch.zeros(5, 3, *kernel), None, stride, padding, dilation),
         {"stride": stride, "padding": padding, "dilation": dilation, "groups": 1}, {"weight": torch.zeros(5, 3, *kernel)}),
        ("max_pool2d", lambda: F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode),
         {"kernel_size": kernel, "stride": stride, "padding": padding, "dilation": dilation, "ceil_mode": ceil_mode}, None),
        ("avg_pool2d", lambda: F.avg_pool2d(x, kernel, stride, padding, ceil_mode),
         {"kernel_size": kernel, "stride": stride, "padding": padding, "ceil_mode": ceil_mode}, None),
    ]
    for op, run, attrs, params in cases:
        try:
            expected = list(run().shape)
        except RuntimeError:  # the window does not fit: the rule must leave it to the kernel
            assert _rule(op, list(x.shape), attrs, params) is None, op
            continue
        assert _rule(op, list(x.shape), attrs, params) == {"shape": expected, "dtype": "f32"}, (op, attrs)


def test_broadcasting_and_integer_arithmetic_are_left_to_the_kernel():
    assert SHAPE_RULES["sum"]([{"shape": [2, 3], "dtype": "f32"}, {"shape": [3], "dtype": "f32"}], {}, {}) is None
    graph = nascompile.ir.parse_graph("""graph {
  %i = input() {index=0} : i64[3]
  %j = input() {index=1} : i64[3]
  %q = div(%i, %j)
  %output = output(%q)
}""")
    from nascompile.passes import PassContext
    from nascompile.passes.infer_shapes import infer_shapes

    infer_shapes(graph, PassContext(example_inputs=(torch.ones(3, dtype=torch.long), torch.ones(3, dtype=torch.long))))
    assert graph.meta("q")["dtype"] == "f32"  # int / int is float
