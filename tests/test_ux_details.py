"""Small UX promises (issue 17, items 6, 11, 14): a short repr, -q with --log-json, rounded seconds, no live
escapes for TERM=dumb, inspect's order, malformed or hostile metadata, strict JSON for alphas."""

from __future__ import annotations

import io
import json

import onnx
import pytest
import torch

import nascompile
from nascompile import cli
from nascompile.progress import HumanProgress, JsonLog, StageEvent

from conftest import EXAMPLES, example


@pytest.fixture(scope="module")
def nb201():
    module = example("nb201_cell")
    return nascompile.compile(module.build(), module.example_inputs())


def test_repr_is_short(nb201):
    text = repr(nb201)
    assert len(text) < 200 and text.startswith("<CompileResult of NB201Network: 9 decisions")


def test_quiet_json_log_keeps_warnings_and_errors_only_and_rounds_seconds():
    stream = io.StringIO()
    JsonLog(stream, stages=False)(StageEvent("lift", "lift", "end", 0.123456789))
    assert stream.getvalue() == ""
    log = JsonLog(stream)
    log(StageEvent("lift", "lift", "end", 0.123456789))
    assert json.loads(stream.getvalue())["seconds"] == 0.123457


def test_no_live_line_on_a_dumb_terminal(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setenv("TERM", "dumb")
    assert HumanProgress(Tty()).live is False
    monkeypatch.setenv("TERM", "xterm")
    assert HumanProgress(Tty()).live is True


def _with_metadata(nb201, tmp_path, **changes) -> str:
    path = tmp_path / "m.onnx"
    nb201.save(path)
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key in changes:
            prop.value = changes[prop.key]
    onnx.save(model, str(path))
    return str(path)


@pytest.mark.parametrize("decisions, message", [
    ('["not", "an", "object"]', "the stored decisions are malformed"),
    ('{"a": 3}', "the stored decisions are malformed"),
    ('{"a": NaN}', "NaN is not a JSON number"),
    ("[" * 5000 + "]" * 5000, "nested too deeply"),
    ('{"a": "x", "a": "y"}', "key 'a' is given twice"),
])
def test_inspect_refuses_malformed_metadata_with_exit_15(nb201, tmp_path, capsys, decisions, message):
    path = _with_metadata(nb201, tmp_path, **{"nascompile.decisions": decisions})
    assert cli.main(["inspect", path]) == 15
    assert message in capsys.readouterr().err


def test_inspect_escapes_terminal_control_sequences_and_lists_layer_choices_first(nb201, tmp_path, capsys):
    path = _with_metadata(nb201, tmp_path, **{"nascompile.pipeline": "dce\x1b[2J\x1b]0;owned\x07"})
    assert cli.main(["inspect", path]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "pipeline: dce\\x1b[2J\\x1b]0;owned\\x07" in out
    labels = [line.split()[0] for line in out.split("choices):\n")[1].splitlines()]
    assert labels == sorted(labels, key=lambda label: (label.startswith("node"), label))


@pytest.mark.parametrize("text, message", [
    ('{"a": [1, 2], "a": [3, 4]}', "key 'a' is given twice"),
    ("[" * 2000 + "]" * 2000, "nested too deeply"),
    ('{"edge_1_0": [1' + "0" * 400 + ", 0, 0, 0, 0, 0]}", "401 digits"),
])
def test_alphas_json_is_read_strictly(tmp_path, capsys, text, message):
    alphas = tmp_path / "a.json"
    alphas.write_text(text)
    code = cli.main(["compile", str(EXAMPLES / "nb201_cell.py"), "-o", str(tmp_path / "m.onnx"), "--alphas", str(alphas)])
    assert code == 4
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
