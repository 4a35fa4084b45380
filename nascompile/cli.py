"""The `nascompile` command.

    nascompile compile SPEC -o model.onnx [--validate] ...
    nascompile report | plot | export SPEC ...   nascompile inspect model.onnx   (see `commands.py`)

Results go to stdout; progress (one line per stage, or JSON lines with --log-json), warnings and IR dumps
to stderr. Each kind of user error has its own exit code
(see `errors.py`); an unexpected failure exits 70 with a traceback, since it is a bug in nascompile.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Sequence

import torch

from .commands import COMMANDS as VIEW_COMMANDS
from .commands import add_parsers as add_view_parsers
from .costs import count_params, ir_ops
from .decisions import NEAR_TIE
from .errors import INTERNAL_ERROR_EXIT_CODE, InputShapeError, NascompileError
from .progress import HumanProgress, JsonLog
from .version import __version__


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """Options that say which supernet to compile and how: shared by every subcommand that compiles."""
    p.add_argument("spec", metavar="SPEC", help="path/to/file.py (calls its build()) or package.module:factory")
    p.add_argument("--weights", help="state dict to load into the supernet (torch.load with weights_only=True)")
    p.add_argument("--alphas", metavar="FILE", help="architecture logits by key (an NNI mutator's choices, "
                   "DARTS's alphas_normal, ...): a .json of lists or a state dict .pt (loaded weights-only)")
    p.add_argument("--input-shape", action="append", metavar="1,3,32,32",
                   help="shape of an example input (repeat for several inputs); default: the SPEC's example_inputs()")
    p.add_argument("--seed", type=int, default=0, help="seed of the example inputs made from --input-shape")
    level = p.add_mutually_exclusive_group()
    level.add_argument("--pipeline", help="pass pipeline, e.g. 'darts-choice,finalize{rank=logit},dce,expand,infer-shapes'")
    level.add_argument("-O", dest="opt_level", choices=("0", "1"), default=None,
                       help="-O0: decisions and lowering only; -O1: also the optimization passes (the default)")
    p.add_argument("--max-final-edges", type=int, default=2, help="edges kept per aggregation node by finalize (default 2)")
    p.add_argument("--rank", choices=("darts", "logit", "renorm"), default="darts",
                   help="edge rank convention for finalize (default darts)")
    p.add_argument("--near-tie", type=float, default=NEAR_TIE, metavar="MARGIN",
                   help=f"flag decisions won by less than MARGIN as near-ties (default {NEAR_TIE}; in probability, "
                        "or in logits with --rank logit)")
    p.add_argument("--print-after", action="append", metavar="PASS", help="print the IR after PASS (or 'all') to stderr")
    p.add_argument("--verify-each", action="store_true", help="check every pass with the IR interpreter")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but warnings and errors")
    p.add_argument("--log-json", action="store_true",
                   help="progress, warnings and errors as JSON lines on stderr (one object per line)")


def _add_compile_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compile", help="compile a supernet to a discrete ONNX model",
                       description="Lift SPEC, apply the search's decisions, emit ONNX and optionally validate it.")
    add_model_arguments(p)
    p.add_argument("-o", "--output", required=True, help="where to write the ONNX model")
    p.add_argument("--validate", action="store_true", help="compare onnxruntime with the PyTorch reference; "
                   "the file is only written if it matches")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device for validation (default cpu)")
    p.add_argument("--atol", type=float, default=1e-4, help="absolute tolerance of validation (default 1e-4)")
    p.add_argument("--rtol", type=float, default=1e-3, help="relative tolerance of validation (default 1e-3)")
    p.add_argument("--batch-sizes", default="1,2", help="batch sizes validated (default 1,2)")
    p.add_argument("--decisions", metavar="FILE", help="also write the decisions (NNI exported-architecture JSON)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")
    p.add_argument("--static-batch", action="store_true", help="fix the batch dimension instead of leaving it symbolic")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nascompile", description="Compile DARTS-style supernets to validated ONNX.")
    parser.add_argument("--version", action="version", version=f"nascompile {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_compile_parser(sub)
    add_view_parsers(sub)
    return parser


def _example_inputs(args: argparse.Namespace, loaded) -> tuple[torch.Tensor, ...]:
    from .spec import parse_shape

    if args.input_shape:
        generator = torch.Generator().manual_seed(args.seed)
        return tuple(torch.randn(parse_shape(text), generator=generator) for text in args.input_shape)
    if loaded.example_inputs is None:
        raise InputShapeError(f"SPEC {args.spec!r} defines no example_inputs(); pass --input-shape, e.g. 1,3,32,32")
    from .compiler import as_input_tuple

    return as_input_tuple(loaded.example_inputs())


def _batch_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(s < 1 for s in sizes):
        raise InputShapeError(f"--batch-sizes {text!r} must be positive integers, e.g. 1,2")
    return sizes


def pipeline_of(args: argparse.Namespace) -> str:
    """The pipeline the options ask for: --pipeline, -O0/-O1, or the default (-O1)."""
    from .passes import PIPELINE_O1, PIPELINES

    return args.pipeline or (PIPELINES[args.opt_level] if args.opt_level else PIPELINE_O1)


def _print_summary(result, report, seconds: float) -> None:
    from .report import format_decisions

    decisions = result.decisions
    print(f"decisions ({len(decisions)} choices):")
    print("\n".join(format_decisions(decisions)))
    print(f"supernet: {result.lifted_ops} IR nodes ({result.lifted_choices} choices), {result.lifted_params:,} params")
    print(f"discrete: {ir_ops(result.graph)} ops, {count_params(result.graph):,} params")
    if result.genotype is not None:
        print(f"genotype: {result.genotype}")
    if report.validation is not None:
        print(report.validation.summary())
    for path in report.files:
        print(f"wrote {path}")
    print(f"architecture sha256: {result.sha256}")
    print(f"done in {seconds:.2f} s")


def progress_for(args: argparse.Namespace):
    """The progress reporter of this command (made once): JSON lines with --log-json, none with -q, else lines."""
    if "_progress" not in vars(args):
        args._progress = JsonLog() if getattr(args, "log_json", False) else \
            None if getattr(args, "quiet", False) else HumanProgress()
    return args._progress


def warn(args: argparse.Namespace, message: str) -> None:
    """A warning on stderr (a JSON line with --log-json), shown even with -q."""
    progress = progress_for(args)
    if progress is not None:
        progress.warning(message)
    else:
        print(f"warning: {message}", file=sys.stderr)


def compile_from_args(args: argparse.Namespace, ir_after: str | None = None, on_ir=None, warn_ties: bool = True):
    """Load the SPEC (and weights), make the example inputs and compile: the shared front half of commands.

    With `ir_after`, `on_ir(pass_name, ir_text)` also receives the IR after that pass. Ties and near-ties
    are warned about unless `warn_ties` is False (for a command whose output lists them).
    """
    from .compiler import compile as compile_model
    from .frontend import load_alphas
    from .spec import load_spec, load_weights

    loaded = load_spec(args.spec)
    if args.weights:
        load_weights(loaded.model, args.weights)
    arch_params = load_alphas(args.alphas) if args.alphas else None
    inputs = _example_inputs(args, loaded)
    print_after = set(args.print_after or ())

    def print_ir(pass_name: str, text: str) -> None:
        if "all" in print_after or pass_name in print_after:
            if progress_for(args) is not None:
                progress_for(args).close()  # the IR starts on a line of its own
            print(f"// IR after {pass_name}", file=sys.stderr)
            print(text, file=sys.stderr)
        if on_ir is not None and pass_name == ir_after:
            on_ir(pass_name, text)

    result = compile_model(loaded.model, inputs, pipeline=pipeline_of(args), max_final_edges=args.max_final_edges,
                           rank=args.rank, verify_each=args.verify_each,
                           print_after=print_after | ({ir_after} if ir_after else set()), printer=print_ir,
                           arch_params=arch_params, progress=progress_for(args), near_tie=args.near_tie)
    ties = result.choices.ties() + result.choices.near_ties() if warn_ties else []
    for warning in result.warnings + ties:
        warn(args, warning)
    return result


def _run_compile(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    batch_sizes = _batch_sizes(args.batch_sizes)
    result = compile_from_args(args)
    report = result.save(args.output, decisions_path=args.decisions, validate=args.device if args.validate else None,
                         opset=args.opset, dynamic_batch=not args.static_batch, batch_sizes=batch_sizes,
                         atol=args.atol, rtol=args.rtol, progress=progress_for(args))
    if not args.quiet:
        _print_summary(result, report, time.perf_counter() - start)
    return 0


COMMANDS = {"compile": _run_compile, **VIEW_COMMANDS}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except NascompileError as exc:
        progress = progress_for(args)
        if isinstance(progress, JsonLog):
            progress.error(exc.kind, str(exc), exc.exit_code)
        else:
            if progress is not None:
                progress.close()  # a stage left running: the error starts on a line of its own
            print(f"nascompile: {exc.kind}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("nascompile: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout went away (`| head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception:
        traceback.print_exc()
        print("nascompile: internal error: this is a bug in nascompile; please report it with the traceback above",
              file=sys.stderr)
        return INTERNAL_ERROR_EXIT_CODE


if __name__ == "__main__":
    sys.exit(main())
