"""benchmarks/run.py gives the exporters the discrete network: for `darts_reference`, whose fixed supernet
still runs every candidate (one-hot weights), the derived module, checked against nascompile's file."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from conftest import ROOT, example

pytest.importorskip("onnxruntime")
pytest.importorskip("safetensors")


def bench():
    if "nascompile_bench_run" not in sys.modules:
        spec = importlib.util.spec_from_file_location("nascompile_bench_run", ROOT / "benchmarks" / "run.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["nascompile_bench_run"]


def test_darts_reference_contender_is_the_discrete_network(tmp_path):
    run = bench()
    darts_reference = example("darts_reference")
    model, inputs = darts_reference.build(), darts_reference.example_inputs()
    onnx_file = tmp_path / "nascompile.onnx"
    result = run.compile_with_nascompile(model, inputs, onnx_file)
    contender = run.contender_for(model, inputs, result, onnx_file, tmp_path)

    assert contender.kind == "derived module"  # the fixed supernet computes all 8 candidates of every edge
    assert contender.layers == {"Conv": 187, "Gemm/MatMul": 1}  # nascompile's -O0 file
    assert contender.max_error <= 1e-4
    exported = tmp_path / "dynamo_false.onnx"
    with contender.fixed():
        run.export_with_torch(contender.module, inputs, exported, dynamo=False)
    # raises unless the exporter's file has those Conv/Gemm counts and nascompile's outputs at batch 3
    run.check_discrete(contender, exported, onnx_file, inputs)


def _fx_convolutions(module) -> int:
    traced = torch.fx.symbolic_trace(module)
    layers = dict(traced.named_modules())
    return sum(1 for node in traced.graph.nodes
               if (node.op == "call_module" and isinstance(layers[node.target], torch.nn.Conv2d))
               or (node.op == "call_function" and node.target is torch.nn.functional.conv2d))


@pytest.mark.parametrize("name, size", [("darts_reference", {"layers": 2}), ("nni_darts", {"n_layers": 2})])
def test_compile_floor_traces_the_whole_discrete_network(name, size, tmp_path):
    """The compile floor run.py prints is fx's trace of the flat discrete network, every convolution of it,
    for the fixed-supernet contender (nni_darts) as for the derived-module one."""
    run = bench()
    network = example(name)
    model, inputs = network.build(**size), network.example_inputs()
    onnx_file = tmp_path / "nascompile.onnx"
    result = run.compile_with_nascompile(model, inputs, onnx_file)
    contender = run.contender_for(model, inputs, result, onnx_file, tmp_path)
    assert _fx_convolutions(contender.flat) == contender.layers["Conv"] > 0


def test_check_discrete_refuses_the_fixed_supernet_of_a_mixture(tmp_path):
    """What run.py did before: the fixed supernet of DARTS's reference MixedOp exported as is."""
    run = bench()
    darts_reference = example("darts_reference")
    model, inputs = darts_reference.build(layers=2), darts_reference.example_inputs()
    onnx_file = tmp_path / "nascompile.onnx"
    result = run.compile_with_nascompile(model, inputs, onnx_file)
    contender = run.contender_for(model, inputs, result, onnx_file, tmp_path)
    exported = tmp_path / "fixed.onnx"
    with result.lifter.fixed(model, result.choices.by_path()):
        run.export_with_torch(model, inputs, exported, dynamo=False)
    with pytest.raises(AssertionError, match="not given the discrete network"):
        run.check_discrete(contender, exported)


def test_a_full_run_without_onnxscript_stops_at_once_and_says_what_to_install(monkeypatch, capsys):
    run = bench()
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxscript" else real_find_spec(name, *a))
    monkeypatch.setattr(run, "run", lambda *a, **k: pytest.fail("the run started without the dynamo=True exporter"))
    assert run.main([]) == 2
    err = capsys.readouterr().err
    assert "onnxscript" in err and '".[cpu,bench]"' in err and "--quick" in err


def test_compile_and_export_are_timed_in_pairs_taking_turns_to_go_first(monkeypatch):
    run = bench()
    calls, now = [], [0.0]

    def step(label, seconds):
        calls.append(label)
        now[0] += seconds

    monkeypatch.setattr(run.time, "perf_counter", lambda: now[0])
    pairs = run.paired_compile_times(lambda: step("compile", 1.0), lambda: step("export", 10.0), 3)
    assert calls == ["compile", "export", "export", "compile", "compile", "export"]
    assert pairs == [(1.0, 10.0)] * 3  # (compile, export) in every round, whichever went first
