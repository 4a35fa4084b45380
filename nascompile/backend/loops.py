"""The time loop of a recurrent network, found in the unrolled discrete IR and proven step-invariant.

The lift unrolls `for t in range(inputs.size(0))` at the example's length. For a file that takes any
length, the emitter rolls the steps back into one ONNX `Scan`, but only what it can prove:

- the per-step states h_0..h_{T-1} are stacked (`torch.stack(hiddens)`: `cat` on dim 0 of `unsqueeze(h_t, 0)`);
- step t is the nodes h_t needs that h_{t-1} does not; every step matches step 1 node for node (same op,
  attributes and weights; inputs matched recursively), reading h_{t-1} where step 1 reads h_0, the initial
  state where step 0 does, and the time slice `x[t]` of one sequence `x` where step 1 reads `x[1]`;
- nothing outside the steps reads a step's values except through the stack (and the last state);
- a step reads no other outer value than constants (ONNX would hide such a read inside the body).

`find_time_loop` returns the loop, or None with the reason. `same_loop` compares the loops of two compiles at
different lengths (the body and the graph around the loop must be identical): `CompileResult` compiles at a
second length before it writes a `Scan`, and validation then runs at both lengths.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import torch

from ..ir.graph import Graph


@dataclass
class TimeLoop:
    stack: str  # the cat stacking the states: becomes the Scan's scan output
    states: list[str]  # h_0 .. h_{T-1}
    unsqueezes: list[str]
    body: list[str]  # step 1's nodes, in graph order (the template)
    body_state: str  # h_0, read by the template as the carried state
    init: str  # the initial state (what step 0 reads in its place)
    sequence: str  # the sequence sliced along dim 0
    body_slices: list[str]  # the template's select(sequence, 0, 1) nodes
    members: set[str] = field(default_factory=set)  # every node of every step (not emitted outside the Scan)

    @property
    def length(self) -> int:
        return len(self.states)


def _stacks(graph: Graph) -> list[str]:
    out = []
    for node in graph.order():
        if graph.op(node) != "cat" or graph.attrs(node).get("dim") != 0:
            continue
        inputs = graph.inputs(node)
        if len(inputs) >= 2 and all(graph.op(u) == "unsqueeze" and graph.attrs(u)["dim"] == 0
                                    and [v for v, _ in graph.users(u)] == [node] for u in inputs):
            out.append(node)
    return out


def _closure(graph: Graph, node: str) -> set[str]:
    return nx.ancestors(graph, node) | {node}


def _same_node(graph: Graph, a: str, b: str) -> bool:
    if graph.op(a) != graph.op(b) or graph.attrs(a) != graph.attrs(b):
        return False
    pa, pb = graph.params(a), graph.params(b)
    if pa.keys() != pb.keys():
        return False
    return all(x is y or (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.shape == y.shape
                          and x.dtype == y.dtype and torch.equal(x, y)) for x, y in ((pa[k], pb[k]) for k in pa))


def find_time_loop(graph: Graph) -> tuple[TimeLoop | None, str]:
    """The provable time loop of `graph`, or (None, why not)."""
    stacks = _stacks(graph)
    if not stacks:
        return None, "no stacked per-step states (torch.stack of the hidden states) were found"
    reasons = []
    for stack in stacks:
        loop, reason = _loop_at(graph, stack)
        if loop is not None:
            return loop, ""
        reasons.append(reason)
    return None, reasons[0]


def _loop_at(graph: Graph, stack: str) -> tuple[TimeLoop | None, str]:
    unsqueezes = graph.inputs(stack)
    states = [graph.inputs(u)[0] for u in unsqueezes]
    T = len(states)
    template = _closure(graph, states[1]) - _closure(graph, states[0])
    slices = [n for n in template if graph.op(n) == "select" and graph.attrs(n)["dim"] == 0
              and graph.attrs(n)["index"] == 1 and graph.inputs(n)[0] not in template]
    sequences = {graph.inputs(n)[0] for n in slices}
    if not sequences:
        return None, "no sequence is read one time step at a time by the stacked steps"
    if len(sequences) != 1:
        return None, f"step 1 reads {len(sequences)} sequences by its time index (one is needed)"
    sequence = sequences.pop()
    if (graph.meta(sequence).get("shape") or [None])[0] != T:
        return None, f"the sequence the steps read is not {T} steps long"
    state = states[0]
    for node in template:
        for src in graph.inputs(node):
            if src not in template and src != state and src != sequence and graph.op(src) != "constant":
                return None, (f"step 1 reads %{src} ({graph.op(src)}), computed outside the steps; only the carried "
                              "state, the sequence's time slice and constants may enter a step")
    members: set[str] = set()
    init = None
    for t in range(T):
        mapping: dict[str, str] = {}
        found: dict[str, str] = {}
        if not _match(graph, states[t], states[1], t, template, state, sequence, states, mapping, found):
            return None, f"step {t} differs from step 1 (the loop body is not the same at every step)"
        if t == 0:
            init = found.get("init")
            if init is None:
                return None, "step 0 reads no initial state"
        step = set(mapping.values())
        if step & members:
            return None, f"step {t} shares nodes with an earlier step"
        members |= step
    allowed = members | set(unsqueezes)
    for node in members:
        for user, _ in graph.users(node):
            if user not in allowed and node != states[-1]:
                return None, f"%{user} ({graph.op(user)}) outside the loop reads %{node} inside step values"
    if init in members or sequence in members or _closure(graph, init) & members:
        return None, "the initial state or the sequence depends on a step"
    body = [n for n in graph.order() if n in template]
    return TimeLoop(stack, states, unsqueezes, body, state, init, sequence,
                    [n for n in body if n in slices], members), ""


def _match(graph: Graph, a: str, b: str, t: int, template: set[str], state: str, sequence: str,
           states: list[str], mapping: dict[str, str], found: dict[str, str]) -> bool:
    """Is `a` (in step t) the image of template node `b` (in step 1)?"""
    if b in mapping:
        return mapping[b] == a
    if b == state:
        if t == 0:
            return found.setdefault("init", a) == a
        return a == states[t - 1]
    if b not in template:
        return a == b or (graph.op(a) == graph.op(b) == "constant" and _same_node(graph, a, b))
    if graph.op(b) == "select" and graph.inputs(b)[0] == sequence and graph.attrs(b)["dim"] == 0 \
            and graph.attrs(b)["index"] == 1:
        ok = (graph.op(a) == "select" and graph.inputs(a) == [sequence] and graph.attrs(a)["dim"] == 0
              and graph.attrs(a)["index"] == t)
    else:
        ok = _same_node(graph, a, b) and len(graph.inputs(a)) == len(graph.inputs(b)) and all(
            _match(graph, x, y, t, template, state, sequence, states, mapping, found)
            for x, y in zip(graph.inputs(a), graph.inputs(b)))
    if ok:
        if a in mapping.values() and mapping.get(b) != a:
            return False  # two template nodes onto one node
        mapping[b] = a
    return ok


def same_loop(graph_a: Graph, loop_a: TimeLoop, graph_b: Graph, loop_b: TimeLoop) -> str:
    """'' when two compiles at different lengths have the same loop body and the same graph around it,
    else what differs."""
    def signature(graph: Graph, loop: TimeLoop) -> list:
        names = {loop.body_state: "<state>"}
        out = []
        rename = {loop.stack: "<stack>", loop.body_state: "<state>", loop.init: None, loop.sequence: None}
        outer = [n for n in graph.order() if n not in loop.members and n not in loop.unsqueezes]
        for n in outer + ["|"] + loop.body:
            if n == "|":
                out.append("|")
                continue
            names[n] = rename.get(n) or f"v{len(names)}"
            if n == loop.stack:  # the Scan's output: its inputs are the steps, as many as the length
                out.append(("stack", graph.attrs(n)["dim"]))
                continue
            attrs = dict(graph.attrs(n))
            if graph.op(n) == "select" and n in loop.body_slices:
                attrs.pop("index")
            if graph.op(n) == "input":
                attrs = {"index": attrs["index"]}
            shape = list(graph.meta(n).get("shape") or [])
            out.append((graph.op(n), sorted((k, repr(v)) for k, v in attrs.items()),
                        tuple(names.get(s, "?") for s in graph.inputs(n)),
                        tuple(sorted((k, tuple(p.shape)) for k, p in graph.params(n).items()
                                     if isinstance(p, torch.Tensor))),
                        len(shape)))
        return out

    a, b = signature(graph_a, loop_a), signature(graph_b, loop_b)
    if len(a) != len(b):
        return f"the graphs at lengths {loop_a.length} and {loop_b.length} have {len(a)} and {len(b)} nodes outside the loop and in its body"
    for x, y in zip(a, b):
        if x != y:
            return f"at lengths {loop_a.length} and {loop_b.length} the graphs differ ({x} vs {y})"
    return ""


def emit_scan(e, loop: TimeLoop) -> tuple[str, str]:
    """Lower the loop as one ONNX Scan into emitter `e`; returns (final state, stacked states) value names."""
    from onnx import helper

    from .onnx import LOWERINGS, _ONNX_TYPES, Emitter
    from .protos import add_node

    graph = e.graph
    body = Emitter(graph, e.opset, e.dynamic_spatial)  # its nodes go to its own graph: the Scan's body
    body.initializers, body._tensor_names, body._constants = e.initializers, e._tensor_names, e._constants
    body._taken, body._suffixes, body.weights_written = e._taken, e._suffixes, e.weights_written
    state_in, step_in = e.unique("loop.state_in"), e.unique("loop.step_in")
    body.values[loop.body_state] = state_in
    for node in loop.body:
        if node in loop.body_slices:
            body.values[node] = step_in
            continue
        if graph.op(node) == "constant":  # materialized where it is read, as outside the loop
            continue
        lowering = LOWERINGS.get(graph.op(node))
        if lowering is None:
            raise e.fail(node, f"no ONNX lowering for op {graph.op(node)!r} (in the time loop's body)")
        body.values[node] = lowering(body, node, graph.attrs(node))
    last = loop.body[-1] if loop.body[-1] == loop.states[1] else loop.states[1]
    state_out, step_out = e.unique("loop.state_out"), e.unique("loop.step_out")
    add_node(body.nodes, "Identity", [body.values[last]], [state_out], e.unique("loop/state"), {})
    add_node(body.nodes, "Identity", [body.values[last]], [step_out], e.unique("loop/step"), {})

    def info(name: str, node: str):
        meta = graph.meta(node)
        return helper.make_tensor_value_info(name, _ONNX_TYPES[meta["dtype"]], [None] * len(meta["shape"]))

    step_node = loop.body_slices[0]
    body_graph = body.model.graph
    body_graph.name = "time_step"
    body_graph.input.extend([info(state_in, loop.body_state), info(step_in, step_node)])
    body_graph.output.extend([info(state_out, loop.states[1]), info(step_out, loop.states[1])])
    final, stacked = e.add("Scan", [e.values[loop.init], e.values[loop.sequence]], "time_loop", n_outputs=2,
                           body=body_graph, num_scan_inputs=1)
    return final, stacked
