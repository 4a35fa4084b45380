"""The DARTS search space written with NNI's classic NAS API (`nni.nas.pytorch`), as NNI's DARTS example does.

NNI itself is not needed: the small classes below mimic the public interface of NNI's classic mutables
(`LayerChoice` and `InputChoice` with `key`, `choose_from`, `n_chosen`, `reduction`, `return_mask`) and of
its `DartsMutator` (one logit vector per layer-choice key, `len + 1` long: the zero op is the last slot;
attached to every mutable as `mutable.mutator`). nascompile recognizes the mutables by these attributes
and decides as `DartsMutator.export()` does; the logits come from the attached mutator, or from
`--alphas FILE` (a saved `mutator.state_dict()` or a JSON of key -> list).

    nascompile compile examples/nni_darts.py -o nni.onnx --validate
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from darts_ops import AuxiliaryHead, DilConv, DropPath, FactorizedReduce, PoolBN, ReLUConvBN, SepConv, \
    randomize_batch_norm_statistics


# --- a mimic of NNI's classic mutables -------------------------------------------------------------
class Mutable(nn.Module):
    def __init__(self, key: str):
        super().__init__()
        self._key = key

    @property
    def key(self) -> str:
        return self._key

    def set_mutator(self, mutator: nn.Module) -> None:
        self.__dict__["mutator"] = mutator  # not registered as a submodule, as NNI does


class LayerChoice(Mutable):
    def __init__(self, op_candidates: OrderedDict | list, reduction: str = "sum", return_mask: bool = False,
                 key: str | None = None):
        super().__init__(key)
        named = op_candidates.items() if isinstance(op_candidates, OrderedDict) else \
            ((str(i), op) for i, op in enumerate(op_candidates))
        self.names = []
        for name, module in named:
            self.add_module(name, module)
            self.names.append(name)
        self.reduction = reduction
        self.return_mask = return_mask

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self):
        return (self._modules[name] for name in self.names)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.mutator.on_forward_layer_choice(self, *inputs)


class InputChoice(Mutable):
    NO_KEY = ""

    def __init__(self, n_candidates: int | None = None, choose_from: list[str] | None = None,
                 n_chosen: int | None = None, reduction: str = "sum", return_mask: bool = False,
                 key: str | None = None):
        super().__init__(key)
        if choose_from is None:
            choose_from = [self.NO_KEY] * n_candidates
        self.n_candidates = len(choose_from)
        self.choose_from = list(choose_from)
        self.n_chosen = n_chosen
        self.reduction = reduction
        self.return_mask = return_mask

    def forward(self, optional_inputs: list | dict) -> torch.Tensor:
        if isinstance(optional_inputs, dict):
            optional_inputs = [optional_inputs[key] for key in self.choose_from]
        return self.mutator.on_forward_input_choice(self, optional_inputs)


class DartsMutator(nn.Module):
    """Search-time side of NNI's DartsMutator: the logits (`choices`) and the mixed forward."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.choices = nn.ParameterDict()
        for module in model.modules():
            if isinstance(module, LayerChoice) and module.key not in self.choices:
                self.choices[module.key] = nn.Parameter(1e-3 * torch.randn(len(module) + 1))
            if isinstance(module, Mutable):
                module.set_mutator(self)

    def on_forward_layer_choice(self, mutable: LayerChoice, *inputs: torch.Tensor) -> torch.Tensor:
        weights = F.softmax(self.choices[mutable.key], dim=-1)[:-1]  # the zero op contributes nothing
        return sum(w * op(*inputs) for w, op in zip(weights, mutable))

    def on_forward_input_choice(self, mutable: InputChoice, tensors: list[torch.Tensor]) -> torch.Tensor:
        if mutable.reduction == "mean":
            return sum(tensors) / len(tensors)
        if mutable.reduction == "concat":
            return torch.cat(tensors, dim=1)
        return tensors if mutable.reduction == "none" else sum(tensors)


