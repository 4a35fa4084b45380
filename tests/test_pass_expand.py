"""`expand` alone: a decided layer choice becomes its chosen candidate, lifted from a real module."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nascompile import nn as nc
from nascompile.errors import IRError, PipelineError
from nascompile.frontend import ChoiceLifter
from nascompile.frontend.recognizers import default_recognizers
from nascompile.ir import parse_graph, print_graph, run_graph
from nascompile.passes import PassContext
from nascompile.passes.expand import expand


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.lc = nc.LayerChoice({
            "relu": nn.ReLU(),
            "conv": nn.Sequential(nn.Conv2d(2, 2, 1, bias=False), nn.ReLU()),
            "pool": nn.MaxPool2d(3, 1, 1),
        }, label="e")


CANDIDATES = '["relu", "conv", "pool", "none"]'
MODULES = '["lc.candidates.relu", "lc.candidates.conv", "lc.candidates.pool", null]'


def choice_line(name: str, src: str, chosen: str) -> str:
    return (f"  %{name} = layer_choice(%{src}) {{candidates={CANDIDATES}, {chosen}label=\"e\", modules={MODULES}, "
            f'zero=3}} params(logits: f32[4]) loc("lc")')


def graph_of(*lines: str, output: str = "%s"):
    text = "\n".join(["graph {", "  %x = input() {index=0}", *lines, f"  %output = output({output})", "}", ""])
    graph = parse_graph(text)
    graph.graph["root"] = Tiny()
    return graph


def context() -> PassContext:
    return PassContext(lifter=ChoiceLifter(default_recognizers()))


def test_the_chosen_candidate_is_traced_into_primitive_ops():
    graph = graph_of(choice_line("lc", "x", "chosen=1, "), '  %s = sum(%lc) {choice="n"}')
    x = torch.randn(2, 2, 5, 5)
    before = run_graph(graph, (x,))
    ctx = context()
    assert expand(graph, ctx).changed
    assert print_graph(graph) == """graph {
  %x = input() {index=0}
  %lc.candidates.conv.0 = conv2d(%x) {dilation=[1, 1], groups=1, padding=[0, 0], stride=[1, 1]} params(weight: f32[2,2,1,1]) loc("lc.candidates.conv.0")
  %lc.candidates.conv.1 = relu(%lc.candidates.conv.0) loc("lc.candidates.conv.1")
  %s = sum(%lc.candidates.conv.1) {choice="n"}
  %output = output(%s)
}
"""
    weight = graph.params("lc.candidates.conv.0")["weight"]
    assert torch.equal(weight, graph.root.lc.candidates["conv"][0].weight.detach())
    torch.testing.assert_close(run_graph(graph, (x,))[0], before[0], rtol=0, atol=0)


def test_a_plain_layer_candidate_becomes_one_op():
    graph = graph_of(choice_line("lc", "x", "chosen=2, "), "  %s = relu(%lc)")
    expand(graph, context())
    assert print_graph(graph).splitlines()[2:4] == [
        "  %lc.candidates.pool = max_pool2d(%x) {ceil_mode=false, dilation=[1, 1], kernel_size=[3, 3], padding=[1, 1], "
        'stride=[1, 1]} loc("lc.candidates.pool")',
        "  %s = relu(%lc.candidates.pool)",
    ]


def test_two_instances_of_one_candidate_get_distinct_nodes_with_their_own_inputs():
    graph = graph_of(choice_line("lc", "x", "chosen=0, "), "  %r = sigmoid(%x)", choice_line("lc2", "r", "chosen=0, "),
                     "  %s = add(%lc, %lc2)")
    expand(graph, context())
    relus = graph.nodes_of("relu")
    assert len(relus) == 2 and sorted(graph.inputs(n)[0] for n in relus) == ["r", "x"]
    assert sorted(graph.inputs("s")) == sorted(relus)
    assert graph.count_ops().get("layer_choice", 0) == 0


def test_the_architecture_is_recorded_before_expansion():
    graph = graph_of(choice_line("lc", "x", "chosen=1, "), '  %s = sum(%lc) {choice="n"}')
    ctx = context()
    expand(graph, ctx)
    (cell,) = ctx.architecture.cells
    assert [(e.op, e.source, e.label) for e in cell.nodes[0].edges] == [("conv", 0, "e")]


def test_an_undecided_layer_choice_is_refused():
    graph = graph_of(choice_line("lc", "x", ""), '  %s = sum(%lc) {choice="n"}')
    with pytest.raises(PipelineError, match="expand found the undecided layer choice 'e'; run darts-choice first"):
        expand(graph, context())


def test_a_graph_without_its_supernet_is_refused():
    graph = graph_of(choice_line("lc", "x", "chosen=0, "), "  %s = relu(%lc)")
    del graph.graph["root"]
    with pytest.raises(PipelineError, match="expand needs the supernet module"):
        expand(graph, context())


def test_a_graph_without_layer_choices_is_unchanged():
    graph = graph_of("  %s = relu(%x)")
    text = print_graph(graph)
    ctx = context()
    assert not expand(graph, ctx).changed
    assert print_graph(graph) == text and ctx.architecture is None


def test_a_candidate_path_missing_from_the_supernet_is_an_ir_error():
    line = choice_line("lc", "x", "chosen=0, ").replace('"lc.candidates.relu"', '"lc.candidates.nope"')
    with pytest.raises(IRError, match="has no submodule 'lc.candidates.nope'"):
        expand(graph_of(line, "  %s = relu(%lc)"), context())
    with pytest.raises(IRError, match="has no submodule 'lc.candidates.nope'"):
        run_graph(graph_of(line, "  %s = relu(%lc)"), (torch.randn(1, 2, 3, 3),))
