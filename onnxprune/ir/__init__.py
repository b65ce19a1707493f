"""The protobuf boundary: loading, shapes, graph conversion and atomic saving of ONNX models.

Everything above this package speaks in onnx-graphsurgeon graph/node/tensor terms or in plain
numpy. One module per job:

- ``load``: reading files (external data, opset checks), sizes;
- ``specs``: graph input/output specs and the input shapes a user gives;
- ``shapes``: shape inference, folded shape constants, weightless copies;
- ``graph``: conversion to and from onnx-graphsurgeon graphs;
- ``save``: atomic writing (external data above 2 GB, signals held off while writing);
- ``limits``: size and opset limits (tests monkeypatch them there);
- ``edit``: setting node inputs' constants by node name (replaying recorded recovery).
"""

from __future__ import annotations

from onnxprune.ir import limits
from onnxprune.ir.edit import node_inputs, set_node_inputs
from onnxprune.ir.graph import from_graph, to_graph
from onnxprune.ir.limits import (
    EXTERNAL_DATA_BYTES,
    LIGHT_BYTES,
    MAX_OPSET,
    MIN_OPSET,
    STRIPPED,
)
from onnxprune.ir.load import load_model, model_bytes, opset_version
from onnxprune.ir.save import save_external, save_model
from onnxprune.ir.shapes import adopt_shapes, infer_shapes, light_copy, static_shapes
from onnxprune.ir.specs import (
    TensorSpec,
    io_specs,
    parse_input_shapes,
    resolve_input_shapes,
    with_input_shapes,
)

__all__ = [
    "EXTERNAL_DATA_BYTES",
    "LIGHT_BYTES",
    "MAX_OPSET",
    "MIN_OPSET",
    "STRIPPED",
    "TensorSpec",
    "adopt_shapes",
    "from_graph",
    "infer_shapes",
    "io_specs",
    "light_copy",
    "limits",
    "load_model",
    "model_bytes",
    "node_inputs",
    "opset_version",
    "parse_input_shapes",
    "resolve_input_shapes",
    "save_external",
    "save_model",
    "set_node_inputs",
    "static_shapes",
    "to_graph",
    "with_input_shapes",
]
