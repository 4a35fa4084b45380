"""nascompile against `torch.onnx.export`, on the DARTS CIFAR-10 search supernet (8 cells, C=16).

    python benchmarks/run.py [--quick] [--json results.json]

Prints one table and checks the targets of issue #5 (ratios from this run):

- compile time, in this process: nascompile (lift -> passes -> emit -> ONNX file) against
  `torch.onnx.export` of the fixed supernet (the supernet's own forward with the decisions fixed,
  `with result.lifter.fixed(model, result.choices.by_path())`), with `dynamo=False` and `dynamo=True`;
  the median of several runs each, after one warm-up run;
- onnxruntime CPU latency at batch 1 and 32 (`runtime.measure_latency`, after warm-up) and node
  counts of the four ONNX files: nascompile's, the two exports, and the un-pruned supernet exported
  as is (search mode, `dynamo=False`). The timed runs are split into rounds that visit the models in
  turn, and the median of the round medians is reported, so that load from other processes on a
  shared machine falls on every model alike;
- scaling: compile time and peak memory of DARTS supernets of 8, 20 and 50 cells and of a synthetic
  supernet of 100,000 IR nodes, each in a fresh process (`probe.py`).

`--quick` (under 2 minutes on a 2-core machine) skips the `dynamo=True` export (about a minute per
run) and the un-pruned supernet (35 s to export), takes fewer runs, and a synthetic supernet of
20,000 nodes; it says so in its output, and the targets it cannot check are marked "skipped".
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT / "benchmarks", ROOT / "examples", ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime  # noqa: E402
import torch  # noqa: E402

import darts_cnn  # noqa: E402
import nascompile  # noqa: E402
from nascompile.runtime import make_session, measure_latency  # noqa: E402

TARGETS = {
    "compile_vs_dynamo_false": 0.10,
    "compile_vs_dynamo_true": 0.01,
    "latency_vs_dynamo_false": 0.95,
    "nodes_vs_dynamo_false": 0.70,
    "scaling_50_vs_8_cells": 1.2 * 50 / 8,
    "peak_memory_vs_weights": 2.0,
}


@dataclass
class Settings:
    quick: bool
    compile_runs: int  # nascompile, timed after one warm-up
    export_runs: int  # each torch.onnx.export flavour, timed after one warm-up
    dynamo: bool  # run the dynamo=True export
    supernet: bool  # export and time the un-pruned supernet as is
    latency_runs: int  # timed runs per model and batch size (after warm-up)
    latency_rounds: int
    darts_cells: tuple[int, ...]
    probe_runs: int
    synthetic_nodes: int

    @classmethod
    def make(cls, quick: bool) -> "Settings":
        if quick:
            return cls(True, 5, 3, False, False, 50, 5, (8, 20, 50), 3, 20_000)
        return cls(False, 7, 5, True, True, 100, 10, (8, 20, 50), 5, 100_000)

    def trimmed(self) -> list[str]:
        if not self.quick:
            return []
        return ["torch.onnx.export(dynamo=True) not run (about a minute per export)",
                "un-pruned supernet not exported (about 35 s)",
                f"{self.export_runs} timed dynamo=False exports instead of 5",
                f"synthetic supernet of {self.synthetic_nodes:,} IR nodes instead of 100,000"]


# --- compile time ---------------------------------------------------------------------------------
def timed_runs(fn, runs: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


@contextlib.contextmanager
def quiet():
    """Silence the exporters' progress messages and warnings."""
    logging.disable(logging.WARNING)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def compile_with_nascompile(model, inputs, path: Path):
    result = nascompile.compile(model, inputs)
    path.write_bytes(result.to_onnx().SerializeToString())
    return result


def export_with_torch(model, inputs, path: Path, dynamo: bool) -> None:
    names = {"input_names": ["input"], "output_names": ["output"]}
    with quiet():
        if dynamo:
            torch.onnx.export(model, inputs, str(path), dynamo=True, dynamic_shapes=({0: "batch"},), **names)
        else:
            torch.onnx.export(model, inputs, str(path), dynamo=False,
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, **names)


