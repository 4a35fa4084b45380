"""DARTS's recurrent search model, written as DARTS writes it (tests/rnn_supernets.py), compiles as written.

Checked three ways: the recurrent genotype equals DARTS's `_parse` written here in exact arithmetic
(hand-computed cases: saturated logits, ties); the ONNX file equals the model's own discrete network
(the model run on logits that weigh exactly the derived activations, built here, not by nascompile) at
two sequence lengths and two batch sizes; and `--validate`'s reference agrees.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import nascompile
from nascompile.errors import TraceError
from nascompile.ir import parse_graph, print_graph
from nascompile.passes import PassContext
from nascompile.passes.expand import expand

import rnn_supernets as R

NONE = R.PRIMITIVES.index("none")


def model_with(logits=None, steps=R.STEPS, seed=0):
    model = R.RNNSearchModel(steps=steps, seed=seed).eval()
    if logits is not None:
        model.weights.copy_(torch.as_tensor(logits, dtype=torch.float32))
    return model


def inputs(model, seq_len=3, batch=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.ntoken, (seq_len, batch), generator=g), [torch.randn(1, batch, model.nhid, generator=g)]


def exact_parse(logits, steps):
    """DARTS's recurrent `_parse`, exactly: per node, the predecessor j whose best non-none log-probability
    (log p = logit - logsumexp(row), none included) is highest (the first on ties, as Python's stable sort
    keeps it), then that row's first maximal non-none logit."""
    logits = torch.as_tensor(logits, dtype=torch.float64)
    gene, start = [], 0
    for i in range(steps):
        best = []
        for j in range(i + 1):
            row = logits[start + j]
            k = max((k for k in range(row.numel()) if k != NONE), key=lambda k: (row[k].item(), -k))
            best.append((row[k].item() - torch.logsumexp(row, 0).item(), k))
        j = max(range(i + 1), key=lambda j: (best[j][0], -j))
        gene.append((R.PRIMITIVES[best[j][1]], j))
        start += i + 1
    return gene


def discrete_output(model, gene, x, h):
    """The model's own forward on logits that weigh exactly the derived activation of every kept edge
    ('none' on every dropped edge): DARTS's discrete cell, as its own code computes it."""
    saved = model.weights.clone()
    one_hot = torch.full_like(model.weights, -math.inf)
    start = 0
    for i, (act, j) in enumerate(gene):
        for p in range(i + 1):
            one_hot[start + p, R.PRIMITIVES.index(act) if p == j else NONE] = 0.0
        start += i + 1
    model.weights.copy_(one_hot)
    try:
        with torch.no_grad():
            out, hidden = model(x, h)
        return [out, hidden[0]]
    finally:
        model.weights.copy_(saved)


def onnx_outputs(path, x, h):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, [x.numpy(), h[0].numpy()])))


# --- decisions --------------------------------------------------------------------------------------
SATURATED = [  # rows of STEPS=4 nodes (1 + 2 + 3 + 4 rows) x [none, tanh, relu, sigmoid, identity]
    [0.0, 1.0, 2.0, 0.5, 0.0],        # node 0: j=0 only; relu
    [200.0, 0.0, 1.0, 0.0, 0.0],      # node 1, j=0: 'none' dominates: float32 p of relu is exactly 0
    [200.0, 3.0, 0.0, 0.0, 0.0],      # node 1, j=1: tanh, log p = 3 - ~200: stronger than j=0's relu
    [0.0, 1.0, 1.0, 0.0, 0.0],        # node 2, j=0: tanh and relu tie: the first (tanh)
    [0.0, 1.0, 1.0, 0.0, 0.0],        # node 2, j=1: the same row: a tie between predecessors: j=0 kept
    [0.0, -1.0, -1.0, -1.0, -1.0],    # node 2, j=2
    [5.0, 0.0, 0.0, 0.0, 4.0],        # node 3, j=0: identity, but the none logit halves it
    [0.0, 0.0, 0.0, 2.0, 0.0],        # node 3, j=1: sigmoid
    [0.0, 0.0, 0.0, 2.0, 0.0],        # node 3, j=2: equal to j=1
    [-3.0, 0.0, 2.5, 0.0, 0.0],       # node 3, j=3: relu, the strongest
]
SATURATED_GENE = [("relu", 0), ("tanh", 1), ("tanh", 0), ("relu", 3)]


