"""Batched mixtures: DARTS's recurrent cell weighs all predecessors of a node at once.

DARTS's PTB search cell stacks the states a node may read on dim 0 (`states`, shape [n, batch, nhid]),
computes every candidate for all of them at once (`unweighted = states + c * (fn(h) - states)`, one
per activation `fn`) and writes the node as

    s += torch.sum(probs[offset:offset+n, k].unsqueeze(-1).unsqueeze(-1) * unweighted_k, dim=0)

summed over the activations k ('none' skipped). That is Σ_j Σ_k p[offset+j, k] · unweighted_k[j]: for
each predecessor j (an edge, logits row offset+j), a mixture over the activations of element j of
every candidate. It is found here, in the traced graph, as a sum tree whose terms are
`sum(w * U, dim=0)` with `w` a column slice of softmax(logits, -1), broadcast along U's dim 0
(`BatchedTerm`), grouped by the rows they read. `pattern_choices.lift_batched` lifts each group into one
layer choice per edge (its candidates the values `U_k[j]`, inline) and one input choice over the edges
keeping one, as DARTS's recurrent genotype keeps one predecessor per node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx

from .mixtures import IR, is_mul
from .origins import Attr, Op, Slice, _normalized

_SUM_METHODS = ("sum",)


@dataclass(frozen=True)
class Column:
    """Column `column` of rows `start:stop` of softmax(logits at `path`, -1)."""

    path: str
    start: int
    stop: int
    column: int


@dataclass
class BatchedTerm:
    reduce: fx.Node  # torch.sum(w * U, dim=0)
    mul: fx.Node
    weight: fx.Node
    candidates: fx.Node  # U: the candidate for every predecessor, stacked on dim 0
    column: Column


@dataclass
class BatchedSum:
    """One sum tree holding batched mixtures: `groups` (terms reading the same rows, by column), other terms."""

    root: fx.Node
    groups: list[list[BatchedTerm]] = field(default_factory=list)
    others: list[Any] = field(default_factory=list)


def column_of(origin: Any) -> Column | None:
    """`origin` as softmax(A, -1)[start:stop, k], unsqueezed (for broadcasting), or None."""
    while isinstance(origin, Op) and origin.name == "unsqueeze" and origin.args:
        origin = origin.args[0]  # broadcasting against U is checked on the values when it is lifted
    if not (isinstance(origin, Op) and origin.name == "getitem" and len(origin.args) == 2):
        return None
    base, index = origin.args
    if not (isinstance(index, tuple) and len(index) == 2):
        return None
    rows, column = index
    if not (isinstance(rows, Slice) and rows.step in (None, 1) and isinstance(rows.start, int)
            and isinstance(rows.stop, int) and isinstance(column, int) and not isinstance(column, bool)):
        return None
    found = _normalized(base)
    if found is None or found[0] != "softmax" or found[2] not in (-1, 1) or not isinstance(found[1], Attr):
        return None
    return Column(found[1].path, rows.start, rows.stop, column)


def _is_sum_over_dim0(node: Any) -> bool:
    if not isinstance(node, fx.Node) or len(node.args) < 1:
        return False
    if node.op == "call_function" and node.target is torch.sum or node.op == "call_method" and node.target in _SUM_METHODS:
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        return dim == 0 and not node.kwargs.get("keepdim", False) and len(node.args) <= 2
    return False


def batched_term(node: Any, kinds: dict) -> BatchedTerm | None:
    """`node` as sum(w * U, dim=0), w a column of softmax logits and U computed from the inputs."""
    if not _is_sum_over_dim0(node) or not is_mul(node.args[0]) or len(node.args[0].users) != 1:
        return None
    mul = node.args[0]
    a, b = mul.args
    for weight, candidates in ((a, b), (b, a)):
        if isinstance(candidates, fx.Node) and kinds.get(candidates) is IR and isinstance(weight, fx.Node) \
                and isinstance(kinds.get(weight), Op):
            column = column_of(kinds[weight])
            if column is not None:
                return BatchedTerm(node, mul, weight, candidates, column)
    return None


def find_batched(roots: list[fx.Node], leaves_of: Any, kinds: dict) -> dict[fx.Node, BatchedSum]:
    """The sum trees (by root) that hold batched terms; `leaves_of(root)` lists a tree's terms."""
    found: dict[fx.Node, BatchedSum] = {}
    for root in roots:
        leaves = leaves_of(root)
        terms = [batched_term(leaf, kinds) for leaf in leaves]
        if not any(terms):
            continue
        groups: dict[tuple, list[BatchedTerm]] = {}
        for term in terms:
            if term is not None:
                c = term.column
                groups.setdefault((c.path, c.start, c.stop), []).append(term)
        pattern = BatchedSum(root)
        for group in groups.values():
            columns = [t.column.column for t in group]
            if len(set(columns)) != len(columns):
                continue  # a column read twice: not one mixture, leave it (the arch-constant check refuses it)
            pattern.groups.append(sorted(group, key=lambda t: t.column.column))
        used = {t.reduce for g in pattern.groups for t in g}
        if not used:
            continue
        pattern.others = [leaf for leaf in leaves if leaf not in used]
        found[root] = pattern
    return found
