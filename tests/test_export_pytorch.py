"""`export --format pytorch`: a standalone module that computes what the ONNX file and the supernet compute."""

from __future__ import annotations

import os
import py_compile
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import nascompile
from nascompile.errors import ExportError
from nascompile.passes import PIPELINE_O0
from nascompile.runtime import make_session

from conftest import example

EXAMPLES = ["darts_cnn", "darts_reference", "nni_darts", "archai_darts", "nb201_cell"]

# Runs in a fresh interpreter where `import nascompile` fails: the exported files must need torch only.
RUNNER = textwrap.dedent("""
    import importlib, sys
    sys.modules["nascompile"] = None  # any import of nascompile now raises ImportError
    import torch
    for directory in sys.argv[1:]:
        sys.path.insert(0, directory)
        module = importlib.import_module("model")
        net = module.load()
        inputs = torch.load(directory + "/inputs.pt", weights_only=True)
        with torch.no_grad():
            out = net(*inputs)
        torch.save([out] if isinstance(out, torch.Tensor) else list(out), directory + "/outputs.pt")
        sys.path.remove(directory)
        del sys.modules["model"]
""")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Per example: (compile result, export directory, inputs, ONNX outputs), then the runner run once."""
    cases = {}
    for name in EXAMPLES:
        module = example(name)
        result = nascompile.compile(module.build(), module.example_inputs(), pipeline=PIPELINE_O0)
        directory = tmp_path_factory.mktemp(name)
        result.to_pytorch(directory / "derived", spec=f"examples/{name}.py")
        inputs = [torch.randn(2, *x.shape[1:], generator=torch.Generator().manual_seed(7)) for x in module.example_inputs()]
        torch.save(inputs, directory / "derived" / "inputs.pt")
        session = make_session(result.to_onnx().SerializeToString())
        onnx_out = session.run(None, {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)})
        cases[name] = (result, directory / "derived", inputs, onnx_out)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", RUNNER, *[str(c[1]) for c in cases.values()]], env=env,
                          capture_output=True, text=True, timeout=300, cwd=str(tmp_path_factory.getbasetemp()))
    assert proc.returncode == 0, proc.stderr
    return cases


@pytest.mark.parametrize("name", EXAMPLES)
def test_exported_module_equals_onnx_and_supernet(exported, name):
    result, directory, inputs, onnx_out = exported[name]
    outputs = torch.load(directory / "outputs.pt", weights_only=True)
    reference = result.reference(*inputs)
    assert len(outputs) == len(reference) == len(onnx_out)
    for out, ref, onx in zip(outputs, reference, onnx_out):
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)  # the same torch kernels
        np.testing.assert_allclose(out.numpy(), onx, atol=1e-4, rtol=1e-3)
    py_compile.compile(str(directory / "model.py"), doraise=True)
    assert "nascompile" not in (directory / "model.py").read_text().split('"""', 2)[2]  # no import, past the docstring


def test_names_follow_module_paths(exported):
    source = (exported["darts_cnn"][1] / "model.py").read_text()
    assert "self.stem_0 = nn.Conv2d(3, 48" in source and "self.stem_1 = nn.BatchNorm2d(48" in source
    assert "class DartsNetworkDerived(nn.Module):" in source
    assert "self.cells_0_preproc0_op_1 = nn.Conv2d(48, 16" in source


def test_fresh_weights_are_the_layers_own_initialization(tmp_path):
    from safetensors.torch import load_file

    module = example("nb201_cell")
    result = nascompile.compile(module.build(), module.example_inputs(), pipeline=PIPELINE_O0)
    result.to_pytorch(tmp_path / "a", fresh_weights=True, seed=3)
    result.to_pytorch(tmp_path / "b", fresh_weights=True, seed=3)
    result.to_pytorch(tmp_path / "inherited")
    fresh, again = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    inherited = load_file(tmp_path / "inherited" / "model.safetensors")
    assert fresh.keys() == inherited.keys() and all(torch.equal(fresh[k], again[k]) for k in fresh)
    assert not torch.equal(fresh["stem_0.weight"], inherited["stem_0.weight"])
    assert torch.equal(inherited["stem_0.weight"], module.build().stem[0].weight.detach())
    assert torch.equal(fresh["stem_1.running_var"], torch.ones(16))
    # retraining-ready: the module trains (batch statistics, gradients reach every weight)
    sys.path.insert(0, str(tmp_path / "a"))
    try:
        import model as derived
        net = derived.load()
        net.train()
        net(torch.randn(4, 3, 32, 32)).sum().backward()
        assert all(p.grad is not None for p in net.parameters())
    finally:
        sys.path.remove(str(tmp_path / "a"))
        sys.modules.pop("model", None)


def test_an_undecided_choice_is_refused_and_nothing_written(tmp_path):
    module = example("nb201_cell")
    result = nascompile.compile(module.build(), module.example_inputs(), pipeline="dce,infer-shapes")
    with pytest.raises(ExportError, match="no PyTorch form for op 'layer_choice'.*run darts-choice"):
        result.to_pytorch(tmp_path / "derived")
    assert list(tmp_path.iterdir()) == []


def test_a_spec_path_with_quotes_and_backslashes_still_compiles(tmp_path):
    module = example("nb201_cell")
    result = nascompile.compile(module.build(), module.example_inputs(), pipeline=PIPELINE_O0)
    result.to_pytorch(tmp_path / "d", spec='odd\\dir\\"""x.py')
    py_compile.compile(str(tmp_path / "d" / "model.py"), doraise=True)
    assert '"""x.py' not in (tmp_path / "d" / "model.py").read_text().split("\n", 1)[0]


def test_a_reshape_by_a_tensor_size_stays_symbolic_under_tracing(tmp_path):
    """`x.view(x.size(0), -1)` is written as `reshape(size, -1)` with `size = x.size(0)`, not `int(size)`: a
    tracer (torch.onnx.export, torch.jit.trace) then keeps the batch symbolic instead of baking in the traced one."""
    import importlib.util

    from nascompile import nn as nc

    class Net(nc.Supernet):
        def __init__(self):
            super().__init__()
            self.pick = nc.LayerChoice({"conv": torch.nn.Conv2d(2, 3, 1), "pool": torch.nn.Conv2d(2, 3, 3, padding=1)},
                                       label="pick")

        def forward(self, x):
            y = self.pick(x)
            return y.view(y.size(0), -1)

    result = nascompile.compile(Net(), (torch.randn(2, 2, 4, 4),), pipeline=PIPELINE_O0)
    result.to_pytorch(tmp_path / "derived")
    source = (tmp_path / "derived" / "model.py").read_text()
    assert ".reshape(" in source and "int(" not in source
    spec = importlib.util.spec_from_file_location("derived_reshape", tmp_path / "derived" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.load(tmp_path / "derived" / "model.safetensors")
    traced = torch.jit.trace(net, (torch.randn(2, 2, 4, 4),))
    x = torch.randn(5, 2, 4, 4)
    assert torch.allclose(traced(x), net(x)) and traced(x).shape == (5, 48)
