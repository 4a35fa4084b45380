"""Types and shapes of every intermediate value (`graph.value_info`), and doc strings on the graph's inputs
and outputs.

The shapes come from ONNX's own shape inference in strict mode with type checking, run on a skeleton of
the model (initializers given as typed graph inputs, no weight bytes), so it costs no copy of the
weights and works past protobuf's 2 GiB limit. A strict-mode failure is a lowering bug: the emitted
graph contradicts itself.
"""

from __future__ import annotations

import onnx
from onnx import helper

from ..errors import LoweringError


def shape_text(value: onnx.ValueInfoProto) -> str:
    """`float32[batch, 3, 32, 32]`: the element type and dims (symbolic ones by name, unknown ones as ?)."""
    tensor = value.type.tensor_type
    dims = [d.dim_param or (str(d.dim_value) if d.HasField("dim_value") else "?") for d in tensor.shape.dim]
    return f"{helper.tensor_dtype_to_np_dtype(tensor.elem_type).name}[{', '.join(dims)}]"


def infer_value_info(model: onnx.ModelProto) -> None:
    """Fill `model.graph.value_info` with every intermediate's inferred type, and complete the outputs' shapes.

    Raises LoweringError when strict shape inference fails or leaves a node output without a full type.
    """
    skeleton = onnx.ModelProto(ir_version=model.ir_version)
    skeleton.opset_import.extend(model.opset_import)
    graph = skeleton.graph
    graph.node.extend(model.graph.node)
    graph.input.extend(model.graph.input)
    graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in model.graph.initializer)
    graph.output.extend(model.graph.output)
    try:
        inferred = onnx.shape_inference.infer_shapes(skeleton, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as exc:
        raise LoweringError(f"ONNX shape inference (strict mode) rejects the emitted graph: {str(exc).splitlines()[0]}"
                            ". This is a bug in a lowering; please report it.") from None
    known = {v.name: v for v in inferred.graph.value_info}
    outputs = {v.name: v for v in inferred.graph.output}
    produced = [name for node in model.graph.node for name in node.output if name]
    missing = [name for name in produced if name not in known and name not in outputs]
    if missing:
        raise LoweringError(f"ONNX shape inference found no type for {len(missing)} values (first: {missing[0]!r}); "
                            "this is a bug in a lowering; please report it.")
    del model.graph.value_info[:]
    model.graph.value_info.extend(known[name] for name in produced if name in known)
    for output in model.graph.output:
        output.type.CopyFrom(outputs[output.name].type)


def describe_io(model: onnx.ModelProto, input_names: list[str], output_sources: list[str | None]) -> None:
    """Doc strings on the graph's inputs and outputs: which forward argument or result, shape and type."""
    for index, (value, name) in enumerate(zip(model.graph.input, input_names)):
        value.doc_string = f"input {index} of the supernet's forward (argument {name!r}): {shape_text(value)}"
    for index, (value, source) in enumerate(zip(model.graph.output, output_sources)):
        where = f", computed by module {source!r}" if source else ""
        value.doc_string = f"output {index} of the supernet's forward{where}: {shape_text(value)}"
