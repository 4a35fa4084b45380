"""The IR verifier: each structural rule rejects a broken graph with a message naming what and where."""

from __future__ import annotations

import pytest

from nascompile.errors import IRError
from nascompile.ir import parse_graph, verify_graph

RELU = """graph {
  %x = input() {index=0}
  %r = relu(%x) loc("blk.act")
  %output = output(%r)
}
"""


def rejects(graph, *fragments: str) -> None:
    with pytest.raises(IRError) as info:
        verify_graph(graph)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def parse(text: str):
    return parse_graph(text, verify=False)


def test_a_well_formed_graph_passes():
    assert verify_graph(parse_graph(RELU)) is None


def test_dangling_port_is_rejected():
    graph = parse(RELU)
    graph.remove_edges_from(list(graph.in_edges("r", keys=True)))
    graph.add_edge("x", "r", port=1)  # argument 0 missing
    rejects(graph, "node %r (from blk.act) has argument ports [1]", "dangling or doubled edge")


def test_duplicate_port_is_rejected():
    graph = parse(RELU)
    graph.add_edge("x", "r", port=0)
    rejects(graph, "node %r (from blk.act) has argument ports [0, 0]", "no gaps or duplicates")


def test_cycle_is_rejected_and_printed():
    graph = parse("""graph {
  %x = input() {index=0}
  %a = relu(%x)
  %b = relu(%a)
  %output = output(%b)
}
""")
    graph.remove_edges_from(list(graph.in_edges("a", keys=True)))
    graph.add_edge("b", "a", port=0)
    rejects(graph, "the IR graph has a cycle: %a -> %b -> %a")


def test_unknown_op_is_rejected():
    graph = parse(RELU)
    graph.nodes["r"]["op"] = "frobnicate"
    rejects(graph, "node %r (from blk.act) has unknown op 'frobnicate'")


def test_wrong_arity_is_rejected():
    graph = parse("graph {\n  %x = input() {index=0}\n  %a = add(%x)\n  %output = output(%a)\n}\n")
    rejects(graph, "node %a: add takes 2 arguments, got 1")
    graph = parse("graph {\n  %x = input() {index=0}\n  %y = input(%x) {index=1}\n  %output = output(%y)\n}\n")
    rejects(graph, "node %y: input takes 0 arguments, got 1")


def test_missing_required_attribute_is_rejected():
    graph = parse(RELU)
    graph.nodes["r"]["op"] = "max_pool2d"  # needs kernel_size and stride, which have no default
    rejects(graph, "node %r (from blk.act): max_pool2d needs attribute 'kernel_size'")


def test_missing_required_parameter_is_rejected():
    graph = parse("graph {\n  %x = input() {index=0}\n  %c = conv2d(%x)\n  %output = output(%c)\n}\n")
    rejects(graph, "node %c: conv2d needs parameter 'weight'")


def test_unknown_parameter_is_rejected():
    graph = parse("graph {\n  %x = input() {index=0}\n  %c = relu(%x) params(w: f32[1], a: f32[1])\n"
                  "  %output = output(%c)\n}\n")
    rejects(graph, "node %c: relu has unknown parameters ['a', 'w']")


def test_optional_parameter_is_accepted():
    verify_graph(parse("graph {\n  %x = input() {index=0}\n  %l = linear(%x) params(bias: f32[2], weight: f32[2,3])\n"
                       "  %output = output(%l)\n}\n"))


@pytest.mark.parametrize("inputs, numbered", [
    ("%x = input() {index=1}", "[1]; they must be 0..0"),
    ("%x = input() {index=0}\n  %y = input() {index=0}", "[0, 0]; they must be 0..1"),
    ("%x = input() {index=0}\n  %y = input() {index=2}", "[0, 2]; they must be 0..1"),
])
def test_inputs_must_be_numbered_densely(inputs, numbered):
    rejects(parse(f"graph {{\n  {inputs}\n  %output = output(%x)\n}}\n"), f"graph inputs are numbered {numbered}")


def test_input_needs_an_index():
    rejects(parse("graph {\n  %x = input()\n  %output = output(%x)\n}\n"), "node %x: input needs attribute 'index'")


@pytest.mark.parametrize("outputs, found", [("", 0), ("%o1 = output(%x)\n  %o2 = output(%x)", 2)])
def test_exactly_one_output_node(outputs, found):
    rejects(parse(f"graph {{\n  %x = input() {{index=0}}\n  {outputs}\n}}\n"),
            f"an IR graph needs exactly one `output` node, found {found}")


# --- layer_choice ---------------------------------------------------------------------------------
LAYER = """graph {
  %x = input() {index=0}
  %lc = layer_choice(%x) {candidates=CANDS, label=LABEL, modules=MODS, zero=ZERO CHOSEN} params(logits: f32[N]) loc("cell.e0")
  %output = output(%lc)
}
"""


def layer(cands='["a", "none"]', mods='["m.a", null]', zero="1", chosen="", n="2", label='"e0"'):
    text = LAYER
    for key, value in (("CANDS", cands), ("MODS", mods), ("ZERO", zero), ("CHOSEN", chosen), ("N", n),
                       ("LABEL", label)):
        text = text.replace(key, value)
    return parse(text)


def test_a_well_formed_layer_choice_passes():
    verify_graph(layer())
    verify_graph(layer(chosen=", chosen=0"))
    verify_graph(layer(chosen=", chosen=1"))  # the zero op itself, as NAS-Bench-201's rules may choose


