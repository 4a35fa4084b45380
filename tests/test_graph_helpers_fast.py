"""The IR graph's fast helpers agree with networkx, and the interpreter holds only live values."""

from __future__ import annotations

import random
import weakref

import networkx as nx
import pytest
import torch

from nascompile.ir import Graph, parse_graph
from nascompile.ir.interpreter import Interpreter


def random_dag(seed: int, n: int = 60) -> Graph:
    """Nodes inserted in a shuffled order, edges (some doubled) from lower to higher levels."""
    rng = random.Random(seed)
    graph = Graph()
    levels = list(range(n))
    rng.shuffle(levels)
    for level in levels:
        graph.add_node(f"n{level}", op="relu", attrs={}, params={}, meta={})
    for dst in range(n):
        sources = [f"n{src}" for src in range(dst) if rng.random() < 0.1]
        sources += sources[:1] * (rng.random() < 0.3)  # one value read at two ports
        for port, src in enumerate(sources):
            graph.add_edge(src, f"n{dst}", port=port)
    return graph


@pytest.mark.parametrize("seed", range(20))
def test_order_is_networkx_lexicographical_order_by_insertion(seed):
    graph = random_dag(seed)
    rank = {node: i for i, node in enumerate(graph.nodes)}
    assert graph.order() == list(nx.lexicographical_topological_sort(graph, key=rank.__getitem__))


@pytest.mark.parametrize("seed", range(5))
def test_inputs_users_and_ports_agree_with_the_edge_views(seed):
    graph = random_dag(seed)
    for node in graph.nodes:
        edges = sorted(graph.in_edges(node, data="port"), key=lambda e: e[2])
        assert graph.inputs(node) == [src for src, _, _ in edges]
        assert graph.input_ports(node) == [port for _, _, port in edges]
        assert graph.users(node) == sorted((dst, port) for _, dst, port in graph.out_edges(node, data="port"))


def test_order_refuses_a_cycle():
    graph = random_dag(0, n=5)
    graph.add_edge("n4", "n0", port=9)
    graph.add_edge("n0", "n4", port=9)
    with pytest.raises(nx.NetworkXUnfeasible):
        graph.order()


def _networkx_order(graph: Graph) -> list[str]:
    rank = {node: i for i, node in enumerate(graph.nodes)}
    return list(nx.lexicographical_topological_sort(graph, key=rank.__getitem__))


def _later_source_feeds_an_earlier_one(graph: Graph) -> None:
    """An edge between two existing nodes that reorders them: the first source (no arguments) then reads a
    later-inserted one."""
    sources = [node for node in graph.nodes if not graph.in_degree(node)]
    if len(sources) > 1:
        graph.add_edge(sources[-1], sources[0], port=0)


@pytest.mark.parametrize("seed", range(10))
def test_the_kept_order_follows_every_kind_of_node_and_edge_change(seed):
    rng = random.Random(seed)
    graph = random_dag(seed, n=30)
    changes = [
        lambda g: g.add_node(f"new{rng.random()}", op="relu", attrs={}, params={}, meta={}),
        lambda g: g.add_nodes_from([(f"m{rng.random()}", {"op": "relu"})]),
        lambda g: g.remove_node(rng.choice(list(g.nodes))),
        lambda g: g.remove_nodes_from([rng.choice(list(g.nodes))]),
        lambda g: g.remove_edge(*rng.choice(list(g.edges(keys=True)))) if g.number_of_edges() else None,
        lambda g: g.remove_edges_from(list(g.in_edges(rng.choice(list(g.nodes)), keys=True))),
        lambda g: g.add_edges_from([(list(g.nodes)[-1], f"tail{rng.random()}", {"port": 0})]),
        lambda g: g.set_inputs(list(g.nodes)[-1], []),
        lambda g: _later_source_feeds_an_earlier_one(g),
        lambda g: g.replace_uses(rng.choice(list(g.nodes)), g.add_op("relu", name="fresh")),
    ]
    for _ in range(40):
        assert graph.order() == _networkx_order(graph)
        graph.order().append("not a node")  # a caller's list is its own: the kept order stays whole
        rng.choice(changes)(graph)
    assert graph.order() == _networkx_order(graph)
    graph.clear_edges()
    assert graph.order() == list(graph.nodes)
    graph.clear()
    assert graph.order() == []


def test_the_interpreter_drops_a_value_after_its_last_user():
    graph = parse_graph("""graph {
  %x = input() {index=0}
  %a = relu(%x)
  %b = tanh(%a)
  %c = sum(%b, %b)
  %output = output(%c)
}""")
    alive: dict[str, weakref.ref] = {}
    seen: list[tuple[str, bool]] = []

    def on_value(node, value):
        seen.append((node, {name: ref() is not None for name, ref in alive.items()}))
        alive[node] = weakref.ref(value)

    x = torch.randn(3)
    outputs = Interpreter(graph).run((x,), on_value=on_value)
    # %a is dropped once its only user %b has run (while %b runs, its arguments are still referenced)
    assert seen[2] == ("c", {"a": False, "b": True})
    assert alive["b"]() is None and alive["c"]() is outputs[0]
    torch.testing.assert_close(outputs[0], 2 * torch.tanh(torch.relu(x)))


def test_clone_copies_attribute_data_as_deepcopy_does():
    tensor = torch.arange(3.0)
    attrs = {"axes": [0, [1, 2]], "pads": (1, (2, 3)), "spec": {"k": [4]}, "value": tensor, "name": "x",
             "alpha": 0.5, "flag": True, "none": None}
    graph = Graph()
    graph.add_node("a", op="relu", attrs=attrs, params={}, meta={})
    copied = graph.clone().attrs("a")
    assert copied == {**attrs, "value": copied["value"]} and torch.equal(copied["value"], tensor)
    copied["axes"][1].append(9)
    copied["spec"]["k"].append(9)
    copied["value"] += 1  # a tensor in attrs is copied too (copy.deepcopy), not shared
    assert attrs["axes"] == [0, [1, 2]] and attrs["spec"] == {"k": [4]} and torch.equal(tensor, torch.arange(3.0))
    assert type(copied["pads"]) is tuple and type(copied["pads"][1]) is tuple
