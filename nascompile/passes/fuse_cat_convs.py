"""`fuse-cat-convs`: convolutions of one value, concatenated along channels, become one convolution.

    cat(conv2d(x) W1, conv2d(x) W2) {dim=1}  ->  conv2d(x) [W1; W2]

The weights are stacked along output channels, so the one convolution writes exactly the
concatenation: no Concat node, one kernel launch instead of several. Kernels of different sizes or
paddings share one window when they line up: a kernel k with padding p sits at offset o = (P - p) / d
of a common window K with padding P (o integer, same stride and dilation d); the other taps are zero.
DARTS's FactorizedReduce after `slice-as-conv` is the case this is for: a 1x1 convolution on the even
grid and a 2x2 one with its weight at tap (1, 1) on the same ReLU output become one 2x2 convolution.

Only for a run of two or more consecutive `cat` inputs that are ungrouped float convolutions of the
same value, of the same dtype, each read by nothing but the cat, whose common window gives each its
own output shape. Exactness as for `slice-as-conv`: zero taps add 0 * x for values x that the
original read elsewhere or not at all (+-0 for finite x; NaN if such an x is inf or NaN), and the
accumulation order may change (float rounding).
"""

from __future__ import annotations

import torch

from ..ir.graph import Graph
from .fold_batch_norm import FOLDABLE_DTYPES
from .manager import PassContext, PassResult, register_pass
from .patterns import sole_user
from .slice_as_conv import window_output


def _fusable(graph: Graph, conv: str, cat: str) -> bool:
    return (graph.op(conv) == "conv2d" and sole_user(graph, conv) == cat and graph.attrs(conv)["groups"] == 1
            and graph.params(conv)["weight"].dtype in FOLDABLE_DTYPES)


def _key(graph: Graph, conv: str) -> tuple:
    attrs = graph.attrs(conv)
    return graph.inputs(conv)[0], tuple(attrs["stride"]), tuple(attrs["dilation"]), graph.params(conv)["weight"].dtype


def _window(graph: Graph, convs: list[str]) -> tuple[list[int], list[int], list[list[int]]] | None:
    """The common kernel size and padding, and each conv's tap offsets, or None where they do not line up."""
    attrs0 = graph.attrs(convs[0])
    padding = [max(graph.attrs(c)["padding"][axis] for c in convs) for axis in (0, 1)]
    offsets, kernel = [], [0, 0]
    for conv in convs:
        own = []
        for axis in (0, 1):
            gap = padding[axis] - graph.attrs(conv)["padding"][axis]
            if gap % attrs0["dilation"][axis]:
                return None
            own.append(gap // attrs0["dilation"][axis])
            kernel[axis] = max(kernel[axis], own[axis] + graph.params(conv)["weight"].shape[2 + axis])
        offsets.append(own)
    in_shape = graph.meta(graph.inputs(convs[0])[0]).get("shape")
    if in_shape is None or len(in_shape) != 4:
        return None
    size = [window_output(in_shape[2 + axis], kernel[axis], attrs0["stride"][axis], padding[axis],
                          attrs0["dilation"][axis]) for axis in (0, 1)]
    if any(list((graph.meta(c).get("shape") or [])[2:]) != size for c in convs):
        return None
    return kernel, padding, offsets


def _fuse(graph: Graph, convs: list[str]) -> str | None:
    """One conv computing the channel concatenation of `convs` (the first conv becomes it), or None."""
    window = _window(graph, convs)
    if window is None:
        return None
    kernel, padding, offsets = window
    weights = [graph.params(c)["weight"] for c in convs]
    out_channels = [w.shape[0] for w in weights]
    weight = torch.zeros(sum(out_channels), weights[0].shape[1], *kernel, dtype=weights[0].dtype)
    bias = torch.zeros(sum(out_channels), dtype=weights[0].dtype)
    start = 0
    for conv, w, (oh, ow) in zip(convs, weights, offsets):
        end = start + w.shape[0]
        weight[start:end, :, oh:oh + w.shape[2], ow:ow + w.shape[3]] = w
        if "bias" in graph.params(conv):
            bias[start:end] = graph.params(conv)["bias"]
        start = end
    params = {"weight": weight}
    if any("bias" in graph.params(c) for c in convs):
        params["bias"] = bias
    first = convs[0]
    graph.replace_op(first, "conv2d", graph.inputs(first), params=params, attrs={
        **graph.attrs(first), "padding": padding})
    meta = graph.meta(first)
    meta["shape"] = [*meta["shape"][:1], sum(out_channels), *meta["shape"][2:]]
    return first


def fuse_cat(graph: Graph, cat: str) -> bool:
    """Fuse each run of fusable convs among `cat`'s inputs; True if anything changed."""
    if graph.attrs(cat)["dim"] % 4 != 1 or len(graph.meta(cat).get("shape") or []) != 4:
        return False
    inputs = graph.inputs(cat)
    if len(set(inputs)) != len(inputs):
        return False
    new_inputs, changed, i = [], False, 0
    while i < len(inputs):
        j = i + 1
        if _fusable(graph, inputs[i], cat):
            while j < len(inputs) and _fusable(graph, inputs[j], cat) and _key(graph, inputs[j]) == _key(graph, inputs[i]):
                j += 1
        fused = _fuse(graph, inputs[i:j]) if j - i > 1 else None
        if fused is None:
            new_inputs.append(inputs[i])
            i += 1
            continue
        new_inputs.append(fused)
        for other in inputs[i + 1:j]:
            graph.remove_edges_from(list(graph.out_edges(other, keys=True)))
            graph.remove_node(other)
        changed, i = True, j
    if not changed:
        return False
    if len(new_inputs) == 1:
        graph.replace_uses(cat, new_inputs[0])
        graph.remove_node(cat)
    else:
        graph.set_inputs(cat, new_inputs)
    return True


@register_pass("fuse-cat-convs")
def fuse_cat_convs(graph: Graph, ctx: PassContext) -> PassResult:
    changed = [cat for cat in graph.nodes_of("cat") if fuse_cat(graph, cat)]
    return PassResult(changed=bool(changed))
