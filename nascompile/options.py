"""The command line's shared model options, and the one way every subcommand compiles from them.

A subcommand that compiles a SPEC calls `add_model_arguments(parser)` when building its parser and
`compile_from_args(args)` when it runs; `progress_for(args)` and `warn(args, ...)` report on stderr the
way the options ask (lines, JSON lines with --log-json, nothing but warnings with -q).

The flag types here (`tolerance`, `opset`) reject bad values while the command line is
parsed, so a bad flag is a usage error (exit 2) before anything is loaded or written.

This module imports neither torch nor onnx at import time: `nascompile --help` and `--version` build
every parser without them.
"""

from __future__ import annotations

import argparse
import math
import sys

from .decisions import NEAR_TIE
from .errors import InputShapeError, NascompileError, SpecError
from .opsets import MAX_OPSET, MIN_OPSET
from .rules import RULE_SETS


#: Largest example input made from --input-shape (4 GiB of float32).
MAX_INPUT_BYTES = 1 << 32


def tolerance(text: str) -> float:
    """A finite number >= 0 (tolerances, margins): anything else is a usage error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return value


def integer_at_least(text: str, minimum: int) -> int:
    """An int >= `minimum`: anything else is a usage error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}")
    return value


def skip_count(text: str) -> int:
    """An int >= 0 (--max-skip-connects)."""
    return integer_at_least(text, 0)


def opset(text: str) -> int:
    """An ONNX opset nascompile emits and tests (`opsets.py`)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not MIN_OPSET <= value <= MAX_OPSET:
        raise argparse.ArgumentTypeError(f"opset {text} is not supported; nascompile emits opsets "
                                         f"{MIN_OPSET} to {MAX_OPSET}")
    return value


def build_arg(text: str) -> tuple[str, object]:
    """`K=V` for the SPEC's build(): V is a Python literal (`36`, `True`, `[1, 2]`), else the text itself."""
    import ast

    key, sep, value = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r} must be NAME=VALUE, e.g. C=36")
    try:
        return key.strip(), ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key.strip(), value


def add_source_arguments(p: argparse.ArgumentParser) -> None:
    """Which supernet: SPEC, its build arguments, weights, logits and example inputs."""
    p.add_argument("spec", metavar="SPEC", help="path/to/file.py (calls its build()) or package.module:factory")
    p.add_argument("--build-arg", action="append", type=build_arg, default=[], metavar="K=V",
                   help="keyword argument for the SPEC's build(), V a Python literal (repeat: --build-arg C=36 "
                        "--build-arg layers=20)")
    p.add_argument("--weights", help="state dict to load into the supernet (torch.load with weights_only=True)")
    p.add_argument("--alphas", metavar="FILE", help="architecture logits by key (an NNI mutator's choices, "
                   "DARTS's alphas_normal, ...): a .json of lists or a state dict .pt (loaded weights-only)")
    p.add_argument("--input-shape", action="append", metavar="1,3,32,32",
                   help="shape of an example input (repeat for several inputs); default: the SPEC's example_inputs()")
    p.add_argument("--seed", type=int, default=0, help="seed of the example inputs made from --input-shape")


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """Options that say which supernet to compile and how: shared by every subcommand that compiles."""
    add_source_arguments(p)
    p.add_argument("--arch", metavar="FILE|STRING",
                   help="apply this architecture instead of deciding from the logits: NNI exported JSON, nascompile's "
                        "architecture JSON, a Genotype(...) text, genotypes.py:NAME or a NAS-Bench-201 string")
    level = p.add_mutually_exclusive_group()
    level.add_argument("--pipeline", help="pass pipeline, e.g. 'darts-choice,finalize{rank=logit},dce,expand,infer-shapes'")
    level.add_argument("-O", dest="opt_level", choices=("0", "1"), default=None,
                       help="-O0: decisions and lowering only; -O1: also the optimization passes (the default)")
    p.add_argument("--rules", choices=tuple(RULE_SETS), default=None, metavar="NAME",
                   help=f"decision rule set: {', '.join(RULE_SETS)} (default: the recognized family's, else darts)")
    p.add_argument("--max-final-edges", type=int, default=None,
                   help="edges kept per aggregation node by finalize (default: the rule set's, 2 or all)")
    p.add_argument("--max-skip-connects", type=skip_count, default=None, metavar="N",
                   help="P-DARTS's limit: at most N skip_connect edges per normal cell (--rules p-darts; default 2)")
    p.add_argument("--rank", choices=("darts", "logit", "renorm"), default=None,
                   help="older spelling of --rules darts|logit|renorm")
    p.add_argument("--near-tie", type=tolerance, default=NEAR_TIE, metavar="MARGIN",
                   help=f"flag decisions won by less than MARGIN as near-ties (default {NEAR_TIE}; in log space: "
                        "ln of the ratio of the two probabilities, or of logits for the logit ranks)")
    p.add_argument("--allow-no-choices", action="store_true",
                   help="compile architecture weights that no mixture pattern consumes as the continuous network "
                        "they compute (by default an error: the file would be the whole supernet)")
    p.add_argument("--batch-dim", type=int, default=None, metavar="D",
                   help="the dimension of the inputs and outputs that is the batch and stays symbolic (default: the "
                        "model's batch_dim attribute, else 0; 1 for sequence-first recurrent models: dim 0 is time)")
    p.add_argument("--print-after", action="append", metavar="PASS", help="print the IR after PASS (or 'all') to stderr")
    p.add_argument("--verify-each", action="store_true", help="check every pass with the IR interpreter")
    add_output_arguments(p)


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    """-q and --log-json: how a subcommand reports on stderr (`progress_for`, `warn`)."""
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but warnings and errors")
    p.add_argument("--log-json", action="store_true",
                   help="progress, warnings and errors as JSON lines on stderr (one object per line)")


