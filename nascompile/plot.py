"""Diagrams: the derived cells as DARTS papers draw them, and the IR after any pass, rendered by Graphviz.

`cells_dot` draws one cluster per distinct derived cell (`Architecture.distinct`: for DARTS, the normal
and the reduction cell): the inputs `c_{k-2}`, `c_{k-1}`, the numbered intermediate nodes 0, 1, ...,
one edge per kept op labelled with it, and the output `c_{k}` concatenating the nodes. `ir_dot` draws
an IR graph, one box per operation. `render` turns DOT text into SVG, PNG or PDF with Graphviz's `dot`
program (Debian/Ubuntu: `apt-get install graphviz`), or writes the DOT text itself for `.dot`/`.gv`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from .arch import Architecture, Cell
from .errors import RenderError
from .files import staged_outputs, write_text
from .genotype import cell_kind
from .ir.graph import Graph

FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": None, ".gv": None}

# DARTS-paper look: inputs green, intermediate nodes blue, the output yellow.
INPUT_COLOR, NODE_COLOR, OUTPUT_COLOR = "darkseagreen2", "lightblue", "palegoldenrod"


def quote(text: str) -> str:
    """A DOT string literal.

    >>> quote('a "b"\\nc')
    '"a \\\\"b\\\\"\\\\nc"'
    """
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attrs(**attrs: object) -> str:
    return "[" + ", ".join(f"{k}={quote(v)}" for k, v in attrs.items()) + "]"


def input_names(n: int) -> list[str]:
    """DARTS's names of a cell's n inputs: the outputs of the n cells before it.

    >>> input_names(2)
    ['c_{k-2}', 'c_{k-1}']
    """
    return [f"c_{{k-{n - i}}}" for i in range(n)]


def compact_names(names: list[str]) -> str:
    """`cells.0, cells.1, cells.3` -> `cells.{0,1,3}` when the names differ only in a final index."""
    match = [re.fullmatch(r"(.*\.)(\d+)", name) for name in names]
    if len(names) > 1 and all(match) and len({m.group(1) for m in match}) == 1:
        return f"{match[0].group(1)}{{{','.join(m.group(2) for m in match)}}}"
    return ", ".join(names)


def cell_title(cell: Cell, names: list[str]) -> str:
    kind = cell_kind(cell)
    title = {"normal": "normal cell", "reduce": "reduction cell"}.get(kind or "", "cell")
    return f"{title}: {compact_names(names)}" + (f" ({len(names)} cells)" if len(names) > 1 else "")


def _cell_lines(cell: Cell, names: list[str], prefix: str) -> list[str]:
    n_inputs = len(cell.inputs)
    state_ids = [f"{prefix}_s{i}" for i in range(n_inputs + len(cell.nodes))]
    lines = [f"  subgraph {quote('cluster_' + prefix)} {{",
             f"    label={quote(cell_title(cell, names))}; labeljust=l; fontsize=22; color=gray70;"]
    for i, name in enumerate(input_names(n_inputs)):
        lines.append(f"    {quote(state_ids[i])} {_attrs(label=name, fillcolor=INPUT_COLOR)};")
    if n_inputs > 1:  # the inputs in one column, c_{k-2} above c_{k-1} (rankdir=LR orders a rank bottom-up)
        chain = " -> ".join(quote(state_ids[i]) for i in reversed(range(n_inputs)))
        lines.append(f"    {{ rank=same; {chain} [style=invis]; }}")
    for k in range(len(cell.nodes)):
        lines.append(f"    {quote(state_ids[n_inputs + k])} {_attrs(label=str(k), fillcolor=NODE_COLOR)};")
    for k, node in enumerate(cell.nodes):
        for edge in node.edges:
            style = {"style": "dashed"} if edge.label is None else {}
            lines.append(f"    {quote(state_ids[edge.source])} -> {quote(state_ids[n_inputs + k])} "
                         f"{_attrs(label=edge.op or '?', **style)};")
    if cell.concat:
        output = f"{prefix}_out"
        lines.append(f"    {quote(output)} {_attrs(label='c_{k}', fillcolor=OUTPUT_COLOR)};")
        lines += [f"    {quote(state_ids[s])} -> {quote(output)} {_attrs(color='gray50')};" for s in cell.concat]
    lines.append("  }")
    return lines


def cells_dot(architecture: Architecture, title: str = "") -> str:
    """DOT text of every distinct derived cell, DARTS-paper style (see the module docstring)."""
    kinds = architecture.distinct()
    if not kinds:
        raise RenderError("there are no cells to draw: the search space has no node that aggregates "
                          "layer-choice edges (the IR can still be drawn with --ir)")
    lines = ["digraph cells {", "  rankdir=LR; newrank=true; fontname=Helvetica; nodesep=0.35; ranksep=1.1;",
             f"  label={quote(title)}; labelloc=t; fontsize=24;" if title else "",
             '  node [shape=box, style="rounded,filled", fontname=Helvetica, fontsize=20, height=0.6, penwidth=2];',
             "  edge [fontname=Helvetica, fontsize=16, arrowsize=0.8];"]
    for i, (cell, names) in reversed(list(enumerate(kinds))):  # dot stacks clusters last-declared on top
        lines += _cell_lines(cell, names, f"cell{i}")
    lines.append("}")
    return "\n".join(line for line in lines if line) + "\n"


# --- the IR ------------------------------------------------------------------------------------------

_OP_COLORS = {"layer_choice": "gold", "input_choice": "orange", "input": INPUT_COLOR, "output": OUTPUT_COLOR,
              "conv2d": NODE_COLOR, "linear": NODE_COLOR, "batch_norm": "lavender", "max_pool2d": "mistyrose",
              "avg_pool2d": "mistyrose", "adaptive_avg_pool2d": "mistyrose", "zero": "gray85"}


def _ir_label(graph: Graph, node: str) -> str:
    op = graph.op(node)
    attrs = graph.attrs(node)
    lines = [f"%{node}", op]
    if op == "layer_choice":
        chosen = attrs.get("chosen")
        lines.append(f"{attrs['label']}" + ("" if chosen is None else f" = {attrs['candidates'][chosen]}"))
    elif op == "input_choice":
        lines.append(f"{attrs['label']} keep {attrs.get('n_chosen') or 'all'}")
    elif "choice" in attrs:
        lines.append(f"from {attrs['choice']}")
    elif op == "conv2d" and "weight" in graph.params(node):
        k = list(graph.params(node)["weight"].shape[2:])
        lines.append(f"{'x'.join(map(str, k))} s{attrs['stride'][0]}" + (f" g{attrs['groups']}" if attrs["groups"] > 1 else ""))
    shape = graph.meta(node).get("shape")
    if shape is not None:
        lines.append(f"{graph.meta(node).get('dtype', '')}{shape}".replace(" ", ""))
    return "\n".join(lines)


def ir_dot(graph: Graph, title: str = "") -> str:
    """DOT text of an IR graph: one box per operation (name, op, key attributes, shape), arguments in
    port order (numbered where an op has several)."""
    lines = ["digraph ir {", "  rankdir=TB; fontname=Helvetica;",
             f"  label={quote(title)}; labelloc=t; fontsize=20;" if title else "",
             '  node [shape=box, style="rounded,filled", fillcolor=white, fontname=Helvetica, fontsize=11];',
             "  edge [fontname=Helvetica, fontsize=9, arrowsize=0.6];"]
    order = graph.order()
    for node in order:
        lines.append(f"  {quote(node)} {_attrs(label=_ir_label(graph, node), fillcolor=_OP_COLORS.get(graph.op(node), 'white'), tooltip=graph.meta(node).get('source') or node)};")
    for node in order:
        sources = graph.inputs(node)
        for port, src in enumerate(sources):
            lines.append(f"  {quote(src)} -> {quote(node)}" + (f" {_attrs(label=port)}" if len(sources) > 1 else "") + ";")
    lines.append("}")
    return "\n".join(line for line in lines if line) + "\n"


# --- rendering ---------------------------------------------------------------------------------------


def output_format(path: str | os.PathLike) -> str | None:
    """Graphviz's format for `path`'s extension; None for DOT text. RenderError for an unknown one."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise RenderError(f"cannot tell the image format of {str(path)!r}: use one of "
                          f"{', '.join(FORMATS)} as its extension")
    return FORMATS[suffix]


