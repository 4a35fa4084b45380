"""Packaging (issue 17, items 2 and 5): one onnxruntime package per documented install command, an sdist
whose tests can run, a license file and SPDX license, py.typed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
import tomllib

import pytest

from conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
ONNXRUNTIME = re.compile(r"^onnxruntime(-[a-z]+)?\b")


def _onnxruntimes(requirements: list[str]) -> list[str]:
    return [r for r in requirements if ONNXRUNTIME.match(r)]


def test_onnxruntime_comes_only_from_the_cpu_or_the_gpu_extra():
    extras = PYPROJECT["optional-dependencies"]
    assert _onnxruntimes(PYPROJECT["dependencies"]) == []
    assert [r.split(">")[0] for r in _onnxruntimes(extras["cpu"])] == ["onnxruntime"]
    assert [r.split(">")[0] for r in _onnxruntimes(extras["gpu"])] == ["onnxruntime-gpu"]
    assert all(_onnxruntimes(reqs) == [] for name, reqs in extras.items() if name not in ("cpu", "gpu"))


def test_every_documented_install_command_installs_exactly_one_onnxruntime():
    extras = PYPROJECT["optional-dependencies"]
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r'pip install[^`\n]*?-e "\.\[([a-z0-9,]+)\]"', readme)
    assert len(commands) >= 4, commands  # quick start, test command, cpu, gpu, bench
    for chosen in commands:
        packages = {r.split(">")[0] for extra in chosen.split(",") for r in _onnxruntimes(extras[extra])}
        assert len(packages) == 1, f'".[{chosen}]" installs {sorted(packages) or "no onnxruntime"}'


def test_license_file_spdx_license_and_py_typed():
    assert PYPROJECT["license"] == "MIT" and PYPROJECT["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert (ROOT / "nascompile" / "py.typed").exists()
    assert "Typing :: Typed" in PYPROJECT["classifiers"]


def test_the_sdist_carries_what_its_tests_need(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import sys; from setuptools import build_meta; "
                           "print(build_meta.build_sdist(sys.argv[1]))", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(tmp_path / proc.stdout.strip().splitlines()[-1]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    needed = {"LICENSE", "README.md", "pyproject.toml", "nascompile/py.typed", "tests/conftest.py",
              "tests/opt_cases.py", "tests/test_catalogue.py", "examples/darts_cnn.py", "examples/nb201_cell.py",
              "tools/refresh_readme.py", ".ci/run"}
    assert needed <= names, sorted(needed - names)


@pytest.mark.slow
def test_the_gpu_install_leaves_one_onnxruntime_that_lists_cuda(tmp_path):
    """The documented GPU install in a fresh venv (downloads onnxruntime-gpu, hundreds of MB: slow profile).
    A CPU-only machine lists CUDAExecutionProvider too (DESIGN.md); a second package would hide it."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", "torch==2.13.0", "-e", f"{ROOT}[gpu]"], check=True,
                   timeout=3000)
    probe = ("import json, onnxruntime; from nascompile.runtime import onnxruntime_packages; "
             "print(json.dumps([onnxruntime_packages(), onnxruntime.get_available_providers()]))")
    out = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    packages, providers = json.loads(out)
    assert packages == ["onnxruntime-gpu"] and "CUDAExecutionProvider" in providers
