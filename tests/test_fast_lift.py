"""The lift's shortcuts compute what a plain trace would: candidates detached while the root is traced,
Sequential chains converted without tracing, and the model's modules left as they were."""

from __future__ import annotations

import torch
from torch import nn

import nascompile
from nascompile import nn as nc
from nascompile.frontend import lift
from nascompile.frontend.recognizers import ChoiceLifter, default_recognizers
from nascompile.frontend.tracer import LiftTracer
from nascompile.ir import print_graph
from nascompile.reference import eval_mode


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.choice = nc.LayerChoice({
            "seq": nn.Sequential(nn.ReLU(), nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.BatchNorm2d(2))),
            "conv": nn.Conv2d(2, 2, 1),
        }, label="c")

    def forward(self, x):
        return self.choice(x) + x


class PeekingNet(Net):
    """A forward outside the choice that reads one of its candidates."""

    def forward(self, x):
        return self.choice(x) * self.choice.candidates["conv"].out_channels


def test_candidates_are_detached_only_while_the_root_is_traced():
    model = Net()
    children = dict(model.choice._modules)
    seen = []
    lifter = ChoiceLifter(default_recognizers())

    class Spy(LiftTracer):
        def trace(self, root, concrete_args=None):
            seen.append(len(model.choice._modules))
            return super().trace(root, concrete_args)

    Spy(lifter.claims).trace_module(model, "")
    assert seen == [0] and model.choice._modules == children


def test_a_forward_reading_a_candidate_is_traced_with_candidates_attached():
    model = PeekingNet().eval()
    x = torch.randn(1, 2, 4, 4)
    result = nascompile.compile(model, (x,), verify_each=True)
    torch.testing.assert_close(nascompile.ir.run_graph(result.graph, (x,))[0], result.reference(x)[0])
    assert model.choice._modules.keys() == {"candidates"}


def test_sequential_candidates_convert_as_a_trace_names_them():
    model = Net().eval()
    x = torch.randn(1, 2, 4, 4)
    with torch.no_grad():
        model.choice.alpha.copy_(torch.tensor([5.0, 0.0, 0.0]))  # choose "seq"
    result = nascompile.compile(model, (x,), pipeline="darts-choice,expand,infer-shapes", verify_each=True)
    text = print_graph(result.graph)
    for path in ("choice.candidates.seq.0", "choice.candidates.seq.1.0", "choice.candidates.seq.1.1"):
        assert f'loc("{path}")' in text


def test_a_sequential_with_a_hook_is_traced_with_its_hook():
    model = Net().eval()
    with torch.no_grad():
        model.choice.alpha.copy_(torch.tensor([5.0, 0.0, 0.0]))
    model.choice.candidates["seq"][1].register_forward_hook(lambda module, args, out: out * 2)
    x = torch.randn(1, 2, 4, 4)
    result = nascompile.compile(model, (x,))
    torch.testing.assert_close(nascompile.ir.run_graph(result.graph, (x,))[0], result.reference(x)[0])


def test_eval_mode_restores_the_modules_that_were_training():
    model = Net()
    model.choice.candidates["conv"].eval()
    with eval_mode(model):
        assert not any(m.training for m in model.modules())
    assert model.training and not model.choice.candidates["conv"].training
    assert model.choice.candidates["seq"][1][1].training


def test_lift_keeps_choices_unexpanded():
    graph, _ = lift(Net().eval(), (torch.randn(1, 2, 4, 4),))
    assert graph.count_ops() == {"input": 1, "layer_choice": 1, "sum": 1, "output": 1}
