"""Each ONNX lowering alone, against torch, on onnxruntime CPU.

Every case is a tiny module holding one operation (plus what it needs to be reachable), compiled with
the -O0 pipeline so the lowering under test is not optimized away, and run at two batch sizes to check
the symbolic batch dimension too.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nascompile
from nascompile.backend import to_onnx
from nascompile.errors import LoweringError
from nascompile.ir import parse_graph
from nascompile.passes import PIPELINE_O0
from nascompile.runtime import make_session


class Fn(nn.Module):
    """Wrap a function of the input as a module."""

    def __init__(self, fn, *modules: nn.Module):
        super().__init__()
        self.fn = fn
        self.layers = nn.ModuleList(modules)

    def forward(self, x):
        return self.fn(x, *self.layers)


def _randomize_bn(module: nn.Module) -> nn.Module:
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            if m.affine:
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-1, 1)
    return module.eval()


def onnx_matches_torch(module: nn.Module, shape: tuple[int, ...], atol: float = 1e-5) -> onnx.ModelProto:
    module = _randomize_bn(module)
    example = torch.randn(*shape)
    result = nascompile.compile(module, (example,), pipeline=PIPELINE_O0)
    model = to_onnx(result.graph)
    onnx.checker.check_model(model, full_check=True)
    session = make_session(model.SerializeToString())
    for batch in (shape[0], shape[0] + 2):
        x = torch.randn(batch, *shape[1:])
        with torch.no_grad():
            expected = module(x)
        (actual,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        np.testing.assert_allclose(actual, expected.numpy(), rtol=1e-5, atol=atol)
    return model


def op_types(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


CONV_CASES = {
    "plain": nn.Conv2d(3, 4, 3),
    "padded_no_bias": nn.Conv2d(3, 4, 3, padding=1, bias=False),
    "strided_odd": nn.Conv2d(3, 4, 3, stride=2, padding=1),
    "dilated": nn.Conv2d(3, 4, 3, padding=2, dilation=2),
    "grouped": nn.Conv2d(4, 6, 3, padding=1, groups=2),
    "depthwise": nn.Conv2d(4, 4, 5, padding=2, groups=4, bias=False),
    "rect_kernel": nn.Conv2d(3, 4, (1, 3), padding=(0, 1)),
    "same_odd": nn.Conv2d(3, 4, 3, padding="same"),
    "same_even": nn.Conv2d(3, 4, 4, padding="same"),
    "valid": nn.Conv2d(3, 4, 3, padding="valid"),
}


@pytest.mark.parametrize("name", CONV_CASES)
def test_conv2d(name):
    channels = CONV_CASES[name].in_channels
    onnx_matches_torch(CONV_CASES[name], (1, channels, 9, 9))


def test_functional_conv2d():
    weight = nn.Parameter(torch.randn(4, 3, 3, 3))
    module = Fn(lambda x: F.conv2d(x, weight, None, 2, 1))
    module.weight = weight
    onnx_matches_torch(module, (1, 3, 9, 9))


@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm(affine):
    model = onnx_matches_torch(nn.BatchNorm2d(4, affine=affine), (2, 4, 5, 5))
    assert "BatchNormalization" in op_types(model)


def test_batch_norm_1d_after_linear():
    onnx_matches_torch(nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4)), (2, 6))


@pytest.mark.parametrize("module", [
    nn.ReLU(), nn.ReLU6(), nn.Hardtanh(-0.5, 0.25), nn.Sigmoid(), nn.Tanh(), nn.Hardswish(), nn.Hardsigmoid(),
    nn.SiLU(), nn.LeakyReLU(0.2), nn.Identity(), nn.Dropout(0.5),
    Fn(lambda x: torch.clamp(x, min=-0.3)), Fn(lambda x: x.clamp(-1, 0.5)), Fn(F.relu6), Fn(torch.relu),
], ids=lambda m: type(m).__name__ if not isinstance(m, Fn) else "fn")
def test_activations(module):
    onnx_matches_torch(module, (1, 3, 4, 4))


POOL_CASES = {
    "max_stride2_odd": nn.MaxPool2d(3, 2, 1),
    "max_dilated": nn.MaxPool2d(3, 1, 1, dilation=2),
    "max_ceil": nn.MaxPool2d(2, 2, ceil_mode=True),
    "max_ceil_padded": nn.MaxPool2d(3, 2, 1, ceil_mode=True),
    "avg_ceil_padded": nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
    "avg_include_pad": nn.AvgPool2d(3, 1, 1, count_include_pad=True),
    "avg_exclude_pad": nn.AvgPool2d(3, 2, 1, count_include_pad=False),
    "avg_ceil": nn.AvgPool2d(2, 2, ceil_mode=True),
    "avg_divisor": nn.AvgPool2d(3, 2, 0, divisor_override=4),
    "adaptive_global": nn.AdaptiveAvgPool2d(1),
    "adaptive_even": nn.AdaptiveAvgPool2d((3, 1)),
    "adaptive_keep_dim": nn.AdaptiveAvgPool2d((None, 3)),
    "functional_max": Fn(lambda x: F.max_pool2d(x, 2)),
    "functional_avg": Fn(lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)),
    "mean_keepdim": Fn(lambda x: x.mean([2, 3], keepdim=True)),
    "mean": Fn(lambda x: torch.mean(x, dim=(2, 3))),
}


@pytest.mark.parametrize("name", POOL_CASES)
def test_pooling(name):
    onnx_matches_torch(POOL_CASES[name], (1, 3, 9, 9))


def test_uneven_adaptive_pool_is_refused_with_module_path():
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.AdaptiveAvgPool2d(4))
    result = nascompile.compile(model, (torch.randn(1, 3, 9, 9),), pipeline=PIPELINE_O0)
    with pytest.raises(LoweringError, match=r"module '1'.*uneven windows"):
        to_onnx(result.graph)


ARITHMETIC_CASES = {
    "sum3": Fn(lambda x: x + x.relu() + x.sigmoid()),
    "python_sum": Fn(lambda x: sum([x, x.tanh(), x * 2])),
    "mul_const": Fn(lambda x: x * 0.5),
    "mul_int_const": Fn(lambda x: 3 * x),
    "mul_zero": Fn(lambda x: x.mul(0.0)),
    "sub_div": Fn(lambda x: (x - 1.5) / 4),
    "rsub": Fn(lambda x: 1 - x),
    "mul_tensors": Fn(lambda x: x * x.sigmoid()),
    "zeros_like": Fn(lambda x: torch.zeros_like(x) + x),
}


@pytest.mark.parametrize("name", ARITHMETIC_CASES)
def test_arithmetic(name):
    onnx_matches_torch(ARITHMETIC_CASES[name], (1, 3, 4, 4))


def test_mul_by_constant_tensor():
    module = Fn(lambda x: x * scale)
    scale = torch.linspace(0.5, 2, 3).view(1, 3, 1, 1)
    module.register_buffer("scale", scale)
    onnx_matches_torch(module, (1, 3, 4, 4))


SHAPE_CASES = {
    "cat": Fn(lambda x: torch.cat([x, x.relu()], dim=1)),
    "slice_offset": Fn(lambda x: x[:, :, 1:, 1:]),
    "slice_strided": Fn(lambda x: x[:, :, ::2, ::2]),
    "slice_negative": Fn(lambda x: x[..., :-1]),
    "flatten": nn.Flatten(),
    "flatten_2": Fn(lambda x: torch.flatten(x, 2)),
    "view_batch": Fn(lambda x: x.view(x.size(0), -1)),
    "view_shape": Fn(lambda x: x.reshape(x.shape[0], 3, -1)),
    "view_static": Fn(lambda x: x.view(-1, 16)),
    "pad": Fn(lambda x: F.pad(x, (1, 2, 0, 1), value=0.5)),
    "zero_pad": nn.ZeroPad2d((1, 0, 2, 1)),
    "factorized_reduce": Fn(lambda x: torch.cat([x[:, :, ::2, ::2], x[:, :, 1:, 1:][:, :, ::2, ::2]], 1)),
}


@pytest.mark.parametrize("name", SHAPE_CASES)
def test_shapes(name):
    onnx_matches_torch(SHAPE_CASES[name], (1, 3, 4, 4))


@pytest.mark.parametrize("shape", [(2, 5), (2, 3, 5)])
def test_linear(shape):
    model = onnx_matches_torch(nn.Linear(5, 4), shape)
    assert ("Gemm" in op_types(model)) == (len(shape) == 2)


def test_linear_without_bias_on_3d_input():
    onnx_matches_torch(nn.Linear(5, 4, bias=False), (2, 3, 5))


def test_zero_op_and_lists_from_ir_text():
    graph = parse_graph("""graph {
      %x = input() {index=0} : f32[2,3]
      %z = zero(%x) : f32[2,3]
      %l = pack(%x, %z)
      %a = getitem(%l) {index=1} : f32[2,3]
      %r = relu(%x) : f32[2,3]
      %s = sum(%a, %r) : f32[2,3]
      %output = output(%s)
    }""")
    session = make_session(to_onnx(graph).SerializeToString())
    x = np.random.randn(4, 3).astype(np.float32)
    np.testing.assert_allclose(session.run(None, {"x": x})[0], np.maximum(x, 0))


def test_undecided_choice_is_refused_with_its_module_path():
    graph = parse_graph("""graph {
      %x = input() {index=0} : f32[1,3]
      %lc = layer_choice(%x) {candidates=["a", "none"], label="e", modules=["m.a", null], zero=1} params(logits: f32[2]) : f32[1,3] loc("cell.edge")
      %output = output(%lc)
    }""")
    with pytest.raises(LoweringError, match=r"module 'cell.edge'.*layer_choice.*run darts-choice"):
        to_onnx(graph)


def test_values_nobody_reads_are_not_written():
    # Reshape copies the batch dimension itself (0), so the size's Shape -> Gather and its index constant
    # would be dead in the file
    model = onnx_matches_torch(SHAPE_CASES["view_batch"], (1, 3, 4, 4))
    assert op_types(model) == ["Reshape"]
    used = {name for node in model.graph.node for name in node.input}
    assert all(t.name in used for t in model.graph.initializer)
