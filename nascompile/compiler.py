"""`compile()`: lift -> passes -> result, the library's main entry point."""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .costs import count_choices, count_params, ir_ops
from .decisions import NEAR_TIE, Decisions
from .errors import InputShapeError, UsageError, meta_tensor_error
from .frontend import ChoiceLifter, Recognizer, lift, module_calls
from .ir.graph import Graph
from .module_tree import active_survey, named_tensors, survey
from .passes import PIPELINE_O1, PassContext, run_pipeline
from .progress import ProgressFn, StageEvent, stage
from .reference import eval_mode, reference_outputs
from .rules import Chosen, get_rules, resolve_rules
from .version import __version__

DEFAULT_PIPELINE = PIPELINE_O1


def as_input_tuple(example_inputs: Any) -> tuple[torch.Tensor, ...]:
    """Accept one tensor or a sequence of tensors (or of lists of tensors: `(tokens, [hidden])`), as given."""
    from .inputs import flatten_inputs

    flatten_inputs(example_inputs)  # checks it
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    return tuple(example_inputs)


@dataclass
class CompileResult:
    """The discrete network and what the search decided.

    `graph`: the final IR. `decisions`: NNI's exported-architecture format. `report`: per choice, the
    probabilities, chosen op, strength, margin to the runner-up, ties and near-ties. `architecture`: the
    derived cells; `genotype`: DARTS's form of them; `to_json()`: the versioned architecture
    description with its content hash `sha256`; `costs()`: edges, params and MACs of the supernet and
    of the discrete network; `save(path)`: the ONNX file.

    >>> import torch, nascompile
    >>> from nascompile import nn as nc
    >>> class Net(nc.Supernet):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.edge = nc.LayerChoice({"conv": torch.nn.Conv2d(4, 4, 3, padding=1),
    ...                                     "pool": torch.nn.MaxPool2d(3, 1, 1)}, label="edge")
    ...     def forward(self, x):
    ...         return self.edge(x)
    >>> net = Net()
    >>> with torch.no_grad():
    ...     _ = net.edge.alpha.copy_(torch.tensor([2.0, 1.0, 0.0]))  # conv, pool, zero op
    >>> result = nascompile.compile(net, torch.randn(1, 4, 8, 8))
    >>> result.decisions
    {'edge': 'conv'}
    >>> entry = result.report["layer_choices"][0]
    >>> round(entry["strength"], 4), entry["runner_up"], round(entry["margin"], 4)  # margin: logit[conv] - logit[pool]
    (0.6652, 'pool', 1.0)
    >>> result.costs()["discrete"]["macs"]  # 8*8 outputs x 4 channels x 4*3*3 weights
    9216
    >>> result.genotype is None  # not a DARTS cell
    True
    >>> len(result.sha256)
    64
    """

    graph: Graph
    model: nn.Module
    example_inputs: tuple[torch.Tensor, ...]
    choices: Decisions
    lifter: ChoiceLifter
    pipeline: str
    lifted: Graph  # the IR right after the lift, every choice undecided (tensors shared with the model)
    timings: dict[str, float] = field(default_factory=dict)
    architecture: Any = None  # arch.Architecture: the derived cells (recorded by `expand`)
    loop_note: str | None = None  # how `save` emitted a recurrent time loop (`time_loop`)

    def __repr__(self) -> str:  # the generated one would print the whole supernet and both graphs
        return (f"<CompileResult of {type(self.model).__name__}: {len(self.decisions)} decisions, "
                f"{ir_ops(self.graph)} IR ops, architecture sha256 {self.sha256[:12]}...>")

    @property
    def decisions(self) -> dict[str, Any]:
        return self.choices.to_nni()

    @property
    def report(self) -> dict[str, Any]:
        """Every decision as plain data (`Decisions.report`): probabilities incl. the zero slot, chosen op,
        strength, runner-up and margin, kept/dropped instances, ties, near-ties (margin < 0.01) and warnings."""
        return self.choices.report()

    @property
    def warnings(self) -> list[str]:
        return list(self.choices.warnings)

    @property
    def genotype(self):
        """DARTS's `Genotype(normal, normal_concat, reduce, reduce_concat)` of the derived cells, or for a
        recurrent search cell DARTS's `Genotype(recurrent=[(activation, predecessor), ...], concat=...)`; None
        when the search space is not DARTS-shaped (see `genotype.py`)."""
        from .genotype import darts_genotype, recurrent_genotype

        return darts_genotype(self.choices, self.architecture) or recurrent_genotype(self.choices, self.lifted)

    @property
    def arch_string(self) -> str | None:
        """NAS-Bench-201's arch string (`|op~0|+|op~0|op~1|+|...|`) of NB201-shaped cells, else None."""
        from .genotype import nb201_arch_string

        return nb201_arch_string(self.architecture)

    def reference(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        """The supernet's own forward with the decisions fixed (flattened outputs)."""
        return reference_outputs(self.model, self.lifter, self.choices.by_path(), inputs or self.example_inputs)

    def description(self) -> dict[str, Any]:
        """The versioned architecture description (cells, nodes, edges, ops, decisions, genotype) with its
        content hash under `sha256` (`export.describe_architecture`)."""
        from .export import describe_architecture

        return describe_architecture(self.architecture, self.decisions, self.genotype)

    def to_json(self, indent: int | None = 2) -> str:
        """`description()` as JSON text."""
        return json.dumps(self.description(), indent=indent)

    @property
    def sha256(self) -> str:
        """Content hash of the architecture description: equal for equal derived architectures."""
        return self.description()["sha256"]

    @property
    def specializations(self) -> list[str]:
        """The branches the lift took at compile time: where, the condition's source, its value."""
        return list(self.lifted.graph.get("specializations", []))

    @property
    def batch_dim(self) -> int:
        """The dimension of the inputs and outputs that is the batch (1 for sequence-first recurrent models)."""
        return int(self.lifted.graph.get("batch_dim", 0))

    @property
    def lifted_ops(self) -> int:
        """IR nodes right after the lift (a choice is one node)."""
        return ir_ops(self.lifted)

    @property
    def lifted_choices(self) -> int:
        return count_choices(self.lifted)

    @functools.cached_property
    def lifted_params(self) -> int:
        """Weights of the supernet as lifted, every candidate's included (see `costs.count_params`)."""
        return count_params(self.lifted)

    def costs(self) -> dict[str, Any]:
        """Edges, candidate ops, IR ops, params and MACs of the supernet and of the discrete network, at
        the example inputs' batch size; what is counted is defined in `costs.py`."""
        from .costs import cost_table, discrete_cost, supernet_cost

        kept = sum(d.kept_instances for d in self.choices.layer.values())
        with eval_mode(self.model):
            supernet = supernet_cost(self.lifted, self.example_inputs)
            discrete = discrete_cost(self.graph, self.example_inputs, kept)
        return cost_table(supernet, discrete, self.example_inputs)

    def metadata(self) -> dict[str, str]:
        """What the emitted ONNX file records about its origin (`metadata_props`): nascompile's version, the
        pipeline, the rule set, the decisions, the architecture description and its sha256 (read by `nascompile inspect`)."""
        from .export import onnx_metadata

        chosen = self.choices.rules
        rules = None if chosen is None else chosen.rules.name + (
            f" --max-skip-connects {chosen.skip_limit}"
            if chosen.skip_limit not in (None, chosen.rules.skip_limit) else "")
        return onnx_metadata(self.description(), __version__, self.pipeline, rules)

    def to_onnx(self, opset: int | None = None, dynamic_batch: bool = True, dynamic_spatial: bool = False,
                loop: Any = None):
        """The discrete network as an `onnx.ModelProto`, weights inherited from the supernet.

        `dynamic_spatial`: the inputs' height and width are symbolic too (validated at two sizes by `save`).
        `loop` (from `time_loop()`): the unrolled time steps become one ONNX Scan over a symbolic length."""
        from .backend import DEFAULT_OPSET, to_onnx

        return to_onnx(self.graph, opset=opset or DEFAULT_OPSET, dynamic_batch=dynamic_batch, batch_dim=self.batch_dim,
                       loop=loop,
                       dynamic_spatial=dynamic_spatial, metadata=self.metadata(), name=type(self.model).__name__)

    def time_loop(self, fixed_length: bool | None = None) -> tuple[Any, tuple | None]:
        """The proven time loop for a Scan and the example inputs of the second length it was proven at, or
        (None, None) for a file unrolled at the example's length (`loop_note` says why).

        `fixed_length=True` unrolls; False demands a Scan (LoweringError naming why it cannot be proven); None
        (default) makes a Scan where a recurrent loop is found and proven, else unrolls. The proof: the unrolled
        steps match node for node (`backend/loops.py`), and a second compile at another length has the same
        decisions, the same body and the same graph around the loop."""
        from .backend.loops import find_time_loop, same_loop
        from .errors import LoweringError

        if fixed_length:
            self.loop_note = "unrolled at the example's length (fixed length asked for)"
            return None, None
        loop, why = find_time_loop(self.graph)
        if loop is not None and loop.length >= 2:
            second_inputs = self._inputs_at_length(loop, loop.length + 1)
            second = compile(self.model, second_inputs, pipeline=self.pipeline, rules=self.choices.rules.rules.name
                             if self.choices.rules is not None else None, batch_dim=self.batch_dim)
            loop2, why = find_time_loop(second.graph)
            if loop2 is not None:
                why = same_loop(self.graph, loop, second.graph, loop2) or (
                    "" if second.decisions == self.decisions else "the decisions differ at another length")
            if not why:
                self.loop_note = f"one ONNX Scan over the time steps (proven at lengths {loop.length} and {loop2.length})"
                from .inputs import flatten_inputs

                return loop, flatten_inputs(second_inputs)[0]
        elif loop is not None:
            why = "a sequence of one step proves nothing about the others"
        if fixed_length is False:
            raise LoweringError(f"cannot emit the time loop as an ONNX Scan for a dynamic length: {why}; compile "
                                "with --fixed-length (fixed_length=True) to unroll it at the example's length")
        self.loop_note = None if loop is None and why.startswith("no ") else \
            f"unrolled at the example's length: the time loop could not be proven step-invariant ({why})"
        return None, None

    def _inputs_at_length(self, loop: Any, length: int) -> tuple:
        """The example inputs with the loop's time dimension (dim 0 of the inputs its sequence comes from) at `length`."""
        import networkx as nx

        from .inputs import unflatten_inputs

        before = nx.ancestors(self.graph, loop.sequence) | {loop.sequence}
        generator = torch.Generator().manual_seed(length)
        out = []
        for node, example in zip(self.graph.graph_inputs(), self.example_inputs):
            if node in before and example.dim() and example.shape[0] == loop.length:
                shape = (length, *example.shape[1:])
                if example.is_floating_point():
                    example = torch.randn(shape, generator=generator, dtype=example.dtype)
                else:
                    example = torch.randint(int(example.min()), int(example.max()) + 1, shape, generator=generator,
                                            dtype=example.dtype)
            out.append(example)
        return unflatten_inputs(out, getattr(self.lifter, "input_structure", None))

    def reference_on(self, device: str = "cpu") -> Callable[[list[torch.Tensor]], list[torch.Tensor]]:
        """The PyTorch reference as a function of CPU inputs, run on `device`, returning CPU outputs."""
        from .runtime import torch_device

        target = torch_device(device)
        original = next(self.model.parameters(), torch.empty(0)).device

        def reference(inputs: list[torch.Tensor]) -> list[torch.Tensor]:
            self.model.to(target)
            try:
                return [t.cpu() for t in self.reference(*[x.to(target) for x in inputs])]
            finally:
                self.model.to(original)

        return reference

    def to_pytorch(self, directory: str | os.PathLike, *, fresh_weights: bool = False, seed: int = 0,
                   spec: str | None = None) -> list[Path]:
        """Write the discrete network as `directory/model.py` (torch only) and `model.safetensors`.

        `fresh_weights`: the layers' default initialization (seeded) instead of the supernet's weights. For
        retraining, compile with `pipeline=PIPELINE_O0`: -O1 folds batch norms into the convolutions.
        """
        from .export_pytorch import class_name_for, derived_header, write_pytorch

        header = derived_header(self, spec, self.pipeline, fresh_weights)
        return write_pytorch(self.graph, directory, class_name=class_name_for(self.model), header=header,
                             fresh_weights=fresh_weights, seed=seed)

    def validate(self, onnx_model: str | os.PathLike | bytes, device: str = "cpu",
                 batch_sizes: Sequence[int] = (1, 2), atol: float = 1e-4, rtol: float = 1e-3, seed: int = 0,
                 spatial_sizes: int = 1, other_lengths: Sequence[tuple] = ()):
        """Compare onnxruntime on `device` with the PyTorch reference; returns a `ValidationReport`.

        With `spatial_sizes=2` (for `dynamic_spatial` files) the inputs are also tried at twice their height
        and width; those rows are labelled with the size."""
        from .runtime import make_session, validate_session

        session = make_session(onnx_model, device)
        report = validate_session(session, self.reference_on(device), self.example_inputs, device, batch_sizes,
                                  atol, rtol, seed, self.batch_dim)
        for k, inputs in enumerate(other_lengths):  # a file with a time loop: also at another sequence length
            other = validate_session(session, self.reference_on(device), inputs, device, batch_sizes, atol, rtol,
                                     seed + 100 * (k + 1), self.batch_dim)
            for comparison in other.comparisons:
                comparison.output = f"{comparison.output} at length {inputs[0].shape[0]}"
            report.comparisons += other.comparisons
        if spatial_sizes > 1:
            larger = [torch.empty((*x.shape[:2], *(2 * d for d in x.shape[2:])), dtype=x.dtype) if x.dim() > 2 else x
                      for x in self.example_inputs]
            size = "x".join(str(d) for d in larger[0].shape[2:])
            reference = self.reference_on(device)

            def reference_at_size(inputs: list[torch.Tensor]) -> list[torch.Tensor]:
                try:
                    return reference(inputs)
                except (RuntimeError, ValueError) as exc:
                    raise InputShapeError(
                        f"--dynamic-spatial: the supernet itself does not run at {size} ({str(exc).splitlines()[0]}), "
                        "so its height and width are not free; compile without --dynamic-spatial") from None

            try:
                second = validate_session(session, reference_at_size, larger, device, batch_sizes, atol, rtol,
                                          seed + len(batch_sizes))
            except InputShapeError:
                raise
            except Exception as exc:  # onnxruntime's own exception types
                from .errors import ValidationError

                raise ValidationError(f"--dynamic-spatial: the ONNX model fails at {size} while the supernet runs "
                                      f"there: {str(exc).splitlines()[0]}") from None
            for comparison in second.comparisons:
                comparison.output = f"{comparison.output} at {size}"
            report.comparisons += second.comparisons
        return report

    def _validation_batch_sizes(self, batch_sizes: Sequence[int] | None, dynamic_batch: bool) -> list[int]:
        """The batch sizes to validate: the given ones, else 1 and 2; only the fixed one for a fixed batch."""
        if dynamic_batch:
            return list(batch_sizes or (1, 2))
        first = self.example_inputs[0] if self.example_inputs else None
        fixed = first.shape[self.batch_dim] if first is not None and first.dim() > self.batch_dim else 1
        if batch_sizes is not None and list(batch_sizes) != [fixed]:
            raise UsageError(f"cannot validate at batch sizes {','.join(map(str, batch_sizes))}: the batch of a file "
                             f"written with a static batch (--static-batch, dynamic_batch=False) is fixed at the "
                             f"example inputs' {fixed}; drop --batch-sizes or give --batch-sizes {fixed}")
        return [fixed]

    def save(self, path: str | os.PathLike, *, decisions_path: str | os.PathLike | None = None,
             validate: str | None = None, opset: int | None = None, dynamic_batch: bool = True,
             batch_sizes: Sequence[int] | None = None, atol: float = 1e-4, rtol: float = 1e-3,
             progress: ProgressFn | None = None, dynamic_spatial: bool = False, precision: str = "fp32", calibration: Any = None,
             calibration_source: str | None = None, accuracy_samples: int = 1000,
             min_top1_agreement: float | None = None, max_abs: float | None = None,
             min_cosine: float | None = None, fixed_length: bool | None = None) -> "SaveReport":
        """Write the ONNX file (and the decisions JSON); with `validate="cpu"|"cuda"`, only if it validates.

        Nothing is written when emission, the ONNX checker or validation fails. `progress` hears the
        stages `emit`, `write` (staged files and the ONNX checker) and `validate`. `dynamic_spatial` makes the
        inputs' height and width symbolic; validation then also runs at twice the example's size.
        Validation runs at `batch_sizes` (default 1 and 2); with `dynamic_batch=False` the file's batch is
        the example inputs' and only that one is validated.

        `precision="fp16"|"int8"` converts the fp32 model (`precision.py`; int8 calibrated on `calibration`,
        a tensor or one tensor per input shaped (samples, ...), else on seeded noise with a warning), runs
        it on `accuracy_samples` seeded inputs against the fp32 model and refuses to write it
        (AccuracyError) if it misses `min_top1_agreement`, `max_abs` or `min_cosine`; with `validate`, the
        fp32 model is validated first at `atol`/`rtol`. `report.accuracy` holds the figures.
        """
        from .backend import save_onnx
        from .errors import ValidationError
        from .export import nni_json

        batch_sizes = self._validation_batch_sizes(batch_sizes, dynamic_batch)
        loop, other_length = self.time_loop(fixed_length)
        with stage(progress, "emit", "emit") as detail:
            model = self.to_onnx(opset, dynamic_batch, dynamic_spatial, loop=loop)
            detail.append(f"{len(model.graph.node)} ONNX nodes")
        extras = {}
        if decisions_path is not None:
            extras[decisions_path] = nni_json(self.decisions).encode()
        report = SaveReport(files=[], validation=None)

        def check_parity(source: Path | bytes) -> None:
            with stage(progress, "validate", "validate") as detail:
                report.validation = self.validate(source, validate, batch_sizes, atol, rtol,
                                                  spatial_sizes=2 if dynamic_spatial else 1,
                                                  other_lengths=[other_length] if other_length is not None else [])
                detail.append(f"{'passed' if report.validation.passed else 'FAILED'} on {validate}, "
                              f"max abs diff {report.validation.max_abs:.3g}")
            if not report.validation.passed:
                raise ValidationError(
                    f"{str(path)!r} was not written: the ONNX model differs from the supernet's own forward with "
                    f"the decisions fixed.\n{report.validation.summary()}\nCompile with --verify-each "
                    "(verify_each=True) to find the pass at fault; if the differences are float rounding, loosen "
                    "--atol/--rtol.")

        if precision != "fp32":
            from .precision import reduce_precision

            if validate:
                check_parity(model.SerializeToString())
            with stage(progress, precision, "convert") as detail:
                model, report.accuracy = reduce_precision(
                    model, precision, self.example_inputs, path=str(path),
                    calibration=calibration, calibration_source=calibration_source, device=validate or "cpu",
                    samples=accuracy_samples,
                    gates={"min_top1_agreement": min_top1_agreement, "max_abs": max_abs, "min_cosine": min_cosine})
                top1 = report.accuracy.top1_agreement
                detail.append(f"cosine min {report.accuracy.cosine_min:.5f}, max abs {report.accuracy.max_abs:.3g}"
                              + ("" if top1 is None else f", top-1 agreement {100 * top1:.1f}%"))
        if progress is not None:
            progress(StageEvent("write", "write", "start"))
        write_start = time.perf_counter()

        def check(staged: Path) -> None:
            if progress is not None:
                progress(StageEvent("write", "write", "end", time.perf_counter() - write_start, "ONNX checker passed"))
            if validate and precision == "fp32":
                check_parity(staged)

        report.files = save_onnx(model, path, extra_files=extras, before_commit=check)
        return report


@dataclass
class SaveReport:
    files: list[Path]
    validation: Any  # runtime.ValidationReport or None
    accuracy: Any = None  # accuracy.AccuracyReport of an fp16/int8 model, else None


@contextlib.contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Keep Python's cyclic garbage collector off the objects that existed before the compile.

    A compile allocates many short-lived objects, which trigger collections, and a full collection scans
    every object the process holds: torch's own and the supernet's thousands of modules (on the DARTS example
    one full collection took 0.22 s, longer than the compile). Pausing the collector only postponed that
    scan to the first allocation after the compile. Instead the objects alive at the start are frozen
    (`gc.freeze`: collections skip them) and thawed at the end (`gc.unfreeze`, which collects nothing), so
    the collections a compile triggers look at the compile's own objects only. A process that froze objects
    itself keeps them frozen: there the collector is paused, as before.
    """
    if gc.get_freeze_count() or not gc.isenabled():
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            yield
        finally:
            if was_enabled:
                gc.enable()
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@dataclass
class Lifted:
    """A supernet lifted once, to compile many architectures from (`compile_lifted`).

    `graph` is the IR right after the lift and is never changed: each compile works on a clone.
    `search_space` (the cells before any decision) is taken once, for every compile to share.
    """

    model: nn.Module
    example_inputs: tuple[torch.Tensor, ...]
    graph: Graph
    lifter: ChoiceLifter
    search_space: Any = None
    non_finite: list = field(default_factory=list)  # (kind, name, tensor, (count, first index)) of the model


def scan_tensors(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[tuple[str, str, torch.Tensor, Any]]:
    """Refuse tensors on the meta device, and return the parameters ("weight") and buffers holding NaN or inf
    (kind, name, tensor, (count, first index)). Reads the tensors of the compile's module-tree survey, checks
    them in batches (`finite.non_finite_among`) and walks for names only when one is bad. (A plain tensor attribute
    on the meta device is refused by the tracer, where a forward reads it.)"""
    from .finite import non_finite_among

    census = active_survey(model) or survey(model)
    if any(t.is_meta for t in census.tensors):  # plain tensor attributes: where a traced forward reads them
        kind, name, _ = next(item for item in named_tensors(model) if item[2].is_meta)
        raise meta_tensor_error({"weight": "parameter", "buffer": "buffer"}[kind], name)
    for i, x in enumerate(inputs):
        if x.is_meta:
            raise InputShapeError(f"example input {i} is on the meta device: it has a shape but no values; "
                                  "give a tensor on the cpu (e.g. torch.randn(...))")
    bad = {id(census.tensors[i]): found for i, found in non_finite_among(census.tensors)}
    if not bad:
        return []
    return [(kind, name, tensor, bad[id(tensor)]) for kind, name, tensor in named_tensors(model)
            if kind != "attribute" and id(tensor) in bad]


def check_non_finite(lifted: Lifted, ctx: PassContext) -> None:
    """Refuse a NaN/inf parameter or buffer (a BatchNorm's running_var) that the discrete network uses, naming
    it as the model names it (folding would hide it in a conv's weight, or make an inf variance finite);
    one only left-out candidates use is a warning: the file is right without it."""
    if not lifted.non_finite or ctx.kept_tensors is None:
        return  # all finite; or a pipeline without `expand`: the emitter checks what it writes
    from .backend.onnx import non_finite_error, tensor_key
    for kind, name, tensor, bad in lifted.non_finite:
        op = ctx.kept_tensors.get(tensor_key(tensor.detach()))
        if op is not None:
            raise non_finite_error(name, op, bad, kind)
        ctx.warn(f"{kind} {name!r} holds {bad[0]} non-finite value(s) (NaN or inf), but only candidates or layers "
                 "the discrete network leaves out use it: the file does not contain it")


def resolve_batch_dim(model: nn.Module, batch_dim: int | None) -> int:
    """The batch dimension: as given, else the model's `batch_dim` attribute, else 0."""
    value = batch_dim if batch_dim is not None else getattr(model, "batch_dim", 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise UsageError(f"batch_dim must be a non-negative int, not {value!r}")
    return value


def lift_model(model: nn.Module, example_inputs: Any, recognizers: list[Recognizer] | None = None,
               arch_params: Mapping[str, Any] | None = None, progress: ProgressFn | None = None,
               allow_no_choices: bool = False, batch_dim: int | None = None) -> Lifted:
    """Lift `model` into the IR, once (see `compile` for the arguments)."""
    from .arch import describe

    from .inputs import flatten_inputs

    inputs, structure = flatten_inputs(example_inputs)
    with cyclic_gc_paused(), eval_mode(model), module_calls.session():  # one patch of nn.Module for all traces
        non_finite = scan_tensors(model, inputs)
        with stage(progress, "lift", "lift") as detail:
            graph, lifter = lift(model, inputs, recognizers, arch_params, allow_no_choices, input_structure=structure,
                                 batch_dim=resolve_batch_dim(model, batch_dim))
            detail.append(f"{ir_ops(graph)} IR nodes, {count_choices(graph)} choices")
    return Lifted(model, inputs, graph, lifter, describe(graph), non_finite)


def compile(
    model: nn.Module,
    example_inputs: Any,
    pipeline: str | None = None,
    max_final_edges: int | None = None,
    rank: str | None = None,
    *,
    rules: str | None = None,
    verify_each: bool = False,
    print_after: set[str] | None = None,
    printer: Callable[[str, str], None] | None = None,
    recognizers: list[Recognizer] | None = None,
    arch_params: Mapping[str, Any] | None = None,
    arch: Any = None,
    near_tie: float = NEAR_TIE,
    progress: ProgressFn | None = None,
    allow_no_choices: bool = False,
    batch_dim: int | None = None,
    max_skip_connects: int | None = None,
) -> CompileResult:
    """Compile a supernet into a discrete IR graph.

    `pipeline` is a pass pipeline string (default: decisions, pruning, expansion, optimizations);
    `rules` names the decision rule set (`rules.py`; default: the model's `decision_rules` attribute, else
    the one of the family the lift recognized, `darts` when none); `rank` (the older `darts`/`logit`/`renorm`) picks the rule set of that name;
    `max_final_edges` overrides the edges `finalize` keeps per node (default: the rule set's, 2 or all);
    `max_skip_connects` the skip_connect edges P-DARTS's limit allows per normal cell (`p-darts` only; default 2); `verify_each` checks every pass with the
    interpreter on `example_inputs`; `print_after` (pass names or {"all"}) sends the IR text after
    those passes to `printer(pass_name, text)`. `arch_params` maps keys to logits that replace the
    model's own (an NNI mutator's choices, `{"alphas_normal": matrix}` for DARTS; `frontend/arch_params.py`).
    `arch` applies a given architecture instead of deciding from logits: NNI exported JSON (a dict, or
    text), a `Genotype(...)` text or `genotypes.py:NAME`, nascompile's architecture JSON, a NAS-Bench-201
    string, or a file holding one (`archspec.py`); the pipeline's `darts-choice` and `finalize` become
    `apply-arch`.
    Decisions won by a margin below `near_tie` are listed as near-ties (`result.choices.near_ties()`).
    `progress` is called with a `progress.StageEvent` as the lift and each pass start and end; without
    it the compile prints nothing (the command line shows the events). Architecture weights that no
    mixture pattern consumes are an error (the file would be the continuous supernet) unless
    `allow_no_choices`; `result.specializations` lists the branches the lift took at compile time.
    `batch_dim` is the dimension of the inputs and outputs that stays symbolic (default: the model's
    `batch_dim` attribute, else 0; 1 for sequence-first recurrent models, whose dim 0 is time).
    """
    if rules is not None and max_skip_connects is not None:  # a flag the rule set lacks: refused before the lift
        Chosen(get_rules(rules), "--rules").with_skip_limit(max_skip_connects)
    with eval_mode(model):  # one walk of the module tree for the whole compile
        lifted = lift_model(model, example_inputs, recognizers, arch_params, progress, allow_no_choices, batch_dim)
        return compile_lifted(lifted, pipeline, max_final_edges, rank, rules=rules, verify_each=verify_each,
                              print_after=print_after, printer=printer, arch=arch, near_tie=near_tie,
                              progress=progress, max_skip_connects=max_skip_connects)


def compile_lifted(
    lifted: Lifted,
    pipeline: str | None = None,
    max_final_edges: int | None = None,
    rank: str | None = None,
    *,
    rules: str | None = None,
    verify_each: bool = False,
    print_after: set[str] | None = None,
    printer: Callable[[str, str], None] | None = None,
    arch: Any = None,
    near_tie: float = NEAR_TIE,
    progress: ProgressFn | None = None,
    max_skip_connects: int | None = None,
) -> CompileResult:
    """Run the pipeline on a clone of an already lifted supernet (`lift_model`); arguments as for `compile`."""
    graph = lifted.graph.clone()
    inputs = lifted.example_inputs
    pipeline = pipeline or DEFAULT_PIPELINE
    if arch is not None:
        from .passes.apply_arch import arch_pipeline

        pipeline = arch_pipeline(pipeline)
    with cyclic_gc_paused(), eval_mode(lifted.model), module_calls.session():  # expand traces
        chosen = resolve_rules(graph, rules, rank, getattr(lifted.model, "decision_rules", None))
        chosen = chosen.with_skip_limit(max_skip_connects)
        ctx = PassContext(max_final_edges=max_final_edges, rules=chosen.rules, example_inputs=inputs,
                          max_skip_connects=max_skip_connects,
                          lifter=lifted.lifter, search_space=lifted.search_space, arch=arch,
                          watch_tensors=bool(lifted.non_finite))
        ctx.decisions.rules = chosen
        ctx.decisions.near_tie = near_tie
        run_pipeline(graph, pipeline, ctx, verify_each=verify_each, print_after=print_after, printer=printer,
                     progress=progress)
        check_non_finite(lifted, ctx)
    return CompileResult(graph=graph, model=lifted.model, example_inputs=inputs, choices=ctx.decisions,
                         lifter=lifted.lifter, pipeline=pipeline, timings=dict(ctx.timings), lifted=lifted.graph,
                         architecture=ctx.architecture)
