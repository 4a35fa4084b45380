"""nascompile against `torch.onnx.export`, on the bundled DARTS-family search supernets (8 cells, C=16).

    python benchmarks/run.py [--quick] [--json results.json]

Networks: `examples/darts_cnn.py` (nascompile's own API), `examples/darts_reference.py` (written like
DARTS's reference code), `examples/nni_darts.py` (NNI classic mutables) and `examples/archai_darts.py`
(Archai's supergraph), so that no frontend regresses unseen. Prints one table per network and checks
the targets of issue #16 (ratios from this run):

- compile time, in this process: nascompile (lift -> passes -> emit -> ONNX file) against
  `torch.onnx.export` of the derived (discrete) network as a PyTorch module, with `dynamo=False` and
  `dynamo=True`; medians after one warm-up run (`dynamo=True`, about 45 s an export, is timed once per
  network). The target's ratio is paired: each round times one nascompile compile and one `dynamo=False`
  export back to back (which first alternating), and the ratio is the median of the rounds' ratios, with
  their quartiles (the machine's speed drifts by up to 2x within minutes, which a ratio of two medians
  taken one after the other follows). The exporters' contender (`contender_for`) is what a user would export after the search:
  - "fixed supernet": the supernet's own forward with the decisions fixed (`with
    result.lifter.fixed(model, result.choices.by_path())`), where that forward computes only the chosen
    candidates (LayerChoice/InputChoice modules: `darts_cnn`, `nni_darts`);
  - "derived module": otherwise (a pattern-recognized mixture, as DARTS's reference `MixedOp` or Archai's,
    is fixed by one-hot weights, so its forward still runs every candidate: 1,395 convolutions where the
    discrete network has 187), nascompile's own standalone module of the discrete network
    (`result.to_pytorch`, compiled at `-O0` as `nascompile export --format pytorch` does, so that batch
    norms stay layers and nothing nascompile's optimizer does is handed to the exporter), imported and
    loaded in eval mode. It is flat (one layer per attribute, a functional forward), which the exporter
    traces about 2.5x faster than the nested fixed supernet on `darts_cnn` (the two files are the same
    graph and run equally fast): against this contender the compile-time ratio errs in the exporter's
    favour, never nascompile's.
  The fixed supernet is taken where its forward calls exactly as many convolution and linear layers as
  the `-O0` discrete network has (a forward hook counts them). Before timing, the contender's PyTorch
  output must equal nascompile's ONNX output on the example input (within 1e-4), and after the export the
  exporter's file must hold as many Conv and Gemm nodes as nascompile's `-O0` file: a benchmark of two
  different networks would be worthless. The output says which contender each network used;
- onnxruntime CPU latency of the three files at batch 1 and 32, with onnxruntime's full optimizer
  (`ORT_ENABLE_ALL`, NCHWc layout) for every file, at 1 intra-op thread (the target) and 2 (reported):
  paired, rotated blocks (`latency.py`), the ratio being the median of per-round ratios, with its
  quartiles as the spread; and the share of kernel time in convolutions in the fastest file (from
  onnxruntime's profiler): the floor no rewrite around the convolutions can pass;
- the floor of a compile through torch.fx: `torch.fx.symbolic_trace` of the discrete network alone, as the flat
  standalone module above (a lift traces at least the chosen candidates, and the cells around them besides),
  as a ratio to the `dynamo=False` export;
- ONNX node counts (and, for `darts_cnn`, of the un-pruned supernet exported as is);
- scaling: compile time and peak memory of DARTS supernets of 8, 20 and 50 cells and of a synthetic
  supernet of 100,000 IR nodes, each in a fresh process (`probe.py`).

`--quick` (a few minutes on a 2-core machine) skips the `dynamo=True` export and the un-pruned
supernet, takes fewer runs and rounds, and a synthetic supernet of 20,000 nodes; it says so in its
output, and the targets it cannot check are marked "skipped".
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib
import importlib.util
import io
import json
import logging
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

import nascompile  # noqa: E402
from nascompile.passes import PIPELINE_O0  # noqa: E402
from latency import compare, conv_share, quartiles  # noqa: E402

NETWORKS = ("darts_cnn", "darts_reference", "nni_darts", "archai_darts")  # modules in examples/
EXPORTERS = ("dynamo=False", "dynamo=True")
CONTENDERS = ("nascompile",) + EXPORTERS
FX_FLOOR = "fx trace of the discrete network"  # a compile_s entry: not a contender, the floor of an fx lift
BATCHES = (1, 32)
THREADS = (1, 2)  # the targets are checked at 1 thread; 2 threads are reported

TARGETS = {
    "compile_vs_dynamo_false": 0.05,
    "compile_vs_dynamo_true": 0.01,
    "latency_vs_best_exporter": 0.90,
    "scaling_50_vs_8_cells": 1.2 * 50 / 8,
    "peak_memory_vs_weights": 2.0,
}


@dataclass
class Settings:
    quick: bool
    compile_runs: int  # paired rounds of one nascompile compile and one dynamo=False export, after a warm-up of each
    export_runs: int  # fx floor traces, timed after one warm-up
    dynamo: bool  # run the dynamo=True export (timed once per network)
    supernet: bool  # export the un-pruned darts_cnn supernet as is
    latency_rounds: int  # paired rounds per batch size and thread count
    darts_cells: tuple[int, ...]
    probe_runs: int
    synthetic_nodes: int

    @classmethod
    def make(cls, quick: bool) -> "Settings":
        if quick:
            return cls(True, 5, 3, False, False, 8, (8, 20, 50), 3, 20_000)
        return cls(False, 7, 5, True, True, 20, (8, 20, 50), 5, 100_000)

    def trimmed(self) -> list[str]:
        if not self.quick:
            return []
        return ["torch.onnx.export(dynamo=True) not run (about 45 s per export)",
                "un-pruned supernet not exported (about 35 s)",
                f"{self.compile_runs} paired compile/export rounds instead of 7, {self.latency_rounds} latency rounds instead of 20",
                f"synthetic supernet of {self.synthetic_nodes:,} IR nodes instead of 100,000"]


# --- compile time ---------------------------------------------------------------------------------
def timed_runs(fn, runs: int, warmup: bool = True) -> list[float]:
    if warmup:
        fn()
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
    with quiet():
        result = nascompile.compile(model, inputs)
    path.write_bytes(result.to_onnx().SerializeToString())
    return result


@contextlib.contextmanager
def plain_tensors_frozen(model):
    """DARTS's reference code keeps its alphas as plain tensors that require grad, which the exporters'
    tracing refuses to turn into constants ("Cannot insert a Tensor that requires grad"): freeze them
    while exporting."""
    frozen = [value for module in model.modules() for value in vars(module).values()
              if isinstance(value, torch.Tensor) and not isinstance(value, torch.nn.Parameter) and value.requires_grad]
    for tensor in frozen:
        tensor.requires_grad_(False)
    try:
        yield
    finally:
        for tensor in frozen:
            tensor.requires_grad_(True)


def export_with_torch(model, inputs, path: Path, dynamo: bool) -> None:
    names = {"input_names": ["input"]}
    with quiet(), torch.no_grad(), plain_tensors_frozen(model):
        if dynamo:
            torch.onnx.export(model, inputs, str(path), dynamo=True, dynamic_shapes=({0: "batch"},), **names)
        else:
            torch.onnx.export(model, inputs, str(path), dynamo=False, dynamic_axes={"input": {0: "batch"}}, **names)


def node_count(path: Path) -> int:
    return len(onnx.load(str(path), load_external_data=False).graph.node)


# --- the exporters' contender: the derived network as a PyTorch module -----------------------------
LAYERS = (torch.nn.modules.conv._ConvNd, torch.nn.Linear)


def layer_counts(proto: onnx.ModelProto) -> dict[str, int]:
    """Convolution and linear-layer nodes (nn.Linear is a Gemm, or a MatMul where an exporter writes one)."""
    ops = collections.Counter(node.op_type for node in proto.graph.node)
    return {"Conv": ops["Conv"], "Gemm/MatMul": ops["Gemm"] + ops["MatMul"]}


@dataclass
class Contender:
    """What the exporters export for one network (see the module docstring)."""

    kind: str  # "fixed supernet" or "derived module"
    module: torch.nn.Module
    fixed: object  # a context manager factory: the decisions fixed on the supernet, or nothing to do
    layers: dict[str, int]  # Conv/Gemm nodes of nascompile's -O0 file: what the exporter's file must hold
    flat: torch.nn.Module  # the discrete network as nascompile's flat standalone module (the compile floor)
    max_error: float = 0.0  # max |contender - nascompile's ONNX file| on the example input


def outputs(value) -> list[np.ndarray]:
    """The tensors of a forward's result (a tensor or a nested tuple/list of them), as arrays."""
    if isinstance(value, torch.Tensor):
        return [value.detach().numpy()]
    return [array for item in value for array in outputs(item)]


