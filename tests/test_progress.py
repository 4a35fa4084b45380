"""Progress per stage: events from the library, lines or JSON lines on the command line, silence by default."""

from __future__ import annotations

import io
import json

import nascompile
from nascompile.passes import PIPELINE_O0, parse_pipeline
from nascompile.progress import HumanProgress, JsonLog, StageEvent

from conftest import EXAMPLES, example, run_cli

nb201 = example("nb201_cell")


def test_compile_reports_lift_and_every_pass_in_order_and_save_reports_emit_write_validate(tmp_path):
    events: list[StageEvent] = []
    result = nascompile.compile(nb201.build(), nb201.example_inputs(), pipeline=PIPELINE_O0, progress=events.append)
    passes = [name for name, _ in parse_pipeline(PIPELINE_O0)]
    assert [(e.stage, e.status) for e in events] == [
        (name, status) for name in ["lift", *passes] for status in ("start", "end")]
    ends = [e for e in events if e.status == "end"]
    assert all(e.seconds >= 0 for e in ends) and ends[0].detail.endswith("choices")
    assert [e.kind for e in ends] == ["lift"] + ["pass"] * len(passes)
    events.clear()
    result.save(tmp_path / "m.onnx", validate="cpu", progress=events.append)
    assert [(e.stage, e.status) for e in events] == [("emit", "start"), ("emit", "end"), ("write", "start"),
                                                     ("write", "end"), ("validate", "start"), ("validate", "end")]
    assert events[1].detail.endswith("ONNX nodes") and events[-1].detail.startswith("passed on cpu")


def test_the_library_prints_nothing(capsys):
    result = nascompile.compile(nb201.build(), nb201.example_inputs())
    result.report, result.to_json()
    assert capsys.readouterr() == ("", "")


def test_human_progress_prints_one_line_per_finished_stage():
    stream = io.StringIO()
    progress = HumanProgress(stream, live=False)
    progress(StageEvent("lift", "lift", "start"))
    progress(StageEvent("lift", "lift", "end", 0.25, "12 IR nodes"))
    assert stream.getvalue() == f"  {'lift':<22}    0.250 s  12 IR nodes\n"


def test_live_progress_shows_the_running_stage_and_replaces_it():
    stream = io.StringIO()
    progress = HumanProgress(stream, live=True)
    progress(StageEvent("expand", "pass", "start"))
    assert stream.getvalue().endswith("expand                 ...")
    progress(StageEvent("expand", "pass", "end", 1.5))
    assert stream.getvalue().endswith("\r\033[K  expand                    1.500 s\n")
    progress(StageEvent("emit", "emit", "start"))
    progress.close()  # a failing stage: what follows starts on a new line
    assert stream.getvalue().endswith("emit                   ...\n")


def test_json_log_lines():
    stream = io.StringIO()
    log = JsonLog(stream)
    log(StageEvent("cse", "pass", "end", 0.5, "10 IR nodes"))
    log.warning("w")
    log.error("choice error", "bad", 6)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["stage", "warning", "error"]
    assert lines[0] | {"elapsed": 0} == {"event": "stage", "elapsed": 0, "stage": "cse", "kind": "pass", "status": "end",
                                         "seconds": 0.5, "detail": "10 IR nodes"}
    assert lines[2]["exit_code"] == 6 and lines[2]["kind"] == "choice error"


def test_cli_progress_goes_to_stderr_and_stops_with_q(tmp_path):
    out = tmp_path / "m.onnx"
    proc = run_cli("compile", str(EXAMPLES / "nb201_cell.py"), "-o", str(out), "--validate")
    assert proc.returncode == 0, proc.stderr
    stages = [line.split()[0] for line in proc.stderr.splitlines() if line.startswith("  ")]
    assert stages[0] == "lift" and stages[-3:] == ["emit", "write", "validate"] and "expand" in stages
    assert "lift" not in proc.stdout and f"wrote {out}" in proc.stdout
    proc = run_cli("compile", str(EXAMPLES / "nb201_cell.py"), "-o", str(out), "-q")
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""


def test_cli_log_json_writes_only_json_lines_to_stderr(tmp_path):
    proc = run_cli("compile", str(EXAMPLES / "nb201_cell.py"), "-o", str(tmp_path / "m.onnx"), "--log-json")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stderr.splitlines()]
    ends = [line["stage"] for line in lines if line["event"] == "stage" and line["status"] == "end"]
    assert ends[0] == "lift" and ends[-2:] == ["emit", "write"]
    assert "wrote" in proc.stdout
    bad = tmp_path / "bad.py"
    bad.write_text("def build():\n    raise RuntimeError('boom')\n")
    proc = run_cli("compile", str(bad), "-o", str(tmp_path / "x.onnx"), "--log-json")
    error = json.loads(proc.stderr.splitlines()[-1])
    assert error["event"] == "error" and error["exit_code"] == proc.returncode == 3


def test_warnings_go_to_stderr_as_json_with_log_json(tmp_path):
    spec = tmp_path / "tie.py"
    spec.write_text(
        "import torch\nfrom nascompile import nn as nc\n"
        "class Net(nc.Supernet):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.edge = nc.LayerChoice([torch.nn.ReLU(), torch.nn.Identity()], label='edge')\n"
        "        torch.nn.init.zeros_(self.edge.alpha)\n"
        "    def forward(self, x):\n"
        "        return self.edge(x)\n"
        "def build():\n    return Net()\n"
        "def example_inputs():\n    return (torch.randn(1, 4),)\n")
    proc = run_cli("export", str(spec), "--log-json")
    assert proc.returncode == 0, proc.stderr
    warnings = [json.loads(line) for line in proc.stderr.splitlines() if '"warning"' in line]
    assert len(warnings) == 1 and "tie" in warnings[0]["message"]
    # `report` lists the tie in its output instead of warning about it too
    proc = run_cli("report", str(spec), "--log-json", "--json")
    assert proc.returncode == 0, proc.stderr
    assert '"warning"' not in proc.stderr and len(json.loads(proc.stdout)["ties"]) == 1
    assert json.loads(proc.stdout)["ties"] == [warnings[0]["message"]]
