"""`infer-shapes`: record each node's shape and dtype in its meta, by running the graph on the
example inputs. The emitter uses dtypes for constants and shapes where ONNX needs static sizes; the
optimization passes use them to prove that a rewrite keeps every value's shape and dtype.

The run is single-threaded: on the example inputs (batch 1) thread start-up and contention cost more
than they save; on a busy 2-core machine the DARTS example took 15 ms on one thread and 130-860 ms on
two. (torch's `meta` device was tried too: its shape functions are Python decompositions and took 4x
longer than computing the DARTS network at batch 1.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from ..errors import PipelineError
from ..ir.graph import Graph
from ..ir.interpreter import run_graph
from ..ir.text import dtype_name
from .manager import PassContext, PassResult, register_pass


def type_of(value: Any) -> dict[str, Any] | None:
    """The `shape`/`dtype` meta of one computed value (None for lists and other non-tensors)."""
    if isinstance(value, torch.Tensor):
        return {"shape": list(value.shape), "dtype": dtype_name(value.dtype)}
    if isinstance(value, bool):
        return {"shape": [], "dtype": "bool"}
    if isinstance(value, int):
        return {"shape": [], "dtype": "i64"}
    if isinstance(value, float):
        return {"shape": [], "dtype": "f32"}
    return None


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch on one intra-op thread for the duration, restoring the caller's setting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@register_pass("infer-shapes")
def infer_shapes(graph: Graph, ctx: PassContext) -> PassResult:
    if ctx.example_inputs is None:
        raise PipelineError("infer-shapes needs example inputs")

    def record(node: str, value: object) -> None:
        found = type_of(value)
        if found is not None:
            graph.meta(node).update(found)

    with single_threaded():
        run_graph(graph, ctx.example_inputs, on_value=record)
    return PassResult(changed=False)
