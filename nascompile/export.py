"""Export formats of a compile's result, and reading them back from an emitted ONNX file.

- NNI's exported-architecture JSON: `nni_json(result.decisions)` (`Decisions.to_nni`).
- DARTS's `Genotype` text: `genotype_text(result)`, for DARTS-shaped search spaces only.
- NAS-Bench-201's arch string: `arch_string_text(result.arch_string)`, for NB201-shaped cells only.
- The *architecture description*: plain, versioned JSON of the derived cells (inputs, numbered nodes,
  edges with their op and source state, concat), the decisions and the genotype text when there is one,
  with a content hash: the sha256 of its canonical serialization (`canonical_json`: keys sorted, no
  spaces, ASCII) taken without the `sha256` key itself. Two compiles that derive the same architecture
  from the same search space have the same hash, whatever the pipeline, rank convention or version of
  nascompile that derived it (those are recorded beside it in the ONNX metadata, outside the hash).

The emitted ONNX file carries the description and its hash in `metadata_props` (`onnx_metadata`);
`read_onnx_metadata` reads them back and checks the hash (`nascompile inspect model.onnx`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .arch import Architecture, Cell
from .errors import ExportError, ModelFileError
from .jsonio import loads_strict

FORMAT = "nascompile-architecture"
FORMAT_VERSION = 1

# Keys of the ONNX metadata_props that nascompile writes.
KEY_VERSION = "nascompile.version"
KEY_PIPELINE = "nascompile.pipeline"
KEY_DECISIONS = "nascompile.decisions"
KEY_ARCHITECTURE = "nascompile.architecture"
KEY_SHA256 = "nascompile.architecture.sha256"
KEY_RULES = "nascompile.rules"


def nni_json(decisions: dict[str, Any]) -> str:
    """NNI's exported-architecture JSON, as `--decisions FILE` and `export --format nni` write it."""
    return json.dumps(decisions, indent=2) + "\n"


def genotype_text(genotype: Any, name: str | None = None) -> str:
    """DARTS's `Genotype(...)` text (`NAME = Genotype(...)` with a name), or ExportError saying why there is none."""
    if genotype is None:
        raise ExportError(
            "this architecture has no DARTS genotype: a genotype needs DARTS-shaped cells (node k with one "
            "candidate edge from each of the n + k earlier states, the output concatenating nodes) of two kinds "
            "whose labels say 'normal' and 'reduce'; use --format json (any search space) or nni")
    return f"{name} = {genotype}" if name else str(genotype)


def arch_string_text(arch_string: str | None) -> str:
    """NAS-Bench-201's arch string, or ExportError saying why there is none."""
    if arch_string is None:
        raise ExportError(
            "this architecture has no NAS-Bench-201 arch string: that needs NB201-shaped cells (one input; node j "
            "summing one layer-choice edge from each earlier state 0 .. j-1), all deriving the same ops; use "
            "--format json (any search space) or nni")
    return arch_string


