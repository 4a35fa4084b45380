"""`nascompile bench D|model.onnx`: onnxruntime latency per model into latency.jsonl and latency.csv.

The measuring is `bench.py`'s; `--report FILE` also draws latency against params and MACs.
"""

from __future__ import annotations

import argparse
import sys

from .options import add_output_arguments, progress_for


def _positive_ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r} must be positive integers separated by commas, e.g. 1,8")
    return values


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="onnxruntime latency of ONNX models (a compile-many folder or one file)",
                       description="Measure each model's onnxruntime latency (warm-up, interleaved rounds, fixed "
                                   "threads) per device and batch size, into latency.jsonl and latency.csv.")
    p.add_argument("target", metavar="D|MODEL.onnx", help="a folder of .onnx files (e.g. compile-many's) or one file")
    p.add_argument("-o", "--out-dir", help="where latency.jsonl and latency.csv go (default: the folder measured)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: CPU, then CUDA when onnxruntime really runs on it (default auto)")
    p.add_argument("--batch-sizes", type=_positive_ints, default=(1,), help="batch sizes (default 1)")
    p.add_argument("--threads", type=_positive_ints, default=(1,), help="intra-op threads per session (default 1)")
    p.add_argument("--warmup", type=_positive_ints, default=(5,), help="warm-up calls per model (default 5)")
    p.add_argument("--runs", type=_positive_ints, default=(10,), help="timed calls per model per round (default 10)")
    p.add_argument("--rounds", type=_positive_ints, default=(5,), help="interleaved rounds (default 5)")
    p.add_argument("--report", metavar="PLOT", help="also draw latency against params and MACs (.png, .svg, .pdf; "
                   "needs pip install 'nascompile[plot]')")
    add_output_arguments(p)
    p.set_defaults(run=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from .bench import LATENCY, TABLE, BenchConfig, bench, cuda_available, model_files, plot_latency
    from .progress import JsonLog

    if args.device == "auto":
        devices = ("cpu", "cuda") if cuda_available() else ("cpu",)
    else:
        devices = (args.device,)
    if "cuda" in devices and args.device == "cuda" and not cuda_available():
        from .errors import DeviceError

        raise DeviceError("--device cuda: onnxruntime does not run on CUDA here; install onnxruntime-gpu "
                          "(pip install 'nascompile[gpu]') with a matching CUDA, or use --device cpu")
    config = BenchConfig(devices=devices, batch_sizes=args.batch_sizes, threads=args.threads[0],
                         warmup=args.warmup[0], runs=args.runs[0], rounds=args.rounds[0])
    log = progress_for(args)
    total = len(model_files(args.target)) * len(devices) * len(args.batch_sizes)
    bar = None
    if isinstance(log, JsonLog):
        on_record = lambda r: log.write("latency", **{k: r[k] for k in ("model", "device", "batch_size", "median_ms")})  # noqa: E731
    elif log is not None and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total, unit="model", file=sys.stderr, dynamic_ncols=True)
        on_record = lambda r: bar.update(1)  # noqa: E731
    else:
        on_record = None
    try:
        records = bench(args.target, config, args.out_dir, on_record)
    finally:
        if bar is not None:
            bar.close()
    from pathlib import Path

    out = Path(args.out_dir) if args.out_dir else (Path(args.target) if Path(args.target).is_dir()
                                                   else Path(args.target).parent)
    if args.report:
        plot_latency(records, args.report)
    if not args.quiet:
        print(f"{len(records):,} latency records ({', '.join(devices)}; batch {', '.join(map(str, args.batch_sizes))}; "
              f"{config.threads} thread(s)) in {out / LATENCY} and {out / TABLE}")
        if args.report:
            print(f"wrote {args.report}")
    return 0
