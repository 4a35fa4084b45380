"""Mixtures found as a pattern in one traced forward, not by class or attribute name.

A *mixture* is a sum of terms `w_j * candidate_j(x)`: every candidate a submodule called on the same
inputs, every weight an element of one weight vector `fn(logits)` (`origins.weight_element`), the
elements 0..n-1 each once (a subset when the forward skips some). Extra terms of the same sum (an
auxiliary `beta * skip(x)`) stay around it. Python's `sum()`, chains of `+` and `torch.add` are sums.

An *edge-normalized node* (PC-DARTS) is a sum of terms `b_e * edge_e(h_e, ...)` whose weights are the
elements of one vector over the node's incoming edges and whose edges are submodule calls on
different inputs; each edge must hold one mixture, which the converter checks when it has lifted them.

`classify` first reads, without running anything, which nodes of the graph carry IR values (computed
from the model's inputs) and which are parameter-derived, with their `origins.Origin`.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx

from ..module_tree import member
from .origins import Attr, Op, Slice, WeightElement, cat_part_lengths, op_name, weight_element

IR = "ir"  # a node computed from the model's inputs
_MUL_FUNCTIONS = (operator.mul, torch.mul)
_MUL_METHODS = ("mul", "__mul__", "__rmul__")
_ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)
_ADD_METHODS = ("add", "__add__", "__radd__", "__iadd__")


def _is(node: Any, functions: tuple, methods: tuple) -> bool:
    if not isinstance(node, fx.Node):
        return False
    if node.op == "call_function":
        return node.target in functions
    return node.op == "call_method" and node.target in methods


def is_add(node: Any) -> bool:
    return _is(node, _ADD_FUNCTIONS, _ADD_METHODS) and not node.kwargs.get("alpha", 1) != 1 and len(node.args) == 2


def is_mul(node: Any) -> bool:
    return _is(node, _MUL_FUNCTIONS, _MUL_METHODS) and len(node.args) == 2 and not node.kwargs


def classify(graph: fx.Graph, placeholders: list[Any], prefix: str) -> dict[fx.Node, Any]:
    """node -> IR, an Origin (parameter-derived, with its expression), or None (a plain constant).

    `placeholders[i]` says the same of the i-th placeholder.
    """
    kinds: dict[fx.Node, Any] = {}
    index = 0
    for node in graph.nodes:
        if node.op == "placeholder":
            kinds[node] = placeholders[index]
            index += 1
        elif node.op == "get_attr":
            kinds[node] = Attr(f"{prefix}.{node.target}" if prefix else node.target)
        elif node.op in ("call_function", "call_method", "call_module"):
            args = [kinds.get(a) if isinstance(a, fx.Node) else a for a in _flat((node.args, node.kwargs))]
            if any(a is IR for a in args):
                kinds[node] = IR
            elif node.op == "call_module" or not any(isinstance(a, (Attr, Op)) for a in args):
                kinds[node] = None
            else:
                kinds[node] = Op(op_name(node.op, node.target), _origin_args(node.args, kinds),
                                 tuple(sorted((k, _origin_args(v, kinds)) for k, v in node.kwargs.items())))
    return kinds


def _flat(value: Any):
    if isinstance(value, (tuple, list)):
        for item in value:
            yield from _flat(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _flat(item)
    elif isinstance(value, slice):
        yield from (value.start, value.stop, value.step)
    else:
        yield value


def _origin_args(value: Any, kinds: dict) -> Any:
    if isinstance(value, fx.Node):
        return kinds.get(value)
    if isinstance(value, (tuple, list)):
        return tuple(_origin_args(v, kinds) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _origin_args(v, kinds)) for k, v in value.items()))
    if isinstance(value, slice):
        return Slice(value.start, value.stop, value.step)
    return value if isinstance(value, (int, float, bool, str, type(None))) else None


@dataclass
class Term:
    mul: fx.Node
    call: fx.Node  # the candidate (or edge) submodule call
    weight: fx.Node
    element: WeightElement


@dataclass
class Mixture:
    """Σ_j w_j · candidate_j(x): `terms` in the order of the weight elements."""

    terms: list[Term]

    @property
    def element(self) -> WeightElement:
        return self.terms[0].element


@dataclass
class EdgeSum:
    """Σ_e b_e · edge_e(h_e): PC-DARTS's edge-normalized node, `terms` in the order of the edges."""

    terms: list[Term]


@dataclass
class SumPattern:
    """The patterns inside one tree of `+` (rooted at `root`; Python's `sum()` over sums is one tree)."""

    root: fx.Node
    mixtures: list[Mixture]
    edge_sums: list[EdgeSum]
    others: list[Any]  # the sum's other terms (fx nodes or constants), in order


@dataclass
class Plan:
    """What the converter does differently in one graph: skipped nodes and the sums it replaces."""

    skip: set[fx.Node] = field(default_factory=set)
    sums: dict[fx.Node, SumPattern] = field(default_factory=dict)
    batched: dict[fx.Node, Any] = field(default_factory=dict)  # root -> batched_mixtures.BatchedSum

    def __bool__(self) -> bool:
        return bool(self.sums or self.batched)


def _sum_roots(graph: fx.Graph) -> list[fx.Node]:
    """Roots of the trees of `+` nodes: adds whose result is not read by exactly one other add."""
    roots = []
    for node in graph.nodes:
        if is_add(node):
            users = list(node.users)
            if not (len(users) == 1 and is_add(users[0])):
                roots.append(node)
    return roots


def _leaves(root: fx.Node) -> list[Any]:
    """The terms of the sum tree at `root`, left to right."""
    out, stack = [], [root]
    while stack:
        node = stack.pop()
        if node is root or (is_add(node) and len(node.users) == 1):
            stack.extend(reversed(node.args))
        else:
            out.append(node)
    return out


