"""The derived architecture (cells, nodes, edges) read off the decided IR."""

from __future__ import annotations

import torch

import nascompile

from conftest import example


def test_darts_cells_have_two_inputs_four_nodes_and_two_distinct_kinds():
    module = example("darts_cnn")
    arch = nascompile.compile(module.build(), module.example_inputs()).architecture
    assert len(arch.cells) == 8
    kinds = arch.distinct()
    assert [names for _, names in kinds] == [["cells.0", "cells.1", "cells.3", "cells.4", "cells.6", "cells.7"],
                                             ["cells.2", "cells.5"]]
    for cell, _ in kinds:
        assert len(cell.inputs) == 2 and len(cell.nodes) == 4 and cell.concat == [2, 3, 4, 5]
        assert all(len(node.edges) == 2 for node in cell.nodes)
        assert all(edge.source < 2 + i for i, node in enumerate(cell.nodes) for edge in node.edges)


def test_an_input_that_lost_every_edge_keeps_its_number():
    # Every edge reading c_{k-2} (rows 0, 2, 5, 9 of the alphas) is made the weakest, and each node keeps one
    # edge: no kept edge reads input 0, yet edges from c_{k-1} are still numbered 1, as DARTS numbers them.
    module = example("darts_reference")
    model = module.build(layers=3, c=4)
    with torch.no_grad():
        for alphas in model.arch_parameters():
            for row in (0, 2, 5, 9):
                alphas[row, 1:] = -10
    result = nascompile.compile(model, (torch.randn(1, 3, 32, 32),), max_final_edges=1)
    for cell in result.architecture.cells:
        assert len(cell.inputs) == 2 and cell.concat == [2, 3, 4, 5]
        assert all(edge.source != 0 for node in cell.nodes for edge in node.edges)
    normal = [(e.op, e.source) for node in result.architecture.cells[0].nodes for e in node.edges]
    assert normal == result.genotype.normal