def test_recurrent_genotype_is_darts_parse_in_exact_arithmetic_saturated_and_tied():
    assert exact_parse(SATURATED, 4) == SATURATED_GENE  # the derivation agrees with the hand-computed genes
    model = model_with(SATURATED)
    x, h = inputs(model)
    result = nascompile.compile(model, (x, h), batch_dim=1)
    assert result.genotype.recurrent == SATURATED_GENE
    assert result.genotype.concat == range(1, 5)
    assert str(result.genotype) == ("Genotype(recurrent=[('relu', 0), ('tanh', 1), ('tanh', 0), ('relu', 3)], "
                                    "concat=range(1, 5))")
    assert result.choices.rules.rules.name == "darts-rnn"
    # the tie between node 2's first two predecessors is reported
    assert any("rnns.0.weights[3:6]" in str(t) for t in result.choices.ties())
    # DARTS's own float32 code sees every non-none p of node 1 as exactly 0: it keeps j=0 and its first activation
    assert model.genotype()[1] == ("tanh", 0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recurrent_genotype_equals_the_derivation_on_random_logits(seed):
    model = model_with(seed=seed)
    x, h = inputs(model)
    result = nascompile.compile(model, (x, h), batch_dim=1)
    assert result.genotype.recurrent == exact_parse(model.weights, R.STEPS)
    assert result.genotype.recurrent == model.genotype()  # no float32 ties on these logits


# --- the compiled file --------------------------------------------------------------------------------
@pytest.mark.parametrize("seq_len", [2, 5])
def test_unrolled_onnx_equals_the_discrete_recurrent_network_at_two_lengths_and_two_batches(tmp_path, seq_len):
    model = model_with(seed=3)
    x, h = inputs(model, seq_len=seq_len, batch=2)
    result = nascompile.compile(model, (x, h), batch_dim=1)
    report = result.save(tmp_path / "rnn.onnx", validate="cpu", batch_sizes=(1, 3), fixed_length=True)
    assert report.validation.passed
    assert {c.batch_size for c in report.validation.comparisons} == {1, 3}
    gene = exact_parse(model.weights, R.STEPS)
    for batch in (1, 3):
        x, h = inputs(model, seq_len=seq_len, batch=batch, seed=batch)
        expected = discrete_output(model, gene, x, h)
        actual = onnx_outputs(tmp_path / "rnn.onnx", x, h)
        for a, e in zip(actual, expected):
            np.testing.assert_allclose(a, e.numpy(), atol=1e-5, rtol=1e-4)
    declared = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
                for v in onnx.load(str(tmp_path / "rnn.onnx")).graph.input}
    assert declared == {"input": [seq_len, "batch"], "hidden_0": [1, "batch", model.nhid]}


def test_the_discrete_cell_computes_one_predecessor_per_node(tmp_path):
    """Only the kept edges' activations survive: the dropped ones' candidates are gone from the graph."""
    model = model_with(SATURATED)
    x, h = inputs(model, seq_len=1)
    result = nascompile.compile(model, (x, h), batch_dim=1)
    ops = result.graph.count_ops()
    assert "layer_choice" not in ops and "input_choice" not in ops
    # one time step: s0's tanh and sigmoid gate, then per node one gate sigmoid and its activation
    genes = [a for a, _ in SATURATED_GENE]
    assert ops.get("tanh", 0) == 1 + genes.count("tanh")
    assert ops.get("relu", 0) == genes.count("relu")


def test_a_batch_dimension_left_at_0_fails_validation_instead_of_passing(tmp_path):
    """A sequence-first model compiled with the default batch_dim 0: never a silent file. Unrolled, validation
    varies dim 0 (time) and fails; with the Scan, dim 0 is the time the file takes at any length, and the batch
    (dim 1) is declared fixed at the example's."""
    model = model_with(seed=0)
    x, h = inputs(model)
    result = nascompile.compile(model, (x, h))
    with pytest.raises(nascompile.errors.NascompileError):
        result.save(tmp_path / "rnn.onnx", validate="cpu", fixed_length=True)
    assert not (tmp_path / "rnn.onnx").exists()
    assert result.save(tmp_path / "scan.onnx", validate="cpu").validation.passed
    declared = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
                for v in onnx.load(str(tmp_path / "scan.onnx")).graph.input}
    assert declared["input"] == ["time", 2]


