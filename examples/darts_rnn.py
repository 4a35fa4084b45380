"""DARTS's recurrent search space (the Penn Treebank cell, Liu et al., 2019), written the way DARTS's
`rnn/model_search.py` writes it — no nascompile API.

- An embedding, one recurrent search cell run over the time steps (`for t in range(inputs.size(0))`),
  a decoder tied to the embedding, log-softmax. Inputs are sequence-first: tokens [time, batch] and the
  hidden state as a list `[h]` of [1, batch, nhid] (`batch_dim = 1` tells nascompile which dim is the
  batch).
- Each step: s0 from the input and the previous hidden state, then 8 nodes; node i may read s0 or any
  earlier node, through a gate and one of the activations tanh / relu / sigmoid / identity. The search
  computes all predecessors at once (stacked on dim 0) and mixes the activations inline, weighted by
  `softmax(weights)[offset + j, k]` ('none' is the zero op); `weights` is a plain tensor the model shares
  with its cell, so every time step shares one set of logits.

nascompile keeps, per node, the predecessor whose strongest non-'none' weight is highest and that
predecessor's best activation, as DARTS's recurrent `genotype()` does, and prints the recurrent genotype:

    nascompile compile examples/darts_rnn.py -o rnn.onnx --validate
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PRIMITIVES = ["none", "tanh", "relu", "sigmoid", "identity"]
STEPS = 8


def activation(name: str):
    return {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "identity": lambda x: x}[name]


class RecurrentSearchCell(nn.Module):
    def __init__(self, ninp: int, nhid: int, steps: int = STEPS):
        super().__init__()
        self.nhid, self.steps = nhid, steps
        self._W0 = nn.Parameter(torch.empty(ninp + nhid, 2 * nhid).uniform_(-0.3, 0.3))
        self._Ws = nn.ParameterList(nn.Parameter(torch.empty(nhid, 2 * nhid).uniform_(-0.3, 0.3)) for _ in range(steps))
        self.bn = nn.BatchNorm1d(nhid, affine=False)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor):
        h = hidden[0]
        outputs = []
        for t in range(inputs.size(0)):
            h = self.step(inputs[t], h)
            outputs.append(h)
        outputs = torch.stack(outputs)
        return outputs, outputs[-1].unsqueeze(0)

    def step(self, x: torch.Tensor, h_prev: torch.Tensor) -> torch.Tensor:
        gate, candidate = torch.cat([x, h_prev], dim=-1).mm(self._W0).chunk(2, dim=-1)
        s0 = self.bn(h_prev + gate.sigmoid() * (candidate.tanh() - h_prev))
        probs = F.softmax(self.weights, dim=-1)
        states, offset = s0.unsqueeze(0), 0
        for i in range(self.steps):
            ch = states.view(-1, self.nhid).mm(self._Ws[i]).view(i + 1, -1, 2 * self.nhid)
            c, h = torch.split(ch, self.nhid, dim=-1)
            c = c.sigmoid()
            s = torch.zeros_like(s0)
            for k, name in enumerate(PRIMITIVES):
                if name != "none":
                    mixed = states + c * (activation(name)(h) - states)
                    s += torch.sum(probs[offset:offset + i + 1, k].unsqueeze(-1).unsqueeze(-1) * mixed, dim=0)
            states = torch.cat([states, self.bn(s).unsqueeze(0)], 0)
            offset += i + 1
        return torch.mean(states[-self.steps:], dim=0)


class RNNSearchModel(nn.Module):
    batch_dim = 1  # sequence-first: [time, batch]

    def __init__(self, ntoken: int = 50, nhid: int = 16, steps: int = STEPS):
        super().__init__()
        self.encoder = nn.Embedding(ntoken, nhid)
        self.rnns = nn.ModuleList([RecurrentSearchCell(nhid, nhid, steps)])
        self.decoder = nn.Linear(nhid, ntoken)
        self.decoder.weight = self.encoder.weight
        self.ntoken, self.nhid = ntoken, nhid
        self.weights = 1e-3 * torch.randn(sum(range(1, steps + 1)), len(PRIMITIVES))
        for rnn in self.rnns:
            rnn.weights = self.weights

    def forward(self, tokens: torch.Tensor, hidden: list[torch.Tensor]):
        output = self.encoder(tokens)
        new_hidden = []
        for layer, rnn in enumerate(self.rnns):
            output, h = rnn(output, hidden[layer])
            new_hidden.append(h)
        logits = self.decoder(output.view(-1, self.nhid))
        return F.log_softmax(logits, dim=-1).view(-1, tokens.size(1), self.ntoken), new_hidden


def build() -> RNNSearchModel:
    torch.manual_seed(0)
    model = RNNSearchModel()
    with torch.no_grad():  # stand-ins for a finished search: distinct logits, non-trivial statistics
        model.weights.copy_(torch.randn(model.weights.shape))
        for rnn in model.rnns:
            rnn.bn.running_mean.normal_(0, 0.1)
            rnn.bn.running_var.uniform_(0.5, 1.5)
    return model.eval()


def example_inputs():
    tokens = torch.randint(0, 50, (4, 2), generator=torch.Generator().manual_seed(0))
    return tokens, [torch.zeros(1, 2, 16)]
