"""A NAS-Bench-201-style cell search space, written with `nascompile.nn`.

Each cell has 4 nodes; every earlier node feeds every later one through an edge choosing among
skip_connect, nor_conv_1x1, nor_conv_3x3 and avg_pool_3x3 (the zero op `none` is the implicit last
logit). A node sums *all* its incoming edges (`InputChoice(n_chosen=None)`), so the topology is fixed
and only the op on each edge is searched. Cells share one set of alphas; stages are joined by
ResNet reduction blocks. The supernet decides as NAS-Bench-201's search code does
(`decision_rules = "nb201"`): `none` is a real candidate, chosen where its logit is the largest.

    nascompile compile examples/nb201_cell.py -o nb201.onnx --validate
"""

from __future__ import annotations

import torch
from torch import nn

from nascompile import nn as nc


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int):
        super().__init__(nn.ReLU(), nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out))


class ResNetReduction(nn.Module):
    """The residual block NAS-Bench-201 puts between stages (stride 2, channels doubled)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class SearchCell(nn.Module):
    def __init__(self, c: int, n_nodes: int = 4):
        super().__init__()
        self.edges = nn.ModuleDict()
        self.nodes = nn.ModuleList()
        for j in range(1, n_nodes):
            labels = [f"edge_{j}_{i}" for i in range(j)]
            for label in labels:
                self.edges[label] = nc.LayerChoice({
                    "skip_connect": nn.Identity(),
                    "nor_conv_1x1": ReLUConvBN(c, c, 1, 1),
                    "nor_conv_3x3": ReLUConvBN(c, c, 3, 1),
                    "avg_pool_3x3": nn.AvgPool2d(3, 1, 1, count_include_pad=False),
                }, label=label)
            self.nodes.append(nc.InputChoice(j, n_chosen=None, label=f"node_{j}", choose_from=labels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states = [x]
        for j, node in enumerate(self.nodes, start=1):
            states.append(node([self.edges[f"edge_{j}_{i}"](states[i]) for i in range(j)]))
        return states[-1]


class NB201Network(nc.Supernet):
    decision_rules = "nb201"  # NAS-Bench-201's own derivation: `none` choosable, every edge kept

    def __init__(self, c: int = 16, cells_per_stage: int = 1, n_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        layers: list[nn.Module] = []
        for stage in range(3):
            if stage:
                layers.append(ResNetReduction(c, 2 * c))
                c *= 2
            layers += [SearchCell(c) for _ in range(cells_per_stage)]
        self.layers = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(c, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.layers(self.stem(x))))


def build(cells_per_stage: int = 1, seed: int = 0) -> NB201Network:
    """The supernet with seeded weights and N(0, 1) alphas standing in for a finished search."""
    torch.manual_seed(seed)
    model = NB201Network(cells_per_stage=cells_per_stage)
    with torch.no_grad():
        for _, choice in nc.layer_choices(model):
            choice.alpha.normal_()
    return model.eval()


def example_inputs() -> tuple[torch.Tensor, ...]:
    return (torch.randn(1, 3, 32, 32),)
