"""`split-cat-convs` alone: convolutions of a channel concatenation become sums over its parts; checked by numbers."""

from __future__ import annotations

from opt_cases import assert_unchanged, ir, optimize, printed

INPUTS = """%a = input() {index=0} : f32[1,1,2,2]
  %b = input() {index=1} : f32[1,2,2,2]
  %cat = cat(%a, %b) {dim=1} : f32[1,3,2,2]"""
ATTRS = "{dilation=[1, 1], groups=1, padding=[0, 0], stride=[1, 1]}"
WEIGHT = "weight: f32[1,3,1,1] = [[[[1.0]], [[2.0]], [[3.0]]]]"


def test_a_convolution_of_relu_of_cat_becomes_a_sum_of_part_convolutions_bias_once():
    graph, _ = optimize(f"""graph {{
  {INPUTS}
  %r = relu(%cat) : f32[1,3,2,2]
  %c = conv2d(%r) {ATTRS} params(bias: f32[1] = [0.5], {WEIGHT}) : f32[1,1,2,2]
  %output = output(%c)
}}""", "split-cat-convs")
    assert printed(graph) == ir(f"""graph {{
  %a = input() {{index=0}} : f32[1,1,2,2]
  %b = input() {{index=1}} : f32[1,2,2,2]
  %a.relu = relu(%a) : f32[1,1,2,2]
  %b.relu = relu(%b) : f32[1,2,2,2]
  %c.part0 = conv2d(%a.relu) {ATTRS} params(bias: f32[1] = [0.5], weight: f32[1,1,1,1] = [[[[1.0]]]]) : f32[1,1,2,2]
  %c.part1 = conv2d(%b.relu) {ATTRS} params(weight: f32[1,2,1,1] = [[[[2.0]], [[3.0]]]]) : f32[1,1,2,2]
  %c = sum(%c.part0, %c.part1) : f32[1,1,2,2]
  %output = output(%c)
}}""")


def test_three_parts_chain_two_input_sums_and_every_reader_is_split():
    graph, _ = optimize(f"""graph {{
  %a = input() {{index=0}} : f32[1,1,2,2]
  %b = input() {{index=1}} : f32[1,1,2,2]
  %d = input() {{index=2}} : f32[1,1,2,2]
  %cat = cat(%a, %b, %d) {{dim=1}} : f32[1,3,2,2]
  %r = relu(%cat) : f32[1,3,2,2]
  %c = conv2d(%r) {ATTRS} params({WEIGHT}) : f32[1,1,2,2]
  %e = conv2d(%cat) {ATTRS} params({WEIGHT}) : f32[1,1,2,2]
  %output = output(%c, %e)
}}""", "split-cat-convs")
    assert "cat" not in graph.count_ops()
    assert graph.inputs("c") == ["c.sum1", "c.part2"] and graph.inputs("c.sum1") == ["c.part0", "c.part1"]
    assert graph.inputs("e.part0") == ["a"]  # read without the relu


def test_a_cat_read_by_anything_else_is_left_alone():
    assert_unchanged(f"""graph {{
  {INPUTS}
  %r = relu(%cat) : f32[1,3,2,2]
  %c = conv2d(%r) {ATTRS} params({WEIGHT}) : f32[1,1,2,2]
  %p = max_pool2d(%r) {{ceil_mode=false, dilation=[1, 1], kernel_size=[1, 1], padding=[0, 0], stride=[1, 1]}} : f32[1,3,2,2]
  %output = output(%c, %p)
}}""", "split-cat-convs")


def test_grouped_convolutions_are_left_alone():
    assert_unchanged("""graph {
  %a = input() {index=0} : f32[1,1,2,2]
  %b = input() {index=1} : f32[1,2,2,2]
  %cat = cat(%a, %b) {dim=1} : f32[1,3,2,2]
  %c = conv2d(%cat) {dilation=[1, 1], groups=3, padding=[0, 0], stride=[1, 1]} params(weight: f32[3,1,1,1] = [[[[1.0]]], [[[2.0]]], [[[3.0]]]]) : f32[1,3,2,2]
  %output = output(%c)
}""", "split-cat-convs")


def test_a_relu_the_graph_has_already_is_reused():
    graph, _ = optimize(f"""graph {{
  {INPUTS}
  %ra = relu(%a) : f32[1,1,2,2]
  %r = relu(%cat) : f32[1,3,2,2]
  %c = conv2d(%r) {ATTRS} params({WEIGHT}) : f32[1,1,2,2]
  %output = output(%c, %ra)
}}""", "split-cat-convs")
    assert graph.inputs("c.part0") == ["ra"] and graph.count_ops()["relu"] == 2
