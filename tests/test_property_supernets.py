"""Property tests: random supernets written with `nascompile.nn` compile to exactly what the rules say.

Hypothesis draws DARTS-like networks: a stem, then 1-3 cells (normal or reduction; cells of one kind share
their structure and, when `shared`, their labels and logits). A cell has 1-2 inputs and 1-6 nodes; a node
reads 1-5 edges from earlier states, each edge a `LayerChoice` over 1-4 candidates drawn from the supported
ops (or, now and then, a fixed op), and combines them either with an `InputChoice` (n_chosen None or
1..edges, sum or mean) or with a plain sum that `finalize` prunes to `max_final_edges`. Edges leaving a
reduction cell's inputs stride 2, so their candidates are strided ones. Logits are drawn from a few values,
so exact ties are common.

For every case: the compile succeeds with `verify_each=True`; the decisions equal a brute-force derivation
written below from the reference rules (NNI `DartsMutator.sample_final`, Archai `Finalizers`; ties to the
lowest index); the broken ties are the ones reported; and onnxruntime on the emitted model equals the
supernet's own forward fixed to the derived decisions.

Profiles: the default one is derandomized (a fixed sequence of cases, fit for CI); `pytest -m slow` runs
the long profile (`NASCOMPILE_LONG_EXAMPLES`, default 1,000 cases, random).
"""

from __future__ import annotations

import math

import mpmath
import os
from dataclasses import dataclass, field

import onnxruntime as ort
import pytest
import torch
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from torch import nn

import nascompile
from nascompile import nn as nc
from nascompile.passes import PIPELINES

from conftest import example

darts_ops = example("darts_ops")

CI_EXAMPLES = int(os.environ.get("NASCOMPILE_CI_EXAMPLES", "150"))
LONG_EXAMPLES = int(os.environ.get("NASCOMPILE_LONG_EXAMPLES", "1000"))
COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
              print_blob=True)
CI = settings(max_examples=CI_EXAMPLES, derandomize=True, database=None, **COMMON)
LONG = settings(max_examples=LONG_EXAMPLES, **COMMON)

# --- the candidate ops ---------------------------------------------------------------------------
# name -> factory(channels); every op maps C channels to C channels, at stride 1 or 2
NORMAL_OPS = {
    "skip": lambda c: nn.Identity(),
    "relu": lambda c: nn.ReLU(),
    "sigmoid": lambda c: nn.Sigmoid(),
    "tanh": lambda c: nn.Tanh(),
    "hardswish": lambda c: nn.Hardswish(),
    "hardsigmoid": lambda c: nn.Hardsigmoid(),
    "silu": lambda c: nn.SiLU(),
    "leaky_relu": lambda c: nn.LeakyReLU(0.2),
    "relu6": lambda c: nn.ReLU6(),
    "bn": lambda c: nn.BatchNorm2d(c),
    "conv_1x1": lambda c: nn.Conv2d(c, c, 1),
    "conv_3x3": lambda c: darts_ops.ReLUConvBN(c, c, 3, 1, 1),
    "conv_same": lambda c: nn.Conv2d(c, c, 3, padding="same"),
    "group_conv": lambda c: nn.Conv2d(c, c, 3, padding=1, groups=2),
    "dil_conv": lambda c: darts_ops.DilConv(c, c, 3, 1, 2, 2),
    "dil_conv_5x5": lambda c: darts_ops.DilConv(c, c, 5, 1, 4, 2),
    "sep_conv": lambda c: darts_ops.SepConv(c, c, 3, 1, 1),
    "max_pool": lambda c: nn.MaxPool2d(3, 1, 1),
    "avg_pool": lambda c: nn.AvgPool2d(3, 1, 1, count_include_pad=False),
    "avg_pool_pad": lambda c: nn.AvgPool2d(3, 1, 1),
    "pool_bn": lambda c: darts_ops.PoolBN("max", c, 1),
    "zero": lambda c: darts_ops.Zero(1),
}
STRIDED_OPS = {
    "conv_3x3_s2": lambda c: darts_ops.ReLUConvBN(c, c, 3, 2, 1),
    "group_conv_s2": lambda c: nn.Conv2d(c, c, 3, 2, 1, groups=2),
    "dil_conv_s2": lambda c: darts_ops.DilConv(c, c, 3, 2, 2, 2),
    "sep_conv_s2": lambda c: darts_ops.SepConv(c, c, 3, 2, 1),
    "sep_conv_5x5_s2": lambda c: darts_ops.SepConv(c, c, 5, 2, 2),
    "max_pool_s2": lambda c: nn.MaxPool2d(3, 2, 1),
    "avg_pool_s2": lambda c: nn.AvgPool2d(3, 2, 1, count_include_pad=False),
    "factorized_reduce": lambda c: darts_ops.FactorizedReduce(c, c),
    "zero_s2": lambda c: darts_ops.Zero(2),
}
FIXED_OPS = {False: "skip", True: "factorized_reduce"}  # a fixed (non-choice) edge, by stride
ALL_OPS = NORMAL_OPS | STRIDED_OPS
LOGITS = st.sampled_from([-1.0, 0.0, 0.0, 0.5, 1.0, 1.0, 2.0]) | st.floats(-3, 3, width=32)


