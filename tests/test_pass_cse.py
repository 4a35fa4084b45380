"""`cse` alone: common subexpressions, IR text in and out, checked by numbers."""

from __future__ import annotations

import torch

from nascompile.ir import Graph
from nascompile.passes import PassContext
from nascompile.passes.cse import cse

from opt_cases import assert_unchanged, ir, optimize, printed


def test_darts_edges_share_the_relu_of_their_state():
    graph, _ = optimize("""graph {
  %s = input() {index=0} : f32[1,2,4,4]
  %r1 = relu(%s) : f32[1,2,4,4]
  %c1 = conv2d(%r1) {dilation=[1, 1], groups=2, padding=[1, 1], stride=[1, 1]} params(weight: f32[2,1,3,3]) : f32[1,2,4,4]
  %r2 = relu(%s) : f32[1,2,4,4]
  %c2 = conv2d(%r2) {dilation=[2, 2], groups=2, padding=[2, 2], stride=[1, 1]} params(weight: f32[2,1,3,3]) : f32[1,2,4,4]
  %n = sum(%c1, %c2) : f32[1,2,4,4]
  %output = output(%n)
}""", "cse")
    assert printed(graph) == ir("""graph {
  %s = input() {index=0} : f32[1,2,4,4]
  %r1 = relu(%s) : f32[1,2,4,4]
  %c1 = conv2d(%r1) {dilation=[1, 1], groups=2, padding=[1, 1], stride=[1, 1]} params(weight: f32[2,1,3,3]) : f32[1,2,4,4]
  %c2 = conv2d(%r1) {dilation=[2, 2], groups=2, padding=[2, 2], stride=[1, 1]} params(weight: f32[2,1,3,3]) : f32[1,2,4,4]
  %n = sum(%c1, %c2) : f32[1,2,4,4]
  %output = output(%n)
}""")


def test_chains_merge_in_one_sweep_and_commutative_pairs_match_in_either_order():
    graph, _ = optimize("""graph {
  %x = input() {index=0} : f32[3]
  %y = input() {index=1} : f32[3]
  %a1 = relu(%x) : f32[3]
  %b1 = mul(%a1, %y) : f32[3]
  %a2 = relu(%x) : f32[3]
  %b2 = mul(%y, %a2) : f32[3]
  %d = sub(%b1, %b2) : f32[3]
  %e = sub(%b2, %b1) : f32[3]
  %output = output(%d, %e)
}""", "cse")
    assert printed(graph) == ir("""graph {
  %x = input() {index=0} : f32[3]
  %y = input() {index=1} : f32[3]
  %a1 = relu(%x) : f32[3]
  %b1 = mul(%a1, %y) : f32[3]
  %d = sub(%b1, %b1) : f32[3]
  %output = output(%d, %d)
}""")


def test_longer_sums_match_only_in_order():
    text = """graph {
  %x = input() {index=0} : f32[3]
  %y = input() {index=1} : f32[3]
  %z = input() {index=2} : f32[3]
  %s1 = sum(%x, %y, %z) : f32[3]
  %s2 = sum(%y, %x, %z) : f32[3]
  %output = output(%s1, %s2)
}"""
    assert_unchanged(text, "cse")


def test_different_attributes_or_constants_do_not_match():
    text = """graph {
  %x = input() {index=0} : f32[3]
  %k1 = constant() {value=0.0} : f32[]
  %k2 = constant() {value=-0.0} : f32[]
  %k3 = constant() {value=0} : i64[]
  %a = sum(%x, %k1) : f32[3]
  %b = sum(%x, %k2) : f32[3]
  %c = sum(%x, %k3) : f32[3]
  %l1 = leaky_relu(%x) {negative_slope=0.1} : f32[3]
  %l2 = leaky_relu(%x) {negative_slope=0.2} : f32[3]
  %output = output(%a, %b, %c, %l1, %l2)
}"""
    assert_unchanged(text, "cse")


def test_equal_constants_merge_by_value():
    graph, _ = optimize("""graph {
  %x = input() {index=0} : f32[2]
  %k1 = constant() params(value: f32[2] = [1.0, 2.0]) : f32[2]
  %k2 = constant() params(value: f32[2] = [1.0, 2.0]) : f32[2]
  %a = mul(%x, %k1) : f32[2]
  %b = mul(%x, %k2) : f32[2]
  %output = output(%a, %b)
}""", "cse")
    assert printed(graph) == ir("""graph {
  %x = input() {index=0} : f32[2]
  %k1 = constant() params(value: f32[2] = [1.0, 2.0]) : f32[2]
  %a = mul(%x, %k1) : f32[2]
  %output = output(%a, %a)
}""")


def test_parameters_match_by_identity_not_by_value():
    # two convolutions with equal but distinct weights stay two; a reused module's conv merges
    graph = Graph()
    x = graph.add_op("input", name="x", attrs={"index": 0})
    shared, other = torch.ones(1, 1, 1, 1), torch.ones(1, 1, 1, 1)
    attrs = {"stride": [1, 1], "padding": [0, 0], "dilation": [1, 1], "groups": 1}
    convs = [graph.add_op("conv2d", [x], name="c", attrs=attrs, params={"weight": w}) for w in (shared, shared, other)]
    graph.add_op("output", convs, name="output")
    assert cse(graph, PassContext()).changed
    assert graph.inputs("output") == ["c", "c", "c_2"]


def test_inputs_and_choices_are_never_merged():
    graph = Graph()
    a = graph.add_op("input", name="a", attrs={"index": 0})
    b = graph.add_op("input", name="b", attrs={"index": 0})
    graph.add_op("output", [a, b], name="output")
    assert not cse(graph, PassContext()).changed
