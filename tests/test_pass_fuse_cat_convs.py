"""`fuse-cat-convs` alone: convolutions of one value, concatenated along channels, become one; checked by numbers."""

from __future__ import annotations

from opt_cases import assert_unchanged, ir, optimize, printed

X = "%x = input() {index=0} : f32[1,1,4,4]"


def conv(name: str, weight: str, shape: str, padding: str = "[0, 0]", source: str = "%x", groups: int = 1,
         stride: str = "[2, 2]") -> str:
    return (f"%{name} = conv2d({source}) {{dilation=[1, 1], groups={groups}, padding={padding}, stride={stride}}} "
            f"params(weight: f32[{shape}] = {weight})")


def test_factorized_reduce_becomes_one_2x2_convolution():
    # after slice-as-conv: a 1x1 conv on the even grid and a 2x2 one with its weight at tap (1, 1)
    graph, _ = optimize(f"""graph {{
  {X}
  {conv("a", "[[[[2.0]]]]", "1,1,1,1")}
  {conv("b", "[[[[0.0, 0.0], [0.0, 3.0]]]]", "1,1,2,2")}
  %cat = cat(%a, %b) {{dim=1}}
  %output = output(%cat)
}}""", "infer-shapes,fuse-cat-convs")
    assert printed(graph) == ir(f"""graph {{
  {X}
  {conv("a", "[[[[2.0, 0.0], [0.0, 0.0]]], [[[0.0, 0.0], [0.0, 3.0]]]]", "2,1,2,2")} : f32[1,2,2,2]
  %output = output(%a)
}}""")


def test_kernels_with_their_own_padding_share_a_centred_window_and_biases_stack():
    graph, _ = optimize(f"""graph {{
  {X}
  {conv("a", "[[[[1.0]]]]", "1,1,1,1", stride="[1, 1]")}
  %b = conv2d(%x) {{dilation=[1, 1], groups=1, padding=[1, 1], stride=[1, 1]}} params(bias: f32[1] = [0.5], weight: f32[1,1,3,3] = [[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]]])
  %cat = cat(%a, %b) {{dim=1}}
  %output = output(%cat)
}}""", "infer-shapes,fuse-cat-convs")
    weight = graph.params("a")["weight"]
    assert list(weight.shape) == [2, 1, 3, 3] and graph.attrs("a")["padding"] == [1, 1]
    assert weight[0].flatten().tolist() == [0.0] * 4 + [1.0] + [0.0] * 4  # the 1x1 at the centre tap
    assert graph.params("a")["bias"].tolist() == [0.0, 0.5]


def test_a_run_inside_a_longer_cat_is_fused_and_the_rest_kept():
    graph, _ = optimize(f"""graph {{
  {X}
  %r = relu(%x)
  {conv("a", "[[[[2.0]]]]", "1,1,1,1")}
  {conv("b", "[[[[3.0]]]]", "1,1,1,1")}
  {conv("c", "[[[[4.0]]]]", "1,1,1,1", source="%r")}
  %cat = cat(%a, %b, %c) {{dim=1}}
  %output = output(%cat)
}}""", "infer-shapes,fuse-cat-convs")
    assert graph.inputs("cat") == ["a", "c"] and list(graph.params("a")["weight"].shape) == [2, 1, 1, 1]


def test_a_convolution_read_elsewhere_is_left_alone():
    assert_unchanged(f"""graph {{
  {X}
  {conv("a", "[[[[2.0]]]]", "1,1,1,1")} : f32[1,1,2,2]
  {conv("b", "[[[[3.0]]]]", "1,1,1,1")} : f32[1,1,2,2]
  %cat = cat(%a, %b) {{dim=1}} : f32[1,2,2,2]
  %output = output(%cat, %a)
}}""", "fuse-cat-convs")


def test_grouped_convolutions_are_left_alone():
    assert_unchanged(f"""graph {{
  %x = input() {{index=0}} : f32[1,2,4,4]
  {conv("a", "[[[[2.0]]], [[[1.0]]]]", "2,1,1,1", groups=2)} : f32[1,2,2,2]
  {conv("b", "[[[[3.0]]], [[[1.0]]]]", "2,1,1,1", groups=2)} : f32[1,2,2,2]
  %cat = cat(%a, %b) {{dim=1}} : f32[1,4,2,2]
  %output = output(%cat)
}}""", "fuse-cat-convs")


def test_convolutions_of_different_values_are_left_alone():
    assert_unchanged(f"""graph {{
  {X}
  %r = relu(%x) : f32[1,1,4,4]
  {conv("a", "[[[[2.0]]]]", "1,1,1,1")} : f32[1,1,2,2]
  {conv("b", "[[[[3.0]]]]", "1,1,1,1", source="%r")} : f32[1,1,2,2]
  %cat = cat(%a, %b) {{dim=1}} : f32[1,2,2,2]
  %output = output(%cat)
}}""", "fuse-cat-convs")


def test_different_strides_are_left_alone_even_with_equal_output_shapes():
    three = "[[[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]]]"
    assert_unchanged(f"""graph {{
  {X}
  {conv("a", "[[[[2.0]]]]", "1,1,1,1")} : f32[1,1,2,2]
  {conv("b", three, "1,1,3,3", stride="[1, 1]")} : f32[1,1,2,2]
  %cat = cat(%a, %b) {{dim=1}} : f32[1,2,2,2]
  %output = output(%cat)
}}""", "fuse-cat-convs")
