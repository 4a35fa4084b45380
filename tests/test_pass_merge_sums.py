"""`merge-sums` alone: n-ary sums, IR text in and out, checked by numbers."""

from __future__ import annotations

from opt_cases import assert_unchanged, ir, optimize, printed

HEAD = """  %a = input() {index=0} : f32[4]
  %b = input() {index=1} : f32[4]
  %c = input() {index=2} : f32[4]
  %d = input() {index=3} : f32[4]"""


def test_add_becomes_sum_and_left_nested_sums_flatten():
    graph, _ = optimize(f"""graph {{
{HEAD}
  %ab = add(%a, %b) : f32[4]
  %abc = sum(%ab, %c) : f32[4]
  %abcd = add(%abc, %d) : f32[4]
  %output = output(%abcd)
}}""", "merge-sums")
    assert printed(graph) == ir(f"""graph {{
{HEAD}
  %abcd = sum(%a, %b, %c, %d) : f32[4]
  %output = output(%abcd)
}}""")


def test_a_sum_nested_after_the_first_term_is_kept():
    # a + (b + c) rounds differently from (a + b) + c
    text = f"""graph {{
{HEAD}
  %bc = sum(%b, %c) : f32[4]
  %s = sum(%a, %bc) : f32[4]
  %output = output(%s)
}}"""
    assert_unchanged(text, "merge-sums")


def test_a_nested_sum_read_elsewhere_is_kept():
    text = f"""graph {{
{HEAD}
  %ab = sum(%a, %b) : f32[4]
  %s = sum(%ab, %c) : f32[4]
  %r = relu(%ab) : f32[4]
  %output = output(%s, %r)
}}"""
    assert_unchanged(text, "merge-sums")


def test_a_sum_read_twice_by_one_sum_is_kept():
    text = f"""graph {{
{HEAD}
  %ab = sum(%a, %b) : f32[4]
  %s = sum(%ab, %ab) : f32[4]
  %output = output(%s)
}}"""
    assert_unchanged(text, "merge-sums")
