"""`slice-as-conv`: a convolution of a spatially cropped value becomes a convolution of the whole value.

DARTS's FactorizedReduce convolves `x[:, :, 1:, 1:]`. onnxruntime's CPU convolutions run in a blocked
channel layout (NCHWc) that Slice cannot read, so it wraps each such Slice in a pair of layout
reorders; a convolution reading `x` itself needs none. With the crop starting at `a` rows (a multiple
of the dilation d) and no padding on that axis, conv(x[a:]) reads x[a + i*s + k*d] for output i and
tap k, which is tap k + a/d of a kernel extended by a/d zero taps in front, applied to x:

    conv2d(slice(x) {starts=[1, 1], dims=[2, 3]}) W: [O, I, 1, 1]  ->  conv2d(x) W': [O, I, 2, 2], W'[..., 1, 1] = W

The rewrite is made only when the convolution's output shape stays the same (the crop's end, if any,
cuts only rows the convolution never read) and its weights are float32/float64. Exactness: the sums
gain products 0 * x of values the original never read; for finite x they add +-0 and change nothing
but the accumulation order (float rounding). An inf or NaN in a cropped-away row or column would turn
those outputs into NaN, which the original would not; DARTS applies it to ReLU outputs of finite
values. A slice left without users is removed.
"""

from __future__ import annotations

import torch

from ..ir.graph import Graph
from .fold_batch_norm import FOLDABLE_DTYPES
from .manager import PassContext, PassResult, register_pass

SPATIAL = (2, 3)


def window_output(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _crop(graph: Graph, node: str) -> list[int] | None:
    """Per spatial axis, the rows a slice drops in front, when it is a plain crop of an N x C x H x W value."""
    shape = graph.meta(graph.inputs(node)[0]).get("shape")
    if shape is None or len(shape) != 4:
        return None
    attrs = graph.attrs(node)
    offsets = [0, 0]
    for dim, start, step in zip(attrs["dims"], attrs["starts"], attrs["steps"]):
        dim = dim % 4
        if dim not in SPATIAL or step != 1 or start is None or not 0 <= start < shape[dim]:
            return None
        offsets[dim - 2] += start
    return offsets


def rewrite(graph: Graph, conv: str) -> bool:
    crop = graph.inputs(conv)[0]
    if graph.op(crop) != "slice":
        return False
    offsets = _crop(graph, crop)
    weight = graph.params(conv)["weight"]
    if offsets is None or weight.dtype not in FOLDABLE_DTYPES:
        return False
    attrs = graph.attrs(conv)
    source = graph.inputs(crop)[0]
    in_shape, out_shape = graph.meta(source)["shape"], graph.meta(conv).get("shape")
    extra = []
    for axis, offset in enumerate(offsets):
        dilation, padding = attrs["dilation"][axis], attrs["padding"][axis]
        if offset and (padding or offset % dilation):
            return False
        extra.append(offset // dilation)
    kernel = [weight.shape[2] + extra[0], weight.shape[3] + extra[1]]
    new_shape = [window_output(in_shape[2 + i], kernel[i], attrs["stride"][i], attrs["padding"][i],
                               attrs["dilation"][i]) for i in (0, 1)]
    if out_shape is None or list(out_shape[2:]) != new_shape:
        return False
    new_weight = torch.zeros(*weight.shape[:2], *kernel, dtype=weight.dtype)
    new_weight[:, :, extra[0]:, extra[1]:] = weight
    graph.params(conv)["weight"] = new_weight  # a new tensor: the supernet's own is untouched
    graph.set_inputs(conv, [source])
    if graph.out_degree(crop) == 0:
        graph.remove_node(crop)
    return True


@register_pass("slice-as-conv")
def slice_as_conv(graph: Graph, ctx: PassContext) -> PassResult:
    changed = [conv for conv in graph.nodes_of("conv2d") if rewrite(graph, conv)]
    return PassResult(changed=bool(changed))
