"""Small supernets written the way public DARTS-family search code writes them (our own replicas of
the patterns, not their code): used by tests/test_wild_lift.py.

Each keeps the trait that used to defeat the lift: defaulted non-tensor forward arguments, a shape
query on the logits, other attribute names for the op list, an inline mixture in a cell, a mixed op
reached through another method, partial channels with a channel shuffle, an auxiliary term, PC-DARTS
edge normalization, P-DARTS switches (and a whole last-stage P-DARTS network), a dict of op-name lists per cell type, and Gumbel sampling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PRIMITIVES = ["none", "max_pool_3x3", "skip_connect", "conv_3x3", "conv_1x1"]
NB201_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]


class Zero(nn.Module):
    def __init__(self, stride=1):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


class ConvBN(nn.Module):
    def __init__(self, c_in, c_out, k, stride=1):
        super().__init__()
        self.op = nn.Sequential(nn.ReLU(inplace=False), nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False),
                                nn.BatchNorm2d(c_out, affine=False))

    def forward(self, x):
        return self.op(x)


def make_op(name, c, stride=1):
    if name == "none":
        return Zero(stride)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride, 1)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else ConvBN(c, c, 1, stride)
    if name in ("conv_3x3", "nor_conv_3x3"):
        return ConvBN(c, c, 3, stride)
    if name in ("conv_1x1", "nor_conv_1x1"):
        return ConvBN(c, c, 1, stride)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride, 1, count_include_pad=False)
    raise KeyError(name)


def randomize_bn(model, seed=0):
    """Non-trivial batch-norm statistics, so that a wrong op cannot hide behind zeros."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


# --- 1. DARTS-style network with defaulted arguments and differently named op lists ------------------
class MixedOpOps(nn.Module):
    """A mixed op whose list is `ops` and whose forward takes a defaulted flag."""

    def __init__(self, c, stride):
        super().__init__()
        self.ops = nn.ModuleList(make_op(p, c, stride) for p in PRIMITIVES)

    def forward(self, x, weights, discrete=False):
        if discrete:
            return self.ops[int(weights.argmax())](x)
        return sum(w * op(x) for w, op in zip(weights, self.ops))


class DefaultsCell(nn.Module):
    def __init__(self, c, reduction, steps=2):
        super().__init__()
        self.reduction = reduction
        self.pre0 = ConvBN(c, c, 1)
        self.pre1 = ConvBN(c, c, 1)
        self.steps = steps
        self.m_ops = nn.ModuleList()
        for i in range(steps):
            for j in range(2 + i):
                self.m_ops.append(MixedOpOps(c, 2 if reduction and j < 2 else 1))

    def forward(self, s0, s1, weights, drop_prob=0.0):
        states = [self.pre0(s0), self.pre1(s1)]
        offset = 0
        for _ in range(self.steps):
            s = sum(self.m_ops[offset + j](h, weights[offset + j]) for j, h in enumerate(states))
            if drop_prob > 0.0 and self.training:
                s = F.dropout(s, drop_prob)
            offset += len(states)
            states.append(s)
        return torch.cat(states[-self.steps:], dim=1)


class DefaultsNetwork(nn.Module):
    """Search network whose forward branches on a defaulted string and on the logits' shape."""

    def __init__(self, c=8, steps=2):
        super().__init__()
        self.steps = steps
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        self.cells = nn.ModuleList([DefaultsCell(c, False, steps), DefaultsCell(c, True, steps)])
        self.reduce_stem = nn.Conv2d(steps * c, c, 1)
        self.head = nn.Linear(steps * c, 10)
        k = sum(2 + i for i in range(steps))
        self.alphas_normal = 1e-1 * torch.randn(k, len(PRIMITIVES))  # plain tensors, as DARTS keeps them
        self.alphas_reduce = 1e-1 * torch.randn(k, len(PRIMITIVES))

    def forward(self, input, updateType="alpha"):
        s0 = s1 = self.stem(input)
        for i, cell in enumerate(self.cells):
            alphas = self.alphas_reduce if cell.reduction else self.alphas_normal
            if alphas.size(1) == 1:
                weights = F.softmax(alphas, dim=0)
            else:
                weights = F.softmax(alphas, dim=-1)
            if updateType == "weight":
                weights = weights.detach()
            out = cell(s0, s1, weights)
            s0, s1 = (s1, self.reduce_stem(out)) if i == 0 else (s1, out)
        return self.head(s1.mean([2, 3]))

    def genotype(self):
        """DARTS's own derivation: per node, the 2 edges with the strongest non-none op, and that op."""
        return (darts_parse(F.softmax(self.alphas_normal, dim=-1).tolist(), self.steps),
                darts_parse(F.softmax(self.alphas_reduce, dim=-1).tolist(), self.steps))