# --- the drawn case ------------------------------------------------------------------------------
@dataclass
class Edge:
    source: int  # state index: cell inputs first, then nodes
    candidates: list[str] | None  # None: a fixed op
    fixed_op: str | None = None
    labelled: bool = True  # False: label None, so the module path is the label


@dataclass
class Node:
    edges: list[Edge]
    kind: str  # "input_choice" or "sum"
    n_chosen: int | None = None
    reduction: str = "sum"
    anonymous: bool = False  # choose_from all None: NNI weighs every input 0


@dataclass
class CellSpec:
    n_inputs: int
    nodes: list[Node]


@dataclass
class Case:
    channels: int
    size: int
    kinds: list[str]  # per cell: "normal" or "reduce"
    specs: dict[str, CellSpec]
    shared: bool
    logits: list[list[list[list[float]]]]  # cell -> node -> edge -> logits (n candidates + zero slot)
    max_final_edges: int
    rank: str
    opt_level: str
    seed: int


@st.composite
def cell_specs(draw, reduce: bool) -> CellSpec:
    n_inputs = draw(st.integers(1, 2))
    nodes = []
    for j in range(draw(st.integers(1, 6))):
        edges = []
        for _ in range(draw(st.integers(1, 5))):
            source = draw(st.integers(0, n_inputs + j - 1))
            strided = reduce and source < n_inputs
            if draw(st.integers(0, 9)) == 0:
                edges.append(Edge(source, None, FIXED_OPS[strided]))
            else:
                pool = sorted(STRIDED_OPS if strided else NORMAL_OPS)
                edges.append(Edge(source, draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4, unique=True))))
        if draw(st.booleans()):
            node = Node(edges, "input_choice", draw(st.none() | st.integers(1, len(edges))),
                        draw(st.sampled_from(["sum", "mean"])), anonymous=draw(st.integers(0, 9)) == 0)
        else:
            node = Node(edges, "sum")
        if node.kind == "sum" or node.anonymous:  # no choose_from names these edges: they may go unlabelled
            for edge in edges:
                edge.labelled = draw(st.integers(0, 4)) > 0
        nodes.append(node)
    return CellSpec(n_inputs, nodes)


@st.composite
def cases(draw) -> Case:
    kinds = draw(st.lists(st.sampled_from(["normal", "reduce"]), min_size=1, max_size=3)
                 .filter(lambda ks: ks.count("reduce") <= 2))
    specs = {kind: draw(cell_specs(kind == "reduce")) for kind in sorted(set(kinds))}
    logits = [[[draw(st.lists(LOGITS, min_size=len(e.candidates) + 1, max_size=len(e.candidates) + 1))
                if e.candidates else [] for e in node.edges] for node in specs[kind].nodes] for kind in kinds]
    sizes = [4, 8] if "reduce" in kinds else [3, 5, 8]  # two halvings must leave at least 2 pixels
    return Case(channels=draw(st.sampled_from([2, 4, 6])), size=draw(st.sampled_from(sizes)), kinds=kinds,
                specs=specs, shared=draw(st.booleans()), logits=logits, max_final_edges=draw(st.integers(1, 3)),
                rank=draw(st.sampled_from(["darts", "logit", "renorm"])), opt_level=draw(st.sampled_from(["0", "1"])),
                seed=draw(st.integers(0, 2**16)))


