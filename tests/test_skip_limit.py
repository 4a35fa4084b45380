"""P-DARTS's skip-connect limit (`p-darts` rules, `passes/skip_limit.py`) on IR text.

Hand-computed case: one normal cell, node n2 (edges 0, 1 from states 0, 1) and node n3 (edges 2, 3, 4
from states 0, 1, 2); candidates none, skip_connect, conv (P-DARTS's last stage: 3 ops per edge, `none`
first), logits = ln of these exps, so p = exps / 10:

    edge  exps        op    p[op]   without skip_connect
    0     [1, 6, 3]   skip  .6      conv .3
    1     [1, 8, 1]   skip  .8      conv .1
    2     [2, 2, 6]   conv  .6
    3     [2, 5, 3]   skip  .5      conv .3
    4     [5, 1, 4]   conv  .4

DARTS keeps 0, 1 (n2) and 2, 3 (n3): three skips. P-DARTS (at most 2): the weakest kept skip is edge 3
(.5); it becomes conv (.3), so n3 now keeps edges 2 and 4: two skips, done. At most 1: edge 0 (.6) loses
it too; at most 0: edge 1 (.8) as well.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import mpmath
import pytest

from nascompile.arch import describe
from nascompile.errors import ChoiceError
from nascompile.genotype import darts_genotype
from nascompile.ir import parse_graph
from nascompile.passes import PassContext
from nascompile.passes.darts_choice import darts_choice
from nascompile.passes.finalize import finalize
from nascompile.rules import resolve_rules

NAMES = ["none", "skip_connect", "conv"]
HAND = [[1, 6, 3], [1, 8, 1], [2, 2, 6], [2, 5, 3], [5, 1, 4]]


def cell_text(logits: list[list[float]], names: list[list[str]] | None = None, kind: str = "normal",
              steps: int | None = None) -> str:
    """A DARTS cell of inputs %x0, %x1: node k sums one layer choice per earlier state; its output the cat."""
    steps = steps or {5: 2, 14: 4}[len(logits)]
    names = names or [NAMES] * len(logits)
    lines = ["graph {", "  %x0 = input() {index=0}", "  %x1 = input() {index=1}"]
    states, e = ["x0", "x1"], 0
    for k in range(steps):
        args = []
        for state in list(states):
            ops = names[e]
            modules = ", ".join("null" if n == "none" else f'"m{e}.{n}"' for n in ops)
            zero = f", zero={ops.index('none')}" if "none" in ops else ""
            cands = ", ".join(f'"{n}"' for n in ops)
            values = ", ".join(repr(float(v)) for v in logits[e])
            lines.append(f'  %e{e} = layer_choice(%{state}) {{candidates=[{cands}], label="alphas_{kind}[{e}]", '
                         f'modules=[{modules}]{zero}}} params(logits: f64[{len(ops)}] = [{values}]) loc("cell.e{e}")')
            args.append(f"%e{e}")
            e += 1
        lines.append(f'  %n{k + 2} = sum({", ".join(args)}) loc("cell.n{k + 2}")')
        states.append(f"n{k + 2}")
    lines += [f'  %c = cat({", ".join("%" + s for s in states[2:])}) {{dim=1}} loc("cell")', "  %output = output(%c)",
              "}", ""]
    return "\n".join(lines)


def decide(text: str, rules: str = "p-darts", limit: int | None = None):
    graph = parse_graph(text)
    chosen = resolve_rules(graph, rules).with_skip_limit(limit)
    ctx = PassContext(rules=chosen.rules, max_skip_connects=limit)
    ctx.decisions.rules = chosen
    space = describe(graph)
    ctx.search_space = space
    darts_choice(graph, ctx)
    finalize(graph, ctx)
    return ctx.decisions, darts_genotype_of(ctx.decisions, describe(graph, space))


def darts_genotype_of(decisions, architecture):
    """The cell's gene (the genotype needs two cell kinds: give the one cell as both)."""
    architecture.cells = architecture.cells * 2
    architecture.cells[1] = type(architecture.cells[0])(**{**vars(architecture.cells[0]), "reduces": True})
    architecture.cells[0].reduces = False
    genotype = darts_genotype(decisions, architecture)
    return None if genotype is None else genotype.normal


HAND_LOGITS = [[math.log(v) for v in exps] for exps in HAND]


