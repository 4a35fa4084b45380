"""Choices found as patterns (`mixtures.py`): their layer choices, and the reference that fixes them.

Lift. A mixture becomes one `layer_choice` on the candidates' input; whatever the mixed op computes
around the mixture (partial-channel slices, the untouched channels concatenated, a channel shuffle,
an auxiliary term) is converted as the ordinary code it is, so it stays in the discrete network. Its
label is the logits it reads (`alphas_normal[3]`: shared rows, shared decisions); its candidates are
named as the search code names them (`names.py`). An edge-normalized node (PC-DARTS) keeps each edge
term `b_e * edge_e(h_e)` with its weight, marked by an `edge` node that tells `finalize` which layer
choice ranks it; the layer choice carries the node's edge logits (`edge_logits`, `edge_index`).

Reference. The validation reference is the model's own forward, with its own weighting code, run on
logits that make every weight exact: the chosen op's logit 0 and the others -inf (softmax gives
exactly 1 and 0; sigmoid gets +inf for the chosen op). A dropped edge's modules return zeros. So
the reference never comes from nascompile's reading of the mixture: if the lift misread which
candidate a weight belongs to, the reference computes another op and validation fails.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from .. import nn as ncnn
from ..errors import ChoiceError
from .convert import Converter, V, _load, fetch_attr
from .mixed_op import patched_forward
from .mixtures import EdgeSum, Mixture, SumPattern
from .names import candidate_names, common_path
from .origins import Logits, Slice, arch_sources, is_arch_like

NB201_OPS = frozenset({"none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"})


@dataclass
class MixtureInfo:
    """What the reference needs to fix one lifted mixture."""

    logits: Logits
    fn: str  # softmax | sigmoid
    indices: list[int]  # weight positions of the candidates (all of them, unless the forward skips some)
    names: list[str]
    candidates: list[str]  # module paths
    edge_module: str | None = None  # the edge module (PC-DARTS), zeroed when the edge is dropped


class PatternChoices:
    """The recognizer of mixtures found as patterns; one per compile (it remembers what it lifted)."""

    name = "pattern"

    def __init__(self) -> None:
        self.mixtures: dict[str, MixtureInfo] = {}  # layer-choice path -> info
        self.naming: dict[str, str] = {}  # how each label's names were found
        self._arch_values: dict[int, tuple[torch.Tensor, Any]] = {}
        self.allow_arch_constants = False
        self._allowing = 0

    # --- arch-like constants: never a silent supernet ------------------------------------------
    def note_arch_value(self, value: Any, origin: Any) -> None:
        if isinstance(value, torch.Tensor) and is_arch_like(origin):
            self._arch_values[id(value)] = (value, origin)

    @contextlib.contextmanager
    def allowing_arch_constants(self) -> Iterator[None]:
        self._allowing += 1
        try:
            yield
        finally:
            self._allowing -= 1

    def check_constant(self, cx: Converter, value: torch.Tensor) -> None:
        found = self._arch_values.get(id(value))
        if found is None or self.allow_arch_constants or self._allowing:
            return
        sources = ", ".join(repr(s) for s in arch_sources(found[1])) or "a parameter"
        raise ChoiceError(
            f"at module {cx.where or '<model>'!r}{cx.line}: architecture weights (a softmax or sigmoid of {sources}) reach the "
            "computation, but nascompile recognized no mixture there, so the ONNX file would be the continuous "
            "supernet. nascompile recognizes sum_j w_j * candidate_j(x) with the candidates submodules called on one "
            "input and w_j = softmax(logits)[j] or sigmoid(logits)[j]; write the mixture that way, register a "
            "recognizer (README: Your own mixed op), or pass --allow-no-choices (allow_no_choices=True) to compile "
            "the continuous network on purpose")

    # --- lift ---------------------------------------------------------------------------------------
    def lift_sum(self, cx: Converter, pattern: SumPattern, env: dict) -> V:
        """One sum with its mixtures (each a layer choice), edge terms and other terms."""
        terms = [V(self.lift_mixture(cx, mixture, env)) for mixture in pattern.mixtures]
        for edge_sum in pattern.edge_sums:
            terms += self.lift_edge_sum(cx, edge_sum, env)
        others = [env[o] if isinstance(o, fx.Node) else o for o in pattern.others]
        terms += [o for o in others if not (isinstance(o, (int, float)) and not isinstance(o, bool) and o == 0)]
        return terms[0] if len(terms) == 1 and isinstance(terms[0], V) else cx.emit("sum", terms)

    def lift_mixture(self, cx: Converter, mixture: Mixture, env: dict) -> str:
        """The layer choice of one mixture (its node name)."""
        first = mixture.terms[0].call
        if first.kwargs:
            raise cx.fail(f"the candidates of a mixture are called with keyword arguments {sorted(first.kwargs)}")
        inputs = list(_load(first.args, env))
        if not inputs or not all(isinstance(x, V) for x in inputs):
            raise cx.fail("the candidates of a mixture must be called on tensors computed from the inputs")
        element = mixture.element
        model = cx.model
        full = element.logits.value(model)
        if full.dim() != 1:
            raise cx.fail(f"the mixture's weights come from {element.logits.label!r}, which is not one vector of logits")
        paths = [cx.path(t.call.target) for t in mixture.terms]
        indices = [t.element.index for t in mixture.terms]
        all_names, how = candidate_names(model, paths, full.numel())
        names = [all_names[i] for i in indices]
        tensor = fetch_attr(model, element.logits.path)
        given = cx.choice_lifter.arch_params.take(element.logits.path, tensor.shape, f"the mixture at {cx.where!r}")
        if given is not None:
            full = given if element.logits.index is None else given[element.logits.index]
        logits = full if len(indices) == full.numel() else full[indices]
        source = self._unique(common_path(paths) or cx.where)
        attrs = {"label": element.logits.label, "candidates": names, "modules": paths,
                 "zero": names.index("none") if "none" in names else None,
                 "family": self._family(element.fn, names, how)}
        if element.fn != "softmax":
            attrs["weighting"] = element.fn
        node = cx.graph.add_op("layer_choice", [x.node for x in inputs], name=source, attrs=attrs,
                               params={"logits": logits.detach()}, meta={"source": source})
        self.mixtures[source] = MixtureInfo(element.logits, element.fn, indices, names, paths)
        self.naming.setdefault(element.logits.label, how)
        cx.choice_lifter.made.append(node)
        return node

    def lift_edge_sum(self, cx: Converter, edge_sum: EdgeSum, env: dict) -> list[V]:
        """The terms b_e * edge_e(h_e), each kept with its weight and marked for finalize."""
        terms = []
        for position, term in enumerate(edge_sum.terms):
            choices = cx.choice_lifter.made_by_call.get((cx.prefix, term.call), [])
            edge_path = cx.path(term.call.target)
            if len(choices) != 1:
                raise ChoiceError(
                    f"at module {cx.where or '<model>'!r}: a sum weighs its terms by architecture weights "
                    f"({term.element.logits.label}), so nascompile reads it as a node normalizing its edges (PC-DARTS), "
                    f"but the edge {edge_path!r} holds {len(choices)} choices instead of one")
            choice = choices[0]
            attrs = cx.graph.attrs(choice)
            attrs["edge_index"] = term.element.index
            attrs["edge_label"] = term.element.logits.label
            edge_logits = term.element.logits.value(cx.model)
            given = cx.choice_lifter.arch_params.take(term.element.logits.path,
                                                      fetch_attr(cx.model, term.element.logits.path).shape,
                                                      f"the edge weights at {cx.where!r}")
            if given is not None:
                edge_logits = given if term.element.logits.index is None else given[term.element.logits.index]
            cx.graph.params(choice)["edge_logits"] = edge_logits.detach()
            if term.element.fn != "softmax":
                raise cx.fail(f"edge weights by {term.element.fn} are not supported (PC-DARTS normalizes edges by softmax)")
            attrs["family"] = "pc-darts"
            info = self.mixtures.get(cx.graph.meta(choice).get("source"))
            if info is not None:
                info.edge_module = edge_path
            with self.allowing_arch_constants():
                weighted = cx.emit("mul", [env[term.weight], env[term.call]])
            terms.append(cx.emit("edge", [weighted, V(choice)], attrs={"module": edge_path}))
        return terms

    def lift_batched(self, cx: Converter, pattern: Any, env: dict) -> V:
        """A sum of batched mixtures (`batched_mixtures.py`): per group, one inline layer choice per
        predecessor over the activations, and an input choice keeping one predecessor."""
        terms = [self._lift_batched_group(cx, group, env) for group in pattern.groups]
        others = [env[o] if isinstance(o, fx.Node) else o for o in pattern.others]
        others = [o for o in others if not (isinstance(o, V) and cx.graph.op(o.node) == "zero")
                  and not (isinstance(o, (int, float)) and not isinstance(o, bool) and o == 0)]
        terms += others
        return terms[0] if len(terms) == 1 else cx.emit("sum", terms)

    def _lift_batched_group(self, cx: Converter, group: list, env: dict) -> V:
        from .sequence_functions import select

        column = group[0].column
        model = cx.model
        tensor = fetch_attr(model, column.path)
        if not isinstance(tensor, torch.Tensor) or tensor.dim() != 2:
            raise cx.fail(f"the batched mixture's weights come from {column.path!r}, which is not a matrix of logits")
        n, width = column.stop - column.start, tensor.shape[1]
        if not 0 <= column.start < column.stop <= tensor.shape[0]:
            raise cx.fail(f"the batched mixture reads rows {column.start}:{column.stop} of {column.path!r}, which has "
                          f"{tensor.shape[0]} rows")
        values = []
        for term in group:
            weight, candidates = env[term.weight], env[term.candidates]
            shape = cx.shape_of(candidates)
            if not isinstance(weight, torch.Tensor) or list(weight.shape) != [n] + [1] * (len(shape) - 1) \
                    or not shape or shape[0] != n:
                got = list(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
                raise cx.fail(f"a batched mixture weighs candidates of shape {shape} by weights of shape {got}; "
                              f"nascompile reads it only when the weights ([{n}, 1, ...]) broadcast along the "
                              "candidates' dim 0, one weight per predecessor")
            values.append(candidates)
        present = [t.column.column for t in group]
        missing = [k for k in range(width) if k not in present]
        names, how = candidate_names(model, [cx.where], width)
        if len(missing) > 1:
            raise cx.fail(f"a batched mixture over {column.path!r} leaves out the columns {missing} of its weights; "
                          "nascompile reads one left-out column as the zero op ('none') and no other")
        if not missing and n > 1:
            raise cx.fail(f"a batched mixture over {column.path!r} leaves out no column of its weights: with no "
                          "zero op ('none') among them, no logits express a dropped predecessor, so the node cannot "
                          f"keep one of its {n} predecessors as DARTS's recurrent genotype does")
        zero = missing[0] if missing else None
        given = cx.choice_lifter.arch_params.take(column.path, tensor.shape, f"the batched mixture at {cx.where!r}")
        logits_matrix = given if given is not None else tensor
        choices, labels = [], []
        for j in range(n):
            row = column.start + j
            logits = Logits(column.path, row)
            source = self._unique(f"{cx.where}.edge{row}" if cx.where else f"edge{row}")
            inputs = [select(cx, value, 0, j).node for value in values]
            attrs = {"label": logits.label, "candidates": names, "modules": [None] * width, "zero": zero,
                     "inline": True, "family": "darts-rnn"}
            node = cx.graph.add_op("layer_choice", inputs, name=source, attrs=attrs,
                                   params={"logits": logits_matrix[row].detach()}, meta={"source": source})
            order = ([zero] if zero is not None else []) + present
            self.mixtures[source] = MixtureInfo(logits, "softmax", order, [names[k] for k in order], [])
            cx.choice_lifter.made.append(node)
            choices.append(node)
            labels.append(logits.label)
        self.naming.setdefault(Logits(column.path, Slice(column.start, column.stop)).label, how)
        label = Logits(column.path, Slice(column.start, column.stop)).label
        return cx.emit("input_choice", [V(c) for c in choices], attrs={
            "label": label, "n_chosen": 1, "choose_from": labels, "reduction": "sum"}, name=f"node{column.start}")

    def _unique(self, path: str) -> str:
        if path not in self.mixtures:
            return path
        k = 2
        while f"{path}#{k}" in self.mixtures:
            k += 1
        return f"{path}#{k}"

    @staticmethod
    def _family(fn: str, names: list[str], how: str = "") -> str:
        if fn == "sigmoid":
            return "fair-darts"
        if how.endswith("over PRIMITIVES"):  # names from P-DARTS's switches (names.py): its per-edge op lists
            return "p-darts"
        if set(names) <= NB201_OPS and "nor_conv_3x3" in names:
            return "nb201"
        return "darts"

    # --- the reference ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def fixed(self, model: nn.Module, by_path: Mapping[str, Any]) -> Iterator[nn.Module]:
        """Run `model` with every lifted mixture fixed (see the module docstring)."""
        mine = {path: decision for path, decision in by_path.items() if path in self.mixtures}
        with contextlib.ExitStack() as stack, torch.no_grad():
            rows: dict[tuple[str, Any], tuple[MixtureInfo, int | None]] = {}
            for path, decision in mine.items():
                info = self.mixtures[path]
                key = (info.logits.path, info.logits.index)
                if decision != ncnn.DROPPED:
                    if decision not in info.names:
                        raise ChoiceError(f"decision {decision!r} for the mixture at {path!r} is not one of {info.names}")
                    rows[key] = (info, info.indices[info.names.index(decision)])
                else:
                    rows.setdefault(key, (info, None))
                    for module_path in ([info.edge_module] if info.edge_module else info.candidates):
                        stack.enter_context(_zeroed(model.get_submodule(module_path)))
            for (tensor_path, _), (info, chosen) in rows.items():
                stack.enter_context(_one_hot_logits(fetch_attr(model, tensor_path), info, chosen))
            yield model


@contextlib.contextmanager
def _zeroed(module: nn.Module) -> Iterator[None]:
    forward = type(module).forward.__get__(module)
    with patched_forward(module, lambda *a, **k: torch.zeros_like(forward(*a, **k))):
        yield


@contextlib.contextmanager
def _one_hot_logits(tensor: torch.Tensor, info: MixtureInfo, chosen: int | None) -> Iterator[None]:
    """Write logits into `tensor`'s row that weigh `chosen` exactly 1 and every other slot exactly 0."""
    saved = tensor.detach().clone()
    row = info.logits.value_of(tensor.detach())
    high = 0.0 if info.fn == "softmax" else math.inf
    row.fill_(-math.inf)
    row[info.indices[0] if chosen is None else chosen] = high
    try:
        yield
    finally:
        tensor.detach().copy_(saved)