def pipeline_of(args: argparse.Namespace) -> str:
    """The pipeline the options ask for: --pipeline, -O0/-O1, or the default (-O1)."""
    from .passes import PIPELINE_O1, PIPELINES

    return args.pipeline or (PIPELINES[args.opt_level] if args.opt_level else PIPELINE_O1)


def progress_for(args: argparse.Namespace):
    """The progress reporter of this command (made once): JSON lines with --log-json (only warnings and errors
    with -q as well), none with -q, else lines."""
    if "_progress" not in vars(args):
        from .progress import HumanProgress, JsonLog

        quiet = getattr(args, "quiet", False)
        args._progress = JsonLog(stages=not quiet) if getattr(args, "log_json", False) else \
            None if quiet else HumanProgress()
    return args._progress


def warn(args: argparse.Namespace, message: str) -> None:
    """A warning on stderr (a JSON line with --log-json), shown even with -q."""
    progress = progress_for(args)
    if progress is not None:
        progress.warning(message)
    else:
        print(f"warning: {message}", file=sys.stderr)


def example_inputs_of(args: argparse.Namespace, loaded) -> tuple:
    """The example inputs: seeded random tensors of the --input-shape's, or the SPEC's example_inputs()."""
    import torch

    from .spec import parse_shape

    if args.input_shape:
        shapes = [parse_shape(text) for text in args.input_shape]
        for text, shape in zip(args.input_shape, shapes):
            if math.prod(shape) * 4 > MAX_INPUT_BYTES:
                raise InputShapeError(f"input shape {text!r} needs {math.prod(shape) * 4:,} bytes of float32, more "
                                      f"than the {MAX_INPUT_BYTES:,} an example input may take; give a small "
                                      "example (batch 1 is enough: the batch stays symbolic)")
        generator = torch.Generator().manual_seed(args.seed)
        return tuple(torch.randn(shape, generator=generator) for shape in shapes)
    if loaded.example_inputs is None:
        raise InputShapeError(f"SPEC {args.spec!r} defines no example_inputs(); pass --input-shape, e.g. 1,3,32,32")
    from .compiler import as_input_tuple

    try:
        example = loaded.example_inputs()
    except NascompileError:
        raise
    except Exception as exc:
        raise SpecError(f"example_inputs() of SPEC {args.spec!r} raised {type(exc).__name__}: {exc}{where_raised(exc)}; "
                        "fix it, or pass --input-shape instead") from None
    return as_input_tuple(example)


def where_raised(exc: BaseException) -> str:
    """` at FILE:LINE in FUNCTION`: the innermost Python frame of `exc`'s traceback (the user's line)."""
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        if "_sitebuiltins" not in tb.tb_frame.f_code.co_filename:  # quit() and exit() live there
            frames.append(tb)
        tb = tb.tb_next
    if not frames:
        return ""
    code = frames[-1].tb_frame.f_code
    return f" at {code.co_filename}:{frames[-1].tb_lineno} in {code.co_name}()"


def spec_output_to_stderr():
    """While the SPEC's code runs (import, build(), example_inputs(), forward), its print() goes to stderr:
    stdout carries only nascompile's results (`report --json`, `export`)."""
    from .files import stdout_to_stderr

    return stdout_to_stderr()


def compile_from_args(args: argparse.Namespace, ir_after: str | None = None, on_ir=None, warn_ties: bool = True):
    """Load the SPEC (and weights), make the example inputs and compile: the shared front half of commands.

    With `ir_after`, `on_ir(pass_name, ir_text)` also receives the IR after that pass. Ties and near-ties
    are warned about unless `warn_ties` is False (for a command whose output lists them).
    """
    from .compiler import compile as compile_model
    from .frontend import load_alphas
    from .spec import load_spec, load_weights

    with spec_output_to_stderr():
        loaded = load_spec(args.spec, dict(args.build_arg))
        args._loaded = loaded  # for what else the SPEC defines (calibration_data())
        if args.weights:
            load_weights(loaded.model, args.weights)
        arch_params = load_alphas(args.alphas) if args.alphas else None
        inputs = example_inputs_of(args, loaded)
    print_after = set(args.print_after or ())

    def print_ir(pass_name: str, text: str) -> None:
        if "all" in print_after or pass_name in print_after:
            if progress_for(args) is not None:
                progress_for(args).close()  # the IR starts on a line of its own
            print(f"// IR after {pass_name}", file=sys.stderr)
            print(text, file=sys.stderr)
        if on_ir is not None and pass_name == ir_after:
            on_ir(pass_name, text)

    with spec_output_to_stderr():
        result = compile_model(loaded.model, inputs, pipeline=pipeline_of(args), max_final_edges=args.max_final_edges,
                               rank=args.rank, rules=args.rules, verify_each=args.verify_each,
                               print_after=print_after | ({ir_after} if ir_after else set()), printer=print_ir,
                               arch_params=arch_params, arch=args.arch, progress=progress_for(args),
                               near_tie=args.near_tie, allow_no_choices=args.allow_no_choices,
                               batch_dim=getattr(args, "batch_dim", None),
                               max_skip_connects=args.max_skip_connects)
    ties = result.choices.ties() + result.choices.near_ties() if warn_ties else []
    for warning in result.warnings + ties:
        warn(args, warning)
    return result
