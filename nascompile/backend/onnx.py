"""IR -> ONNX: one lowering per IR op kind, straight to an `onnx.ModelProto` with `onnx.helper`.

Weights become initializers named after their module path (`cells.0.preproc1.1.weight`), and nodes
are named after the IR node (itself named after the module path), so the file reads well in Netron.
The batch dimension of inputs and outputs is symbolic by default. The same graph always gives the
same bytes: traversal is in the graph's deterministic order and nothing depends on ids or time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper

from ..errors import LoweringError, WeightsError
from ..finite import non_finite_among
from ..ir.graph import Graph
from ..ir.text import DTYPES_BY_NAME
from ..opsets import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from ..version import __version__
from .protos import add_node, add_tensor

IR_VERSION = 8  # onnxruntime >= 1.14 reads it; opset 17 needs at least 8
INT64_MAX = 2**63 - 1

_ONNX_TYPES = {
    "f32": TensorProto.FLOAT, "f64": TensorProto.DOUBLE, "f16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16,
    "i64": TensorProto.INT64, "i32": TensorProto.INT32, "i16": TensorProto.INT16, "i8": TensorProto.INT8,
    "u8": TensorProto.UINT8, "bool": TensorProto.BOOL,
}
_ELEMENTWISE = frozenset({"sum", "mean", "sub", "mul", "div"})


class Emitter:
    """Collects ONNX nodes and initializers for one graph."""

    def __init__(self, graph: Graph, opset: int, dynamic_spatial: bool = False):
        self.graph = graph
        self.opset = opset
        self.dynamic_spatial = dynamic_spatial  # H and W of the inputs are symbolic: lowerings may not bake them
        # nodes and initializers go straight into the model being built: every intermediate message holding
        # them (helper.make_graph, make_model) would be one more copy (of the weights, at the peak)
        self.model = onnx.ModelProto()
        self.nodes = self.model.graph.node
        self.initializers = self.model.graph.initializer
        self.values: dict[str, Any] = {}  # IR node -> ONNX value name (or list of names for `pack`)
        self._taken: set[str] = set()
        self._suffixes: dict[str, int] = {}
        self._tensor_names: dict[tuple, tuple[str, torch.Tensor]] = {}  # tensor_key -> (name, the tensor kept alive)
        self._constants: dict[tuple, str] = {}
        self.output_alias: dict[str, str] = {}  # IR node -> graph output name its value should take
        self.weights_written: list[tuple[torch.Tensor, str, str]] = []  # (tensor, name, op): checked at the end

    # --- names ------------------------------------------------------------------------------------
    def unique(self, base: str) -> str:
        """`base`, or `base_1`, `base_2`, ...: the first not taken (counting on from the last, so that
        many values sharing one base cost linear time)."""
        name, i = base, self._suffixes.get(base, 0)
        while name in self._taken:
            i += 1
            name = f"{base}_{i}"
        self._suffixes[base] = i
        self._taken.add(name)
        return name

    def where(self, node: str) -> str:
        return self.graph.meta(node).get("source") or f"%{node}"

    def fail(self, node: str, message: str) -> LoweringError:
        return LoweringError(f"cannot lower {self.graph.op(node)} at module {self.where(node)!r} (node %{node}): {message}")

    # --- values -----------------------------------------------------------------------------------
    def initializer(self, base: str, array: np.ndarray, scalar: bool = False) -> str:
        """An initializer holding `array`; a 0-d one is written with dims [1] (the form files have always had,
        from `np.ascontiguousarray`) unless `scalar` asks for a 0-d tensor."""
        name = self.unique(base)
        add_tensor(self.initializers, name, array if scalar or array.ndim else array.reshape(1))
        return name

    def param(self, node: str, key: str, transposed: bool = False) -> str:
        """Initializer for a parameter tensor (or its transpose); a tensor shared by several nodes is stored once.

        Sharing is by identity of the data (`tensor_key`), not of the tensor object: the lift may hand two
        uses of one `nn.Parameter` as two tensor objects viewing the same storage.
        """
        tensor = self.graph.params(node)[key]
        cache_key = (tensor_key(tensor), transposed)
        if cache_key not in self._tensor_names:
            base = f"{self.where(node) if transposed else self.graph.meta(node).get('source') or node}.{key}"
            self.weights_written.append((tensor, f"{self.where(node)}.{key}", self.graph.op(node)))
            array = _to_numpy(tensor).T if transposed else _to_numpy(tensor)
            self._tensor_names[cache_key] = (self.initializer(base + ("_t" if transposed else ""), array), tensor)
        return self._tensor_names[cache_key][0]

    def const(self, base: str, values: Any, dtype: Any = np.int64) -> str:
        """A small constant initializer (shapes, axes, scalars), shared between identical uses."""
        array = np.asarray(values, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._constants:
            self._constants[key] = self.initializer(base, array)
        return self._constants[key]

    def input(self, node: str, port: int, dtype: str | None = None) -> str:
        """ONNX name of argument `port` of `node`; IR constants are materialized in `dtype`."""
        src = self.graph.inputs(node)[port]
        if self.graph.op(src) == "constant" and src not in self.values:
            return self.constant_value(src, dtype)
        if src not in self.values:
            raise self.fail(node, f"its argument %{src} has no ONNX value")
        return self.values[src]

    def constant_value(self, node: str, dtype: str | None) -> str:
        params, attrs = self.graph.params(node), self.graph.attrs(node)
        dtype = dtype or self.graph.meta(node).get("dtype") or "f32"
        np_dtype = _numpy_dtype(dtype)
        value = _to_numpy(params["value"]).astype(np_dtype) if "value" in params else np.asarray(attrs["value"], np_dtype)
        return self.const(f"{self.where(node)}.const", value, np_dtype)

    def inputs(self, node: str, dtype: str | None = None) -> list[str]:
        return [self.input(node, port, dtype) for port in range(len(self.graph.inputs(node)))]

    def shape(self, node: str, port: int = 0) -> list[int]:
        src = self.graph.inputs(node)[port]
        shape = self.graph.meta(src).get("shape")
        if shape is None:
            raise self.fail(node, "needs the static shape of its input; run the infer-shapes pass first")
        return shape

    # --- nodes ------------------------------------------------------------------------------------
    def add(self, op_type: str, inputs: list[str], name: str, n_outputs: int = 1, **attrs: Any) -> list[str]:
        alias = self.output_alias.pop(name, None)  # a graph output keeps its public name (reserved)
        outputs = [alias if i == 0 and alias else self.unique(name if i == 0 else f"{name}:{i}")
                   for i in range(n_outputs)]
        add_node(self.nodes, op_type, inputs, outputs, self.unique(f"{name}/{op_type}"), attrs)
        return outputs

    def emit(self, node: str, op_type: str, inputs: list[str], **attrs: Any) -> str:
        """Lower `node` to a single ONNX node whose output is the node's value."""
        return self.add(op_type, inputs, node, **attrs)[0]


