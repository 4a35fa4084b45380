"""Lowerings of the torch functions recurrent search code uses (DARTS's PTB cell): embeddings, matrix
products, integer indexing, stacking and splitting, reductions over a dim, log-softmax.

Registered in `functions.py`'s tables, on import (`functions.py` imports this module at its end).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .convert import Converter, V
from .functions import _constant_tensor, converts
from .modules import converts_module


def _rank(cx: Converter, value: V) -> int:
    return len(cx.shape_of(value))


def _dim(cx: Converter, value: V, dim: Any, extra: int = 0) -> int:
    """`dim` as a non-negative int for a tensor of `value`'s rank (+ `extra` for a dim being inserted)."""
    rank = _rank(cx, value) + extra
    if not isinstance(dim, int) or not -rank <= dim < rank:
        raise cx.fail(f"dim {dim!r} is out of range for a tensor of rank {rank - extra}")
    return dim % rank


def embedding(cx: Converter, input: Any, weight: Any, padding_idx: Any = None, max_norm: Any = None,
              norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False) -> V:
    """A lookup of rows; `padding_idx`, `scale_grad_by_freq` and `sparse` only change gradients."""
    if max_norm is not None:
        raise cx.fail("an embedding with max_norm renormalizes its weight in place at every lookup; "
                      "compile it without max_norm")
    if not isinstance(input, V):
        raise cx.fail("the indices of an embedding must be a model input or computed from one")
    return cx.emit("embedding", [input], params={"weight": _constant_tensor(cx, weight, "embedding weight")})


converts(F.embedding)(embedding)


@converts_module(nn.Embedding)
def _embedding_module(cx: Converter, m: nn.Embedding, x: Any) -> V:
    return embedding(cx, x, m.weight, m.padding_idx, m.max_norm)


@converts(torch.mm, torch.matmul, methods=("mm", "matmul", "__matmul__"))
def _matmul(cx: Converter, input: Any, other: Any) -> V:
    return cx.emit("matmul", [input, other])


@converts(methods=("__rmatmul__",))
def _rmatmul(cx: Converter, input: Any, other: Any) -> V:
    return cx.emit("matmul", [other, input])


@converts(torch.unsqueeze, methods=("unsqueeze",))
def _unsqueeze(cx: Converter, input: Any, dim: int) -> V:
    return cx.emit("unsqueeze", [input], attrs={"dim": _dim(cx, input, dim, extra=1)})


@converts(torch.stack)
def _stack(cx: Converter, tensors: Any, dim: int = 0, *, out: Any = None) -> V:
    tensors = list(tensors)
    if not tensors:
        raise cx.fail("torch.stack of an empty list")
    d = _dim(cx, cx.operand(tensors[0]), dim, extra=1)
    return cx.emit("cat", [cx.emit("unsqueeze", [t], attrs={"dim": d}) for t in tensors], attrs={"dim": d})


def select(cx: Converter, tensor: V, dim: int, index: int) -> V:
    """`x[index]` along `dim`, the index checked against the static size (a wrong index fails here, not at run
    time); a negative index stays negative (`hiddens[-1]`: the last step, whatever the sequence length)."""
    size = cx.shape_of(tensor)[dim]
    if not -size <= index < size:
        raise cx.fail(f"index {index} is out of range for dim {dim} of size {size}")
    return cx.emit("select", [tensor], attrs={"dim": dim, "index": index})


@converts(torch.select, methods=("select",))
def _select(cx: Converter, input: Any, dim: int, index: int) -> V:
    return select(cx, input, _dim(cx, input, dim), int(index))


def _pieces(cx: Converter, tensor: V, sizes: list[int], dim: int) -> tuple[V, ...]:
    out, start = [], 0
    for size in sizes:
        out.append(cx.emit("slice", [tensor], attrs={"dims": [dim], "starts": [start], "ends": [start + size],
                                                     "steps": [1]}))
        start += size
    return tuple(out)


@converts(torch.split, methods=("split",))
def _split(cx: Converter, tensor: Any, split_size_or_sections: Any, dim: int = 0) -> tuple[V, ...]:
    d = _dim(cx, tensor, dim)
    total = cx.shape_of(tensor)[d]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0:
            raise cx.fail(f"split size {step} must be positive")
        sizes = [min(step, total - s) for s in range(0, total, step)]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != total:
            raise cx.fail(f"split sections {sizes} do not add up to the size {total} of dim {dim}")
    return _pieces(cx, tensor, sizes, d)


@converts(torch.chunk, methods=("chunk",))
def _chunk(cx: Converter, input: Any, chunks: int, dim: int = 0) -> tuple[V, ...]:
    d = _dim(cx, input, dim)
    total = cx.shape_of(input)[d]
    step = -(-total // int(chunks))
    return _pieces(cx, input, [min(step, total - s) for s in range(0, total, step)], d)


@converts(torch.sum, methods=("sum",))
def _sum(cx: Converter, input: Any, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> V:
    if dtype is not None:
        raise cx.fail("sum with a dtype is not supported")
    if dim is None:
        dims = list(range(_rank(cx, input)))
    else:
        dims = [_dim(cx, input, d) for d in ([dim] if isinstance(dim, int) else dim)]
    return cx.emit("reduce_sum", [input], attrs={"dims": dims, "keepdim": bool(keepdim)})


@converts(F.log_softmax, torch.log_softmax, methods=("log_softmax",))
def _log_softmax(cx: Converter, input: Any, dim: Any = None, _stacklevel: int = 3, dtype: Any = None) -> V:
    if dim is None or dtype is not None:
        raise cx.fail("log_softmax needs an explicit dim and no dtype")
    return cx.emit("log_softmax", [input], attrs={"dim": _dim(cx, input, dim)})