def layer_calls(module: torch.nn.Module, inputs) -> int:
    """How many convolution and linear layers one forward of `module` calls."""
    calls = 0

    def count(layer, args, result):
        nonlocal calls
        calls += isinstance(layer, LAYERS)

    handle = torch.nn.modules.module.register_module_forward_hook(count)
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        handle.remove()
    return calls


def derived_module(result, directory: Path) -> torch.nn.Module:
    """nascompile's standalone module of `result`'s discrete network (model.py + model.safetensors), loaded."""
    result.to_pytorch(directory)
    spec = importlib.util.spec_from_file_location(f"derived_{directory.name}", directory / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load(directory / "model.safetensors")


def contender_for(model, inputs, result, onnx_file: Path, work: Path) -> Contender:
    """The fixed supernet where its forward is already the discrete network, else the derived module;
    checked against nascompile's ONNX file `onnx_file` (of `result`) on the example input."""
    with quiet():
        plain = nascompile.compile(model, inputs, pipeline=PIPELINE_O0)
    layers = layer_counts(plain.to_onnx())
    flat = derived_module(plain, work / f"{onnx_file.stem}_derived")
    with result.lifter.fixed(model, result.choices.by_path()):
        discrete = layer_calls(model, inputs) == sum(layers.values())
    if discrete:
        contender = Contender("fixed supernet", model, lambda: result.lifter.fixed(model, result.choices.by_path()),
                              layers, flat)
    else:
        contender = Contender("derived module", flat, contextlib.nullcontext, layers, flat)
    with contender.fixed(), torch.no_grad(), plain_tensors_frozen(contender.module):
        mine = outputs(contender.module(*inputs))
    theirs = run_file(onnx_file, inputs)
    if len(mine) != len(theirs) or any(a.shape != b.shape for a, b in zip(mine, theirs)):
        raise AssertionError(f"{contender.kind} and nascompile's file give outputs of different shapes: "
                             f"{[a.shape for a in mine]} against {[b.shape for b in theirs]}")
    contender.max_error = max(float(np.abs(a - b).max()) for a, b in zip(mine, theirs))
    if contender.max_error > 1e-4:
        raise AssertionError(f"{contender.kind} differs from nascompile's file by {contender.max_error:.3g} (> 1e-4) "
                             "on the example input: the benchmark would compare different networks")
    return contender


def run_file(path: Path, inputs) -> list[np.ndarray]:
    sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {i.name: x.numpy() for i, x in zip(sess.get_inputs(), inputs)})


