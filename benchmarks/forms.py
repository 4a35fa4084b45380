"""Exact alternative ONNX forms of DARTS subgraphs, timed as onnxruntime CPU runs them (issue #16).

    python benchmarks/forms.py [--rounds 10] [--batch 1 32] [--cases NAME ...]

Each case builds small ONNX graphs that compute the same values in different ways (checked against the
first form) and times them with `latency.compare` (ORT_ENABLE_ALL, 1 intra-op thread, paired rotated
blocks; ratio = form time / first form time, median [quartiles]). They decide which rewrites a pass
should make for onnxruntime's NCHWc layout:

- `coverage`: which ops onnxruntime's NCHWc transformer leaves in plain NCHW (each then costs a
  ReorderOutput before it and a ReorderInput after it);
- `dilconv-pair`: two dil_conv_3x3 edges on one relu(state), apart or as one depthwise conv with a channel
  multiplier (horizontal fusion), its halves read by zero-padded 1x1 weights or by a Split;
- `preproc-pair`: the two 1x1 preprocessing convs that read each part of a cell output (after
  `split-cat-convs`), apart or stacked along output channels, one partial-sum chain, then a Split;
- `cell-output`: a cell output of 4 parts read by two 1x1 convs: `split-cat-convs`' per-part convs,
  or a Concat then a Relu, or a Concat of the parts' ReLUs;
- `overhead`: a chain of 1x1 convs on an 8 x 1 x 1 tensor: onnxruntime's cost per kernel, with no work.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency import compare, session  # noqa: E402


class Builder:
    """A small ONNX graph: `conv`, `op`, then `model` (input x: N x C x H x W, seeded weights)."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, np.ndarray] = {}

    def weight(self, *shape: int) -> np.ndarray:
        return (self.rng.standard_normal(shape) * 0.2).astype(np.float32)

    def op(self, op_type: str, inputs: list[str], out: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [out] if isinstance(out, str) else out, **attrs))
        return out

    def conv(self, x: str, w: np.ndarray, out: str, **attrs) -> str:
        name = f"w_{out}"
        self.inits[name] = w
        k = list(w.shape[2:])
        attrs.setdefault("pads", [(k[0] - 1) // 2 * attrs.get("dilations", [1])[0]] * 4)
        return self.op("Conv", [x, name], out, kernel_shape=k, **attrs)

    def model(self, channels: int, size: int, out: str) -> bytes:
        graph = helper.make_graph(
            self.nodes, "form", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", channels, size, size])],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
            [numpy_helper.from_array(v, k) for k, v in self.inits.items()])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        return model.SerializeToString()


def dilconv_pair(c: int, h: int, form: str) -> bytes:
    b = Builder()
    dwa, dwb, pwa, pwb = b.weight(c, 1, 3, 3), b.weight(c, 1, 3, 3), b.weight(c, c, 1, 1), b.weight(c, c, 1, 1)
    state = b.op("Relu", [b.conv("x", b.weight(c, c, 1, 1), "s")], "rs")
    dil = {"dilations": [2, 2]}
    if form == "apart":
        ea = b.conv(b.conv(state, dwa, "da", group=c, **dil), pwa, "ea")
        eb = b.conv(b.conv(state, dwb, "db", group=c, **dil), pwb, "eb")
    else:  # one depthwise conv, 2 outputs per channel: output 2i + j is candidate j's channel i
        d = b.conv(state, np.stack([dwa, dwb], 1).reshape(2 * c, 1, 3, 3), "d", group=c, **dil)
        if form == "multiplier":
            wa, wb = np.zeros((c, 2 * c, 1, 1), np.float32), np.zeros((c, 2 * c, 1, 1), np.float32)
            wa[:, 0::2], wb[:, 1::2] = pwa, pwb
            ea, eb = b.conv(d, wa, "ea"), b.conv(d, wb, "eb")
        else:
            w = np.zeros((2 * c, 2 * c, 1, 1), np.float32)
            w[:c, 0::2], w[c:, 1::2] = pwa, pwb
            b.inits["halves"] = np.array([c, c], np.int64)
            ea, eb = b.op("Split", [b.conv(d, w, "e"), "halves"], ["ea", "eb"], axis=1)
    ya, yb = b.conv(ea, b.weight(c, c, 1, 1), "ya"), b.conv(eb, b.weight(c, c, 1, 1), "yb")
    return b.model(c, h, b.op("Add", [ya, yb], "y"))


def _parts(b: Builder, c: int, parts: int) -> list[str]:
    return [b.op("Relu", [b.conv("x", b.weight(c, c, 1, 1), f"n{i}")], f"r{i}") for i in range(parts)]


def _partial_sums(b: Builder, parts: list[str], weights: list[np.ndarray], tag: str) -> str:
    total = None
    for i, (part, w) in enumerate(zip(parts, weights)):
        term = b.conv(part, w, f"{tag}{i}")
        total = term if total is None else b.op("Add", [total, term], f"{tag}s{i}")
    return total


def _readers(b: Builder, c: int, pa: str, pb: str) -> str:
    ya, yb = b.conv(pa, b.weight(c, 1, 3, 3), "ya", group=c), b.conv(pb, b.weight(c, 1, 3, 3), "yb", group=c)
    return b.op("Add", [ya, yb], "y")


def preproc_pair(c: int, h: int, form: str, parts: int = 4) -> bytes:
    b = Builder()
    relus = _parts(b, c, parts)
    wa, wb = [b.weight(c, c, 1, 1) for _ in relus], [b.weight(c, c, 1, 1) for _ in relus]
    if form == "apart":
        pa, pb = _partial_sums(b, relus, wa, "a"), _partial_sums(b, relus, wb, "b")
    else:
        wide = _partial_sums(b, relus, [np.concatenate(pair) for pair in zip(wa, wb)], "w")
        b.inits["halves"] = np.array([c, c], np.int64)
        pa, pb = b.op("Split", [wide, "halves"], ["pa", "pb"], axis=1)
    return b.model(c, h, _readers(b, c, pa, pb))


def cell_output(c: int, h: int, form: str, parts: int = 4) -> bytes:
    b = Builder()
    nodes = [b.conv("x", b.weight(c, c, 1, 1), f"n{i}") for i in range(parts)]
    relus = [b.op("Relu", [n], f"r{i}") for i, n in enumerate(nodes)]
    wa, wb = b.weight(c, parts * c, 1, 1), b.weight(c, parts * c, 1, 1)
    if form == "split":
        split = lambda w: [np.ascontiguousarray(w[:, i * c:(i + 1) * c]) for i in range(parts)]  # noqa: E731
        pa, pb = _partial_sums(b, relus, split(wa), "a"), _partial_sums(b, relus, split(wb), "b")
    else:
        cat = (b.op("Relu", [b.op("Concat", nodes, "cat", axis=1)], "rc") if form == "concat-relu"
               else b.op("Concat", relus, "rc", axis=1))
        pa, pb = b.conv(cat, wa, "pa"), b.conv(cat, wb, "pb")
    # the parts' ReLUs are read by other edges of the cell too, as in DARTS
    return b.model(c, h, b.op("Sum", [_readers(b, c, pa, pb)] + [b.conv(r, b.weight(c, 1, 3, 3), f"e{i}", group=c)
                                                                   for i, r in enumerate(relus[:-1])], "out"))


def factorized_reduce(c: int, h: int, form: str) -> bytes:
    """FactorizedReduce on relu(x): cat(conv_1(x), conv_2(x[:, :, 1:, 1:])), both 1x1 stride 2."""
    b = Builder()
    x = b.op("Relu", [b.conv("x", b.weight(c, c, 1, 1), "s")], "rs")
    w1, w2 = b.weight(c // 2, c, 1, 1), b.weight(c // 2, c, 1, 1)
    even = b.conv(x, w1, "even", strides=[2, 2])
    if form == "slice+conv":  # the exporters' form
        b.inits |= {"starts": np.array([1, 1], np.int64), "ends": np.array([2**62, 2**62], np.int64),
                    "axes": np.array([2, 3], np.int64)}
        odd = b.conv(b.op("Slice", [x, "starts", "ends", "axes"], "crop"), w2, "odd", strides=[2, 2])
    elif form == "2x2 zero taps":  # slice-as-conv
        w = np.zeros((c // 2, c, 2, 2), np.float32)
        w[:, :, 1, 1] = w2[:, :, 0, 0]
        odd = b.conv(x, w, "odd", strides=[2, 2], pads=[0] * 4)
    else:  # a depthwise 2x2 stride-2 conv selecting tap (1, 1), then the 1x1 conv at stride 1
        select = np.zeros((c, 1, 2, 2), np.float32)
        select[:, :, 1, 1] = 1
        odd = b.conv(b.conv(x, select, "pick", group=c, strides=[2, 2], pads=[0] * 4), w2, "odd")
    out = b.op("Concat", [even, odd], "fr", axis=1)
    return b.model(c, h, b.conv(out, b.weight(c, 1, 3, 3), "y", group=c))


def overhead(c: int, h: int, form: str, length: int = 12) -> bytes:
    b = Builder()
    x = "x"
    for i in range(length if form == "12 convs" else 1):
        x = b.conv(x, b.weight(8, 8, 1, 1), f"c{i}")
    return b.model(8, 1, x)


def coverage() -> list[str]:
    """Per probe, the op types onnxruntime's optimizer leaves (nchwc: in the blocked layout)."""
    lines = []
    probes = {
        "depthwise conv, channel multiplier 2": lambda b: b.conv("s", b.weight(32, 1, 3, 3), "y", group=16),
        "Split along channels": lambda b: b.op("Split", ["s", "halves"], ["y", "y2"], axis=1),
        "Slice along channels": lambda b: b.op("Slice", ["s", "starts", "ends", "axes"], "y"),
    }
    for name, make in probes.items():
        b = Builder()
        b.inits |= {"halves": np.array([8, 8], np.int64), "starts": np.array([0], np.int64),
                    "ends": np.array([8], np.int64), "axes": np.array([1], np.int64)}
        b.conv("x", b.weight(16, 16, 1, 1), "s")
        make(b)
        out = b.nodes[-1].output[0]
        b.conv(out, b.weight(8, b.inits[b.nodes[-1].input[1]].shape[0] if name.startswith("depthwise") else 8, 1, 1), "z")
        path = Path(f"/tmp/nascompile-forms-{abs(hash(name))}.onnx")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(path)
        options.log_severity_level = 3
        ort.InferenceSession(b.model(16, 8, "z"), options, providers=["CPUExecutionProvider"])
        ops = [("nchwc:" if n.domain.endswith("nchwc") else "") + n.op_type for n in onnx.load(str(path)).graph.node]
        path.unlink()
        lines.append(f"  {name:<40} -> {' '.join(ops)}")
    return lines


CASES = {
    "dilconv-pair": (dilconv_pair, ("apart", "multiplier", "multiplier+split")),
    "preproc-pair": (preproc_pair, ("apart", "stacked+split")),
    "cell-output": (cell_output, ("split", "concat-relu", "concat-of-relus")),
    "factorized-reduce": (factorized_reduce, ("slice+conv", "2x2 zero taps", "select+1x1")),
    "overhead": (overhead, ("1 conv", "12 convs")),
}
SIZES = ((16, 32), (64, 8))  # C x H x W of DARTS's first and last cells (C=16, 8 cells)
SIZES_OF = {"factorized-reduce": ((16, 32), (32, 16), (64, 16))}


def check_equal(models: dict[str, bytes], c: int, h: int) -> None:
    x = np.random.default_rng(1).standard_normal((2, c, h, h), dtype=np.float32)
    outputs = {name: session(m, 1).run(None, {"x": x})[0] for name, m in models.items()}
    first = next(iter(outputs.values()))
    for name, y in outputs.items():
        if not np.allclose(y, first, rtol=1e-4, atol=1e-4 * float(np.abs(first).max())):
            raise AssertionError(f"form {name!r} does not compute what the first form does")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--cases", nargs="+", choices=["coverage", *CASES], default=["coverage", *CASES])
    args = parser.parse_args(argv)
    if "coverage" in args.cases:
        print("onnxruntime's optimized graph around each op (conv 1x1 -> op -> conv 1x1):")
        print("\n".join(coverage()))
    for case in args.cases:
        if case == "coverage":
            continue
        build, forms = CASES[case]
        for c, h in SIZES_OF.get(case, SIZES if case != "overhead" else SIZES[:1]):
            models = {form: build(c, h, form) for form in forms}
            if case != "overhead":
                check_equal(models, c, h)
            for batch in args.batch if case != "overhead" else [1]:
                result = compare(models, batch, 1, args.rounds)
                where = "8 x 1 x 1" if case == "overhead" else f"C={c} {h}x{h}"
                print(f"{case}, {where}, batch {batch}, 1 thread, {args.rounds} paired rounds:")
                for form in forms:
                    low, high = result.ratio_iqr[form]
                    print(f"  {form:<20} {result.median_ms[form]:9.3f} ms  ratio {result.ratio[form]:.3f} "
                          f"[{low:.3f} .. {high:.3f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
