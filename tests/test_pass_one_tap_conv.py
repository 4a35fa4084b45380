"""`one-tap-conv` alone: a kernel zero but at one tap becomes a depthwise tap selection and a 1x1 conv; checked by numbers."""

from __future__ import annotations

import pytest

from opt_cases import assert_unchanged, ir, optimize, printed

# FactorizedReduce's cropped half after slice-as-conv: 2 outputs, 2 inputs, the weight at tap (1, 1)
ZERO_TAPS = "[[[[0.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 2.0]]], [[[0.0, 0.0], [0.0, 3.0]], [[0.0, 0.0], [0.0, 4.0]]]]"


def conv(weight: str = ZERO_TAPS, shape: str = "f32[2,2,2,2]", stride: int = 2, padding: int = 0, groups: int = 1,
         dilation: int = 1, size: int = 6, out: int = 3, bias: str = "bias: f32[2] = [0.5, -0.5], ") -> str:
    return f"""graph {{
  %x = input() {{index=0}} : f32[1,2,{size},{size}]
  %c = conv2d(%x) {{dilation=[{dilation}, {dilation}], groups={groups}, padding=[{padding}, {padding}], stride=[{stride}, {stride}]}} params({bias}weight: {shape} = {weight}) : f32[1,2,{out},{out}]
  %output = output(%c)
}}"""


def test_the_factorized_reduce_kernel_becomes_a_tap_selection_then_a_1x1_conv_with_the_bias():
    graph, _ = optimize(conv(), "one-tap-conv")
    assert printed(graph) == ir("""graph {
  %x = input() {index=0} : f32[1,2,6,6]
  %c.tap = conv2d(%x) {dilation=[1, 1], groups=2, padding=[0, 0], stride=[2, 2]} params(weight: f32[2,1,2,2] = [[[[0.0, 0.0], [0.0, 1.0]]], [[[0.0, 0.0], [0.0, 1.0]]]]) : f32[1,2,3,3]
  %c = conv2d(%c.tap) {dilation=[1, 1], groups=1, padding=[0, 0], stride=[1, 1]} params(bias: f32[2] = [0.5, -0.5], weight: f32[2,2,1,1] = [[[[1.0]], [[2.0]]], [[[3.0]], [[4.0]]]]) : f32[1,2,3,3]
  %output = output(%c)
}""")


def test_slice_as_conv_then_one_tap_conv_computes_the_cropped_conv():
    graph, _ = optimize("""graph {
  %x = input() {index=0} : f32[2,2,6,6]
  %s = slice(%x) {dims=[2, 3], ends=[null, null], starts=[1, 1], steps=[1, 1]}
  %c = conv2d(%s) {dilation=[1, 1], groups=1, padding=[0, 0], stride=[2, 2]} params(weight: f32[2,2,1,1] = [[[[1.0]], [[2.0]]], [[[3.0]], [[4.0]]]])
  %output = output(%c)
}""", "infer-shapes,slice-as-conv,one-tap-conv")  # verify-each compares each step with the graph before it
    assert graph.count_ops().get("slice", 0) == 0 and graph.attrs("c")["stride"] == [1, 1]
    assert list(graph.params("c")["weight"].shape) == [2, 2, 1, 1] and graph.attrs("c.tap")["groups"] == 2


def test_the_selection_keeps_the_stride_and_dilation():
    weight = "[[[[0.0, 0.0, 5.0]]], [[[0.0, 0.0, 6.0]]]]"  # 1 x 3 kernel, the last tap, dilation 2
    graph, _ = optimize(f"""graph {{
  %x = input() {{index=0}} : f32[1,1,7,7]
  %c = conv2d(%x) {{dilation=[2, 2], groups=1, padding=[0, 0], stride=[1, 2]}} params(weight: f32[2,1,1,3] = {weight}) : f32[1,2,7,2]
  %output = output(%c)
}}""", "one-tap-conv")
    assert graph.op("c.tap") == "conv2d" and list(graph.params("c.tap")["weight"].shape) == [1, 1, 1, 3]
    assert graph.attrs("c.tap")["stride"] == [1, 2] and graph.attrs("c.tap")["dilation"] == [2, 2]


@pytest.mark.parametrize("case", [
    dict(padding=1, out=4),  # padded: the selection would read the padding at other offsets
    dict(groups=2, shape="f32[2,1,2,2]", weight="[[[[0.0, 0.0], [0.0, 1.0]]], [[[0.0, 0.0], [0.0, 2.0]]]]"),  # grouped
    dict(weight="[[[[0.0, 0.0], [7.0, 1.0]], [[0.0, 0.0], [0.0, 2.0]]], [[[0.0, 0.0], [0.0, 3.0]], [[0.0, 0.0], [0.0, 4.0]]]]"),
    dict(shape="f32[2,2,1,1]", weight="[[[[1.0]], [[2.0]]], [[[3.0]], [[4.0]]]]", stride=1, out=6),  # already 1x1
    dict(weight="[[[[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]], [[[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]]]"),
], ids=["padded", "grouped", "two-live-taps", "one-by-one", "all-zero"])
def test_kernels_that_are_not_one_live_tap_without_padding_are_left_alone(case):
    assert_unchanged(conv(**case), "one-tap-conv")


def test_left_alone_when_it_would_not_save_multiply_accumulates():
    # one output channel: the selection (2 inputs x 4 taps) and the 1x1 conv (2) cost more than the 2x2 conv (8)
    assert_unchanged(conv(shape="f32[1,2,2,2]", weight="[[[[0.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 2.0]]]]", bias="")
                     .replace("f32[1,2,3,3]", "f32[1,1,3,3]"), "one-tap-conv")


def test_left_alone_when_the_selection_would_change_the_output_shape():
    # tap (0, 0) of a 2x2 kernel: the 1x1 selection window fits one more row and column than the 2x2 kernel
    weight = "[[[[1.0, 0.0], [0.0, 0.0]], [[2.0, 0.0], [0.0, 0.0]]], [[[3.0, 0.0], [0.0, 0.0]], [[4.0, 0.0], [0.0, 0.0]]]]"
    assert_unchanged(conv(weight=weight, stride=1, size=3, out=2), "one-tap-conv")


def test_darts_factorized_reduce_after_the_o1_passes_validates_against_pytorch(tmp_path):
    import nascompile
    from nascompile.passes import PIPELINE_O1

    from conftest import example

    module = example("darts_cnn")
    result = nascompile.compile(module.build(), module.example_inputs(), pipeline=PIPELINE_O1 + ",one-tap-conv,dce")
    graph = result.graph
    taps = [c for c in graph.nodes_of("conv2d") if c.endswith(".tap")]
    # every 2x2 kernel slice-as-conv made (4 FactorizedReduce crops, split per part by split-cat-convs) is now a selection
    assert taps and not [c for c in graph.nodes_of("conv2d") if list(graph.params(c)["weight"].shape[2:]) == [2, 2]
                         and graph.attrs(c)["groups"] == 1]
    assert result.save(tmp_path / "tap.onnx", validate="cpu", batch_sizes=(1, 3)).validation.passed
