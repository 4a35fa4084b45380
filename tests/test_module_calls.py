"""The lift's routing of nn.Module calls (`frontend/module_calls.py`): patched once per session, restored
after it (also on errors), recording only the tracing thread's calls."""

import threading

import pytest
import torch
from torch import nn
from torch.fx import _symbolic_trace as symbolic

import nascompile
from nascompile.frontend import module_calls
from nascompile.frontend.tracer import ScopeTracer, bind_call


class Doubler(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x):
        return self.lin(x) * 2


def _traced(module, *inputs):
    binding = bind_call(module, inputs, {}, lambda v: isinstance(v, torch.Tensor))
    return ScopeTracer(module, "", binding).run().graph


def test_nn_module_is_restored_after_a_session_and_after_one_that_raised():
    with module_calls.session():
        with module_calls.session():
            assert nn.Module.__call__ is not symbolic._orig_module_call
        assert nn.Module.__call__ is not symbolic._orig_module_call  # the outer session still holds it
    assert nn.Module.__call__ is symbolic._orig_module_call
    assert nn.Module.__getattr__ is symbolic._orig_module_getattr
    with pytest.raises(RuntimeError), module_calls.session():
        raise RuntimeError("boom")
    assert nn.Module.__call__ is symbolic._orig_module_call


def test_a_trace_records_submodule_calls_as_leaves_and_leaves_nn_module_unpatched():
    graph = _traced(Doubler(), torch.randn(1, 3))
    assert [(n.op, str(n.target)) for n in graph.nodes] == [
        ("placeholder", "x"), ("call_module", "lin"), ("call_function", "<built-in function mul>"),
        ("output", "output")]
    assert nn.Module.__call__ is symbolic._orig_module_call


def test_eager_calls_inside_a_session_and_on_other_threads_are_not_recorded():
    model, x = Doubler(), torch.randn(2, 3)
    expected = model.lin(x) * 2
    seen = {}

    class Probe(nn.Module):
        def forward(self, y):
            other = threading.Thread(target=lambda: seen.update(out=model(x)))  # eager, while this thread traces
            other.start()
            other.join()
            with module_calls.eager():
                seen["eager"] = model(x)
            return y + 1

    graph = _traced(Probe(), torch.randn(2, 3))
    assert torch.equal(seen["out"], expected) and torch.equal(seen["eager"], expected)
    assert [n.op for n in graph.nodes] == ["placeholder", "call_function", "output"]


def test_fx_tracing_flag_is_set_inside_a_trace_only():
    flags = []

    class Asks(nn.Module):
        def forward(self, x):
            flags.append(torch.fx._symbolic_trace.is_fx_tracing())
            return x

    _traced(Asks(), torch.randn(1))
    assert flags == [True] and not torch.fx._symbolic_trace.is_fx_tracing()


def test_a_compile_patches_nn_module_twice_at_most_whatever_the_number_of_traces(monkeypatch):
    """Two sessions (lift; passes with expand), not two patches per fx trace."""
    from nascompile import nn as nc

    class Net(nc.Supernet):
        def __init__(self):
            super().__init__()
            self.cells = nn.ModuleList(nc.LayerChoice({"a": Doubler(), "b": nn.Identity()}, label=f"c{i}")
                                       for i in range(3))

        def forward(self, x):
            for cell in self.cells:
                x = cell(x)
            return x

    opened = []
    real = module_calls.session.__wrapped__

    def counting():
        if module_calls._sessions == 0:
            opened.append(1)
        return real()

    monkeypatch.setattr(module_calls, "session", module_calls.contextlib.contextmanager(counting))
    nascompile.compile(Net(), (torch.randn(1, 3),))
    assert len(opened) == 2


def test_submodule_at_reads_registered_children_and_errs_as_get_submodule_does():
    from nascompile.module_tree import submodule_at

    model = nn.Sequential(nn.Sequential(nn.ReLU(), Doubler()))
    assert submodule_at(model, "0.1.lin") is model[0][1].lin
    assert submodule_at(model, "") is model
    with pytest.raises(AttributeError):
        submodule_at(model, "0.7")
    with pytest.raises(AttributeError):
        submodule_at(model, "0.1.lin.weight")  # a parameter, not a module


def test_forward_signatures_are_cached_per_forward_function_and_follow_a_patched_forward():
    import gc

    from nascompile.frontend import tracer
    from nascompile.ir.interpreter import run_graph

    class Scaled(nn.Module):
        def forward(self, x):
            return x

    assert list(tracer.forward_signature(Scaled).parameters) == ["self", "x"]
    assert tracer.forward_signature(Scaled) is tracer.forward_signature(Scaled)

    def with_scale(self, x, scale=2.0):
        return x * scale

    Scaled.forward = with_scale  # a new function: a new entry, not the old signature
    assert list(tracer.forward_signature(Scaled).parameters) == ["self", "x", "scale"]
    module, x = Scaled(), torch.randn(2, 3)
    result = nascompile.compile(module, (x,), allow_no_choices=True)
    assert torch.equal(run_graph(result.graph, (x,))[0], x * 2.0)  # the lift bound the default

    held = len(tracer._SIGNATURES)
    del Scaled, with_scale, module, result
    gc.collect()
    assert len(tracer._SIGNATURES) < held  # a class built at run time is not kept alive by the cache