def non_finite_error(name: str, op: str, found: tuple[int, list[int]], kind: str = "weight") -> WeightsError:
    return WeightsError(f"{kind} {name!r} (of {op}) holds {found[0]} non-finite value(s) (NaN or inf; the first at "
                        f"index {found[1]}); the supernet's weights are broken (a diverged search?): load a good "
                        "checkpoint with --weights")


def refuse_non_finite(written: list[tuple[torch.Tensor, str, str]]) -> None:
    """Refuse the first weight holding NaN or infinity: the file would compute NaN, and validation could not
    say why. Checked once for all weights written (`finite.non_finite_among`), not one call per tensor."""
    found = non_finite_among([tensor for tensor, _, _ in written])
    if found:
        index, bad = found[0]
        _, name, op = written[index]
        raise non_finite_error(name, op, bad)


def tensor_key(tensor: torch.Tensor) -> tuple:
    """Equal for two tensors that view the same elements of the same storage (so hold equal data)."""
    return (tensor.device.type, tensor.device.index, tensor.untyped_storage().data_ptr(), tensor.storage_offset(),
            tuple(tensor.shape), tuple(tensor.stride()), tensor.dtype)


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bfloat16:
        raise LoweringError("bfloat16 parameters are not supported by the ONNX emitter yet; cast the model to float32")
    return tensor.contiguous().numpy()


