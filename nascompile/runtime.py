"""onnxruntime sessions, the parity check against the PyTorch reference, and latency.

`device="cuda"` asks for the CUDA execution provider and fails unless the *created session* really uses
it: `get_available_providers()` lists CUDA wherever onnxruntime-gpu is installed, even on machines
without a GPU.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import DeviceError, ValidationError

PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


def make_session(model: str | os.PathLike | bytes, device: str = "cpu", threads: int | None = None):
    """An onnxruntime session on `device` ("cpu" or "cuda"), checked to really run there."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise DeviceError("onnxruntime is not installed; install nascompile with the `cpu` extra "
                          "(pip install 'nascompile[cpu]') for CPU validation, or `gpu` for CUDA") from None
    if device not in PROVIDERS:
        raise DeviceError(f"unknown device {device!r}; use cpu or cuda")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    source = model if isinstance(model, bytes) else str(model)
    try:
        session = ort.InferenceSession(source, sess_options=options, providers=PROVIDERS[device])
    except Exception as exc:  # onnxruntime raises its own exception types
        # A provider that cannot start falls back (checked below); what raises here is the model itself: an
        # operator or type this onnxruntime has no kernel for, an opset it does not know, a broken file.
        raise ValidationError(f"onnxruntime {ort.__version__} cannot load the model on {device}: "
                              f"{_first_line(exc)}; the file passed the ONNX checker, so this onnxruntime lacks "
                              "what it needs (try another --opset, a float32 model, or a newer onnxruntime)") from None
    if device == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
        hint = "install onnxruntime-gpu (pip install 'nascompile[gpu]') with a matching CUDA, or use --device cpu"
        if len(onnxruntime_packages()) > 1:
            hint = (f"{' and '.join(onnxruntime_packages())} are both installed and share one module, so the CPU "
                    "build may hide CUDA: pip uninstall onnxruntime, then reinstall onnxruntime-gpu")
        raise DeviceError(f"CUDA was requested but the onnxruntime session runs on "
                          f"{', '.join(session.get_providers())}; {hint}")
    return session


def onnxruntime_packages() -> list[str]:
    """The installed distributions that provide the `onnxruntime` module (one is right, two clash)."""
    from importlib import metadata

    names = {dist.metadata["Name"].lower() for dist in metadata.distributions()
             if (dist.metadata["Name"] or "").lower().startswith("onnxruntime")}
    return sorted(names & {"onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino"})


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def torch_device(device: str) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceError("CUDA was requested but torch.cuda.is_available() is False; use --device cpu")
    return torch.device(device)


@dataclass
class OutputComparison:
    batch_size: int
    output: str
    max_abs: float
    max_rel: float
    passed: bool


@dataclass
class ValidationReport:
    """Per batch size and output: the largest absolute and relative errors, against tolerances."""

    device: str
    providers: list[str]
    atol: float
    rtol: float
    comparisons: list[OutputComparison] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.comparisons)

    @property
    def max_abs(self) -> float:
        return max((c.max_abs for c in self.comparisons), default=0.0)

    @property
    def max_rel(self) -> float:
        return max((c.max_rel for c in self.comparisons), default=0.0)

    def summary(self) -> str:
        lines = [f"validation on {self.device} ({', '.join(self.providers)}), atol={self.atol:g} rtol={self.rtol:g}:"]
        for c in self.comparisons:
            verdict = "ok" if c.passed else "FAILED"
            lines.append(f"  batch {c.batch_size:>3}  {c.output:<10} max abs {c.max_abs:.3g}  max rel {c.max_rel:.3g}  {verdict}")
        return "\n".join(lines)


