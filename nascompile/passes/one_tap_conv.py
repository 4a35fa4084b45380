"""`one-tap-conv`: a convolution whose kernel is zero but at one tap becomes a tap selection and a 1x1 conv.

`slice-as-conv` turns FactorizedReduce's `conv1x1(x[:, :, 1:, 1:])` into a 2x2 convolution of `x` whose
weight sits at tap (1, 1), so that onnxruntime's NCHWc layout needs no reorders around a Slice; but
the 2x2 kernel does 4x the multiply-accumulates of the 1x1 one. With the tap (a, b) the only non-zero
one, stride s, dilation d and no padding,

    conv2d(x) W: [O, I, kh, kw]  ->  conv2d(select(x)) W[:, :, a, b]: [O, I, 1, 1], stride 1
    select = depthwise conv2d, kernel (a+1) x (b+1), weight 1 at tap (a, b) and 0 elsewhere, stride s, dilation d

`select` picks x[s*i + d*a, s*j + d*b] per channel: a depthwise convolution, which the NCHWc layout
runs (a Slice it cannot). The rewrite is made only when both keep the output shape, and when it does
fewer multiply-accumulates (I * (a+1)(b+1) + O * I < O * I * kh * kw: FactorizedReduce's 2x2 case saves
about 3/4 of them); only for float32/float64 ungrouped convolutions.

Exactness: `select` computes 1 * x + 0 * (the taps before it), which is x for finite values (the
convolution it replaces multiplied those same values by its zero taps, so an inf or NaN among them
gave NaN there too); the 1x1 convolution then sums the products the original summed, without its
zero products (float rounding of the accumulation order only).
"""

from __future__ import annotations

import torch

from ..ir.graph import Graph
from .fold_batch_norm import FOLDABLE_DTYPES
from .manager import PassContext, PassResult, register_pass
from .slice_as_conv import window_output


def single_tap(weight: torch.Tensor) -> tuple[int, int] | None:
    """The one tap (a, b) at which `weight` [O, I, kh, kw] is not all zero, if there is exactly one."""
    live = (weight != 0).flatten(0, 1).any(0).nonzero().tolist()
    return tuple(live[0]) if len(live) == 1 else None


def rewrite(graph: Graph, conv: str) -> bool:
    attrs, params = graph.attrs(conv), graph.params(conv)
    weight = params["weight"]
    source = graph.inputs(conv)[0]
    in_shape, out_shape = graph.meta(source).get("shape"), graph.meta(conv).get("shape")
    if (attrs["groups"] != 1 or list(attrs["padding"]) != [0, 0] or weight.dtype not in FOLDABLE_DTYPES
            or weight.dim() != 4 or list(weight.shape[2:]) == [1, 1] or in_shape is None or out_shape is None
            or len(in_shape) != 4):
        return False
    tap = single_tap(weight)
    if tap is None:
        return False
    a, b = tap
    out_channels, in_channels, kh, kw = weight.shape
    if in_channels * (a + 1) * (b + 1) + out_channels * in_channels >= out_channels * in_channels * kh * kw:
        return False
    stride, dilation = attrs["stride"], attrs["dilation"]
    picked = [window_output(in_shape[2 + axis], (a, b)[axis] + 1, stride[axis], 0, dilation[axis]) for axis in (0, 1)]
    if picked != list(out_shape[2:]):
        return False
    select = torch.zeros(in_channels, 1, a + 1, b + 1, dtype=weight.dtype)
    select[:, :, a, b] = 1
    meta = {k: v for k, v in graph.meta(conv).items() if k != "shape"}
    picker = graph.add_op("conv2d", [source], name=f"{conv}.tap", params={"weight": select}, attrs={
        "stride": list(stride), "padding": [0, 0], "dilation": list(dilation), "groups": in_channels},
        meta=meta | {"shape": [in_shape[0], in_channels, *picked]})
    params["weight"] = weight[:, :, a:a + 1, b:b + 1].contiguous()  # a new tensor: the supernet's is untouched
    attrs.update(stride=[1, 1], dilation=[1, 1])
    graph.set_inputs(conv, [picker])
    return True


@register_pass("one-tap-conv")
def one_tap_conv(graph: Graph, ctx: PassContext) -> PassResult:
    changed = [conv for conv in graph.nodes_of("conv2d") if rewrite(graph, conv)]
    return PassResult(changed=bool(changed))
