"""Compiler passes, one module each, run by name from a pipeline string (see `manager.py`)."""

from __future__ import annotations

import importlib

from .manager import PassContext, PassResult, available_passes, parse_pipeline, register_pass, run_pipeline

_PASS_MODULES = ("darts_choice", "apply_arch", "finalize", "dce", "expand", "infer_shapes", "fold_constants", "simplify",
                 "eliminate_zeros", "eliminate_identities", "merge_sums", "cse", "fold_batch_norm",
                 "fold_pool_batch_norm", "slice_as_conv", "fuse_cat_convs", "split_cat_convs", "one_tap_conv")

#: Decisions and lowering to primitive ops, without optimizations (-O0).
PIPELINE_O0 = "darts-choice,finalize,dce,expand,dce,infer-shapes"

#: -O0, then the optimizations (-O1, the default). Shapes are inferred first: the rewrites use them to
#: prove that they keep every value's shape and dtype, and keep them up to date for the emitter.
PIPELINE_O1 = (PIPELINE_O0 + ",fold-constants,simplify,eliminate-zeros,eliminate-identities,merge-sums,cse,"
               "slice-as-conv,fold-batch-norm,fold-pool-batch-norm,split-cat-convs,dce")

PIPELINES = {"0": PIPELINE_O0, "1": PIPELINE_O1}


def load_all() -> None:
    for name in _PASS_MODULES:
        importlib.import_module(f"{__name__}.{name}")


__all__ = ["PIPELINES", "PIPELINE_O0", "PIPELINE_O1", "PassContext", "PassResult", "available_passes", "load_all",
           "parse_pipeline", "register_pass", "run_pipeline"]
