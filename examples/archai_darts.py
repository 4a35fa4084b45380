"""The DARTS search space as an Archai supergraph model (`archai.supergraph`), without Archai installed.

Written after the structure of Archai's `Model`, `Cell`, `DagEdge` and DARTS `MixedOp`:
- a `MixedOp` owns its alphas: created once and registered as `alphas_arch_param`, kept for the forward
  in a one-element list `_alphas`; its `PRIMITIVES` list `none` last;
- cells after the first of their kind take the alphas of that template cell (`trainables_from`), so all
  normal cells share one set of alphas and all reduction cells another;
- a cell node is `sum(edge(states) for edge in node)` over `DagEdge`s, each reading `states[input_ids[0]]`;
- the model has two stems, auxiliary towers that run in training only, and returns `(logits, logits_aux)`.

nascompile recognizes `MixedOp` by its structure; with `--rank logit` it prunes each node to its two edges
with the largest non-zero logit, which is Archai's `Finalizers` rule:

    nascompile compile examples/archai_darts.py -o archai.onnx --rank logit --validate
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from darts_ops import OPS, AuxiliaryHead, DropPath, FactorizedReduce, ReLUConvBN, randomize_batch_norm_statistics

ARCH_PARAM_SUFFIX = "_arch_param"


class ArchModule(nn.Module):
    """A module that separates architecture parameters (owned or shared) from its weights."""

    def __init__(self):
        super().__init__()
        self._arch_params: dict[str, nn.Parameter] = {}

    def create_arch_params(self, named_params: list[tuple[str, nn.Parameter]]) -> None:
        for name, param in named_params:
            setattr(self, name + ARCH_PARAM_SUFFIX, param)  # registered here, so it is saved and trained
        self.set_arch_params(dict(named_params))

    def set_arch_params(self, arch_params: dict[str, nn.Parameter]) -> None:
        self._arch_params = arch_params

    def arch_params(self) -> dict[str, nn.Parameter]:
        return self._arch_params


class MixedOp(ArchModule):
    PRIMITIVES = ["max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
                  "dil_conv_3x3", "dil_conv_5x5", "none"]  # `none` last, so that top-1 never picks it

    def __init__(self, channels: int, stride: int, arch_params: dict[str, nn.Parameter] | None):
        super().__init__()
        self._ops = nn.ModuleList(OPS[primitive](channels, stride, False) for primitive in self.PRIMITIVES)
        if arch_params is None:
            self.create_arch_params([("alphas", nn.Parameter(1e-3 * torch.randn(len(self.PRIMITIVES))))])
        else:
            self.set_arch_params(arch_params)
        self._alphas = [self.arch_params()["alphas"]]  # a list, so PyTorch does not register it again

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        asm = F.softmax(self._alphas[0], dim=0)
        return sum(w * op(x) for w, op in zip(asm, self._ops))

    def can_drop_path(self) -> bool:
        return False


class DagEdge(nn.Module):
    def __init__(self, op: nn.Module, input_ids: list[int], droppath: bool):
        super().__init__()
        self._wrapped = self._op = op
        if droppath and getattr(op, "can_drop_path", lambda: True)():
            self._wrapped = nn.Sequential(op, DropPath())
        self.input_ids = input_ids

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        if len(self.input_ids) == 1:
            return self._wrapped(inputs[self.input_ids[0]])
        return self._wrapped([inputs[i] for i in self.input_ids])

    def op(self) -> nn.Module:
        return self._op


class ConcateChannels(nn.Module):
    def __init__(self, out_states: int):
        super().__init__()
        self.out_states = out_states

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(states[-self.out_states:], dim=1)


class Cell(nn.Module):
    def __init__(self, n_nodes: int, ch_pp: int, ch_p: int, ch: int, reduction: bool, reduction_prev: bool,
                 trainables_from: "Cell | None"):
        super().__init__()
        self.reduction = reduction
        self.s0_op = FactorizedReduce(ch_pp, ch, affine=False) if reduction_prev else \
            ReLUConvBN(ch_pp, ch, 1, 1, 0, affine=False)
        self.s1_op = ReLUConvBN(ch_p, ch, 1, 1, 0, affine=False)
        self.dag = nn.ModuleList()
        for i in range(n_nodes):
            edges = nn.ModuleList()
            for j in range(i + 2):
                template = trainables_from.dag[i][j].op().arch_params() if trainables_from is not None else None
                op = MixedOp(ch, 2 if reduction and j < 2 else 1, template)
                edges.append(DagEdge(op, [j], droppath=True))
            self.dag.append(edges)
        self.post_op = ConcateChannels(n_nodes)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.s0_op(s0), self.s1_op(s1)]
        for node in self.dag:
            states.append(sum(edge(states) for edge in node))
        return self.post_op(states)


class StemConv3x3(nn.Sequential):
    def __init__(self, ch_in: int, ch_out: int):
        super().__init__(nn.Conv2d(ch_in, ch_out, 3, padding=1, bias=False), nn.BatchNorm2d(ch_out))


class Model(nn.Module):
    def __init__(self, n_cells: int = 8, n_nodes: int = 4, init_ch: int = 16, stem_multiplier: int = 3,
                 n_classes: int = 10, aux_weight: float = 0.4):
        super().__init__()
        ch_stem = init_ch * stem_multiplier
        self.model_stems = nn.ModuleList([StemConv3x3(3, ch_stem), StemConv3x3(3, ch_stem)])
        self.cells = nn.ModuleList()
        self._aux_towers = nn.ModuleList()
        templates: dict[bool, Cell] = {}
        ch_pp, ch_p, ch = ch_stem, ch_stem, init_ch
        reduction_prev = False
        for i in range(n_cells):
            reduction = i in (n_cells // 3, 2 * n_cells // 3)
            if reduction:
                ch *= 2
            cell = Cell(n_nodes, ch_pp, ch_p, ch, reduction, reduction_prev, templates.get(reduction))
            templates.setdefault(reduction, cell)
            self.cells.append(cell)
            ch_pp, ch_p = ch_p, ch * n_nodes
            aux = aux_weight > 0 and i == 2 * n_cells // 3
            self._aux_towers.append(AuxiliaryHead(ch_p, n_classes) if aux else None)
            reduction_prev = reduction
        self.pool_op = nn.AdaptiveAvgPool2d(1)
        self.logits_op = nn.Linear(ch_p, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        s0 = self.model_stems[0](x)
        s1 = self.model_stems[1](x)
        logits_aux = None
        for cell, aux_tower in zip(self.cells, self._aux_towers):
            s0, s1 = s1, cell(s0, s1)
            if aux_tower is not None and self.training:
                logits_aux = aux_tower(s1)
        out = self.pool_op(s1)
        logits = self.logits_op(out.view(out.size(0), -1))
        return logits, logits_aux


def build(n_cells: int = 8, init_ch: int = 16, seed: int = 0, searched: bool = True) -> Model:
    """The supernet with seeded weights; `searched=True` draws the alphas from N(0, 1)."""
    torch.manual_seed(seed)
    model = Model(n_cells=n_cells, init_ch=init_ch)
    if searched:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name.endswith(ARCH_PARAM_SUFFIX):
                    param.normal_()
    return randomize_batch_norm_statistics(model, seed).eval()


def example_inputs() -> tuple[torch.Tensor, ...]:
    return (torch.randn(1, 3, 32, 32),)
