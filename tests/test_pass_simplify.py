"""`simplify` alone: neutral and absorbing operands, IR text in and out, checked by numbers."""

from __future__ import annotations

import pytest

from opt_cases import assert_unchanged, ir, optimize, printed

X = "%x = input() {index=0} : f32[2,3,4,4]"


def test_multiplying_by_one_and_dividing_by_one_give_the_operand():
    graph, _ = optimize(f"""graph {{
  {X}
  %one = constant() {{value=1.0}} : f32[]
  %a = mul(%one, %x) : f32[2,3,4,4]
  %b = div(%a, %one) : f32[2,3,4,4]
  %c = relu(%b) : f32[2,3,4,4]
  %output = output(%c)
}}""", "simplify")
    assert printed(graph) == ir(f"""graph {{
  {X}
  %one = constant() {{value=1.0}} : f32[]
  %c = relu(%x) : f32[2,3,4,4]
  %output = output(%c)
}}""")


def test_subtracting_or_adding_zero_gives_the_operand():
    graph, _ = optimize(f"""graph {{
  {X}
  %zero = constant() {{value=0.0}} : f32[]
  %a = sub(%x, %zero) : f32[2,3,4,4]
  %b = add(%zero, %a) : f32[2,3,4,4]
  %output = output(%b)
}}""", "simplify")
    assert printed(graph) == ir(f"""graph {{
  {X}
  %zero = constant() {{value=0.0}} : f32[]
  %output = output(%x)
}}""")


def test_zero_minus_x_is_not_x():
    text = f"""graph {{
  {X}
  %zero = constant() {{value=0.0}} : f32[]
  %a = sub(%zero, %x) : f32[2,3,4,4]
  %output = output(%a)
}}"""
    assert_unchanged(text, "simplify")


def test_times_zero_becomes_a_zero_op_shaped_like_the_product():
    # DARTS's zero op on a strided edge: x[:, :, ::2, ::2].mul(0.)
    graph, _ = optimize(f"""graph {{
  {X}
  %s = slice(%x) {{dims=[2, 3], ends=[null, null], starts=[0, 0], steps=[2, 2]}} : f32[2,3,2,2]
  %k = constant() {{value=0.0}} : f32[]
  %z = mul(%s, %k) : f32[2,3,2,2]
  %output = output(%z)
}}""", "simplify")
    assert printed(graph) == ir(f"""graph {{
  {X}
  %s = slice(%x) {{dims=[2, 3], ends=[null, null], starts=[0, 0], steps=[2, 2]}} : f32[2,3,2,2]
  %k = constant() {{value=0.0}} : f32[]
  %z = zero(%s) : f32[2,3,2,2]
  %output = output(%z)
}}""")


def test_zero_flows_through_ops_that_keep_zero_and_stops_at_ops_that_do_not():
    graph, _ = optimize(f"""graph {{
  {X}
  %k = constant() {{value=0.0}} : f32[]
  %z = mul(%x, %k) : f32[2,3,4,4]
  %r = relu(%z) : f32[2,3,4,4]
  %t = tanh(%r) : f32[2,3,4,4]
  %c = clip(%t) {{max=6.0, min=0.0}} : f32[2,3,4,4]
  %s = sigmoid(%c) : f32[2,3,4,4]
  %output = output(%s)
}}""", "simplify")
    assert printed(graph) == ir(f"""graph {{
  {X}
  %k = constant() {{value=0.0}} : f32[]
  %z = zero(%x) : f32[2,3,4,4]
  %s = sigmoid(%z) : f32[2,3,4,4]
  %output = output(%s)
}}""")


def test_clip_whose_range_excludes_zero_keeps_its_zero_input():
    text = f"""graph {{
  {X}
  %z = zero(%x) : f32[2,3,4,4]
  %c = clip(%z) {{max=6.0, min=1.0}} : f32[2,3,4,4]
  %output = output(%c)
}}"""
    assert_unchanged(text, "simplify")


def test_a_broadcasting_neutral_operand_is_kept():
    # x * ones(2, 1, 1, 1, 1) has one more dimension than x: removing the product would change its shape
    text = f"""graph {{
  {X}
  %ones = constant() params(value: f32[2,1,1,1,1] = [[[[[1.0]]]], [[[[1.0]]]]]) : f32[2,1,1,1,1]
  %a = mul(%x, %ones) : f32[2,2,3,4,4]
  %output = output(%a)
}}"""
    assert_unchanged(text, "simplify")


def test_a_type_promoting_neutral_operand_is_kept():
    # an int64 tensor times 1.0 is a float tensor
    text = """graph {
  %i = input() {index=0} : i64[3]
  %one = constant() {value=1.0} : f32[]
  %a = mul(%i, %one) : f32[3]
  %output = output(%a)
}"""
    assert_unchanged(text, "simplify")


def test_without_shape_meta_nothing_is_rewritten():
    text = """graph {
  %x = input() {index=0} : f32[2,3]
  %one = constant() {value=1.0}
  %a = mul(%x, %one)
  %output = output(%a)
}"""
    assert_unchanged(text, "simplify")


@pytest.mark.parametrize("op", ["sum", "mean", "cat"])
def test_an_aggregation_of_one_value_is_that_value(op):
    graph, _ = optimize(f"""graph {{
  {X}
  %r = relu(%x) : f32[2,3,4,4]
  %a = {op}(%r) : f32[2,3,4,4]
  %output = output(%a)
}}""", "simplify")
    assert printed(graph) == ir(f"""graph {{
  {X}
  %r = relu(%x) : f32[2,3,4,4]
  %output = output(%r)
}}""")


def test_a_tensor_constant_of_ones_is_neutral():
    graph, ctx = optimize(f"""graph {{
  {X}
  %ones = constant() params(value: f32[3,1,1] = [[[1.0]], [[1.0]], [[1.0]]]) : f32[3,1,1]
  %a = mul(%x, %ones) : f32[2,3,4,4]
  %output = output(%a)
}}""", "simplify")
    assert graph.inputs("output") == ["x"]