@pytest.mark.parametrize("rules, limit, gene, removed", [
    ("darts", None, [("skip_connect", 1), ("skip_connect", 0), ("conv", 0), ("skip_connect", 1)], []),
    ("p-darts", None, [("skip_connect", 0), ("skip_connect", 1), ("conv", 0), ("conv", 2)], ["alphas_normal[3]"]),
    ("p-darts", 1, [("conv", 0), ("skip_connect", 1), ("conv", 0), ("conv", 2)],
     ["alphas_normal[3]", "alphas_normal[0]"]),
    ("p-darts", 0, [("conv", 0), ("conv", 1), ("conv", 0), ("conv", 2)],
     ["alphas_normal[3]", "alphas_normal[0]", "alphas_normal[1]"]),
    ("p-darts", 3, [("skip_connect", 0), ("skip_connect", 1), ("conv", 0), ("skip_connect", 1)], []),
])
def test_the_limit_takes_skip_connect_from_the_weakest_kept_skip_edge(rules, limit, gene, removed):
    decisions, genotype = decide(cell_text(HAND_LOGITS), rules, limit)
    assert genotype == gene  # darts: strongest first; p-darts: input order (parse_network)
    records = decisions.skip_limit
    if rules == "darts":
        assert records == []
        return
    assert [r.removed for r in records] == [removed] and records[0].before == 3
    assert records[0].after == min(3, 2 if limit is None else limit)
    for label in removed:
        d = decisions.layer[label]
        assert d.chosen_name == "conv" and d.excluded == ["skip_connect"]
    if removed:
        assert decisions.layer["alphas_normal[3]"].strength == pytest.approx(0.3)  # not renormalized
    assert "at most" in records[0].line() and not decisions.ties()


def test_reduction_cells_keep_their_skips():
    decisions, genotype = decide(cell_text(HAND_LOGITS, kind="reduce"))
    assert decisions.skip_limit == [] and [op for op, _ in genotype].count("skip_connect") == 3


def test_taking_the_only_real_op_of_an_edge_is_refused():
    names, logits = [NAMES] * 5, [row[:] for row in HAND_LOGITS]
    names[3], logits[3] = ["none", "skip_connect"], [math.log(5), math.log(5)]  # p[skip] = .5: the weakest
    with pytest.raises(ChoiceError, match=r"takes skip_connect from layer choice 'alphas_normal\[3\]' in cell 'cell', "
                                          "which has no other candidate but the zero op"):
        decide(cell_text(logits, names))


def test_a_label_shared_with_a_cell_that_keeps_its_skip_is_refused():
    # a second normal cell after the first, sharing only edge 3's label: there edge 1 (p[skip] = .45) is the
    # weakest, so edge 3 keeps its skip in one cell and loses it in the other
    second = [row[:] for row in HAND_LOGITS]
    second[1] = [math.log(2), math.log(4.5), math.log(3.5)]
    lines = [line.replace("%", "%r_").replace("%r_x0", "%c").replace("%r_x1", "%c").replace('"cell', '"rcell')
             for line in cell_text(second).splitlines()[3:-2]]
    lines = [line.replace(f"alphas_normal[{e}]", f"alphas_normal[1{e}]") for line in lines for e in [0, 1, 2, 4]
             if f"alphas_normal[{e}]" in line] + [line for line in lines if "alphas_normal" not in line
                                                  or "alphas_normal[3]" in line]
    text = cell_text(HAND_LOGITS).replace("  %output = output(%c)", "\n".join(lines) + "\n  %output = output(%c, %r_c)")
    with pytest.raises(ChoiceError, match=r"takes skip_connect from layer choice 'alphas_normal\[3\]' in cell "
                                          r"'cell', but cell 'rcell' shares that label and keeps it"):
        decide(text)


def test_cells_that_labels_do_not_tell_apart_are_refused_without_example_inputs():
    text = cell_text(HAND_LOGITS).replace("alphas_normal", "alphas")
    with pytest.raises(ChoiceError, match="cannot tell whether cell 'cell' is a normal or a reduction cell"):
        decide(text)


def test_max_skip_connects_belongs_to_p_darts():
    with pytest.raises(ChoiceError, match="--max-skip-connects is P-DARTS's skip-connect limit; the darts rule set"):
        decide(cell_text(HAND_LOGITS), "darts", 1)


