"""`dce` alone: IR text in, IR text out."""

from __future__ import annotations

import pytest

from nascompile.errors import IRError
from nascompile.ir import Graph, print_graph
from nascompile.passes.dce import dce

from conftest import layer_choice_line as lc
from conftest import run_pass


def test_removes_everything_that_no_longer_reaches_the_output():
    text = f"""graph {{
  %x = input() {{index=0}}
  %y = input() {{index=1}}
  %a = relu(%x)
  %dead1 = relu(%x)
  %dead2 = add(%dead1, %a)
  %k = constant() {{value=2.0}}
  %dead3 = mul(%dead2, %k)
{lc("lc", "a", "e", [0, 0, 0])}
  %b = add(%a, %a)
  %output = output(%b)
}}
"""
    graph, _, result = run_pass(dce, text)
    # the unused input %y stays: inputs are the graph's signature
    assert print_graph(graph) == """graph {
  %x = input() {index=0}
  %y = input() {index=1}
  %a = relu(%x)
  %b = add(%a, %a)
  %output = output(%b)
}
"""
    assert result.changed


def test_a_graph_without_dead_code_is_unchanged():
    text = "graph {\n  %x = input() {index=0}\n  %a = relu(%x)\n  %output = output(%a, %x)\n}\n"
    graph, _, result = run_pass(dce, text)
    assert print_graph(graph) == text and not result.changed


def test_running_twice_changes_nothing_the_second_time():
    text = "graph {\n  %x = input() {index=0}\n  %a = relu(%x)\n  %d = relu(%a)\n  %output = output(%a)\n}\n"
    graph, ctx, first = run_pass(dce, text)
    assert first.changed and not dce(graph, ctx).changed
    assert sorted(graph.nodes) == ["a", "output", "x"]


def test_needs_exactly_one_output():
    graph = Graph()
    graph.add_op("input", name="x", attrs={"index": 0})
    with pytest.raises(IRError, match="exactly one `output` node, found 0"):
        dce(graph, None)
