"""`fold-batch-norm`: an inference batch norm after a convolution becomes part of the convolution.

    batch_norm(conv2d(x, W, b))  ->  conv2d(x, W * s, (b - mean) * s + beta),  s = gamma / sqrt(var + eps)

per output channel, with gamma = 1 and beta = 0 for `affine=False`. The same holds through a channel
concatenation of convolutions (DARTS's FactorizedReduce: `bn(cat([conv_1(x), conv_2(y)]))`): each
convolution takes the slice of the statistics for its channels.

Only when every convolution is read by nothing but the batch norm (or the `cat`), since the folded
convolution no longer computes the unnormalised value; only for float32/float64 weights; and only when
the batch norm's input is known (meta from `infer-shapes`) to be batched, N x C x H x W: on an
unbatched C x H x W convolution output, batch norm's dim 1 would be H, not the channels.

Numerics: the folded weights are new tensors (the supernet's own are never modified), computed in
float64 and rounded once to the weights' dtype. The result differs from conv-then-normalise by
rounding only: a few float32 ulps of each output, relative to its magnitude.
"""

from __future__ import annotations

import numpy as np
import torch

from ..ir.graph import Graph
from .manager import PassContext, PassResult, register_pass
from .patterns import bypass, sole_user

FOLDABLE_DTYPES = (torch.float32, torch.float64)


def scale_and_shift(graph: Graph, bn: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (s, t) with batch_norm(x) = s * x + t, in float64 (numpy: these are small vectors, and
    numpy's per-call cost is a fraction of torch's)."""
    params = graph.params(bn)
    mean, var = _float64(params["running_mean"]), _float64(params["running_var"])
    gamma = _float64(params["weight"]) if "weight" in params else np.ones_like(mean)
    beta = _float64(params["bias"]) if "bias" in params else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + graph.attrs(bn)["eps"])
    return scale, beta - mean * scale


def fold_into_conv(graph: Graph, conv: str, scale: np.ndarray, shift: np.ndarray) -> None:
    """Make `conv` compute s * conv(x) + t (new weight and bias tensors)."""
    params = graph.params(conv)
    weight = params["weight"]
    bias = _float64(params["bias"]) if "bias" in params else np.zeros(weight.shape[0])
    folded_weight = _float64(weight) * scale.reshape(-1, *[1] * (weight.dim() - 1))
    params["weight"] = torch.from_numpy(folded_weight).to(weight.dtype)
    params["bias"] = torch.from_numpy(bias * scale + shift).to(weight.dtype)


def _float64(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().double().numpy()


def is_foldable_conv(graph: Graph, node: str, user: str) -> bool:
    """A float conv2d read only by `user`, with a constant weight."""
    return (graph.op(node) == "conv2d" and sole_user(graph, node) == user
            and graph.params(node)["weight"].dtype in FOLDABLE_DTYPES)


def _channels(graph: Graph, conv: str) -> int:
    return graph.params(conv)["weight"].shape[0]


def normalizes_channels(graph: Graph, bn: str) -> bool:
    """Is `bn`'s input known to be N x C x H x W, so that its dim 1 is the convolutions' channels?"""
    shape = graph.meta(graph.inputs(bn)[0]).get("shape")
    return shape is not None and len(shape) == 4


def _conv_producers(graph: Graph, bn: str) -> list[str] | None:
    """The convolutions the batch norm `bn` can fold into, in channel order, or None."""
    if not normalizes_channels(graph, bn):
        return None
    source = graph.inputs(bn)[0]
    if is_foldable_conv(graph, source, bn):
        producers = [source]
    elif graph.op(source) == "cat" and graph.attrs(source)["dim"] == 1 and sole_user(graph, source) == bn:
        producers = graph.inputs(source)
        if len(set(producers)) != len(producers) or not all(is_foldable_conv(graph, p, source) for p in producers):
            return None
    else:
        return None
    if sum(_channels(graph, p) for p in producers) != graph.params(bn)["running_mean"].numel():
        return None
    return producers


@register_pass("fold-batch-norm")
def fold_batch_norm(graph: Graph, ctx: PassContext) -> PassResult:
    folded = 0
    for bn in graph.nodes_of("batch_norm"):
        producers = _conv_producers(graph, bn)
        if producers is None:
            continue
        scale, shift = scale_and_shift(graph, bn)
        start = 0
        for conv in producers:
            end = start + _channels(graph, conv)
            fold_into_conv(graph, conv, scale[start:end], shift[start:end])
            start = end
        bypass(graph, bn, graph.inputs(bn)[0])
        folded += 1
    return PassResult(changed=bool(folded))
