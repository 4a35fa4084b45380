"""`backend/loops.py` on IR text: the unrolled steps of a recurrence found, proven alike, emitted as one Scan."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from nascompile.backend import to_onnx
from nascompile.backend.loops import find_time_loop
from nascompile.ir import parse_graph


def unrolled(activations=("tanh", "tanh", "tanh"), extra_reader: bool = False) -> str:
    lines = ["graph {", "  %x = input() {index=0} : f32[3,2,4]", "  %h = input() {index=1} : f32[2,4]"]
    prev = "h"
    for t, act in enumerate(activations):
        lines += [f"  %x{t} = select(%x) {{dim=0, index={t}}} : f32[2,4]",
                  f"  %a{t} = sum(%x{t}, %{prev}) : f32[2,4]",
                  f"  %h{t} = {act}(%a{t}) : f32[2,4]"]
        prev = f"h{t}"
    for t in range(len(activations)):
        lines.append(f"  %u{t} = unsqueeze(%h{t}) {{dim=0}} : f32[1,2,4]")
    stack = ", ".join(f"%u{t}" for t in range(len(activations)))
    lines.append(f"  %s = cat({stack}) {{dim=0}} : f32[3,2,4]")
    lines.append("  %last = select(%s) {dim=0, index=-1} : f32[2,4]")
    outputs = "%s, %last, %a1" if extra_reader else "%s, %last"
    lines += [f"  %output = output({outputs})", "}", ""]
    return "\n".join(lines)


def test_three_alike_steps_are_one_loop():
    graph = parse_graph(unrolled())
    loop, why = find_time_loop(graph)
    assert why == ""
    assert (loop.length, loop.init, loop.sequence, loop.body, loop.body_state) == (3, "h", "x", ["x1", "a1", "h1"], "h0")
    assert loop.members == {f"{k}{t}" for k in "xah" for t in range(3)}


def test_the_scan_computes_the_recurrence_at_any_length():
    graph = parse_graph(unrolled())
    loop, _ = find_time_loop(graph)
    model = to_onnx(graph, loop=loop, batch_dim=1)
    assert [n.op_type for n in model.graph.node].count("Scan") == 1
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for length in (1, 3, 6):
        x, h = rng.standard_normal((length, 2, 4), dtype=np.float32), rng.standard_normal((2, 4), dtype=np.float32)
        states, state = [], h
        for t in range(length):
            state = np.tanh(x[t] + state)
            states.append(state)
        stacked, last = session.run(None, {"x": x, "h": h})
        np.testing.assert_allclose(stacked, np.stack(states), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(last, states[-1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("text, reason", [
    (unrolled(("tanh", "tanh", "relu")), "step 2 differs from step 1"),
    (unrolled(extra_reader=True), "outside the loop reads %a1"),
])
def test_steps_that_are_not_one_loop_body_are_not_rolled(text, reason):
    loop, why = find_time_loop(parse_graph(text))
    assert loop is None and reason in why
