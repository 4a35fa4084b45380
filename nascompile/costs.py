"""What a network costs: edges, ops, weights and multiply-accumulates, of the supernet and the discrete net.

Both networks are measured the same way, on their IR:

- the *supernet* is the IR right after the lift, before any decision: each layer choice is one node whose
  every non-zero candidate runs (the DARTS mixture), each input choice reduces all of its inputs;
- the *discrete network* is the IR at the end of the pipeline: what the ONNX file computes.

What is counted:

- `edges`: layer-choice instances (the supernet's), or those the discrete network keeps;
- `candidate_ops`: non-zero candidates summed over the edges (one per kept edge in the discrete net);
- `ir_ops`: IR nodes other than inputs and outputs (in the supernet each choice is one node);
- `params`: elements of the weight tensors the network computes with (parameters and floating-point
  buffers such as batch-norm statistics, each tensor once; architecture logits excluded); the supernet's
  include every candidate module's;
- `macs`: multiply-accumulates of convolutions and matrix products (linear, matmul), counted by
  `torch.utils.flop_counter` while the IR interpreter runs the network on the example inputs (so at their
  batch size). Pooling, batch norm, activations and additions are not counted, as DARTS papers count
  "multi-adds". FLOPs = 2 x MACs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from .ir.graph import Graph
from .ir.interpreter import run_graph
from .module_tree import weights

EXCLUDED_PARAMS = ("logits",)  # architecture parameters are not weights of the network


@dataclass
class NetworkCost:
    edges: int
    candidate_ops: int
    ir_ops: int
    params: int
    macs: int

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def to_dict(self) -> dict[str, int]:
        return asdict(self) | {"flops": self.flops}


def count_macs(graph: Graph, inputs: Sequence[torch.Tensor]) -> int:
    """Multiply-accumulates of convolutions and matrix products while `graph` runs on `inputs`."""
    with FlopCounterMode(display=False) as counter:
        run_graph(graph, inputs)
    return counter.get_total_flops() // 2


def _tensor_key(tensor: torch.Tensor) -> tuple:
    """Identity of a tensor's elements: two views of one storage region count once."""
    return (tensor.data_ptr(), tuple(tensor.shape), tuple(tensor.stride()), tensor.dtype)


def _weights(graph: Graph) -> Iterable[torch.Tensor]:
    """Every weight tensor of `graph`'s nodes, and of the candidate modules of its layer choices."""
    for node, data in graph.nodes(data=True):
        yield from (t for name, t in data["params"].items()
                    if name not in EXCLUDED_PARAMS and isinstance(t, torch.Tensor))
        if data["op"] == "layer_choice":
            for path in data["attrs"]["modules"]:
                if path is not None:
                    yield from weights(graph.submodule(path))


def count_params(graph: Graph) -> int:
    """Elements of the distinct weight tensors `graph` computes with (see the module docstring)."""
    seen = {_tensor_key(t): t.numel() for t in _weights(graph)}
    return sum(seen.values())


def ir_ops(graph: Graph) -> int:
    return sum(n for op, n in graph.count_ops().items() if op not in ("input", "output"))


def count_choices(graph: Graph) -> int:
    """Layer and input choices in `graph` (each one IR node)."""
    counts = graph.count_ops()
    return counts.get("layer_choice", 0) + counts.get("input_choice", 0)


def supernet_cost(lifted: Graph, inputs: Sequence[torch.Tensor]) -> NetworkCost:
    """The cost of the supernet as lifted (every choice undecided)."""
    choices = [lifted.attrs(n) for n in lifted.nodes_of("layer_choice")]
    candidates = sum(sum(1 for i, path in enumerate(a["modules"])  # an inline choice's candidates are its inputs
                         if (path is not None or a.get("inline")) and i != a.get("zero")) for a in choices)
    return NetworkCost(edges=len(choices), candidate_ops=candidates, ir_ops=ir_ops(lifted),
                       params=count_params(lifted), macs=count_macs(lifted, inputs))


def discrete_cost(graph: Graph, inputs: Sequence[torch.Tensor], kept_edges: int) -> NetworkCost:
    """The cost of the compiled network; `kept_edges` comes from the decisions."""
    return NetworkCost(edges=kept_edges, candidate_ops=kept_edges, ir_ops=ir_ops(graph), params=count_params(graph),
                       macs=count_macs(graph, inputs))


def cost_table(supernet: NetworkCost, discrete: NetworkCost, inputs: Sequence[torch.Tensor]) -> dict[str, Any]:
    """JSON-ready totals of both networks, measured on `inputs` (whose first dimension is the batch)."""
    batch_size = int(inputs[0].shape[0]) if inputs and inputs[0].dim() else 1
    return {"batch_size": batch_size, "supernet": supernet.to_dict(), "discrete": discrete.to_dict()}
