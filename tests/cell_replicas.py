"""Small supernets whose cells have no preprocessing conv, so only the module calls tell the cells apart.

- `DartsNoPre`: wired the DARTS way (`s0, s1 = s1, cell(s0, s1, weights)`), a normal, a reduction and a
  normal cell; every candidate reads the cell's inputs as they are (2c channels) and makes c channels.
- `NB201Net`: NAS-Bench-201 search cells in sequence, each called on the previous one's output, the
  mixture written inline in the cell's forward (as D-X-Y/AutoDL-Projects writes it).
- `SwappedNet`: DARTS cells whose forward takes `(s1, s0)`: the previous cell's output first.

Each has its own `genotype()` (as its family computes it) to compare nascompile's reading with. As a
SPEC: `nascompile compile tests/cell_replicas.py` compiles `DartsNoPre`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PRIMITIVES = ["none", "conv_1x1", "conv_3x3", "conv_5x5"]
NB201_OPS = ["none", "skip_connect", "conv_3x3", "avg_pool_3x3"]


class Zero(nn.Module):
    def __init__(self, c: int, stride: int):
        super().__init__()
        self.c, self.stride = c, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, : self.c, :: self.stride, :: self.stride].mul(0.0)


def conv_op(name: str, c_in: int, c: int, stride: int) -> nn.Module:
    if name == "none":
        return Zero(c, stride)
    k = int(name[-1])
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c, k, stride, k // 2, bias=False), nn.BatchNorm2d(c))


class MixedOp(nn.Module):
    def __init__(self, c_in: int, c: int, stride: int):
        super().__init__()
        self._ops = nn.ModuleList(conv_op(p, c_in, c, stride) for p in PRIMITIVES)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return sum(w * op(x) for w, op in zip(weights, self._ops))


class Cell(nn.Module):
    """Edges read s0 and s1 directly (`strides`: of the edges from each); output: cat of the 2 nodes."""

    def __init__(self, c: int, strides: tuple[int, int]):
        super().__init__()
        self._ops = nn.ModuleList(MixedOp(2 * c if j < 2 else c, c, strides[j] if j < 2 else 1)
                                  for i in range(2) for j in range(2 + i))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states = [s0, s1]
        offset = 0
        for _ in range(2):
            s = sum(self._ops[offset + j](h, weights[offset + j]) for j, h in enumerate(states))
            offset += len(states)
            states.append(s)
        return torch.cat(states[-2:], dim=1)


class SwappedCell(Cell):
    def forward(self, s1: torch.Tensor, s0: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return super().forward(s1, s0, weights)  # states [s1, s0]: numbered as the arguments come


def parse_darts(weights: torch.Tensor) -> list[tuple[str, int]]:
    """DARTS's `genotype()` parse: per node the 2 strongest edges by their best non-zero op."""
    gene, start = [], 0
    for i in range(2):
        w = weights[start:start + 2 + i]
        best = w[:, 1:].max(dim=1).values
        for j in sorted(range(2 + i), key=lambda j: -best[j])[:2]:
            gene.append((PRIMITIVES[1 + int(w[j, 1:].argmax())], j))
        start += 2 + i
    return gene


class DartsNoPre(nn.Module):
    cell_type = Cell
    strides = [(1, 1), (2, 2), (2, 1)]  # per cell, of the edges from its first and second argument

    def __init__(self, c: int = 4, seed: int = 0):
        super().__init__()
        self.stem = nn.Conv2d(3, 2 * c, 3, padding=1)
        # normal; reduction; normal after it, whose c_{k-2} is twice as large (its edges stride 2)
        self.cells = nn.ModuleList(self.cell_type(c, strides) for strides in self.strides)
        self.reduction = [False, True, False]
        g = torch.Generator().manual_seed(seed)
        self.alphas_normal = nn.Parameter(torch.randn(5, len(PRIMITIVES), generator=g))
        self.alphas_reduce = nn.Parameter(torch.randn(5, len(PRIMITIVES), generator=g))
        self.head = nn.Linear(2 * c, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell, reduction in zip(self.cells, self.reduction):
            s0, s1 = s1, self.call(cell, s0, s1, F.softmax(self.alphas_reduce if reduction else self.alphas_normal, -1))
        return self.head(s1.mean((2, 3)))

    def call(self, cell: nn.Module, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return cell(s0, s1, weights)

    def genotype(self) -> tuple[list, list]:
        return parse_darts(F.softmax(self.alphas_normal, -1)), parse_darts(F.softmax(self.alphas_reduce, -1))


class SwappedNet(DartsNoPre):
    cell_type = SwappedCell
    strides = [(1, 1), (2, 2), (1, 2)]

    def call(self, cell: nn.Module, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return cell(s1, s0, weights)


class NB201Cell(nn.Module):
    def __init__(self, c: int, edge_keys: list[str]):
        super().__init__()
        self.edges = nn.ModuleDict({key: nn.ModuleList(nb201_op(p, c) for p in NB201_OPS) for key in edge_keys})
        self.edge2index = {key: i for i, key in enumerate(edge_keys)}

    def forward(self, inputs: torch.Tensor, weightss: torch.Tensor) -> torch.Tensor:
        nodes = [inputs]
        for i in range(1, 4):
            inter = []
            for j in range(i):
                weights = weightss[self.edge2index[f"{i}<-{j}"]]
                inter.append(sum(layer(nodes[j]) * w for layer, w in zip(self.edges[f"{i}<-{j}"], weights)))
            nodes.append(sum(inter))
        return nodes[-1]


def nb201_op(name: str, c: int) -> nn.Module:
    if name == "none":
        return Zero(c, 1)
    if name == "skip_connect":
        return nn.Identity()
    if name == "conv_3x3":
        return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
    return nn.AvgPool2d(3, 1, 1, count_include_pad=False)


class NB201Net(nn.Module):
    decision_rules = "nb201"  # NAS-Bench-201's derivation: every edge kept, `none` may win

    def __init__(self, c: int = 4, n_cells: int = 3, seed: int = 1):
        super().__init__()
        self.op_names = NB201_OPS
        self.edge_keys = sorted(f"{i}<-{j}" for i in range(1, 4) for j in range(i))
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.cells = nn.ModuleList(NB201Cell(c, self.edge_keys) for _ in range(n_cells))
        g = torch.Generator().manual_seed(seed)
        self.arch_parameters = nn.Parameter(torch.randn(len(self.edge_keys), len(NB201_OPS), generator=g))
        self.head = nn.Linear(c, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alphas = F.softmax(self.arch_parameters, dim=-1)
        h = self.stem(x)
        for cell in self.cells:
            h = cell(h, alphas)
        return self.head(h.mean((2, 3)))

    def genotype(self) -> str:
        """NAS-Bench-201's string: per node, each edge's argmax op (`none` included)."""
        return "+".join("|" + "|".join(f"{self.op_names[int(self.arch_parameters[self.edge_keys.index(f'{i}<-{j}')].argmax())]}~{j}"
                                       for j in range(i)) + "|" for i in range(1, 4))


def build() -> nn.Module:
    return DartsNoPre()


def example_inputs() -> tuple[torch.Tensor]:
    return (torch.randn(2, 3, 8, 8),)
