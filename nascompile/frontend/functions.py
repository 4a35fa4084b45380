"""Conversion of fx `call_function` / `call_method` nodes to IR ops.

Each converter takes the converter context and the call's arguments with torch's own parameter names
and defaults, so Python binds positional and keyword arguments exactly as torch would.
"""

from __future__ import annotations

import builtins
import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F

from .convert import Converter, ShapeOf, V
from .modules import adaptive_size, conv_padding, pair, pool_attrs

_FUNCTIONS: dict[Any, Callable[..., Any]] = {}
_METHODS: dict[str, Callable[..., Any]] = {}


def converts(*functions: Any, methods: tuple[str, ...] = ()) -> Callable:
    def register(fn: Callable) -> Callable:
        for target in functions:
            _FUNCTIONS[target] = fn
        for name in methods:
            _METHODS[name] = fn
        return fn

    return register


def convert_call(cx: Converter, node: fx.Node, args: tuple, kwargs: dict) -> Any:
    """Convert one call_function / call_method node whose arguments include IR values."""
    if node.op == "call_method":
        fn, label = _METHODS.get(node.target), f"Tensor.{node.target}"
    else:
        fn = _FUNCTIONS.get(node.target)
        label = getattr(node.target, "__qualname__", None) or str(node.target)
        module = getattr(node.target, "__module__", None)
        if module and module not in ("_operator", "builtins"):
            label = f"{module}.{label}"
    if fn is None:
        raise cx.unsupported(f"operation {label}", "; rewrite it with supported torch ops or make its module a "
                                                   "candidate that loses")
    try:
        return fn(cx, *args, **kwargs)
    except TypeError as exc:
        raise cx.fail(f"unexpected arguments for {label}: {exc}") from None