def _numpy_dtype(dtype: str) -> np.dtype:
    if dtype == "bf16":
        raise LoweringError("bfloat16 values are not supported by the ONNX emitter yet; cast the model to float32")
    return torch.empty(0, dtype=DTYPES_BY_NAME[dtype]).numpy().dtype


# --- lowerings: fn(emitter, node, attrs) -> ONNX value name --------------------------------------
Lowering = Callable[[Emitter, str, dict], Any]
LOWERINGS: dict[str, Lowering] = {}


def lowers(*ops: str) -> Callable[[Lowering], Lowering]:
    def register(fn: Lowering) -> Lowering:
        for op in ops:
            LOWERINGS[op] = fn
        return fn

    return register


def _simple(op_type: str, **fixed: Any) -> Lowering:
    return lambda e, node, attrs: e.emit(node, op_type, e.inputs(node, e.graph.meta(node).get("dtype")), **fixed)


for _op, _onnx_op in [("relu", "Relu"), ("sigmoid", "Sigmoid"), ("tanh", "Tanh"), ("hardswish", "HardSwish"),
                      ("identity", "Identity"), ("sum", "Sum"), ("mean", "Mean"), ("sub", "Sub"), ("mul", "Mul"),
                      ("div", "Div")]:
    LOWERINGS[_op] = _simple(_onnx_op)
LOWERINGS["hardsigmoid"] = _simple("HardSigmoid", alpha=1.0 / 6.0, beta=0.5)


@lowers("leaky_relu")
def _leaky_relu(e: Emitter, node: str, attrs: dict) -> str:
    return e.emit(node, "LeakyRelu", e.inputs(node), alpha=float(attrs["negative_slope"]))


@lowers("silu")
def _silu(e: Emitter, node: str, attrs: dict) -> str:
    x = e.input(node, 0)
    gate = e.add("Sigmoid", [x], f"{node}.sigmoid")[0]
    return e.emit(node, "Mul", [x, gate])


@lowers("clip")
def _clip(e: Emitter, node: str, attrs: dict) -> str:
    dtype = _numpy_dtype(e.graph.meta(node).get("dtype") or "f32")
    bounds = ["" if attrs[k] is None else e.const(f"{e.where(node)}.{k}", attrs[k], dtype) for k in ("min", "max")]
    while bounds and bounds[-1] == "":
        bounds.pop()
    return e.emit(node, "Clip", [e.input(node, 0), *bounds])


@lowers("conv2d")
def _conv2d(e: Emitter, node: str, attrs: dict) -> str:
    weight = e.graph.params(node)["weight"]
    inputs = [e.input(node, 0), e.param(node, "weight")]
    if "bias" in e.graph.params(node):
        inputs.append(e.param(node, "bias"))
    ph, pw = attrs["padding"]
    return e.emit(node, "Conv", inputs, kernel_shape=list(weight.shape[2:]), strides=list(attrs["stride"]),
                  pads=[ph, pw, ph, pw], dilations=list(attrs["dilation"]), group=int(attrs["groups"]))


@lowers("batch_norm")
def _batch_norm(e: Emitter, node: str, attrs: dict) -> str:
    params = e.graph.params(node)
    mean = params["running_mean"]
    np_dtype = _to_numpy(mean).dtype
    source = e.where(node)
    scale = e.param(node, "weight") if "weight" in params else e.const(f"{source}.scale", np.ones(mean.shape), np_dtype)
    bias = e.param(node, "bias") if "bias" in params else e.const(f"{source}.shift", np.zeros(mean.shape), np_dtype)
    return e.emit(node, "BatchNormalization",
                  [e.input(node, 0), scale, bias, e.param(node, "running_mean"), e.param(node, "running_var")],
                  epsilon=float(attrs["eps"]))


@lowers("linear")
def _linear(e: Emitter, node: str, attrs: dict) -> str:
    params = e.graph.params(node)
    x = e.input(node, 0)
    if len(e.shape(node)) == 2:
        inputs = [x, e.param(node, "weight")] + ([e.param(node, "bias")] if "bias" in params else [])
        return e.emit(node, "Gemm", inputs, transB=1)
    weight_t = e.param(node, "weight", transposed=True)
    if "bias" not in params:
        return e.emit(node, "MatMul", [x, weight_t])
    product = e.add("MatMul", [x, weight_t], f"{node}.matmul")[0]
    return e.emit(node, "Add", [product, e.param(node, "bias")])


