"""The command line of given architectures: --arch, --build-arg, compile-many (killed and resumed, on Ray), bench."""

from __future__ import annotations

import csv
import itertools
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import EXAMPLES, ROOT, run_cli

NB201 = str(EXAMPLES / "nb201_cell.py")
OPS = ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3", "none")


def _archs(n: int) -> list[str]:
    cells = itertools.islice(itertools.product(OPS, repeat=6), 0, None, 97)
    return [f"|{a}~0|+|{b}~0|{c}~1|+|{d}~0|{e}~1|{f}~2|" for a, b, c, d, e, f in itertools.islice(cells, n)]


def _hashes(folder) -> list[tuple[str, str]]:
    lines = (folder / "manifest.jsonl").read_text().splitlines()
    return sorted((r["key"], r["sha256"]) for r in map(json.loads, lines))


def test_arch_and_build_args_on_the_command_line(tmp_path):
    spec = str(EXAMPLES / "darts_reference.py")
    genotype = run_cli("export", spec, "--format", "genotype", "--build-arg", "layers=3", "-q")
    assert genotype.returncode == 0, genotype.stderr
    out = tmp_path / "eval.onnx"
    done = run_cli("compile", spec, "--build-arg", "layers=5", "--build-arg", "c=8", "--arch", genotype.stdout.strip(),
                   "-o", str(out), "--validate", "-q")
    assert done.returncode == 0, done.stderr
    assert out.is_file()
    typo = run_cli("compile", NB201, "--arch", "|nor_conv_3x4~0|+|none~0|none~1|+|none~0|none~1|none~2|", "-o",
                   str(tmp_path / "x.onnx"))
    assert typo.returncode == 6 and "did you mean 'nor_conv_3x3'" in typo.stderr
    assert not (tmp_path / "x.onnx").exists()
    unknown = run_cli("compile", NB201, "--build-arg", "cells=3", "-o", str(tmp_path / "x.onnx"))
    assert unknown.returncode == 3 and "does not take the build arguments ['cells']" in unknown.stderr
    malformed = run_cli("compile", NB201, "--build-arg", "3=x", "-o", str(tmp_path / "x.onnx"))
    assert malformed.returncode == 2 and "must be NAME=VALUE" in malformed.stderr


def test_killed_run_resumes_to_a_complete_manifest_then_bench(tmp_path):
    archs = tmp_path / "archs.txt"
    archs.write_text("\n".join(_archs(40)) + "\n")
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "nascompile", "compile-many", NB201, "--archs", str(archs), "--out-dir", str(out),
               "-q"]
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    manifest = out / "manifest.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not manifest.exists() or manifest.read_text().count("\n") < 3):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = manifest.read_text().count("\n")
    assert 3 <= partial < 40
    resumed = run_cli("compile-many", NB201, "--archs", str(archs), "--out-dir", str(out), "--resume",
                      "--validate-sample", "0.1", "--log-json")
    assert resumed.returncode == 0, resumed.stderr
    events = [json.loads(line) for line in resumed.stderr.splitlines()]
    summary = next(e for e in events if e["event"] == "summary")
    assert summary["skipped"] >= partial and summary["ok"] == 40
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert sorted(r["key"] for r in records) == sorted(_archs(40)) and all(r["status"] == "ok" for r in records)
    assert sorted(p.name for p in out.glob("*.onnx")) == sorted({r["path"] for r in records})
    assert not list(out.glob(".nascompile-*"))

    bench = run_cli("bench", str(out), "--rounds", "2", "--runs", "2", "--warmup", "1", "--device", "cpu",
                    "--report", str(tmp_path / "latency.svg"))
    assert bench.returncode == 0, bench.stderr
    rows = list(csv.DictReader((out / "latency.csv").open()))
    assert len(rows) == len({r["path"] for r in records}) and {r["key"] for r in rows} <= set(_archs(40))
    assert all(float(r["median_ms"]) > 0 and int(r["macs"]) > 0 for r in rows)
    assert (tmp_path / "latency.svg").read_text().lstrip().startswith("<?xml")


@pytest.mark.skipif(not os.environ.get("CI") and not __import__("importlib").util.find_spec("ray"),
                    reason="needs the ray extra (installed in CI)")
def test_ray_with_two_workers_gives_the_local_manifest(tmp_path):
    archs = tmp_path / "archs.txt"
    archs.write_text("\n".join(_archs(6)) + "\n")
    local = run_cli("compile-many", NB201, "--archs", str(archs), "--out-dir", str(tmp_path / "local"), "-q")
    on_ray = run_cli("compile-many", NB201, "--archs", str(archs), "--out-dir", str(tmp_path / "ray"), "--ray",
                     "--jobs", "2", "-q", env={"RAY_USAGE_STATS_ENABLED": "0"})
    assert local.returncode == 0 and on_ray.returncode == 0, on_ray.stderr
    assert _hashes(tmp_path / "local") == _hashes(tmp_path / "ray")