WHERE = "node %lc (from cell.e0), layer choice 'e0': "


@pytest.mark.parametrize("kwargs, message", [
    (dict(cands="[]", mods="[]", n="0"), "`candidates` must be a non-empty list of names"),
    (dict(cands='["a", 1]'), "`candidates` must be a non-empty list of names"),
    (dict(cands='"ab"'), "`candidates` must be a non-empty list of names"),
    (dict(mods='["m.a"]'), "`modules` must list one module path (or null) per candidate"),
    (dict(n="3"), "logits have shape [3], expected [2]"),
    (dict(zero="2"), "`zero`=2 is not a candidate index"),
    (dict(zero="-1"), "`zero`=-1 is not a candidate index"),
    (dict(chosen=", chosen=5"), "`chosen`=5 is not a candidate index"),
])
def test_bad_layer_choice_attrs_are_rejected(kwargs, message):
    rejects(layer(**kwargs), WHERE + message)


def test_layer_choice_needs_label_and_logits():
    rejects(parse('graph {\n  %x = input() {index=0}\n  %lc = layer_choice(%x) {candidates=["a"], modules=["m"]} '
                  "params(logits: f32[1])\n  %output = output(%lc)\n}\n"), "layer_choice needs attribute 'label'")
    rejects(parse('graph {\n  %x = input() {index=0}\n  %lc = layer_choice(%x) {candidates=["a"], label="l", '
                  'modules=["m"]}\n  %output = output(%lc)\n}\n'), "layer_choice needs parameter 'logits'")


@pytest.mark.parametrize("kwargs, message", [
    (dict(zero="true"), "`zero`=True is not a candidate index"),  # a bool is not an index
    (dict(chosen=", chosen=false"), "`chosen`=False is not a candidate index"),
    (dict(label="3"), "label must be a string"),
    (dict(cands='["a", "a", "none"]', mods='["m.a", "m.b", null]', zero="2", n="3"), "candidate names repeat"),
    (dict(mods='[5, null]'), "`modules` must list one module path (or null) per candidate"),
    (dict(mods='[null, null]'), "candidate 'a' has no module"),  # only the zero slot may lack one
])
def test_layer_choice_attr_types_are_checked(kwargs, message):
    graph = layer(**kwargs)
    with pytest.raises(IRError, match="layer choice") as info:
        verify_graph(graph)
    assert message in str(info.value)


# --- input_choice ---------------------------------------------------------------------------------
INPUT = """graph {
  %x = input() {index=0}
  %y = input() {index=1}
  %ic = input_choice(%x, %y) {choose_from=FROM, label=LABEL, n_chosen=K, reduction=RED} loc("cell.n2")
  %output = output(%ic)
}
"""


def input_choice(choose_from='["a", "b"]', k="1", reduction='"sum"', label='"n2"'):
    text = INPUT
    for key, value in (("FROM", choose_from), ("K", k), ("RED", reduction), ("LABEL", label)):
        text = text.replace(key, value)
    return parse(text)


@pytest.mark.parametrize("k", ["null", "1", "2"])
@pytest.mark.parametrize("reduction", ['"sum"', '"mean"', '"concat"', '"none"'])
def test_well_formed_input_choices_pass(k, reduction):
    verify_graph(input_choice(k=k, reduction=reduction))
    verify_graph(input_choice(choose_from="[null, null]", k=k, reduction=reduction))


IWHERE = "node %ic (from cell.n2), input choice 'n2': "


@pytest.mark.parametrize("kwargs, message", [
    (dict(choose_from='["a"]'), "`choose_from` must name one label (or null) per input (2)"),
    (dict(choose_from='"ab"'), "`choose_from` must name one label (or null) per input (2)"),
    (dict(k="0"), "n_chosen=0 must be null or between 1 and 2"),
    (dict(k="3"), "n_chosen=3 must be null or between 1 and 2"),
    (dict(k="1.0"), "n_chosen=1.0 must be null or between 1 and 2"),
    (dict(reduction='"max"'), "reduction 'max' is not one of ('sum', 'mean', 'concat', 'none')"),
])
def test_bad_input_choice_attrs_are_rejected(kwargs, message):
    rejects(input_choice(**kwargs), IWHERE + message)


@pytest.mark.parametrize("kwargs, message", [
    (dict(k="true"), "n_chosen=True must be null or between 1 and 2"),  # a bool is not a count
    (dict(choose_from="[1, 2]"), "`choose_from` must name one label (or null) per input (2)"),
    (dict(label="7"), "label must be a string"),
])
def test_input_choice_attr_types_are_checked(kwargs, message):
    graph = input_choice(**kwargs)
    with pytest.raises(IRError, match="input choice") as info:
        verify_graph(graph)
    assert message in str(info.value)


def test_input_choice_needs_label_and_choose_from():
    rejects(parse("graph {\n  %x = input() {index=0}\n  %ic = input_choice(%x) {choose_from=[null]}\n"
                  "  %output = output(%ic)\n}\n"), "input_choice needs attribute 'label'")
    rejects(parse('graph {\n  %x = input() {index=0}\n  %ic = input_choice(%x) {label="n"}\n'
                  "  %output = output(%ic)\n}\n"), "input_choice needs attribute 'choose_from'")
