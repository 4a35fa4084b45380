"""The IR text form: printing is deterministic, parsing reads it back exactly, errors name line and column."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nascompile
from nascompile.errors import IRError
from nascompile.frontend import lift
from nascompile.ir import Graph, graphs_equal, parse_graph, print_graph

from conftest import example

# Every kind of value the text form has: NaN/inf floats (attr and tensor), nested and empty lists, a string
# with quotes and a backslash, bool and null attributes, a 0-d and an empty tensor, an int tensor, a bool
# tensor, meta type and location, and a value feeding two ports of one node (`x + x`).
FULL = r"""graph {
  %x = input() {index=0} : f32[2,3]
  %k = constant() params(value: f32[2,3] = [[nan, inf, -inf], [1e-45, -0.5, 3.4028234663852886e+38]])
  %s = sum(%x, %x, %k) {flag=true, nest=[[1, 2.5], [], [-inf, nan]], none=null, note="he said \"hi\" \\ ok"} loc("cell.0")
  %z = constant() {value=-3} params(value: f32[] = 0.25)
  %e = constant() params(value: i64[0] = [])
  %i = constant() params(value: i64[2] = [-9007199254740993, 7])
  %b = constant() params(value: bool[2] = [true, false])
  %output = output(%s, %z, %e, %i, %b)
}
"""


def test_round_trip_with_values_is_exact():
    graph = parse_graph(FULL)
    text = print_graph(graph, values=True)
    again = parse_graph(text)
    assert graphs_equal(graph, again)
    assert print_graph(again, values=True) == text


def test_parsed_values_are_the_written_ones():
    graph = parse_graph(FULL)
    attrs = graph.attrs("s")
    assert attrs["flag"] is True and attrs["none"] is None
    assert attrs["note"] == 'he said "hi" \\ ok'
    assert attrs["nest"][0] == [1, 2.5] and isinstance(attrs["nest"][0][0], int)
    assert attrs["nest"][1] == []
    assert attrs["nest"][2][0] == -math.inf and math.isnan(attrs["nest"][2][1])
    value = graph.params("k")["value"]
    assert value.dtype == torch.float32 and value.shape == (2, 3)
    assert math.isnan(value[0, 0]) and value[0, 1] == math.inf and value[0, 2] == -math.inf
    assert value[1, 0].item() == 2.0 ** -149  # the smallest float32 subnormal, written as 1e-45
    assert value[1, 2].item() == torch.finfo(torch.float32).max
    assert graph.params("z")["value"].shape == () and graph.params("z")["value"].item() == 0.25
    assert graph.attrs("z")["value"] == -3
    assert graph.params("e")["value"].shape == (0,)
    assert graph.params("i")["value"].tolist() == [-9007199254740993, 7]  # not representable as a double
    assert graph.params("b")["value"].tolist() == [True, False]
    assert graph.meta("x") == {"dtype": "f32", "shape": [2, 3]}
    assert graph.meta("s")["source"] == "cell.0"


def test_multigraph_edges_keep_their_ports():
    graph = parse_graph(FULL)
    assert graph.inputs("s") == ["x", "x", "k"]
    assert graph.number_of_edges("x", "s") == 2
    assert "%s = sum(%x, %x, %k)" in print_graph(graph)


def test_printed_form_is_the_documented_one():
    graph = Graph()
    x = graph.add_op("input", name="x", attrs={"index": 0}, meta={"dtype": "f32", "shape": [1, 4]})
    # attributes given out of order are printed sorted by name
    r = graph.add_op("leaky_relu", [x], name="r", attrs={"negative_slope": 0.5}, meta={"source": "act"})
    a = graph.add_op("add", [r, x], name="a")
    graph.add_op("output", [a], name="output")
    assert print_graph(graph) == (
        "graph {\n"
        "  %x = input() {index=0} : f32[1,4]\n"
        '  %r = leaky_relu(%x) {negative_slope=0.5} loc("act")\n'
        "  %a = add(%r, %x)\n"
        "  %output = output(%a)\n"
        "}\n"
    )


def test_params_without_values_print_their_type_and_parse_as_zeros():
    graph = parse_graph(FULL)
    text = print_graph(graph)
    assert "params(value: f32[2,3])" in text and "nan" not in text.split("%s =")[0]
    again = parse_graph(text)
    assert torch.equal(again.params("k")["value"], torch.zeros(2, 3))
    assert not graphs_equal(graph, again)


def test_printing_is_deterministic_and_independent_of_attr_insertion_order():
    a, b = Graph(), Graph()
    for graph, attrs in ((a, {"dims": [1], "keepdim": True}), (b, {"keepdim": True, "dims": [1]})):
        x = graph.add_op("input", name="x", attrs={"index": 0})
        m = graph.add_op("reduce_mean", [x], name="m", attrs=attrs)
        graph.add_op("output", [m], name="output")
    assert print_graph(a) == print_graph(a) == print_graph(b)
    assert "{dims=[1], keepdim=true}" in print_graph(a)


def test_print_order_is_topological_even_when_inserted_backwards():
    graph = Graph()
    graph.add_node("output", op="output", attrs={}, params={}, meta={})
    graph.add_node("r", op="relu", attrs={}, params={}, meta={})
    graph.add_node("x", op="input", attrs={"index": 0}, params={}, meta={})
    graph.add_edge("x", "r", port=0)
    graph.add_edge("r", "output", port=0)
    lines = print_graph(graph).splitlines()
    assert [line.split(" =")[0].strip() for line in lines[1:-1]] == ["%x", "%r", "%output"]


# --- graphs_equal -----------------------------------------------------------------------------------
BASE = """graph {
  %x = input() {index=0}
  %y = input() {index=1}
  %d = sub(%x, %y) {tag=1}
  %c = constant() params(value: f32[2] = [1.0, nan])
  %output = output(%d, %c)
}
"""


def test_graphs_equal_ignores_insertion_order_and_matches_nan():
    a = parse_graph(BASE)
    b = Graph()
    b.add_node("output", op="output", attrs={}, params={}, meta={})
    b.add_node("c", op="constant", attrs={"value": None}, params={"value": torch.tensor([1.0, math.nan])}, meta={})
    b.add_node("d", op="sub", attrs={"tag": 1}, params={}, meta={})
    b.add_node("y", op="input", attrs={"index": 1}, params={}, meta={})
    b.add_node("x", op="input", attrs={"index": 0}, params={}, meta={})
    b.add_edge("c", "output", port=1)
    b.add_edge("d", "output", port=0)
    b.add_edge("y", "d", port=1)
    b.add_edge("x", "d", port=0)
    assert graphs_equal(a, b) and graphs_equal(b, a)


@pytest.mark.parametrize("old, new", [
    ("%d = sub(%x, %y)", "%d = sub(%y, %x)"),  # argument order
    ("{tag=1}", "{tag=1.0}"),  # int vs float attribute
    ("{tag=1}", "{tag=true}"),  # int vs bool attribute
    ("{tag=1}", ""),  # missing attribute
    ("[1.0, nan]", "[1.0, 2.0]"),  # tensor value
    ("f32[2] = [1.0, nan]", "f64[2] = [1.0, nan]"),  # tensor dtype
    ("%d = sub(%x, %y) {tag=1}", '%d = sub(%x, %y) {tag=1} loc("m")'),  # source location
    ("%d = sub", "%d = add"),  # op
])
def test_graphs_equal_sees_each_difference(old, new):
    assert old in BASE
    assert not graphs_equal(parse_graph(BASE), parse_graph(BASE.replace(old, new)))


def test_graphs_equal_sees_a_different_node_set():
    other = BASE.replace("%c = constant() params(value: f32[2] = [1.0, nan])\n", "").replace(", %c)", ")")
    assert not graphs_equal(parse_graph(BASE), parse_graph(other))


def test_attributes_left_to_their_defaults_compare_equal_to_written_defaults():
    a, b = Graph(), Graph()
    for graph, attrs in ((a, {}), (b, {"value": None})):
        graph.add_op("input", name="x", attrs={"index": 0}, meta={"source": ""})
        graph.add_op("constant", name="k", attrs=attrs, params={"value": torch.ones(2)})
        graph.add_op("output", ["x", "k"], name="output")
    assert graphs_equal(a, b)
    assert graphs_equal(a, parse_graph(print_graph(a, values=True)))  # an empty source prints as no loc(...)


@pytest.mark.parametrize("compile_it", [False, True], ids=["lifted", "compiled"])
@pytest.mark.parametrize("name, network", [("darts_cnn", "DartsNetwork"), ("nb201_cell", "NB201Network")])
def test_real_graphs_round_trip(name, network, compile_it):
    module = example(name)
    model = getattr(module, network)(c=4).eval()  # narrow, so that printing every weight stays quick
    inputs = module.example_inputs()
    graph = nascompile.compile(model, inputs).graph if compile_it else lift(model, inputs)[0]
    text = print_graph(graph, values=True)
    again = parse_graph(text)
    assert graphs_equal(graph, again)
    assert print_graph(again, values=True) == print_graph(parse_graph(print_graph(again, values=True)), values=True)


# --- parse errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("text, line, column, words", [
    ("graph {\n  %x = input() {index=0}\n  %y = frobnicate(%x)\n  %output = output(%y)\n}\n",
     3, 8, "unknown op 'frobnicate'"),
    ("graph {\n  %x = input() {index=0}\n  %output = output(%zz)\n}\n", 3, 20, "%zz is not defined"),
    ("graph {\n  %x = input() {index=0}\n  %x = relu(%x)\n  %output = output(%x)\n}\n",
     3, 3, "node %x is defined twice"),
    ("graph {\n  %x = input() {index=0} : q7[1]\n  %output = output(%x)\n}\n", 2, 28, "unknown dtype 'q7'"),
    ('graph {\n  %x = input() {index=0}\n  %k = constant() params(value: f32[2] = [1.0, "a"])\n'
     "  %output = output(%x)\n}\n", 3, 42, "bad tensor value for param 'value'"),
    ("graph {\n  %x = input() {index=0}\n  %k = constant() params(value: f32[3] = [1.0, 2.0])\n"
     "  %output = output(%x)\n}\n", 3, 42, "has shape [2], type says [3]"),
    ("graph {\n  %x = input() {index=0}\n  %k = constant() params(value: f32[2,2] = [[1.0], [2.0, 3.0]])\n"
     "  %output = output(%x)\n}\n", 3, 44, "bad tensor value"),
    ("graph {\n  %x = input() {index=0}\n  %output = output(%x)\n} extra\n", 4, 3, "found 'extra'"),
    ('graph {\n  %x = input() {index=0, s="abc}\n  %output = output(%x)\n}\n', 2, 28, "unexpected character '\"'"),
    ("graph {\n  %x = input() {index=0}\n", 3, 1, "expected a node or '}'"),
    ("graph {\n  %x = input() {index=0} @\n}\n", 2, 26, "unexpected character '@'"),
    ("graph {\n  %x = input() {index=0} : f32[1.5]\n  %output = output(%x)\n}\n", 2, 32, "dimension size"),
    ("graph {\n  %x = input() {index=}\n  %output = output(%x)\n}\n", 2, 23, "expected a value"),
])
def test_parse_errors_name_line_and_column(text, line, column, words):
    with pytest.raises(IRError) as info:
        parse_graph(text)
    message = str(info.value)
    assert f"line {line}, column {column}" in message
    assert words in message


def test_parse_verifies_unless_told_not_to():
    text = "graph {\n  %x = input() {index=0}\n  %r = relu(%x, %x)\n  %output = output(%r)\n}\n"
    with pytest.raises(IRError, match="relu takes 1 arguments, got 2"):
        parse_graph(text)
    assert parse_graph(text, verify=False).inputs("r") == ["x", "x"]


def test_parse_refuses_non_text():
    with pytest.raises(IRError, match="must be a str"):
        parse_graph(b"graph {}")


# --- property: any attribute value and tensor round-trips ------------------------------------------
ATTR_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: st.lists(children, max_size=4),
    max_leaves=12,
)
FLOAT32 = st.floats(width=32, allow_nan=True, allow_infinity=True)


@settings(max_examples=150, deadline=None)
@given(attrs=st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True), ATTR_VALUES, max_size=4),
       values=st.lists(FLOAT32, min_size=1, max_size=6))
def test_any_attribute_value_and_float32_tensor_round_trip(attrs, values):
    graph = Graph()
    x = graph.add_op("input", name="x", attrs={"index": 0})
    k = graph.add_op("constant", name="k", attrs={"value": None},  # defaults written out, as the parser does
                     params={"value": torch.tensor(values, dtype=torch.float32)})
    s = graph.add_op("sum", [x, x, k], name="s", attrs=attrs)
    graph.add_op("output", [s], name="output")
    text = print_graph(graph, values=True)
    again = parse_graph(text)
    assert graphs_equal(graph, again), text
    assert print_graph(again, values=True) == text
