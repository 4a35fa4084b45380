"""Where a parameter-derived value comes from: a small expression over the model's tensors.

The lift folds every computation that reads no input (`softmax(alphas, -1)[3]`) into a constant. For
the mixture patterns it must also know *how* such a constant was made: that the weight of a term is
element `j` of a softmax over one row of an architecture-logits tensor. An `Origin` records that
expression, across module boundaries (a cell receives `weights` computed in the network's forward).

`weight_element` reads an origin as "element `index` of `fn(logits)`", which is what every DARTS
family writes, whatever the spelling: `softmax(A, -1)[i][j]`, `softmax(A[i], -1)[j]`, a row of
`cat([softmax(B[0:2]), softmax(B[2:5]), ...])` (PC-DARTS's edge betas), `sigmoid(A)[i][j]` (FairDARTS).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .convert import fetch_attr


@dataclass(frozen=True)
class Attr:
    """A tensor attribute of the model (parameter, buffer or plain tensor), by its full path."""

    path: str


@dataclass(frozen=True)
class Op:
    """`name(*args, **kwargs)` over origins and Python constants."""

    name: str
    args: tuple
    kwargs: tuple = ()  # sorted (key, value) pairs

    def kwarg(self, key: str, default: Any = None) -> Any:
        return dict(self.kwargs).get(key, default)


@dataclass(frozen=True)
class Slice:
    """A hashable `start:stop:step` (Python's slice objects are not hashable before 3.12)."""

    start: int | None
    stop: int | None
    step: int | None = None

    def as_slice(self) -> slice:
        return slice(self.start, self.stop, self.step)


Origin = Attr | Op

#: Normalizations that turn logits into mixing weights, by the name `op_name` gives them.
NORMALIZERS = frozenset({"softmax", "sigmoid"})
_SOFTMAX = (F.softmax, torch.softmax)
_SIGMOID = (torch.sigmoid, F.sigmoid)
_CAT = (torch.cat, torch.concat, torch.concatenate)


def op_name(kind: str, target: Any) -> str:
    """A stable name for an fx call target (`softmax`, `getitem`, `cat`, a method name, ...)."""
    if kind == "call_method":
        return str(target)
    if target in _SOFTMAX:
        return "softmax"
    if target in _SIGMOID:
        return "sigmoid"
    if target in _CAT:
        return "cat"
    if target is operator.getitem:
        return "getitem"
    return getattr(target, "__name__", str(target))


def is_arch_like(origin: Any) -> bool:
    """Does `origin` pass parameters through a softmax or sigmoid (the sign of architecture weights)?"""
    if isinstance(origin, Op):
        if origin.name in NORMALIZERS:
            return True
        return any(is_arch_like(a) for a in _flat(origin.args))
    return False


def _flat(args: Any):
    for a in args:
        if isinstance(a, (tuple, list)):
            yield from _flat(a)
        else:
            yield a


def arch_sources(origin: Any) -> list[str]:
    """The tensor paths behind an arch-like origin, for messages."""
    found: list[str] = []
    stack = [origin]
    while stack:
        item = stack.pop()
        if isinstance(item, Attr):
            if item.path not in found:
                found.append(item.path)
        elif isinstance(item, Op):
            stack.extend(reversed(list(_flat(item.args))))
    return found


@dataclass(frozen=True)
class Logits:
    """One vector of architecture logits: `path` and the index that selects it (None: the whole tensor)."""

    path: str
    index: Any = None  # an int row, a Slice, or None

    @property
    def label(self) -> str:
        return self.path + ("" if self.index is None else f"[{_index_text(self.index)}]")

    def value(self, root: torch.nn.Module) -> torch.Tensor:
        return self.value_of(fetch_attr(root, self.path))

    def value_of(self, tensor: torch.Tensor) -> torch.Tensor:
        """This vector of `tensor` (a view: writing into it writes into the tensor)."""
        if self.index is None:
            return tensor
        return tensor[self.index.as_slice() if isinstance(self.index, Slice) else self.index]


def _index_text(index: Any) -> str:
    if isinstance(index, Slice):
        return f"{'' if index.start is None else index.start}:{'' if index.stop is None else index.stop}"
    return str(index)


@dataclass(frozen=True)
class WeightElement:
    """Element `index` of `fn(logits)` (fn: softmax over the vector, or an elementwise sigmoid)."""

    fn: str
    logits: Logits
    index: int

    @property
    def vector(self) -> tuple[str, Logits]:
        """What identifies the weight vector the element belongs to."""
        return (self.fn, self.logits)


def _logits_of(origin: Any, take: Any = None) -> Logits | None:
    """`origin` (optionally indexed by `take`) as one vector of logits of a model tensor."""
    if isinstance(origin, Attr):
        return Logits(origin.path, take)
    if isinstance(origin, Op) and origin.name == "getitem" and take is None:
        base, index = origin.args
        if isinstance(base, Attr) and _plain_index(index):
            return Logits(base.path, index)
    return None


def _plain_index(index: Any) -> bool:
    if isinstance(index, bool):
        return False
    if isinstance(index, int):
        return True
    return isinstance(index, Slice) and index.step in (None, 1) and all(
        v is None or isinstance(v, int) for v in (index.start, index.stop))


def _normalized(origin: Any) -> tuple[str, Any, Any] | None:
    """(fn, input origin, dim) when `origin` is softmax(x, dim) or sigmoid(x)."""
    if not isinstance(origin, Op) or origin.name not in NORMALIZERS:
        return None
    x = origin.args[0]
    if origin.name == "sigmoid":
        return "sigmoid", x, None
    dim = origin.args[1] if len(origin.args) > 1 else origin.kwarg("dim")
    return "softmax", x, dim


def weight_vector(origin: Any) -> tuple[str, Logits] | None:
    """(fn, logits) when `origin` is one whole weight vector: fn(L) of a vector of logits L, a row of
    fn(M) normalized over M's last dim (`softmax(M, -1)[i]`), or fn(M[i])."""
    found = _normalized(origin)
    if found is not None:
        fn, x, dim = found
        logits = _logits_of(x)
        if logits is None or (fn == "softmax" and dim not in (-1, 0, None) and logits.index is None):
            return None
        return fn, logits
    if isinstance(origin, Op) and origin.name == "getitem":
        outer, row = origin.args
        found = _normalized(outer)
        if found is not None and isinstance(row, int) and not isinstance(row, bool):
            fn, x, dim = found
            if isinstance(x, Attr) and (fn == "sigmoid" or dim in (-1, 1)):
                return fn, Logits(x.path, row)
    return None


def weight_element(origin: Any, shapes: dict[str, tuple] | None = None) -> WeightElement | None:
    """Read `origin` as one element of a weight vector (see the module docstring), or None."""
    if not (isinstance(origin, Op) and origin.name == "getitem"):
        return None
    base, index = origin.args
    if isinstance(index, bool) or not isinstance(index, int):
        return None
    vector = weight_vector(base)
    if vector is not None:
        return WeightElement(vector[0], vector[1], index)
    # an element of a concatenation of weight vectors (PC-DARTS's betas): find the part it falls in
    if isinstance(base, Op) and base.name == "cat" and shapes is not None:
        parts = cat_parts(base)
        offset = 0
        for part in parts:
            vector = weight_vector(part)
            length = shapes.get(vector[1].label) if vector is not None else None
            if length is None:
                return None
            if index < offset + length[0]:
                return WeightElement(vector[0], vector[1], index - offset)
            offset += length[0]
    return None


def cat_parts(origin: Op) -> list[Any]:
    """The parts of a concatenation along dim 0, nested concatenations flattened (PC-DARTS grows its
    edge weights by `weights2 = torch.cat([weights2, softmax(betas[start:end])])` in a loop)."""
    dim = origin.args[1] if len(origin.args) > 1 else origin.kwarg("dim", 0)
    if dim not in (0, -1) or not origin.args or not isinstance(origin.args[0], tuple):
        return [origin]
    parts: list[Any] = []
    for part in origin.args[0]:
        parts += cat_parts(part) if isinstance(part, Op) and part.name == "cat" else [part]
    return parts


def cat_part_lengths(origin: Any, root: torch.nn.Module) -> dict[str, tuple]:
    """Shapes of the logits vectors inside a `cat` origin (what `weight_element` needs to index it)."""
    shapes: dict[str, tuple] = {}
    if isinstance(origin, Op) and origin.name == "getitem":
        origin = origin.args[0]
    if isinstance(origin, Op) and origin.name == "cat" and origin.args:
        for part in cat_parts(origin):
            vector = weight_vector(part)
            if vector is not None:
                shapes[vector[1].label] = tuple(vector[1].value(root).shape)
    return shapes
