"""The lift's shortcuts compute what a plain trace would: candidates never traced until chosen,
Sequential chains converted without tracing, and the model's modules left as they were."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

import nascompile
from nascompile import nn as nc
from nascompile.frontend import lift
from nascompile.frontend.recognizers import ChoiceLifter, default_recognizers
from nascompile.frontend.tracer import ScopeTracer
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


def test_only_the_modules_outside_the_choices_are_traced():
    model = Net()
    children = dict(model.choice._modules)
    traced = []
    original = ScopeTracer.run

    def spy(self):
        traced.append(self.where)
        return original(self)

    ScopeTracer.run = spy
    try:
        lift(model.eval(), (torch.randn(1, 2, 4, 4),))
    finally:
        ScopeTracer.run = original
    assert traced == ["Net"] and model.choice._modules == children


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


# --- candidates built alike share one trace ------------------------------------------------------
class Scaled(nn.Module):
    """A custom op whose trace depends on a plain attribute (as DARTS's Zero does on its stride)."""

    def __init__(self, channels: int, scale: float):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)
        self.scale = scale

    def forward(self, x):
        return self.conv(x) * self.scale if self.scale != 1 else self.conv(x)


class MakesAConstant(nn.Module):
    """fx stores the tensor this forward creates on the traced module itself (`_tensor_constant0`)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)

    def forward(self, x):
        return self.conv(x) + torch.tensor([1.0, 2.0]).reshape(1, 2, 1, 1)


class Edges(nc.Supernet):
    def __init__(self, make):
        super().__init__()
        self.edges = nn.ModuleList(nc.LayerChoice({"op": make(i)}, label=f"e{i}") for i in range(4))

    def forward(self, x):
        for edge in self.edges:
            x = edge(x)
        return x


def compiled(make) -> nascompile.CompileResult:
    torch.manual_seed(0)
    model = Edges(make).eval()
    x = torch.randn(2, 2, 3, 3)
    result = nascompile.compile(model, (x,), verify_each=True)
    torch.testing.assert_close(nascompile.ir.run_graph(result.graph, (x,))[0], result.reference(x)[0])
    return result


def test_candidates_alike_are_traced_once_and_bound_to_their_own_weights():
    result = compiled(lambda i: Scaled(2, 0.5))
    assert result.lifter.traces.hits == 3  # four edges, one trace
    weights = {id(t) for n in result.graph.nodes_of("conv2d") for t in result.graph.params(n).values()}
    assert len(weights) == 8  # each edge computes with its own conv weight and bias


def test_candidates_differing_in_a_plain_attribute_are_traced_each():
    result = compiled(lambda i: Scaled(2, [1, 0.5][i % 2]))
    assert result.lifter.traces.hits == 2  # two structures, each traced once
    assert result.graph.count_ops().get("mul", 0) == 2  # scale 0.5 multiplies; scale 1 does not


def test_a_trace_holding_its_own_tensor_constant_is_not_shared():
    result = compiled(lambda i: MakesAConstant())
    assert result.lifter.traces.hits == 0


def test_modules_that_cannot_be_keyed_are_traced_each():
    from nascompile.frontend.trace_cache import structure_key

    module = Scaled(2, 0.5)
    assert structure_key(module, lambda m: False) == structure_key(Scaled(2, 0.5), lambda m: False)
    assert structure_key(module, lambda m: False) != structure_key(Scaled(3, 0.5), lambda m: False)
    module.activation = lambda x: x  # not plain data: its effect on the trace cannot be compared
    assert structure_key(module, lambda m: False) is None
    hooked = Scaled(2, 0.5)
    hooked.conv.register_forward_hook(lambda *args: None)
    assert structure_key(hooked, lambda m: False) is None


# --- custom ops that only chain their children convert without a trace ---------------------------
class Wraps(nn.Module):
    def __init__(self):
        super().__init__()
        self.op = nn.Sequential(nn.ReLU(), nn.Conv2d(2, 2, 3, padding=1), nn.BatchNorm2d(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """A docstring and annotations do not change the program."""
        return self.op(x)


class Nested(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.MaxPool2d(3, 1, 1)
        self.bn = nn.BatchNorm2d(2)

    def forward(self, x):
        return self.bn(self.pool(x))


class Sequenced(Nested):
    def forward(self, inputs):
        out = self.pool(inputs)
        return self.bn(out)


class PassThrough(nn.Module):
    def forward(self, x):
        return x


class Doubles(Wraps):
    def forward(self, x):
        return self.op(x) * 2


class Residual(Wraps):
    def forward(self, x):
        return self.op(x) + x


class CallsAProperty(nn.Module):
    """A child named `op` hidden by a property of that name: `self.op` is the property."""

    def __init__(self):
        super().__init__()
        self._modules["op"] = nn.ReLU()
        self.other = nn.Sigmoid()

    @property
    def op(self):
        return self.other

    def forward(self, x):
        return self.op(x)


def traced_types(make) -> list[str]:
    """Compile a supernet of `make()` candidates, check it, and list the candidates that needed a trace."""
    traced = []
    original = ScopeTracer.run

    def spy(self):
        traced.append(type(self.module).__name__)
        return original(self)

    ScopeTracer.run = spy
    try:
        compiled(lambda i: make())
    finally:
        ScopeTracer.run = original
    return [name for name in traced if name != "Edges"]


def test_forwards_that_only_chain_children_are_not_traced():
    for make in (Wraps, Nested, Sequenced, PassThrough):
        assert traced_types(make) == [], make.__name__


def test_forwards_that_do_more_are_traced():
    assert traced_types(Doubles) == ["Doubles"]  # the cache shares one trace among the four
    assert traced_types(Residual) == ["Residual"]
    assert traced_types(CallsAProperty) == ["CallsAProperty"]


def test_a_chain_is_named_as_a_trace_names_it():
    from nascompile.frontend.delegation import delegated_children

    assert [name for name, _ in delegated_children(Nested())] == ["pool", "bn"]
    assert [name for name, _ in delegated_children(Sequenced())] == ["pool", "bn"]
    assert delegated_children(PassThrough()) == [] and delegated_children(Doubles()) is None
    result = compiled(lambda i: Wraps())
    sources = {result.graph.meta(n).get("source") for n in result.graph.nodes_of("conv2d")}
    assert sources == {f"edges.{i}.candidates.op.op.1" for i in range(4)}


def test_a_compile_walks_the_module_tree_once(monkeypatch):
    """eval mode, the hook check and the tensor checks share one walk (`module_tree.survey`), for the lift and
    the passes."""
    from nascompile import module_tree

    model = Net().train()
    surveys, walks = [], []
    real_survey, real_walk = module_tree.survey, module_tree.submodules
    monkeypatch.setattr(module_tree, "survey", lambda root: surveys.append(root) or real_survey(root))
    monkeypatch.setattr(module_tree, "submodules", lambda root: walks.append(root) or real_walk(root))
    result = nascompile.compile(model, (torch.randn(1, 2, 4, 4),))
    assert surveys == [model] and walks == []
    assert result.decisions and all(m.training for m in model.modules())  # every flag restored


def test_nested_eval_mode_keeps_the_outer_one_and_restores_on_exit():
    model = Net().train()
    model.choice.candidates["conv"].eval()
    with eval_mode(model):
        with eval_mode(model):
            assert not any(m.training for m in model.modules())
        assert not any(m.training for m in model.modules())  # the inner exit restores nothing
    assert model.training and not model.choice.candidates["conv"].training
    assert model.choice.candidates["seq"].training


def test_a_draw_is_named_by_module_although_the_lift_watches_the_generators_once():
    class Noisy(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Sequential()

        def forward(self, x):
            return x + torch.rand(1).item()

    class Outer(Net):
        def __init__(self):
            super().__init__()
            self.noisy = Noisy()

        def forward(self, x):
            return self.noisy(self.choice(x))

    import pytest

    from nascompile.errors import TraceError

    with pytest.raises(TraceError, match=r"cannot lift module 'noisy': its forward draws random numbers"):
        lift(Outer(), (torch.randn(1, 2, 4, 4),))


class _Probed(nn.Module):
    """Attributes of every kind `module_tree.member` must find as getattr does."""

    kind = "class attribute"

    def __init__(self):
        super().__init__()
        self.plain = 3
        self.conv = nn.Conv2d(1, 1, 1)
        self.register_buffer("buf", torch.ones(1))
        self.weight = nn.Parameter(torch.zeros(2))

    @property
    def computed(self):
        return self.plain * 2

    @property
    def broken(self):
        raise AttributeError("not today")


class _Dynamic(nn.Module):
    def __getattr__(self, name):
        if name == "magic":
            return 42
        return super().__getattr__(name)


NAMES = ["kind", "plain", "conv", "buf", "weight", "computed", "broken", "forward", "training", "missing", "magic"]


def test_member_answers_as_getattr_does_inside_and_outside_a_compile():
    from nascompile.frontend import module_calls
    from nascompile.module_tree import has_member, member

    for module in (_Probed(), _Dynamic(), nn.Conv2d(1, 1, 1)):
        for active in (False, True):
            with (eval_mode(module) if active else contextlib.nullcontext()), module_calls.session():
                for name in NAMES:
                    expected = getattr(module, name, "default")
                    got = member(module, name, "default")
                    assert got is expected or got == expected, (type(module).__name__, name, active)
                    assert has_member(module, name) == hasattr(module, name), (type(module).__name__, name)


def test_member_sees_a_class_attribute_added_between_compiles():
    from nascompile.module_tree import member

    module = _Probed()
    with eval_mode(module):
        assert member(module, "added_later") is None
    _Probed.added_later = "now"
    try:
        with eval_mode(module):
            assert member(module, "added_later") == "now"
    finally:
        del _Probed.added_later


def test_tensor_names_give_each_tensor_its_first_name_in_module_order():
    from nascompile.frontend.tracer import TensorNames

    shared = nn.Parameter(torch.ones(3))
    inner = nn.Module()
    inner.alpha = shared  # registered: a parameter of `inner`
    inner.plain = torch.zeros(2)  # a plain tensor attribute
    inner.register_buffer("buf", torch.zeros(1))
    root = nn.Module()
    conv = nn.Conv2d(1, 1, 1)
    root.early = nn.Module()
    root.early.register_buffer("as_buffer", conv.weight)  # a parameter, registered as a buffer before its module
    root.first = nn.Sequential(conv, inner)
    root.again = inner  # the same module under a second path
    root.late = nn.Module()
    root.late.alpha = shared  # the shared parameter under a later name

    naive: dict[int, str] = {}
    for path, module in root.named_modules(remove_duplicate=False):
        prefix = f"{path}." if path else ""
        items = [(n, v) for n, v in vars(module).items() if isinstance(v, torch.Tensor) and not isinstance(v, nn.Parameter)]
        for name, value in items + list(module._buffers.items()) + list(module._parameters.items()):
            if value is not None:
                naive.setdefault(id(value), prefix + name)
    tensors = [shared, inner.plain, inner.buf, root.first[0].weight, root.first[0].bias]
    assert naive[id(conv.weight)] == "early.as_buffer" and naive[id(shared)] == "first.1.alpha"
    for tensor in tensors:
        assert TensorNames(root).name_of(tensor) == naive[id(tensor)]
    names = TensorNames(root)  # one index asked in any order, by both walks
    for tensor in reversed(tensors):
        assert names.name_of(tensor) == names.get(id(tensor)) == naive[id(tensor)]
    assert names.name_of(nn.Parameter(torch.ones(1))) is None
