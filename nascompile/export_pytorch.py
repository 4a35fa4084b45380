"""The discrete IR as a standalone PyTorch module: a readable `.py` file and its weights as safetensors.

`nascompile export SPEC --format pytorch -o derived/` writes `derived/model.py` (imports torch only; one
`nn.Conv2d`/`nn.BatchNorm2d`/`nn.Linear` attribute per layer, named after the supernet's module path
with dots as underscores; everything else is a line of functional code in `forward`) and
`derived/model.safetensors` (the supernet's weights, or with `fresh_weights` the layers' own default
initialization, for retraining from scratch). The layers are real modules so that `train()` makes
batch norms use batch statistics again; for retraining, export from a pipeline that keeps them
(`-O0`, the default of this format) rather than one that folds them into convolutions.
"""

from __future__ import annotations

import keyword
import os
import re
import types
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import ExportError
from .files import staged_outputs
from .ir.graph import Graph

MODULE_FILE = "model.py"
WEIGHTS_FILE = "model.safetensors"
_BN = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}
_OPERATORS = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
_UNARY = {"relu": "F.relu({})", "sigmoid": "torch.sigmoid({})", "tanh": "torch.tanh({})",
          "hardswish": "F.hardswish({})", "hardsigmoid": "F.hardsigmoid({})", "silu": "F.silu({})",
          "zero": "torch.zeros_like({})", "identity": "{}"}


def _size_expression(graph: Graph, value: str, node: str) -> str:
    return value if graph.op(node) == "size" else f"int({value})"


def _identifier(text: str) -> str:
    name = re.sub(r"\W", "_", text).strip("_") or "v"
    if name[0].isdigit() or keyword.iskeyword(name) or hasattr(nn.Module, name) or name in ("torch", "nn", "F", "self"):
        name = "m_" + name
    return name


