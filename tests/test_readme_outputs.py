"""The README shows real output: every block after an `<!-- output: CMD -->` marker is what CMD prints now,
and the committed diagram `docs/darts_cells.svg` draws the cells the DARTS example derives now."""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET

import pytest

import nascompile
from nascompile.plot import cells_dot

from conftest import ROOT, example

sys.path.insert(0, str(ROOT / "tools"))
from refresh_readme import OUTPUT_BLOCK, run_shown_command  # noqa: E402

BLOCKS = OUTPUT_BLOCK.findall((ROOT / "README.md").read_text())


def test_the_readme_has_output_blocks():
    assert len(BLOCKS) >= 5 and all(marker == shown for marker, shown, _ in BLOCKS)


@pytest.mark.parametrize("command,expected", [(cmd, out) for cmd, _, out in BLOCKS], ids=[c for c, _, _ in BLOCKS])
def test_readme_output_is_what_the_command_prints(command, expected):
    proc = run_shown_command(command)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected, "stale README output: run `python tools/refresh_readme.py`"


def test_the_committed_diagram_draws_the_derived_cells():
    module = example("darts_cnn")
    result = nascompile.compile(module.build(), module.example_inputs())
    visible = "\n".join(line for line in cells_dot(result.architecture).splitlines() if "invis" not in line)
    expected = set(re.findall(r'"(cell\d+_s\d+)" -> "(cell\d+_(?:s\d+|out))"(?: \[label="(\w*)")?', visible))
    svg = "{http://www.w3.org/2000/svg}"
    drawn = set()
    for g in ET.parse(ROOT / "docs" / "darts_cells.svg").getroot().iter(f"{svg}g"):
        if g.get("class") == "edge":
            source, target = g.find(f"{svg}title").text.replace("&#45;", "-").split("->")
            label = g.find(f"{svg}text")
            drawn.add((source, target, label.text if label is not None else ""))
    assert drawn == expected and len(drawn) == 2 * (8 + 4)