def canonical_json(value: Any) -> str:
    """The serialization the content hash is taken of: sorted keys, no whitespace, ASCII only.

    >>> canonical_json({"b": [1, 2], "a": "é"})
    '{"a":"\\\\u00e9","b":[1,2]}'
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def content_hash(description: dict[str, Any]) -> str:
    """sha256 (hex) of the canonical description, its own `sha256` key left out."""
    body = {k: v for k, v in description.items() if k != "sha256"}
    return hashlib.sha256(canonical_json(body).encode("ascii")).hexdigest()


def _cell(cell: Cell) -> dict[str, Any]:
    n_inputs = len(cell.inputs)
    return {
        "name": cell.name,
        "inputs": [{"index": i, "source": source} for i, source in enumerate(cell.input_sources)],
        "nodes": [{"index": n_inputs + k, "choice": node.choice,
                   "edges": [{"source": e.source, "op": e.op, "label": e.label} for e in node.edges]}
                  for k, node in enumerate(cell.nodes)],
        "concat": list(cell.concat),
    }


def describe_architecture(architecture: Architecture | None, decisions: dict[str, Any],
                          genotype: Any = None) -> dict[str, Any]:
    """The versioned architecture description, with its `sha256` (see the module docstring).

    States are numbered as DARTS numbers them: a cell's inputs 0 .. n-1, then its nodes n, n+1, ...;
    an edge's `source` and the `concat` list index them. `op` is the chosen candidate of an edge's layer
    choice (`label`), or the IR op of a fixed edge (`label` null).
    """
    description: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "cells": [_cell(cell) for cell in (architecture.cells if architecture is not None else [])],
        "decisions": decisions,
        "genotype": None if genotype is None else str(genotype),
    }
    description["sha256"] = content_hash(description)
    return description


def onnx_metadata(description: dict[str, Any], version: str, pipeline: str, rules: str | None = None) -> dict[str, str]:
    """The `metadata_props` an emitted model carries (`rules`: the rule set that decided, outside the hash)."""
    return {
        KEY_VERSION: version,
        **({KEY_RULES: rules} if rules else {}),
        KEY_DECISIONS: json.dumps(description["decisions"], sort_keys=True),
        KEY_PIPELINE: pipeline,
        KEY_ARCHITECTURE: canonical_json(description),
        KEY_SHA256: description["sha256"],
    }


@dataclass
class StoredArchitecture:
    """What an emitted ONNX file says about its origin (`read_onnx_metadata`)."""

    path: str
    version: str | None
    pipeline: str | None
    decisions: dict[str, Any]
    rules: str | None
    description: dict[str, Any] | None  # None in files written before descriptions were stored
    sha256: str | None
    hash_ok: bool | None  # the stored hash matches the stored description (None: nothing to check)
    precision: dict[str, Any] | None = None  # fp16/int8 files: precision, accuracy, calibration (`precision.py`)

    def to_dict(self) -> dict[str, Any]:
        out = {"path": self.path, "nascompile_version": self.version, "pipeline": self.pipeline,
               "rules": self.rules, "sha256": self.sha256, "hash_ok": self.hash_ok, "decisions": self.decisions,
               "architecture": self.description}
        if self.precision is not None:
            out["precision"] = self.precision
        return out


def _check_metadata_types(path: Path, decisions: Any, description: Any) -> None:
    """ModelFileError unless the decisions map labels to an op or a list of labels, and the description is
    an object whose cells are a list (what `inspect` reads)."""
    def is_decision(value: Any) -> bool:
        return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))

    if not isinstance(decisions, dict) or not all(is_decision(v) for v in decisions.values()):
        raise ModelFileError(f"{str(path)!r}: the stored decisions are malformed (expected an object of label -> "
                             "op name or list of labels); the metadata was not written by nascompile or was changed")
    if description is not None and not (isinstance(description, dict) and
                                        isinstance(description.get("cells", []), list) and
                                        isinstance(description.get("genotype"), (str, type(None)))):
        raise ModelFileError(f"{str(path)!r}: the stored architecture description is malformed (expected an "
                             "object with a list of cells); the metadata was not written by nascompile or was changed")


def read_onnx_metadata(path: str | os.PathLike) -> StoredArchitecture:
    """Read the nascompile metadata of the ONNX file at `path` (its weights are not loaded).

    ModelFileError when the file is missing, is not an ONNX model, or carries no nascompile metadata.
    """
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{str(path)!r} does not exist or is not a file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        raise ModelFileError(f"{str(path)!r} is not an ONNX model ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else 'cannot be parsed'})") from None
    if not model.graph.node and not model.graph.output and not model.metadata_props:
        raise ModelFileError(f"{str(path)!r} is not an ONNX model (it parses to an empty model)")
    props = {p.key: p.value for p in model.metadata_props}
    if KEY_DECISIONS not in props:
        raise ModelFileError(f"{str(path)!r} is an ONNX model without nascompile metadata (no "
                             f"{KEY_DECISIONS!r} in its metadata_props); was it written by nascompile?")
    try:
        decisions = loads_strict(props[KEY_DECISIONS])
        description = loads_strict(props[KEY_ARCHITECTURE]) if KEY_ARCHITECTURE in props else None
    except ValueError as exc:
        raise ModelFileError(f"{str(path)!r}: nascompile metadata is not valid JSON ({exc})") from None
    _check_metadata_types(path, decisions, description)
    sha256 = props.get(KEY_SHA256)
    hash_ok = None if description is None or sha256 is None else content_hash(description) == sha256 == description.get("sha256")
    precision = None
    if "nascompile.precision" in props:  # keys written by precision.py
        try:
            accuracy = json.loads(props.get("nascompile.accuracy", "null"))
        except json.JSONDecodeError as exc:
            raise ModelFileError(f"{str(path)!r}: nascompile.accuracy is not valid JSON ({exc})") from None
        precision = {"precision": props["nascompile.precision"], "accuracy": accuracy,
                     "calibration": props.get("nascompile.calibration")}
    return StoredArchitecture(str(path), props.get(KEY_VERSION), props.get(KEY_PIPELINE), decisions,
                              props.get(KEY_RULES), description, sha256, hash_ok, precision)