def check_discrete(contender: Contender, path: Path, reference: Path | None = None, inputs=None) -> None:
    """The exporter's file must be the discrete network: as many Conv/Gemm nodes as nascompile's -O0 file,
    and (given nascompile's file `reference` and the example `inputs`) the same outputs as that file at a
    batch of 3, not only the example's: latency is measured at batch 1 and 32."""
    found = layer_counts(onnx.load(str(path), load_external_data=False))
    if found != contender.layers:
        raise AssertionError(f"{path.name} ({contender.kind}) holds {found}, nascompile's -O0 file {contender.layers}: "
                             "the exporter was not given the discrete network")
    if reference is None:
        return
    generator = torch.Generator().manual_seed(0)
    batch = [torch.randn((3,) + tuple(x.shape[1:]), generator=generator, dtype=x.dtype) for x in inputs]
    error = max(float(np.abs(a - b).max()) for a, b in zip(run_file(path, batch), run_file(reference, batch)))
    if error > 1e-4:
        raise AssertionError(f"{path.name} ({contender.kind}) differs from nascompile's file by {error:.3g} (> 1e-4) "
                             "at batch 3")


def paired_compile_times(compile_once, export_once, rounds: int) -> list[tuple[float, float]]:
    """(nascompile seconds, dynamo=False seconds) per round, the two timed back to back, which one first
    alternating. This machine's speed drifts by up to 2x within minutes, so a ratio of two medians taken
    one after the other follows the drift; the ratio of each pair does not."""
    pairs = []
    for r in range(rounds):
        times = {}
        for label, fn in (("compile", compile_once), ("export", export_once))[:: 1 if r % 2 == 0 else -1]:
            start = time.perf_counter()
            fn()
            times[label] = time.perf_counter() - start
        pairs.append((times["compile"], times["export"]))
    return pairs