def _is_literal_zero(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == 0


# --- arithmetic ------------------------------------------------------------------------------------
@converts(operator.add, operator.iadd, torch.add, methods=("add", "add_", "__add__", "__radd__", "__iadd__"))
def _add(cx: Converter, input: Any, other: Any, *, alpha: Any = 1, out: Any = None) -> V:
    """`a + b` becomes an n-ary `sum`; chains (Python's `sum()`) flatten into one node.

    A literal Python 0 is dropped: it is `sum()`'s start value, not part of the model.
    """
    if alpha != 1:
        other = _mul(cx, other, alpha)
    terms: list[V] = []
    for position, term in enumerate((input, other)):
        if _is_literal_zero(term):
            continue
        if position == 0 and isinstance(term, V) and _continues_chain(cx, term.node):
            terms += [V(src) for src in cx.graph.inputs(term.node)]
            cx.graph.remove_node(term.node)
        else:
            terms.append(cx.operand(term))
    if len(terms) == 1:
        return terms[0]
    result = cx.emit("sum", terms)
    # a partial sum read only by the next `+` is absorbed into it
    cx.partial_sums[result.node] = len(cx.fx_node.users) == 1
    cx.partial_locations[result.node] = cx.fx_node.meta.get("location")
    return result


def _continues_chain(cx: Converter, node: str) -> bool:
    """Is `node` a partial sum of the chain this `+` continues (`((a + b) + c)`, as `sum()` and `s += t`
    build one, on one line)? A finished sum added to on another line (`return n0 + n1`) stays a node:
    it may be a cell node, and the cell structure reads its edges."""
    if not cx.partial_sums.pop(node, False):
        return False
    here, there = cx.fx_node.meta.get("location"), cx.partial_locations.get(node)
    return here is None or there is None or (here.file, here.line) == (there.file, there.line)


@converts(operator.mul, operator.imul, torch.mul, methods=("mul", "mul_", "__mul__", "__rmul__", "__imul__"))
def _mul(cx: Converter, input: Any, other: Any, *, out: Any = None) -> V:
    return cx.emit("mul", [input, other])


@converts(operator.sub, operator.isub, torch.sub, methods=("sub", "sub_", "__sub__", "__isub__"))
def _sub(cx: Converter, input: Any, other: Any, *, alpha: Any = 1, out: Any = None) -> V:
    if alpha != 1:
        other = _mul(cx, other, alpha)
    return cx.emit("sub", [input, other])


@converts(methods=("__rsub__",))
def _rsub(cx: Converter, input: Any, other: Any) -> V:
    return cx.emit("sub", [other, input])


@converts(operator.truediv, operator.itruediv, torch.div, methods=("div", "div_", "__truediv__", "__itruediv__"))
def _div(cx: Converter, input: Any, other: Any, *, rounding_mode: Any = None, out: Any = None) -> V:
    if rounding_mode is not None:
        raise cx.fail(f"division with rounding_mode={rounding_mode!r} is not supported")
    return cx.emit("div", [input, other])


# --- activations -----------------------------------------------------------------------------------
def _simple(op: str) -> Callable:
    def convert(cx: Converter, input: Any, inplace: bool = False) -> V:
        return cx.emit(op, [input])

    return convert


for _op, _fns, _methods in [
    ("relu", (F.relu, torch.relu, torch.relu_, F.relu_), ("relu", "relu_")),
    ("sigmoid", (torch.sigmoid, F.sigmoid), ("sigmoid", "sigmoid_")),
    ("tanh", (torch.tanh, F.tanh), ("tanh", "tanh_")),
    ("hardswish", (F.hardswish,), ()),
    ("hardsigmoid", (F.hardsigmoid,), ()),
    ("silu", (F.silu,), ()),
]:
    converts(*_fns, methods=_methods)(_simple(_op))


@converts(F.relu6)
def _relu6(cx: Converter, input: Any, inplace: bool = False) -> V:
    return cx.emit("clip", [input], attrs={"min": 0.0, "max": 6.0})


@converts(F.hardtanh)
def _hardtanh(cx: Converter, input: Any, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> V:
    return cx.emit("clip", [input], attrs={"min": float(min_val), "max": float(max_val)})


@converts(torch.clamp, torch.clip, methods=("clamp", "clip", "clamp_"))
def _clamp(cx: Converter, input: Any, min: Any = None, max: Any = None) -> V:
    if contains_tensor((min, max)):
        raise cx.fail("clamp bounds must be Python numbers")
    return cx.emit("clip", [input], attrs={"min": None if min is None else float(min),
                                           "max": None if max is None else float(max)})


@converts(F.leaky_relu)
def _leaky_relu(cx: Converter, input: Any, negative_slope: float = 0.01, inplace: bool = False) -> V:
    return cx.emit("leaky_relu", [input], attrs={"negative_slope": float(negative_slope)})


def contains_tensor(values: tuple) -> bool:
    return any(isinstance(v, (V, torch.Tensor)) for v in values)


# --- pooling and reductions ------------------------------------------------------------------------
@converts(F.max_pool2d, torch.max_pool2d)
def _max_pool2d(cx: Converter, input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
                dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False) -> V:
    if return_indices:
        raise cx.fail("max_pool2d with return_indices=True is not supported")
    return cx.emit("max_pool2d", [input], attrs=pool_attrs(kernel_size, stride, padding) | {
        "dilation": pair(dilation), "ceil_mode": bool(ceil_mode)})


@converts(F.avg_pool2d, torch._C._nn.avg_pool2d)
def _avg_pool2d(cx: Converter, input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
                ceil_mode: bool = False, count_include_pad: bool = True, divisor_override: Any = None) -> V:
    return cx.emit("avg_pool2d", [input], attrs=pool_attrs(kernel_size, stride, padding) | {
        "ceil_mode": bool(ceil_mode), "count_include_pad": bool(count_include_pad),
        "divisor_override": divisor_override})


@converts(F.adaptive_avg_pool2d)
def _adaptive_avg_pool2d(cx: Converter, input: Any, output_size: Any) -> V:
    return cx.emit("adaptive_avg_pool2d", [input], attrs={"output_size": adaptive_size(output_size)})


@converts(torch.mean, methods=("mean",))
def _mean(cx: Converter, input: Any, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> V:
    if dim is None or dtype is not None:
        raise cx.fail("mean needs explicit dims (e.g. x.mean([2, 3])) and no dtype")
    dims = [dim] if isinstance(dim, int) else [int(d) for d in dim]
    return cx.emit("reduce_mean", [input], attrs={"dims": dims, "keepdim": bool(keepdim)})


# --- layers called functionally --------------------------------------------------------------------
def _constant_tensor(cx: Converter, value: Any, what: str) -> torch.Tensor | None:
    if value is None or isinstance(value, torch.Tensor):
        return None if value is None else value.detach()
    raise cx.fail(f"the {what} must be a parameter or constant tensor, not a value computed from the input")


@converts(F.conv2d, torch.conv2d)
def _conv2d(cx: Converter, input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
            dilation: Any = 1, groups: int = 1) -> V:
    params = {"weight": _constant_tensor(cx, weight, "conv weight")}
    if bias is not None:
        params["bias"] = _constant_tensor(cx, bias, "conv bias")
    kernel = list(params["weight"].shape[2:])
    pads, pre_pad = conv_padding(padding, kernel, pair(dilation), pair(stride), cx)
    if pre_pad is not None:
        input = cx.emit("pad", [input], attrs={"pads": pre_pad, "value": 0.0}, name="same_pad")
    return cx.emit("conv2d", [input], params=params, attrs={
        "stride": pair(stride), "padding": pads, "dilation": pair(dilation), "groups": int(groups)})


@converts(F.linear)
def _linear(cx: Converter, input: Any, weight: Any, bias: Any = None) -> V:
    params = {"weight": _constant_tensor(cx, weight, "linear weight")}
    if bias is not None:
        params["bias"] = _constant_tensor(cx, bias, "linear bias")
    return cx.emit("linear", [input], params=params)


@converts(F.batch_norm)
def _batch_norm(cx: Converter, input: Any, running_mean: Any, running_var: Any, weight: Any = None,
                bias: Any = None, training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> V:
    if training or running_mean is None:
        raise cx.fail("batch_norm in training mode (or without running statistics) depends on the batch; "
                      "nascompile compiles inference models")
    params = {"running_mean": _constant_tensor(cx, running_mean, "running mean"),
              "running_var": _constant_tensor(cx, running_var, "running var")}
    for key, value in (("weight", weight), ("bias", bias)):
        if value is not None:
            params[key] = _constant_tensor(cx, value, f"batch norm {key}")
    return cx.emit("batch_norm", [input], params=params, attrs={"eps": float(eps)})


@converts(F.dropout, F.dropout2d, F.alpha_dropout, torch.dropout)
def _dropout(cx: Converter, input: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> V:
    if training and p > 0:
        raise cx.fail("dropout is called with training=True; pass training=self.training so that it is off "
                      "in inference")
    return cx.emit("identity", [input])


@converts(methods=("contiguous", "clone", "detach"))
def _identity(cx: Converter, input: Any, *args: Any, **kwargs: Any) -> V:
    return cx.emit("identity", [input])


@converts(torch.zeros_like)
def _zeros_like(cx: Converter, input: Any, **kwargs: Any) -> V:
    return cx.emit("zero", [input])


@converts(F.pad)
def _pad(cx: Converter, input: Any, pad: Any, mode: str = "constant", value: Any = None) -> V:
    if mode != "constant":
        raise cx.fail(f"padding mode {mode!r} is not supported (only 'constant')")
    return cx.emit("pad", [input], attrs={"pads": [int(p) for p in pad], "value": float(value or 0.0)})


# --- shapes ----------------------------------------------------------------------------------------
@converts(torch.cat, torch.concat, torch.concatenate)
def _cat(cx: Converter, tensors: Any, dim: int = 0, *, out: Any = None) -> V:
    return cx.emit("cat", list(tensors), attrs={"dim": int(dim)})


@converts(torch.flatten, methods=("flatten",))
def _flatten(cx: Converter, input: Any, start_dim: int = 0, end_dim: int = -1) -> V:
    return cx.emit("flatten", [input], attrs={"start_dim": int(start_dim), "end_dim": int(end_dim)})


@converts(torch.reshape)
def _reshape_fn(cx: Converter, input: Any, shape: Any) -> V:
    return _reshape(cx, input, shape)


@converts(methods=("view", "reshape"))
def _reshape(cx: Converter, input: Any, *shape: Any) -> V:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)):
        shape = tuple(shape[0])
    dims, sizes = [], []
    for d in shape:
        if isinstance(d, V):
            dims.append(None)
            sizes.append(d)
        elif isinstance(d, int):
            dims.append(d)
        else:
            raise cx.fail(f"reshape to {shape!r}: each size must be an int or a dimension of a tensor")
    return cx.emit("reshape", [input, *sizes], attrs={"shape": dims})


def dim_size(cx: Converter, value: V, dim: int) -> Any:
    """`x.size(dim)`: the batch dimension (`batch_dim`, 0 unless the compile says otherwise) stays symbolic (a `size` node: the file takes any batch),
    every other dimension is the number the example inputs fix (so `x.shape[1] // 4` is an int)."""
    batch = cx.graph.graph.get("batch_dim", 0)
    if dim == batch:
        return cx.emit("size", [value], attrs={"dim": batch})
    shape = cx.shape_of(value)
    if not -len(shape) <= dim < len(shape):
        raise cx.fail(f"dimension {dim} is out of range for a tensor of shape {shape}")
    if dim % len(shape) == batch:
        return cx.emit("size", [value], attrs={"dim": batch})
    return shape[dim]


@converts(torch.transpose, methods=("transpose",))
def _transpose(cx: Converter, input: Any, dim0: int, dim1: int) -> V:
    rank = len(cx.shape_of(input))
    perm = list(range(rank))
    perm[dim0 % rank], perm[dim1 % rank] = perm[dim1 % rank], perm[dim0 % rank]
    return cx.emit("transpose", [input], attrs={"perm": perm})


@converts(torch.permute, methods=("permute",))
def _permute(cx: Converter, input: Any, *dims: Any) -> V:
    if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
        dims = tuple(dims[0])
    rank = len(cx.shape_of(input))
    return cx.emit("transpose", [input], attrs={"perm": [int(d) % rank for d in dims]})


@converts(methods=("size",))
def _size(cx: Converter, input: Any, dim: Any = None) -> Any:
    if dim is None:
        return ShapeOf(input)
    return dim_size(cx, input, int(dim))


@converts(methods=("dim", "ndimension"))
def _dim(cx: Converter, input: Any) -> int:
    return len(cx.shape_of(input))


@converts(builtins.getattr)
def _getattr(cx: Converter, obj: Any, name: str) -> Any:
    if name == "shape" and isinstance(obj, V):
        return ShapeOf(obj)
    if name == "data" and isinstance(obj, V):  # `x.data` reads the same values (it only leaves autograd)
        return obj
    if name == "ndim" and isinstance(obj, V):
        return len(cx.shape_of(obj))
    raise cx.fail(f"reading attribute {name!r} of a traced value is not supported")


@converts(operator.getitem)
def _getitem(cx: Converter, obj: Any, index: Any) -> Any:
    if isinstance(obj, ShapeOf):
        if not isinstance(index, int):
            raise cx.fail("only single dimensions of a shape can be read (x.shape[i])")
        return dim_size(cx, obj.value, index)
    if isinstance(obj, (list, tuple)):
        return obj[index]
    if cx.graph.op(obj.node) in ("pack", "input_choice"):
        if not isinstance(index, int):
            raise cx.fail("a list of inputs can only be indexed by an int")
        return cx.emit("getitem", [obj], attrs={"index": index})
    return _slice(cx, obj, index)


def _slice(cx: Converter, tensor: V, index: Any) -> V:
    items = index if isinstance(index, tuple) else (index,)
    if sum(item is Ellipsis for item in items) > 1:
        raise cx.fail("an index may hold at most one `...`")
    dims, starts, ends, steps = [], [], [], []
    selects: list[tuple[int, int]] = []  # (dim, index) of integer indices (`inputs[t]`, `x[:, -1]`)
    position = 0
    for k, item in enumerate(items):
        if item is Ellipsis:
            position = -(len(items) - k - 1)
            continue
        if isinstance(item, int) and not isinstance(item, bool):
            selects.append((position, item))
            position += 1
            continue
        if not isinstance(item, slice) or not all(
                v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in (item.start, item.stop, item.step)):
            raise cx.fail(f"tensor index {index!r} is not supported: only integers and slices with constant "
                          "bounds (like x[3], x[:, :, 1:, ::2], x[-4:]) are")
        if (item.step or 1) <= 0:
            raise cx.fail(f"slice step {item.step} must be positive")
        if item != slice(None):
            dims.append(position)
            starts.append(item.start or 0)
            ends.append(item.stop)
            steps.append(item.step or 1)
        position += 1
    if selects:
        from .sequence_functions import select

        rank = len(cx.shape_of(tensor))
        out = cx.emit("slice", [tensor], attrs={"dims": dims, "starts": starts, "ends": ends, "steps": steps}) \
            if dims else tensor
        for dim, index in sorted(((d % rank, i) for d, i in selects), reverse=True):  # the last dim first
            out = select(cx, out, dim, index)
        return out
    if not dims:
        return cx.emit("identity", [tensor])
    return cx.emit("slice", [tensor], attrs={"dims": dims, "starts": starts, "ends": ends, "steps": steps})


from . import sequence_functions  # noqa: E402,F401  registers the recurrent models' functions
