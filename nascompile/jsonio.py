"""Reading JSON that a user or another tool wrote (alphas files, metadata of ONNX files), strictly.

Python's `json` accepts what nascompile must not: a key given twice (the last silently wins), NaN and
Infinity, integers of any length, nesting until the interpreter's recursion limit. `loads_strict` refuses
each with a ValueError saying which, so callers report it as their own user error.
"""

from __future__ import annotations

import json
from typing import Any

MAX_INT_DIGITS = 30


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {key!r} is given twice")
        result[key] = value
    return result


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"integer {text[:20]}... has {len(text.lstrip('-'))} digits, more than {MAX_INT_DIGITS}")
    return int(text)


def loads_strict(text: str) -> Any:
    """`json.loads` refusing duplicate keys, NaN/Infinity, integers over 30 digits and runaway nesting.

    >>> loads_strict('{"a": [1, 2.5]}')
    {'a': [1, 2.5]}
    >>> loads_strict('{"a": 1, "a": 2}')
    Traceback (most recent call last):
    ...
    ValueError: key 'a' is given twice
    """
    try:
        return json.loads(text, object_pairs_hook=_object, parse_constant=_constant, parse_int=_integer)
    except RecursionError:
        raise ValueError("it is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ValueError(str(exc)) from None
