"""Latency of ONNX models on onnxruntime, measured fairly, with their params and MACs.

For each device and batch size, models are measured in groups: every session of a group is created
with fixed thread counts (`threads` intra-op, 1 inter-op, sequential execution) and warmed up, then the
group runs `rounds` interleaved rounds, each timing `runs` calls of every model in an order rotated by
the round, so slow drifts of a shared machine (other jobs, clock changes) spread over all models
instead of landing on one. A model's latency is the median of its round medians; `min_ms` is its
fastest call. Devices are measured one after the other, never at once.

Params count the elements of the floating-point initializers; MACs are those of Conv, ConvTranspose,
Gemm and MatMul at batch 1 (shapes from ONNX shape inference), as DARTS papers count multiply-adds.

Results are appended to `latency.jsonl` (a model already measured under the same device, batch size
and threads is skipped, so a rerun only adds what is missing) and tabulated in `latency.csv`;
`plot_latency` draws latency against params and MACs (matplotlib, the `plot` extra).
"""

from __future__ import annotations

import csv
import io
import json
import os
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DeviceError, ModelFileError, RenderError

LATENCY = "latency.jsonl"
TABLE = "latency.csv"
COLUMNS = ("model", "key", "device", "batch_size", "threads", "median_ms", "min_ms", "params", "macs")


@dataclass
class BenchConfig:
    devices: tuple[str, ...] = ("cpu",)
    batch_sizes: tuple[int, ...] = (1,)
    threads: int = 1
    warmup: int = 5
    runs: int = 10
    rounds: int = 5
    group: int = 8  # models whose rounds interleave


def model_files(target: str | os.PathLike) -> list[Path]:
    """The .onnx files of a folder (sorted), or the one file given."""
    path = Path(target)
    if path.is_dir():
        files = sorted(path.glob("*.onnx"))
        if not files:
            raise ModelFileError(f"{str(path)!r} holds no .onnx files")
        return files
    if not path.is_file():
        raise ModelFileError(f"{str(path)!r} does not exist; give an ONNX file or a folder of them")
    return [path]


