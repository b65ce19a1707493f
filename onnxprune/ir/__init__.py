"""The protobuf boundary: loading, shapes, graph conversion and atomic saving of ONNX models.

Everything above this package speaks in onnx-graphsurgeon graph/node/tensor terms or in plain
numpy; only this package imports ``onnx`` (or protobuf), which ``tests/test_layering.py``
enforces. One module per job:

- ``load``: reading files (external data, opset checks), sizes;
- ``specs``: graph input/output specs and the input shapes a user gives;
- ``shapes``: shape inference, folded shape constants, weightless copies;
- ``graph``: conversion to and from onnx-graphsurgeon graphs;
- ``save``: atomic writing (external data above 2 GB, signals held off while writing);
- ``limits``: size and opset limits (tests monkeypatch them there);
- ``edit``: setting node inputs' constants by node name (replaying recorded recovery);
- ``proto``: the message type names, tensors <-> numpy, node attributes, element types;
- ``build``: making models (ONNX text syntax, nodes, value infos, graphs);
- ``checker``: the ONNX checker, also on large models without their weights; the reference
  evaluator.
"""

from __future__ import annotations

from onnxprune.ir import limits
from onnxprune.ir.build import make_graph, make_model, make_node, make_value_info, parse_model
from onnxprune.ir.checker import CheckerError, check_light, check_model, run_reference
from onnxprune.ir.edit import node_inputs, set_node_inputs
from onnxprune.ir.graph import from_graph, peek_constant, to_graph
from onnxprune.ir.limits import (
    EXTERNAL_DATA_BYTES,
    HEAVY_BYTES,
    LIGHT_BYTES,
    MAX_OPSET,
    MIN_OPSET,
    STRIPPED,
)
from onnxprune.ir.load import file_metadata, heavy, load_model, model_bytes, opset_version
from onnxprune.ir.proto import (
    AttributeProto,
    GraphProto,
    ModelProto,
    NodeProto,
    TensorProto,
    ValueInfoProto,
    attribute_value,
    attributes,
    data_type,
    from_array,
    holds_graph,
    inline_functions,
    make_attribute,
    np_dtype,
    plain_value,
    to_array,
)
from onnxprune.ir.save import check_destination, save_external, save_model
from onnxprune.ir.shapes import (
    adopt_shapes,
    infer_shapes,
    infer_shapes_plain,
    inferred_shapes,
    light_copy,
    static_shapes,
)
from onnxprune.ir.specs import (
    TensorSpec,
    fixed_batch,
    io_specs,
    parse_input_shapes,
    resolve_input_shapes,
    with_input_shapes,
)

__all__ = [
    "AttributeProto",
    "CheckerError",
    "EXTERNAL_DATA_BYTES",
    "GraphProto",
    "HEAVY_BYTES",
    "LIGHT_BYTES",
    "MAX_OPSET",
    "MIN_OPSET",
    "ModelProto",
    "NodeProto",
    "STRIPPED",
    "TensorProto",
    "TensorSpec",
    "ValueInfoProto",
    "adopt_shapes",
    "attribute_value",
    "attributes",
    "check_destination",
    "check_light",
    "check_model",
    "data_type",
    "file_metadata",
    "fixed_batch",
    "from_array",
    "from_graph",
    "heavy",
    "holds_graph",
    "infer_shapes",
    "infer_shapes_plain",
    "inferred_shapes",
    "inline_functions",
    "io_specs",
    "light_copy",
    "limits",
    "load_model",
    "make_attribute",
    "make_graph",
    "make_model",
    "make_node",
    "make_value_info",
    "model_bytes",
    "node_inputs",
    "np_dtype",
    "opset_version",
    "parse_input_shapes",
    "parse_model",
    "peek_constant",
    "plain_value",
    "resolve_input_shapes",
    "run_reference",
    "save_external",
    "save_model",
    "set_node_inputs",
    "static_shapes",
    "to_array",
    "to_graph",
    "with_input_shapes",
]