def _pool_pads(attrs: dict) -> list[int]:
    ph, pw = attrs["padding"]
    return [ph, pw, ph, pw]


@lowers("max_pool2d")
def _max_pool2d(e: Emitter, node: str, attrs: dict) -> str:
    return e.emit(node, "MaxPool", [e.input(node, 0)], kernel_shape=list(attrs["kernel_size"]),
                  strides=list(attrs["stride"]), pads=_pool_pads(attrs), dilations=list(attrs["dilation"]),
                  ceil_mode=int(attrs["ceil_mode"]))


@lowers("avg_pool2d")
def _avg_pool2d(e: Emitter, node: str, attrs: dict) -> str:
    kernel = list(attrs["kernel_size"])
    divisor = attrs.get("divisor_override")
    include_pad = int(bool(attrs["count_include_pad"]) or divisor is not None)
    pooled = e.add("AveragePool", [e.input(node, 0)], node if divisor is None else f"{node}.pool",
                   kernel_shape=kernel, strides=list(attrs["stride"]), pads=_pool_pads(attrs),
                   count_include_pad=include_pad, ceil_mode=int(attrs["ceil_mode"]))[0]
    if divisor is None:
        return pooled
    if attrs["ceil_mode"]:
        raise e.fail(node, "divisor_override with ceil_mode=True is not supported")
    factor = e.const(f"{e.where(node)}.divisor", kernel[0] * kernel[1] / divisor, _numpy_dtype(e.graph.meta(node).get("dtype") or "f32"))
    return e.emit(node, "Mul", [pooled, factor])


