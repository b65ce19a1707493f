"""Making models: ONNX text syntax, nodes, value infos, graphs (for test and benchmark graphs)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper


def parse_model(text: str) -> onnx.ModelProto:
    """Parse a model written in ONNX text syntax (``onnx.parser.parse_model``)."""
    import onnx.parser

    return onnx.parser.parse_model(text)


def make_node(op_type: str, inputs: Sequence[str], outputs: Sequence[str], *,
              name: str | None = None, domain: str | None = None, **attrs: Any
              ) -> onnx.NodeProto:
    """Return a node; keyword arguments become its attributes (``helper.make_node``)."""
    return helper.make_node(op_type, inputs, outputs, name=name, domain=domain, **attrs)


def make_value_info(name: str, dtype: np.dtype | type, shape: Sequence[int | str] | None
                    ) -> onnx.ValueInfoProto:
    """Return a tensor value info of numpy ``dtype`` (``shape`` None: unknown rank)."""
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    return helper.make_tensor_value_info(name, elem, shape)


def make_graph(nodes: Sequence[onnx.NodeProto], name: str,
               inputs: Sequence[onnx.ValueInfoProto], outputs: Sequence[onnx.ValueInfoProto],
               initializers: Sequence[onnx.TensorProto] = ()) -> onnx.GraphProto:
    """Return a graph of ``nodes`` with the given inputs, outputs and initializers."""
    return helper.make_graph(nodes, name, inputs, outputs, list(initializers))


def make_model(graph: onnx.GraphProto, *, opset: int, ir_version: int, **fields: Any
               ) -> onnx.ModelProto:
    """Return a model of ``graph`` importing the default domain at ``opset``.

    ``fields`` sets other model fields (``producer_name``...).
    """
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                             ir_version=ir_version, **fields)