# --- pass level: expand of an inline layer choice -------------------------------------------------------
INLINE = """graph {
  %u = input() {index=0}
  %v = input() {index=1}
  %lc = layer_choice(%u, %v) {candidates=["none", "tanh", "relu"], chosen=2, inline=true, label="w[0]", modules=[null, null, null], zero=0} params(logits: f32[3])
  %output = output(%lc)
}
"""


def test_expand_replaces_an_inline_layer_choice_by_its_chosen_input():
    graph = parse_graph(INLINE)
    assert expand(graph, PassContext()).changed
    assert print_graph(graph) == """graph {
  %u = input() {index=0}
  %v = input() {index=1}
  %output = output(%v)
}
"""


def test_expand_of_an_inline_layer_choice_whose_zero_op_is_chosen_gives_zeros():
    graph = parse_graph(INLINE.replace("chosen=2", "chosen=0"))
    expand(graph, PassContext())
    assert print_graph(graph) == """graph {
  %u = input() {index=0}
  %v = input() {index=1}
  %zero = zero(%u)
  %output = output(%zero)
}
"""


def test_an_inline_layer_choice_must_take_one_input_per_non_zero_candidate():
    with pytest.raises(nascompile.errors.IRError, match="inline layer choice takes its 2 non-zero candidates"):
        parse_graph(INLINE.replace("layer_choice(%u, %v)", "layer_choice(%u)"))


# --- refusals ---------------------------------------------------------------------------------------------
def test_a_batched_mixture_without_a_zero_column_is_refused_naming_the_line(monkeypatch):
    """Every column of the weights mixed (no 'none'): a dropped predecessor has no logits that express it."""
    monkeypatch.setattr(R, "PRIMITIVES", ["tanh", "relu", "sigmoid", "identity", "sigmoid"])
    model = model_with(seed=0)
    x, h = inputs(model)
    with pytest.raises(TraceError, match="leaves out no column"):
        nascompile.compile(model, (x, h), batch_dim=1)


def test_an_embedding_with_max_norm_is_refused():
    """max_norm renormalizes the weight in place at every lookup: a file cannot do that."""
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4, max_norm=1.0), torch.nn.Linear(4, 2)).eval()
    with pytest.raises(TraceError, match="max_norm renormalizes its weight in place"):
        nascompile.compile(model, (torch.tensor([[1, 2, 3]]),))


def test_example_inputs_nesting_something_else_than_tensors_is_an_input_error():
    model = model_with(seed=0)
    x, _ = inputs(model)
    with pytest.raises(nascompile.errors.InputShapeError, match=r"\(nested\) lists of tensors"):
        nascompile.compile(model, (x, ["not a tensor"]), batch_dim=1)


def test_the_example_compiles_from_the_command_line_and_prints_the_recurrent_genotype(tmp_path):
    from conftest import EXAMPLES, run_cli

    proc = run_cli("compile", str(EXAMPLES / "darts_rnn.py"), "-o", str(tmp_path / "rnn.onnx"), "--validate")
    assert proc.returncode == 0, proc.stderr
    assert "genotype: Genotype(recurrent=[(" in proc.stdout and "concat=range(1, 9))" in proc.stdout
    assert "darts-rnn" in proc.stdout
    assert "time loop: one ONNX Scan over the time steps (proven at lengths 4 and 5)" in proc.stdout
    assert "output_0 at length 5" in proc.stdout
    export = run_cli("export", str(EXAMPLES / "darts_rnn.py"), "--format", "genotype", "--name", "SEARCHED")
    assert export.returncode == 0, export.stderr
    assert export.stdout.startswith("SEARCHED = Genotype(recurrent=[(")


