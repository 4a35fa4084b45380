"""Rewrite the README's output blocks with what their commands print now.

Every `<!-- output: CMD -->` marker in README.md is followed by a fenced block holding `$ CMD` and that
command's stdout; `tests/test_readme_outputs.py` fails when one is stale.  Run this from the repository
root after a change that alters a shown output:  python tools/refresh_readme.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
OUTPUT_BLOCK = re.compile(r"<!-- output: (.+?) -->\n```\n\$ (.+?)\n(.*?)```\n", re.S)


def run_shown_command(command: str) -> subprocess.CompletedProcess:
    """Run a README command as a reader would, in a scratch directory that sees examples/."""
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "examples").symlink_to(ROOT / "examples")
        (Path(scratch) / "out").mkdir()  # where the README's commands write, as in a clone (out/.gitignore)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        shell = f'nascompile() {{ "{sys.executable}" -m nascompile "$@"; }}; {command}'
        return subprocess.run(["bash", "-c", shell], cwd=scratch, env=env, capture_output=True, text=True,
                              timeout=300)


def refreshed(text: str) -> str:
    def block(match: re.Match) -> str:
        command = match.group(1)
        proc = run_shown_command(command)
        if proc.returncode != 0:
            sys.exit(f"README command failed ({proc.returncode}): {command}\n{proc.stderr}")
        return f"<!-- output: {command} -->\n```\n$ {command}\n{proc.stdout}```\n"

    return OUTPUT_BLOCK.sub(block, text)


if __name__ == "__main__":
    README.write_text(refreshed(README.read_text()))
