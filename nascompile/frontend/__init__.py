"""Lift: a PyTorch supernet -> IR, via torch.fx.

Choice modules stay single nodes (`layer_choice`, `input_choice`); their candidates are lifted only
when chosen (`lift_candidate`, used by the `expand` pass), so compile cost follows the discrete network.
Which modules are choices is for the recognizers to say: one module per supernet family
(`nn_choices`, `darts_reference`, `nni_classic`, `archai_supergraph`), and any a user registers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import InputShapeError, TraceError
from ..ir.graph import Graph
from ..ir.verify import verify_graph
from ..module_tree import active_survey, submodules
from .arch_params import ArchParams, as_arch_params, load_alphas
from .concrete import Tainted
from .convert import Converter, V, flatten_outputs, needs_placeholder
from .delegation import delegated_children
from .mixed_op import MixedOpCall, MixedOpRecognizer
from .modules import _MODULES, convert_module
from .recognizers import ChoiceLifter, Recognizer, default_recognizers, register_recognizer
from .scopes import lift_module
from .tracer import DrawDuringLift, ScopeTracer, bind_call, watch_whole_lift

# The built-in families register on import, here, before any user code can: a user's recognizer is asked first.
from . import archai_supergraph, darts_reference, nn_choices, nni_classic  # noqa: E402  isort: skip

BUILTIN_FAMILIES = (nn_choices, darts_reference, nni_classic, archai_supergraph)

__all__ = ["ArchParams", "ChoiceLifter", "MixedOpCall", "MixedOpRecognizer", "Recognizer", "lift",
           "lift_candidate", "load_alphas", "register_recognizer"]


def lift(model: nn.Module, example_inputs: Sequence[torch.Tensor], recognizers: list[Recognizer] | None = None,
         arch_params: Any = None, allow_no_choices: bool = False, input_structure: Any = None,
         batch_dim: int = 0) -> tuple[Graph, ChoiceLifter]:
    """Trace `model` into an IR graph; returns the graph and the recognizers used (for later passes).

    `arch_params` (a mapping key -> logits, or an `ArchParams`) overrides the model's own logits.
    `allow_no_choices` compiles architecture weights that no pattern consumes as the continuous
    computation they are (by default that is an error: it would silently compile the supernet).
    """
    lifter = ChoiceLifter(recognizers if recognizers is not None else default_recognizers(),
                          as_arch_params(arch_params))
    lifter.patterns.allow_arch_constants = allow_no_choices
    from ..inputs import unflatten_inputs

    lifter.input_structure = input_structure
    graph = Graph()
    graph.graph["root"] = model
    graph.graph["batch_dim"] = batch_dim
    graph.graph["calls"] = []  # module calls, for the cell structure (`scopes.record_call`, `arch.describe`)
    cx = Converter(graph, model, "", lifter)
    cx.example_inputs = tuple(example_inputs)
    if type(model) in _MODULES:  # a bare torch.nn layer: nothing to trace
        args = [cx._graph_input(_Placeholder(f"input_{i}" if i else "input"), i) for i in range(len(example_inputs))]
        graph.add_op("output", [cx.operand(convert_module(cx, model, tuple(args), {})).node], name="output")
        return graph, lifter
    refuse_hooks(model, lifter)
    nested = unflatten_inputs(tuple(example_inputs), input_structure)
    binding = _bind_root(model, nested)
    try:
        with watch_whole_lift():
            outputs = _trace_and_convert(cx, model, binding, input_structure)
    except DrawDuringLift:  # something drew from a generator: lift again watching each trace, to name it
        again = Graph()
        again.graph["root"] = model
        retry = Converter(again, model, "", ChoiceLifter(lifter.recognizers, lifter.arch_params))
        retry.example_inputs = cx.example_inputs
        _trace_and_convert(retry, model, binding, input_structure)
        raise TraceError(f"cannot lift {type(model).__name__}: its forward draws random numbers (torch, Python's "
                         "`random` or numpy) outside the code nascompile traces; a compiled network cannot depend "
                         "on a draw") from None
    graph.add_op("output", [cx.operand(value).node for value in outputs], name="output")
    cx.record_input_meta(tuple(example_inputs))
    graph.graph["specializations"] = [str(s) for s in lifter.specializations]
    lifter.arch_params.check_all_used()
    verify_graph(graph)
    return graph, lifter


def _root_inputs(cx: Converter, binding: Any, structure: list) -> list[Any]:
    """The root forward's placeholders as graph inputs, a list argument as a list of them (`hidden_0`)."""
    from ..inputs import leaf_names

    flat_index = 0
    out = []
    for position, (name, raw) in enumerate(zip(binding.placeholder_names, binding.raw)):
        names = leaf_names(name, structure[position] if position < len(structure) else None)
        values = [cx._graph_input(_Placeholder(n), flat_index + i) for i, n in enumerate(names)]
        flat_index += len(names)
        out.append(_nest(raw, iter(values)))
    return out


