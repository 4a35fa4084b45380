"""A synthetic supernet as large as asked, for scaling measurements.

A chain of blocks on a tiny tensor (1 x 4 x 4 x 4): each block is a layer choice between a 1x1
convolution and a skip, added to the block's input, through a ReLU, scaled by 0.5:

    x = 0.5 * relu(x + choice_k(x))

Each block lifts to 5 IR nodes (layer_choice, sum, relu, constant, mul), so `blocks_for(n)` blocks give
a supernet IR of about n nodes. Labels repeat every `LABELS` blocks, as DARTS shares alphas between
cells, so decisions stay few while the graph grows.
"""

from __future__ import annotations

import torch
from torch import nn

from nascompile import nn as nc

NODES_PER_BLOCK = 5
LABELS = 8
CHANNELS = 4


class Chain(nc.Supernet):
    def __init__(self, n_blocks: int, c: int = CHANNELS):
        super().__init__()
        self.choices = nn.ModuleList(
            nc.LayerChoice({"conv": nn.Conv2d(c, c, 1, bias=False), "skip": nn.Identity()}, label=f"block{k % LABELS}")
            for k in range(n_blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for choice in self.choices:
            x = 0.5 * torch.relu(x + choice(x))
        return x


def blocks_for(n_nodes: int) -> int:
    return -(-n_nodes // NODES_PER_BLOCK)


def build(n_nodes: int = 100_000, seed: int = 0) -> Chain:
    """A chain whose lifted IR has at least `n_nodes` nodes, with seeded weights and alphas."""
    torch.manual_seed(seed)
    model = Chain(blocks_for(n_nodes))
    with torch.no_grad():
        for _, choice in nc.layer_choices(model):
            choice.alpha.normal_()
    return model.eval()


def example_inputs() -> tuple[torch.Tensor, ...]:
    return (torch.randn(1, CHANNELS, 4, 4),)
