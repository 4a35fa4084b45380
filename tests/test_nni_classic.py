"""NNI classic mutables (examples/nni_darts.py): decisions equal DartsMutator.export(), validation, --alphas."""

from __future__ import annotations

import json
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

import nascompile
from nascompile.errors import ChoiceError, WeightsError

from conftest import example, run_cli

nni = example("nni_darts")
X = torch.randn(1, 3, 16, 16)


def sample_final(model: nn.Module, choices: dict[str, torch.Tensor]) -> dict[str, list[bool]]:
    """NNI `DartsMutator.sample_final` (= `export()`), written out independently: masks by key."""
    layer_choices = [m for m in model.modules() if isinstance(m, nni.LayerChoice)]
    input_choices = [m for m in model.modules() if isinstance(m, nni.InputChoice)]
    masks, strength = {}, {}
    for choice in layer_choices:
        probabilities = F.softmax(choices[choice.key], dim=-1)[:-1]  # the zero op's slot is last
        value, best = torch.max(probabilities, 0)
        strength[choice.key] = float(value)
        masks[choice.key] = [i == int(best) for i in range(len(choice))]
    for choice in input_choices:
        if choice.n_chosen is None:
            masks[choice.key] = [True] * choice.n_candidates
            continue
        weights = torch.tensor([strength.get(key, 0.0) for key in choice.choose_from])
        top = set(torch.topk(weights, choice.n_chosen).indices.tolist())
        for i, key in enumerate(choice.choose_from):
            if i not in top and key in masks:
                masks[key] = [False] * len(masks[key])  # nothing computed on a dropped edge
        masks[choice.key] = [i in top for i in range(choice.n_candidates)]
    return masks


def as_masks(model: nn.Module, decisions: dict) -> dict[str, list[bool]]:
    """nascompile's decisions (NNI's human-readable export) as NNI's boolean masks."""
    masks = {}
    for module in model.modules():
        if isinstance(module, nni.LayerChoice):
            masks[module.key] = [name == decisions[module.key] for name in module.names]
        elif isinstance(module, nni.InputChoice):
            masks[module.key] = [key in decisions[module.key] for key in module.choose_from]
    return masks


@pytest.fixture(scope="module")
def small_network():
    return nni.build(n_layers=3, channels=4, with_mutator=False)


KEYS = sorted({m.key for m in nni.build(n_layers=3, channels=4, with_mutator=False).modules()
               if isinstance(m, nni.LayerChoice)})


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([1e-3, 0.1, 1.0, 10.0]))
def test_decisions_equal_darts_mutator_export_on_random_logits(small_network, seed, scale):
    generator = torch.Generator().manual_seed(seed)
    choices = {key: scale * torch.randn(8, generator=generator) for key in KEYS}
    # torch.max and torch.topk leave the order of ties unspecified: keep to examples without them
    strengths = [float(F.softmax(v, -1)[:-1].max()) for v in choices.values()]
    assume(len(set(strengths)) == len(strengths))
    result = nascompile.compile(small_network, X, pipeline="darts-choice", arch_params=choices)
    assert as_masks(small_network, result.decisions) == sample_final(small_network, choices)


def test_hand_computed_decisions():
    """One node with three edges: logits put conv on p0 (p=.5), skip on p1 (p=.6), conv on p2 (p=.2)."""
    class Node(nn.Module):
        def __init__(self):
            super().__init__()
            keys = ["p0", "p1", "p2"]
            self.edges = nn.ModuleList(nni.LayerChoice(OrderedDict(conv=nn.Conv2d(2, 2, 1), skip=nn.Identity()),
                                                       key=key) for key in keys)
            self.switch = nni.InputChoice(choose_from=keys, n_chosen=2, key="switch")

        def forward(self, x):
            return self.switch([edge(x) for edge in self.edges])

    log = torch.log
    choices = {"p0": log(torch.tensor([.5, .3, .2])), "p1": log(torch.tensor([.1, .6, .3])),
               "p2": log(torch.tensor([.2, .1, .7]))}
    result = nascompile.compile(Node().eval(), torch.randn(1, 2, 4, 4), arch_params=choices)
    assert result.decisions == {"p0": "conv", "p1": "skip", "p2": [], "switch": ["p0", "p1"]}
    assert result.report["input_choices"][0]["weights"] == pytest.approx([.5, .6, .2])