def compare(actual: np.ndarray, expected: np.ndarray, atol: float, rtol: float) -> tuple[float, float, bool]:
    """(max abs error, max rel error, within |a - e| <= atol + rtol * |e| everywhere)."""
    if actual.shape != expected.shape:
        return float("inf"), float("inf"), False
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    if a.size == 0:
        return 0.0, 0.0, True
    same = (a == e) | (np.isnan(a) & np.isnan(e))  # equal infinities, NaN in the same places: no error
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(a - e))  # NaN against a number stays NaN: never within tolerance
    rel = diff / np.maximum(np.abs(np.nan_to_num(e)), np.finfo(np.float32).tiny)
    ok = bool(np.all(same | (np.isfinite(a) & np.isfinite(e) & (diff <= atol + rtol * np.abs(e)))))
    return _largest(diff), _largest(rel), ok


def _largest(errors: np.ndarray) -> float:
    """The largest error; NaN when any is NaN (a NaN against a number)."""
    return float("nan") if np.isnan(errors).any() else float(errors.max())


def random_inputs(example_inputs: Sequence[torch.Tensor], batch_size: int, seed: int,
                  batch_dim: int = 0) -> list[torch.Tensor]:
    """Seeded inputs shaped like the examples, with the batch dimension replaced. Integer inputs (token
    ids) are drawn uniformly from the range of the example's values, so an index stays in range; booleans
    repeat the example."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for example in example_inputs:
        shape = list(example.shape)
        if len(shape) > batch_dim:
            shape[batch_dim] = batch_size
        if example.is_floating_point():
            out.append(torch.randn(shape, generator=generator, dtype=example.dtype))
        elif example.dtype != torch.bool and example.numel():
            low, high = int(example.min()), int(example.max())
            out.append(torch.randint(low, high + 1, shape, generator=generator, dtype=example.dtype))
        else:
            out.append(example.expand(shape).clone() if example.dim() else example.clone())
    return out


def validate_session(
    session,
    reference: Callable[[list[torch.Tensor]], list[torch.Tensor]],
    example_inputs: Sequence[torch.Tensor],
    device: str = "cpu",
    batch_sizes: Sequence[int] = (1, 2),
    atol: float = 1e-4,
    rtol: float = 1e-3,
    seed: int = 0,
    batch_dim: int = 0,
) -> ValidationReport:
    """Run `session` and `reference` on the same seeded inputs per batch size and compare every output.

    The two never share an input buffer, so a reference that mutates its inputs is compared fairly.
    """
    report = ValidationReport(device=device, providers=list(session.get_providers()), atol=atol, rtol=rtol)
    input_names = [i.name for i in session.get_inputs()]
    output_names = [o.name for o in session.get_outputs()]
    for index, batch_size in enumerate(batch_sizes):
        inputs = random_inputs(example_inputs, batch_size, seed + index, batch_dim)
        # Each side gets its own copy: a forward that writes into its input (x.mul_(2), ReLU(inplace=True))
        # must not change what onnxruntime is fed, nor can onnxruntime change what the reference reads.
        feed = {name: x.numpy().copy() for name, x in zip(input_names, inputs)}
        expected = reference([x.clone() for x in inputs])
        try:
            actual = session.run(None, feed)
        except Exception as exc:  # onnxruntime's own exception types
            shapes = ", ".join(f"{name} {list(x.shape)}" for name, x in feed.items())
            raise ValidationError(f"onnxruntime failed to run the model at batch size {batch_size} ({shapes}): "
                                  f"{_first_line(exc)}") from None
        if len(expected) != len(actual):
            raise ValidationError(f"the ONNX model has {len(actual)} outputs, the reference {len(expected)}")
        for name, a, e in zip(output_names, actual, expected):
            max_abs, max_rel, ok = compare(np.asarray(a), e.detach().cpu().numpy(), atol, rtol)
            report.comparisons.append(OutputComparison(batch_size, name, max_abs, max_rel, ok))
    return report


def measure_latency(session, inputs: Sequence[np.ndarray], runs: int = 50, warmup: int = 10) -> float:
    """Median wall time of one `session.run`, in milliseconds."""
    feed = {i.name: x for i, x in zip(session.get_inputs(), inputs)}
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)