# --- latency ----------------------------------------------------------------------------------------
def latencies(paths: dict[str, Path], batch: int, runs: int, rounds: int) -> dict[str, float]:
    """Median latency (ms) per model: `rounds` rounds visiting every model in turn, `runs` runs in all.

    Each round starts one model later, so no model always runs right after the heavy supernet.
    """
    sessions = list({name: make_session(str(path), "cpu") for name, path in paths.items()}.items())
    feed = [np.random.default_rng(0).standard_normal((batch, 3, 32, 32), dtype=np.float32)]
    per_round = max(1, math.ceil(runs / rounds))
    medians: dict[str, list[float]] = {name: [] for name in paths}
    for round_index in range(rounds):
        shift = round_index % len(sessions)
        for name, session in sessions[shift:] + sessions[:shift]:
            medians[name].append(measure_latency(session, feed, runs=per_round, warmup=5))
    return {name: statistics.median(values) for name, values in medians.items()}


def node_count(path: Path) -> int:
    return len(onnx.load(str(path), load_external_data=False).graph.node)


# --- scaling ----------------------------------------------------------------------------------------
def probe(kind: str, size: int, runs: int) -> dict:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "probe.py"), kind, str(size), "--runs", str(runs)],
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"probe {kind} {size} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the table --------------------------------------------------------------------------------------
def verdict(value: float | None, limit: float) -> str:
    if value is None:
        return "skipped"
    return "PASS" if value <= limit else "FAIL"


def fmt(value, unit: str = "", digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}{unit}"
    return f"{value:.{digits}g}{unit}"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a / b


def measure_compile(settings: Settings, model, inputs, files: dict[str, Path]) -> tuple[dict, dict]:
    """Median compile/export seconds and timed-run counts per column; writes the ONNX files."""
    seconds: dict[str, float | None] = {name: None for name in files}
    runs: dict[str, int] = {}

    def measure(name: str, fn, count: int) -> None:
        times = timed_runs(fn, count)
        seconds[name], runs[name] = statistics.median(times), len(times)

    measure("nascompile", lambda: compile_with_nascompile(model, inputs, files["nascompile"]), settings.compile_runs)
    result = compile_with_nascompile(model, inputs, files["nascompile"])
    with result.lifter.fixed(model, result.choices.by_path()):
        measure("dynamo=False", lambda: export_with_torch(model, inputs, files["dynamo=False"], False), settings.export_runs)
        if settings.dynamo:
            measure("dynamo=True", lambda: export_with_torch(model, inputs, files["dynamo=True"], True), settings.export_runs)
    if settings.supernet:  # search mode: every candidate, mixed by the softmax of its alphas; timed once
        start = time.perf_counter()
        export_with_torch(model, inputs, files["supernet"], False)
        seconds["supernet"], runs["supernet"] = time.perf_counter() - start, 1
    return seconds, runs


def check_targets(compile_s: dict, nodes: dict, latency: dict, scaling: list[dict]) -> dict[str, float | None]:
    """The ratios the targets bound (None where a measurement was skipped)."""
    by_cells = {p["size"]: p for p in scaling if p["kind"] == "darts"}
    return {
        "compile_vs_dynamo_false": ratio(compile_s["nascompile"], compile_s["dynamo=False"]),
        "compile_vs_dynamo_true": ratio(compile_s["nascompile"], compile_s["dynamo=True"]),
        "latency_vs_dynamo_false_b1": ratio(latency[1]["nascompile"], latency[1]["dynamo=False"]),
        "latency_vs_dynamo_false_b32": ratio(latency[32]["nascompile"], latency[32]["dynamo=False"]),
        "nodes_vs_dynamo_false": ratio(nodes["nascompile"], nodes["dynamo=False"]),
        "scaling_50_vs_8_cells": ratio(by_cells[50]["compile_s"], by_cells[8]["compile_s"]),
        "peak_memory_vs_weights": ratio(by_cells[8]["peak_extra_mb"], by_cells[8]["weights_mb"]),
    }


def limit_of(check: str) -> float:
    return TARGETS[check.rsplit("_b", 1)[0] if check.startswith("latency") else check]


