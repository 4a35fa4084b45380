"""Custom ops whose forward only chains child modules, converted without tracing.

DARTS code writes most candidate ops as a module whose forward is `return self.op(x)` around an
`nn.Sequential` (ReLUConvBN, DilConv, SepConv), `return self.bn(self.pool(x))`, or `return x`. An fx trace
of each costs milliseconds of set-up. Comparing the forward's bytecode with the templates below proves
that it computes exactly the chain: bytecode refers to attributes and locals by index, so a forward with
the template's code, argument layout and no closure is the template program with other names.
"""

from __future__ import annotations

import functools
import inspect
import types

from torch import nn


def _identity(self, x):
    return x


def _one(self, x):
    return self.a(x)


def _two_nested(self, x):
    return self.b(self.a(x))


def _two_sequenced(self, x):
    x = self.a(x)
    return self.b(x)


def _two_sequenced_via_a_local(self, x):
    y = self.a(x)
    return self.b(y)


# template -> the call order, as indices into the forward's attribute names (co_names)
_TEMPLATES = [(_identity, ()), (_one, (0,)), (_two_nested, (1, 0)), (_two_sequenced, (0, 1)),
              (_two_sequenced_via_a_local, (0, 1))]
_ARGS_ONLY = inspect.CO_VARARGS | inspect.CO_VARKEYWORDS


@functools.lru_cache(maxsize=None)
def _call_order(code: types.CodeType) -> tuple[int, ...] | None:
    if (code.co_argcount != 2 or code.co_kwonlyargcount or code.co_posonlyargcount or code.co_flags & _ARGS_ONLY
            or code.co_freevars or code.co_cellvars):
        return None
    for template, order in _TEMPLATES:
        expected = template.__code__
        if (code.co_code == expected.co_code and len(code.co_names) == len(expected.co_names)
                and code.co_nlocals == expected.co_nlocals):
            return order
    return None


def delegated_children(module: nn.Module) -> list[tuple[str, nn.Module]] | None:
    """The (name, child) pairs `module`'s forward calls in turn on its one input, when its forward is one of
    the templates and each name is a child module; else None. `[]` means the forward returns its input."""
    cls = type(module)
    forward = cls.forward
    if cls.__call__ is not nn.Module.__call__ or not isinstance(forward, types.FunctionType):
        return None
    order = _call_order(forward.__code__)
    if order is None:
        return None
    names = [forward.__code__.co_names[i] for i in order]
    children = module._modules
    if any(children.get(name) is None or hasattr(cls, name) or name in vars(module) for name in names):
        return None  # not a child module, or shadowed by a class or instance attribute
    return [(name, children[name]) for name in names]
