"""The command line starts fast: `--help` and `--version` of every subcommand load neither torch nor onnx,
and the subcommand modules are registered through one list (`cli.SUBCOMMANDS`)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT

HEAVY = ("torch", "onnx", "onnxruntime", "numpy", "networkx")

PROBE = """
import json, sys
from nascompile import cli
try:
    cli.main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["compile", "--help"], ["report", "--help"],
                                  ["plot", "--help"], ["export", "--help"], ["inspect", "--help"]])
def test_help_and_version_import_no_heavy_module(args):
    proc = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded == [], f"{' '.join(args)} imported {loaded}"


def test_every_subcommand_has_a_runner():
    from nascompile import cli

    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    assert {"compile", "report", "plot", "export", "inspect"} <= set(subparsers)
    for name, sub in subparsers.items():
        assert callable(sub.get_default("run")), name


def test_no_import_cycle_between_cli_and_the_subcommands():
    # The subcommand modules take the shared options from nascompile.options, never from the cli module.
    for module in ("commands", "compile_command", "options"):
        text = (ROOT / "nascompile" / f"{module}.py").read_text()
        assert "from .cli import" not in text and "from . import cli" not in text, module


def _fail_with(exc):
    def run(args):
        raise exc
    return run


@pytest.mark.parametrize("exc, kind, code", [(RuntimeError("boom"), "internal error", 70),
                                             (KeyboardInterrupt(), "interrupted", 130)])
def test_log_json_reports_internal_errors_and_interrupts_as_json_lines(monkeypatch, capsys, exc, kind, code):
    from nascompile import cli, compile_command

    monkeypatch.setattr(compile_command, "run_compile", _fail_with(exc))
    assert cli.main(["compile", "spec.py", "-o", "m.onnx", "--log-json"]) == code
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]  # every line is JSON
    assert [(line["event"], line["kind"], line["exit_code"]) for line in lines] == [("error", kind, code)]
    if code == 70:
        assert "RuntimeError: boom" in lines[0]["message"] and "Traceback" in lines[0]["traceback"]


def test_internal_error_without_log_json_prints_the_traceback(monkeypatch, capsys):
    from nascompile import cli, compile_command

    monkeypatch.setattr(compile_command, "run_compile", _fail_with(RuntimeError("boom")))
    assert cli.main(["compile", "spec.py", "-o", "m.onnx"]) == 70
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().endswith("please report it with the traceback above")