def darts_parse(w, steps, edge_weights=None):
    """DARTS's `genotype()` parse of one cell's op weights (rows per edge), each row scaled by its edge
    weight first when given (PC-DARTS): per node the 2 edges whose best non-none op is strongest."""
    gene, start, n = [], 0, 2
    none = PRIMITIVES.index("none")
    for _ in range(steps):
        rows = [[v * (1.0 if edge_weights is None else edge_weights[start + j]) for v in w[start + j]]
                for j in range(n)]
        edges = sorted(range(n), key=lambda x: -max(rows[x][k] for k in range(len(rows[x])) if k != none))[:2]
        for j in edges:
            best = max((k for k in range(len(rows[j])) if k != none), key=lambda k: rows[j][k])
            gene.append((PRIMITIVES[best], j))
        start += n
        n += 1
    return gene


# --- 2. NAS-Bench-201 search cell: the mixture written inline, edges in a ModuleDict ------------------
class InlineCell(nn.Module):
    def __init__(self, c, max_nodes=4):
        super().__init__()
        self.max_nodes = max_nodes
        self.op_names = list(NB201_OPS)
        self.edges = nn.ModuleDict()
        for i in range(1, max_nodes):
            for j in range(i):
                self.edges[f"{i}<-{j}"] = nn.ModuleList(make_op(name, c) for name in self.op_names)
        self.edge_keys = sorted(self.edges.keys())
        self.edge2index = {key: i for i, key in enumerate(self.edge_keys)}

    def forward(self, inputs, weightss):
        nodes = [inputs]
        for i in range(1, self.max_nodes):
            inter = []
            for j in range(i):
                key = f"{i}<-{j}"
                weights = weightss[self.edge2index[key]]
                inter.append(sum(layer(nodes[j]) * w for layer, w in zip(self.edges[key], weights)))
            nodes.append(sum(inter))
        return nodes[-1]


