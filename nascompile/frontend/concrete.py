"""Concrete values for a symbolic trace: what Python control flow in a forward needs to know.

The lift traces symbolically (torch.fx), so that nothing of the supernet runs that the discrete
network does not need. Python control flow in a forward (`if`, `for`, `len`, `range`, `int`) needs
real values, though. `Evaluator` computes the value of a traced node *on demand*, from:
- the model's parameters, buffers and tensor attributes (the architecture logits included): real;
- the values a call site passes (Python constants, defaults, parameter-derived tensors): real;
- tensors computed from the model's inputs: stand-ins (zeros of the right shape) marked *tainted*.
The shape of a tainted tensor is not tainted (shapes are fixed at compile time); its values are.
A branch on a tainted value is refused (`TraceError` naming the file and line); every other branch
takes its concrete direction and is recorded as a `Specialization`, listed in the compile summary.

Random sampling (Gumbel noise, Dirichlet samples, `torch.rand`) is detected by the generator state
moving while a value is computed, and refused: a compiled network cannot depend on a draw.
"""

from __future__ import annotations

import linecache
import operator
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from ..errors import TraceError
from ..module_tree import submodule_at
from . import module_calls

_TORCH_DIR = os.path.dirname(torch.__file__)
_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SHAPE_METHODS = frozenset({"size", "dim", "ndimension", "numel", "nelement", "get_device", "is_floating_point"})
_SHAPE_ATTRIBUTES = frozenset({"shape", "ndim", "dtype", "device", "is_cuda", "requires_grad"})


@dataclass(frozen=True)
class Location:
    """A line of the user's code: where a branch was taken or a trace failed."""

    file: str
    line: int
    function: str

    def __str__(self) -> str:
        return f"{self.function} line {self.line} ({os.path.basename(self.file)})"

    @property
    def source(self) -> str:
        return linecache.getline(self.file, self.line).strip()


def _is_user_file(filename: str) -> bool:
    known = _USER_FILES.get(filename)
    if known is None:
        path = os.path.abspath(filename)
        known = not (path.startswith(_TORCH_DIR) or path.startswith(_OWN_DIR) or filename.startswith("<"))
        if os.path.isabs(filename):  # a relative name depends on the working directory: not remembered
            _USER_FILES[filename] = known
    return known


_USER_FILES: dict[str, bool] = {}  # absolute file name -> is it the user's code (asked for every traced node)


def user_location(frame: Any = None) -> Location | None:
    """The innermost frame of the user's code on the current stack (or from `frame` outwards)."""
    frame = frame or sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if _is_user_file(code.co_filename):
            return Location(code.co_filename, frame.f_lineno, getattr(code, "co_qualname", code.co_name))
        frame = frame.f_back
    return None


def traceback_location(tb: Any) -> Location | None:
    """The innermost frame of the user's code in a traceback (where a trace failed)."""
    found = None
    while tb is not None:
        code = tb.tb_frame.f_code
        if _is_user_file(code.co_filename):
            found = Location(code.co_filename, tb.tb_lineno, getattr(code, "co_qualname", code.co_name))
        tb = tb.tb_next
    return found


@dataclass(frozen=True)
class Specialization:
    """A branch taken at compile time: where, the condition's source text, and what it evaluated to."""

    where: str
    source: str
    value: Any

    def __str__(self) -> str:
        return f"{self.where}: `{self.source}` -> {self.value!r}"


class Tainted:
    """Marks a stand-in computed from the model's inputs (its values are not known at compile time)."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


def untaint(value: Any) -> tuple[Any, bool]:
    """(plain value, whether any part of it was tainted), for nested lists/tuples/dicts too."""
    if isinstance(value, Tainted):
        return untaint(value.value)[0], True
    if isinstance(value, (list, tuple)):
        items = [untaint(v) for v in value]
        return type(value)(v for v, _ in items) if isinstance(value, tuple) else [v for v, _ in items], \
            any(t for _, t in items)
    if isinstance(value, dict):
        items = {k: untaint(v) for k, v in value.items()}
        return {k: v for k, (v, _) in items.items()}, any(t for _, t in items.values())
    return value, False


class RandomSampling(Exception):
    """A value's computation drew from torch's random generator (args: the op that drew, when known)."""


def run_deterministic(fn: Callable[[], Any]) -> Any:
    """`fn()`, refusing it if it consumed random numbers (the CPU generator's state moved)."""
    before = torch.random.get_rng_state()
    result = fn()
    if not torch.equal(before, torch.random.get_rng_state()):
        torch.random.set_rng_state(before)
        raise RandomSampling
    return result


class Evaluator:
    """Values of the nodes of one fx graph, computed on demand (see the module docstring).

    `placeholder(i)` gives the value of the i-th placeholder: a real value, or `Tainted(stand_in)`.
    """

    def __init__(self, root: nn.Module, placeholder: Callable[[int], Any]):
        self.root = root
        self.placeholder = placeholder
        self.memo: dict[fx.Node, tuple[Any, bool]] = {}
        self._placeholder_index: dict[fx.Node, int] = {}

    def register_placeholder(self, node: fx.Node) -> None:
        self._placeholder_index[node] = len(self._placeholder_index)

    def value(self, node: fx.Node) -> tuple[Any, bool]:
        """(value, tainted) of `node`."""
        found = self.memo.get(node)
        if found is None:
            found = self.memo[node] = self._compute(node)
        return found

    def _load(self, arg: Any) -> tuple[Any, bool]:
        tainted = False

        def load(n: fx.Node) -> Any:
            nonlocal tainted
            value, t = self.value(n)
            tainted = tainted or t
            return value

        loaded = fx.node.map_aggregate(arg, lambda a: load(a) if isinstance(a, fx.Node) else a)
        return loaded, tainted

    def _compute(self, node: fx.Node) -> tuple[Any, bool]:
        if node.op == "placeholder":
            index = self._placeholder_index.get(node)
            if index is None:
                index = [n for n in node.graph.nodes if n.op == "placeholder"].index(node)
            return untaint(self.placeholder(index))
        if node.op == "get_attr":
            with module_calls.eager():
                owner_path, _, name = node.target.rpartition(".")
                owner = submodule_at(self.root, owner_path)
                return getattr(owner, name), False
        (args, kwargs), tainted = self._load((node.args, node.kwargs))
        shape_query = ((node.op == "call_method" and node.target in _SHAPE_METHODS)
                       or (node.target is getattr and len(args) > 1 and args[1] in _SHAPE_ATTRIBUTES))
        if node.op == "call_method":
            def call() -> Any:
                return getattr(args[0], node.target)(*args[1:], **kwargs)
        elif node.op == "call_module":
            module = submodule_at(self.root, node.target)

            def call() -> Any:
                return module(*args, **kwargs)
        else:
            def call() -> Any:
                return node.target(*args, **kwargs)
        try:
            with torch.no_grad(), module_calls.eager():
                value = run_deterministic(call)
        except RandomSampling as exc:
            if exc.args:  # an argument's computation drew first: keep its name
                raise
            raise RandomSampling(getattr(node.target, "__name__", str(node.target))) from None
        return value, tainted and not shape_query


def is_int_like(value: Any) -> bool:
    return isinstance(value, int) or (isinstance(value, torch.Tensor) and value.dim() == 0
                                      and not value.is_floating_point())


def as_index(value: Any) -> int:
    return operator.index(value.item() if isinstance(value, torch.Tensor) else value)
