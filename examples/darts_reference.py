"""A supernet written the way DARTS's reference code (`cnn/model_search.py`) writes it — no nascompile API.

- `MixedOp` holds its candidates in `_ops` (a ModuleList in `PRIMITIVES` order, `none` first; pools are
  followed by `BatchNorm2d(affine=False)`) and is called as `op(x, weights)`.
- The network keeps `alphas_normal` / `alphas_reduce` as plain tensors (not registered parameters), one
  row per edge, and passes `F.softmax(alphas, dim=-1)` to each cell; every normal cell shares
  `alphas_normal`, every reduction cell `alphas_reduce`.
- A cell node is Python's `sum(...)` over one mixed op per earlier state (so the sum starts from 0).
- Search-time extras: an auxiliary head and drop-path, both active in training only, and a
  `(logits, logits_aux)` output.

nascompile recognizes `MixedOp` by its structure, reads the logits behind the softmax (labels
`alphas_normal[3]`, ...), keeps the two strongest edges of every node and reports DARTS's genotype:

    nascompile compile examples/darts_reference.py -o darts.onnx --validate
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from darts_ops import OPS, PRIMITIVES, AuxiliaryHead, FactorizedReduce, ReLUConvBN, drop_path, \
    randomize_batch_norm_statistics


class MixedOp(nn.Module):
    def __init__(self, c: int, stride: int):
        super().__init__()
        self._ops = nn.ModuleList()
        for primitive in PRIMITIVES:
            op = OPS[primitive](c, stride, False)
            if "pool" in primitive:
                op = nn.Sequential(op, nn.BatchNorm2d(c, affine=False))
            self._ops.append(op)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return sum(w * op(x) for w, op in zip(weights, self._ops))


class Cell(nn.Module):
    def __init__(self, steps: int, multiplier: int, c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = FactorizedReduce(c_pp, c, affine=False) if reduction_prev else \
            ReLUConvBN(c_pp, c, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0, affine=False)
        self._steps = steps
        self._multiplier = multiplier
        self._ops = nn.ModuleList()
        for i in range(steps):
            for j in range(2 + i):
                self._ops.append(MixedOp(c, 2 if reduction and j < 2 else 1))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor, drop_prob: float = 0.) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self._steps):
            s = sum(self._ops[offset + j](h, weights[offset + j]) for j, h in enumerate(states))
            if self.training and drop_prob > 0.:
                s = drop_path(s, drop_prob)
            offset += len(states)
            states.append(s)
        return torch.cat(states[-self._multiplier:], dim=1)


class Network(nn.Module):
    def __init__(self, c: int = 16, n_classes: int = 10, layers: int = 8, steps: int = 4, multiplier: int = 4,
                 stem_multiplier: int = 3, auxiliary: bool = True):
        super().__init__()
        self._steps = steps
        self._multiplier = multiplier
        self._auxiliary = auxiliary
        self.drop_path_prob = 0.2
        c_curr = stem_multiplier * c
        self.stem = nn.Sequential(nn.Conv2d(3, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
        c_pp, c_p, c_curr = c_curr, c_curr, c
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c_curr *= 2
            self.cells.append(Cell(steps, multiplier, c_pp, c_p, c_curr, reduction, reduction_prev))
            reduction_prev = reduction
            c_pp, c_p = c_p, multiplier * c_curr
            if i == 2 * layers // 3 and auxiliary:
                self.auxiliary_head = AuxiliaryHead(c_p, n_classes)
        self._aux_position = 2 * layers // 3
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, n_classes)
        self._initialize_alphas()

    def _initialize_alphas(self) -> None:
        k = sum(2 + i for i in range(self._steps))
        self.alphas_normal = (1e-3 * torch.randn(k, len(PRIMITIVES))).requires_grad_()
        self.alphas_reduce = (1e-3 * torch.randn(k, len(PRIMITIVES))).requires_grad_()
        self._arch_parameters = [self.alphas_normal, self.alphas_reduce]

    def arch_parameters(self) -> list[torch.Tensor]:
        return self._arch_parameters

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits_aux = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            weights = F.softmax(self.alphas_reduce if cell.reduction else self.alphas_normal, dim=-1)
            s0, s1 = s1, cell(s0, s1, weights, self.drop_path_prob)
            if i == self._aux_position and self._auxiliary and self.training:
                logits_aux = self.auxiliary_head(s1)
        out = self.global_pooling(s1)
        logits = self.classifier(out.view(out.size(0), -1))
        return logits, logits_aux


def build(layers: int = 8, c: int = 16, seed: int = 0, searched: bool = True) -> Network:
    """The supernet with seeded weights and BatchNorm statistics.

    `searched=True` draws the alphas from N(0, 1) (standing in for a finished search); False keeps
    DARTS's initial `1e-3 * randn`.
    """
    torch.manual_seed(seed)
    model = Network(c=c, layers=layers)
    if searched:
        with torch.no_grad():
            for alphas in model.arch_parameters():
                alphas.normal_()
    return randomize_batch_norm_statistics(model, seed).eval()


def example_inputs() -> tuple[torch.Tensor, ...]:
    return (torch.randn(1, 3, 32, 32),)
