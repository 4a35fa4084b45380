"""`compile_many`: compile many given architectures of one supernet into a content-addressed folder.

    D/<sha256>.onnx     one file per architecture, named by the hash of its architecture description
    D/manifest.jsonl    one JSON record per architecture: key, index, status, sha256, path, decisions,
                        error (kind, message, exit code), stage timings, validation

The parent lifts the supernet once to resolve (or enumerate) the architectures and to name each by a
stable key (its NAS-Bench-201 string, else its canonical decisions). Workers — the parent itself, local
processes (`jobs`) or Ray actors (`ray`, see `batch_ray.py`) — each build and lift the supernet once and
compile chunks of architectures from that lift (`compiler.compile_lifted`), returning the ONNX bytes.
Only the parent writes: each file atomically (a staging folder, then a rename), then its manifest line,
flushed. A killed run leaves complete files and complete lines; the next run with `resume` drops a cut
last line and the staging folders left behind, and skips every key the manifest holds (failures
included: they are deterministic). A failure is a record, and the run goes on.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import NascompileError, OutputPathError

MANIFEST = "manifest.jsonl"
LOCK = ".compile-many.lock"
CHUNK = 16


@dataclass
class ModelSource:
    """How a worker builds the supernet and its example inputs: picklable, so it travels to processes."""

    spec: str
    build_args: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    alphas: str | None = None
    input_shapes: list[str] | None = None
    seed: int = 0

    def absolute(self) -> "ModelSource":
        """Paths made absolute, for workers that may start elsewhere."""
        def fix(path: str | None) -> str | None:
            return str(Path(path).resolve()) if path and Path(path).exists() else path
        return ModelSource(fix(self.spec) if self.spec.endswith(".py") else self.spec, dict(self.build_args),
                           fix(self.weights), fix(self.alphas), self.input_shapes, self.seed)

    def lift(self):
        """Build the supernet, load its weights, make the example inputs and lift it (`compiler.Lifted`)."""
        from types import SimpleNamespace

        from .compiler import lift_model
        from .frontend import load_alphas
        from .options import example_inputs_of
        from .spec import load_spec, load_weights

        loaded = load_spec(self.spec, self.build_args)
        if self.weights:
            load_weights(loaded.model, self.weights)
        inputs = example_inputs_of(SimpleNamespace(spec=self.spec, input_shape=self.input_shapes, seed=self.seed), loaded)
        return lift_model(loaded.model, inputs, arch_params=load_alphas(self.alphas) if self.alphas else None)


@dataclass
class Options:
    """What each compile does, the same for every worker."""

    pipeline: str | None = None
    opset: int | None = None
    dynamic_batch: bool = True
    device: str = "cpu"
    batch_sizes: tuple[int, ...] = (1, 2)
    atol: float = 1e-4
    rtol: float = 1e-3


@dataclass
class Item:
    """One architecture to compile: its position in the input, key, resolved decisions and edge order."""

    index: int
    key: str
    given: Any  # archspec.GivenArch
    validate: bool


class Worker:
    """Holds one lift and compiles items from it (in the parent, a process or a Ray actor)."""

    def __init__(self, source: ModelSource, options: Options):
        import torch

        torch.set_num_threads(1)  # one core per worker: parallelism comes from the workers
        self.options = options
        self.lifted = source.lift()

    def compile_chunk(self, items: list[Item]) -> list[tuple[dict[str, Any], bytes | None]]:
        return [self.compile_one(item) for item in items]

    def compile_one(self, item: Item) -> tuple[dict[str, Any], bytes | None]:
        """(record, ONNX bytes or None): a user error becomes a failed record, a bug propagates."""
        import onnx

        from .compiler import compile_lifted

        timings: dict[str, float] = {}
        record: dict[str, Any] = {"index": item.index, "key": item.key, "status": "ok", "sha256": None,
                                  "path": None, "decisions": item.given.decisions, "error": None,
                                  "validation": None, "timings": timings}
        start = time.perf_counter()
        try:
            result = compile_lifted(self.lifted, self.options.pipeline, arch=item.given)
            timings.update({name: round(seconds, 6) for name, seconds in result.timings.items()})
            record["decisions"] = result.decisions
            record["sha256"] = result.sha256
            t = time.perf_counter()
            model = result.to_onnx(self.options.opset, self.options.dynamic_batch)
            data = model.SerializeToString(deterministic=True)
            timings["emit"] = round(time.perf_counter() - t, 6)
            t = time.perf_counter()
            onnx.checker.check_model(data, full_check=True)
            timings["check"] = round(time.perf_counter() - t, 6)
            if item.validate:
                t = time.perf_counter()
                report = result.validate(data, self.options.device, self.options.batch_sizes, self.options.atol,
                                         self.options.rtol)
                timings["validate"] = round(time.perf_counter() - t, 6)
                record["validation"] = {"passed": report.passed, "device": self.options.device,
                                        "max_abs": report.max_abs, "max_rel": report.max_rel}
                if not report.passed:
                    from .errors import ValidationError

                    raise ValidationError(f"the ONNX model differs from the supernet's own forward with the decisions "
                                          f"fixed (max abs diff {report.max_abs:.3g}); not written")
        except NascompileError as exc:
            record.update(status="failed", error={"kind": exc.kind, "message": str(exc), "exit_code": exc.exit_code})
            data = None
        except onnx.checker.ValidationError as exc:
            record.update(status="failed", error={"kind": "lowering error", "message": str(exc).splitlines()[0],
                                                  "exit_code": 8})
            data = None
        record["seconds"] = round(time.perf_counter() - start, 6)
        if data is not None:
            record["path"] = f"{record['sha256']}.onnx"
        return record, data


def validation_sample(key: str, fraction: float) -> bool:
    """Whether `key` is in the validated sample: a fixed share of keys, chosen by their hash (order-free)."""
    if fraction >= 1:
        return True
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) < fraction * 16 ** 12


# --- the output folder ------------------------------------------------------------------------


@contextlib.contextmanager
def locked_out_dir(out_dir: Path) -> Iterator[None]:
    """Create `out_dir` and hold its lock: one run writes a folder at a time."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        handle = open(out_dir / LOCK, "w")
    except OSError as exc:
        raise OutputPathError(f"cannot use {str(out_dir)!r} as the output folder: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise OutputPathError(f"another compile-many is writing {str(out_dir)!r}; wait for it, or choose "
                                  "another --out-dir") from None
        yield
    finally:
        handle.close()


