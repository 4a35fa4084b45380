"""The pass manager: pipeline strings, `print_after`, verification after each pass and `verify_each`."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import nascompile
from nascompile import nn as nc
from nascompile.errors import ChoiceError, IRError, PipelineError, VerifyEachError
from nascompile.ir import parse_graph
from nascompile.passes import PassContext, PassResult, available_passes, parse_pipeline, register_pass, run_pipeline
from nascompile.passes import PIPELINE_O0, manager

from conftest import layer_choice_line as lc


# --- pipeline strings -----------------------------------------------------------------------------
def test_options_in_braces_with_kebab_case_keys():
    assert parse_pipeline("darts-choice,finalize{rank=logit max-final-edges=1},dce") == [
        ("darts-choice", {}), ("finalize", {"rank": "logit", "max_final_edges": 1}), ("dce", {})]


def test_option_values_are_typed():
    assert parse_pipeline("finalize{a=1 b=1.5 c=true d=false e=renorm}") == [
        ("finalize", {"a": 1, "b": 1.5, "c": True, "d": False, "e": "renorm"})]


def test_spaces_around_names_are_allowed():
    assert parse_pipeline(" dce , finalize {rank=logit} ") == [("dce", {}), ("finalize", {"rank": "logit"})]


def test_available_passes_lists_the_built_in_ones():
    assert {"darts-choice", "finalize", "dce", "expand", "infer-shapes"} <= set(available_passes())


def test_an_unknown_pass_is_named_with_the_available_ones():
    with pytest.raises(PipelineError) as info:
        parse_pipeline("darts-choice,prune,dce")
    assert "unknown pass 'prune' in pipeline 'darts-choice,prune,dce'" in str(info.value)
    assert "available: apply-arch, cse, darts-choice, dce, eliminate-identities" in str(info.value)


@pytest.mark.parametrize("pipeline, message", [
    ("dce,,dce", "cannot parse pipeline 'dce,,dce' at character 5"),
    (",dce", "at character 1"),
    ("finalize{rank=logit", "at character 1"),
    ("finalize{rank=logit}dce", "at character 1"),
    ("dce{a=1}{b=2}", "at character 1"),
    ("dce;finalize", "at character 1"),
    ("Dce", "at character 1"),
    ("finalize{rank}", "option 'rank' of pass 'finalize' must be key=value"),
    ("", "the pipeline is empty"),
    ("   ", "the pipeline is empty"),
])
def test_bad_syntax_is_a_pipeline_error(pipeline, message):
    with pytest.raises(PipelineError) as info:
        parse_pipeline(pipeline)
    assert message in str(info.value)


RELU = "graph {\n  %x = input() {index=0}\n  %r = relu(%x)\n  %d = sigmoid(%x)\n  %output = output(%r)\n}\n"


def test_an_option_the_pass_does_not_take_is_a_pipeline_error():
    with pytest.raises(PipelineError, match=r"pass 'dce' does not take option\(s\) \['foo'\]"):
        run_pipeline(parse_graph(RELU), "dce{foo=1}", PassContext())


def test_a_bad_option_value_is_refused_by_the_pass():
    with pytest.raises(ChoiceError, match="unknown rank convention 'best'"):
        run_pipeline(parse_graph(RELU), "finalize{rank=best}", PassContext())


def test_options_reach_the_pass():
    decided = [lc(f"e{i}", "x", f"e{i}", [v, 0.0, 0.0], chosen=0) for i, v in enumerate((3.0, 1.0, 2.0))]
    text = "\n".join(["graph {", "  %x = input() {index=0}", *decided, "  %s = sum(%e0, %e1, %e2)",
                      "  %output = output(%s)", "}", ""])
    # logit ranks 3 > 2 > 1: one final edge keeps e0, two keep e0 and e2
    graph = run_pipeline(parse_graph(text), "finalize{max-final-edges=1 rank=logit}", PassContext())
    assert graph.inputs("s") == ["e0"]
    graph = run_pipeline(parse_graph(text), "finalize{max-final-edges=2}", PassContext())
    assert graph.inputs("s") == ["e0", "e2"]


# --- print_after ----------------------------------------------------------------------------------
def printed(pipeline: str, print_after: set[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    run_pipeline(parse_graph(RELU), pipeline, PassContext(), print_after=print_after,
                 printer=lambda name, text: out.append((name, text)))
    return out


AFTER_DCE = "graph {\n  %x = input() {index=0}\n  %r = relu(%x)\n  %output = output(%r)\n}\n"


def test_print_after_one_pass():
    assert printed("finalize,dce", {"dce"}) == [("dce", AFTER_DCE)]


def test_print_after_all():
    assert printed("finalize,dce", {"all"}) == [("finalize", RELU), ("dce", AFTER_DCE)]


def test_print_after_a_pass_run_twice_prints_twice():
    assert printed("dce,finalize,dce", {"dce"}) == [("dce", AFTER_DCE), ("dce", AFTER_DCE)]


def test_nothing_is_printed_without_print_after():
    assert printed("dce", set()) == []


# --- verification after each pass -----------------------------------------------------------------
@pytest.fixture
def test_pass():
    """Register passes for one test only, and take them out of the registry afterwards."""
    names: list[str] = []

    def register(name: str, fn):
        names.append(name)
        register_pass(name)(fn)

    yield register
    for name in names:
        manager._PASSES.pop(name)
    assert not set(names) & set(available_passes())


def relu_to_identity(graph, ctx):
    """Wrong on purpose: relu(x) != x for negative x."""
    for node in graph.nodes_of("relu"):
        graph.replace_op(node, "identity", graph.inputs(node))
    return PassResult(changed=True)


def test_verify_each_catches_a_pass_that_changes_what_the_graph_computes(test_pass):
    test_pass("relu-to-identity", relu_to_identity)
    ctx = PassContext(example_inputs=(torch.tensor([-1.0, 2.0]),))
    with pytest.raises(VerifyEachError) as info:
        run_pipeline(parse_graph(RELU), "dce,relu-to-identity", ctx, verify_each=True)
    assert "pass 'relu-to-identity' changed what the graph computes: output 0 differs by up to 1" in str(info.value)
    # without verify_each the wrong rewrite goes through: only the structure is verified
    graph = run_pipeline(parse_graph(RELU), "relu-to-identity", ctx)
    assert graph.op("r") == "identity"


def test_verify_each_catches_a_changed_shape_and_a_changed_output_count(test_pass):
    def flatten_everything(graph, ctx):
        node = graph.add_op("flatten", [graph.inputs("output")[0]], attrs={"start_dim": 0, "end_dim": -1})
        graph.set_inputs("output", [node])
        return PassResult(changed=True)

    def add_output(graph, ctx):
        graph.set_inputs("output", graph.inputs("output") * 2)
        return PassResult(changed=True)

    test_pass("flatten-everything", flatten_everything)
    test_pass("add-output", add_output)
    ctx = PassContext(example_inputs=(torch.ones(2, 3),))
    with pytest.raises(VerifyEachError, match=r"pass 'flatten-everything' changed output 0's shape from \[2, 3\] to \[6\]"):
        run_pipeline(parse_graph(RELU), "flatten-everything", ctx, verify_each=True)
    with pytest.raises(VerifyEachError, match="pass 'add-output' changed the number of outputs from 1 to 2"):
        run_pipeline(parse_graph(RELU), "add-output", ctx, verify_each=True)


def test_verify_each_reports_a_graph_the_interpreter_cannot_run(test_pass):
    def bad_shapes(graph, ctx):
        node = graph.add_op("linear", [graph.inputs("output")[0]], params={"weight": torch.ones(4, 5)})
        graph.set_inputs("output", [node])
        return PassResult(changed=True)

    test_pass("bad-shapes", bad_shapes)
    with pytest.raises(VerifyEachError, match="pass 'bad-shapes': interpreting the graph failed"):
        run_pipeline(parse_graph(RELU), "bad-shapes", PassContext(example_inputs=(torch.ones(2, 3),)), verify_each=True)


def test_a_pass_leaving_a_malformed_graph_is_caught_even_without_verify_each(test_pass):
    def dangle(graph, ctx):
        graph.add_edge("x", "r", port=3)
        return PassResult(changed=True)

    test_pass("dangle", dangle)
    with pytest.raises(IRError, match=r"node %r has argument ports \[0, 3\]"):
        run_pipeline(parse_graph(RELU), "dangle", PassContext())


def test_verify_each_needs_example_inputs():
    with pytest.raises(PipelineError, match="verify-each needs example inputs"):
        run_pipeline(parse_graph(RELU), "dce", PassContext(), verify_each=True)


def branches() -> dict[str, nn.Module]:
    return {"relu": nn.ReLU(), "neg": nn.Sequential(nn.Conv2d(2, 2, 1), nn.Tanh())}


class Small(nc.Supernet):
    def __init__(self):
        super().__init__()
        self.e0 = nc.LayerChoice(branches(), label="e0")
        self.e1 = nc.LayerChoice(branches(), label="e1")
        self.e2 = nc.LayerChoice({"pool": nn.AvgPool2d(3, 1, 1)}, label="e2")
        self.e3 = nc.LayerChoice(branches(), label="e3")
        self.node = nc.InputChoice(2, n_chosen=1, label="n", choose_from=["e0", "e1"])

    def forward(self, x):
        a = self.node([self.e0(x), self.e1(x)])
        return self.e2(a) + self.e3(a) + x  # a plain sum of two ranked edges and a required one: finalize prunes it


def test_verify_each_passes_on_correct_passes():
    torch.manual_seed(0)
    model = Small()
    with torch.no_grad():
        model.e0.alpha.copy_(torch.tensor([0.0, 2.0, 0.0]))  # e0 -> neg, strength e^2/(e^2+2) = 0.787
        model.e1.alpha.copy_(torch.tensor([1.0, 0.0, 0.0]))  # e1 -> relu, strength e/(e+2) = 0.576: n drops it
        model.e2.alpha.copy_(torch.tensor([0.0, 0.0]))  # e2 -> pool, strength 1/2: finalize drops it
        model.e3.alpha.copy_(torch.tensor([1.0, 0.0, 0.0]))  # e3 -> relu, strength 0.576: kept with x
    seen = []
    result = nascompile.compile(model, (torch.randn(1, 2, 4, 4),), pipeline=PIPELINE_O0, max_final_edges=1,
                                verify_each=True, print_after={"all"}, printer=lambda name, text: seen.append(name))
    assert seen == ["darts-choice", "finalize", "dce", "expand", "dce", "infer-shapes"]
    assert result.decisions == {"e0": "neg", "e1": [], "e2": [], "e3": "relu", "n": ["e0"]}
    assert "avg_pool2d" not in result.graph.count_ops()


def test_a_trailing_comma_is_a_missing_pass():
    with pytest.raises(PipelineError, match="ends with a comma"):
        parse_pipeline("dce,")


def test_print_after_a_pass_the_pipeline_does_not_run_is_refused():
    with pytest.raises(PipelineError, match=r"print-after names \['expand'\], which the pipeline does not run"):
        run_pipeline(parse_graph(RELU), "dce", PassContext(), print_after={"expand"}, printer=lambda *a: None)


def test_verify_each_compares_the_tensors_inside_list_outputs(test_pass):
    packed = "graph {\n  %x = input() {index=0}\n  %r = relu(%x)\n  %l = pack(%x, %r)\n  %output = output(%l)\n}\n"

    def swap(graph, ctx):
        graph.set_inputs("l", ["r", "x"])
        return PassResult(changed=True)

    test_pass("swap-list", swap)
    with pytest.raises(VerifyEachError, match="pass 'swap-list' changed what the graph computes: output 0"):
        run_pipeline(parse_graph(packed), "swap-list", PassContext(example_inputs=(torch.randn(2, 3),)), verify_each=True)


def test_a_nested_choice_inside_the_chosen_candidate_is_refused():
    class Net(nc.Supernet):
        def __init__(self):
            super().__init__()
            inner = nc.LayerChoice([nn.ReLU(), nn.Sigmoid()], label="inner")
            self.outer = nc.LayerChoice({"nested": inner, "skip": nn.Identity()}, label="outer")

        def forward(self, x):
            return self.outer(x)

    net = Net()
    with torch.no_grad():
        net.outer.alpha.copy_(torch.tensor([5.0, 0.0, 0.0]))
    with pytest.raises(ChoiceError, match="candidate 'outer.candidates.nested' of layer choice 'outer' contains the "
                                          "choice 'inner': nested choices are not supported"):
        nascompile.compile(net, (torch.randn(1, 3),))
