"""onnxruntime CPU latency of several ONNX files, measured so that they can be compared on a busy machine.

    python benchmarks/latency.py a.onnx b.onnx [--batch 1 32] [--threads 1 2] [--rounds 20]

Every session is created with onnxruntime's full graph optimizer (`ORT_ENABLE_ALL`, which adds the NCHWc
layout on CPU) and a fixed number of intra-op threads, so that each file is judged by what onnxruntime
makes of it. The runs are paired and rotated: each round times a block of runs of every file in turn,
starting one file later each round, and each file's block median is divided by the first file's block
median of the same round. The ratios of one round saw the same machine load, so their median and
quartiles say how the files compare even when the absolute times drift.

At 1 intra-op thread onnxruntime runs every kernel on the calling thread, so a run is timed by that
thread's CPU time (`time.thread_time`): time the thread spent waiting for a core taken by another
process is not counted (cache and memory-bandwidth contention still are). With more threads the pool's
work is elsewhere, and runs are timed by the wall clock.

`conv_share` profiles one file (`enable_profiling`) and returns the fraction of kernel time spent in
convolutions: the part of the time no rewrite of the graph around them can remove.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort


def session(path: str, threads: int, profile: bool = False) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    options.enable_profiling = profile
    return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


def feed_for(sess: ort.InferenceSession, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feed = {}
    for i in sess.get_inputs():
        shape = [batch if not isinstance(d, int) or k == 0 else d for k, d in enumerate(i.shape)]
        feed[i.name] = rng.standard_normal(shape, dtype=np.float32)
    return feed


@dataclass
class Comparison:
    """Per file: the median of its block medians (ms; CPU time at 1 thread) and its paired ratios to the first file."""

    median_ms: dict[str, float]
    ratio: dict[str, float]  # median over rounds of (block median / first file's block median)
    ratio_iqr: dict[str, tuple[float, float]]  # quartiles of those ratios: the spread


def compare(paths: dict[str, str], batch: int, threads: int, rounds: int, block: int | None = None) -> Comparison:
    block = block or (20 if batch == 1 else 3)
    clock = time.thread_time if threads == 1 else time.perf_counter
    names = list(paths)
    sessions = {name: session(paths[name], threads) for name in names}
    feeds = {name: feed_for(sessions[name], batch) for name in names}
    for name in names:  # warm-up: first runs allocate and tune
        for _ in range(max(3, block // 2)):
            sessions[name].run(None, feeds[name])
    blocks: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            sess, feed, times = sessions[name], feeds[name], []
            for _ in range(block):
                start = clock()
                sess.run(None, feed)
                times.append(clock() - start)
            blocks[name].append(statistics.median(times) * 1e3)
    first = blocks[names[0]]
    ratios = {name: sorted(a / b for a, b in zip(blocks[name], first)) for name in names}
    return Comparison(
        median_ms={name: statistics.median(blocks[name]) for name in names},
        ratio={name: statistics.median(values) for name, values in ratios.items()},
        ratio_iqr={name: quartiles(values) for name, values in ratios.items()},
    )


def quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 4:
        return min(values), max(values)
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def op_time_shares(path: str, batch: int, threads: int = 1, runs: int | None = None) -> dict[str, float]:
    """Fraction of kernel time per onnxruntime op type (after its optimizer), from its profiler."""
    runs = runs or (20 if batch == 1 else 3)
    sess = session(path, threads, profile=True)
    feed = feed_for(sess, batch)
    for _ in range(runs):
        sess.run(None, feed)
    profile = sess.end_profiling()
    try:
        with open(profile) as f:
            events = json.load(f)
    finally:
        os.remove(profile)
    totals: Counter[str] = Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += event["dur"]
    total = sum(totals.values()) or 1
    return {op: t / total for op, t in totals.most_common()}


def conv_share(path: str, batch: int, threads: int = 1) -> float:
    """Fraction of kernel time in convolutions (Conv, FusedConv and NCHWc Conv all report op type Conv*)."""
    return sum(share for op, share in op_time_shares(path, batch, threads).items() if "Conv" in op)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--profile", action="store_true", help="also print each file's op-type time shares")
    args = parser.parse_args(argv)
    paths = {path: path for path in args.files}
    for batch in args.batch:
        for threads in args.threads:
            result = compare(paths, batch, threads, args.rounds)
            print(f"batch {batch}, {threads} thread(s), {args.rounds} paired rounds (ratio to {args.files[0]}):")
            for name in paths:
                low, high = result.ratio_iqr[name]
                print(f"  {name:<48} {result.median_ms[name]:9.3f} ms  ratio {result.ratio[name]:.3f} "
                      f"[quartiles {low:.3f} .. {high:.3f}]")
    if args.profile:
        for batch in args.batch:
            for path in args.files:
                shares = op_time_shares(path, batch)
                print(f"{path} batch {batch}: " + ", ".join(f"{op} {100 * s:.1f}%" for op, s in list(shares.items())[:6]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
