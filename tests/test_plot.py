"""Cell and IR diagrams: DOT text checked directly, images rendered by Graphviz parsed back.

Rendering needs Graphviz's `dot`: these tests skip without it on a developer's machine, and fail in CI
(`CI` set), whose `.ci/run` installs it (unless that install failed: then it says so and they skip).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import xml.etree.ElementTree as ET
from collections import Counter

import pytest

import nascompile
from nascompile.arch import Architecture, Cell, CellNode, Edge
from nascompile.errors import RenderError
from nascompile.plot import cells_dot, compact_names, render

from conftest import EXAMPLES, example, run_cli

needs_dot = pytest.mark.skipif(shutil.which("dot") is None and (not os.environ.get("CI") or
                                                               os.environ.get("NASCOMPILE_SKIP_DOT_TESTS")),
                               reason="Graphviz's dot is not installed (CI installs it)")
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def darts():
    module = example("darts_cnn")
    return nascompile.compile(module.build(), module.example_inputs())


def svg_groups(path) -> dict[str, list[tuple[str, list[str]]]]:
    """class ("node", "edge", "cluster") -> [(title, texts)] of a Graphviz SVG."""
    groups: dict[str, list] = {}
    for g in ET.parse(path).getroot().iter(f"{SVG}g"):
        title = g.find(f"{SVG}title")
        if g.get("class") in ("node", "edge", "cluster") and title is not None:
            texts = [t.text for t in g.iter(f"{SVG}text")]
            groups.setdefault(g.get("class"), []).append((title.text, texts))
    return groups


def small_cell() -> Architecture:
    nodes = [CellNode("n0", [Edge("sep_conv_3x3", 0, "a"), Edge("skip_connect", 1, "b")]),
             CellNode("n1", [Edge("identity", 2, None)])]
    return Architecture([Cell("cells.0", ["x", "y"], ["pre0", "pre1"], nodes, concat=[2, 3])])


def test_cell_dot_has_inputs_numbered_nodes_labelled_edges_and_the_concat():
    text = cells_dot(small_cell())
    assert '"cell0_s0" [label="c_{k-2}"' in text and '"cell0_s1" [label="c_{k-1}"' in text
    assert '"cell0_s2" [label="0"' in text and '"cell0_s3" [label="1"' in text
    assert '"cell0_s0" -> "cell0_s2" [label="sep_conv_3x3"];' in text
    assert '"cell0_s2" -> "cell0_s3" [label="identity", style="dashed"];' in text  # a fixed edge
    assert '"cell0_out" [label="c_{k}"' in text and '"cell0_s3" -> "cell0_out"' in text
    assert 'label="cell: cells.0"' in text


def test_no_cells_is_a_clear_error():
    with pytest.raises(RenderError, match="no cells to draw"):
        cells_dot(Architecture())


def test_names_differing_in_a_final_index_are_compacted():
    assert compact_names(["cells.0", "cells.1", "cells.3"]) == "cells.{0,1,3}"
    assert compact_names(["a.0", "b.1"]) == "a.0, b.1" and compact_names(["cells.2"]) == "cells.2"


@needs_dot
def test_darts_cells_svg_shows_both_cells_with_the_chosen_ops(darts, tmp_path):
    path = render(cells_dot(darts.architecture), tmp_path / "cells.svg")
    groups = svg_groups(path)
    clusters = [texts[0] for _, texts in groups["cluster"]]
    assert sorted(clusters) == ["normal cell: cells.{0,1,3,4,6,7} (6 cells)", "reduction cell: cells.{2,5} (2 cells)"]
    labels = Counter(texts[0] for _, texts in groups["node"])
    assert labels == Counter({"c_{k-2}": 2, "c_{k-1}": 2, "0": 2, "1": 2, "2": 2, "3": 2, "c_{k}": 2})
    edges = {title.replace("&#45;", "-"): texts for title, texts in groups["edge"]}
    for i, (cell, _) in enumerate(darts.architecture.distinct()):
        for k, node in enumerate(cell.nodes):
            for edge in node.edges:
                assert edges[f"cell{i}_s{edge.source}->cell{i}_s{2 + k}"] == [edge.op]
        assert sum(title.startswith(f"cell{i}_") and title.endswith("_out") for title in edges) == 4  # concat


@needs_dot
def test_png_and_dot_outputs(darts, tmp_path):
    png = render(cells_dot(darts.architecture), tmp_path / "cells.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    assert width > 400 and height > 200
    dot = render(cells_dot(darts.architecture), tmp_path / "cells.dot").read_text()
    assert dot.startswith("digraph cells {")


def test_missing_graphviz_and_unknown_formats_are_clear_errors(darts, tmp_path, monkeypatch):
    with pytest.raises(RenderError, match="use one of .svg, .png"):
        render("digraph {}", tmp_path / "cells.jpg")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RenderError, match="needs Graphviz's `dot` program"):
        render(cells_dot(darts.architecture), tmp_path / "cells.svg")
    assert not (tmp_path / "cells.svg").exists()
    render(cells_dot(darts.architecture), tmp_path / "cells.gv")  # DOT text needs no Graphviz


@needs_dot
def test_plot_command_draws_cells_and_the_ir_after_a_pass(tmp_path):
    spec = str(EXAMPLES / "nb201_cell.py")
    out = tmp_path / "cells.svg"
    proc = run_cli("plot", spec, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout and "  render " in proc.stderr
    edge_labels = Counter(texts[0] for _, texts in svg_groups(out)["edge"] if texts)
    assert sum(edge_labels.values()) == 6  # NAS-Bench-201: every edge of the 4-node cell kept
    ir = tmp_path / "ir.svg"
    proc = run_cli("plot", spec, "--ir", "darts-choice", "-o", str(ir), "-q")
    assert proc.returncode == 0, proc.stderr
    texts = [t for _, ts in svg_groups(ir)["node"] for t in ts]
    assert "IR after darts-choice" in ET.parse(ir).getroot().find(f"{SVG}g").find(f"{SVG}text").text
    assert texts.count("layer_choice") == 18 and any(re.fullmatch(r"edge_1_0 = \w+", t) for t in texts)
    proc = run_cli("plot", spec, "--ir", "-o", str(tmp_path / "final.svg"), "-q")
    assert proc.returncode == 0 and "layer_choice" not in (tmp_path / "final.svg").read_text()
    proc = run_cli("plot", spec, "--ir", "no-such-pass", "-o", str(ir), "-q")
    assert proc.returncode == 14 and "--ir 'no-such-pass' names no pass" in proc.stderr