# --- the time loop as one ONNX Scan ----------------------------------------------------------------------
def ops_in(path):
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def test_the_default_file_scans_any_sequence_length(tmp_path):
    model = model_with(seed=4)
    x, h = inputs(model, seq_len=3)
    result = nascompile.compile(model, (x, h), batch_dim=1)
    report = result.save(tmp_path / "rnn.onnx", validate="cpu")
    assert report.validation.passed
    assert any("at length 4" in c.output for c in report.validation.comparisons)  # proven and validated at 3 and 4
    assert result.loop_note == "one ONNX Scan over the time steps (proven at lengths 3 and 4)"
    assert "Scan" in ops_in(tmp_path / "rnn.onnx")
    declared = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
                for v in onnx.load(str(tmp_path / "rnn.onnx")).graph.input}
    assert declared["input"] == ["time", "batch"]
    gene = exact_parse(model.weights, R.STEPS)
    for seq_len, batch in ((1, 1), (2, 3), (9, 2)):  # lengths it was never compiled at
        x, h = inputs(model, seq_len=seq_len, batch=batch, seed=seq_len)
        for a, e in zip(onnx_outputs(tmp_path / "rnn.onnx", x, h), discrete_output(model, gene, x, h)):
            np.testing.assert_allclose(a, e.numpy(), atol=1e-5, rtol=1e-4)


def test_fixed_length_unrolls_the_loop(tmp_path):
    model = model_with(seed=4)
    x, h = inputs(model, seq_len=3)
    result = nascompile.compile(model, (x, h), batch_dim=1)
    result.save(tmp_path / "rnn.onnx", validate="cpu", fixed_length=True)
    assert "Scan" not in ops_in(tmp_path / "rnn.onnx")
    declared = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
                for v in onnx.load(str(tmp_path / "rnn.onnx")).graph.input}
    assert declared["input"] == [3, "batch"]


class StepDependentCell(R.SearchCell):
    """A cell whose first step differs from the others: the unrolled steps are not one loop body."""

    def cell(self, x, h_prev, x_mask, h_mask):
        out = super().cell(x, h_prev, x_mask, h_mask)
        return out * 2 if self._first else out

    def forward(self, inputs, hidden):
        hidden = hidden[0]
        hiddens = []
        for t in range(inputs.size(0)):
            self._first = t == 0
            hidden = self.cell(inputs[t], hidden, None, None)
            hiddens.append(hidden)
        hiddens = torch.stack(hiddens)
        return hiddens, hiddens[-1].unsqueeze(0)


def step_dependent_model():
    model = model_with(seed=5)
    cell = StepDependentCell(model.ninp, model.nhid)
    cell.load_state_dict(model.rnns[0].state_dict())
    cell.weights = model.weights
    model.rnns[0] = cell
    return model.eval()


def test_a_loop_that_differs_between_steps_is_unrolled_with_the_reason_or_refused(tmp_path):
    model = step_dependent_model()
    x, h = inputs(model, seq_len=3)
    result = nascompile.compile(model, (x, h), batch_dim=1)
    report = result.save(tmp_path / "rnn.onnx", validate="cpu")
    assert report.validation.passed and "Scan" not in ops_in(tmp_path / "rnn.onnx")
    assert result.loop_note.startswith("unrolled at the example's length: the time loop could not be proven")
    with pytest.raises(nascompile.errors.LoweringError, match="cannot emit the time loop as an ONNX Scan"):
        result.save(tmp_path / "scan.onnx", validate="cpu", fixed_length=False)
    assert not (tmp_path / "scan.onnx").exists()


def test_every_pass_keeps_the_recurrent_network_and_O0_scans_too(tmp_path):
    """--verify-each runs the inline choices and new ops in the interpreter; at -O0 (no CSE) every step holds its
    own constants, which the Scan body materializes where they are read."""
    from nascompile.passes import PIPELINE_O0

    model = model_with(seed=6, steps=3)
    x, h = inputs(model)
    assert nascompile.compile(model, (x, h), batch_dim=1, verify_each=True).genotype is not None
    result = nascompile.compile(model, (x, h), batch_dim=1, pipeline=PIPELINE_O0)
    assert result.save(tmp_path / "o0.onnx", validate="cpu").validation.passed
    assert "Scan" in ops_in(tmp_path / "o0.onnx")