def read_manifest(out_dir: Path, resume: bool) -> dict[str, dict[str, Any]]:
    """The records already in `out_dir` by key, after repairing what a killed run left.

    Without `resume`, a folder holding records is refused (its files would be mixed with this run's).
    """
    path = out_dir / MANIFEST
    for stale in out_dir.glob(".nascompile-*"):  # staging folders of a killed run
        shutil.rmtree(stale, ignore_errors=True)
    if not path.exists() or path.stat().st_size == 0:
        return {}
    if not resume:
        raise OutputPathError(f"{str(path)!r} already holds records; pass --resume to continue that run, or choose "
                              "an empty --out-dir")
    data = path.read_bytes()
    if not data.endswith(b"\n"):  # the last line was cut by a kill: drop it, it will be redone
        data = data[:data.rfind(b"\n") + 1]
        with open(path, "r+b") as handle:
            handle.truncate(len(data))
    records: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(data.decode().splitlines(), start=1):
        try:
            record = json.loads(line)
            records[record["key"]] = record
        except (json.JSONDecodeError, KeyError, TypeError):
            raise OutputPathError(f"{str(path)!r} line {number} is not a manifest record; move the file away to "
                                  "start afresh") from None
    for key, record in list(records.items()):  # an ok record whose file is gone is redone
        if record.get("status") == "ok" and not (out_dir / str(record.get("path"))).is_file():
            del records[key]
    return records


