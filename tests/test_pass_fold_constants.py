"""`fold-constants` alone, IR text in and out, checked by numbers."""

from __future__ import annotations

import pytest

from nascompile.errors import IRError

from opt_cases import assert_unchanged, ir, optimize, printed


def test_ops_on_constants_become_constants():
    graph, _ = optimize("""graph {
  %x = input() {index=0} : f32[2]
  %a = constant() {value=2.0} : f32[]
  %b = constant() {value=3} : i64[]
  %s = sum(%a, %b) : f32[]
  %t = constant() params(value: f32[2] = [1.0, -2.0]) : f32[2]
  %r = relu(%t) : f32[2]
  %m = mul(%r, %s) : f32[2]
  %n = size(%t) {dim=0} : i64[]
  %y = mul(%x, %m) : f32[2]
  %output = output(%y, %n)
}""", "fold-constants")
    # the interpreter adds Python numbers with torch.add, so %s is a 0-d tensor; `size` gives a number
    assert printed(graph) == ir("""graph {
  %x = input() {index=0} : f32[2]
  %a = constant() {value=2.0} : f32[]
  %b = constant() {value=3} : i64[]
  %s = constant() params(value: f32[] = 5.0) : f32[]
  %t = constant() params(value: f32[2] = [1.0, -2.0]) : f32[2]
  %r = constant() params(value: f32[2] = [1.0, 0.0]) : f32[2]
  %m = constant() params(value: f32[2] = [5.0, 0.0]) : f32[2]
  %n = constant() {value=2} : i64[]
  %y = mul(%x, %m) : f32[2]
  %output = output(%y, %n)
}""")


def test_a_broadcast_larger_than_its_arguments_is_left_to_run_time():
    text = """graph {
  %x = input() {index=0} : f32[2]
  %a = constant() params(value: f32[40,1] = %s) : f32[40,1]
  %b = constant() params(value: f32[1,40] = [%s]) : f32[1,40]
  %p = mul(%a, %b) : f32[40,40]
  %y = mul(%x, %p) : f32[40,40]
  %output = output(%y)
}"""
    ones = ", ".join("1.0" for _ in range(40))
    text = text.replace("[%s]", f"[[{ones}]]").replace("= %s", "= [" + ", ".join("[1.0]" for _ in range(40)) + "]")
    graph, _ = optimize(text.replace("f32[2]", "f32[40]"), "fold-constants")
    assert graph.op("p") == "mul"


def test_nothing_that_reads_a_graph_input_is_folded():
    text = """graph {
  %x = input() {index=0} : f32[2]
  %r = relu(%x) : f32[2]
  %output = output(%r)
}"""
    assert_unchanged(text, "fold-constants")


def test_a_failing_constant_expression_names_the_node():
    with pytest.raises(IRError, match=r"node %p \(mul at module 'head'\) fails on its constant arguments"):
        optimize("""graph {
  %x = input() {index=0} : f32[2]
  %a = constant() params(value: f32[3] = [1.0, 2.0, 3.0])
  %b = constant() params(value: f32[2] = [1.0, 2.0])
  %p = mul(%a, %b) loc("head")
  %y = mul(%x, %p)
  %output = output(%y)
}""", "fold-constants")