def test_no_candidate_named_skip_connect_is_warned_about():
    names = [["none", "identity", "conv"]] * 5
    decisions, _ = decide(cell_text(HAND_LOGITS, names))
    assert any("no layer choice has a candidate named 'skip_connect'" in w for w in decisions.warnings)


def test_float32_ties_for_the_weakest_skip_are_reported():
    # edges 0 and 3 carry skip with p within 1e-12 of each other: equal in float32, not in float64
    logits = [row[:] for row in HAND_LOGITS]
    logits[0] = [math.log(2), math.log(5) + 1e-12, math.log(3)]
    logits[1] = [math.log(1), math.log(8), math.log(1)]
    decisions, _ = decide(cell_text(logits))
    assert decisions.skip_limit[0].removed == ["alphas_normal[3]"]
    assert any("P-DARTS train_search.py compares float32 p[skip_connect], where edges ['alphas_normal[0]', "
               "'alphas_normal[3]'] tie for the weakest; it would likely take it from 'alphas_normal[0]'" in line
               for line in decisions.framework_ties())


# --- property: random logits equal P-DARTS's procedure, re-written here in 60-digit arithmetic ---------
class NearTie(Exception):
    pass


def _check_gap(best, second):
    """NearTie when two compared probabilities are closer in log space than float64 tells apart (relatively:
    log p near 0 for p near 1 keeps its digits in nascompile's log1p form)."""
    if second is None or best == 0 or second == 0:
        return
    a, b = mpmath.log(best), mpmath.log(second)
    if abs(a - b) <= 1e-9 * (abs(a) + abs(b)):
        raise NearTie


def pdarts_reference(logits: list[list[float]], names: list[list[str]], limit: int | None, steps: int = 4):
    """P-DARTS's final derivation of one normal cell (train_search.py, after the last stage), re-written:
    p = softmax of each edge's logits; none's p zeroed; op = argmax p; 2 edges per node by p[op]; then
    while more than `limit` kept edges are skip_connect, zero the p of the weakest one's skip and derive
    again. Returns [(op, input)] in input order; NearTie when a comparison is closer than float64 tells."""
    mpmath.mp.dps = 60
    probs = []
    for x, ops in zip(logits, names):
        exps = [mpmath.exp(mpmath.mpf(v)) for v in x]
        p = [v / mpmath.fsum(exps) for v in exps]
        if "none" in ops:
            p[ops.index("none")] = mpmath.mpf(0)
        probs.append(p)

    def derive():
        ops = []
        for p in probs:
            order = sorted(range(len(p)), key=lambda i: -p[i])
            _check_gap(p[order[0]], p[order[1]] if len(order) > 1 else None)
            ops.append(order[0])
        kept, start = [], 0
        for k in range(steps):
            edges = sorted(range(start, start + 2 + k), key=lambda e: -probs[e][ops[e]])
            _check_gap(probs[edges[1]][ops[edges[1]]], probs[edges[2]][ops[edges[2]]] if len(edges) > 2 else None)
            kept += edges[:2]
            start += 2 + k
        return ops, sorted(kept)

    ops, kept = derive()
    while limit is not None:
        skips = [e for e in kept if names[e][ops[e]] == "skip_connect"]
        if len(skips) <= limit:
            break
        order = sorted(skips, key=lambda e: probs[e][ops[e]])
        if len(order) > 1:
            _check_gap(probs[order[1]][ops[order[1]]], probs[order[0]][ops[order[0]]])
        probs[order[0]][ops[order[0]]] = mpmath.mpf(0)
        ops, kept = derive()
    sources = [j for k in range(steps) for j in range(2 + k)]
    return [(names[e][ops[e]], sources[e]) for e in kept]


