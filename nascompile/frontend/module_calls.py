"""Where `nn.Module.__call__` and `__getattr__` go while the lift traces: to the tracer now tracing, or eager.

torch.fx records module calls and parameter reads by patching `nn.Module.__call__` and `__getattr__` for
the duration of each trace. Assigning a class attribute of `nn.Module` makes Python drop its cached
method lookups for every subclass (torch defines hundreds), and a lift makes dozens of traces: that
patching was a tenth of a compile. Here the two methods are patched once for a whole session (a lift, the
expansion of the chosen candidates) with functions that ask which tracer is tracing now, on this thread:
none (eager), or the innermost one (`tracing`). Another thread's eager calls are never recorded.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from typing import Any

from torch import nn
from torch.fx import _symbolic_trace as symbolic

_EAGER_CALL = symbolic._orig_module_call
_EAGER_GETATTR = symbolic._orig_module_getattr


class _Stack(threading.local):
    def __init__(self) -> None:
        self.tracers: list[Any] = []  # innermost last; None: eager inside a trace (`eager`)


_STACK = _Stack()
_sessions = 0  # open `session`s, all threads


def _tracer_now() -> Any:
    tracers = _STACK.tracers
    return tracers[-1] if tracers else None


@functools.wraps(_EAGER_CALL)
def _call(module: nn.Module, *args: Any, **kwargs: Any) -> Any:
    tracer = _tracer_now()
    if tracer is None:
        return _EAGER_CALL(module, *args, **kwargs)
    return tracer.call_module(module, functools.partial(_EAGER_CALL, module), args, kwargs)


@functools.wraps(_EAGER_GETATTR)
def _getattr(module: nn.Module, name: str) -> Any:
    value = _EAGER_GETATTR(module, name)
    tracer = _tracer_now()
    return value if tracer is None else tracer.getattr(name, value, tracer.parameter_proxy_cache)


@contextlib.contextmanager
def session() -> Iterator[None]:
    """Route module calls through the tracer stack until the outermost session ends."""
    global _sessions
    if _sessions == 0:
        nn.Module.__call__, nn.Module.__getattr__ = _call, _getattr
    _sessions += 1
    try:
        yield
    finally:
        _sessions -= 1
        if _sessions == 0:
            nn.Module.__call__, nn.Module.__getattr__ = _EAGER_CALL, _EAGER_GETATTR


@contextlib.contextmanager
def tracing(tracer: Any) -> Iterator[None]:
    """Module calls on this thread are `tracer`'s to record (it has `call_module`, `getattr` and
    `parameter_proxy_cache`, as a torch.fx Tracer does), within a session."""
    with session():
        _STACK.tracers.append(tracer)
        try:
            yield
        finally:
            _STACK.tracers.pop()


@contextlib.contextmanager
def eager() -> Iterator[None]:
    """Module calls and attribute reads as in eager PyTorch, even inside a trace (a concrete value that runs
    a module's forward for real)."""
    _STACK.tracers.append(None)
    try:
        yield
    finally:
        _STACK.tracers.pop()
