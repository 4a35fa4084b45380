"""What stands at an output path is respected (issue 17, items 8, 11, 14): symlinks are followed, an existing
file keeps its mode, devices, FIFOs and `-` are written through, a directory name or one file given twice is
refused, and every file written gets the mode a plain open() gives."""

from __future__ import annotations

import os
import stat
import threading

import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
import numpy as np

from nascompile.backend import save_onnx
from nascompile.errors import OutputPathError
from nascompile.files import staged_outputs, write_text

from conftest import EXAMPLES, run_cli


@pytest.fixture(autouse=True)
def _umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_symlink_is_followed_and_its_target_replaced(tmp_path):
    target, link = tmp_path / "real.json", tmp_path / "link.json"
    target.write_text("old")
    link.symlink_to(target.name)
    write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "real.json"]


def test_an_existing_file_keeps_its_mode_and_a_new_one_gets_open_s(tmp_path):
    kept, new = tmp_path / "kept.json", tmp_path / "new.json"
    kept.write_text("old")
    kept.chmod(0o640)
    write_text(kept, "new")
    write_text(new, "new")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640 and kept.read_text() == "new"
    assert stat.S_IMODE(new.stat().st_mode) == 0o644


def test_a_fifo_is_written_through_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(open(fifo).read()))
    reader.start()
    write_text(fifo, "through the pipe")
    reader.join(10)
    assert received == ["through the pipe"] and stat.S_ISFIFO(fifo.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_dev_null_stays_a_device():
    write_text("/dev/null", "discarded")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_dash_is_stdout(capfd):
    write_text("-", "to stdout\n")
    assert capfd.readouterr().out == "to stdout\n"


@pytest.mark.parametrize("paths, message", [(["newdir/"], "it names a directory"),
                                            (["a.onnx", "a.onnx"], "two outputs name the same file"),
                                            (["-", "-"], "two outputs name the same file")])
def test_a_directory_name_or_a_file_named_twice_is_refused(tmp_path, monkeypatch, paths, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputPathError, match=message):
        with staged_outputs(*paths):
            pass
    assert list(tmp_path.iterdir()) == []


def _model() -> onnx.ModelProto:
    weight = numpy_helper.from_array(np.ones((64, 64), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])], initializer=[weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_the_external_data_file_gets_the_models_mode(tmp_path):
    files = save_onnx(_model(), tmp_path / "m.onnx", external_data_threshold=0)
    assert [f.name for f in files] == ["m.onnx", "m.onnx.data"]
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o644}


def test_external_data_cannot_go_to_a_stream(capfd):
    with pytest.raises(OutputPathError, match="need an external data file beside it"):
        save_onnx(_model(), "-", external_data_threshold=0)
    assert capfd.readouterr().out == ""


def test_compile_to_stdout_sends_the_model_to_stdout_and_the_summary_to_stderr(tmp_path):
    proc = run_cli("compile", str(EXAMPLES / "nb201_cell.py"), "-o", "-", cwd=tmp_path, text=False)
    assert proc.returncode == 0, proc.stderr
    model = onnx.load_model_from_string(proc.stdout)
    onnx.checker.check_model(model)
    assert b"architecture sha256:" in proc.stderr and list(tmp_path.iterdir()) == []


SIGTERM_DURING_VALIDATION = """
import os, pathlib, signal, torch
from nascompile import nn as nc

OUT = pathlib.Path(__file__).parent / "out"

class Net(nc.Supernet):
    def __init__(self):
        super().__init__()
        self.a = nc.LayerChoice({"relu": torch.nn.ReLU(), "skip": torch.nn.Identity()}, label="a")

    def forward(self, x):
        if any(OUT.glob(".nascompile-*")):  # the model is staged and being validated: terminate now
            os.kill(os.getpid(), signal.SIGTERM)
        return self.a(x)

def build():
    return Net()

def example_inputs():
    return (torch.randn(1, 4),)
"""


@pytest.mark.parametrize("log_json", [False, True])
def test_sigterm_while_validating_leaves_no_staging_folder_and_no_file(tmp_path, log_json):
    (tmp_path / "spec.py").write_text(SIGTERM_DURING_VALIDATION)
    (tmp_path / "out").mkdir()
    proc = run_cli("compile", str(tmp_path / "spec.py"), "-o", str(tmp_path / "out" / "m.onnx"), "--validate",
                   *(["--log-json"] if log_json else []))
    assert proc.returncode == 143, proc.stderr
    assert list((tmp_path / "out").iterdir()) == []
    last = proc.stderr.strip().splitlines()[-1]
    assert ('"kind": "terminated"' if log_json else "nascompile: terminated: stopped by SIGTERM") in last


def test_a_dot_that_hangs_is_stopped_and_leaves_nothing(tmp_path, monkeypatch):
    import shutil

    from nascompile import plot
    from nascompile.errors import RenderError

    hanging = tmp_path / "dot"
    hanging.write_text("#!/bin/sh\nexec sleep 30\n")
    hanging.chmod(0o755)
    monkeypatch.setattr(shutil, "which", lambda name: str(hanging))
    monkeypatch.setattr(plot, "DOT_TIMEOUT", 0.5)
    (tmp_path / "out").mkdir()
    with pytest.raises(RenderError, match="did not draw .* within 0.5 s and was stopped"):
        plot.render("digraph { a -> b }", tmp_path / "out" / "cells.svg")
    assert list((tmp_path / "out").iterdir()) == []
