"""The IR verifier: structural rules every graph must satisfy between passes.

Checks op kinds, dense argument ports, arity, required attributes and parameters, acyclicity, the
graph boundary (inputs numbered 0..k-1, one output) and the choice ops' own invariants. Errors name
the node and the module path it came from.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import networkx as nx

from ..errors import IRError
from ..nn import REDUCTIONS, is_plain_int
from .graph import Graph
from .ops import OPS, REQUIRED


def _where(graph: Graph, node: str) -> str:
    source = graph.nodes[node].get("meta", {}).get("source")
    return f"node %{node}" + (f" (from {source})" if source else "")


def _check_ports(graph: Graph, node: str) -> int:
    edges = graph._pred[node]
    if len(edges) == 1:  # the usual case: each argument from a distinct producer, one edge each
        (only,) = edges.values()
        if len(only) == 1 and next(iter(only.values()))["port"] == 0:
            return 1
    elif not edges:
        return 0
    ports = graph.input_ports(node)
    if ports != list(range(len(ports))):
        raise IRError(f"{_where(graph, node)} has argument ports {ports}; they must be 0..{len(ports) - 1} "
                      "with no gaps or duplicates (a dangling or doubled edge)")
    return len(ports)


def _check_label(where: Callable[[], str], label: object) -> None:
    if not isinstance(label, str):
        raise IRError(f"{where()}: the label must be a string")


def _check_layer_choice(graph: Graph, node: str) -> None:
    attrs = graph.attrs(node)
    candidates, modules = attrs["candidates"], attrs["modules"]
    def where() -> str:  # built only for a message: the verifier runs over every node after each pass
        return f"{_where(graph, node)}, layer choice {attrs['label']!r}"

    _check_label(where, attrs["label"])
    if not isinstance(candidates, list) or not candidates or not all(isinstance(c, str) for c in candidates):
        raise IRError(f"{where()}: `candidates` must be a non-empty list of names")
    if len(set(candidates)) != len(candidates):
        raise IRError(f"{where()}: candidate names repeat ({candidates}); a decision names one candidate")
    if not isinstance(modules, list) or len(modules) != len(candidates) or \
            not all(m is None or isinstance(m, str) for m in modules):
        raise IRError(f"{where()}: `modules` must list one module path (or null) per candidate")
    logits = graph.params(node)["logits"]
    if tuple(logits.shape) != (len(candidates),):
        raise IRError(f"{where()}: logits have shape {list(logits.shape)}, expected [{len(candidates)}]")
    for key in ("zero", "chosen"):
        value = attrs.get(key)
        if value is not None and not (is_plain_int(value) and 0 <= value < len(candidates)):
            raise IRError(f"{where()}: `{key}`={value!r} is not a candidate index")
    if attrs.get("inline"):
        wanted = len(candidates) - (attrs.get("zero") is not None)
        if any(m is not None for m in modules) or len(graph.inputs(node)) != wanted:
            raise IRError(f"{where()}: an inline layer choice takes its {wanted} non-zero candidates as its inputs, in "
                          f"order, and no modules; it has {len(graph.inputs(node))} inputs")
        return
    for i, module in enumerate(modules):
        if module is None and i != attrs.get("zero"):
            raise IRError(f"{where()}: candidate {candidates[i]!r} has no module; only the zero slot may be null")
    if attrs.get("chosen") is not None and attrs["chosen"] == attrs.get("zero") and \
            all(m is None for i, m in enumerate(modules) if i != attrs["zero"]):
        raise IRError(f"{where()}: the zero op is chosen but no other candidate has a module to shape its zeros")


def _check_input_choice(graph: Graph, node: str, n_inputs: int) -> None:
    attrs = graph.attrs(node)
    def where() -> str:
        return f"{_where(graph, node)}, input choice {attrs['label']!r}"

    _check_label(where, attrs["label"])
    choose_from = attrs["choose_from"]
    if not isinstance(choose_from, list) or len(choose_from) != n_inputs or \
            not all(key is None or isinstance(key, str) for key in choose_from):
        raise IRError(f"{where()}: `choose_from` must name one label (or null) per input ({n_inputs})")
    n_chosen = attrs.get("n_chosen")
    if n_chosen is not None and not (is_plain_int(n_chosen) and 1 <= n_chosen <= n_inputs):
        raise IRError(f"{where()}: n_chosen={n_chosen!r} must be null or between 1 and {n_inputs}")
    if attrs.get("reduction") not in REDUCTIONS:
        raise IRError(f"{where()}: reduction {attrs.get('reduction')!r} is not one of {REDUCTIONS}")


@functools.lru_cache(maxsize=None)
def _contract(op: str) -> tuple[tuple[str, ...], tuple[str, ...], frozenset[str]]:
    """(required attributes, required parameters, every parameter allowed) of an op kind, worked out once:
    the verifier runs after every pass that changed the graph, over every node."""
    spec = OPS[op]
    required = tuple(key for key, default in spec.attrs.items() if default is REQUIRED)
    return required, spec.params, frozenset(spec.params) | frozenset(spec.optional_params)


def _check_node(graph: Graph, node: str, data: dict) -> None:
    op = data.get("op")
    if op not in OPS:
        raise IRError(f"{_where(graph, node)} has unknown op {op!r}")
    spec = OPS[op]
    n_inputs = _check_ports(graph, node)
    if n_inputs < spec.min_inputs or (spec.max_inputs is not None and n_inputs > spec.max_inputs):
        want = spec.min_inputs if spec.max_inputs == spec.min_inputs else \
            f"{spec.min_inputs}..{spec.max_inputs if spec.max_inputs is not None else 'n'}"
        raise IRError(f"{_where(graph, node)}: {op} takes {want} arguments, got {n_inputs}")
    required_attrs, required_params, allowed_params = _contract(op)
    attrs, params = data["attrs"], data["params"]
    for key in required_attrs:
        if key not in attrs:
            raise IRError(f"{_where(graph, node)}: {op} needs attribute {key!r}")
    for key in required_params:
        if key not in params:
            raise IRError(f"{_where(graph, node)}: {op} needs parameter {key!r}")
    if params and not allowed_params.issuperset(params):
        raise IRError(f"{_where(graph, node)}: {op} has unknown parameters {sorted(set(params) - allowed_params)}")
    if op == "input" and not (is_plain_int(attrs["index"]) and attrs["index"] >= 0):
        raise IRError(f"{_where(graph, node)}: input index {attrs['index']!r} must be a non-negative int")
    if op == "layer_choice":
        _check_layer_choice(graph, node)
    elif op == "input_choice":
        _check_input_choice(graph, node, n_inputs)


def verify_graph(graph: Graph) -> None:
    """Raise `IRError` describing the first broken rule (and naming its node); None for a well-formed graph."""
    for node, data in graph._node.items():  # networkx's node view costs more than the checks
        try:
            _check_node(graph, node, data)
        except IRError as exc:
            exc.node = node
            raise
    try:
        graph.order()
    except nx.NetworkXUnfeasible:
        cycle = [u for u, _, *_ in nx.find_cycle(graph)]
        raise IRError("the IR graph has a cycle: " + " -> ".join(f"%{n}" for n in cycle + cycle[:1]) +
                      "; a node may only read values computed without it", node=cycle[0]) from None
    inputs = graph.nodes_of("input")
    indices = sorted(graph.attrs(n)["index"] for n in inputs)
    if indices != list(range(len(indices))):
        seen: set[int] = set()
        for node in inputs:  # the first input out of place: numbered past the count, or numbered twice
            index = graph.attrs(node)["index"]
            if index >= len(indices) or index in seen:
                raise IRError(f"graph inputs are numbered {indices}; they must be 0..{len(indices) - 1}", node=node)
            seen.add(index)
    graph.output_node()
