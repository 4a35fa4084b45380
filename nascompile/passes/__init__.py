"""Compiler passes, one module each, run by name from a pipeline string (see `manager.py`)."""

from __future__ import annotations

import importlib

from .manager import PassContext, PassResult, available_passes, parse_pipeline, register_pass, run_pipeline

_PASS_MODULES = ("darts_choice", "finalize", "dce", "expand", "infer_shapes")

#: Decisions and lowering to primitive ops, without optimizations (-O0).
PIPELINE_O0 = "darts-choice,finalize,dce,expand,dce,infer-shapes"


def load_all() -> None:
    for name in _PASS_MODULES:
        importlib.import_module(f"{__name__}.{name}")


__all__ = ["PIPELINE_O0", "PassContext", "PassResult", "available_passes", "load_all", "parse_pipeline",
           "register_pass", "run_pipeline"]