def _nest(raw: Any, values: Any) -> Any:
    if isinstance(raw, (list, tuple)):
        return type(raw)(_nest(r, values) for r in raw)
    return next(values)


def _trace_and_convert(cx: Converter, model: nn.Module, binding: Any, input_structure: Any) -> list:
    trace = ScopeTracer(model, "", binding).run()
    cx.choice_lifter.note_specializations(trace.specializations)
    roots = _root_inputs(cx, binding, input_structure) if input_structure is not None else None
    return flatten_outputs(cx.convert(trace.graph, inputs=roots))


class _Placeholder:
    def __init__(self, target: str):
        self.target = target


def _bind_root(model: nn.Module, example_inputs: tuple) -> Any:
    """The root forward bound to the example inputs (tensors: placeholders; the rest: defaults)."""
    import inspect

    try:
        binding = bind_call(model, example_inputs, {}, needs_placeholder)
    except TraceError:
        params = list(inspect.signature(type(model).forward).parameters.values())[1:]
        names = ", ".join(p.name for p in params)
        raise InputShapeError(f"{type(model).__name__}.forward takes {len(params)} inputs ({names}) but "
                              f"{len(example_inputs)} example inputs were given") from None
    tensors = [x for x in example_inputs]
    binding.placeholder_value = lambda i: Tainted(tensors[i])
    return binding


def refuse_hooks(model: nn.Module, lifter: ChoiceLifter) -> None:
    """Forward hooks change what a module computes. fx runs those of the modules it traces through, but
    not those of the module it starts from (the model, a candidate) nor of leaf layers and choices."""
    if _global_hooks():
        raise TraceError("global forward hooks are registered (torch.nn.modules.module.register_module_forward_hook);"
                         " fx does not run them on leaf layers, so remove them before compiling")
    known = active_survey(model)  # taken by the compile's eval_mode: no second walk
    if not (known.hooked if known is not None else any(_has_hooks(m) for m in submodules(model))):
        return  # the common case
    for path, module in model.named_modules():
        if not _has_hooks(module):
            continue
        leaf = lifter.claims(module) or (module.__module__.startswith("torch.nn") and not isinstance(module, nn.Sequential))
        if not path or leaf:
            _refuse_hooked(path or type(model).__name__)


def _has_hooks(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks)


def _refuse_hooked(path: str) -> None:
    raise TraceError(f"module {path!r} has forward hooks, which torch.fx does not run there, so the compiled "
                     "model would differ from the supernet; remove the hooks (handle.remove()) before compiling")


def lift_candidate(graph: Graph, lifter: ChoiceLifter, path: str, inputs: list[str]) -> str:
    """Lift the module at `path` (under the graph's root) into `graph`, reading `inputs`; returns its output."""
    module = graph.submodule(path)
    if _has_hooks(module):  # a candidate is traced from its own forward: its hooks would be skipped
        _refuse_hooked(path)
    args = [V(node) for node in inputs]
    if len(args) == 1 and _forward_is_known(module, lifter):
        return _convert_known(graph, lifter, module, path, args[0]).node
    cx = Converter(graph, module, path, lifter)
    outputs = flatten_outputs(lift_module(cx, lifter, module, path, args))
    if len(outputs) != 1:
        raise TraceError(f"candidate {path!r} returns {len(outputs)} values; a candidate returns one tensor")
    return cx.operand(outputs[0]).node


def _forward_is_known(module: nn.Module, lifter: ChoiceLifter) -> bool:
    """Can `module` be converted without tracing: a plain torch.nn layer, or a chain of such (an
    `nn.Sequential`, or a custom op whose forward only calls its children in turn, `delegation.py`),
    without hooks? (A trace costs milliseconds of fx set-up.)

    fx itself calls plain layers as leaves, without their hooks; a chain inside the traced module is
    traced through, hooks included, so one with hooks (its own or global ones) is traced.
    """
    if lifter.claims(module):
        return False
    if type(module) in _MODULES:
        return True
    if _has_hooks(module) or _global_hooks():
        return False
    chain = _chain(module)
    return chain is not None and all(_forward_is_known(child, lifter) for _, child in chain)


def _chain(module: nn.Module) -> list[tuple[str, nn.Module]] | None:
    """The children `module` calls in turn on its input, if that is all its forward does."""
    if type(module).forward is nn.Sequential.forward:
        return list(module.named_children())
    return delegated_children(module)


def _global_hooks() -> bool:
    from torch.nn.modules import module as module_mod

    return bool(module_mod._global_forward_hooks or module_mod._global_forward_pre_hooks)


def _convert_known(graph: Graph, lifter: ChoiceLifter, module: nn.Module, path: str, x: V) -> V:
    """Convert a module `_forward_is_known` accepts, naming nodes by module path as a trace would."""
    if type(module) in _MODULES:
        cx = Converter(graph, module, path, lifter)
        return cx.operand(convert_module(cx, module, (x,), {}))
    for name, child in _chain(module):
        x = _convert_known(graph, lifter, child, f"{path}.{name}" if path else name, x)
    return x
