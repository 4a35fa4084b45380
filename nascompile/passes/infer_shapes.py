"""`infer-shapes`: record each node's shape and dtype in its meta, by running the graph on the
example inputs. The emitter uses dtypes for constants and shapes where ONNX needs static sizes."""

from __future__ import annotations

import torch

from ..errors import PipelineError
from ..ir.graph import Graph
from ..ir.interpreter import run_graph
from ..ir.text import dtype_name
from .manager import PassContext, PassResult, register_pass


@register_pass("infer-shapes")
def infer_shapes(graph: Graph, ctx: PassContext) -> PassResult:
    if ctx.example_inputs is None:
        raise PipelineError("infer-shapes needs example inputs")

    def record(node: str, value: object) -> None:
        meta = graph.meta(node)
        if isinstance(value, torch.Tensor):
            meta.update(shape=list(value.shape), dtype=dtype_name(value.dtype))
        elif isinstance(value, bool):
            meta.update(shape=[], dtype="bool")
        elif isinstance(value, int):
            meta.update(shape=[], dtype="i64")
        elif isinstance(value, float):
            meta.update(shape=[], dtype="f32")

    run_graph(graph, ctx.example_inputs, on_value=record)
    return PassResult(changed=False)
