"""DARTS's `Genotype`, read off a compile's decisions and derived architecture.

    Genotype(normal=[(op, input), ...], normal_concat=range(2, 6), reduce=[...], reduce_concat=range(2, 6))

As DARTS's `genotype()` writes it: for each cell node in order, its kept edges, strongest first (by the
rank `finalize` used; ties keep the lower input first, as Python's stable sort does in DARTS; in input
order under rule sets whose code writes them so, P-DARTS's `parse_network`), `input`
indexing the cell's states (0 and 1 the cell's inputs, 2 + k its node k); `*_concat` the states the
cell's output concatenates, a `range` when contiguous (DARTS's `range(2, 6)`).

A genotype exists only for DARTS-shaped search spaces: node k had one candidate edge from each of the
n + k earlier states, and the cells come in two kinds: "reduce" cells make the spatial size smaller (read
from the IR's shapes), "normal" cells keep it; without shapes (a pipeline without `infer-shapes`) the
labels tell (`alphas_normal[3]`, `normal_n2_p0`, ...). Otherwise `darts_genotype` returns None.

`nb201_arch_string` gives NAS-Bench-201's `|op~0|+|op~0|op~1|+|...|` for NB201-shaped cells.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

from .arch import Architecture, Cell, CellNode
from .decisions import Decisions

Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")


def darts_genotype(decisions: Decisions, architecture: Architecture | None) -> Genotype | None:
    """The genotype of the derived architecture, or None when the search space is not DARTS-shaped."""
    if architecture is None:
        return None
    genes: dict[str, tuple[list, Any]] = {}
    for cell in architecture.cells:
        kind = cell_kind(cell)
        gene = _cell_gene(cell, decisions) if kind else None
        if gene is None or genes.setdefault(kind, gene) != gene:
            return None  # not DARTS-shaped, or two cells of one kind derived different structures
    if set(genes) != {"normal", "reduce"}:
        return None
    return Genotype(genes["normal"][0], genes["normal"][1], genes["reduce"][0], genes["reduce"][1])


def cell_kind(cell: Cell) -> str | None:
    """The cell's kind, "normal" or "reduce": whether it reduces the spatial size (from the IR's shapes),
    else what its edges' labels say (and not both); None when neither tells."""
    if cell.reduces is not None:
        return "reduce" if cell.reduces else "normal"
    labels = [edge.label for node in cell.nodes for edge in node.edges if edge.label]
    normal, reduce = any("normal" in label for label in labels), any("reduce" in label for label in labels)
    return "normal" if normal and not reduce else "reduce" if reduce and not normal else None


def nb201_arch_string(architecture: Architecture | None) -> str | None:
    """NAS-Bench-201's arch string `|op~0|+|op~0|op~1|+|...|` of the derived cells, or None unless every cell
    is NB201-shaped (one input; node j sums one edge from each earlier state 0 .. j-1, every edge a layer
    choice) and all derive the same string."""
    strings = set()
    for cell in architecture.cells if architecture is not None else []:
        if len(cell.inputs) != 1 or not cell.nodes:
            return None
        nodes = []
        for j, node in enumerate(cell.nodes, start=1):
            edges = sorted(node.edges, key=lambda e: e.source)
            if [e.source for e in edges] != list(range(j)) or any(e.label is None or e.op is None for e in edges):
                return None
            nodes.append("|" + "|".join(f"{e.op}~{e.source}" for e in edges) + "|")
        strings.add("+".join(nodes))
    return strings.pop() if len(strings) == 1 else None


def _candidate_edges(node: CellNode, decisions: Decisions) -> list[tuple[bool, float | None]] | None:
    """(kept, rank) of every edge the node had before it was decided, in input order (the rank as compared:
    float64, log space)."""
    if node.choice is not None:
        decision = decisions.input.get(node.choice)
        if decision is None:
            return None
        keys = decision.keys or decision.weights
        return [(j in decision.kept, keys[j]) for j in range(len(decision.choose_from))]
    finalized = decisions.finalize.get(node.ir_node)
    if finalized is None:
        return None
    return [(edge.kept, edge.rank if edge.key is None else edge.key) for edge in finalized.edges]