def format_table(settings: Settings, compile_s: dict, runs: dict, nodes: dict, latency: dict, scaling: list[dict],
                 checks: dict) -> list[str]:
    columns = ["nascompile", "dynamo=False", "dynamo=True", "supernet"]
    lines = ["nascompile vs torch.onnx.export: DARTS CIFAR-10 search supernet (8 cells, C=16), CPU"]
    if settings.quick:
        lines.append("quick mode: " + "; ".join(settings.trimmed()))

    def row(metric: str, values: list[str], check: str = "") -> None:
        lines.append(f"{metric:<38}" + "".join(f"{v:>15}" for v in values) + f"  {check}")

    def target(check: str) -> str:
        value, limit = checks[check], limit_of(check)
        return f"ratio {'-' if value is None else f'{value:.3f}x'} (<= {limit:.3g}x) {verdict(value, limit)}"

    row("", columns)
    row("compile time (s, median)", [fmt(compile_s.get(c)) for c in columns], target("compile_vs_dynamo_false"))
    row("  timed runs (after a warm-up)", [fmt(runs.get(c)) for c in columns], target("compile_vs_dynamo_true"))
    row("ONNX nodes", [fmt(nodes.get(c)) for c in columns], target("nodes_vs_dynamo_false"))
    for batch in (1, 32):
        row(f"onnxruntime CPU latency, batch {batch} (ms)", [fmt(latency[batch].get(c)) for c in columns],
            target(f"latency_vs_dynamo_false_b{batch}"))
    row("scaling (a fresh process each)", ["compile (s)", "lifted nodes", "discrete nodes", "peak +MiB"])
    for p in scaling:
        note = f"weights {p['weights_mb']:.1f} MiB, baseline {p['baseline_mb']:.0f} MiB"
        if p["kind"] == "darts" and p["size"] == 8:
            note = f"peak +{p['peak_extra_mb']:.1f} MiB / weights {p['weights_mb']:.1f} MiB: {target('peak_memory_vs_weights')}"
        elif p["kind"] == "darts" and p["size"] == 50:
            note = "time 50 / 8 cells: " + target("scaling_50_vs_8_cells")
        name = f"DARTS {p['size']} cells" if p["kind"] == "darts" else f"synthetic {p['lifted_nodes']:,} IR nodes"
        row(name, [fmt(p["compile_s"]), fmt(p["lifted_nodes"]), fmt(p["discrete_nodes"]), fmt(p["peak_extra_mb"])], note)
    return lines


def run(settings: Settings, work: Path, json_path: str | None) -> int:
    started, load_before = time.perf_counter(), os.getloadavg()
    model, inputs = darts_cnn.build(), darts_cnn.example_inputs()
    files = {"nascompile": work / "nascompile.onnx", "dynamo=False": work / "dynamo_false.onnx",
             "dynamo=True": work / "dynamo_true.onnx", "supernet": work / "supernet.onnx"}
    compile_s, runs = measure_compile(settings, model, inputs, files)
    present = {name: path for name, path in files.items() if path.exists()}
    nodes = {name: node_count(path) for name, path in present.items()}
    latency = {batch: latencies(present, batch, settings.latency_runs, settings.latency_rounds) for batch in (1, 32)}
    scaling = [probe("darts", cells, settings.probe_runs) for cells in settings.darts_cells]
    scaling.append(probe("synthetic", settings.synthetic_nodes, 1))
    checks = check_targets(compile_s, nodes, latency, scaling)

    load_after = os.getloadavg()
    lines = format_table(settings, compile_s, runs, nodes, latency, scaling, checks)
    lines.append(f"load average {load_before[0]:.2f} -> {load_after[0]:.2f} on {os.cpu_count()} cores; "
                 f"{time.perf_counter() - started:.0f} s in all")
    print("\n".join(lines))
    if json_path:
        Path(json_path).write_text(json.dumps({
            "settings": asdict(settings), "trimmed": settings.trimmed(), "compile_s": compile_s, "timed_runs": runs,
            "nodes": nodes, "latency_ms": {str(b): v for b, v in latency.items()}, "scaling": scaling,
            "checks": {key: {"ratio": value, "limit": limit_of(key), "verdict": verdict(value, limit_of(key))}
                       for key, value in checks.items()},
            "environment": {"python": platform.python_version(), "torch": torch.__version__, "onnx": onnx.__version__,
                            "onnxruntime": onnxruntime.__version__, "cores": os.cpu_count(),
                            "load_average": [load_before[0], load_after[0]]},
            "seconds": time.perf_counter() - started,
        }, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark nascompile against torch.onnx.export.")
    parser.add_argument("--quick", action="store_true", help="under 2 minutes: fewer runs, no dynamo=True export")
    parser.add_argument("--json", metavar="PATH", help="also write every measurement to this JSON file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nascompile-bench-") as work:
        return run(Settings.make(args.quick), Path(work), args.json)


if __name__ == "__main__":
    sys.exit(main())
