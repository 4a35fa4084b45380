"""Compile time and peak memory of one supernet, each measured in a fresh process (run by `run.py`).

    python benchmarks/probe.py darts 8 --runs 5
    python benchmarks/probe.py synthetic 100000 --runs 1

Prints one JSON object. The process first compiles a small supernet of the same family (so lazy
imports and first-call costs are paid), builds the measured supernet, and takes its resident memory
as the baseline: the interpreter, torch, nascompile and the supernet itself (modules and weights).
It then resets the kernel's high-water mark (/proc/self/clear_refs) and compiles (lift -> passes ->
emit -> serialized ONNX) `--runs` times; `peak_extra_mb` is the high-water mark above the baseline.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT / "benchmarks", ROOT / "examples", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

MIB = 2**20


def memory_mb() -> dict[str, float]:
    """Resident set size and its high-water mark, in MiB (Linux)."""
    found = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) / 1024
    return found


def reset_high_water_mark() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def family(kind: str):
    """(build(size), example_inputs(), small size for the warm-up) of a supernet family."""
    if kind == "darts":
        import darts_cnn

        return (lambda size: darts_cnn.build(n_layers=size)), darts_cnn.example_inputs, 2
    if kind == "synthetic":
        import synthetic

        return (lambda size: synthetic.build(n_nodes=size)), synthetic.example_inputs, 100
    raise SystemExit(f"unknown supernet family {kind!r}; use darts or synthetic")


def compile_once(model, inputs) -> tuple[float, object, int]:
    import nascompile

    start = time.perf_counter()
    result = nascompile.compile(model, inputs)
    data = result.to_onnx().SerializeToString()
    return time.perf_counter() - start, result, len(data)


def weight_bytes(model) -> int:
    """Bytes of the supernet's parameters and buffers, each tensor counted once (shared alphas)."""
    tensors = {id(t): t for t in list(model.parameters()) + list(model.buffers())}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("darts", "synthetic"))
    parser.add_argument("size", type=int, help="cells (darts) or IR nodes (synthetic)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    build, example_inputs, small = family(args.kind)
    compile_once(build(small), example_inputs())  # imports and first-call costs
    model = build(args.size)
    inputs = example_inputs()
    gc.collect()
    baseline = memory_mb()["VmRSS"]
    reset = reset_high_water_mark()
    times, result = [], None
    for _ in range(args.runs):
        del result
        gc.collect()
        seconds, result, onnx_bytes = compile_once(model, inputs)
        times.append(seconds)
    peak = memory_mb()["VmHWM"]
    print(json.dumps({
        "kind": args.kind, "size": args.size, "runs": args.runs, "compile_s": statistics.median(times),
        "compile_all_s": times, "lifted_nodes": result.lifted_ops, "discrete_nodes": result.graph.number_of_nodes(),
        "onnx_mb": onnx_bytes / MIB, "weights_mb": weight_bytes(model) / MIB, "baseline_mb": baseline,
        "peak_mb": peak, "peak_extra_mb": peak - baseline, "hwm_reset": reset,
    }))


if __name__ == "__main__":
    main()
