"""Fuzzed IR text: the parser accepts a text or refuses it with an `IRError` naming a line and column, and
never raises anything else (hypothesis mutates valid printed graphs: deletes, inserts, replaces characters,
duplicates and swaps lines, truncates; and feeds random text). A text it accepts prints and parses back to
the same graph.

Profiles as in `test_property_supernets.py`: derandomized by default, `pytest -m slow` for the long run.
"""

from __future__ import annotations

import os
import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from nascompile import nn as nc
from nascompile.errors import IRError
from nascompile.frontend import lift
from nascompile.ir import graphs_equal, parse_graph, print_graph

from test_ir_text import FULL

CI_EXAMPLES = int(os.environ.get("NASCOMPILE_CI_EXAMPLES", "300"))
LONG_EXAMPLES = int(os.environ.get("NASCOMPILE_LONG_EXAMPLES", "1000")) * 10
COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
CI = settings(max_examples=CI_EXAMPLES, derandomize=True, database=None, **COMMON)
LONG = settings(max_examples=LONG_EXAMPLES, **COMMON)

LOCATED = re.compile(r"IR text line \d+, column \d+: \S")


def lifted_text() -> str:
    """A real lifted supernet (a layer choice over a conv, an input choice), printed with its values."""

    class Net(nc.Supernet):
        def __init__(self):
            super().__init__()
            self.a = nc.LayerChoice({"conv": nn.Conv2d(2, 2, 1), "pool": nn.MaxPool2d(3, 1, 1)}, label="a")
            self.b = nc.LayerChoice({"skip": nn.Identity(), "bn": nn.BatchNorm2d(2)}, label="b")
            self.n = nc.InputChoice(n_chosen=1, label="n", choose_from=["a", "b"])

        def forward(self, x):
            return self.n([self.a(x), self.b(x)]).flatten(1)[:, 1:]

    torch.manual_seed(0)
    graph, _ = lift(Net().eval(), (torch.randn(1, 2, 2, 2),))
    return print_graph(graph, values=True)


SEEDS = [FULL, lifted_text(), "graph {\n  %x = input() {index=0}\n  %output = output(%x)\n}\n"]
# fragments of the syntax, so that mutations make near-misses rather than only noise
FRAGMENTS = st.sampled_from([
    "%", "%x", "%output", "=", "(", ")", "{", "}", "[", "]", ",", ":", '"', "\\", "\\u12", "#", "\n", " ", "-", ".",
    "e", "E", "0", "7", "1e999", "-1", "99999999999999999999", "nan", "inf", "-inf", "null", "true", "graph",
    "params", "loc", "f32", "i64", "bool", "u8", "input", "output", "relu", "layer_choice", "index=0", "[[[[[[[[",
    "=[", "]]", "value", "f32[", "i8[1] = [300]", "{index=", '"\\q"', "\x00", "é", "\t", "\r",
]) | st.text(max_size=3)


@st.composite
def mutated(draw) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "insert", "replace", "truncate", "duplicate line", "swap lines"]))
        i = draw(st.integers(0, len(text)))
        j = min(len(text), i + draw(st.integers(1, 8)))
        if kind == "delete":
            text = text[:i] + text[j:]
        elif kind == "insert":
            text = text[:i] + draw(FRAGMENTS) + text[i:]
        elif kind == "replace":
            text = text[:i] + draw(FRAGMENTS) + text[j:]
        elif kind == "truncate":
            text = text[:i]
        else:
            lines = text.split("\n")
            a, b = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            if kind == "duplicate line":
                lines.insert(b, lines[a])
            else:
                lines[a], lines[b] = lines[b], lines[a]
            text = "\n".join(lines)
    return text


def check_text(text: str) -> None:
    """Accepted and round-tripping, or refused with a located IRError; nothing else."""
    for verify in (False, True):
        try:
            graph = parse_graph(text, verify=verify)
        except IRError as exc:
            assert LOCATED.match(str(exc)), str(exc)
            continue
        again = parse_graph(print_graph(graph, values=True), verify=verify)
        assert graphs_equal(graph, again)


@CI
@given(mutated())
def test_mutated_ir_text_is_parsed_or_refused_with_a_location(text):
    check_text(text)


@CI
@given(st.text(max_size=200) | st.text(alphabet="%=(){}[],:\"\\# \nagrphinputoe0123456789.-", max_size=200))
def test_random_text_is_refused_with_a_location(text):
    check_text(text)


@pytest.mark.slow
@LONG
@given(mutated() | st.text(max_size=300))
def test_fuzzed_ir_text_long_profile(text):
    check_text(text)


# --- what the fuzzer found, as plain regression cases --------------------------------------------
BASE = 'graph {\n  %x = input() {index=0}\n  %c = constant() TAIL\n  %output = output(%x, %c)\n}\n'


@pytest.mark.parametrize("text, message", [
    # each raised something other than an IRError before (JSONDecodeError, RecursionError, ValueError,
    # TypeError), or was accepted with a silently changed value
    (BASE.replace("TAIL", '{v="\\q"}'), r"line 3, column 22: bad string \(Invalid \\escape\)"),
    (BASE.replace("TAIL", "{v=" + "[" * 1000 + "]" * 1000 + "}"), r"line 3, column 86: lists are nested deeper than 64"),
    (BASE.replace("TAIL", "{v=" + "9" * 5000 + "}"), r"line 3, column 22: number too long, found '999.*\.\.\.'"),
    (BASE.replace("TAIL", "params(value: f32[0, 99999999999999999999])"), r"line 3, column 40: a dimension size .* too large"),
    (BASE.replace("TAIL", "params(value: u8[1] = [-1])"), r"line 3, column 41: .* that u8 cannot represent exactly"),
    (BASE.replace("TAIL", "params(value: i64[1] = [1.5])"), r"line 3, column 42: .* that i64 cannot represent exactly"),
    (BASE.replace("TAIL", "{v=1, v=2}"), r"line 3, column 25: attribute 'v' is given twice"),
    (BASE.replace("TAIL", "params(value: f32[] = 1.0, value: f32[] = 2.0)"), r"line 3, column 46: param 'value' is given twice"),
    ('graph {\n  %x = input() {index="a"}\n  %y = input() {index=0}\n  %output = output(%x)\n}\n',
     r"line 2, column 3: node %x: input index 'a' must be a non-negative int"),
    # the verifier's errors are located too: at the node at fault, or at the end of the graph
    ('graph {\n  %x = input() {index=0}\n  %a = relu(%a)\n  %output = output(%a)\n}\n',
     r"line 3, column 3: the IR graph has a cycle: %a -> %a"),
    ('graph {\n  %x = input() {index=1}\n  %output = output(%x)\n}\n',
     r"line 2, column 3: graph inputs are numbered \[1\]; they must be 0..0"),
    ('graph {\n  %x = input() {index=0}\n}\n', r"line 3, column 1: an IR graph needs exactly one `output` node, found 0"),
])
def test_found_by_fuzzing(text, message):
    with pytest.raises(IRError) as info:
        parse_graph(text)
    assert LOCATED.match(str(info.value)) and re.search(message, str(info.value)), str(info.value)
