"""The DARTS CIFAR-10 search space (Liu et al., 2019), written with `nascompile.nn`.

8 cells with C=16 initial channels, 4 nodes per cell, reduction cells at 1/3 and 2/3 of the depth.
Every edge is a `LayerChoice` over the 7 DARTS ops (the zero op `none` is the implicit last logit);
every node is an `InputChoice(n_chosen=2)` over its incoming edges, so the two strongest edges survive,
as in DARTS's `genotype()`. Edge labels are shared by all normal cells and by all reduction cells
(`normal_n2_p0`, ...), so each cell type has one set of alphas, as in DARTS.

    nascompile compile examples/darts_cnn.py -o darts.onnx --validate
"""

from __future__ import annotations

import torch
from torch import nn

from darts_ops import DilConv, FactorizedReduce, PoolBN, ReLUConvBN, SepConv  # the DARTS op set, shared

from nascompile import nn as nc

OPS = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")


def candidate_ops(c: int, stride: int) -> dict[str, nn.Module]:
    """The 7 DARTS ops of one edge, search-time style (affine=False); the zero op is the implicit slot."""
    return {
        "max_pool_3x3": PoolBN("max", c, stride, affine=False),
        "avg_pool_3x3": PoolBN("avg", c, stride, affine=False),
        "skip_connect": nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine=False),
        "sep_conv_3x3": SepConv(c, c, 3, stride, 1, affine=False),
        "sep_conv_5x5": SepConv(c, c, 5, stride, 2, affine=False),
        "dil_conv_3x3": DilConv(c, c, 3, stride, 2, 2, affine=False),
        "dil_conv_5x5": DilConv(c, c, 5, stride, 4, 2, affine=False),
    }


class Node(nn.Module):
    """One cell node: an edge (LayerChoice) from every earlier state, two of them kept."""

    def __init__(self, node_id: str, n_prev: int, c: int, n_strided: int):
        super().__init__()
        labels = [f"{node_id}_p{j}" for j in range(n_prev)]
        self.edges = nn.ModuleList(
            nc.LayerChoice(candidate_ops(c, 2 if j < n_strided else 1), label=label) for j, label in enumerate(labels))
        self.input_switch = nc.InputChoice(n_prev, n_chosen=2, label=f"{node_id}_switch", choose_from=labels)

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        return self.input_switch([edge(s) for edge, s in zip(self.edges, states)])


class Cell(nn.Module):
    def __init__(self, n_nodes: int, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        self.preproc0 = (FactorizedReduce(c_pp, c, affine=False) if reduction_prev
                         else ReLUConvBN(c_pp, c, 1, 1, 0, affine=False))
        self.preproc1 = ReLUConvBN(c_p, c, 1, 1, 0, affine=False)
        kind = "reduce" if reduction else "normal"
        self.nodes = nn.ModuleList(
            Node(f"{kind}_n{i + 2}", i + 2, c, 2 if reduction else 0) for i in range(n_nodes))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preproc0(s0), self.preproc1(s1)]
        for node in self.nodes:
            states.append(node(states))
        return torch.cat(states[2:], dim=1)


class DartsNetwork(nc.Supernet):
    """The DARTS CNN search network (CIFAR-10 sized)."""

    def __init__(self, c: int = 16, n_classes: int = 10, n_layers: int = 8, n_nodes: int = 4, stem_multiplier: int = 3):
        super().__init__()
        c_curr = stem_multiplier * c
        self.stem = nn.Sequential(nn.Conv2d(3, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
        c_pp, c_p, c_curr = c_curr, c_curr, c
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(n_layers):
            reduction = i in (n_layers // 3, 2 * n_layers // 3)
            if reduction:
                c_curr *= 2
            self.cells.append(Cell(n_nodes, c_pp, c_p, c_curr, reduction, reduction_prev))
            reduction_prev = reduction
            c_pp, c_p = c_p, n_nodes * c_curr
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(torch.flatten(self.gap(s1), 1))


def build(n_layers: int = 8, seed: int = 0, searched: bool = True) -> DartsNetwork:
    """The supernet with seeded weights.

    With `searched=True` the alphas are drawn from N(0, 1) (seeded), standing in for the alphas of a
    finished search; with False they keep DARTS's initial `1e-3 * randn`.
    """
    torch.manual_seed(seed)
    model = DartsNetwork(n_layers=n_layers)
    if searched:
        with torch.no_grad():
            for _, choice in nc.layer_choices(model):
                choice.alpha.normal_()
    return model.eval()


def example_inputs() -> tuple[torch.Tensor, ...]:
    return (torch.randn(1, 3, 32, 32),)
