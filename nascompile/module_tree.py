"""Fast walks over a module tree.

`nn.Module.modules()` and `parameters()` are recursive generators: each module costs a step per level of
depth, and a DARTS supernet holds thousands of candidate modules. These walks use an explicit stack.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn


def submodules(root: nn.Module) -> Iterator[nn.Module]:
    """`root` and every module under it, each once (a shared module is visited once), parents first."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        module = stack.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        yield module
        stack.extend(child for child in reversed(module._modules.values()) if child is not None)


def weights(root: nn.Module) -> Iterator[torch.Tensor]:
    """The parameters and floating-point buffers of `root` and its submodules (a shared tensor may repeat)."""
    for module in submodules(root):
        yield from (p for p in module._parameters.values() if p is not None)
        yield from (b for b in module._buffers.values() if b is not None and b.is_floating_point())