def _gene_order(decisions: Decisions) -> str:
    """"rank" (strongest first, DARTS's genotype()) or "input" (P-DARTS's parse_network), by the rule set."""
    return getattr(getattr(decisions.rules, "rules", None), "gene_order", "rank")


def _cell_gene(cell: Cell, decisions: Decisions) -> tuple[list[tuple[str, int]], Any] | None:
    """(gene, concat) of one cell, or None if it is not DARTS-shaped."""
    gene: list[tuple[str, int]] = []
    n_inputs = None
    for k, node in enumerate(cell.nodes):
        candidates = _candidate_edges(node, decisions)
        if candidates is None:
            return None
        n_inputs = len(candidates) if n_inputs is None else n_inputs
        kept = [j for j, (keep, _) in enumerate(candidates) if keep]
        if len(candidates) != n_inputs + k or len(kept) != len(node.edges):
            return None
        for j, edge in zip(kept, node.edges):  # an edge from node i must read node i
            if j >= n_inputs and edge.source != len(cell.inputs) + j - n_inputs:
                return None
        ranks = [candidates[j][1] for j in kept]
        order = range(len(kept)) if _gene_order(decisions) == "input" else \
            sorted(range(len(kept)), key=lambda i: (0, 0) if ranks[i] is None else (1, -ranks[i]))
        gene += [(node.edges[i].op, kept[i]) for i in order]
    if n_inputs is None or not cell.concat or min(cell.concat) < len(cell.inputs):
        return None
    concat = [n_inputs + c - len(cell.inputs) for c in cell.concat]
    contiguous = concat == list(range(concat[0], concat[0] + len(concat)))
    return gene, (range(concat[0], concat[-1] + 1) if contiguous else concat)


RecurrentGenotype = namedtuple("Genotype", "recurrent concat")  # DARTS rnn/genotypes.py's Genotype


def recurrent_genotype(decisions: Decisions, lifted) -> RecurrentGenotype | None:
    """DARTS's recurrent `Genotype(recurrent=[(activation, predecessor), ...], concat=range(1, n + 1))` of
    a recurrent search cell (its choices of family `darts-rnn`, `frontend/batched_mixtures.py`), or None.

    Node i's gene is the activation chosen on its kept edge and that edge's predecessor (0 the cell's
    initial state s0, j >= 1 node j), as DARTS's `_parse` writes it. Every time step shares the labels, so
    one step is read. `concat` is every node (DARTS's `range(STEPS + 1)[-CONCAT:]` with CONCAT = STEPS,
    its only setting; the mean over the states is computed as the code writes it whatever it is).
    """
    if lifted is None:
        return None
    families = {lifted.attrs(n)["label"]: lifted.attrs(n).get("family") for n in lifted.nodes_of("layer_choice")}
    gene, seen = [], set()
    for node in lifted.order():
        if lifted.op(node) != "input_choice":
            continue
        attrs = lifted.attrs(node)
        if attrs["label"] in seen or not attrs["choose_from"] or \
                any(families.get(key) != "darts-rnn" for key in attrs["choose_from"]):
            continue
        seen.add(attrs["label"])
        decision = decisions.input.get(attrs["label"])
        if decision is None or len(decision.kept) != 1:
            return None
        j = decision.kept[0]
        layer = decisions.layer.get(attrs["choose_from"][j])
        if layer is None:
            return None
        gene.append((layer.candidates[layer.chosen], j))
    if not gene or any(j > i for i, (_, j) in enumerate(gene)):
        return None  # node i must read s0 or an earlier node
    return RecurrentGenotype(gene, range(1, len(gene) + 1))
