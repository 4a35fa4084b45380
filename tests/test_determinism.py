"""Determinism across processes: the same SPEC gives byte-identical ONNX, decisions and architecture files
whatever the process, its hash seed (set and dict order of strings) or the order of earlier runs."""

from __future__ import annotations

import pytest

from conftest import EXAMPLES, run_cli

OUTPUTS = ("model.onnx", "decisions.json", "architecture.json")


def compile_in_a_process(spec: str, directory, hash_seed: str) -> dict[str, bytes]:
    directory.mkdir()
    env = {"PYTHONHASHSEED": hash_seed}
    proc = run_cli("compile", spec, "-o", str(directory / "model.onnx"), "--decisions",
                   str(directory / "decisions.json"), "-q", env=env)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("export", spec, "--format", "json", "-o", str(directory / "architecture.json"), "-q", env=env)
    assert proc.returncode == 0, proc.stderr
    return {name: (directory / name).read_bytes() for name in OUTPUTS}


# one frontend by default (each case is two fresh processes, ~20 s); every bundled frontend with -m slow
@pytest.mark.parametrize("example", ["darts_reference"] + [pytest.param(name, marks=pytest.mark.slow)
                                                            for name in ("darts_cnn", "nni_darts", "archai_darts")])
def test_two_processes_write_byte_identical_files(example, tmp_path):
    spec = str(EXAMPLES / f"{example}.py")
    first = compile_in_a_process(spec, tmp_path / "first", hash_seed="1")
    second = compile_in_a_process(spec, tmp_path / "second", hash_seed="2")
    for name in OUTPUTS:
        assert first[name] == second[name], f"{name} differs between two processes"