class ManifestWriter:
    """Writes each result's file, then its record; one line per write, flushed and synced."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.handle = open(out_dir / MANIFEST, "a", encoding="ascii")

    def write(self, record: dict[str, Any], data: bytes | None) -> None:
        from .files import staged_outputs

        if data is not None:
            target = self.out_dir / record["path"]
            if not target.exists():  # content-addressed: an equal architecture wrote it already
                with staged_outputs(target) as (temp,):
                    temp.write_bytes(data)
        self.handle.write(json.dumps(record, sort_keys=True, allow_nan=False) + "\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()


# --- running ----------------------------------------------------------------------------------


@dataclass
class Summary:
    total: int
    ok: int = 0
    failed: int = 0
    skipped: int = 0  # already in the manifest (resume)
    isomorphic: int = 0  # left out as isomorphic to an earlier architecture
    repeated: int = 0  # given again after an equal one (same key)
    validated: int = 0
    seconds: float = 0.0
    manifest: str = ""

    def line(self) -> str:
        parts = [f"{self.ok:,} ok", f"{self.failed:,} failed", f"{self.validated:,} validated"]
        if self.skipped:
            parts.append(f"{self.skipped:,} already done")
        if self.isomorphic:
            parts.append(f"{self.isomorphic:,} isomorphic left out")
        if self.repeated:
            parts.append(f"{self.repeated:,} repeats left out")
        return (f"{self.total:,} architectures: " + ", ".join(parts) + f" in {self.seconds:.1f} s; manifest "
                f"{self.manifest}")


def _chunks(items: list[Item], size: int) -> list[list[Item]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def run_local(source: ModelSource, options: Options, items: list[Item], jobs: int,
              on_result: Callable[[dict[str, Any], bytes | None], None]) -> None:
    """Compile `items` in this process (jobs=1) or in `jobs` local processes, each lifting once."""
    if jobs <= 1:
        worker = Worker(source, options)
        for item in items:
            on_result(*worker.compile_one(item))
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")  # the parent holds torch's thread pools: never fork it
    pending = iter(_chunks(items, CHUNK))
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_process,
                             initargs=(source.absolute(), options)) as pool:
        running = set()
        try:
            for chunk in itertools_islice(pending, 2 * jobs):
                running.add(pool.submit(_process_chunk, chunk))
            while running:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    for record, data in future.result():
                        on_result(record, data)
                    chunk = next(pending, None)
                    if chunk is not None:
                        running.add(pool.submit(_process_chunk, chunk))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def itertools_islice(iterable: Iterator, n: int) -> list:
    return [x for _, x in zip(range(n), iterable)]


_WORKER: Worker | None = None


def _init_process(source: ModelSource, options: Options) -> None:
    global _WORKER
    _WORKER = Worker(source, options)


def _process_chunk(items: list[Item]) -> list[tuple[dict[str, Any], bytes | None]]:
    assert _WORKER is not None
    return _WORKER.compile_chunk(items)


def prepare_items(lifted, archs: Iterable[Any] | None, all_archs: bool, dedup: bool,
                  validate_sample: float) -> tuple[list[Item], list[dict[str, Any]], int, int]:
    """(items, failed records, isomorphic count, repeated count): each architecture resolved and named once,
    in input order (an architecture given twice is compiled once).

    An architecture that does not resolve (a typo, a space it does not fit) becomes a failed record.
    """
    from .archspec import GivenArch, parse_arch, resolve
    from .space import arch_key, enumerate_space, nb201_isomorphism_key, nb201_nodes

    graph, space = lifted.graph, lifted.search_space
    items: list[Item] = []
    failed: list[dict[str, Any]] = []
    seen_forms: set[str] = set()
    seen_keys: set[str] = set()
    isomorphic = repeated = 0
    source = enumerate_space(graph) if all_archs else archs
    for index, arch in enumerate(source):
        try:
            given = GivenArch(arch, "--all") if all_archs else resolve(parse_arch(arch), graph, space)
        except NascompileError as exc:
            text = arch if isinstance(arch, str) else json.dumps(arch, sort_keys=True)
            failed.append({"index": index, "key": text, "status": "failed", "sha256": None, "path": None,
                           "decisions": None, "validation": None, "timings": {}, "seconds": 0.0,
                           "error": {"kind": exc.kind, "message": str(exc), "exit_code": exc.exit_code}})
            continue
        key = arch_key(given.decisions, graph, space)
        if key in seen_keys:
            repeated += 1
            continue
        seen_keys.add(key)
        if dedup:
            nodes = nb201_nodes(given.decisions, graph, space)
            if nodes is not None:
                form = nb201_isomorphism_key(nodes)
                if form in seen_forms:
                    isomorphic += 1
                    continue
                seen_forms.add(form)
        items.append(Item(index, key, given, validation_sample(key, validate_sample)))
    return items, failed, isomorphic, repeated


def compile_many(
    source: ModelSource | str,
    out_dir: str | os.PathLike,
    archs: Iterable[Any] | None = None,
    *,
    all_archs: bool = False,
    dedup: bool = True,
    options: Options | None = None,
    jobs: int = 1,
    ray: str | bool | None = None,
    resume: bool = False,
    validate_sample: float = 0.0,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
) -> Summary:
    """Compile `archs` (each anything `compile(arch=...)` takes), or with `all_archs` every architecture of a
    finite space (`space.enumerate_space`; with `dedup`, one per NAS-Bench-201 isomorphism class; architectures
    given in `archs` are all compiled, an equal one given twice once), into
    `out_dir`. `jobs` local processes, or Ray actors with `ray` (True: a local Ray instance; a string: the
    address of a cluster). `validate_sample`: the share validated (by key hash; 1 validates all).
    `on_start(total, already_done)` and `on_record(record)` follow the run (progress bars, logs).
    """
    source = ModelSource(source) if isinstance(source, str) else source
    options = options or Options()
    out = Path(out_dir)
    if (archs is None) == (not all_archs):
        raise NascompileError("give the architectures (archs) or all_archs=True, not both")
    start = time.perf_counter()
    lifted = source.lift()
    items, failed, isomorphic, repeated = prepare_items(lifted, archs, all_archs, dedup and all_archs,
                                                        validate_sample)
    with locked_out_dir(out):
        done = read_manifest(out, resume)
        writer = ManifestWriter(out)
        summary = Summary(total=len(items) + len(failed), isomorphic=isomorphic, repeated=repeated,
                          manifest=str(out / MANIFEST))
        todo = [item for item in items if item.key not in done]
        new_failed = [r for r in failed if r["key"] not in done]
        summary.skipped = summary.total - len(todo) - len(new_failed)
        for record in done.values():
            summary.ok += record.get("status") == "ok"
            summary.failed += record.get("status") == "failed"
            summary.validated += record.get("validation") is not None
        if on_start is not None:
            on_start(summary.total, summary.skipped)

        def on_result(record: dict[str, Any], data: bytes | None) -> None:
            writer.write(record, data)
            summary.ok += record["status"] == "ok"
            summary.failed += record["status"] == "failed"
            summary.validated += record["validation"] is not None
            if on_record is not None:
                on_record(record)

        try:
            for record in new_failed:
                on_result(record, None)
            if ray:
                from .batch_ray import run_ray

                run_ray(source, options, todo, jobs, None if ray is True else ray, on_result)
            else:
                run_local(source, options, todo, jobs, on_result)
        finally:
            writer.close()
    summary.seconds = time.perf_counter() - start
    return summary


def read_records(out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The manifest's records, in the order written."""
    path = Path(out_dir) / MANIFEST
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_archs_file(path: str | os.PathLike) -> list[Any]:
    """Architectures from a .jsonl file: each line JSON (a string or an NNI/nascompile object) or plain text
    (a NAS-Bench-201 string, a Genotype(...), genotypes.py:NAME); blank lines and `#` comments are skipped."""
    from .errors import ChoiceError

    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ChoiceError(f"cannot read the architectures file {str(path)!r}: {exc}") from None
    archs: list[Any] = []
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        archs.append(value if isinstance(value, (str, Mapping)) else text)
    return archs
