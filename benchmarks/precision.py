"""fp32 / fp16 / int8 files of the DARTS example: accuracy, size and CPU latency (the targets of issue #14).

    python benchmarks/precision.py [--samples 1000] [--rounds 7] [--json results.json]

- accuracy: each reduced file against the fp32 file on `--samples` seeded inputs (what `save` measures and
  stores: max/mean abs error, cosine similarity per sample, top-1 agreement); int8 is calibrated on 256
  seeded inputs (the example's weights are untrained and no data set ships with it);
- size: the file, and the bytes of its weights (initializers) alone;
- latency: onnxruntime CPU, batch 32, `runtime.measure_latency`; the timed runs are split into rounds that
  visit the three files in turn (the order rotated each round), and the median of the round medians is
  reported, so that load from other processes falls on every file alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT / "examples", ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import onnx  # noqa: E402
import torch  # noqa: E402

import darts_cnn  # noqa: E402
import nascompile  # noqa: E402
from nascompile.backend.onnx import initializer_bytes  # noqa: E402
from nascompile.runtime import make_session, measure_latency, random_inputs  # noqa: E402

TARGETS = {"fp16 cosine min >= 0.999": ("fp16", "cosine_min", ">=", 0.999),
           "int8 cosine min >= 0.95": ("int8", "cosine_min", ">=", 0.95),
           "int8 file size <= 0.3x fp32": ("int8", "size_ratio", "<=", 0.3),
           "int8 CPU latency (batch 32) <= 0.7x fp32": ("int8", "latency_ratio", "<=", 0.7)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per file per round")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()

    result = nascompile.compile(darts_cnn.build(), darts_cnn.example_inputs())
    calibration = torch.randn(256, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("fp32", "fp16", "int8"):
            path = Path(tmp) / f"{precision}.onnx"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                report = result.save(path, precision=precision, accuracy_samples=args.samples,
                                     calibration=calibration if precision == "int8" else None)
            model = onnx.load(str(path))
            rows[precision] = {"file_bytes": path.stat().st_size, "weight_bytes": initializer_bytes(model),
                               "path": path, "accuracy": report.accuracy}
        sessions = {p: make_session(row["path"]) for p, row in rows.items()}
        feed = [x.numpy() for x in random_inputs(result.example_inputs, 32, 5)]
        rounds: dict[str, list[float]] = {p: [] for p in rows}
        order = list(rows)
        for r in range(args.rounds):
            for precision in order[r % 3:] + order[:r % 3]:
                rounds[precision].append(measure_latency(sessions[precision], feed, runs=args.runs, warmup=2))
    base = rows["fp32"]
    table = {}
    for precision, row in rows.items():
        acc = row["accuracy"]
        table[precision] = {
            "file_bytes": row["file_bytes"], "weight_bytes": row["weight_bytes"],
            "size_ratio": row["file_bytes"] / base["file_bytes"],
            "weight_ratio": row["weight_bytes"] / base["weight_bytes"],
            "latency_ms": statistics.median(rounds[precision]),
            "cosine_min": acc.cosine_min if acc else 1.0, "cosine_mean": acc.outputs[0].cosine if acc else 1.0,
            "max_abs": acc.max_abs if acc else 0.0, "top1_agreement": acc.top1_agreement if acc else 1.0}
    for row in table.values():
        row["latency_ratio"] = row["latency_ms"] / table["fp32"]["latency_ms"]
    print(f"DARTS example, {args.samples} seeded inputs against fp32; latency: onnxruntime CPU, batch 32, median of "
          f"{args.rounds} rotated rounds")
    print(f"{'precision':<10} {'file':>10} {'x fp32':>7} {'weights':>10} {'x fp32':>7} {'latency':>10} {'x fp32':>7} "
          f"{'cosine min':>11} {'max abs':>9} {'top-1':>7}")
    for precision, row in table.items():
        print(f"{precision:<10} {row['file_bytes']:>10,} {row['size_ratio']:>7.2f} {row['weight_bytes']:>10,} "
              f"{row['weight_ratio']:>7.2f} {row['latency_ms']:>8.1f} ms {row['latency_ratio']:>7.2f} "
              f"{row['cosine_min']:>11.6f} {row['max_abs']:>9.3g} {100 * row['top1_agreement']:>6.1f}%")
    print("targets:")
    for name, (precision, key, op, bound) in TARGETS.items():
        value = table[precision][key]
        ok = value >= bound if op == ">=" else value <= bound
        print(f"  {'PASS' if ok else 'FAIL'}  {name}: {value:.4g}")
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
