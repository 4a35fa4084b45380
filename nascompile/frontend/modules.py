"""Conversion of standard `torch.nn` leaf modules to IR ops.

Parameters are referenced, not copied: the IR's `params` hold the module's own tensors, so the
emitted model carries exactly the supernet's inherited weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from .convert import Converter, V

_MODULES: dict[type, Callable[..., V]] = {}


def converts_module(*types: type) -> Callable:
    def register(fn: Callable) -> Callable:
        for t in types:
            _MODULES[t] = fn
        return fn

    return register


def convert_module(cx: Converter, module: nn.Module, args: tuple, kwargs: dict) -> V:
    """Convert a call of a standard leaf module (looked up by exact type, then by base class)."""
    fn = _MODULES.get(type(module)) or next(
        (fn for t, fn in _MODULES.items() if isinstance(module, t)), None)
    if fn is None:
        supported = ", ".join(sorted(t.__name__ for t in _MODULES))
        raise cx.unsupported(f"module type {type(module).__module__}.{type(module).__name__}",
                             f" (supported torch.nn layers: {supported})")
    if kwargs:
        raise cx.fail(f"{type(module).__name__} is called with keyword arguments {sorted(kwargs)}")
    return fn(cx, module, *args)


def pair(value: Any) -> list[int]:
    """An int or 2-sequence as a 2-list, as torch's 2-D layers accept."""
    if isinstance(value, int):
        return [value, value]
    values = [int(v) for v in value]
    return values * 2 if len(values) == 1 else values


def pool_attrs(kernel_size: Any, stride: Any, padding: Any) -> dict[str, Any]:
    """Kernel, stride (defaulting to the kernel, as torch does) and padding of a 2-D pool."""
    kernel = pair(kernel_size)
    return {"kernel_size": kernel, "stride": pair(stride) if stride not in (None, [], ()) else kernel,
            "padding": pair(padding)}


def adaptive_size(output_size: Any) -> list:
    """Adaptive pooling output size as a 2-list (None keeps that dimension)."""
    if isinstance(output_size, int) or output_size is None:
        return [output_size, output_size]
    return [None if s is None else int(s) for s in output_size]


def conv_padding(padding: Any, kernel: list[int], dilation: list[int], stride: list[int],
                 cx: Converter) -> tuple[list[int], list[int] | None]:
    """Symmetric conv padding, plus an explicit pad (torch F.pad order) when 'same' is asymmetric."""
    if padding == "valid":
        return [0, 0], None
    if padding != "same":
        return pair(padding), None
    if stride != [1, 1]:
        raise cx.fail("padding='same' needs stride 1")
    totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
    before = [t // 2 for t in totals]
    after = [t - b for t, b in zip(totals, before)]
    if before == after:
        return before, None
    return [0, 0], [before[1], after[1], before[0], after[0]]


@converts_module(nn.Conv2d)
def _conv2d(cx: Converter, m: nn.Conv2d, x: Any) -> V:
    if m.padding_mode != "zeros":
        raise cx.fail(f"Conv2d padding_mode={m.padding_mode!r} is not supported (only 'zeros')")
    pads, pre_pad = conv_padding(m.padding, list(m.kernel_size), list(m.dilation), list(m.stride), cx)
    if pre_pad is not None:
        x = cx.emit("pad", [x], attrs={"pads": pre_pad, "value": 0.0}, name="same_pad")
    params = {"weight": m.weight.detach()}
    if m.bias is not None:
        params["bias"] = m.bias.detach()
    return cx.emit("conv2d", [x], params=params, attrs={
        "stride": list(m.stride), "padding": pads, "dilation": list(m.dilation), "groups": m.groups})


@converts_module(nn.BatchNorm2d, nn.BatchNorm1d)
def _batch_norm(cx: Converter, m: nn.modules.batchnorm._BatchNorm, x: Any) -> V:
    if m.running_mean is None or m.running_var is None:
        raise cx.fail(f"{type(m).__name__}(track_running_stats=False) normalizes with the statistics of each "
                      "batch even in inference; train it with running statistics to export it")
    params = {"running_mean": m.running_mean.detach(), "running_var": m.running_var.detach()}
    if m.affine:
        params.update(weight=m.weight.detach(), bias=m.bias.detach())
    return cx.emit("batch_norm", [x], params=params, attrs={"eps": float(m.eps)})


@converts_module(nn.Linear)
def _linear(cx: Converter, m: nn.Linear, x: Any) -> V:
    params = {"weight": m.weight.detach()}
    if m.bias is not None:
        params["bias"] = m.bias.detach()
    return cx.emit("linear", [x], params=params)


def _simple(op: str, **attrs_of: Callable[[nn.Module], Any]) -> Callable:
    def convert(cx: Converter, m: nn.Module, x: Any) -> V:
        return cx.emit(op, [x], attrs={key: get(m) for key, get in attrs_of.items()})

    return convert


for _types, _converter in [
    ((nn.ReLU,), _simple("relu")),
    ((nn.Sigmoid,), _simple("sigmoid")),
    ((nn.Tanh,), _simple("tanh")),
    ((nn.Hardswish,), _simple("hardswish")),
    ((nn.Hardsigmoid,), _simple("hardsigmoid")),
    ((nn.SiLU,), _simple("silu")),
    ((nn.Identity, nn.Dropout, nn.Dropout2d, nn.AlphaDropout), _simple("identity")),
    ((nn.LeakyReLU,), _simple("leaky_relu", negative_slope=lambda m: float(m.negative_slope))),
    ((nn.Hardtanh,), _simple("clip", min=lambda m: float(m.min_val), max=lambda m: float(m.max_val))),
    ((nn.Flatten,), _simple("flatten", start_dim=lambda m: m.start_dim, end_dim=lambda m: m.end_dim)),
    ((nn.ZeroPad2d, nn.ConstantPad2d), _simple("pad", pads=lambda m: list(m.padding),
                                               value=lambda m: float(m.value))),
    ((nn.AdaptiveAvgPool2d,), _simple("adaptive_avg_pool2d", output_size=lambda m: adaptive_size(m.output_size))),
]:
    converts_module(*_types)(_converter)


@converts_module(nn.MaxPool2d)
def _max_pool2d(cx: Converter, m: nn.MaxPool2d, x: Any) -> V:
    if m.return_indices:
        raise cx.fail("MaxPool2d(return_indices=True) is not supported")
    return cx.emit("max_pool2d", [x], attrs=pool_attrs(m.kernel_size, m.stride, m.padding) | {
        "dilation": pair(m.dilation), "ceil_mode": bool(m.ceil_mode)})


@converts_module(nn.AvgPool2d)
def _avg_pool2d(cx: Converter, m: nn.AvgPool2d, x: Any) -> V:
    return cx.emit("avg_pool2d", [x], attrs=pool_attrs(m.kernel_size, m.stride, m.padding) | {
        "ceil_mode": bool(m.ceil_mode), "count_include_pad": bool(m.count_include_pad),
        "divisor_override": m.divisor_override})