def measure_compile(settings: Settings, name: str, model, inputs, files: dict[str, Path],
                    work: Path) -> tuple[dict, dict, dict, Contender]:
    """Median compile/export seconds and timed-run counts per contender, nascompile's paired ratio to the
    dynamo=False export (median and quartiles), and the exporters' contender; writes the ONNX files."""
    seconds: dict[str, float | None] = {c: None for c in files}
    runs: dict[str, int] = {}

    def measure(column: str, fn, count: int, warmup: bool = True) -> None:
        times = timed_runs(fn, count, warmup)
        seconds[column], runs[column] = statistics.median(times), len(times)

    def compile_once():
        return compile_with_nascompile(model, inputs, files["nascompile"])

    result = compile_once()  # the warm-up, and what the contender is checked against
    contender = contender_for(model, inputs, result, files["nascompile"], work)
    net = contender.module

    def export_once():  # the decisions are fixed around the export only: nascompile compiles the supernet
        with contender.fixed():
            export_with_torch(net, inputs, files["dynamo=False"], False)

    export_once()  # its warm-up
    with contender.fixed():
        check_discrete(contender, files["dynamo=False"], files["nascompile"], inputs)
    pairs = paired_compile_times(compile_once, export_once, settings.compile_runs)
    for column, times in (("nascompile", [c for c, _ in pairs]), ("dynamo=False", [e for _, e in pairs])):
        seconds[column], runs[column] = statistics.median(times), len(times)
    ratios = sorted(c / e for c, e in pairs)
    paired = {"median": statistics.median(ratios), "quartiles": quartiles(ratios)}
    with contender.fixed():
        if settings.dynamo:
            measure("dynamo=True", lambda: export_with_torch(net, inputs, files["dynamo=True"], True), 1,
                    warmup=name == NETWORKS[0])  # later networks find the exporter warm
            check_discrete(contender, files["dynamo=True"], files["nascompile"], inputs)
    measure(FX_FLOOR, lambda: torch.fx.symbolic_trace(contender.flat), settings.export_runs)
    if settings.supernet and "supernet" in files:  # search mode: every candidate, mixed; timed once
        measure("supernet", lambda: export_with_torch(model, inputs, files["supernet"], False), 1, warmup=False)
    return seconds, runs, paired, contender


# --- scaling ----------------------------------------------------------------------------------------
def probe(kind: str, size: int, runs: int) -> dict:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "probe.py"), kind, str(size), "--runs", str(runs)],
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"probe {kind} {size} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- one network ------------------------------------------------------------------------------------
def measure_network(settings: Settings, name: str, work: Path) -> dict:
    example = importlib.import_module(name)
    model, inputs = example.build(), example.example_inputs()
    files = {c: work / f"{name}_{c.replace('=', '_')}.onnx" for c in CONTENDERS}
    if name == "darts_cnn":
        files["supernet"] = work / f"{name}_supernet.onnx"
    compile_s, runs, paired, contender = measure_compile(settings, name, model, inputs, files, work)
    present = {c: path for c, path in files.items() if path.exists()}
    nodes = {c: node_count(path) for c, path in present.items()}
    timed = {c: str(path) for c, path in present.items() if c in CONTENDERS}
    latency, conv = {}, {}
    for batch in BATCHES:
        for threads in THREADS:
            latency[f"b{batch}_t{threads}"] = asdict(compare(timed, batch, threads, settings.latency_rounds))
        relative = latency[f"b{batch}_t1"]["ratio"]  # time / nascompile's time, block by block: the fastest file
        best = min(relative, key=relative.get)  # (unpaired medians follow the machine's speed from block to block)
        conv[f"b{batch}"] = {"file": best, "share": conv_share(timed[best], batch)}
    return {"compile_s": compile_s, "timed_runs": runs, "compile_vs_dynamo_false_paired": paired, "nodes": nodes,
            "latency": latency, "conv_share": conv,
            "exporters_contender": {"kind": contender.kind, "layers": contender.layers,
                                    "max_error": contender.max_error}}


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a / b


