"""`expand`: replace each decided layer choice by its chosen candidate, lifted into primitive ops.

The lift keeps candidates as module references; only the survivors are traced, here. Before expanding,
the pass records the derived cell structure (`arch.describe`), which is no longer visible afterwards.
A chosen zero op (rule sets where `none` is a real candidate, as NAS-Bench-201's) becomes a `zero` op
shaped like the first real candidate's output, as the validation reference computes it; the
optimization passes then remove it from the sums it feeds and the candidate with it.
"""

from __future__ import annotations

from ..arch import describe
from ..errors import ChoiceError, PipelineError
from ..frontend import lift_candidate
from ..ir.graph import Graph
from .manager import PassContext, PassResult, register_pass


def _refuse_nested(attrs: dict, inner: str) -> None:
    raise ChoiceError(f"the chosen candidate {attrs['modules'][attrs['chosen']]!r} of layer choice {attrs['label']!r} "
                      f"contains the choice {inner!r}: nested choices are not supported")


def _expand_inline(graph: Graph, node: str, attrs: dict) -> None:
    from ..ir.interpreter import inline_slots

    inputs = graph.inputs(node)
    if attrs["chosen"] == attrs.get("zero"):
        output = graph.add_op("zero", [inputs[0]], name="zero", meta=dict(graph.meta(node)))
    else:
        output = inputs[inline_slots(attrs).index(attrs["chosen"])]
    graph.replace_uses(node, output)
    graph.remove_node(node)


@register_pass("expand")
def expand(graph: Graph, ctx: PassContext) -> PassResult:
    nodes = graph.nodes_of("layer_choice")
    for node in nodes:
        if graph.attrs(node).get("chosen") is None:
            label = graph.attrs(node)["label"]
            raise PipelineError(f"expand found the undecided layer choice {label!r}; run darts-choice first")
    traced = [n for n in nodes if not graph.attrs(n).get("inline")]  # inline ones need no module
    if traced and (graph.root is None or ctx.lifter is None):
        raise PipelineError("expand needs the supernet module (the graph was not lifted from a model)")
    if nodes and ctx.architecture is None:
        ctx.architecture = describe(graph, ctx.search_space)  # the cell structure is only visible before expansion
    input_choices = set(graph.nodes_of("input_choice"))
    expanded: dict[str, dict] = {}  # candidate path -> attrs of the layer choice it replaced
    for node in nodes:
        attrs = graph.attrs(node)
        if attrs.get("inline"):  # its candidates are its inputs (a recurrent cell's activations)
            _expand_inline(graph, node, attrs)
            continue
        path = attrs["modules"][attrs["chosen"]]
        if attrs["chosen"] == attrs.get("zero"):
            path = next(m for i, m in enumerate(attrs["modules"]) if m is not None and i != attrs["zero"])
        candidate = graph.submodule(path)
        if ctx.lifter.claims(candidate):
            _refuse_nested(attrs, getattr(candidate, "label", None) or path)
        output = lift_candidate(graph, ctx.lifter, path, graph.inputs(node))
        if attrs["chosen"] == attrs.get("zero"):
            output = graph.add_op("zero", [output], name="zero", meta=dict(graph.meta(node)))
        expanded[path] = attrs
        graph.replace_uses(node, output)
        graph.remove_node(node)
    for node in graph.nodes_of("edge"):  # an edge term is its value once its choice is made
        graph.replace_uses(node, graph.inputs(node)[0])
        graph.remove_node(node)
    nested = graph.nodes_of("layer_choice") + [n for n in graph.nodes_of("input_choice") if n not in input_choices]
    if nested:
        source = graph.meta(nested[0]).get("source", "")
        outer = next((a for p, a in expanded.items() if source.startswith(p + ".")), graph.attrs(nested[0]))
        _refuse_nested(outer, graph.attrs(nested[0])["label"])
    if ctx.watch_tensors:
        ctx.kept_tensors = kept_tensors(graph)
    return PassResult(changed=bool(nodes))


def kept_tensors(graph: Graph) -> dict[tuple, str]:
    """`tensor_key` -> IR op of every parameter the discrete network computes with: what reaches an output,
    not through a `zero` (whose candidate is expanded only for its shape). The compile checks the model's
    non-finite tensors against it (`compiler.check_non_finite`)."""
    from ..backend.onnx import tensor_key

    stack = graph.nodes_of("output")
    seen: set[str] = set()
    kept: dict[tuple, str] = {}
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        kept.update((tensor_key(t), graph.op(node)) for t in graph.params(node).values())
        if graph.op(node) != "zero":
            stack.extend(graph.inputs(node))
    return kept
