"""`nascompile compile-many SPEC --archs FILE|--all --out-dir D`: many architectures of one supernet.

The work is `batch.compile_many`'s; this module maps the options onto it and reports: a progress bar
with rate and ETA on a terminal (tqdm), one JSON line per architecture with --log-json, and a summary
line on stdout. The exit code is 0 when every architecture compiled, else that of the first failure.
"""

from __future__ import annotations

import argparse
import sys

from .compile_command import batch_sizes
from .options import add_output_arguments, add_source_arguments, opset, pipeline_of, progress_for, tolerance


def fraction(text: str) -> float:
    value = tolerance(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a share between 0 and 1 (1 validates every architecture)")
    return value


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compile-many", help="compile many given architectures (or a whole finite space) into a folder",
                       description="Lift SPEC once per worker and compile each architecture to D/<sha256>.onnx, with "
                                   "one record per architecture in D/manifest.jsonl.")
    add_source_arguments(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--archs", metavar="FILE", help="architectures, one per line: NAS-Bench-201 strings, "
                       "Genotype(...) texts, or JSON (a string, NNI decisions, nascompile's architecture JSON)")
    which.add_argument("--all", action="store_true", help="every architecture of the (finite) search space")
    p.add_argument("--no-dedup", action="store_true", help="with --all, keep architectures isomorphic to an earlier "
                   "one (NAS-Bench-201: 15,625 instead of 6,466)")
    p.add_argument("--out-dir", required=True, metavar="D", help="folder for the ONNX files and manifest.jsonl")
    p.add_argument("--resume", action="store_true", help="continue the run whose manifest D holds, skipping its records")
    p.add_argument("--validate-sample", type=fraction, default=0.0, metavar="SHARE",
                   help="validate this share of the architectures (chosen by key hash; 1 validates all; default 0)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device for validation (default cpu)")
    p.add_argument("--atol", type=tolerance, default=1e-4, help="absolute tolerance of validation (default 1e-4)")
    p.add_argument("--rtol", type=tolerance, default=1e-3, help="relative tolerance of validation (default 1e-3)")
    p.add_argument("--batch-sizes", default="1,2", help="batch sizes validated (default 1,2)")
    level = p.add_mutually_exclusive_group()
    level.add_argument("--pipeline", help="pass pipeline (its darts-choice and finalize become apply-arch)")
    level.add_argument("-O", dest="opt_level", choices=("0", "1"), default=None, help="-O0 or -O1 (the default)")
    p.add_argument("--opset", type=opset, default=None, help="ONNX opset (default 17)")
    p.add_argument("--static-batch", action="store_true", help="fix the batch dimension instead of leaving it symbolic")
    p.add_argument("--jobs", "-j", type=int, default=1, metavar="N", help="local worker processes (default 1)")
    p.add_argument("--ray", nargs="?", const=True, default=None, metavar="ADDRESS",
                   help="run the workers on Ray: a local instance with --jobs CPUs, or the cluster at ADDRESS "
                        "(needs pip install 'nascompile[ray]')")
    add_output_arguments(p)
    p.set_defaults(run=run_compile_many)


def _reporter(args: argparse.Namespace):
    """(on_start, on_record, close): a tqdm bar on a terminal, JSON lines with --log-json, else nothing."""
    from .progress import JsonLog

    log = progress_for(args)
    if isinstance(log, JsonLog):
        def on_record(record):
            log.write("architecture", index=record["index"], key=record["key"], status=record["status"],
                      sha256=record["sha256"], seconds=record.get("seconds"),
                      **({"error": record["error"]} if record["error"] else {}))
        return (lambda total, done: log.write("start", total=total, done=done)), on_record, lambda: None
    if log is None or not sys.stderr.isatty():
        return None, None, lambda: None
    from tqdm import tqdm

    bar: dict = {}

    def on_start(total: int, done: int) -> None:
        bar["bar"] = tqdm(total=total, initial=done, unit="arch", file=sys.stderr, dynamic_ncols=True)

    def on_record(record) -> None:
        bar["bar"].update(1)

    return on_start, on_record, lambda: bar["bar"].close() if bar else None


def run_compile_many(args: argparse.Namespace) -> int:
    from .batch import ModelSource, Options, compile_many, load_archs_file, read_records
    from .errors import UsageError

    if args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs} must be at least 1")
    if args.no_dedup and not args.all:
        raise UsageError("--no-dedup applies to --all only")
    source = ModelSource(args.spec, dict(args.build_arg), args.weights, args.alphas, args.input_shape, args.seed)
    options = Options(pipeline=pipeline_of(args), opset=args.opset, dynamic_batch=not args.static_batch,
                      device=args.device, batch_sizes=tuple(batch_sizes(args.batch_sizes)), atol=args.atol,
                      rtol=args.rtol)
    archs = None if args.all else load_archs_file(args.archs)
    on_start, on_record, close = _reporter(args)
    try:
        summary = compile_many(source, args.out_dir, archs, all_archs=args.all, dedup=not args.no_dedup,
                               options=options, jobs=args.jobs, ray=args.ray, resume=args.resume,
                               validate_sample=args.validate_sample, on_start=on_start, on_record=on_record)
    finally:
        close()
    from .progress import JsonLog

    log = progress_for(args)
    if isinstance(log, JsonLog):
        log.write("summary", total=summary.total, ok=summary.ok, failed=summary.failed, skipped=summary.skipped,
                  isomorphic=summary.isomorphic, validated=summary.validated, seconds=round(summary.seconds, 3))
    if not args.quiet:
        print(summary.line())
    if not summary.failed:
        return 0
    first = next(r for r in read_records(args.out_dir) if r["status"] == "failed")
    message = (f"{summary.failed} architecture(s) failed (see the manifest); the first, {first['key']}: "
               f"{first['error']['kind']}: {first['error']['message']}")
    if isinstance(log, JsonLog):
        log.error(first["error"]["kind"], message, first["error"]["exit_code"])
    else:
        print(f"nascompile: {message}", file=sys.stderr)
    return first["error"]["exit_code"]
