"""User-given logits: loading `--alphas` files and checking keys and shapes."""

from __future__ import annotations

import json

import pytest
import torch

from nascompile.errors import ChoiceError, WeightsError
from nascompile.frontend import ArchParams, load_alphas


def test_json_and_state_dict_files_load(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"k": [1, 2, 3], "m": [[0.5, 1.5]]}))
    loaded = load_alphas(tmp_path / "a.json")
    assert loaded.take("k", (3,), "here").dtype == torch.float32
    torch.save({"state_dict": {"choices.k": torch.ones(2)}}, tmp_path / "b.pt")
    assert torch.equal(load_alphas(tmp_path / "b.pt").take("k", (2,), "here"), torch.ones(2))


def test_shape_errors_name_the_key_and_the_file(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"k": [1, 2, 3]}))
    with pytest.raises(WeightsError, match=r"a.json.*'k' has shape \[3\], but layer choice 'x' expects \[4\]"):
        load_alphas(tmp_path / "a.json").take("k", (4,), "layer choice 'x'")
    with pytest.raises(ChoiceError, match=r"arch_params: 'k' has shape \[3\]"):
        ArchParams({"k": [1.0, 2.0, 3.0]}).take("k", (4,), "layer choice 'x'")


def test_unused_keys_are_listed_with_the_keys_the_model_takes():
    params = ArchParams({"used": [1.0], "typo": [1.0]})
    params.take("used", (1,), "here")
    params.take("other", (1,), "there")
    with pytest.raises(ChoiceError, match=r"1 key\(s\) match no choice of the model: 'typo'.*'used', 'other'"):
        params.check_all_used()


@pytest.mark.parametrize("value", [True, "abc", [[1.0], [2.0, 3.0]]])
def test_values_that_are_not_logits_are_refused(value):
    with pytest.raises(ChoiceError, match="'k'"):
        ArchParams({"k": value}).take("k", (1,), "here")


def test_files_holding_code_are_refused(tmp_path):
    torch.save({"k": torch.ones(2), "code": print}, tmp_path / "evil.pt")
    with pytest.raises(WeightsError, match="refused to load alphas file"):
        load_alphas(tmp_path / "evil.pt")
    with pytest.raises(WeightsError, match="does not exist"):
        load_alphas(tmp_path / "missing.json")
