"""`nascompile report`: margins, near-ties and totals, checked against hand-computed values."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import nascompile
from nascompile import nn as nc
from nascompile.decisions import Decisions, EdgeRank, FinalizeDecision, InputDecision, cut_margin, is_near_tie
from nascompile.report import build_report, format_report

from conftest import EXAMPLES, run_cli


class OneEdge(nc.Supernet):
    """One edge over a 3x3 conv, a 1x1 conv and a pool (zero op last), on 4 channels."""

    def __init__(self, probabilities=(0.40, 0.395, 0.125, 0.08)):
        super().__init__()
        self.edge = nc.LayerChoice({"conv3": nn.Conv2d(4, 4, 3, padding=1), "conv1": nn.Conv2d(4, 4, 1),
                                    "pool": nn.MaxPool2d(3, 1, 1)}, label="edge")
        with torch.no_grad():
            self.edge.alpha.copy_(torch.tensor(probabilities).log())

    def forward(self, x):
        return self.edge(x)


def compiled(probabilities=(0.40, 0.395, 0.125, 0.08)):
    return nascompile.compile(OneEdge(probabilities).eval(), torch.randn(1, 4, 8, 8))


def test_margin_is_the_log_probability_ratio_to_the_runner_up_and_flags_a_near_tie():
    report = compiled().choices.report(near_tie=0.02)
    (entry,) = report["layer_choices"]
    assert entry["chosen"] == "conv3" and entry["runner_up"] == "conv1"
    # logit[conv3] - logit[conv1] = ln(0.40 / 0.395) = 0.01258 (not the probability gap 0.005)
    assert entry["strength"] == pytest.approx(0.40, abs=1e-6) and entry["margin"] == pytest.approx(math.log(0.40 / 0.395),
                                                                                                   rel=1e-4)
    assert entry["probabilities"] == pytest.approx([0.40, 0.395, 0.125, 0.08], abs=1e-6)  # the zero slot included
    assert entry["near_tie"] and report["near_ties"] == [
        "layer choice 'edge': 'conv3' leads 'conv1' by only 0.0126 in logit, ln p[conv3]/p[conv1] (near-tie "
        "threshold 0.02)"]
    assert not compiled().choices.report(near_tie=0.01)["layer_choices"][0]["near_tie"]


def test_an_exact_tie_is_a_tie_not_a_near_tie():
    report = compiled((0.3, 0.3, 0.3, 0.1)).report
    (entry,) = report["layer_choices"]
    assert entry["tie"] == ["conv3", "conv1", "pool"] and entry["margin"] == 0 and not entry["near_tie"]
    assert len(report["ties"]) == 1 and report["near_ties"] == []


def test_a_margin_without_runner_up_is_none_in_the_json_report():
    d = Decisions()
    from nascompile.decisions import LayerDecision

    d.layer["only"] = LayerDecision("only", ["a", "none"], 1, [0.7, 0.3], 0, 0.7, None, math.inf, paths=["m"])
    entry = d.report()["layer_choices"][0]
    assert entry["margin"] is None and entry["runner_up"] is None and not entry["near_tie"]
    json.dumps(d.report(), allow_nan=False)  # strictly valid JSON


def test_cut_margins_of_input_choices_and_finalize_nodes():
    assert cut_margin([0.5, 0.2, 0.45], [True, False, True]) == pytest.approx(0.25)
    assert cut_margin([0.3, 0.2], [True, True]) is None  # nothing dropped
    assert cut_margin([None, 0.3, 0.295], [True, True, False]) == pytest.approx(0.005)  # required edge ignored
    choice = InputDecision("switch", ["a", "b", "c"], 2, "sum", [0.30, 0.295, 0.40], kept=[0, 2],
                           keys=[math.log(0.30), math.log(0.295), math.log(0.40)])
    assert choice.cut_margin == pytest.approx(math.log(0.30 / 0.295))  # the compared keys: log p, not p
    node = FinalizeDecision("n", "cell", "logit", 1, [EdgeRank("a", 2.0, True, 2.0), EdgeRank("b", 1.5, False, 1.5)])
    assert node.cut_margin == pytest.approx(0.5)  # logits, where the rank is a logit
    d = Decisions(input={"switch": choice}, finalize={"n": node})
    assert [line.split(":")[0] for line in d.near_ties(0.02)] == ["input choice 'switch'"]
    assert [line.split(":")[0] for line in d.near_ties(1.0)] == ["input choice 'switch'", "finalize at 'cell'"]
    assert "by only 0.5 in logit (logit rank" in d.near_ties(1.0)[1]
    # saturated: both probabilities are 0.0 (even in float64), their log-space keys still 0.005 apart
    saturated = FinalizeDecision("s", "cell", "softmax", 1, [EdgeRank("a", 0.0, True, -1995.0),
                                                             EdgeRank("b", 0.0, False, -1995.005)])
    assert saturated.cut_margin == pytest.approx(0.005)
    assert "by only 0.005 in log p (softmax rank" in Decisions(finalize={"s": saturated}).near_ties(0.01)[0]
    weightless = InputDecision("w", ["a", None], 1, "sum", [0.3, 0.0], kept=[0], keys=[math.log(0.3), -math.inf])
    assert weightless.cut_margin is None  # a dropped input of weight 0 is no near-tie
    assert is_near_tie(0.005, 0.01) and not is_near_tie(0.0, 0.01) and not is_near_tie(None, 0.01)


def test_totals_count_every_candidate_in_the_supernet_and_the_chosen_one_in_the_discrete_net():
    totals = compiled().costs()
    # 8x8 outputs x 4 output channels x (4 input channels x kernel area): conv3 9216, conv1 1024, the pool 0
    assert totals["supernet"] == {"edges": 1, "candidate_ops": 3, "ir_ops": 1, "params": 144 + 4 + 16 + 4,
                                  "macs": 9216 + 1024, "flops": 2 * (9216 + 1024)}
    discrete = totals["discrete"]
    assert (discrete["edges"], discrete["params"], discrete["macs"]) == (1, 148, 9216)
    assert totals["batch_size"] == 1


def test_the_batch_size_scales_the_macs():
    result = nascompile.compile(OneEdge().eval(), torch.randn(3, 4, 8, 8))
    assert result.costs()["discrete"]["macs"] == 3 * 9216


def test_text_report_has_a_row_per_choice_and_the_totals():
    text = format_report(build_report(compiled(), near_tie=0.02))
    assert "candidates, in p order: conv3, conv1, pool, none (zero)" in text
    row = next(line for line in text.splitlines() if line.strip().startswith("edge "))
    assert row.split()[:5] == ["edge", "conv3", "0.400", "conv1", "0.013"] and "near-tie" in row  # ln(.4/.395)
    assert "0.400* 0.395" in row
    assert "MACs (batch 1)" in text and "10,240" in text and "9,216" in text
    assert "near-ties (margin < 0.02): 1" in text


def test_report_command_text_and_json():
    spec = str(EXAMPLES / "darts_cnn.py")
    proc = run_cli("report", spec, "--near-tie", "0.05")
    assert proc.returncode == 0, proc.stderr
    assert "normal_n2_p0" in proc.stdout and "input choices: 8 labels" in proc.stdout
    assert "genotype: Genotype(normal=" in proc.stdout
    assert "  lift " in proc.stderr and "  report " in proc.stderr  # progress goes to stderr
    proc = run_cli("report", spec, "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["format"] == "nascompile-report" and report["version"] == 1
    assert len(report["layer_choices"]) == 28 and report["near_tie_threshold"] == 0.01
    totals = report["totals"]
    assert totals["supernet"]["edges"] == 8 * 14 and totals["supernet"]["candidate_ops"] == 8 * 14 * 7
    assert totals["discrete"]["edges"] == 8 * 8 and totals["discrete"]["macs"] < totals["supernet"]["macs"]
    flagged = {e["label"] for e in report["layer_choices"] if e["near_tie"]}
    assert flagged == {e["label"] for e in report["layer_choices"] if 0 < e["margin"] < 0.01 and not e["dropped"]}
    assert "reduce_n3_p1" in {e["label"] for e in report["layer_choices"] if e["margin"] < 0.01}
    for e in report["layer_choices"]:  # the margin is ln(p[chosen] / p[runner-up]), the logit difference
        p = e["probabilities"]
        assert e["margin"] == pytest.approx(math.log(p[e["chosen_index"]] / p[e["candidates"].index(e["runner_up"])]),
                                            abs=1e-6)