def _tree_nodes(root: fx.Node) -> list[fx.Node]:
    out, stack = [], [root]
    while stack:
        node = stack.pop()
        if node is root or (isinstance(node, fx.Node) and is_add(node) and len(node.users) == 1):
            out.append(node)
            stack.extend(a for a in node.args if isinstance(a, fx.Node))
    return out


def _term(node: Any, kinds: dict, shapes_of: Any) -> Term | None:
    """`node` as `w * call(...)` with w a weight element and call a submodule call read only here."""
    if not (is_mul(node) and len(node.users) == 1):
        return None
    a, b = node.args
    for weight, call in ((a, b), (b, a)):
        if not (isinstance(call, fx.Node) and call.op == "call_module" and len(call.users) == 1):
            continue
        if not isinstance(weight, fx.Node) or not isinstance(kinds.get(weight), Op):
            continue
        origin = kinds[weight]
        element = weight_element(origin, shapes_of(origin))
        if element is not None:
            return Term(node, call, weight, element)
    return None


def find(graph: fx.Graph, kinds: dict[fx.Node, Any], model: torch.nn.Module) -> Plan:
    """Every mixture and edge-normalized sum of `graph` (see the module docstring); `model` is the
    whole model, under which origins name their tensors."""
    plan = Plan()
    if not any(isinstance(k, Op) for k in kinds.values()):
        return plan  # no parameter-derived value at all: nothing can weigh a term

    def shapes_of(origin: Any) -> dict:
        return cat_part_lengths(origin, model)

    for root in _sum_roots(graph):
        leaves = _leaves(root)
        terms = [(leaf, _term(leaf, kinds, shapes_of)) for leaf in leaves]
        groups: dict[tuple, list[Term]] = {}
        for _, term in terms:
            if term is not None:
                groups.setdefault(term.element.vector, []).append(term)
        found = SumPattern(root, [], [], [])
        used: set[fx.Node] = set()
        for group in groups.values():
            indices = [t.element.index for t in group]
            if (len(group) < 2 and not _whole_vector(group, model)) or len(set(indices)) != len(indices):
                continue
            group.sort(key=lambda t: t.element.index)
            if len({_call_inputs(t.call) for t in group}) == 1:
                found.mixtures.append(Mixture(group))
                plan.skip.update(t.call for t in group)
            else:
                found.edge_sums.append(EdgeSum(group))
            used.update(t.mul for t in group)
        if not used:
            continue
        found.others = [leaf for leaf in leaves if leaf not in used]
        plan.sums[root] = found
        plan.skip.update(used)
        plan.skip.update(n for n in _tree_nodes(root) if n is not root)
    from .batched_mixtures import find_batched  # it imports this module

    plan.batched = find_batched([r for r in _sum_roots(graph) if r not in plan.sums], _leaves, kinds)
    for root, pattern in plan.batched.items():
        plan.skip.update(n for group in pattern.groups for t in group for n in (t.reduce, t.mul))
        plan.skip.update(n for n in _tree_nodes(root) if n is not root)
    return plan


def _whole_vector(group: list[Term], model: torch.nn.Module) -> bool:
    """A single term whose weight vector has length 1 (a one-candidate mixture)."""
    return len(group) == 1 and group[0].element.logits.value(model).numel() == 1


def _call_inputs(call: fx.Node) -> tuple:
    return (tuple(call.args), tuple(sorted(call.kwargs.items())))


_PLAIN: dict[tuple, bool] = {}


def is_plain_mixture(module: torch.nn.Module, ops_attr: str = "_ops") -> bool:
    """Does `module.forward(x, weights)` compute exactly Σ_j weights[j] · module.<ops_attr>[j](x)?

    The fast recognizers (DARTS reference, Archai) keep such a mixed op as one leaf; any other forward
    (partial channels, an auxiliary term, cells holding several mixed ops) is traced and its mixtures
    found as patterns, so that nothing it computes is dropped. Answered once per class and op count.
    """
    ops = member(module, ops_attr)
    key = (type(module), ops_attr, len(ops) if ops is not None else None)
    if key not in _PLAIN:
        _PLAIN[key] = _probe_plain(module, ops_attr, len(ops or ()))
    return _PLAIN[key]


def _probe_plain(module: torch.nn.Module, ops_attr: str, n: int) -> bool:
    """Trace `module` with a tainted input and stand-in weights and check the whole forward is one mixture."""
    from .concrete import Tainted  # the tracer imports this module's neighbours; import late
    from .tracer import ScopeTracer, bind_call

    if n < 2:
        return False
    try:
        values = [Tainted(None), torch.zeros(n)]
        binding = bind_call(module, tuple(values), {}, lambda v: True)
        binding.placeholder_value = lambda i: values[i]
        trace = ScopeTracer(module, "", binding).run()
    except Exception:
        return False
    graph = trace.graph
    if len([n_ for n_ in graph.nodes if n_.op == "placeholder"]) != 2:
        return False
    kinds = classify(graph, [IR, Op("softmax", (Attr("__weights__"),))], "")
    plan = find(graph, kinds, module)
    output = next(n_ for n_ in graph.nodes if n_.op == "output")
    if len(plan.sums) != 1:
        return False
    (root, pattern), = plan.sums.items()
    if output.args[0] is not root or len(pattern.mixtures) != 1 or pattern.edge_sums:
        return False
    if any(not (isinstance(o, (int, float)) and o == 0) for o in pattern.others):
        return False
    targets = [t.call.target for t in pattern.mixtures[0].terms]
    if targets != [f"{ops_attr}.{j}" for j in range(n)]:
        return False
    covered = plan.skip | {root}
    return all(kinds.get(node) is not IR or node in covered for node in graph.nodes if node.op != "placeholder")
