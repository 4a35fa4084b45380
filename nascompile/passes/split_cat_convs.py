"""`split-cat-convs`: a convolution of a channel concatenation becomes a sum of convolutions of its parts.

A DARTS cell's output is the channel concatenation of its nodes, and the next two cells read it only
through `relu` and ungrouped convolutions (their preprocessing, 1x1 or FactorizedReduce's). A
convolution is linear in its input channels and ReLU acts per element, so

    conv2d(relu(cat(a, b))) W  ->  sum(conv2d(relu(a)) W[:, :Ca], conv2d(relu(b)) W[:, Ca:])

with the bias, if any, on the first part. Nothing then reads the concatenation, whose copy (13-15% of
onnxruntime's kernel time on the DARTS example once Slice is gone) is never made; the partial sums
are written as a chain of two-input sums, which onnxruntime fuses into the convolutions (the NCHWc
convolution's accumulate input). The multiply-accumulates are the same. A part's relu is the one the
graph computes already where there is one (a cell state's own edges apply it too).

Only when *every* user of the `cat` (dim 1, N x C x H x W) is such a convolution or a `relu` read only
by such convolutions: with any other user the concatenation would still be made. Exact in real
arithmetic; the per-output sums are accumulated in another order (float rounding only).
"""

from __future__ import annotations

from ..ir.graph import Graph
from .fold_batch_norm import FOLDABLE_DTYPES
from .manager import PassContext, PassResult, register_pass


def _splittable_conv(graph: Graph, node: str) -> bool:
    return (graph.op(node) == "conv2d" and graph.attrs(node)["groups"] == 1
            and graph.params(node)["weight"].dtype in FOLDABLE_DTYPES)


def _users(graph: Graph, node: str) -> list[str]:
    return [user for user, _ in graph.users(node)]


def _plan(graph: Graph, cat: str) -> tuple[list[str], list[str]] | None:
    """(relus, convs) reading `cat` when every user is one of them (a relu read only by convs), else None."""
    if graph.attrs(cat)["dim"] % 4 != 1 or len(graph.meta(cat).get("shape") or []) != 4:
        return None
    relus, convs = [], []
    for user in dict.fromkeys(_users(graph, cat)):
        if _splittable_conv(graph, user):
            convs.append(user)
        elif graph.op(user) == "relu" and all(_splittable_conv(graph, u) for u in _users(graph, user)):
            relus.append(user)
            convs += list(dict.fromkeys(_users(graph, user)))
        else:
            return None
    return (relus, convs) if convs else None


def _split_conv(graph: Graph, conv: str, parts: list[str], widths: list[int]) -> None:
    """Make `conv` the sum of its per-part convolutions (in place: its users keep reading `conv`)."""
    params, attrs, meta = graph.params(conv), graph.attrs(conv), graph.meta(conv)
    weight, start, partial = params["weight"], 0, None
    for i, (part, width) in enumerate(zip(parts, widths)):
        part_params = {"weight": weight[:, start:start + width].contiguous()}
        if i == 0 and "bias" in params:
            part_params["bias"] = params["bias"]
        start += width
        term = graph.add_op("conv2d", [part], name=f"{conv}.part{i}", attrs=dict(attrs), params=part_params,
                            meta=dict(meta))
        if partial is None:
            partial = term
        elif i < len(parts) - 1:
            partial = graph.add_op("sum", [partial, term], name=f"{conv}.sum{i}", meta=dict(meta))
        else:
            graph.replace_op(conv, "sum", [partial, term])


def _relu_of(graph: Graph, value: str, like: str) -> str:
    """A relu of `value`: the one the graph has already (a cell state's edges share it), else a new one."""
    for user, _ in graph.users(value):
        if graph.op(user) == "relu":
            return user
    meta = {k: v for k, v in graph.meta(like).items() if k != "shape"} | {"shape": graph.meta(value)["shape"]}
    return graph.add_op("relu", [value], name=f"{value}.relu", meta=meta)


def split_cat(graph: Graph, cat: str) -> bool:
    plan = _plan(graph, cat)
    sources = graph.inputs(cat)
    if plan is None or len(sources) < 2:
        return False
    relus, convs = plan
    widths = [graph.meta(s)["shape"][1] for s in sources]
    relu_parts = {}
    for relu in relus:
        relu_parts[relu] = [_relu_of(graph, s, relu) for s in sources]
    for conv in convs:
        (source,) = graph.inputs(conv)
        _split_conv(graph, conv, relu_parts.get(source, sources), widths)
    for relu in relus:
        graph.remove_node(relu)
    graph.remove_node(cat)
    return True


@register_pass("split-cat-convs")
def split_cat_convs(graph: Graph, ctx: PassContext) -> PassResult:
    changed = [cat for cat in graph.nodes_of("cat") if split_cat(graph, cat)]
    return PassResult(changed=bool(changed))