class _Writer:
    """Collects the `__init__` lines (layers), the `forward` lines and the tensors to load."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.init: list[str] = []
        self.body: list[str] = []
        self.values: dict[str, str] = {}  # IR node -> Python expression of its value
        self.taken: set[str] = set()  # attribute names
        self.variables: set[str] = set()  # names of forward's locals
        self.tensors: dict[str, tuple[str, dict[str, torch.Tensor]]] = {}  # attribute -> (kind, IR params)

    @staticmethod
    def unique_in(taken: set[str], base: str) -> str:
        name, i = _identifier(base), 1
        while name in taken:
            i += 1
            name = f"{_identifier(base)}_{i}"
        taken.add(name)
        return name

    def unique(self, base: str) -> str:
        return self.unique_in(self.taken, base)

    def where(self, node: str) -> str:
        return self.graph.meta(node).get("source") or node

    def fail(self, node: str, message: str) -> ExportError:
        return ExportError(f"cannot export {self.graph.op(node)} at module {self.where(node)!r} (node %{node}) to "
                           f"PyTorch: {message}")

    def arg(self, node: str, port: int) -> str:
        return self.values[self.graph.inputs(node)[port]]

    def args(self, node: str) -> list[str]:
        return [self.values[src] for src in self.graph.inputs(node)]

    def layer(self, node: str, kind: str, constructor: str) -> str:
        params = self.graph.params(node)
        for key, tensor in params.items():
            if tensor.dtype != torch.float32:
                raise self.fail(node, f"its {key} is {tensor.dtype}; only float32 weights are exported")
        name = self.unique(self.where(node))
        self.init.append(f"self.{name} = {constructor}")
        self.tensors[name] = (kind, params)
        return f"self.{name}"

    def assign(self, node: str, expression: str) -> None:
        var = self.unique_in(self.variables, node)
        self.body.append(f"{var} = {expression}")
        self.values[node] = var


def _shape_rank(w: _Writer, node: str) -> int:
    shape = w.graph.meta(w.graph.inputs(node)[0]).get("shape")
    if shape is None:
        raise w.fail(node, "its input has no recorded shape; run infer-shapes before exporting")
    return len(shape)


def _lower(w: _Writer, node: str) -> str:
    """The Python expression computing `node` (adding a layer to `__init__` when it has weights)."""
    g = w.graph
    op, attrs, params = g.op(node), g.attrs(node), g.params(node)
    x = w.arg(node, 0) if g.inputs(node) else None
    if op == "conv2d":
        weight = params["weight"]
        groups = attrs["groups"]
        conv = w.layer(node, "conv", f"nn.Conv2d({weight.shape[1] * groups}, {weight.shape[0]}, "
                       f"kernel_size={tuple(weight.shape[2:])}, stride={tuple(attrs['stride'])}, "
                       f"padding={tuple(attrs['padding'])}, dilation={tuple(attrs['dilation'])}, groups={groups}, "
                       f"bias={'bias' in params})")
        return f"{conv}({x})"
    if op == "batch_norm":
        if ("weight" in params) != ("bias" in params):
            raise w.fail(node, "it has a scale without a shift (or the reverse), which no nn.BatchNorm holds")
        rank = _shape_rank(w, node)
        if rank not in _BN:
            raise w.fail(node, f"a batch norm over a rank-{rank} input has no nn.BatchNorm")
        bn = w.layer(node, "bn", f"nn.{_BN[rank]}({len(params['running_mean'])}, eps={attrs['eps']!r}, "
                     f"affine={'weight' in params})")
        return f"{bn}({x})"
    if op == "linear":
        weight = params["weight"]
        linear = w.layer(node, "linear", f"nn.Linear({weight.shape[1]}, {weight.shape[0]}, bias={'bias' in params})")
        return f"{linear}({x})"
    if op in _UNARY:
        return _UNARY[op].format(x)
    if op in _OPERATORS:
        a, b = w.args(node)
        return f"{a} {_OPERATORS[op]} {b}"
    if op in ("sum", "mean"):
        terms = w.args(node)
        total = " + ".join(terms)
        return total if op == "sum" or len(terms) == 1 else f"({total}) / {len(terms)}"
    if op == "clip":
        return f"torch.clamp({x}, {attrs['min']!r}, {attrs['max']!r})"
    if op == "leaky_relu":
        return f"F.leaky_relu({x}, {attrs['negative_slope']!r})"
    if op == "max_pool2d":
        return (f"F.max_pool2d({x}, {attrs['kernel_size']}, {attrs['stride']}, {attrs['padding']}, "
                f"{attrs['dilation']}, ceil_mode={attrs['ceil_mode']})")
    if op == "avg_pool2d":
        return (f"F.avg_pool2d({x}, {attrs['kernel_size']}, {attrs['stride']}, {attrs['padding']}, "
                f"ceil_mode={attrs['ceil_mode']}, count_include_pad={attrs['count_include_pad']}, "
                f"divisor_override={attrs['divisor_override']!r})")
    if op == "adaptive_avg_pool2d":
        return f"F.adaptive_avg_pool2d({x}, {attrs['output_size']!r})"
    if op == "reduce_mean":
        return f"{x}.mean({list(attrs['dims'])}, keepdim={attrs['keepdim']})"
    if op == "cat":
        return f"torch.cat([{', '.join(w.args(node))}], {attrs['dim']})"
    if op == "slice":
        rank = _shape_rank(w, node)
        index = [":"] * rank
        for dim, start, end, step in zip(attrs["dims"], attrs["starts"], attrs["ends"], attrs["steps"]):
            index[dim % rank] = f"{start}:{'' if end is None else end}" + ("" if step == 1 else f":{step}")
        while len(index) > 1 and index[-1] == ":":
            index.pop()
        return f"{x}[{', '.join(index)}]"
    if op == "flatten":
        return f"torch.flatten({x}, {attrs['start_dim']}, {attrs['end_dim']})"
    if op == "reshape":
        # a dimension read off a tensor (`x.size(0)`) stays as it is, so that a tracer (torch.onnx.export) keeps it
        # symbolic; any other computed size is made a Python int
        sizes = iter(zip(w.args(node)[1:], w.graph.inputs(node)[1:]))
        dims = [str(d) if d is not None else _size_expression(w.graph, *next(sizes)) for d in attrs["shape"]]
        return f"{x}.reshape({', '.join(dims)})"
    if op == "transpose":
        return f"{x}.permute({', '.join(map(str, attrs['perm']))})"
    if op == "size":
        return f"{x}.size({attrs['dim']})"
    if op == "pad":
        return f"F.pad({x}, {list(attrs['pads'])}, value={attrs['value']!r})"
    if op == "pack":
        return f"[{', '.join(w.args(node))}]"
    if op == "getitem":
        return f"{x}[{attrs['index']}]"
    if op == "constant":
        if "value" in params:
            name = w.unique(w.where(node) + ".value")
            tensor = params["value"]
            w.init.append(f"self.register_buffer({name!r}, torch.zeros({list(tensor.shape)}, dtype={tensor.dtype}))")
            w.tensors[name] = ("constant", {"value": tensor})
            return f"self.{name}"
        return repr(attrs["value"])
    hint = "; run darts-choice and expand first" if op in ("layer_choice", "input_choice") else ""
    raise w.fail(node, f"no PyTorch form for op {op!r}{hint}")


def pytorch_source(graph: Graph, class_name: str, header: str) -> tuple[str, dict[str, tuple[str, dict]]]:
    """(the module's Python source, attribute -> (kind, IR params) of every layer and constant)."""
    w = _Writer(graph)
    inputs = []
    for node in graph.graph_inputs():
        inputs.append(w.unique_in(w.variables, node))
        w.values[node] = inputs[-1]
    output = graph.output_node()
    for node in graph.order():
        if graph.op(node) in ("input", "output"):
            continue
        expression = _lower(w, node)
        if graph.op(node) == "identity" or (graph.op(node) == "constant" and "value" not in graph.params(node)):
            w.values[node] = expression  # no line of its own
        else:
            w.assign(node, expression)
    results = [w.values[src] for src in graph.inputs(output)]
    returned = results[0] if len(results) == 1 else "(" + ", ".join(results) + ("," if len(results) == 1 else "") + ")"
    signature = ", ".join(f"{name}: torch.Tensor" for name in inputs)
    docstring = header.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')  # a path may hold either
    lines = [f'"""{docstring}"""', "", "from __future__ import annotations", "", "from pathlib import Path", "",
             "import torch", "import torch.nn.functional as F", "from torch import nn", "",
             'WEIGHTS = Path(__file__).with_name("' + WEIGHTS_FILE + '")', "", "",
             f"class {class_name}(nn.Module):",
             "    def __init__(self) -> None:", "        super().__init__()"]
    lines += [f"        {line}" for line in w.init]
    lines += ["", f"    def forward(self, {signature}):"]
    lines += [f"        {line}" for line in w.body]
    lines += [f"        return {returned}", "", "",
              f"def load(path: str | Path = WEIGHTS, device: str = \"cpu\") -> {class_name}:",
              '    """The network with the weights stored in `path` (safetensors), in eval mode."""',
              "    from safetensors.torch import load_file", "",
              f"    net = {class_name}()",
              "    net.load_state_dict(load_file(str(path), device=device))",
              "    return net.eval()", ""]
    return "\n".join(lines), w.tensors


def instantiate(source: str, class_name: str) -> nn.Module:
    """An instance of the generated class, built from `source` without writing it anywhere."""
    module = types.ModuleType("nascompile_derived")
    module.__dict__["__file__"] = MODULE_FILE
    exec(compile(source, MODULE_FILE, "exec"), module.__dict__)
    return getattr(module, class_name)()


@torch.no_grad()
def state_dict_for(net: nn.Module, tensors: dict[str, tuple[str, dict]], fresh: bool) -> dict[str, torch.Tensor]:
    """The state dict to store: the IR's tensors copied in, or (fresh) the layers' own initialization.

    Constants are not weights: they are copied in either way.
    """
    for name, (kind, params) in tensors.items():
        if kind == "constant":
            getattr(net, name).copy_(params["value"])
        elif not fresh:
            layer = getattr(net, name)
            for key, tensor in params.items():
                getattr(layer, key).copy_(tensor)
    return {key: value.detach().contiguous().clone() for key, value in net.state_dict().items()}


def write_pytorch(graph: Graph, directory: str | os.PathLike, *, class_name: str, header: str,
                  fresh_weights: bool = False, seed: int = 0) -> list[Path]:
    """Write `model.py` and `model.safetensors` into `directory` (made if missing); nothing half-written."""
    try:
        from safetensors.torch import save
    except ImportError:
        raise ExportError("--format pytorch writes safetensors: pip install 'nascompile[deploy]' "
                          "(or pip install safetensors)") from None
    source, tensors = pytorch_source(graph, class_name, header)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = instantiate(source, class_name)
    state = state_dict_for(net, tensors, fresh_weights)
    directory = Path(directory)
    made = not directory.exists() and directory.parent.is_dir()
    if made:
        directory.mkdir()
    finals = [directory / MODULE_FILE, directory / WEIGHTS_FILE]
    try:
        with staged_outputs(*finals) as (py_file, weights_file):
            py_file.write_text(source)
            weights_file.write_bytes(save(state, metadata={"format": "pt"}))
    except BaseException:
        if made:
            directory.rmdir()
        raise
    return finals


def class_name_for(model: nn.Module) -> str:
    return _identifier(type(model).__name__ + "Derived")


def derived_header(result: Any, spec: str | None, pipeline: str, fresh: bool) -> str:
    """The module docstring of the generated file: what it is, where it came from, how to use it."""
    from .version import __version__

    weights = "a fresh initialization (retrain from scratch)" if fresh else "the supernet's weights"
    origin = f" from {spec}" if spec else ""
    return (f"{class_name_for(result.model)}: the discrete network nascompile {__version__} derived{origin}.\n\n"
            f"Architecture sha256 {result.sha256}; pipeline {pipeline}.\n"
            f"{WEIGHTS_FILE} beside this file holds {weights}. Needs only torch (and safetensors to load the\n"
            "weights). Layer attributes are the supernet's module paths with dots as underscores.\n\n"
            f"    from model import load\n    net = load()                  # the stored weights, eval mode\n"
            f"    net = {class_name_for(result.model)}()  # default initialization, for training\n")

