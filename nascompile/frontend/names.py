"""Names for the candidates of a mixture found in the graph: the op names the search code uses.

DARTS forks keep the names in many shapes; looked for in this order, nearest owner first:
1. the keys of a `ModuleDict` holding the candidates;
2. a list of as many distinct strings as the mixture has weights, as an attribute of the module that
   holds the candidates or of any module above it (`self.op_names`, `self.primitives`), or a global
   of the module defining one of those classes (`PRIMITIVES` from `genotypes.py`);
3. per-edge lists: a list of such lists on a module above, indexed by the mixed op's position in its
   `ModuleList` (`self.primitives = PRIMITIVES['primitives_normal']` in a cell);
4. switches (P-DARTS): a list of boolean rows, one per edge, selecting the names of a global
   `PRIMITIVES` (a row named for normal cells is not applied inside a reduction cell, nor the reverse);
5. else the candidates' module paths relative to their container (`m_ops.3`), with a warning.
"""

from __future__ import annotations

import sys
from typing import Any

from torch import nn

_GLOBAL_NAMES = ("PRIMITIVES", "primitives", "OP_NAMES", "op_names", "CANDIDATES", "SEARCH_SPACE")


def common_path(paths: list[str]) -> str:
    """The longest dotted prefix the paths share (their container)."""
    parts = [p.split(".") for p in paths]
    prefix: list[str] = []
    for items in zip(*parts):
        if len(set(items)) != 1:
            break
        prefix.append(items[0])
    if len(paths) == 1:
        prefix = parts[0][:-1]
    return ".".join(prefix)


def _str_list(value: Any, n: int) -> list[str] | None:
    if isinstance(value, (list, tuple)) and len(value) == n and all(isinstance(v, str) for v in value) \
            and len(set(value)) == n:
        return list(value)
    return None


def _owners(model: nn.Module, path: str) -> list[tuple[str, nn.Module]]:
    """(path, module) from `path` up to the root, nearest first."""
    parts = path.split(".") if path else []
    out = []
    for k in range(len(parts), -1, -1):
        sub = ".".join(parts[:k])
        try:
            out.append((sub, model.get_submodule(sub) if sub else model))
        except AttributeError:
            continue
    return out


def _positions(model: nn.Module, owner_path: str, path: str) -> list[tuple[int, int]]:
    """(index, container length) of every ModuleList step on the way from the owner down to `path`."""
    rest = path[len(owner_path):].lstrip(".").split(".") if path != owner_path else []
    out, current = [], model.get_submodule(owner_path) if owner_path else model
    for part in rest:
        child = current._modules.get(part)
        if child is None:
            break
        if isinstance(current, nn.ModuleList) and part.isdigit():
            out.append((int(part), len(current)))
        current = child
    return out


def _cell_kind(model: nn.Module, owners: list[tuple[str, nn.Module]]) -> bool | None:
    """Whether the mixture sits in a reduction cell, as DARTS cells say (`self.reduction`)."""
    for _, module in owners:
        flag = vars(module).get("reduction")
        if isinstance(flag, bool):
            return flag
    return None


def candidate_names(model: nn.Module, candidate_paths: list[str], n: int) -> tuple[list[str], str]:
    """Names for all `n` weights of a mixture whose candidates are at `candidate_paths`, and how they
    were found (for the compile summary)."""
    container = common_path(candidate_paths)
    owners = _owners(model, container)
    holder = owners[0][1] if owners else model
    if isinstance(holder, nn.ModuleDict) and len(holder) == n:
        return list(holder.keys()), f"the keys of ModuleDict {container!r}"
    for owner_path, owner in owners:
        for attr, value in vars(owner).items():
            found = _str_list(value, n)
            if found:
                return found, f"{type(owner).__name__}.{attr}"
    for owner_path, owner in owners:  # per-edge lists
        positions = _positions(model, owner_path, container)
        for attr, value in vars(owner).items():
            if not (isinstance(value, (list, tuple)) and value and all(isinstance(v, (list, tuple)) for v in value)):
                continue
            for index, length in positions:
                if len(value) == length and index < len(value):
                    found = _str_list(value[index], n)
                    if found:
                        return found, f"{type(owner).__name__}.{attr}[{index}]"
    globals_seen = []
    for _, owner in owners:
        module_globals = vars(sys.modules.get(type(owner).__module__, object()))
        if any(module_globals is g for g in globals_seen):
            continue
        globals_seen.append(module_globals)
        for name in _GLOBAL_NAMES:
            found = _str_list(module_globals.get(name), n)
            if found:
                return found, f"{type(owner).__module__}.{name}"
    found = _switched(model, owners, container, globals_seen, n)
    if found:
        return found
    relative = [p[len(container):].lstrip(".") if container else p for p in candidate_paths]
    if len(relative) == n and len(set(relative)) == n:
        return relative, "module paths (no list of op names found)"
    return [f"op{i}" for i in range(n)], "positions (no list of op names found)"


def _switched(model: nn.Module, owners: list, container: str, globals_seen: list, n: int) -> tuple[list[str], str] | None:
    primitives = next((g["PRIMITIVES"] for g in globals_seen if isinstance(g.get("PRIMITIVES"), (list, tuple))), None)
    if primitives is None:
        return None
    reduction = _cell_kind(model, owners)
    for owner_path, owner in owners:
        positions = _positions(model, owner_path, container)
        for attr, rows in vars(owner).items():
            if not (isinstance(rows, (list, tuple)) and rows and all(
                    isinstance(r, (list, tuple)) and len(r) == len(primitives) and all(isinstance(b, bool) for b in r)
                    for r in rows)):
                continue
            lowered = attr.lower()
            if reduction is True and "normal" in lowered or reduction is False and "reduc" in lowered:
                continue
            for index, length in positions:
                if len(rows) == length:
                    names = [p for p, on in zip(primitives, rows[index]) if on]
                    if len(names) == n:
                        return names, f"{type(owner).__name__}.{attr}[{index}] over PRIMITIVES"
    return None
