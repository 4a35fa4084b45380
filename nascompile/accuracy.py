"""How far a reduced-precision model (fp16, int8) is from the fp32 reference, and the gates on it.

Unlike `--validate` (every element within atol + rtol·|expected|, for the exact fp32 file), a lossy
model is judged by statistics over many inputs: max and mean absolute error, cosine similarity of each
sample's output to the reference's (mean and worst), and top-1 agreement (the arg-max over the last
dim of a (batch, classes) output). The gates (`min_top1_agreement`, `max_abs`, `min_cosine`) refuse
the file when missed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from .errors import AccuracyError


@dataclass
class OutputAccuracy:
    output: str
    max_abs: float
    mean_abs: float
    cosine: float  # mean over samples
    cosine_min: float  # the worst sample
    top1_agreement: float | None  # None unless the output is (batch, classes) with classes > 1
    top1_matches: int | None


@dataclass
class AccuracyReport:
    precision: str
    samples: int
    device: str
    outputs: list[OutputAccuracy] = field(default_factory=list)
    gates: dict[str, float] = field(default_factory=dict)

    @property
    def max_abs(self) -> float:
        return max(o.max_abs for o in self.outputs)

    @property
    def cosine_min(self) -> float:
        return min(o.cosine_min for o in self.outputs)

    @property
    def top1_agreement(self) -> float | None:
        values = [o.top1_agreement for o in self.outputs if o.top1_agreement is not None]
        return min(values) if values else None

    def missed(self) -> dict[str, str]:
        """Gate name -> why it was missed, for every missed gate."""
        missed = {}
        gates = self.gates
        if "max_abs" in gates and not self.max_abs <= gates["max_abs"]:
            missed["max_abs"] = f"max abs error {self.max_abs:.3g} > --max-abs {gates['max_abs']:g}"
        if "min_cosine" in gates and not self.cosine_min >= gates["min_cosine"]:
            missed["min_cosine"] = f"worst cosine similarity {self.cosine_min:.6f} < --min-cosine {gates['min_cosine']:g}"
        if "min_top1_agreement" in gates:
            top1 = self.top1_agreement
            if top1 is None:
                missed["min_top1_agreement"] = ("--min-top1-agreement needs an output shaped (batch, classes); this "
                                                "model has none")
            elif not top1 >= gates["min_top1_agreement"]:
                missed["min_top1_agreement"] = (f"top-1 agreement {top1:.4f} < --min-top1-agreement "
                                                f"{gates['min_top1_agreement']:g}")
        return missed

    def summary(self) -> str:
        lines = [f"accuracy of {self.precision} against the fp32 reference ({self.samples} seeded inputs, {self.device}):",
                 f"  {'output':<10} {'max abs':>9} {'mean abs':>9} {'cosine mean':>12} {'cosine min':>11}  top-1 agreement"]
        for o in self.outputs:
            top1 = "-" if o.top1_agreement is None else f"{100 * o.top1_agreement:.1f}% ({o.top1_matches}/{self.samples})"
            lines.append(f"  {o.output:<10} {o.max_abs:>9.3g} {o.mean_abs:>9.3g} {o.cosine:>12.6f} {o.cosine_min:>11.6f}  {top1}")
        missed = self.missed()
        for name, value in self.gates.items():
            flag = "--" + name.replace("_", "-")
            lines.append(f"  gate {flag} {value:g}: {'MISSED' if name in missed else 'met'}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "samples": self.samples, "device": self.device,
                "outputs": [asdict(o) for o in self.outputs], "gates": dict(self.gates)}


def compare_outputs(name: str, actual: np.ndarray, expected: np.ndarray) -> OutputAccuracy:
    """Statistics of `actual` against `expected`, both shaped (samples, ...)."""
    a = actual.astype(np.float64).reshape(len(actual), -1)
    e = expected.astype(np.float64).reshape(len(expected), -1)
    diff = np.abs(a - e)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(e, axis=1)
    dots = (a * e).sum(axis=1)
    # two zero vectors agree exactly; a zero against a non-zero vector is as far apart as it gets
    cosine = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), np.where(np.all(a == e, axis=1), 1.0, 0.0))
    top1 = matches = None
    if expected.ndim == 2 and expected.shape[1] > 1:
        matches = int((actual.argmax(axis=1) == expected.argmax(axis=1)).sum())
        top1 = matches / len(expected)
    return OutputAccuracy(name, float(diff.max(initial=0.0)), float(diff.mean()) if diff.size else 0.0,
                          float(cosine.mean()), float(cosine.min()), top1, matches)


def measure_accuracy(session, reference: Callable[[list[torch.Tensor]], list[torch.Tensor]],
                     batches: Sequence[list[torch.Tensor]], precision: str, device: str,
                     gates: dict[str, float] | None = None) -> AccuracyReport:
    """Run `session` and the fp32 `reference` on every batch of inputs and compare their outputs."""
    input_names = [i.name for i in session.get_inputs()]
    output_names = [o.name for o in session.get_outputs()]
    actual: list[list[np.ndarray]] = [[] for _ in output_names]
    expected: list[list[np.ndarray]] = [[] for _ in output_names]
    samples = 0
    for inputs in batches:
        samples += len(inputs[0])
        ref = reference(inputs)
        got = session.run(None, {name: x.numpy() for name, x in zip(input_names, inputs)})
        for i, (g, r) in enumerate(zip(got, ref)):
            actual[i].append(np.asarray(g))
            expected[i].append(r.detach().cpu().numpy())
    report = AccuracyReport(precision, samples, device, gates={k: v for k, v in (gates or {}).items() if v is not None})
    for name, a, e in zip(output_names, actual, expected):
        report.outputs.append(compare_outputs(name, np.concatenate(a), np.concatenate(e)))
    return report


def enforce(report: AccuracyReport, path: str) -> None:
    """AccuracyError naming every missed gate; nothing is written then."""
    missed = list(report.missed().values())
    if missed:
        raise AccuracyError(f"{path!r} was not written: the {report.precision} model misses its accuracy gates: "
                            + "; ".join(missed) + f".\n{report.summary()}\nCalibrate int8 on real inputs "
                            "(--calibration DATA), choose a higher precision, or relax the gate.")
