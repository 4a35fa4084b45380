"""`nascompile compile SPEC -o model.onnx [--validate] ...`: the main subcommand."""

from __future__ import annotations

import argparse
import sys
import time

from .errors import InputShapeError
from .deploy_options import add_precision_arguments, check_precision_arguments, save_options
from .files import STDOUT
from .options import add_model_arguments, compile_from_args, opset, progress_for, spec_output_to_stderr, tolerance
from .opsets import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compile", help="compile a supernet to a discrete ONNX model",
                       description="Lift SPEC, apply the search's decisions, emit ONNX and optionally validate it.")
    add_model_arguments(p)
    p.add_argument("-o", "--output", required=True,
                   help="where to write the ONNX model ('-': stdout; a device or FIFO is written through)")
    p.add_argument("--validate", action="store_true", help="compare onnxruntime with the PyTorch reference; "
                   "the file is only written if it matches")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device for validation (default cpu)")
    p.add_argument("--atol", type=tolerance, default=1e-4, help="absolute tolerance of validation (default 1e-4)")
    p.add_argument("--rtol", type=tolerance, default=1e-3, help="relative tolerance of validation (default 1e-3)")
    p.add_argument("--batch-sizes", help="batch sizes validated (default 1,2; with --static-batch, the fixed batch)")
    p.add_argument("--decisions", metavar="FILE", help="also write the decisions (NNI exported-architecture JSON)")
    p.add_argument("--opset", type=opset, default=None,
                   help=f"ONNX opset, {MIN_OPSET} to {MAX_OPSET} (default {DEFAULT_OPSET})")
    p.add_argument("--static-batch", action="store_true", help="fix the batch dimension instead of leaving it symbolic")
    p.add_argument("--fixed-length", action="store_true",
                   help="a recurrent model: unroll its time loop at the example's sequence length instead of one ONNX "
                        "Scan over any length (the default where the loop is proven step-invariant)")
    add_precision_arguments(p)
    p.set_defaults(run=run_compile)


def batch_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(s < 1 for s in sizes):
        raise InputShapeError(f"--batch-sizes {text!r} must be positive integers, e.g. 1,2")
    return sizes


def _print_summary(result, report, seconds: float, file) -> None:
    from .costs import count_params, ir_ops
    from .report import format_decisions

    decisions = result.decisions
    lines = [f"rules: {result.choices.rules.line()}",
             *(f"skip-connect limit: {d.line()}" for d in result.choices.skip_limit),
             f"decisions ({len(decisions)} choices):",
             *format_decisions(decisions),
             f"supernet: {result.lifted_ops} IR nodes ({result.lifted_choices} choices), {result.lifted_params:,} params",
             f"discrete: {ir_ops(result.graph)} ops, {count_params(result.graph):,} params"]
    lines += [f"specialized: {specialization}" for specialization in result.specializations]  # branches the lift took
    if result.genotype is not None:
        lines.append(f"genotype: {result.genotype}")
    if result.arch_string is not None:
        lines.append(f"NAS-Bench-201 arch string: {result.arch_string}")
    if result.loop_note is not None:
        lines.append(f"time loop: {result.loop_note}")
    if report.validation is not None:
        lines.append(report.validation.summary())
    if report.accuracy is not None:
        lines.append(report.accuracy.summary())
    lines += [f"wrote {path}" for path in report.files]
    lines += [f"architecture sha256: {result.sha256}", f"done in {seconds:.2f} s"]
    print("\n".join(lines), file=file)


def run_compile(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    sizes = batch_sizes(args.batch_sizes) if args.batch_sizes is not None else None
    check_precision_arguments(args)
    result = compile_from_args(args)
    with spec_output_to_stderr():  # validation runs the supernet's forward
        report = result.save(args.output, decisions_path=args.decisions,
                             validate=args.device if args.validate else None, opset=args.opset,
                             dynamic_batch=not args.static_batch, batch_sizes=sizes, atol=args.atol, rtol=args.rtol,
                             progress=progress_for(args), fixed_length=True if args.fixed_length else None,
                             **save_options(args, result))
    if not args.quiet:  # the summary is a result (stdout), unless the model itself went to stdout (-o -)
        _print_summary(result, report, time.perf_counter() - start, sys.stderr if args.output == STDOUT else sys.stdout)
    return 0