def cuda_available() -> bool:
    """Whether onnxruntime really runs a session on CUDA here (listed providers are not proof)."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers() and _cuda_session_works()


def _cuda_session_works() -> bool:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    from .runtime import make_session

    try:
        make_session(onnx.helper.make_model(graph).SerializeToString(), "cuda")
        return True
    except DeviceError:
        return False


def onnx_costs(model) -> tuple[int, int]:
    """(params, MACs at batch 1) of an `onnx.ModelProto` (see the module docstring)."""
    import onnx
    from onnx import shape_inference

    params = sum(int(np.prod(init.dims)) for init in model.graph.initializer
                 if init.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                                       onnx.TensorProto.BFLOAT16))
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for value in probe.graph.input:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    try:
        inferred = shape_inference.infer_shapes(probe)
    except Exception:  # onnx raises its own errors; MACs are then unknown
        return params, 0
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input)}
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    macs = 0
    for node in inferred.graph.node:
        out = shapes.get(node.output[0]) if node.output else None
        if not out or not all(out):
            continue
        if node.op_type in ("Conv", "ConvTranspose") and node.input[1] in inits:
            weight = inits[node.input[1]]
            per_output = int(np.prod(weight[1:]))
            if node.op_type == "ConvTranspose":  # each input element meets C_out/group x k weights
                inp = shapes.get(node.input[0]) or []
                macs += int(np.prod(inp)) * int(np.prod(weight[1:])) if all(inp) else 0
            else:
                macs += int(np.prod(out)) * per_output
        elif node.op_type in ("Gemm", "MatMul"):
            a = shapes.get(node.input[0]) or inits.get(node.input[0]) or []
            if a and all(a):
                transposed = node.op_type == "Gemm" and any(at.name == "transA" and at.i for at in node.attribute)
                macs += int(np.prod(out)) * (a[-2] if transposed else a[-1])
    return params, macs


def _session(path: Path, device: str, threads: int):
    import onnxruntime as ort

    from .runtime import PROVIDERS

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=PROVIDERS[device])
    except Exception as exc:
        raise ModelFileError(f"onnxruntime cannot load {str(path)!r}: {str(exc).splitlines()[0]}") from None
    if device == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
        raise DeviceError(f"{str(path)!r}: the session does not run on CUDA ({session.get_providers()})")
    return session


def _feeds(session, batch: int, path: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {}
    for value in session.get_inputs():
        shape = [batch if i == 0 and not isinstance(d, int) else d for i, d in enumerate(value.shape)]
        if not all(isinstance(d, int) for d in shape):
            raise ModelFileError(f"{str(path)!r}: input {value.name!r} has symbolic dimensions {value.shape} beyond the "
                                 "batch; bench measures models whose other dimensions are fixed")
        if isinstance(value.shape[0], int) and value.shape[0] != batch:
            raise ModelFileError(f"{str(path)!r}: input {value.name!r} has a fixed batch of {value.shape[0]}, not "
                                 f"{batch}; compile without --static-batch or bench --batch-sizes {value.shape[0]}")
        feeds[value.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def _time_runs(session, feeds, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - start) * 1000)
    return times


def measure_group(paths: list[Path], device: str, batch: int, config: BenchConfig) -> list[dict[str, Any]]:
    """Latency records of `paths` on one device and batch size, in interleaved rounds."""
    sessions = [_session(p, device, config.threads) for p in paths]
    feeds = [_feeds(s, batch, p) for s, p in zip(sessions, paths)]
    for session, feed in zip(sessions, feeds):
        _time_runs(session, feed, config.warmup)
    rounds: list[list[list[float]]] = [[] for _ in paths]
    for r in range(config.rounds):
        order = list(range(len(paths)))
        order = order[r % len(order):] + order[:r % len(order)]
        for i in order:
            rounds[i].append(_time_runs(sessions[i], feeds[i], config.runs))
    records = []
    for path, times in zip(paths, rounds):
        medians = [statistics.median(t) for t in times]
        records.append({"model": path.name, "device": device, "provider": sessions[0].get_providers()[0],
                        "batch_size": batch, "threads": config.threads, "median_ms": round(statistics.median(medians), 5),
                        "min_ms": round(min(min(t) for t in times), 5),
                        "round_medians_ms": [round(m, 5) for m in medians], "runs": config.runs,
                        "rounds": config.rounds})
    return records


def _manifest_keys(folder: Path) -> dict[str, str]:
    """ONNX file name -> architecture key, from a compile-many manifest beside the files (if any)."""
    from .batch import MANIFEST

    keys: dict[str, str] = {}
    path = folder / MANIFEST
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("path"):
                keys[record["path"]] = record["key"]
    return keys


def read_latency(out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    path = Path(out_dir) / LATENCY
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a kill: measured again next time
    return records


def bench(target: str | os.PathLike, config: BenchConfig, out_dir: str | os.PathLike | None = None,
          on_record: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Measure every model of `target` (see the module docstring); returns all records of `out_dir`'s table."""
    import onnx

    from .files import write_text

    paths = model_files(target)
    out = Path(out_dir) if out_dir else (Path(target) if Path(target).is_dir() else Path(target).parent)
    out.mkdir(parents=True, exist_ok=True)
    keys = _manifest_keys(paths[0].parent)
    done = {(r["model"], r["device"], r["batch_size"], r["threads"]) for r in read_latency(out)}
    costs: dict[str, tuple[int, int]] = {}
    with open(out / LATENCY, "a") as log:
        for device in config.devices:
            for batch in config.batch_sizes:
                todo = [p for p in paths if (p.name, device, batch, config.threads) not in done]
                for start in range(0, len(todo), config.group):
                    group = todo[start:start + config.group]
                    for record in measure_group(group, device, batch, config):
                        if record["model"] not in costs:
                            costs[record["model"]] = onnx_costs(onnx.load(str(paths[0].parent / record["model"])))
                        record["params"], record["macs"] = costs[record["model"]]
                        record["key"] = keys.get(record["model"])
                        log.write(json.dumps(record, sort_keys=True) + "\n")
                        log.flush()
                        if on_record is not None:
                            on_record(record)
    records = read_latency(out)
    table = io.StringIO()
    writer = csv.DictWriter(table, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for record in sorted(records, key=lambda r: (r["device"], r["batch_size"], r["median_ms"])):
        writer.writerow(record)
    write_text(out / TABLE, table.getvalue())
    return records


def plot_latency(records: Iterable[dict[str, Any]], output: str | os.PathLike) -> Path:
    """Latency against params and against MACs, one series per device and batch size (PNG, SVG or PDF)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RenderError("the latency plot needs matplotlib: pip install 'nascompile[plot]'") from None
    output = Path(output)
    if output.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise RenderError(f"cannot draw {str(output)!r}: give a .png, .svg or .pdf file")
    records = list(records)
    if not records:
        raise RenderError("there are no latency records to plot; run nascompile bench first")
    series: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in records:
        series.setdefault((r["device"], r["batch_size"]), []).append(r)
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for (device, batch), rows in sorted(series.items()):
        label = f"{device}, batch {batch}"
        axes[0].scatter([r["params"] / 1e6 for r in rows], [r["median_ms"] for r in rows], s=8, alpha=0.6, label=label)
        axes[1].scatter([r["macs"] / 1e6 for r in rows], [r["median_ms"] for r in rows], s=8, alpha=0.6, label=label)
    axes[0].set_xlabel("params (M)")
    axes[1].set_xlabel("MACs at batch 1 (M)")
    axes[0].set_ylabel("onnxruntime latency, median (ms)")
    for ax in axes:
        ax.set_yscale("log")  # batch sizes differ by orders of magnitude
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(loc="upper left")
    figure.suptitle(f"{len({r['model'] for r in records}):,} models")
    figure.tight_layout()
    from .files import staged_outputs

    with staged_outputs(output) as (temp,):
        figure.savefig(temp, format=output.suffix[1:].lower(), metadata={"Date": None} if output.suffix == ".svg"
                       else None)
    plt.close(figure)
    return output
