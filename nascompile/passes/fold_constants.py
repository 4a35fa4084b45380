"""`fold-constants`: an op all of whose arguments are constants is computed now and becomes a constant.

The lift already folds expressions of parameters; this pass folds what the other passes expose (a
`sum` of constants, a `mul` of a constant by 1, ...). Values are computed by the IR interpreter's own
kernels, so a folded constant is exactly what the graph computed at run time. Python numbers stay
numbers (attr `value`), tensors become tensor constants (param `value`).

A result larger than its largest argument (a broadcast) and than `MAX_GROWTH` elements is left to run
time, so folding never inflates the file. Choice ops, lists (`pack`, `getitem`) and graph boundaries
are never folded.
"""

from __future__ import annotations

import torch

from ..errors import IRError
from ..ir.graph import Graph
from ..ir.interpreter import apply_op
from ..ir.ops import with_defaults
from .infer_shapes import type_of
from .manager import PassContext, PassResult, register_pass

NOT_FOLDED = frozenset({"input", "output", "constant", "layer_choice", "input_choice", "pack", "getitem"})
#: A folded tensor may always have this many elements, however small its arguments.
MAX_GROWTH = 1024


def constant_of(graph: Graph, node: str):
    """The value of a `constant` node: its tensor, or its Python number."""
    params = graph.params(node)
    return params["value"] if "value" in params else graph.attrs(node).get("value")


def _numel(value) -> int:
    return value.numel() if isinstance(value, torch.Tensor) else 1


@register_pass("fold-constants")
def fold_constants(graph: Graph, ctx: PassContext) -> PassResult:
    folded = 0
    for node in graph.order():
        data = graph.nodes[node]
        args = graph.inputs(node)
        if data["op"] in NOT_FOLDED or not args or any(graph.op(a) != "constant" for a in args):
            continue
        values = [constant_of(graph, a) for a in args]
        try:
            with torch.no_grad():
                result = apply_op(data["op"], values, data["attrs"], data["params"])
        except Exception as exc:  # the graph would fail the same way at run time: say where
            source = data["meta"].get("source") or "?"
            raise IRError(f"node %{node} ({data['op']} at module {source!r}) fails on its constant arguments: "
                          f"{type(exc).__name__}: {exc}") from None
        if isinstance(result, torch.Tensor):
            if result.numel() > max(MAX_GROWTH, *(_numel(v) for v in values)):
                continue
            graph.replace_op(node, "constant", [], attrs=with_defaults("constant", {}),
                             params={"value": result.detach().contiguous()})
        elif isinstance(result, (bool, int, float)):
            graph.replace_op(node, "constant", [], attrs={"value": result})
        else:
            continue
        data["meta"].update(type_of(result) or {})
        folded += 1
    return PassResult(changed=bool(folded))
