"""`fold-pool-batch-norm`: an inference batch norm after a pooling, folded where that is exact.

Batch norm is a per-channel affine map y = s * x + t (`fold_batch_norm.scale_and_shift`). Two cases:

1. **Through the pool into a convolution.** BN(pool(conv(x))) = pool(BN(conv(x))), and the batch norm
   then folds into the convolution (`fold-batch-norm`'s rule), when the pool is read only by the batch
   norm and the convolution only by the pool, and when the map commutes with the pool:
   - `max_pool2d`: when every s > 0. Then s * x + t is increasing, so it keeps the maximum, and its
     padding (-inf) maps to -inf. With s <= 0 in any channel the maximum would become a minimum.
   - `avg_pool2d`: when every window's weights sum to 1, so that the average of s * x + t is
     s * avg(x) + t: `count_include_pad=False` or no padding, and no `divisor_override`. With
     `count_include_pad=True` and padding, the zeros of the padding are averaged but not shifted by t.
2. **Average pool as a depthwise convolution.** `avg_pool2d` with `count_include_pad=True` (or no
   padding), `ceil_mode=False` and read only by the batch norm is a depthwise convolution whose kernel
   is 1/(kh*kw) (1/divisor_override) over the zero-padded input; the batch norm folds into it, and the
   two nodes become one `conv2d` with weights s/(kh*kw) and bias t.

Both only on batched N x C x H x W values, as `fold-batch-norm`. Exact in real arithmetic; in
floating point the results differ by rounding only, as for `fold-batch-norm`. (DARTS's own pools, `count_include_pad=False` on cell states read by several edges,
fit neither case; they stay a pool and a batch norm.)
"""

from __future__ import annotations

import numpy as np
import torch

from ..ir.graph import Graph
from .fold_batch_norm import FOLDABLE_DTYPES, fold_into_conv, is_foldable_conv, normalizes_channels, scale_and_shift
from .manager import PassContext, PassResult, register_pass
from .patterns import bypass, sole_user


def _commutes(graph: Graph, pool: str, scale: np.ndarray) -> bool:
    """Does the per-channel map with `scale` commute with this pool (case 1)?"""
    attrs = graph.attrs(pool)
    if graph.op(pool) == "max_pool2d":
        return bool((scale > 0).all())
    return attrs.get("divisor_override") is None and (
        not attrs["count_include_pad"] or list(attrs["padding"]) == [0, 0])


def _is_fixed_window_average(graph: Graph, pool: str) -> bool:
    """Is this pool a depthwise convolution with a constant kernel (case 2)?"""
    attrs = graph.attrs(pool)
    return graph.op(pool) == "avg_pool2d" and not attrs["ceil_mode"] and (
        attrs["count_include_pad"] or list(attrs["padding"]) == [0, 0])


def _avg_pool_as_conv(graph: Graph, pool: str, bn: str, scale: np.ndarray, shift: np.ndarray) -> None:
    """Turn `pool` into the depthwise conv2d computing BN(pool(x)); `bn` is bypassed by the caller."""
    attrs = graph.attrs(pool)
    kh, kw = attrs["kernel_size"]
    divisor = attrs.get("divisor_override") or kh * kw
    dtype = graph.params(bn)["running_mean"].dtype
    channels = scale.size
    weight = torch.from_numpy(np.broadcast_to((scale / divisor).reshape(channels, 1, 1, 1), (channels, 1, kh, kw)).copy())
    weight = weight.to(dtype)
    graph.replace_op(pool, "conv2d", graph.inputs(pool), attrs={
        "stride": list(attrs["stride"]), "padding": list(attrs["padding"]), "dilation": [1, 1], "groups": channels,
    }, params={"weight": weight, "bias": torch.from_numpy(shift).to(dtype)})


def fold_one(graph: Graph, bn: str) -> bool:
    pool = graph.inputs(bn)[0]
    if graph.op(pool) not in ("max_pool2d", "avg_pool2d") or sole_user(graph, pool) != bn \
            or not normalizes_channels(graph, bn):
        return False
    scale, shift = scale_and_shift(graph, bn)
    conv = graph.inputs(pool)[0]
    if is_foldable_conv(graph, conv, pool) and _commutes(graph, pool, scale) \
            and graph.params(conv)["weight"].shape[0] == scale.size:
        fold_into_conv(graph, conv, scale, shift)
    elif _is_fixed_window_average(graph, pool) and graph.params(bn)["running_mean"].dtype in FOLDABLE_DTYPES:
        _avg_pool_as_conv(graph, pool, bn, scale, shift)
    else:
        return False
    graph.meta(pool).update({k: v for k, v in graph.meta(bn).items() if k in ("shape", "dtype")})
    bypass(graph, bn, pool)
    return True


@register_pass("fold-pool-batch-norm")
def fold_pool_batch_norm(graph: Graph, ctx: PassContext) -> PassResult:
    folded = [bn for bn in graph.nodes_of("batch_norm") if fold_one(graph, bn)]
    return PassResult(changed=bool(folded))