#: Seconds `dot` may take to draw one diagram (a few cells take well under one) before it is stopped.
DOT_TIMEOUT = 120.0


def render(dot_text: str, path: str | os.PathLike) -> Path:
    """Write `dot_text` to `path` as the image its extension names (DOT text itself for .dot/.gv)."""
    path = Path(path)
    fmt = output_format(path)
    if fmt is None:
        write_text(path, dot_text)
        return path
    dot = shutil.which("dot")
    if dot is None:
        raise RenderError(f"drawing {str(path)!r} needs Graphviz's `dot` program, which is not on PATH: install "
                          "graphviz (apt-get install graphviz, brew install graphviz, conda install graphviz), or "
                          "write the DOT text with -o cells.dot")
    with staged_outputs(path) as (staged,):
        try:
            proc = subprocess.run([dot, f"-T{fmt}", "-o", str(staged)], input=dot_text, text=True,
                                  capture_output=True, timeout=DOT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise RenderError(f"Graphviz's dot did not draw {str(path)!r} within {DOT_TIMEOUT:g} s and was stopped; "
                              "write the DOT text with -o cells.dot and render it yourself") from None
        if proc.returncode != 0 or not staged.exists():
            message = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise RenderError(f"Graphviz's dot failed to draw {str(path)!r} as {fmt}: {message}")
    return path
