"""A recurrent DARTS search model (the PTB cell search) written the way DARTS's `rnn/` code writes it:
our own small replica of its patterns, not its code. Used by tests/test_rnn_lift.py.

The traits that matter to the lift: the logits are a plain tensor shared by the model and its cell
(`rnn.weights = self.weights`); the forward takes the hidden state as a list of tensors; the time loop
runs over `inputs.size(0)`, indexing `inputs[t]`; the cell writes its mixture inline and batched: all
predecessors of a node are stacked on dim 0, one matrix product gives their gates, and the mixture
sums over activations `k` of `probs[offset:offset+i+1, k]` times the stacked candidates, reduced over
the predecessors with `torch.sum(..., dim=0)`; batch norm without affine parameters on the states;
dropout masks in training only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PRIMITIVES = ["none", "tanh", "relu", "sigmoid", "identity"]
STEPS = 4
CONCAT = 4


def mask2d(rows, cols, keep_prob):
    m = torch.empty(rows, cols).bernoulli_(keep_prob)
    return m / keep_prob


def embedding_with_dropout(embed, words, dropout=0.1):
    """DARTS drops whole rows of the embedding matrix while training; in eval it is a plain lookup."""
    weight = embed.weight
    if dropout:
        keep = weight.new_empty((weight.size(0), 1)).bernoulli_(1 - dropout)
        weight = keep.expand_as(weight) / (1 - dropout) * weight
    return F.embedding(words, weight, embed.padding_idx, embed.max_norm, embed.norm_type,
                       embed.scale_grad_by_freq, embed.sparse)


class SequenceDropout(nn.Module):
    """One dropout mask for all time steps, in training only."""

    def forward(self, x, dropout=0.5):
        if not self.training or not dropout:
            return x
        m = x.new_empty(1, x.size(1), x.size(2)).bernoulli_(1 - dropout) / (1 - dropout)
        return m.expand_as(x) * x


class SearchCell(nn.Module):
    def __init__(self, ninp, nhid, dropouth=0.25, dropoutx=0.75, steps=STEPS):
        super().__init__()
        self.nhid = nhid
        self.dropouth = dropouth
        self.dropoutx = dropoutx
        self.steps = steps
        self._W0 = nn.Parameter(torch.empty(ninp + nhid, 2 * nhid).uniform_(-0.5, 0.5))
        self._Ws = nn.ParameterList([nn.Parameter(torch.empty(nhid, 2 * nhid).uniform_(-0.5, 0.5))
                                     for _ in range(steps)])
        self.bn = nn.BatchNorm1d(nhid, affine=False)

    def forward(self, inputs, hidden):
        T, B = inputs.size(0), inputs.size(1)
        if self.training:
            x_mask = mask2d(B, inputs.size(2), 1. - self.dropoutx)
            h_mask = mask2d(B, hidden.size(2), 1. - self.dropouth)
        else:
            x_mask = h_mask = None
        hidden = hidden[0]
        hiddens = []
        for t in range(T):
            hidden = self.cell(inputs[t], hidden, x_mask, h_mask)
            hiddens.append(hidden)
        hiddens = torch.stack(hiddens)
        return hiddens, hiddens[-1].unsqueeze(0)

    def _init_state(self, x, h_prev, x_mask, h_mask):
        if self.training:
            xh = torch.cat([x * x_mask, h_prev * h_mask], dim=-1)
        else:
            xh = torch.cat([x, h_prev], dim=-1)
        c0, h0 = torch.split(xh.mm(self._W0), self.nhid, dim=-1)
        c0 = c0.sigmoid()
        h0 = h0.tanh()
        return h_prev + c0 * (h0 - h_prev)

    @staticmethod
    def _activation(name):
        if name == "tanh":
            return torch.tanh
        if name == "relu":
            return F.relu
        if name == "sigmoid":
            return torch.sigmoid
        if name == "identity":
            return lambda x: x
        raise NotImplementedError(name)

    def cell(self, x, h_prev, x_mask, h_mask):
        s0 = self.bn(self._init_state(x, h_prev, x_mask, h_mask))
        probs = F.softmax(self.weights, dim=-1)
        offset = 0
        states = s0.unsqueeze(0)
        for i in range(self.steps):
            masked = states * h_mask.unsqueeze(0) if self.training else states
            ch = masked.view(-1, self.nhid).mm(self._Ws[i]).view(i + 1, -1, 2 * self.nhid)
            c, h = torch.split(ch, self.nhid, dim=-1)
            c = c.sigmoid()
            s = torch.zeros_like(s0)
            for k, name in enumerate(PRIMITIVES):
                if name == "none":
                    continue
                fn = self._activation(name)
                unweighted = states + c * (fn(h) - states)
                s += torch.sum(probs[offset:offset + i + 1, k].unsqueeze(-1).unsqueeze(-1) * unweighted, dim=0)
            s = self.bn(s)
            states = torch.cat([states, s.unsqueeze(0)], 0)
            offset += i + 1
        return torch.mean(states[-CONCAT:], dim=0)


class RNNSearchModel(nn.Module):
    """Embedding -> one search cell over time -> decoder tied to the embedding -> log-softmax."""

    def __init__(self, ntoken=20, ninp=8, nhid=8, steps=STEPS, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.lockdrop = SequenceDropout()
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnns = nn.ModuleList([SearchCell(ninp, nhid, steps=steps)])
        self.decoder = nn.Linear(ninp, ntoken)
        self.decoder.weight = self.encoder.weight
        self.ninp, self.nhid, self.ntoken = ninp, nhid, ntoken
        self.dropout, self.dropouti, self.dropoute = 0.75, 0.2, 0.1
        k = sum(range(1, steps + 1))
        self.weights = torch.randn(k, len(PRIMITIVES), generator=g)
        for rnn in self.rnns:
            rnn.weights = self.weights
        with torch.no_grad():
            self.encoder.weight.uniform_(-0.5, 0.5, generator=g)
            self.decoder.bias.uniform_(-0.1, 0.1, generator=g)
            for rnn in self.rnns:
                rnn.bn.running_mean.copy_(torch.randn(nhid, generator=g) * 0.1)
                rnn.bn.running_var.copy_(torch.rand(nhid, generator=g) + 0.5)

    def forward(self, input, hidden, return_h=False):
        batch_size = input.size(1)
        emb = embedding_with_dropout(self.encoder, input, dropout=self.dropoute if self.training else 0)
        emb = self.lockdrop(emb, self.dropouti)
        raw_output = emb
        new_hidden = []
        for l, rnn in enumerate(self.rnns):
            raw_output, new_h = rnn(raw_output, hidden[l])
            new_hidden.append(new_h)
        hidden = new_hidden
        output = self.lockdrop(raw_output, self.dropout)
        logit = self.decoder(output.view(-1, self.ninp))
        log_prob = F.log_softmax(logit, dim=-1)
        return log_prob.view(-1, batch_size, self.ntoken), hidden

    def genotype(self):
        """DARTS's `_parse`: per node, the predecessor with the strongest non-`none` weight, and that
        predecessor's best non-`none` activation (float32 probabilities, as DARTS computes them)."""
        probs = F.softmax(self.weights, dim=-1).numpy()
        none = PRIMITIVES.index("none")
        gene, start = [], 0
        for i in range(self.rnns[0].steps):
            end = start + i + 1
            W = probs[start:end]
            j = sorted(range(i + 1), key=lambda x: -max(W[x][k] for k in range(len(W[x])) if k != none))[0]
            k_best = None
            for k in range(len(W[j])):
                if k != none and (k_best is None or W[j][k] > W[j][k_best]):
                    k_best = k
            gene.append((PRIMITIVES[k_best], j))
            start = end
        return gene

    def init_hidden(self, bsz):
        return [torch.zeros(1, bsz, self.nhid)]
