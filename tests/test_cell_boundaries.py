"""Cells read off the module calls the lift recorded: cells that no preprocessing conv separates stay apart."""

from __future__ import annotations

import json

import pytest
import torch

import nascompile
from nascompile.arch import describe
from nascompile.ir.text import parse_graph

from cell_replicas import DartsNoPre, NB201Net, SwappedNet, example_inputs
from conftest import ROOT, run_cli


def _edges(cell):
    return [[(e.op, e.source, e.label) for e in node.edges] for node in cell.nodes]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_darts_wired_cells_without_preprocessing_are_three_cells_with_the_models_genotype(seed):
    model = DartsNoPre(seed=seed)
    result = nascompile.compile(model, example_inputs())
    cells = result.architecture.cells
    assert [c.name for c in cells] == ["cells.0", "cells.1", "cells.2"]
    assert [len(c.inputs) for c in cells] == [2, 2, 2] and [len(c.nodes) for c in cells] == [2, 2, 2]
    assert cells[0].inputs == ["stem", "stem"]  # cell(s, s): one value, two states
    assert cells[2].inputs == ["cells.0.cat", "cells.1.cat"]
    assert [c.reduces for c in cells] == [False, True, False]  # the normal cell after it reads a larger c_{k-2}
    normal, reduce = model.genotype()
    assert result.genotype.normal == normal and result.genotype.reduce == reduce
    assert result.genotype.normal_concat == range(2, 4)


def test_nb201_search_cells_in_sequence_are_single_input_cells_with_the_models_arch_string():
    for seed in (1, 2, 3):
        model = NB201Net(seed=seed)
        result = nascompile.compile(model, example_inputs())
        cells = result.architecture.cells
        assert [c.name for c in cells] == ["cells.0", "cells.1", "cells.2"]
        assert [len(c.inputs) for c in cells] == [1, 1, 1] and [len(c.nodes) for c in cells] == [3, 3, 3]
        assert [len(n.edges) for n in cells[0].nodes] == [1, 2, 3]  # node 1 is `sum([edge(x)])`: one edge
        assert result.arch_string == model.genotype()


def test_cell_inputs_are_numbered_by_the_cells_arguments_not_by_trace_order():
    # SwappedCell.forward(s1, s0): its first argument, the previous cell's output, is state 0
    swapped = nascompile.compile(SwappedNet(), example_inputs()).architecture.cells
    plain = nascompile.compile(DartsNoPre(), example_inputs()).architecture.cells
    assert swapped[2].inputs == ["cells.1.cat", "cells.0.cat"] and plain[2].inputs == ["cells.0.cat", "cells.1.cat"]
    for cell in swapped[1:]:
        first = cell.nodes[0].edges  # alphas row 0 reads the cell's first state, s1, now argument 0
        assert {e.label: e.source for e in first} == {"alphas_normal[0]" if not cell.reduces else "alphas_reduce[0]": 0,
                                                      "alphas_normal[1]" if not cell.reduces else "alphas_reduce[1]": 1}


def test_hand_written_ir_without_recorded_calls_is_grouped_by_connectivity():
    graph = parse_graph("""graph {
  %x = input() {index=0}
  %a = layer_choice(%x) {candidates=["conv", "pool"], label="e0", modules=["c.0", "c.1"]} params(logits: f32[2])
  %b = layer_choice(%x) {candidates=["conv", "pool"], label="e1", modules=["c.0", "c.1"]} params(logits: f32[2])
  %n0 = sum(%a, %b)
  %output = output(%n0)
}""")
    assert "calls" not in graph.graph
    cells = describe(graph).cells
    assert len(cells) == 1 and cells[0].inputs == ["x"] and [e.source for e in cells[0].nodes[0].edges] == [0, 0]


def test_cli_inspect_and_architecture_json_show_three_cells(tmp_path):
    out = tmp_path / "net.onnx"
    spec = ROOT / "tests" / "cell_replicas.py"
    assert run_cli("compile", str(spec), "-o", str(out)).returncode == 0
    shown = run_cli("inspect", str(out), "--json")
    assert shown.returncode == 0, shown.stderr
    description = json.loads(shown.stdout)
    cells = description.get("architecture", description)["cells"]
    assert [c["name"] for c in cells] == ["cells.0", "cells.1", "cells.2"]
    assert [len(c["inputs"]) for c in cells] == [2, 2, 2]
    assert "normal" in json.dumps(description)
