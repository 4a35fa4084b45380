"""`eliminate-zeros` alone: zero terms leave sums, IR text in and out, checked by numbers."""

from __future__ import annotations

from opt_cases import assert_unchanged, ir, optimize, printed

HEAD = """  %x = input() {index=0} : f32[2,3,4,4]
  %y = input() {index=1} : f32[2,3,4,4]
  %a = relu(%x) : f32[2,3,4,4]
  %b = tanh(%y) : f32[2,3,4,4]"""


def test_zero_terms_leave_a_sum():
    graph, _ = optimize(f"""graph {{
{HEAD}
  %z = zero(%x) : f32[2,3,4,4]
  %k = constant() {{value=0.0}} : f32[]
  %s = sum(%a, %z, %b, %k) : f32[2,3,4,4]
  %output = output(%s)
}}""", "eliminate-zeros")
    assert printed(graph) == ir(f"""graph {{
{HEAD}
  %z = zero(%x) : f32[2,3,4,4]
  %k = constant() {{value=0.0}} : f32[]
  %s = sum(%a, %b) : f32[2,3,4,4]
  %output = output(%s)
}}""")


def test_a_sum_left_with_one_term_becomes_that_term():
    graph, _ = optimize(f"""graph {{
{HEAD}
  %k = constant() {{value=0.0}} : f32[]
  %z = mul(%b, %k) : f32[2,3,4,4]
  %s = sum(%z, %a) : f32[2,3,4,4]
  %r = relu(%s) : f32[2,3,4,4]
  %output = output(%r)
}}""", "eliminate-zeros")
    # x * 0 became a zero (the simplify rule, applied in the same sweep) and left the sum
    assert printed(graph) == ir(f"""graph {{
{HEAD}
  %k = constant() {{value=0.0}} : f32[]
  %z = zero(%b) : f32[2,3,4,4]
  %r = relu(%a) : f32[2,3,4,4]
  %output = output(%r)
}}""")


def test_a_sum_of_only_zeros_is_a_zero_that_later_sums_drop():
    graph, _ = optimize(f"""graph {{
{HEAD}
  %z1 = zero(%x) : f32[2,3,4,4]
  %z2 = zero(%y) : f32[2,3,4,4]
  %s = sum(%z1, %z2) : f32[2,3,4,4]
  %r = relu(%s) : f32[2,3,4,4]
  %t = sum(%r, %a, %b) : f32[2,3,4,4]
  %output = output(%t, %s)
}}""", "eliminate-zeros")
    # %s is %z1; relu(0) = 0 so %r is %z1 too; it leaves %t; the output that read %s reads a zero op
    assert printed(graph) == ir(f"""graph {{
{HEAD}
  %z1 = zero(%x) : f32[2,3,4,4]
  %z2 = zero(%y) : f32[2,3,4,4]
  %t = sum(%a, %b) : f32[2,3,4,4]
  %output = output(%t, %z1)
}}""")


def test_a_zero_that_broadcasts_the_sum_stays():
    # the zero is larger than the other term: without it the sum would be smaller
    text = """graph {
  %x = input() {index=0} : f32[3,4]
  %y = input() {index=1} : f32[2,3,4]
  %z = zero(%y) : f32[2,3,4]
  %s = sum(%x, %z) : f32[2,3,4]
  %output = output(%s)
}"""
    assert_unchanged(text, "eliminate-zeros")


def test_a_sum_of_zeros_none_of_which_has_its_shape_stays():
    text = """graph {
  %x = input() {index=0} : f32[3,1]
  %y = input() {index=1} : f32[1,4]
  %zx = zero(%x) : f32[3,1]
  %zy = zero(%y) : f32[1,4]
  %s = sum(%zx, %zy) : f32[3,4]
  %output = output(%s)
}"""
    assert_unchanged(text, "eliminate-zeros")


def test_a_mean_keeps_its_zero_terms():
    # mean(a, 0) = a / 2
    text = f"""graph {{
{HEAD}
  %z = zero(%x) : f32[2,3,4,4]
  %m = mean(%a, %z) : f32[2,3,4,4]
  %output = output(%m)
}}"""
    assert_unchanged(text, "eliminate-zeros")


def test_binary_add_with_a_zero_constant_tensor():
    graph, _ = optimize(f"""graph {{
{HEAD}
  %k = constant() params(value: f32[3,1,1] = [[[0.0]], [[-0.0]], [[0.0]]]) : f32[3,1,1]
  %s = add(%k, %a) : f32[2,3,4,4]
  %output = output(%s)
}}""", "eliminate-zeros")
    assert graph.inputs("output") == ["a"]
