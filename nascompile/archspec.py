"""Architectures given from outside: parse them, then resolve them against a supernet's search space.

An architecture arrives in one of four forms (`parse_arch` tells them apart):

- NNI's exported-architecture JSON: layer-choice label -> candidate name (or `[]`, the edge dropped),
  input-choice label -> the kept inputs (labels or positions);
- nascompile's architecture description (`nascompile export`): its `decisions`, and its `genotype` text
  for the order of each node's edges;
- DARTS's `Genotype(normal=[(op, state), ...], normal_concat=..., reduce=..., reduce_concat=...)`, as text
  or as `genotypes.py:NAME` (the file is read with `ast`, never imported or run);
- a NAS-Bench-201 string `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|` (node j lists its edge from each state i < j).

`resolve` turns any of them into NNI decisions for one lifted supernet (`GivenArch`), using the cells of
its search space (`arch.describe`): a genotype's (op, state) pairs and a NAS-Bench-201 string's
`op~state` entries name edges by the state they read, and the space says which layer choice that edge
is. The `apply-arch` pass then checks every name against the supernet and applies the decisions.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .arch import Architecture, Cell
from .errors import ChoiceError
from .ir.graph import Graph
from .nn import ZERO_NAME

#: The name NAS-Bench-201 and DARTS give the zero op.
NONE_OP = ZERO_NAME
_NB201 = re.compile(r"^\|(?:[^|~+]+~\d+\|)+(?:\+\|(?:[^|~+]+~\d+\|)+)*$")


@dataclass
class ArchSpec:
    """A parsed architecture, not yet matched to a supernet.

    `kind`: "nni" (`value` is the decisions dict), "genotype" (`value` is a dict with the four genotype
    fields), "nb201" (`value` is a list of nodes, each a list of (op, state)). `order` (kind "nni" only):
    a genotype whose edge order ranks each node's kept edges. `origin` names where it came from.
    """

    kind: str
    value: Any
    origin: str
    order: Any = None


@dataclass
class GivenArch:
    """An architecture resolved against one supernet: NNI decisions and the rank order of kept edges.

    `order` maps an input-choice label, or the IR node of a plain sum, to its kept input positions,
    strongest first (a genotype lists each node's edges so; otherwise the order given).
    """

    decisions: dict[str, Any]
    origin: str
    order: dict[str, list[int]] = field(default_factory=dict)


def _fail(origin: str, message: str) -> ChoiceError:
    return ChoiceError(f"architecture {origin}: {message}")


def parse_arch(arch: str | Mapping[str, Any] | ArchSpec) -> ArchSpec:
    """Read an architecture given as a dict, a file, `file.py:NAME` or inline text (see the module docstring).

    >>> parse_arch("|nor_conv_3x3~0|+|none~0|skip_connect~1|").value
    [[('nor_conv_3x3', 0)], [('none', 0), ('skip_connect', 1)]]
    >>> parse_arch("Genotype(normal=[('skip_connect', 0)], normal_concat=range(2, 3), reduce=[], "
    ...            "reduce_concat=[2])").value["normal_concat"]
    [2]
    """
    if isinstance(arch, ArchSpec):
        return arch
    if isinstance(arch, Mapping):
        return _from_json(dict(arch), "given as a dict")
    if not isinstance(arch, str) or not arch.strip():
        raise ChoiceError(f"an architecture must be a file, a string or a dict, got {arch!r}")
    text = arch.strip()
    path, sep, name = text.rpartition(":")
    if sep and path.endswith(".py") and name.isidentifier():
        return _from_genotypes_file(Path(path), name)
    if text.endswith(".py") and Path(text).is_file():
        raise ChoiceError(f"architecture {text!r}: name the genotype to use, e.g. {text}:DARTS_V2")
    if not text.startswith(("{", "|")) and "Genotype(" not in text:
        file = Path(text)
        if not file.is_file():
            raise ChoiceError(f"architecture {text!r} is neither a file nor an architecture string (NNI JSON, "
                              "Genotype(...), genotypes.py:NAME or a NAS-Bench-201 |op~0|+|...| string)")
        try:
            return _from_text(file.read_text(), repr(str(file)))
        except (OSError, UnicodeDecodeError) as exc:
            raise ChoiceError(f"architecture file {str(file)!r} cannot be read: {exc}") from None
    return _from_text(text, repr(text if len(text) < 60 else text[:57] + "..."))


def _from_text(text: str, origin: str) -> ArchSpec:
    text = text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _fail(origin, f"is not valid JSON ({exc})") from None
        if not isinstance(value, dict):
            raise _fail(origin, "JSON must be an object of label -> decision")
        return _from_json(value, origin)
    if text.startswith("|"):
        return ArchSpec("nb201", parse_nb201(text, origin), origin)
    if "Genotype(" in text:
        try:
            tree = ast.parse(text)
        except SyntaxError as exc:
            raise _fail(origin, f"is not a Genotype(...) expression ({exc.msg}, column {exc.offset})") from None
        calls = [n.value for n in tree.body if isinstance(n, (ast.Expr, ast.Assign))]
        if len(calls) != 1:
            raise _fail(origin, "must hold exactly one Genotype(...) (use genotypes.py:NAME to pick one of many)")
        return ArchSpec("genotype", _genotype_call(calls[0], origin), origin)
    raise _fail(origin, "is not NNI JSON, a Genotype(...) text or a NAS-Bench-201 string")


def _from_json(value: dict[str, Any], origin: str) -> ArchSpec:
    if value.get("format") == "nascompile-architecture":
        decisions = value.get("decisions")
        if not isinstance(decisions, dict):
            raise _fail(origin, "the architecture description has no 'decisions' object")
        genotype = value.get("genotype")
        order = ArchSpec("genotype", _genotype_call(_expr(genotype, origin), origin), origin) if genotype else None
        return ArchSpec("nni", decisions, origin, order)
    for label, decision in value.items():
        ok = isinstance(decision, str) or (isinstance(decision, list) and
                                           all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in decision))
        if not ok:
            raise _fail(origin, f"decision {label!r}: {decision!r} must be a candidate name, [] or a list of kept "
                                "inputs (labels or positions)")
    return ArchSpec("nni", value, origin)


def _expr(text: str, origin: str) -> ast.expr:
    try:
        return ast.parse(text, mode="eval").body
    except SyntaxError as exc:
        raise _fail(origin, f"genotype {text!r} does not parse ({exc.msg})") from None


def _from_genotypes_file(path: Path, name: str) -> ArchSpec:
    origin = f"{str(path)}:{name}"
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except FileNotFoundError:
        raise ChoiceError(f"architecture {origin!r}: file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ChoiceError(f"architecture {origin!r}: cannot read {str(path)!r} ({exc})") from None
    except SyntaxError as exc:
        raise ChoiceError(f"architecture {origin!r}: {str(path)!r} is not valid Python (line {exc.lineno}: "
                          f"{exc.msg})") from None
    found: dict[str, ast.expr] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value
    if name not in found:
        import difflib

        names = sorted(k for k, v in found.items() if isinstance(v, ast.Call))
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"it defines: {', '.join(names) or 'no genotypes'}"
        raise ChoiceError(f"architecture {origin!r}: {str(path)!r} assigns no {name!r}; {hint}")
    value = found[name]
    if isinstance(value, ast.Name) and value.id in found:  # DARTS = DARTS_V2
        value = found[value.id]
    return ArchSpec("genotype", _genotype_call(value, origin), origin)


_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")


def _literal(node: ast.expr, origin: str, what: str) -> Any:
    """A literal, or `range(a[, b])` (DARTS writes `normal_concat=range(2, 6)`), never evaluated code."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range" \
            and not node.keywords and 1 <= len(node.args) <= 2:
        bounds = [_literal(a, origin, what) for a in node.args]
        if all(isinstance(b, int) for b in bounds):
            return list(range(*bounds))
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise _fail(origin, f"{what} must be a literal (lists, tuples, strings, ints, range(a, b)), not "
                            f"{ast.unparse(node)!r}") from None


def _genotype_call(node: ast.expr, origin: str) -> dict[str, Any]:
    if not (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "Genotype"):
        raise _fail(origin, "is not a Genotype(...) call")
    if len(node.args) > len(_FIELDS):
        raise _fail(origin, f"Genotype takes {len(_FIELDS)} fields, got {len(node.args)} positional arguments")
    fields = dict(zip(_FIELDS, node.args))
    for keyword in node.keywords:
        if keyword.arg not in _FIELDS or keyword.arg in fields:
            raise _fail(origin, f"Genotype has fields {', '.join(_FIELDS)}; {keyword.arg!r} is unknown or repeated")
        fields[keyword.arg] = keyword.value
    missing = [f for f in _FIELDS if f not in fields]
    if missing:
        raise _fail(origin, f"Genotype lacks {', '.join(missing)}")
    value = {name: _literal(fields[name], origin, name) for name in _FIELDS}
    for kind in ("normal", "reduce"):
        gene = value[kind]
        if not isinstance(gene, (list, tuple)) or not all(
                isinstance(g, (list, tuple)) and len(g) == 2 and isinstance(g[0], str) and isinstance(g[1], int)
                for g in gene):
            raise _fail(origin, f"{kind} must be a list of (op, state) pairs, got {gene!r}")
        value[kind] = [(op, state) for op, state in gene]
        concat = value[f"{kind}_concat"]
        if not isinstance(concat, (list, tuple)) or not all(isinstance(c, int) for c in concat):
            raise _fail(origin, f"{kind}_concat must be a list or range of states, got {concat!r}")
        value[f"{kind}_concat"] = list(concat)
    return value


def parse_nb201(text: str, origin: str = "") -> list[list[tuple[str, int]]]:
    """`|a~0|+|b~0|c~1|` -> [[("a", 0)], [("b", 0), ("c", 1)]]; node j (from 1) must read each state i < j once."""
    text = text.strip()
    if not _NB201.match(text):
        raise _fail(origin or repr(text), "is not a NAS-Bench-201 string like |nor_conv_3x3~0|+|none~0|skip_connect~1|")
    nodes = []
    for j, part in enumerate(text.split("+"), start=1):
        entries = [entry.rsplit("~", 1) for entry in part.strip("|").split("|")]
        node = [(op, int(state)) for op, state in entries]
        if sorted(state for _, state in node) != list(range(j)):
            raise _fail(origin or repr(text), f"node {j} must name one edge from each of the states 0..{j - 1}, got "
                                              f"{[state for _, state in node]}")
        nodes.append(node)
    return nodes


def nb201_string(nodes: list[list[tuple[str, int]]]) -> str:
    """The inverse of `parse_nb201`.

    >>> nb201_string([[("a", 0)], [("b", 0), ("c", 1)]])
    '|a~0|+|b~0|c~1|'
    """
    return "+".join("|" + "|".join(f"{op}~{state}" for op, state in node) + "|" for node in nodes)


# --- resolution against a supernet ------------------------------------------------------------


def node_choice_label(graph: Graph, ir_node: str) -> str | None:
    """The input-choice label of a search node of the undecided graph, None for a plain sum."""
    if ir_node in graph and graph.op(ir_node) == "input_choice":
        return graph.attrs(ir_node)["label"]
    return None


def _set(decisions: dict[str, Any], label: str, value: Any, origin: str, where: str) -> None:
    """Record a decision; cells sharing a label must agree on it."""
    if label in decisions and decisions[label] != value:
        raise _fail(origin, f"gives layer choice {label!r} two decisions ({decisions[label]!r} and {value!r}, "
                            f"the second at {where}); cells that share a label share one decision")
    decisions[label] = value


def _apply_node(decisions: dict, order: dict, graph: Graph, cell: Cell, k: int, named: list[tuple[str, int]],
                origin: str, where: str) -> None:
    """Decide node k of `cell` from its kept (op, state) pairs, strongest first."""
    node = cell.nodes[k]
    by_source = {edge.source: (i, edge) for i, edge in enumerate(node.edges)}
    seen: set[int] = set()
    kept_ports = []
    for op, state in named:
        if state not in by_source:
            raise _fail(origin, f"{where} reads state {state}, but node {k} of cell {cell.name!r} has edges from "
                                f"states {sorted(by_source)} only")
        if state in seen:
            raise _fail(origin, f"{where} names the edge from state {state} twice")
        seen.add(state)
        port, edge = by_source[state]
        if edge.label is None:
            raise _fail(origin, f"{where}: the edge from state {state} of cell {cell.name!r} is fixed, not a choice")
        _set(decisions, edge.label, [] if op == NONE_OP else op, origin, where)
        if op != NONE_OP:
            kept_ports.append(port)
    for edge in node.edges:
        if edge.label is not None and edge.source not in seen:
            _set(decisions, edge.label, [], origin, where)
    label = node_choice_label(graph, node.ir_node)
    if label is not None:
        kept_labels = [node.edges[p].label for p in kept_ports]
        n_chosen = graph.attrs(node.ir_node).get("n_chosen")
        if n_chosen is None:  # every input is kept; a `none` edge computes zeros
            kept_labels = [e.label for e in node.edges]
        decisions[label] = kept_labels
        order[label] = kept_ports
    else:
        order[node.ir_node] = kept_ports


def resolve(spec: ArchSpec, graph: Graph, space: Architecture) -> GivenArch:
    """The NNI decisions of `spec` for the supernet lifted as `graph`, whose search space is `space`."""
    if spec.kind == "nni":
        given = GivenArch(dict(spec.value), spec.origin)
        if spec.order is not None:  # a description's genotype ranks the kept edges
            given.order = resolve(spec.order, graph, space).order
        return given
    if not space.cells:
        raise _fail(spec.origin, "names cells and edges by state, but the supernet has no cells (nodes summing "
                                 "layer choices); give NNI JSON with its labels instead")
    decisions: dict[str, Any] = {}
    order: dict[str, list[int]] = {}
    if spec.kind == "genotype":
        from .genotype import cell_kind

        for cell in space.cells:
            kind = cell_kind(cell)
            if kind is None:
                raise _fail(spec.origin, f"is a DARTS genotype, but cell {cell.name!r} is not labelled 'normal' or "
                                         "'reduce'; give NNI JSON with its labels instead")
            gene, concat = spec.value[kind], spec.value[f"{kind}_concat"]
            steps = len(cell.nodes)
            if not steps or len(gene) % steps:
                raise _fail(spec.origin, f"{kind} lists {len(gene)} edges, which does not split evenly over the "
                                         f"{steps} nodes of cell {cell.name!r}")
            if cell.concat and sorted(concat) != sorted(cell.concat):
                raise _fail(spec.origin, f"{kind}_concat is {concat}, but cell {cell.name!r} concatenates states "
                                         f"{cell.concat}; the supernet's cells do not fit this genotype")
            per = len(gene) // steps
            for k in range(steps):
                _apply_node(decisions, order, graph, cell, k, gene[k * per:(k + 1) * per], spec.origin,
                            f"{kind} node {k} ({gene[k * per:(k + 1) * per]})")
    elif spec.kind == "nb201":
        for cell in space.cells:
            if len(cell.inputs) != 1 or len(cell.nodes) != len(spec.value):
                raise _fail(spec.origin, f"has {len(spec.value)} nodes after one input, but cell {cell.name!r} has "
                                         f"{len(cell.nodes)} nodes after {len(cell.inputs)} inputs")
            for k, named in enumerate(spec.value):
                _apply_node(decisions, order, graph, cell, k, named, spec.origin, f"node {k + 1} ({named})")
    else:
        raise ChoiceError(f"unknown architecture kind {spec.kind!r}")
    return GivenArch(decisions, spec.origin, order)
