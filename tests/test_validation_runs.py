"""Validation at a fixed batch, and onnxruntime failures reported as what they are (issue 17, items 1, 11)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import nascompile
from nascompile import cli
from nascompile.errors import ValidationError

from conftest import EXAMPLES


@pytest.mark.parametrize("extra, batch", [([], 1), (["--input-shape", "4,3,16,16"], 4)])
def test_static_batch_validates_at_the_fixed_batch(tmp_path, capsys, extra, batch):
    out = tmp_path / "m.onnx"
    assert cli.main(["compile", str(EXAMPLES / "nb201_cell.py"), "-o", str(out), "--static-batch", "--validate",
                     *extra]) == 0
    printed = capsys.readouterr().out
    assert f"batch {batch:>3}  output" in printed and printed.count(" ok") == 1 and out.exists()


def test_static_batch_with_other_batch_sizes_is_a_usage_error(tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert cli.main(["compile", str(EXAMPLES / "nb201_cell.py"), "-o", str(out), "--static-batch", "--validate",
                     "--batch-sizes", "1,2", "-q"]) == 2
    assert "the batch of a file written with a static batch" in capsys.readouterr().err and not out.exists()


def test_a_model_onnxruntime_cannot_load_is_a_validation_error_not_a_device_error(tmp_path):
    net = nn.Sequential(nn.Conv2d(2, 2, 3)).double()  # onnxruntime's CPU Conv has no float64 kernel
    result = nascompile.compile(net, torch.randn(1, 2, 6, 6, dtype=torch.float64))
    with pytest.raises(ValidationError, match=r"onnxruntime \S+ cannot load the model on cpu: .*Conv"):
        result.save(tmp_path / "m.onnx", validate="cpu")
    assert list(tmp_path.iterdir()) == []
