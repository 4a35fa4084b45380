"""The IR's text form: a deterministic printer and a parser that reads it back.

    graph {
      %x = input() {index=0} : f32[1,3,8,8]
      %c = conv2d(%x) {dilation=[1, 1], groups=1, padding=[1, 1], stride=[1, 1]} params(weight: f32[4,3,3,3]) loc("stem.0")
      %output = output(%c)
    }

Nodes are printed in the graph's deterministic topological order, attributes sorted by name. With
`values=True` parameter tensors are printed in full, so printing and parsing round-trip exactly (floats
use Python's shortest round-trip repr); without, only their type is printed and parsing gives zeros.
Parse errors name the line and column.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import IRError
from .graph import Graph
from .ops import OPS, with_defaults

DTYPE_NAMES = {
    torch.float32: "f32", torch.float64: "f64", torch.float16: "f16", torch.bfloat16: "bf16",
    torch.int64: "i64", torch.int32: "i32", torch.int16: "i16", torch.int8: "i8", torch.uint8: "u8",
    torch.bool: "bool",
}
DTYPES_BY_NAME = {name: dtype for dtype, name in DTYPE_NAMES.items()}


def dtype_name(dtype: torch.dtype) -> str:
    return DTYPE_NAMES.get(dtype, str(dtype).replace("torch.", ""))


# --- printing -------------------------------------------------------------------------------------
def format_value(value: Any) -> str:
    """One attribute or tensor value in the text syntax."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # shortest string that reads back to the same float; nan, inf, -inf
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    raise IRError(f"attribute value {value!r} of type {type(value).__name__} has no text form")


def format_type(dtype: str, shape: Any) -> str:
    return f"{dtype}[{','.join(str(d) for d in shape)}]"


def _format_param(name: str, tensor: torch.Tensor, values: bool) -> str:
    text = f"{name}: {format_type(dtype_name(tensor.dtype), tensor.shape)}"
    if values:
        text += " = " + format_value(tensor.detach().cpu().tolist())
    return text


def format_node(graph: Graph, node: str, values: bool = False) -> str:
    data = graph.nodes[node]
    args = ", ".join(f"%{src}" for src in graph.inputs(node))
    text = f"%{node} = {data['op']}({args})"
    if data["attrs"]:
        text += " {" + ", ".join(f"{k}={format_value(data['attrs'][k])}" for k in sorted(data["attrs"])) + "}"
    if data["params"]:
        text += " params(" + ", ".join(
            _format_param(k, data["params"][k], values) for k in sorted(data["params"])) + ")"
    meta = data["meta"]
    if meta.get("shape") is not None and meta.get("dtype") is not None:
        text += " : " + format_type(meta["dtype"], meta["shape"])
    if meta.get("source"):
        text += f" loc({json.dumps(meta['source'])})"
    return text