# --- the supernet built from a case --------------------------------------------------------------
class Cell(nn.Module):
    def __init__(self, spec: CellSpec, channels: int, reduce: bool, prefix: str):
        super().__init__()
        self.spec = spec
        self.pre = nn.Conv2d(channels, channels, 1) if spec.n_inputs == 2 else None
        self.edges = nn.ModuleList()
        self.choices = nn.ModuleDict()
        for j, node in enumerate(spec.nodes):
            labels = []
            for e, edge in enumerate(node.edges):
                if edge.candidates is None:
                    self.edges.append(ALL_OPS[edge.fixed_op](channels))
                    labels.append(None)
                else:
                    label = f"{prefix}_n{j}_e{e}" if edge.labelled else None
                    self.edges.append(nc.LayerChoice({name: ALL_OPS[name](channels) for name in edge.candidates},
                                                     label=label))
                    labels.append(label)
            if node.kind == "input_choice":
                self.choices[str(j)] = nc.InputChoice(
                    n_chosen=node.n_chosen, label=f"{prefix}_n{j}", reduction=node.reduction,
                    choose_from=[None] * len(labels) if node.anonymous else labels)
        self.post = nn.Conv2d(channels * len(spec.nodes), channels, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        states = [h] if self.pre is None else [h, self.pre(h)]
        edges = iter(self.edges)
        for j, node in enumerate(self.spec.nodes):
            values = [next(edges)(states[edge.source]) for edge in node.edges]
            states.append(self.choices[str(j)](values) if str(j) in self.choices else sum(values))
        return self.post(torch.cat(states[self.spec.n_inputs:], dim=1))


class RandomSupernet(nc.Supernet):
    def __init__(self, case: Case):
        super().__init__()
        self.stem = nn.Conv2d(3, case.channels, 3, padding=1)
        self.cells = nn.ModuleList(
            Cell(case.specs[kind], case.channels, kind == "reduce", kind if case.shared else f"c{i}")
            for i, kind in enumerate(case.kinds))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for cell in self.cells:
            x = cell(x) if cell is not self.cells[0] else cell(self.stem(x))
        return x


def build(case: Case) -> RandomSupernet:
    torch.manual_seed(case.seed)
    model = RandomSupernet(case)
    darts_ops.randomize_batch_norm_statistics(model, case.seed)
    with torch.no_grad():
        seen = set()
        for i, cell in enumerate(model.cells):
            choices = (e for e in cell.edges if isinstance(e, nc.LayerChoice))
            for node_logits in case.logits[i]:
                for logits in node_logits:
                    if logits:
                        choice = next(choices)
                        if choice.label is None or choice.label not in seen:  # shared: the first one's logits
                            seen.add(choice.label)
                            choice.alpha.copy_(torch.tensor(logits))
    return model.eval()


def labels_of(model: nn.Module) -> dict[nc.LayerChoice, str]:
    """Each layer choice's label; an unlabelled one is labelled by its module path (as the lift does)."""
    return {choice: choice.label if choice.label is not None else path for path, choice in nc.layer_choices(model)}


# --- the brute-force reference derivation --------------------------------------------------------
@dataclass
class Expected:
    nni: dict = field(default_factory=dict)
    by_path: dict = field(default_factory=dict)
    layer_ties: set = field(default_factory=set)  # labels whose op choice broke a tie
    input_ties: set = field(default_factory=set)  # input-choice labels with a tie at the cut
    finalize_ties: set = field(default_factory=set)  # module paths of cells' sum nodes with a tie at the cut


def first_best(values: list[float], positions: list[int]) -> int:
    """The lowest position holding the maximum."""
    best = max(values[i] for i in positions)
    return min(i for i in positions if values[i] == best)


def keep_top(ranks: list[float], k: int) -> list[int]:
    """The k highest ranks, ties to the lowest position (what a stable descending sort keeps)."""
    kept: list[int] = []
    while len(kept) < min(k, len(ranks)):
        kept.append(first_best(ranks, [i for i in range(len(ranks)) if i not in kept]))
    return sorted(kept)


def below_float64_at_cut(ranks: list, kept: list[int]) -> bool:
    """Do a kept and a dropped rank differ, but by less than float64 can tell apart? (nascompile compares
    ranks in float64 log space, so there its lowest-index rule decides, as for an exact tie.)"""
    dropped = [ranks[i] for i in range(len(ranks)) if i not in kept]
    return bool(kept and dropped) and 0 < abs(min(ranks[i] for i in kept) - max(dropped)) < 1e-12


def tied_at_cut(ranks: list[float], kept: list[int]) -> bool:
    dropped = [ranks[i] for i in range(len(ranks)) if i not in kept]
    return bool(kept and dropped) and min(ranks[i] for i in kept) == max(dropped)


def derive(model: RandomSupernet, case: Case) -> Expected:
    """NNI `sample_final` for the layer and input choices, then Archai's finalize on the plain sums; input
    choices weigh each label by the rule set's edge rank (`--rank` names the rule set), as finalize does.

    Exactly, as nascompile decides (README: Semantics): the op is the first maximal logit (a tie only where
    logits are equal), and strengths and
    ranks are exact log-probabilities (log p = logit - logsumexp over all slots, the zero slot last, as NNI
    lists it), so a float32 softmax that saturates or rounds two values together cannot tie them.
    """
    out = Expected()
    paths = {module: path for path, module in model.named_modules()}
    label = labels_of(model)
    choice_of, strength = {}, {}
    for choice in label:
        logits = choice.alpha.detach().double().tolist()
        chosen = first_best(logits, list(range(len(choice.names))))
        if label[choice] not in choice_of:
            choice_of[label[choice]], strength[label[choice]] = chosen, rank_of(choice, chosen, case.rank)
            if sum(logits[i] == logits[chosen] for i in range(len(choice.names))) > 1:
                out.layer_ties.add(label[choice])
    dropped_labels: set[str] = set()
    dropped_paths: set[str] = set()
    for cell in model.cells:
        edges = iter(cell.edges)
        for j, node in enumerate(cell.spec.nodes):
            modules = [next(edges) for _ in node.edges]
            if node.kind == "input_choice":
                ic = cell.choices[str(j)]
                if ic.n_chosen is None:
                    kept = list(range(len(modules)))
                else:
                    weights = [strength.get(key, -math.inf) for key in ic.choose_from]
                    kept = keep_top(weights, ic.n_chosen)
                    assume(not below_float64_at_cut(weights, kept))
                    dropped_labels |= {key for i, key in enumerate(ic.choose_from) if i not in kept and key in strength}
                    if tied_at_cut(weights, kept):
                        out.input_ties.add(ic.label)
                out.by_path[paths[ic]] = kept
                out.nni[ic.label] = [ic.choose_from[i] for i in kept] if all(
                    isinstance(k, str) for k in ic.choose_from) and len(set(ic.choose_from)) == len(ic.choose_from) \
                    else kept
            else:
                ranked = [i for i, m in enumerate(modules) if m in label]
                ranks = [rank_of(modules[i], choice_of[label[modules[i]]], case.rank) for i in ranked]
                kept = keep_top(ranks, case.max_final_edges)
                assume(not below_float64_at_cut(ranks, kept))
                dropped_paths |= {paths[modules[ranked[r]]] for r in range(len(ranked)) if r not in kept}
                if tied_at_cut(ranks, kept):
                    out.finalize_ties.add(paths[cell] + f".n{j}")
    instances: dict[str, list[str]] = {}
    for choice, key in label.items():
        path = paths[choice]
        instances.setdefault(key, []).append(path)
        gone = key in dropped_labels or path in dropped_paths
        out.by_path[path] = [] if gone else choice.names[choice_of[key]]
    for key, key_paths in instances.items():
        everywhere = key in dropped_labels or all(p in dropped_paths for p in key_paths)
        out.nni[key] = [] if everywhere else model.get_submodule(key_paths[0]).names[choice_of[key]]
    return out


def rank_of(choice: nc.LayerChoice, chosen: int, convention: str) -> float:
    """An edge's rank in float64: DARTS log p[chosen] (zero slot included), Archai's raw logit, or NASLib's
    renormalized log p."""
    alpha = choice.alpha.detach().double().tolist()
    if convention == "darts":
        return exact_log_softmax(alpha)[chosen]
    if convention == "logit":
        return alpha[chosen]
    return exact_log_softmax(alpha[:-1])[chosen]


def exact_log_softmax(logits: list[float]) -> list:
    """log p = logit - log(sum(exp(logits))), to 60 digits (float64 would round 1e-20 apart logits together)."""
    with mpmath.workdps(60):
        total = mpmath.log(mpmath.fsum(mpmath.exp(mpmath.mpf(v)) for v in logits))
        return [mpmath.mpf(v) - total for v in logits]


# --- the property --------------------------------------------------------------------------------
def check_case(case: Case) -> None:
    model = build(case)
    x = torch.randn(1, 3, case.size, case.size, generator=torch.Generator().manual_seed(case.seed))
    result = nascompile.compile(model, (x,), pipeline=PIPELINES[case.opt_level], max_final_edges=case.max_final_edges,
                                rank=case.rank, verify_each=True)
    expected = derive(model, case)
    for what, happened in [("an op choice broke a tie", expected.layer_ties), ("an input choice tied at the cut",
                           expected.input_ties), ("finalize tied at the cut", expected.finalize_ties),
                           ("an edge was dropped", [] in expected.nni.values()), ("labels shared", case.shared),
                           ("a reduction cell", "reduce" in case.kinds)]:
        if happened:
            event(what)
    assert result.decisions == expected.nni
    assert result.choices.by_path() == expected.by_path
    assert {d.label for d in result.choices.layer.values() if d.tie} == expected.layer_ties
    assert {d.label for d in result.choices.input.values() if d.tie} == expected.input_ties
    assert sum(bool(d.tie) for d in result.choices.finalize.values()) == len(expected.finalize_ties)

    batch = torch.randn(2, 3, case.size, case.size, generator=torch.Generator().manual_seed(case.seed + 1))
    with torch.no_grad(), nc.fixed(model, {}, by_path=expected.by_path):
        reference = model(batch)
    session = ort.InferenceSession(result.to_onnx().SerializeToString(), providers=["CPUExecutionProvider"])
    (actual,) = session.run(None, {session.get_inputs()[0].name: batch.numpy()})
    torch.testing.assert_close(torch.from_numpy(actual), reference, rtol=1e-3, atol=1e-4)


@CI
@given(cases())
def test_random_supernets_compile_to_the_derived_network(case):
    check_case(case)


@pytest.mark.slow
@LONG
@given(cases())
def test_random_supernets_long_profile(case):
    check_case(case)


# --- the reference derivation itself, on hand-computed cases -------------------------------------
def test_keep_top_breaks_ties_by_lowest_position():
    assert keep_top([0.2, 0.5, 0.5, 0.1], 1) == [1]
    assert keep_top([0.2, 0.5, 0.5, 0.1], 2) == [1, 2]
    assert keep_top([0.0, 0.0, 0.0], 2) == [0, 1]
    assert keep_top([0.3], 3) == [0]
    assert tied_at_cut([0.2, 0.5, 0.5], [1]) and not tied_at_cut([0.2, 0.5, 0.5], [1, 2])


def test_first_best_and_ranks_by_hand():
    assert first_best([1.0, 3.0, 3.0, 9.0], [0, 1, 2]) == 1  # the zero slot (last) is never chosen
    choice = nc.LayerChoice({"a": nn.Identity(), "b": nn.ReLU()})
    with torch.no_grad():
        choice.alpha.copy_(torch.tensor([0.0, 1.0, 0.0]))
    e = math.e
    assert float(rank_of(choice, 1, "darts")) == pytest.approx(math.log(e / (e + 2)))  # log p, exactly
    assert rank_of(choice, 1, "logit") == 1.0
    assert float(rank_of(choice, 1, "renorm")) == pytest.approx(math.log(e / (e + 1)))