# --- the search space, as in NNI's DARTS example ---------------------------------------------------
class Node(nn.Module):
    def __init__(self, node_id: str, num_prev_nodes: int, channels: int, num_downsample_connect: int):
        super().__init__()
        self.ops = nn.ModuleList()
        choice_keys = []
        for i in range(num_prev_nodes):
            stride = 2 if i < num_downsample_connect else 1
            choice_keys.append(f"{node_id}_p{i}")
            self.ops.append(LayerChoice(OrderedDict([
                ("maxpool", PoolBN("max", channels, stride, affine=False)),
                ("avgpool", PoolBN("avg", channels, stride, affine=False)),
                ("skipconnect", nn.Identity() if stride == 1 else FactorizedReduce(channels, channels, affine=False)),
                ("sepconv3x3", SepConv(channels, channels, 3, stride, 1, affine=False)),
                ("sepconv5x5", SepConv(channels, channels, 5, stride, 2, affine=False)),
                ("dilconv3x3", DilConv(channels, channels, 3, stride, 2, 2, affine=False)),
                ("dilconv5x5", DilConv(channels, channels, 5, stride, 4, 2, affine=False)),
            ]), key=choice_keys[-1]))
        self.drop_path = DropPath()
        self.input_switch = InputChoice(choose_from=choice_keys, n_chosen=2, key=f"{node_id}_switch")

    def forward(self, prev_nodes: list[torch.Tensor]) -> torch.Tensor:
        out = [op(node) for op, node in zip(self.ops, prev_nodes)]
        out = [self.drop_path(o) if o is not None else None for o in out]
        return self.input_switch(out)


class Cell(nn.Module):
    def __init__(self, n_nodes: int, channels_pp: int, channels_p: int, channels: int, reduction_p: bool,
                 reduction: bool):
        super().__init__()
        self.reduction = reduction
        self.n_nodes = n_nodes
        self.preproc0 = FactorizedReduce(channels_pp, channels, affine=False) if reduction_p else \
            ReLUConvBN(channels_pp, channels, 1, 1, 0, affine=False)
        self.preproc1 = ReLUConvBN(channels_p, channels, 1, 1, 0, affine=False)
        self.mutable_ops = nn.ModuleList(
            Node(f"{'reduce' if reduction else 'normal'}_n{depth}", depth + 2, channels, 2 if reduction else 0)
            for depth in range(n_nodes))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        tensors = [self.preproc0(s0), self.preproc1(s1)]
        for node in self.mutable_ops:
            tensors.append(node(tensors))
        return torch.cat(tensors[2:], dim=1)


class CNN(nn.Module):
    def __init__(self, input_size: int = 32, in_channels: int = 3, channels: int = 16, n_classes: int = 10,
                 n_layers: int = 8, n_nodes: int = 4, stem_multiplier: int = 3, auxiliary: bool = True):
        super().__init__()
        self.aux_pos = 2 * n_layers // 3 if auxiliary else -1
        c_cur = stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_cur, 3, 1, 1, bias=False), nn.BatchNorm2d(c_cur))
        channels_pp, channels_p, c_cur = c_cur, c_cur, channels
        self.cells = nn.ModuleList()
        reduction = False
        for i in range(n_layers):
            reduction_p, reduction = reduction, i in (n_layers // 3, 2 * n_layers // 3)
            if reduction:
                c_cur *= 2
            self.cells.append(Cell(n_nodes, channels_pp, channels_p, c_cur, reduction_p, reduction))
            channels_pp, channels_p = channels_p, c_cur * n_nodes
            if i == self.aux_pos:
                self.aux_head = AuxiliaryHead(channels_p, n_classes)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(channels_p, n_classes)

    def forward(self, x: torch.Tensor):
        s0 = s1 = self.stem(x)
        aux_logits = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i == self.aux_pos and self.training:
                aux_logits = self.aux_head(s1)
        out = self.gap(s1)
        logits = self.linear(out.view(out.size(0), -1))
        if aux_logits is not None:
            return logits, aux_logits
        return logits


def build(n_layers: int = 8, channels: int = 16, seed: int = 0, searched: bool = True,
          with_mutator: bool = True) -> CNN:
    """The supernet with seeded weights; with `with_mutator`, a DartsMutator attached to its mutables.

    `searched=True` draws the mutator's logits from N(0, 1), standing in for a finished search.
    """
    torch.manual_seed(seed)
    model = CNN(channels=channels, n_layers=n_layers)
    if with_mutator:
        mutator = DartsMutator(model)
        if searched:
            with torch.no_grad():
                for logits in mutator.choices.values():
                    logits.normal_()
    return randomize_batch_norm_statistics(model, seed).eval()


def example_inputs() -> tuple[torch.Tensor, ...]:
    return (torch.randn(1, 3, 32, 32),)
