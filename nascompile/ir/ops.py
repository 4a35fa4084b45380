"""The IR's closed op vocabulary: arity, attributes (with defaults) and parameters of each op.

One table, read by the verifier, the text parser (defaults), the interpreter and the emitter, so an
op's contract is written down once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

REQUIRED = object()  # marks an attribute without a default


@dataclass(frozen=True)
class OpSpec:
    """Contract of one op kind. `max_inputs=None` means variadic."""

    min_inputs: int
    max_inputs: int | None
    attrs: dict[str, Any] = field(default_factory=dict)
    params: tuple[str, ...] = ()
    optional_params: tuple[str, ...] = ()
    doc: str = ""


def _unary(doc: str, **attrs: Any) -> OpSpec:
    return OpSpec(1, 1, attrs, doc=doc)


def _binary(doc: str) -> OpSpec:
    return OpSpec(2, 2, doc=doc)


OPS: dict[str, OpSpec] = {
    # graph boundary and constants
    "input": OpSpec(0, 0, {"index": REQUIRED}, doc="graph input number `index`"),
    "output": OpSpec(1, None, doc="graph outputs, in port order"),
    "constant": OpSpec(0, 0, {"value": None}, optional_params=("value",),
                       doc="a scalar (attr `value`) or tensor (param `value`) constant"),
    # layers with weights
    "conv2d": OpSpec(1, 1, {"stride": [1, 1], "padding": [0, 0], "dilation": [1, 1], "groups": 1},
                     ("weight",), ("bias",), doc="2-D convolution, symmetric zero padding"),
    "batch_norm": OpSpec(1, 1, {"eps": 1e-5}, ("running_mean", "running_var"), ("weight", "bias"),
                         doc="inference batch norm over dim 1"),
    "linear": OpSpec(1, 1, {}, ("weight",), ("bias",), doc="x @ weight.T + bias"),
    "embedding": OpSpec(1, 1, {}, ("weight",), doc="rows of `weight` at the integer indices x (a lookup, ONNX Gather)"),
    "matmul": _binary("matrix product a @ b (torch.matmul / mm semantics)"),
    # activations
    "relu": _unary("max(x, 0)"),
    "clip": _unary("clamp(x, min, max); relu6 is clip(0, 6)", min=None, max=None),
    "leaky_relu": _unary("leaky ReLU", negative_slope=0.01),
    "sigmoid": _unary("logistic sigmoid"),
    "tanh": _unary("hyperbolic tangent"),
    "hardswish": _unary("x * relu6(x + 3) / 6"),
    "hardsigmoid": _unary("relu6(x + 3) / 6"),
    "silu": _unary("x * sigmoid(x)"),
    # pooling and reductions
    "max_pool2d": _unary("2-D max pooling", kernel_size=REQUIRED, stride=REQUIRED, padding=[0, 0],
                         dilation=[1, 1], ceil_mode=False),
    "avg_pool2d": _unary("2-D average pooling", kernel_size=REQUIRED, stride=REQUIRED, padding=[0, 0],
                         ceil_mode=False, count_include_pad=True, divisor_override=None),
    "adaptive_avg_pool2d": _unary("adaptive average pooling to `output_size`", output_size=REQUIRED),
    "reduce_mean": _unary("mean over `dims`", dims=REQUIRED, keepdim=False),
    "reduce_sum": _unary("sum over `dims`", dims=REQUIRED, keepdim=False),
    "log_softmax": _unary("log-softmax over `dim`", dim=REQUIRED),
    # elementwise arithmetic (numpy broadcasting)
    "add": _binary("a + b"),
    "sub": _binary("a - b"),
    "mul": _binary("a * b"),
    "div": _binary("a / b"),
    "sum": OpSpec(1, None, doc="n-ary elementwise sum"),
    "mean": OpSpec(1, None, doc="n-ary elementwise mean"),
    # shape manipulation
    "cat": OpSpec(1, None, {"dim": 1}, doc="concatenate along `dim`"),
    "slice": _unary("basic slicing: per listed dim, start:end:step (end null = to the end)",
                    dims=REQUIRED, starts=REQUIRED, ends=REQUIRED, steps=REQUIRED),
    "select": _unary("x[..., index, ...] at `dim`: the dim is removed (negative index counts from the end)",
                     dim=REQUIRED, index=REQUIRED),
    "unsqueeze": _unary("a new dim of size 1 at `dim`", dim=REQUIRED),
    "flatten": _unary("flatten dims start_dim..end_dim", start_dim=1, end_dim=-1),
    "reshape": OpSpec(1, None, {"shape": REQUIRED},
                      doc="reshape to `shape`; null entries take the extra inputs (dim sizes) in order"),
    "transpose": _unary("permute the dims of x: output dim i is input dim perm[i]", perm=REQUIRED),
    "size": _unary("the size of dim `dim` of x, as a 0-d int64 value", dim=REQUIRED),
    "pad": _unary("constant padding, torch.nn.functional.pad order", pads=REQUIRED, value=0.0),
    "identity": _unary("x"),
    "zero": _unary("zeros shaped like x: the DARTS `none` op after its striding"),
    # lists (the `none` reduction of an input choice)
    "pack": OpSpec(0, None, doc="a list of its inputs"),
    "getitem": _unary("element `index` of a list", index=REQUIRED),
    # architecture choices
    "layer_choice": OpSpec(1, None, {"label": REQUIRED, "candidates": REQUIRED, "modules": REQUIRED,
                                     "zero": None, "chosen": None},
                           ("logits",), ("edge_logits",),
                           doc="DARTS mixed op: candidates[i] is the module at modules[i] (null for an "
                               "implicit zero slot); `zero` is the zero slot; `chosen` once decided. "
                               "Optional attributes, absent meaning the default: `family` (the recognizer's "
                               "family, e.g. darts, archai, nni2, pc-darts: picks the default rule set), "
                               "`weighting` (softmax, or sigmoid as FairDARTS weighs), `edge_index` with "
                               "param `edge_logits` (PC-DARTS: the edge-normalization logits of the node "
                               "this edge feeds, and this edge's position in them)"),
    "edge": OpSpec(2, 2, {"module": None},
                   doc="an edge term of an aggregation node: the value of input 0, ranked by the layer choice at "
                       "input 1 (PC-DARTS's edge-normalized mixed ops: the term around the choice is kept whole); "
                       "`module` is the edge's module; `expand` replaces it by input 0"),
    "input_choice": OpSpec(1, None, {"label": REQUIRED, "n_chosen": None, "choose_from": REQUIRED,
                                     "reduction": "sum"},
                           doc="keeps `n_chosen` of its inputs, ranked by the strength of the layer "
                               "choices named in `choose_from`, and reduces them"),
}

def spec(op: str) -> OpSpec:
    """The contract of `op` (KeyError for an unknown op; the verifier reports it nicely)."""
    return OPS[op]


def with_defaults(op: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """`attrs` completed with the op's defaults for attributes not given (required ones stay absent)."""
    out = {k: v for k, v in OPS[op].attrs.items() if v is not REQUIRED and k not in attrs}
    out.update(attrs)
    return out
