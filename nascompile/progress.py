"""Progress of a compile, stage by stage: lift, each pass, emit, validate, write.

The library never prints: `compile()` and `CompileResult.save()` take a `progress` callback and call it
with a `StageEvent` when a stage starts and when it ends (with its time). The command line turns the
events into lines on stderr (`HumanProgress`) or JSON lines (`JsonLog`, `--log-json`).

Stages are few and coarse (one per pass) and their lengths unknown in advance, so a progress *bar*
would say nothing a line per finished stage does not: on a terminal the running stage is shown on a
live line, replaced by its time when it ends; in a pipe or a log file only the finished lines appear.
That needs no dependency (rich, tqdm), which keeps installs and CI small.

    >>> events = []
    >>> with stage(events.append, "lift", "lift") as detail:
    ...     detail.append("12 IR nodes")
    >>> [(e.stage, e.status, e.detail) for e in events]
    [('lift', 'start', ''), ('lift', 'end', '12 IR nodes')]
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, TextIO


@dataclass(frozen=True)
class StageEvent:
    """One stage starting (`status="start"`) or ending (`"end"`, with `seconds` and a short `detail`)."""

    stage: str  # "lift", a pass name, "emit", "validate", "write", ...
    kind: str  # "lift", "pass", "emit", "validate", "write", "analyze", "render"
    status: str  # "start" or "end"
    seconds: float | None = None
    detail: str = ""


ProgressFn = Callable[[StageEvent], None]


@contextlib.contextmanager
def stage(progress: ProgressFn | None, name: str, kind: str) -> Iterator[list[str]]:
    """Report `name` starting, then ending with its time; append to the yielded list to add a detail.

    Nothing is reported when `progress` is None, or for the end of a stage that raised.
    """
    detail: list[str] = []
    if progress is not None:
        progress(StageEvent(name, kind, "start"))
    start = time.perf_counter()
    yield detail
    if progress is not None:
        progress(StageEvent(name, kind, "end", time.perf_counter() - start, ", ".join(detail)))


class HumanProgress:
    """`  lift            0.034 s  213 IR nodes, 48 choices` per finished stage, on `stream` (stderr)."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None):
        self.stream = stream if stream is not None else sys.stderr
        if live is None:  # a terminal that understands "\r\033[K" (TERM=dumb, e.g. Emacs shells, does not)
            live = self.stream.isatty() and os.environ.get("TERM", "") != "dumb"
        self.live = live
        self.open_line = False  # a live "running" line waits for its end

    def __call__(self, event: StageEvent) -> None:
        if event.status == "start":
            if self.live:
                self.close()
                self.stream.write(f"  {event.stage:<22} ...")
                self.stream.flush()
                self.open_line = True
            return
        if self.open_line:
            self.stream.write("\r\033[K")
            self.open_line = False
        detail = f"  {event.detail}" if event.detail else ""
        self.stream.write(f"  {event.stage:<22} {event.seconds:8.3f} s{detail}\n")
        self.stream.flush()

    def close(self) -> None:
        """End a live line left open (a stage that failed), so what follows starts on a new line."""
        if self.open_line:
            self.stream.write("\n")
            self.stream.flush()
            self.open_line = False

    def warning(self, message: str) -> None:
        self.close()
        print(f"warning: {message}", file=self.stream)


class JsonLog:
    """One JSON object per line on `stream` (stderr): stage events, warnings and errors, for machines.

    Every line has `event` ("stage", "warning", "error") and `elapsed` (seconds since the log began).
    """

    def __init__(self, stream: TextIO | None = None, stages: bool = True):
        self.stream = stream if stream is not None else sys.stderr
        self.start = time.perf_counter()
        self.stages = stages  # False (-q): warnings and errors only

    def write(self, event: str, **fields: Any) -> None:
        line = {"event": event, "elapsed": round(time.perf_counter() - self.start, 6), **fields}
        self.stream.write(json.dumps(line) + "\n")
        self.stream.flush()

    def __call__(self, event: StageEvent) -> None:
        if self.stages:
            fields = {k: v for k, v in asdict(event).items() if v is not None}
            if "seconds" in fields:
                fields["seconds"] = round(fields["seconds"], 6)
            self.write("stage", **fields)

    def close(self) -> None:
        pass

    def warning(self, message: str) -> None:
        self.write("warning", message=message)

    def error(self, kind: str, message: str, exit_code: int, **fields: Any) -> None:
        self.write("error", kind=kind, message=message, exit_code=exit_code, **fields)
