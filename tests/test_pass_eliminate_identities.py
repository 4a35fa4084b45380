"""`eliminate-identities` alone, IR text in and out."""

from __future__ import annotations

from nascompile.backend import to_onnx
from nascompile.ir import parse_graph

from opt_cases import ir, optimize, printed


def test_users_read_the_identitys_argument():
    graph, ctx = optimize("""graph {
  %x = input() {index=0} : f32[2,3]
  %i = identity(%x) : f32[2,3]
  %j = identity(%i) : f32[2,3]
  %r = relu(%j) : f32[2,3]
  %s = sum(%i, %r, %j) : f32[2,3]
  %output = output(%s)
}""", "eliminate-identities")
    assert printed(graph) == ir("""graph {
  %x = input() {index=0} : f32[2,3]
  %r = relu(%x) : f32[2,3]
  %s = sum(%x, %r, %x) : f32[2,3]
  %output = output(%s)
}""")


def test_an_output_that_becomes_the_graph_input_still_emits():
    graph, _ = optimize("""graph {
  %x = input() {index=0} : f32[2,3]
  %i = identity(%x) : f32[2,3]
  %output = output(%i, %i)
}""", "eliminate-identities")
    assert graph.inputs("output") == ["x", "x"]
    model = to_onnx(graph)
    assert [o.name for o in model.graph.output] == ["output_0", "output_1"]


def test_nothing_to_do():
    text = "graph {\n  %x = input() {index=0} : f32[2]\n  %r = relu(%x) : f32[2]\n  %output = output(%r)\n}\n"
    graph = parse_graph(text)
    from nascompile.passes.eliminate_identities import eliminate_identities

    assert not eliminate_identities(graph, None).changed
    assert printed(graph) == ir(text)