def test_random_logits_equal_pdarts_procedure():
    rng = random.Random(12)
    pool = ["max_pool_3x3", "avg_pool_3x3", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3"]
    checked = changed = 0
    for trial in range(60):
        scale = rng.choice([1e-3, 1.0, 3.0, 30.0, 300.0])
        names, logits = [], []
        for e in range(14):
            ops = (["none"] if rng.random() < 0.5 else []) + ["skip_connect"] * (rng.random() < 0.7)
            ops += rng.sample(pool, 3 - len(ops))
            ops = sorted(ops, key=lambda n: (n != "none", n != "skip_connect", n))
            names.append(ops)
            logits.append([scale * rng.gauss(0, 1) + (scale if n == "skip_connect" else 0) for n in ops])
        limit = rng.choice([0, 1, 2, 2, 3])
        try:
            want = pdarts_reference(logits, names, limit)
            unlimited = pdarts_reference(logits, names, None)
        except NearTie:
            continue
        _, gene = decide(cell_text(logits, names), limit=limit)
        assert gene == want, (trial, limit)
        checked += 1
        changed += gene != unlimited
    assert checked >= 40 and changed >= 15


# --- end to end: a P-DARTS last-stage search network, compiled with no flags -----------------------------
def last_stage_switches(rng: random.Random, skip: float) -> list[list[bool]]:
    """3 of the 5 primitives per edge (P-DARTS's last stage keeps 3), skip_connect among them with odds `skip`."""
    from wild_supernets import PRIMITIVES

    rows = []
    for _ in range(14):
        others = [p for p in PRIMITIVES if p != "skip_connect"]
        on = set(rng.sample(others, 2)) | ({"skip_connect"} if rng.random() < skip else set(rng.sample(others, 1)))
        while len(on) < 3:
            on.add(rng.choice(others))
        rows.append([p in on for p in PRIMITIVES])
    return rows


def pdarts_network(seed: int = 4, skip_bias: float = 1.5):
    """(model, normal switches, reduce switches): a last-stage P-DARTS network with N(0, 1) alphas, skip_connect's
    raised by `skip_bias` in normal cells (DARTS-family searches favour it), so that the limit bites."""
    import torch

    from wild_supernets import PRIMITIVES, PDartsNetwork, randomize_bn

    rng = random.Random(seed)
    normal, reduce = last_stage_switches(rng, 0.8), last_stage_switches(rng, 0.5)
    torch.manual_seed(seed)
    model = randomize_bn(PDartsNetwork(normal, reduce))
    with torch.no_grad():
        model.alphas_normal.normal_()
        model.alphas_reduce.normal_()
        for e, row in enumerate(normal):
            ops = [p for p, on in zip(PRIMITIVES, row) if on]
            if "skip_connect" in ops:
                model.alphas_normal[e, ops.index("skip_connect")] += skip_bias
    return model, normal, reduce


def test_a_pdarts_search_network_decides_as_pdarts_with_no_flags(tmp_path):
    import torch

    import nascompile
    from wild_supernets import PRIMITIVES

    model, normal, reduce = pdarts_network()
    result = nascompile.compile(model, torch.randn(1, 3, 16, 16))
    assert (result.choices.rules.rules.name, result.choices.rules.source) == ("p-darts", "family 'p-darts'")
    names = {kind: [[p for p, on in zip(PRIMITIVES, row) if on] for row in rows]
             for kind, rows in (("normal", normal), ("reduce", reduce))}
    want_normal = pdarts_reference(model.alphas_normal.tolist(), names["normal"], 2)
    assert result.genotype.normal == want_normal
    assert result.genotype.reduce == pdarts_reference(model.alphas_reduce.tolist(), names["reduce"], None)
    assert want_normal != pdarts_reference(model.alphas_normal.tolist(), names["normal"], None)  # the limit bit
    assert [op for op, _ in want_normal].count("skip_connect") == 2
    assert len(result.choices.skip_limit) == 1 and len(result.choices.skip_limit[0].cells) == 2  # both normal cells
    report = result.save(tmp_path / "pdarts.onnx", validate="cpu", batch_sizes=(1,))
    assert report.validation.passed


def test_cli_max_skip_connects(tmp_path):
    from conftest import run_cli

    spec = tmp_path / "pdarts_spec.py"
    spec.write_text(f"""import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import torch
from test_skip_limit import pdarts_network

def build():
    return pdarts_network()[0]

def example_inputs():
    return (torch.randn(1, 3, 16, 16),)
""")
    proc = run_cli("export", str(spec), "--format", "genotype", "--max-skip-connects", "0", "-q")
    assert proc.returncode == 0, proc.stderr
    normal = proc.stdout.split("normal=")[1].split("normal_concat")[0]
    assert "skip_connect" not in normal and "('" in normal
    proc = run_cli("export", str(spec), "--format", "genotype", "--rules", "darts", "--max-skip-connects", "1", "-q")
    assert proc.returncode != 0 and "--max-skip-connects is P-DARTS's skip-connect limit" in proc.stderr
    proc = run_cli("export", str(spec), "--max-skip-connects", "-1")
    assert proc.returncode == 2 and "must be at least 0" in proc.stderr