@lowers("adaptive_avg_pool2d")
def _adaptive_avg_pool2d(e: Emitter, node: str, attrs: dict) -> str:
    out_h, out_w = attrs["output_size"]
    if [out_h, out_w] == [1, 1]:
        return e.emit(node, "GlobalAveragePool", [e.input(node, 0)])
    if e.dynamic_spatial:
        raise e.fail(node, f"adaptive pooling to {out_h}x{out_w} has windows that depend on the input's height and "
                           "width, which ONNX pooling cannot express with --dynamic-spatial; compile with a fixed size")
    height, width = e.shape(node)[-2:]
    kernel = []
    for size, out in ((height, out_h), (width, out_w)):
        out = size if out is None else out
        if size % out:
            raise e.fail(node, f"adaptive pooling from {size} to {out} has uneven windows, which ONNX cannot express")
        kernel.append(size // out)
    return e.emit(node, "AveragePool", [e.input(node, 0)], kernel_shape=kernel, strides=kernel)


@lowers("reduce_mean")
def _reduce_mean(e: Emitter, node: str, attrs: dict) -> str:
    if e.opset >= 18:
        return e.emit(node, "ReduceMean", [e.input(node, 0), e.const(f"{node}.axes", attrs["dims"])],
                      keepdims=int(attrs["keepdim"]))
    return e.emit(node, "ReduceMean", [e.input(node, 0)], axes=list(attrs["dims"]), keepdims=int(attrs["keepdim"]))


@lowers("reduce_sum")
def _reduce_sum(e: Emitter, node: str, attrs: dict) -> str:
    return e.emit(node, "ReduceSum", [e.input(node, 0), e.const(f"{node}.axes", attrs["dims"])],
                  keepdims=int(attrs["keepdim"]))


@lowers("log_softmax")
def _log_softmax(e: Emitter, node: str, attrs: dict) -> str:
    return e.emit(node, "LogSoftmax", [e.input(node, 0)], axis=int(attrs["dim"]))


@lowers("embedding")
def _embedding(e: Emitter, node: str, attrs: dict) -> str:
    return e.emit(node, "Gather", [e.param(node, "weight"), e.input(node, 0)], axis=0)


@lowers("matmul")
def _matmul(e: Emitter, node: str, attrs: dict) -> str:
    return e.emit(node, "MatMul", e.inputs(node, e.graph.meta(node).get("dtype")))


@lowers("select")
def _select(e: Emitter, node: str, attrs: dict) -> str:
    key = ("scalar-index", int(attrs["index"]))  # a 0-d index (Gather then drops the dim); `const` makes 1-d ones
    if key not in e._constants:
        e._constants[key] = e.initializer(f"{e.where(node)}.index", np.array(int(attrs["index"]), dtype=np.int64),
                                          scalar=True)
    return e.emit(node, "Gather", [e.input(node, 0), e._constants[key]], axis=int(attrs["dim"]))


@lowers("unsqueeze")
def _unsqueeze(e: Emitter, node: str, attrs: dict) -> str:
    return e.emit(node, "Unsqueeze", [e.input(node, 0), e.const(f"{node}.axes", [int(attrs["dim"])])])


@lowers("cat")
def _cat(e: Emitter, node: str, attrs: dict) -> str:
    return e.emit(node, "Concat", e.inputs(node, e.graph.meta(node).get("dtype")), axis=int(attrs["dim"]))


@lowers("slice")
def _slice(e: Emitter, node: str, attrs: dict) -> str:
    ends = [INT64_MAX if end is None else end for end in attrs["ends"]]
    where = e.where(node)
    return e.emit(node, "Slice", [e.input(node, 0), e.const(f"{where}.starts", attrs["starts"]),
                                  e.const(f"{where}.ends", ends), e.const(f"{where}.axes", attrs["dims"]),
                                  e.const(f"{where}.steps", attrs["steps"])])


@lowers("flatten")
def _flatten(e: Emitter, node: str, attrs: dict) -> str:
    rank = len(e.shape(node))
    start, end = attrs["start_dim"] % rank, attrs["end_dim"] % rank
    if start == 1 and end == rank - 1:
        return e.emit(node, "Flatten", [e.input(node, 0)], axis=1)
    shape = [0] * start + [-1] + [0] * (rank - 1 - end)  # 0 copies the input's dim (allowzero=0)
    return e.emit(node, "Reshape", [e.input(node, 0), e.const(f"{e.where(node)}.shape", shape)])


@lowers("transpose")
def _transpose(e: Emitter, node: str, attrs: dict) -> str:
    return e.emit(node, "Transpose", [e.input(node, 0)], perm=list(attrs["perm"]))


@lowers("reshape")
def _reshape(e: Emitter, node: str, attrs: dict) -> str:
    graph = e.graph
    args = graph.inputs(node)
    sizes = iter(args[1:])
    entries: list[Any] = []  # int, or ONNX name of a 1-element int64 tensor
    for i, dim in enumerate(attrs["shape"]):
        if dim is not None:
            entries.append(dim)
            continue
        size_node = next(sizes)
        if graph.op(size_node) == "size" and graph.inputs(size_node)[0] == args[0] \
                and graph.attrs(size_node)["dim"] % len(e.shape(node)) == i:
            entries.append(0)  # the input's own dim i, copied by Reshape
        else:
            entries.append(e.add("Reshape", [e.values[size_node], e.const(f"{node}.one", [1])],  # any rank -> [1]
                                 f"{node}.dim{i}")[0])
    if all(isinstance(x, int) for x in entries):
        shape = e.const(f"{e.where(node)}.shape", entries)
    else:
        parts = [e.const(f"{node}.dim{i}", [x]) if isinstance(x, int) else x for i, x in enumerate(entries)]
        shape = e.add("Concat", parts, f"{node}.shape", axis=0)[0]
    return e.emit(node, "Reshape", [e.input(node, 0), shape])


@lowers("size")
def _size(e: Emitter, node: str, attrs: dict) -> str:
    shape = e.add("Shape", [e.input(node, 0)], f"{node}.shape")[0]
    return e.emit(node, "Gather", [shape, e.const(f"{node}.index", attrs["dim"])], axis=0)


@lowers("pad")
def _pad(e: Emitter, node: str, attrs: dict) -> str:
    rank = len(e.shape(node))
    pads = list(attrs["pads"])
    begins, ends = [0] * rank, [0] * rank
    for k in range(len(pads) // 2):  # torch order: last dim first, (begin, end) pairs
        begins[rank - 1 - k], ends[rank - 1 - k] = pads[2 * k], pads[2 * k + 1]
    dtype = _numpy_dtype(e.graph.meta(node).get("dtype") or "f32")
    return e.emit(node, "Pad", [e.input(node, 0), e.const(f"{e.where(node)}.pads", begins + ends),
                                e.const(f"{e.where(node)}.pad_value", attrs["value"], dtype)], mode="constant")


@lowers("zero")
def _zero(e: Emitter, node: str, attrs: dict) -> str:
    shape = e.add("Shape", [e.input(node, 0)], f"{node}.shape")[0]
    dtype = e.graph.meta(node).get("dtype") or "f32"
    value = helper.make_tensor("value", _ONNX_TYPES[dtype], [1], [0])
    return e.emit(node, "ConstantOfShape", [shape], value=value)


@lowers("pack")
def _pack(e: Emitter, node: str, attrs: dict) -> list[str]:
    return e.inputs(node)


@lowers("getitem")
def _getitem(e: Emitter, node: str, attrs: dict) -> str:
    items = e.input(node, 0)
    if not isinstance(items, list):
        raise e.fail(node, "indexes a value that is not a list")
    return items[attrs["index"]]


# --- assembly ---------------------------------------------------------------------------------------
def _value_info(name: str, meta: Mapping[str, Any], dynamic_batch: bool, where: str,
                spatial: list[Any] | None = None, batch_dim: int = 0, time: bool = False) -> onnx.ValueInfoProto:
    """The declared type of a graph input or output; `spatial` replaces dims 2.. (names, or None: unknown)."""
    if meta.get("dtype") not in _ONNX_TYPES or meta.get("shape") is None:
        raise LoweringError(f"{where} has no known dtype/shape; run the infer-shapes pass before emitting")
    shape: list[Any] = list(meta["shape"])
    if dynamic_batch and len(shape) > batch_dim:
        shape[batch_dim] = "batch"
    if time and shape:
        shape[0] = "time"
    if spatial is not None and len(shape) >= 3:
        shape[2:] = spatial[:len(shape) - 2] + [None] * max(0, len(shape) - 2 - len(spatial))
    return helper.make_tensor_value_info(name, _ONNX_TYPES[meta["dtype"]], shape)


def output_names(count: int) -> list[str]:
    return ["output"] if count == 1 else [f"output_{i}" for i in range(count)]


def to_onnx(graph: Graph, *, opset: int = DEFAULT_OPSET, dynamic_batch: bool = True, dynamic_spatial: bool = False,
            metadata: Mapping[str, str] | None = None, name: str = "nascompile", batch_dim: int = 0,
            loop: Any = None) -> onnx.ModelProto:
    """Lower a discrete IR graph (decided, expanded, shapes inferred) to an ONNX model.

    Every intermediate value gets its inferred type in `value_info`, inputs and outputs a doc string
    (`value_info.py`). `dynamic_spatial`: dims 2.. of the inputs are symbolic (`height`, `width`), and
    those of rank >= 3 outputs come from shape inference. `loop` (a `loops.TimeLoop` of `graph`): its unrolled
    steps become one ONNX Scan, and dim 0 of its sequence input (time) is symbolic (`time`).
    """
    from .value_info import describe_io, infer_value_info

    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise LoweringError(f"opset {opset} is not supported; nascompile emits opsets {MIN_OPSET} to {MAX_OPSET} "
                            f"(default {DEFAULT_OPSET})")
    e = Emitter(graph, opset, dynamic_spatial)
    graph_inputs = graph.graph_inputs()
    timed = _timed_values(graph, loop) if loop is not None else set()
    inputs = []
    for node in graph_inputs:
        e._taken.add(node)
        e.values[node] = node
        prefix = "" if len(graph_inputs) == 1 else f"{node}_"
        spatial = [f"{prefix}height", f"{prefix}width"] if dynamic_spatial else None
        inputs.append(_value_info(node, graph.meta(node), dynamic_batch, f"input %{node}", spatial, batch_dim,
                                  node in timed))
    output = graph.output_node()
    sources = graph.inputs(output)
    names = output_names(len(sources))
    for src, out_name in zip(sources, names):
        if sources.count(src) == 1 and graph.op(src) not in ("input", "constant", "pack"):
            e.output_alias[src] = out_name
    e._taken.update(names)
    skipped = (loop.members | set(loop.unsqueezes)) if loop is not None else set()
    for node in graph.order():
        op = graph.op(node)
        if op in ("input", "output", "constant") or node in skipped:
            continue
        if loop is not None and node == loop.stack:
            final, e.values[node] = _emit_loop(e, loop)
            e.values[loop.states[-1]] = final
            continue
        lowering = LOWERINGS.get(op)
        if lowering is None:
            hint = "; run darts-choice and expand first" if op in ("layer_choice", "input_choice") else ""
            raise e.fail(node, f"no ONNX lowering for op {op!r}{hint}")
        e.values[node] = lowering(e, node, graph.attrs(node))
    flat: list[tuple[str, str]] = []  # (ONNX value, IR node whose meta describes it)
    for port, src in enumerate(sources):
        value = e.input(output, port)
        flat += [(item, src) for item in (value if isinstance(value, list) else [value])]
    if len(flat) != len(names):
        names = output_names(len(flat))
    outputs = []
    for out_name, (value, src) in zip(names, flat):
        if value != out_name:
            e._taken.add(out_name)
            add_node(e.nodes, "Identity", [value], [out_name], e.unique(f"{out_name}/Identity"), {})
        outputs.append(_value_info(out_name, graph.meta(src), dynamic_batch, f"output {out_name}",
                                   [] if dynamic_spatial else None, batch_dim, src in timed))
    refuse_non_finite(e.weights_written)
    model = e.model  # holds the initializers already
    model.graph.name = name
    drop_dead_nodes(model.graph.node, [o.name for o in outputs])
    _drop_unused_initializers(model)
    model.graph.input.extend(inputs)
    model.graph.output.extend(outputs)
    model.opset_import.add(domain="", version=opset)
    model.producer_name, model.producer_version = "nascompile", __version__
    model.ir_version = IR_VERSION
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    infer_value_info(model)
    describe_io(model, graph_inputs, [graph.meta(src).get("source") for _, src in flat])
    return model




def _timed_values(graph: Graph, loop: Any) -> set[str]:
    """Inputs the loop's sequence is computed from, and outputs computed from its stacked states, whose dim 0
    is the loop's length: that dim is the symbolic `time` of a file with a Scan."""
    import networkx as nx

    before = nx.ancestors(graph, loop.sequence) | {loop.sequence}
    after = nx.descendants(graph, loop.stack) | {loop.stack}
    return {n for n in before | after if (graph.meta(n).get("shape") or [None])[0] == loop.length}


def _emit_loop(e: Emitter, loop: Any) -> tuple[str, str]:
    from .loops import emit_scan

    return emit_scan(e, loop)


def drop_dead_nodes(nodes: Any, outputs: list[str]) -> None:
    """Keep (in place, in their order) only the nodes some graph output depends on. A lowering may leave
    values nobody reads (the `Shape -> Gather` of `x.view(x.size(0), -1)` once Reshape copies the batch
    dimension itself): they are never written, so onnxruntime neither loads nor runs them."""
    needed, dead = set(outputs), []
    for index in range(len(nodes) - 1, -1, -1):  # the emitter appends in topological order
        node = nodes[index]
        if needed.isdisjoint(node.output):
            dead.append(index)
        else:
            needed.update(node.input)
    for index in dead:  # from the last: each deletion leaves the indices before it in place
        del nodes[index]


def _node_inputs(nodes) -> Any:
    """Every input name of `nodes` and of the nodes of their subgraphs (a Scan's body reads outer initializers)."""
    for node in nodes:
        yield from node.input
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _node_inputs(attr.g.node)


def _drop_unused_initializers(model: onnx.ModelProto) -> None:
    used = set(_node_inputs(model.graph.node))
    unused = [i for i, tensor in enumerate(model.graph.initializer) if tensor.name not in used]
    for i in reversed(unused):  # in place: rebuilding the list would copy every weight
        del model.graph.initializer[i]


def initializer_bytes(model: onnx.ModelProto) -> int:
    return sum(math.prod(t.dims) * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize for t in model.graph.initializer)
