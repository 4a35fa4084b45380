"""`compile()`: lift -> passes -> result, the library's main entry point."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from .decisions import Decisions
from .errors import InputShapeError
from .frontend import ChoiceLifter, Recognizer, lift
from .ir.graph import Graph
from .passes import PIPELINE_O0, PassContext, run_pipeline
from .reference import eval_mode, reference_outputs

DEFAULT_PIPELINE = PIPELINE_O0


def as_input_tuple(example_inputs: Any) -> tuple[torch.Tensor, ...]:
    """Accept one tensor or a sequence of tensors."""
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, Sequence) and all(isinstance(x, torch.Tensor) for x in example_inputs):
        return tuple(example_inputs)
    raise InputShapeError("example_inputs must be a tensor or a tuple of tensors, e.g. (torch.randn(1, 3, 32, 32),)")


@dataclass
class CompileResult:
    """The discrete network and what the search decided.

    `graph`: the final IR. `decisions`: NNI's exported-architecture format. `report`: per choice, the
    probabilities, chosen op, strength, margin to the runner-up and ties.
    """

    graph: Graph
    model: nn.Module
    example_inputs: tuple[torch.Tensor, ...]
    choices: Decisions
    lifter: ChoiceLifter
    pipeline: str
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def decisions(self) -> dict[str, Any]:
        return self.choices.to_nni()

    @property
    def report(self) -> dict[str, Any]:
        return self.choices.report()

    @property
    def warnings(self) -> list[str]:
        return list(self.choices.warnings)

    def reference(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        """The supernet's own forward with the decisions fixed (flattened outputs)."""
        return reference_outputs(self.model, self.lifter, self.choices.by_path(), inputs or self.example_inputs)


def compile(
    model: nn.Module,
    example_inputs: Any,
    pipeline: str | None = None,
    max_final_edges: int = 2,
    rank: str = "darts",
    *,
    verify_each: bool = False,
    print_after: set[str] | None = None,
    printer: Callable[[str, str], None] | None = None,
    recognizers: list[Recognizer] | None = None,
) -> CompileResult:
    """Compile a supernet into a discrete IR graph.

    `pipeline` is a pass pipeline string (default: decisions, pruning, expansion, optimizations);
    `max_final_edges` and `rank` configure `finalize`; `verify_each` checks every pass with the
    interpreter on `example_inputs`; `print_after` (pass names or {"all"}) sends the IR text after
    those passes to `printer(pass_name, text)`.
    """
    inputs = as_input_tuple(example_inputs)
    with eval_mode(model):
        graph, lifter = lift(model, inputs, recognizers)
        ctx = PassContext(max_final_edges=max_final_edges, rank=rank, example_inputs=inputs, lifter=lifter)
        pipeline = pipeline or DEFAULT_PIPELINE
        run_pipeline(graph, pipeline, ctx, verify_each=verify_each, print_after=print_after, printer=printer)
    return CompileResult(graph=graph, model=model, example_inputs=inputs, choices=ctx.decisions, lifter=lifter,
                         pipeline=pipeline, timings=dict(ctx.timings))