@pytest.fixture(scope="module")
def compiled():
    model = nni.build(n_layers=5, channels=8)
    return model, nascompile.compile(model, X, verify_each=True)


def test_logits_come_from_the_attached_mutator(compiled):
    model, result = compiled
    mutator = next(m for m in model.modules() if isinstance(m, nni.LayerChoice)).mutator
    choices = {key: value.detach() for key, value in mutator.choices.items()}
    assert as_masks(model, result.decisions) == sample_final(model, choices)


def test_onnx_equals_the_reference(compiled, tmp_path):
    _, result = compiled
    assert result.save(tmp_path / "nni.onnx", validate="cpu", batch_sizes=(1, 2)).validation.passed


def test_cli_compiles_the_example_to_validated_onnx(tmp_path):
    proc = run_cli("compile", "examples/nni_darts.py", "-o", str(tmp_path / "nni.onnx"), "--validate")
    assert proc.returncode == 0, proc.stderr
    assert "validation on cpu" in proc.stdout


@pytest.mark.parametrize("suffix", [".json", ".pt"])
def test_cli_alphas_file_gives_the_mutators_decisions(tmp_path, suffix):
    """A saved mutator state dict (`choices.` keys) or a JSON of lists sets the logits."""
    model = nni.build(with_mutator=False)
    choices = {key: torch.randn(8) for key in {m.key for m in model.modules() if isinstance(m, nni.LayerChoice)}}
    path = tmp_path / f"alphas{suffix}"
    if suffix == ".pt":
        torch.save({f"choices.{key}": value for key, value in choices.items()}, path)
    else:
        path.write_text(json.dumps({key: value.tolist() for key, value in choices.items()}))
    decisions = tmp_path / "decisions.json"
    proc = run_cli("compile", "examples/nni_darts.py", "-o", str(tmp_path / "nni.onnx"), "--alphas", str(path),
                   "--decisions", str(decisions), "--validate")
    assert proc.returncode == 0, proc.stderr
    assert as_masks(model, json.loads(decisions.read_text())) == sample_final(model, choices)


# --- errors ----------------------------------------------------------------------------------------
def test_missing_logits_name_the_key_and_path(small_network):
    with pytest.raises(ChoiceError, match=r"no logits for layer choice 'normal_n0_p0' \(cells.0.mutable_ops.0.ops.0"):
        nascompile.compile(small_network, X)


def test_wrong_logits_shape_names_the_key(small_network):
    choices = {key: torch.zeros(8) for key in KEYS} | {"reduce_n1_p2": torch.zeros(7)}
    with pytest.raises(ChoiceError, match=r"'reduce_n1_p2' has shape \[7\].*expects \[8\]"):
        nascompile.compile(small_network, X, arch_params=choices)


def test_unknown_key_is_refused(small_network):
    choices = {key: torch.zeros(8) for key in KEYS} | {"normal_n9_p0": torch.zeros(8)}
    with pytest.raises(ChoiceError, match="'normal_n9_p0'"):
        nascompile.compile(small_network, X, arch_params=choices)


@pytest.mark.parametrize("content, message", [
    ("{not json", "cannot read alphas file"),
    ('[1, 2]', "must hold a mapping"),
    ('{"normal_n0_p0": [[1, 2], [3]]}', "'normal_n0_p0' is not a list of numbers"),
])
def test_bad_alphas_files_are_weights_errors(tmp_path, content, message):
    path = tmp_path / "alphas.json"
    path.write_text(content)
    proc = run_cli("compile", "examples/nni_darts.py", "-o", str(tmp_path / "nni.onnx"), "--alphas", str(path))
    assert proc.returncode == WeightsError.exit_code and message in proc.stderr, proc.stderr


def test_return_mask_is_refused():
    choice = nni.LayerChoice([nn.Identity()], return_mask=True, key="lc")
    with pytest.raises(ChoiceError, match="'lc'.*return_mask=True"):
        nascompile.compile(nn.Sequential(choice), torch.randn(1, 2), arch_params={"lc": torch.zeros(2)})
