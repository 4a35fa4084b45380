"""`slice-as-conv` alone: a crop feeding a convolution becomes zero taps of a larger kernel; checked by numbers."""

from __future__ import annotations

import pytest

from opt_cases import assert_unchanged, ir, optimize, printed

CONV_ATTRS = "{{dilation=[{d}, {d}], groups=1, padding=[{p}, {p}], stride=[2, 2]}}"


def cropped(start: str = "[1, 1]", d: int = 1, p: int = 0, users: str = "%c", ends: str = "[null, null]") -> str:
    return f"""graph {{
  %x = input() {{index=0}} : f32[1,1,6,6]
  %s = slice(%x) {{dims=[2, 3], ends={ends}, starts={start}, steps=[1, 1]}}
  %c = conv2d(%s) {CONV_ATTRS.format(d=d, p=p)} params(weight: f32[2,1,1,1] = [[[[2.0]]], [[[3.0]]]])
  %output = output({users})
}}"""


def test_factorized_reduce_crop_becomes_a_2x2_kernel_with_the_weight_at_tap_1_1():
    graph, _ = optimize(cropped(), "infer-shapes,slice-as-conv")
    assert printed(graph) == ir("""graph {
  %x = input() {index=0} : f32[1,1,6,6]
  %c = conv2d(%x) {dilation=[1, 1], groups=1, padding=[0, 0], stride=[2, 2]} params(weight: f32[2,1,2,2] = [[[[0.0, 0.0], [0.0, 2.0]]], [[[0.0, 0.0], [0.0, 3.0]]]]) : f32[1,2,3,3]
  %output = output(%c)
}""")


def test_a_crop_read_elsewhere_stays_for_its_other_users():
    graph, _ = optimize(cropped(users="%c, %s"), "infer-shapes,slice-as-conv")
    assert graph.inputs("c") == ["x"] and graph.op("s") == "slice"


def test_a_crop_by_a_multiple_of_the_dilation_shifts_the_taps():
    graph, _ = optimize(cropped(start="[2, 0]", d=2), "infer-shapes,slice-as-conv")
    assert list(graph.params("c")["weight"].shape) == [2, 1, 2, 1]
    assert graph.params("c")["weight"][0].flatten().tolist() == [0.0, 2.0]


@pytest.mark.parametrize("case", [
    dict(p=1),  # the crop removed rows the padding would have replaced by zeros
    dict(start="[1, 1]", d=2),  # an offset of 1 is no whole number of dilated taps
    dict(ends="[3, null]"),  # the end cuts rows the convolution reads: the output shape would change
    dict(start="[-5, 1]"),  # negative starts are left alone
], ids=["padded", "dilation", "end-cuts", "negative-start"])
def test_crops_that_do_not_line_up_are_left_alone(case):
    text = cropped(**case)
    graph, _ = optimize(text, "infer-shapes,slice-as-conv")
    assert graph.op("s") == "slice" and graph.inputs("c") == ["s"]


def test_a_channel_slice_is_left_alone():
    assert_unchanged("""graph {
  %x = input() {index=0} : f32[1,2,4,4]
  %s = slice(%x) {dims=[1], ends=[null], starts=[1], steps=[1]} : f32[1,1,4,4]
  %c = conv2d(%s) {dilation=[1, 1], groups=1, padding=[0, 0], stride=[1, 1]} params(weight: f32[1,1,1,1] = [[[[2.0]]]]) : f32[1,1,4,4]
  %output = output(%c)
}""", "slice-as-conv")
