"""Pass registry and pipeline runner.

A pass is a function `(graph, ctx, **options) -> PassResult` registered under a kebab-case name. A
pipeline is a string of pass names, each optionally with options in braces, as in MLIR:

    darts-choice,finalize{rank=logit max-final-edges=1},dce,expand

After every pass that reports a change the verifier runs (a pass that changed nothing leaves the graph
as verified before it; verifying a 100,000-node graph takes about a second). With `verify_each`, the
graph before the pass is also run by the interpreter under the decisions the pass made (its `overlay`)
and compared with the graph after it on the example inputs; a difference names the pass.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..decisions import Decisions
from ..errors import PipelineError, VerifyEachError
from ..ir.graph import Graph
from ..ir.interpreter import Overlay, run_graph
from ..ir.text import print_graph
from ..ir.verify import verify_graph
from ..progress import ProgressFn, StageEvent
from ..rules import RULE_SETS, RuleSet


@dataclass
class PassResult:
    """What a pass did: whether it changed the graph, and the decisions it applied (for verification)."""

    changed: bool
    overlay: Overlay = field(default_factory=Overlay)


@dataclass
class PassContext:
    """Options and shared state for one pipeline run."""

    max_final_edges: int | None = None  # None: the rule set's (2 for top-k rules, every edge for keep-all ones)
    rank: str | None = None  # None: the rule set's rank
    max_skip_connects: int | None = None  # None: the rule set's skip-connect limit (P-DARTS's 2; most have none)
    rules: RuleSet = RULE_SETS["darts"]
    decisions: Decisions = field(default_factory=Decisions)
    example_inputs: tuple | None = None
    lifter: Any = None  # frontend.recognizers.ChoiceLifter, used by `expand`
    search_space: Any = None  # arch.Architecture before any decision, taken by `darts-choice`
    architecture: Any = None  # arch.Architecture, snapshot taken by `expand` while choices are visible
    arch: Any = None  # a given architecture (archspec), applied by `apply-arch` instead of deciding from logits
    timings: dict[str, float] = field(default_factory=dict)
    kept_tensors: dict | None = None  # tensors the discrete network uses (`expand.kept_tensors`), key -> IR op
    watch_tensors: bool = True  # `expand` records kept_tensors (the compile turns it off when all are finite)

    def warn(self, message: str) -> None:
        if message not in self.decisions.warnings:  # one warning per fact, however many instances share it
            self.decisions.warnings.append(message)


PassFn = Callable[..., PassResult]
_PASSES: dict[str, PassFn] = {}


def register_pass(name: str) -> Callable[[PassFn], PassFn]:
    """Register a pass under its pipeline name."""

    def register(fn: PassFn) -> PassFn:
        _PASSES[name] = fn
        fn.pass_name = name
        return fn

    return register


def available_passes() -> list[str]:
    from . import load_all

    load_all()
    return sorted(_PASSES)


_STEP = re.compile(r"\s*([a-z0-9-]+)\s*(?:\{([^{}]*)\})?\s*(?:,|$)")


def _option_value(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text, text)


def parse_pipeline(pipeline: str) -> list[tuple[str, dict[str, Any]]]:
    """`"a,b{k=v}"` -> [("a", {}), ("b", {"k": v})]; unknown passes or bad syntax raise PipelineError."""
    names = available_passes()
    steps, pos = [], 0
    text = pipeline.strip()
    while pos < len(text):
        match = _STEP.match(text, pos)
        if match is None or match.end() == pos:
            raise PipelineError(f"cannot parse pipeline {pipeline!r} at character {pos + 1}: expected "
                                "pass-name or pass-name{key=value ...}")
        name, options_text = match.group(1), match.group(2)
        if name not in _PASSES:
            raise PipelineError(f"unknown pass {name!r} in pipeline {pipeline!r}; available: {', '.join(names)}")
        options = {}
        for item in (options_text or "").split():
            key, sep, value = item.partition("=")
            if not sep:
                raise PipelineError(f"option {item!r} of pass {name!r} must be key=value")
            options[key.replace("-", "_")] = _option_value(value)
        steps.append((name, options))
        pos = match.end()
        if text[match.start():pos].rstrip().endswith(",") and not text[pos:].strip():
            raise PipelineError(f"pipeline {pipeline!r} ends with a comma: a pass name is missing")
    if not steps:
        raise PipelineError("the pipeline is empty")
    return steps


def _flat(values: list) -> list:
    """Output values with lists (the `none` reduction) expanded, so every tensor is compared."""
    return [leaf for v in values for leaf in (_flat(v) if isinstance(v, (list, tuple)) else [v])]


def _compare(pass_name: str, before: list, after: list, rtol: float, atol: float) -> None:
    before, after = _flat(before), _flat(after)
    if len(before) != len(after):
        raise VerifyEachError(f"pass {pass_name!r} changed the number of outputs from {len(before)} to {len(after)}")
    for i, (a, b) in enumerate(zip(before, after)):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            continue
        if a.shape != b.shape:
            raise VerifyEachError(f"pass {pass_name!r} changed output {i}'s shape from {list(a.shape)} to {list(b.shape)}")
        if not torch.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
            diff = (a - b).abs().max().item()
            raise VerifyEachError(
                f"pass {pass_name!r} changed what the graph computes: output {i} differs by up to {diff:.3g} "
                f"(rtol={rtol}, atol={atol}) on the example input")


def run_pipeline(
    graph: Graph,
    pipeline: str,
    ctx: PassContext,
    verify_each: bool = False,
    print_after: set[str] | None = None,
    printer: Callable[[str, str], None] | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    progress: ProgressFn | None = None,
) -> Graph:
    """Run `pipeline` on `graph` in place; returns the graph. `progress` hears each pass start and end."""
    steps = parse_pipeline(pipeline)
    if verify_each and ctx.example_inputs is None:
        raise PipelineError("verify-each needs example inputs")
    print_after = set(print_after or ())
    unknown = print_after - {name for name, _ in steps} - {"all"}
    if unknown:
        raise PipelineError(f"print-after names {sorted(unknown)}, which the pipeline does not run; "
                            f"its passes: {', '.join(name for name, _ in steps)} (or 'all')")
    for name, options in steps:
        if progress is not None:
            progress(StageEvent(name, "pass", "start"))
        before = graph.clone() if verify_each else None
        start = time.perf_counter()
        try:
            result = _PASSES[name](graph, ctx, **options)
        except TypeError as exc:
            if "unexpected keyword" in str(exc):
                raise PipelineError(f"pass {name!r} does not take option(s) {sorted(options)}") from None
            raise
        ctx.timings[name] = ctx.timings.get(name, 0.0) + time.perf_counter() - start
        if result.changed:
            verify_graph(graph)
        if verify_each:
            expected = run_graph(before, ctx.example_inputs, result.overlay)  # failing here: the input's fault
            try:
                actual = run_graph(graph, ctx.example_inputs)
            except Exception as exc:  # the graph ran before the pass, so the pass broke it
                raise VerifyEachError(f"pass {name!r}: interpreting the graph failed ({type(exc).__name__}: {exc})") from None
            _compare(name, expected, actual, rtol, atol)
        if printer is not None and ("all" in print_after or name in print_after):
            printer(name, print_graph(graph))
        if progress is not None:
            detail = f"{len(graph)} IR nodes" + ("" if result.changed else ", unchanged")
            progress(StageEvent(name, "pass", "end", time.perf_counter() - start, detail))
    return graph
