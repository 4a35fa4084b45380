"""Helpers for the optimization-pass tests: IR text in, one pipeline, IR text out, checked by numbers.

`optimize` runs a pipeline with `verify_each`, so besides the expected text every test also checks that
the rewritten graph computes what the original computed, on random inputs shaped like the graph's
inputs (the `: f32[...]` types of its `input` nodes).
"""

from __future__ import annotations

import torch

from nascompile.ir import Graph, parse_graph, print_graph
from nascompile.ir.text import DTYPES_BY_NAME
from nascompile.passes import PassContext, run_pipeline


def random_inputs(graph: Graph, seed: int = 0) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    inputs = []
    for node in graph.graph_inputs():
        meta = graph.meta(node)
        inputs.append(torch.randn(meta["shape"], generator=generator).to(DTYPES_BY_NAME[meta["dtype"]]))
    return tuple(inputs)


def optimize(text: str, pipeline: str, seed: int = 0) -> tuple[Graph, PassContext]:
    """Parse `text`, run `pipeline` on it with verify-each; returns the graph and the context."""
    graph = parse_graph(text)
    ctx = PassContext(example_inputs=random_inputs(graph, seed))
    run_pipeline(graph, pipeline, ctx, verify_each=True)
    return graph, ctx


def ir(text: str) -> str:
    """IR text as the printer writes it (so expected graphs may be written in any node order)."""
    return print_graph(parse_graph(text), values=True)


def printed(graph: Graph) -> str:
    return print_graph(graph, values=True)


def assert_unchanged(text: str, pipeline: str) -> None:
    """The pipeline leaves the graph `text` exactly as it was."""
    graph, _ = optimize(text, pipeline)
    assert printed(graph) == ir(text)
