"""`compile_many` on Ray: the same workers (`batch.Worker`) as Ray actors, one lift each.

`address=None` starts a local Ray instance with `jobs` CPUs; an address (`ray://head:10001`, `auto`)
joins an existing cluster, where every node needs nascompile installed and the SPEC (and weight) files
at the same paths. Actors return each architecture's record and ONNX bytes to the driver, which alone
writes the output folder, so no shared file system is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .batch import CHUNK, Item, ModelSource, Options, Worker, _chunks
from .errors import DeviceError


def run_ray(source: ModelSource, options: Options, items: list[Item], jobs: int, address: str | None,
            on_result: Callable[[dict[str, Any], bytes | None], None]) -> None:
    try:
        import ray
    except ImportError:
        raise DeviceError("--ray needs Ray: pip install 'nascompile[ray]'") from None
    started = not ray.is_initialized()
    if started:
        try:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=max(jobs, 1), include_dashboard=False, log_to_driver=False)
        except Exception as exc:  # Ray raises its own connection errors
            raise DeviceError(f"cannot start or reach Ray{f' at {address!r}' if address else ''}: "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    try:
        n = max(jobs, 1) if not address or jobs > 1 else max(int(ray.cluster_resources().get("CPU", 1)), 1)
        actor = ray.remote(num_cpus=1)(Worker)
        workers = [actor.remote(source.absolute(), options) for _ in range(n)]
        pending = iter(_chunks(items, CHUNK))
        running: dict[Any, Any] = {}
        for worker in workers:
            chunk = next(pending, None)
            if chunk is not None:
                running[worker.compile_chunk.remote(chunk)] = worker
        while running:
            done, _ = ray.wait(list(running), num_returns=1)
            worker = running.pop(done[0])
            for record, data in ray.get(done[0]):
                on_result(record, data)
            chunk = next(pending, None)
            if chunk is not None:
                running[worker.compile_chunk.remote(chunk)] = worker
    finally:
        if started:
            ray.shutdown()