def network_checks(m: dict) -> dict[str, float | None]:
    """This network's ratios that the targets bound (None where a measurement was skipped)."""
    checks = {
        "compile_vs_dynamo_false": m["compile_vs_dynamo_false_paired"]["median"],
        "compile_vs_dynamo_true": ratio(m["compile_s"]["nascompile"], m["compile_s"]["dynamo=True"]),
    }
    for batch in BATCHES:
        paired = m["latency"][f"b{batch}_t1"]["ratio"]  # paired ratios to nascompile's file
        exporters = [paired[c] for c in EXPORTERS if c in paired]
        checks[f"latency_vs_best_exporter_b{batch}"] = 1 / max(exporters)  # nascompile / the faster exporter
    return checks


def scaling_checks(scaling: list[dict]) -> dict[str, float | None]:
    by_cells = {p["size"]: p for p in scaling if p["kind"] == "darts"}
    return {
        "scaling_50_vs_8_cells": ratio(by_cells[50]["compile_s"], by_cells[8]["compile_s"]),
        "peak_memory_vs_weights": ratio(by_cells[8]["peak_extra_mb"], by_cells[8]["weights_mb"]),
    }


def limit_of(check: str) -> float:
    return TARGETS[check.rsplit("_b", 1)[0] if check.startswith("latency") else check]


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


def target(checks: dict, check: str) -> str:
    value, limit = checks[check], limit_of(check)
    return f"ratio {'-' if value is None else f'{value:.3f}x'} (<= {limit:.3g}x) {verdict(value, limit)}"


def row(lines: list[str], metric: str, values: list[str], check: str = "") -> None:
    lines.append(f"{metric:<40}" + "".join(f"{v:>15}" for v in values) + f"  {check}")


def format_network(name: str, m: dict, checks: dict) -> list[str]:
    columns = list(CONTENDERS) + (["supernet"] if "supernet" in m["nodes"] else [])
    exported = m["exporters_contender"]
    layers = ", ".join(f"{count} {op}" for op, count in exported["layers"].items())
    lines = [f"{name} (examples/{name}.py), CPU; the exporters export the {exported['kind']} ({layers}, as "
             f"nascompile's -O0 file; max |output - nascompile's file| {exported['max_error']:.1e})"]
    row(lines, "", columns)
    low, high = m["compile_vs_dynamo_false_paired"]["quartiles"]
    row(lines, "compile time (s, median)", [fmt(m["compile_s"].get(c)) for c in columns],
        f"paired with dynamo=False [{low:.3f}..{high:.3f}]: " + target(checks, "compile_vs_dynamo_false"))
    row(lines, "  timed runs (after a warm-up)", [fmt(m["timed_runs"].get(c)) for c in columns],
        target(checks, "compile_vs_dynamo_true"))
    floor = m["compile_s"][FX_FLOOR]
    lines.append(f"  compile floor: torch.fx.symbolic_trace of the discrete network alone (flat module) takes "
                 f"{floor:.3g} s, {ratio(floor, m['compile_s']['dynamo=False']):.3f}x the dynamo=False export; "
                 "an fx lift traces at least that")
    row(lines, "ONNX nodes", [fmt(m["nodes"].get(c)) for c in columns],
        "no target: split-cat-convs adds nodes that run faster")
    for batch in BATCHES:
        for threads in THREADS:
            lat = m["latency"][f"b{batch}_t{threads}"]
            cells = [fmt(lat["median_ms"].get(c)) for c in CONTENDERS]
            spread = ", ".join(f"{c} {lat['ratio'][c]:.3f} [{lat['ratio_iqr'][c][0]:.3f}..{lat['ratio_iqr'][c][1]:.3f}]"
                               for c in EXPORTERS if c in lat["ratio"])
            note = target(checks, f"latency_vs_best_exporter_b{batch}") if threads == 1 else ""
            row(lines, f"latency b{batch}, {threads} thread(s) (ms)", cells,
                f"exporter / nascompile, paired: {spread}" + (f"; {note}" if note else ""))
        conv = m["conv_share"][f"b{batch}"]
        lines.append(f"  batch {batch}: convolutions are {100 * conv['share']:.0f}% of kernel time in the fastest "
                     f"file ({conv['file']}, 1 thread)")
    return lines


