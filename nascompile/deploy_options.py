"""Command-line options for deployable outputs: `compile --precision/--calibration/gates/--dynamic-spatial`
and `export --format pytorch [--fresh-weights]`.

`add_precision_arguments(parser)` adds the flags to `compile`; `save_options(args)` turns them into the
keyword arguments of `CompileResult.save` (loading the calibration data, warning loudly when int8 has
none); `run_pytorch_export(args)` is `export --format pytorch`. No torch at import time.
"""

from __future__ import annotations

import argparse

from .errors import UsageError
from .options import compile_from_args, integer_at_least, progress_for, tolerance, warn

PRECISIONS = ("fp32", "fp16", "int8")
GATES = ("min_top1_agreement", "max_abs", "min_cosine")


def fraction(text: str) -> float:
    """A number in [0, 1] (agreement, cosine)."""
    value = tolerance(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{text!r} must lie between 0 and 1")
    return value


def positive(text: str) -> int:
    return integer_at_least(text, 1)


def add_precision_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("precision and accuracy gates")
    g.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="fp16: half precision, float32 inputs/outputs; int8: static post-training quantization "
                        "(QDQ). Both are measured against the fp32 model (default fp32)")
    g.add_argument("--calibration", metavar="DATA", help="int8 calibration inputs: a .npy tensor (one input) or a .pt "
                   "tensor / list of tensors (loaded weights-only), shaped (N, ...) like the example inputs; "
                   "default: the SPEC's calibration_data(), else seeded noise (with a warning)")
    g.add_argument("--accuracy-samples", type=positive, default=1000, metavar="N",
                   help="seeded inputs the fp16/int8 model is measured on (default 1000)")
    g.add_argument("--min-top1-agreement", type=fraction, metavar="F",
                   help="refuse to write an fp16/int8 model whose arg-max agrees with fp32's on fewer than F of the inputs")
    g.add_argument("--max-abs", type=tolerance, metavar="E",
                   help="refuse to write an fp16/int8 model whose largest absolute error exceeds E")
    g.add_argument("--min-cosine", type=fraction, metavar="C",
                   help="refuse to write an fp16/int8 model whose worst per-input cosine similarity is below C")
    p.add_argument("--dynamic-spatial", action="store_true",
                   help="leave the inputs' height and width symbolic (validated at the example's size and at twice it)")


def check_precision_arguments(args: argparse.Namespace) -> None:
    """Usage errors (exit 2) for flags that do not apply to the chosen precision; before anything is loaded."""
    if args.precision == "fp32":
        given = [f"--{name.replace('_', '-')}" for name in GATES if getattr(args, name) is not None]
        if given:
            raise UsageError(f"{', '.join(given)} gate fp16/int8 models; add --precision fp16 or int8 (an fp32 model "
                             "is checked exactly by --validate --atol/--rtol)")
    if args.calibration and args.precision != "int8":
        raise UsageError("--calibration applies to --precision int8 only")


def save_options(args: argparse.Namespace, result) -> dict:
    """The keyword arguments of `result.save` that these flags ask for."""
    options = {"dynamic_spatial": args.dynamic_spatial, "precision": args.precision}
    if args.precision == "fp32":
        return options
    options.update(accuracy_samples=args.accuracy_samples, **{name: getattr(args, name) for name in GATES})
    if args.precision == "int8":
        options.update(_calibration(args, result))
    return options


def _calibration(args: argparse.Namespace, result) -> dict:
    from .calibration import RANDOM_SAMPLES, RANDOM_WARNING, calibration_batches, load_calibration_file
    from .errors import CalibrationError

    if args.calibration:
        data, source = load_calibration_file(args.calibration), f"file {args.calibration}"
    else:
        loaded = getattr(args, "_loaded", None)
        function = getattr(getattr(loaded, "module", None), "calibration_data", None)
        if function is None:
            from .calibration import random_calibration

            warn(args, RANDOM_WARNING.format(n=RANDOM_SAMPLES))
            return {"calibration": _joined(random_calibration(result.example_inputs)),
                    "calibration_source": f"random: {RANDOM_SAMPLES} seeded standard-normal inputs"}
        try:
            data = function()
        except Exception as exc:
            raise CalibrationError(f"the SPEC's calibration_data() failed: {type(exc).__name__}: {exc}") from None
        source = "the SPEC's calibration_data()"
    batches = calibration_batches(data, result.example_inputs, source)
    count = sum(len(b[0]) for b in batches)
    return {"calibration": _joined(batches), "calibration_source": f"{source}: {count} inputs"}


def _joined(batches) -> list:
    """Batches (lists of per-input tensors) joined back into one tensor per input."""
    import torch

    return [torch.cat([batch[i] for batch in batches]) for i in range(len(batches[0]))]


def run_pytorch_export(args: argparse.Namespace) -> int:
    """`export --format pytorch -o DIR`: model.py and model.safetensors; -O0 unless a pipeline is given."""
    from .passes import PIPELINE_O0
    from .progress import stage

    if not args.output:
        raise UsageError("--format pytorch needs -o DIRECTORY (it writes model.py and model.safetensors there)")
    if not args.pipeline and not args.opt_level:
        args.pipeline = PIPELINE_O0  # keep batch norms as layers: the module is for retraining
    result = compile_from_args(args)
    with stage(progress_for(args), "export", "write") as detail:
        files = result.to_pytorch(args.output, fresh_weights=args.fresh_weights, seed=args.seed, spec=args.spec)
        detail.append(f"{'fresh' if args.fresh_weights else 'inherited'} weights")
    if not args.quiet:
        for path in files:
            print(f"wrote {path}")
    return 0