def print_graph(graph: Graph, values: bool = False) -> str:
    """The text form of `graph`; `values=True` includes parameter tensors in full."""
    lines = ["graph {"]
    lines += ["  " + format_node(graph, node, values) for node in graph.order()]
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- parsing --------------------------------------------------------------------------------------
_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r]+|\#[^\n]*)
  | (?P<nl>\n)
  | (?P<name>%[A-Za-z0-9_.\-]+)
  | (?P<number>-?(?:inf\b|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<punct>[=(){}\[\],:])
""", re.VERBOSE)


@dataclass
class _Token:
    kind: str
    text: str
    line: int
    col: int


def _tokenize(text: str) -> list[_Token]:
    tokens, line, line_start, pos = [], 1, 0, 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise IRError(f"IR text line {line}, column {pos - line_start + 1}: unexpected character {text[pos]!r}")
        kind = match.lastgroup
        if kind == "nl":
            line, line_start = line + 1, match.end()
        elif kind != "ws":
            tokens.append(_Token(kind, match.group(), line, pos - line_start + 1))
        pos = match.end()
    tokens.append(_Token("eof", "end of text", line, pos - line_start + 1))
    return tokens


#: Deepest list nesting the parser reads (deeper would exhaust Python's recursion).
MAX_NESTING = 64


class _Parser:
    def __init__(self, text: str):
        self.tokens = _tokenize(text)
        self.i = 0
        self.defined_at: dict[str, _Token] = {}  # node -> its name token, to locate the verifier's errors

    # token helpers
    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def fail(self, what: str, tok: _Token | None = None) -> IRError:
        tok = tok or self.tok
        found = tok.text if len(tok.text) <= 40 else tok.text[:37] + "..."
        return IRError(f"IR text line {tok.line}, column {tok.col}: {what}, found {found!r}")

    def take(self, kind: str, text: str | None = None) -> _Token:
        tok = self.tok
        if tok.kind != kind or (text is not None and tok.text != text):
            raise self.fail(f"expected {text or kind}")
        self.i += 1
        return tok

    def at(self, kind: str, text: str | None = None) -> bool:
        return self.tok.kind == kind and (text is None or self.tok.text == text)

    def comma_list(self, close: str, item):
        items = []
        if not self.at("punct", close):
            items.append(item())
            while self.at("punct", ","):
                self.i += 1
                items.append(item())
        self.take("punct", close)
        return items

    def string(self, tok: _Token) -> str:
        try:
            return json.loads(tok.text)
        except ValueError as exc:  # a bad escape such as \q or a short \u12
            raise self.fail(f"bad string ({exc.args[0].split(':')[0]})", tok) from None

    # grammar
    def value(self, depth: int = 0) -> Any:
        tok = self.tok
        if self.at("punct", "["):
            if depth >= MAX_NESTING:
                raise self.fail(f"lists are nested deeper than {MAX_NESTING} levels")
            self.i += 1
            return self.comma_list("]", lambda: self.value(depth + 1))
        self.i += 1
        if tok.kind == "number":
            return self.number(tok)
        if tok.kind == "string":
            return self.string(tok)
        if tok.kind == "ident" and tok.text in ("true", "false", "null", "nan", "inf"):
            return {"true": True, "false": False, "null": None, "nan": math.nan, "inf": math.inf}[tok.text]
        self.i -= 1
        raise self.fail("expected a value")

    def type_(self) -> tuple[str, list[int]]:
        tok = self.take("ident")
        if tok.text not in DTYPES_BY_NAME:
            raise self.fail(f"unknown dtype {tok.text!r} (known: {', '.join(DTYPES_BY_NAME)})", tok)
        self.take("punct", "[")
        dims = self.comma_list("]", lambda: self._int("a dimension size"))
        return tok.text, dims

    def number(self, tok: _Token) -> int | float:
        if tok.text.endswith("inf"):
            return -math.inf if tok.text.startswith("-") else math.inf
        try:
            return float(tok.text) if any(c in tok.text for c in ".eE") else int(tok.text)
        except ValueError:  # Python refuses to convert ints of more than 4300 digits
            raise self.fail("number too long", tok) from None

    def _int(self, what: str, limit: int = 1 << 62) -> int:
        tok = self.tok
        if tok.kind != "number" or any(c in tok.text for c in ".eEinf") or tok.text.startswith("-"):
            raise self.fail(f"expected {what} (a non-negative integer)")
        value = self.number(tok)
        if value > limit:
            raise self.fail(f"{what} {value} is too large")
        self.i += 1
        return value

    def param(self) -> tuple[_Token, torch.Tensor]:
        name_tok = self.take("ident")
        name = name_tok.text
        self.take("punct", ":")
        type_tok = self.tok
        dtype, shape = self.type_()
        if self.at("punct", "="):
            self.i += 1
            value_tok = self.tok
            data = self.value()
            try:
                tensor = torch.tensor(data, dtype=DTYPES_BY_NAME[dtype])
            except (TypeError, ValueError, RuntimeError) as exc:
                raise self.fail(f"bad tensor value for param {name!r} ({str(exc).splitlines()[0]})", value_tok) from None
            if list(tensor.shape) != shape:
                raise self.fail(f"param {name!r} value has shape {list(tensor.shape)}, type says {shape}", value_tok)
            if not tensor.is_floating_point() and tensor.tolist() != data:  # torch wraps or truncates silently
                raise self.fail(f"param {name!r} holds values that {dtype} cannot represent exactly", value_tok)
        else:
            if math.prod(shape) > 1 << 28:
                raise self.fail(f"param {name!r} is too large ({math.prod(shape)} elements) to be written "
                                "without values", type_tok)
            tensor = torch.zeros(shape, dtype=DTYPES_BY_NAME[dtype])
        return name_tok, tensor

    def unique(self, what: str, items: list[tuple[_Token, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for tok, value in items:
            if tok.text in out:
                raise self.fail(f"{what} {tok.text!r} is given twice", tok)
            out[tok.text] = value
        return out

    def attr(self) -> tuple[_Token, Any]:
        key = self.take("ident")
        self.take("punct", "=")
        return key, self.value()

    def node(self, graph: Graph, pending: list) -> None:
        name_tok = self.take("name")
        node = name_tok.text[1:]
        if node in graph:
            raise self.fail(f"node %{node} is defined twice", name_tok)
        self.defined_at[node] = name_tok
        self.take("punct", "=")
        op_tok = self.take("ident")
        if op_tok.text not in OPS:
            raise self.fail(f"unknown op {op_tok.text!r}", op_tok)
        self.take("punct", "(")
        args = self.comma_list(")", lambda: self.take("name"))
        attrs: dict[str, Any] = {}
        params: dict[str, torch.Tensor] = {}
        meta: dict[str, Any] = {}
        if self.at("punct", "{"):
            self.i += 1
            attrs = self.unique("attribute", self.comma_list("}", self.attr))
        if self.at("ident", "params"):
            self.i += 1
            self.take("punct", "(")
            params = self.unique("param", self.comma_list(")", self.param))
        if self.at("punct", ":"):
            self.i += 1
            meta["dtype"], meta["shape"] = self.type_()
        if self.at("ident", "loc"):
            self.i += 1
            self.take("punct", "(")
            meta["source"] = self.string(self.take("string"))
            self.take("punct", ")")
        graph.add_node(node, op=op_tok.text, attrs=with_defaults(op_tok.text, attrs), params=params, meta=meta)
        pending.append((node, args))

    def graph(self) -> Graph:
        graph = Graph()
        self.take("ident", "graph")
        self.take("punct", "{")
        pending: list = []
        while not self.at("punct", "}"):
            if self.at("eof"):
                raise self.fail("expected a node or '}'")
            self.node(graph, pending)
        self.take("punct", "}")
        self.take("eof")
        for node, args in pending:
            for port, tok in enumerate(args):
                if tok.text[1:] not in graph:
                    raise self.fail(f"%{tok.text[1:]} is not defined", tok)
                graph.add_edge(tok.text[1:], node, port=port)
        return graph


def parse_graph(text: str, verify: bool = True) -> Graph:
    """Parse the text form back into a `Graph` (and verify it unless `verify=False`)."""
    if not isinstance(text, str):
        raise IRError(f"IR text must be a str, got {type(text).__name__}")
    parser = _Parser(text)
    graph = parser.graph()
    if verify:
        from .verify import verify_graph

        try:
            verify_graph(graph)
        except IRError as exc:  # point at the node at fault, or at the end of the graph
            tok = parser.defined_at.get(exc.node) or parser.tokens[-2]
            raise IRError(f"IR text line {tok.line}, column {tok.col}: {exc}", node=exc.node) from None
    return graph


def graphs_equal(a: Graph, b: Graph) -> bool:
    """Same nodes, ops, attributes, parameters (exactly), meta and edges, whatever the insertion order.

    Compared as the text form sees them: an attribute left to its op's default equals the default written
    out, and an empty source location equals none.
    """
    if set(a.nodes) != set(b.nodes):
        return False
    for node in a.nodes:
        da, db = a.nodes[node], b.nodes[node]
        if da["op"] != db["op"] or a.inputs(node) != b.inputs(node):
            return False
        if format_value(_attr_items(da["op"], da["attrs"])) != format_value(_attr_items(db["op"], db["attrs"])):
            return False
        if _meta_items(da["meta"]) != _meta_items(db["meta"]):
            return False
        pa, pb = da["params"], db["params"]
        if pa.keys() != pb.keys() or not all(tensors_identical(pa[k], pb[k]) for k in pa):
            return False
    return True


def tensors_identical(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same dtype, shape and values, NaN matching NaN."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point():
        return bool(torch.equal(torch.isnan(a), torch.isnan(b)) and torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0)))
    return bool(torch.equal(a, b))


def _attr_items(op: str, attrs: dict[str, Any]) -> list:
    # format_value compares nan equal to nan, which == would not
    if op in OPS:
        attrs = with_defaults(op, attrs)
    return [[k, attrs[k]] for k in sorted(attrs)]


def _meta_items(meta: dict[str, Any]) -> dict[str, Any]:
    return {"shape": meta.get("shape"), "dtype": meta.get("dtype"), "source": meta.get("source") or None}