def format_scaling(scaling: list[dict], checks: dict) -> list[str]:
    lines: list[str] = []
    row(lines, "scaling (a fresh process each)", ["compile (s)", "lifted nodes", "discrete nodes", "peak +MiB"])
    for p in scaling:
        note = f"weights {p['weights_mb']:.1f} MiB, baseline {p['baseline_mb']:.0f} MiB"
        if p["kind"] == "darts" and p["size"] == 8:
            note = (f"peak +{p['peak_extra_mb']:.1f} MiB / weights {p['weights_mb']:.1f} MiB: "
                    + target(checks, "peak_memory_vs_weights"))
        elif p["kind"] == "darts" and p["size"] == 50:
            note = "time 50 / 8 cells: " + target(checks, "scaling_50_vs_8_cells")
        label = f"DARTS {p['size']} cells" if p["kind"] == "darts" else f"synthetic {p['lifted_nodes']:,} IR nodes"
        row(lines, label, [fmt(p["compile_s"]), fmt(p["lifted_nodes"]), fmt(p["discrete_nodes"]),
                           fmt(p["peak_extra_mb"])], note)
    return lines


def run(settings: Settings, work: Path, json_path: str | None, networks: tuple[str, ...]) -> int:
    started, load_before = time.perf_counter(), os.getloadavg()
    lines = ["nascompile vs torch.onnx.export, onnxruntime CPU with ORT_ENABLE_ALL for every file"]
    if settings.quick:
        lines.append("quick mode: " + "; ".join(settings.trimmed()))
    measured, checks = {}, {}
    for name in networks:
        measured[name] = measure_network(settings, name, work)
        checks[name] = network_checks(measured[name])
        lines += [""] + format_network(name, measured[name], checks[name])
    scaling = [probe("darts", cells, settings.probe_runs) for cells in settings.darts_cells]
    scaling.append(probe("synthetic", settings.synthetic_nodes, 1))
    checks["scaling"] = scaling_checks(scaling)
    lines += [""] + format_scaling(scaling, checks["scaling"])
    load_after = os.getloadavg()
    lines.append(f"load average {load_before[0]:.2f} -> {load_after[0]:.2f} on {os.cpu_count()} cores; "
                 f"{time.perf_counter() - started:.0f} s in all")
    print("\n".join(lines))
    if json_path:
        Path(json_path).write_text(json.dumps({
            "settings": asdict(settings), "trimmed": settings.trimmed(), "networks": measured, "scaling": scaling,
            "checks": {group: {key: {"ratio": value, "limit": limit_of(key), "verdict": verdict(value, limit_of(key))}
                               for key, value in values.items()} for group, values in checks.items()},
            "environment": {"python": platform.python_version(), "torch": torch.__version__, "onnx": onnx.__version__,
                            "onnxruntime": onnxruntime.__version__, "cores": os.cpu_count(),
                            "load_average": [load_before[0], load_after[0]]},
            "seconds": time.perf_counter() - started,
        }, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark nascompile against torch.onnx.export.")
    parser.add_argument("--quick", action="store_true", help="a few minutes: fewer runs, no dynamo=True export")
    parser.add_argument("--json", metavar="PATH", help="also write every measurement to this JSON file")
    parser.add_argument("--networks", nargs="+", choices=NETWORKS, default=list(NETWORKS), metavar="NAME",
                        help=f"which examples to measure (default: all of {', '.join(NETWORKS)})")
    args = parser.parse_args(argv)
    settings = Settings.make(args.quick)
    if settings.dynamo and importlib.util.find_spec("onnxscript") is None:  # found now, not minutes into the run
        print("run.py: the full run exports with torch.onnx.export(dynamo=True), which needs onnxscript: "
              "pip install -e \".[cpu,bench]\" (or run with --quick, which skips that exporter)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="nascompile-bench-") as work:
        return run(settings, Path(work), args.json, tuple(args.networks))


if __name__ == "__main__":
    sys.exit(main())
