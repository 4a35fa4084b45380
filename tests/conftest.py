"""Shared test helpers: the bundled examples, IR text, and the CLI run as a subprocess."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# One intra-op thread: the tests run small tensors, and on a busy shared machine torch's spinning worker
# threads made the suite several times slower (measured: 108 s with the default threads, 14 s with one).
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))


def example(name: str):
    """Import an example module from examples/."""
    return importlib.import_module(name)


def run_cli(*args: str, cwd: str | os.PathLike | None = None, timeout: int = 300,
            env: dict[str, str] | None = None, text: bool = True) -> subprocess.CompletedProcess:
    """Run `python -m nascompile ARGS` with this checkout first on the path (and `env` added; bytes unless `text`)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **(env or {}))
    return subprocess.run([sys.executable, "-m", "nascompile", *args], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=text, timeout=timeout)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def run_pass(pass_fn, text: str, ctx=None, **options):
    """Parse IR `text`, run one pass function on it with a `PassContext`, verify the result.

    Returns (graph, ctx, pass result); compare `print_graph(graph)` against the expected IR text.
    """
    from nascompile.ir import parse_graph, verify_graph
    from nascompile.passes import PassContext

    graph = parse_graph(text)
    ctx = ctx if ctx is not None else PassContext()
    result = pass_fn(graph, ctx, **options)
    verify_graph(graph)
    return graph, ctx, result


def layer_choice_line(name: str, src: str, label: str, logits: list[float] | None = None, chosen: int | None = None,
                      candidates: tuple[str, ...] = ("a", "b"), loc: str | None = None) -> str:
    """One `layer_choice` line of IR text as the printer writes it (zero slot `none` last).

    With `logits` the parameter's values are written (input text); without, only its type (printed output).
    """
    names = list(candidates) + ["none"]
    attrs = [f"candidates={json.dumps(names)}"] + ([f"chosen={chosen}"] if chosen is not None else [])
    modules = json.dumps([f"m.{n}" for n in candidates] + [None])
    attrs += [f"label={json.dumps(label)}", f"modules={modules}", f"zero={len(candidates)}"]
    param = f"logits: f32[{len(names)}]"
    if logits is not None:
        param += " = [" + ", ".join(repr(float(v)) for v in logits) + "]"
    line = f"  %{name} = layer_choice(%{src}) {{{', '.join(attrs)}}} params({param})"
    return line + (f' loc("{loc}")' if loc else "")