class InlineNetwork(nn.Module):
    def __init__(self, c=8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        self.cell = InlineCell(c)
        self.head = nn.Linear(c, 10)
        self.arch_parameters = nn.Parameter(1e-1 * torch.randn(len(self.cell.edge_keys), len(NB201_OPS)))

    def forward(self, inputs):
        alphas = F.softmax(self.arch_parameters, dim=-1)
        feature = self.cell(self.stem(inputs), alphas)
        out = feature.mean([2, 3])
        return out, self.head(out)

    def genotype(self):
        """NAS-Bench-201's derivation: every edge keeps the argmax op, `none` included."""
        out = {}
        for key in self.cell.edge_keys:
            row = self.arch_parameters[self.cell.edge2index[key]]
            out[key] = NB201_OPS[int(row.argmax())]
        return out


# --- 3. a mixed op reached through another method -----------------------------------------------------
class MethodMixedOp(nn.Module):
    def __init__(self, c):
        super().__init__()
        self._candidates = nn.ModuleList(make_op(p, c) for p in PRIMITIVES)

    def forward_darts(self, x, weights):
        return sum(w * op(x) for w, op in zip(weights, self._candidates))

    def forward(self, x):
        return self._candidates[2](x)


class MethodNetwork(nn.Module):
    def __init__(self, c=8):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.edges = nn.ModuleList(MethodMixedOp(c) for _ in range(3))
        self.alpha = nn.Parameter(1e-1 * torch.randn(3, len(PRIMITIVES)))

    def forward(self, x):
        x = self.stem(x)
        weights = self.alpha.softmax(-1)
        return sum(edge.forward_darts(x, weights[i]) for i, edge in enumerate(self.edges))


# --- 4. PC-DARTS: partial channels, channel shuffle, edge normalization ---------------------------------
def channel_shuffle(x, groups):
    batchsize, num_channels, height, width = x.data.size()
    x = x.view(batchsize, groups, num_channels // groups, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batchsize, -1, height, width)


class PartialMixedOp(nn.Module):
    def __init__(self, c, stride, k=2):
        super().__init__()
        self.k = k
        self.mp = nn.MaxPool2d(2, 2)
        self._ops = nn.ModuleList(make_op(p, c // k, stride) for p in PRIMITIVES)

    def forward(self, x, weights):
        dim_2 = x.shape[1]
        xtemp = x[:, :dim_2 // self.k, :, :]
        xtemp2 = x[:, dim_2 // self.k:, :, :]
        temp1 = sum(w * op(xtemp) for w, op in zip(weights, self._ops))
        if temp1.shape[2] == x.shape[2]:
            ans = torch.cat([temp1, xtemp2], dim=1)
        else:
            ans = torch.cat([temp1, self.mp(xtemp2)], dim=1)
        return channel_shuffle(ans, self.k)


class PartialCell(nn.Module):
    def __init__(self, c, reduction, steps=2):
        super().__init__()
        self.reduction = reduction
        self.steps = steps
        self.pre0 = ConvBN(c, c, 1)
        self.pre1 = ConvBN(c, c, 1)
        self._ops = nn.ModuleList(PartialMixedOp(c, 2 if reduction and j < 2 else 1)
                                  for i in range(steps) for j in range(2 + i))

    def forward(self, s0, s1, weights, weights2):
        states = [self.pre0(s0), self.pre1(s1)]
        offset = 0
        for _ in range(self.steps):
            s = sum(weights2[offset + j] * self._ops[offset + j](h, weights[offset + j]) for j, h in enumerate(states))
            offset += len(states)
            states.append(s)
        return torch.cat(states[-self.steps:], dim=1)


class PartialNetwork(nn.Module):
    def __init__(self, c=8, steps=2):
        super().__init__()
        self.steps = steps
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        self.cells = nn.ModuleList([PartialCell(c, False, steps), PartialCell(c, True, steps)])
        self.mid = nn.Conv2d(steps * c, c, 1)
        self.head = nn.Linear(steps * c, 10)
        k = sum(2 + i for i in range(steps))
        self.alphas_normal = 1e-1 * torch.randn(k, len(PRIMITIVES))
        self.alphas_reduce = 1e-1 * torch.randn(k, len(PRIMITIVES))
        self.betas_normal = 1e-1 * torch.randn(k)
        self.betas_reduce = 1e-1 * torch.randn(k)

    def edge_weights(self, betas):
        n, start = 3, 2
        weights2 = F.softmax(betas[0:2], dim=-1)
        for _ in range(self.steps - 1):
            end = start + n
            weights2 = torch.cat([weights2, F.softmax(betas[start:end], dim=-1)], dim=0)
            start = end
            n += 1
        return weights2

    def forward(self, input):
        s0 = s1 = self.stem(input)
        for i, cell in enumerate(self.cells):
            if cell.reduction:
                weights, weights2 = F.softmax(self.alphas_reduce, dim=-1), self.edge_weights(self.betas_reduce)
            else:
                weights, weights2 = F.softmax(self.alphas_normal, dim=-1), self.edge_weights(self.betas_normal)
            out = cell(s0, s1, weights, weights2)
            s0, s1 = (s1, self.mid(out)) if i == 0 else (s1, out)
        return self.head(s1.mean([2, 3]))

    def genotype(self):
        """PC-DARTS's derivation: edges ranked by softmax(alpha) * softmax(beta), 2 per node."""
        return (darts_parse(F.softmax(self.alphas_normal, -1).tolist(), self.steps,
                            self.edge_weights(self.betas_normal).tolist()),
                darts_parse(F.softmax(self.alphas_reduce, -1).tolist(), self.steps,
                            self.edge_weights(self.betas_reduce).tolist()))


# --- 5. an auxiliary term inside the mixed op --------------------------------------------------------
class AuxMixedOp(nn.Module):
    def __init__(self, c, beta=0.5):
        super().__init__()
        self.beta = beta
        self.aux = nn.Identity()
        self._ops = nn.ModuleList(make_op(p, c) for p in PRIMITIVES)

    def forward(self, x, weights):
        return sum(w * op(x) for w, op in zip(weights, self._ops)) + self.beta * self.aux(x)


class AuxNetwork(nn.Module):
    def __init__(self, c=8):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.edge = AuxMixedOp(c)
        self.alphas = nn.Parameter(1e-1 * torch.randn(1, len(PRIMITIVES)))

    def forward(self, x):
        return self.edge(self.stem(x), F.softmax(self.alphas, dim=-1)[0])


# --- 6. P-DARTS switches and a dict of op-name lists per cell type -------------------------------------
class SwitchedMixedOp(nn.Module):
    def __init__(self, c, switch):
        super().__init__()
        self.m_ops = nn.ModuleList(make_op(p, c) for p, on in zip(PRIMITIVES, switch) if on)

    def forward(self, x, weights):
        return sum(w * op(x) for w, op in zip(weights, self.m_ops))


class SwitchedNetwork(nn.Module):
    def __init__(self, c=8):
        super().__init__()
        self.switches_normal = [[True, False, True, True, False], [True, True, False, True, True]]
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.cell_ops = nn.ModuleList(SwitchedMixedOp(c, s) for s in self.switches_normal)
        self.alphas_normal = nn.Parameter(1e-1 * torch.randn(2, 3))
        self.alphas_wide = nn.Parameter(1e-1 * torch.randn(1, 4))

    def forward(self, x):
        x = self.stem(x)
        a = self.cell_ops[0](x, F.softmax(self.alphas_normal, dim=-1)[0])
        b = self.cell_ops[1](x, F.softmax(self.alphas_wide, dim=-1)[0])
        return a + b


OP_LISTS = {"primitives_normal": [["none", "skip_connect", "conv_3x3"], ["max_pool_3x3", "conv_1x1", "conv_3x3"]],
            "primitives_reduct": [["none", "conv_1x1"], ["skip_connect", "conv_3x3"]]}


class PerEdgeCell(nn.Module):
    def __init__(self, c, primitives):
        super().__init__()
        self.primitives = primitives
        self._ops = nn.ModuleList(SwitchedMixedOp(c, [True] * len(names)) for names in primitives)
        for mixed, names in zip(self._ops, primitives):
            mixed.m_ops = nn.ModuleList(make_op(name, c) for name in names)

    def forward(self, x, weights):
        return sum(op(x, weights[i]) for i, op in enumerate(self._ops))


class PerEdgeNetwork(nn.Module):
    def __init__(self, c=8):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.cell = PerEdgeCell(c, OP_LISTS["primitives_normal"])
        self.alphas_normal = nn.Parameter(1e-1 * torch.randn(2, 3))

    def forward(self, x):
        return self.cell(self.stem(x), F.softmax(self.alphas_normal, dim=-1))


# --- 6b. a P-DARTS last-stage search network: per-edge switches, normal and reduction cells -------------
class PDartsMixedOp(nn.Module):
    """P-DARTS's mixed op: only the switched-on primitives are built; the weights are theirs, in order."""

    def __init__(self, c, stride, switch):
        super().__init__()
        self.m_ops = nn.ModuleList(make_op(p, c, stride) for p, on in zip(PRIMITIVES, switch) if on)

    def forward(self, x, weights):
        return sum(w * op(x) for w, op in zip(weights, self.m_ops))


class PDartsCell(nn.Module):
    def __init__(self, c_pp, c_p, c, reduction, reduction_prev, switches, steps=4):
        super().__init__()
        self.reduction = reduction
        self.steps = steps
        self.preprocess0 = ConvBN(c_pp, c, 1, 2 if reduction_prev else 1)
        self.preprocess1 = ConvBN(c_p, c, 1)
        self.cell_ops = nn.ModuleList()
        count = 0
        for i in range(steps):
            for j in range(2 + i):
                self.cell_ops.append(PDartsMixedOp(c, 2 if reduction and j < 2 else 1, switches[count]))
                count += 1

    def forward(self, s0, s1, weights):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self.steps):
            s = sum(self.cell_ops[offset + j](h, weights[offset + j]) for j, h in enumerate(states))
            offset += len(states)
            states.append(s)
        return torch.cat(states[-4:], dim=1)


class PDartsNetwork(nn.Module):
    """Cells N, R, R, N (P-DARTS puts reductions at layers // 3 and 2 * layers // 3); `switches_*` are the
    last stage's: one row of PRIMITIVES flags per edge. Alphas have one column per switched-on op."""

    def __init__(self, switches_normal, switches_reduce, c=4, layers=4):
        super().__init__()
        self.switches_normal, self.switches_reduce = switches_normal, switches_reduce
        self.stem = nn.Sequential(nn.Conv2d(3, 3 * c, 3, padding=1, bias=False), nn.BatchNorm2d(3 * c))
        c_pp, c_p, c_cur = 3 * c, 3 * c, c
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            c_cur = c_cur * 2 if reduction else c_cur
            self.cells.append(PDartsCell(c_pp, c_p, c_cur, reduction, reduction_prev,
                                         switches_reduce if reduction else switches_normal))
            reduction_prev = reduction
            c_pp, c_p = c_p, 4 * c_cur
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, 10)
        n_ops = sum(switches_normal[0])
        self.alphas_normal = nn.Parameter(1e-3 * torch.randn(14, n_ops))
        self.alphas_reduce = nn.Parameter(1e-3 * torch.randn(14, n_ops))

    def forward(self, x):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            weights = F.softmax(self.alphas_reduce if cell.reduction else self.alphas_normal, dim=-1)
            s0, s1 = s1, cell(s0, s1, weights)
        return self.classifier(self.pool(s1).flatten(1))


# --- 7. stochastic search forwards ----------------------------------------------------------------------
class GumbelNetwork(nn.Module):
    def __init__(self, c=8, tau=1.0):
        super().__init__()
        self.tau = tau
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.edge = nn.ModuleList(make_op(p, c) for p in PRIMITIVES)
        self.arch = nn.Parameter(1e-1 * torch.randn(1, len(PRIMITIVES)))

    def forward(self, x):
        while True:
            gumbels = -torch.empty_like(self.arch).exponential_().log()
            probs = F.softmax((self.arch.log_softmax(dim=1) + gumbels) / self.tau, dim=1)
            if not (torch.isinf(gumbels).any() or torch.isnan(probs).any()):
                break
        x = self.stem(x)
        return sum(w * op(x) for w, op in zip(probs[0], self.edge))


class InputBranchNetwork(nn.Module):
    """Branches on the values of its input: refused, with the line."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        if x.mean() > 0:
            return self.conv(x)
        return x


class UnrecognizedNetwork(nn.Module):
    """Architecture weights used in a way no pattern covers: a product of candidates."""

    def __init__(self, c=4):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.a = nn.Conv2d(c, c, 3, padding=1)
        self.b = nn.Conv2d(c, c, 1)
        self.alpha = nn.Parameter(torch.randn(2))

    def forward(self, x):
        x = self.stem(x)
        w = torch.softmax(self.alpha, -1)
        return self.a(x) * self.b(x) * w[0]
