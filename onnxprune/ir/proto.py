"""Protobuf values as Python values: tensors <-> numpy, node attributes, element types.

The protobuf message classes are named here (``ModelProto``, ``NodeProto``...) so that code
outside ``ir`` can annotate with them and test ``isinstance`` without importing ``onnx``; their
members (enums, constructors, helpers) are used only inside ``ir``, through the functions below.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

ModelProto = onnx.ModelProto
"""An ONNX model (protobuf message); for annotations and ``isinstance``."""
GraphProto = onnx.GraphProto
NodeProto = onnx.NodeProto
TensorProto = onnx.TensorProto
ValueInfoProto = onnx.ValueInfoProto
AttributeProto = onnx.AttributeProto

_SUBGRAPH = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)


def to_array(tensor: onnx.TensorProto) -> np.ndarray:
    """Return a tensor's value as a numpy array (``numpy_helper.to_array``)."""
    return numpy_helper.to_array(tensor)


def from_array(value: np.ndarray, name: str | None = None) -> onnx.TensorProto:
    """Return a tensor holding ``value`` (``numpy_helper.from_array``), named ``name``."""
    return numpy_helper.from_array(value, name)


def np_dtype(data_type: int) -> np.dtype:
    """Return the numpy dtype of an ONNX element type (``TensorProto.FLOAT`` -> float32)."""
    return np.dtype(helper.tensor_dtype_to_np_dtype(data_type))


def data_type(name: str) -> int:
    """Return the ONNX element type called ``name`` (``"FLOAT"``, ``"INT32"``, ``"BFLOAT16"``).

    Raises:
        ValueError: no element type has that name.

    """
    return int(onnx.TensorProto.DataType.Value(name))


def attribute_value(attr: onnx.AttributeProto) -> Any:
    """Return an attribute's value as ``helper.get_attribute_value`` gives it.

    Strings stay ``bytes``; tensors and graphs stay protobuf messages.
    """
    return helper.get_attribute_value(attr)


def attributes(node: onnx.NodeProto) -> dict[str, Any]:
    """Return a node's attributes, name -> :func:`attribute_value`."""
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def holds_graph(attr: onnx.AttributeProto) -> bool:
    """Tell whether an attribute holds a subgraph (the bodies of If, Loop and Scan)."""
    return attr.type in _SUBGRAPH


def plain_value(attr: onnx.AttributeProto) -> Any:
    """Return an attribute's value as plain Python: tensors as numpy arrays, strings as ``str``.

    Raises:
        ValueError: the attribute holds a subgraph (see :func:`holds_graph`).

    """
    kind = attr.type
    if kind in _SUBGRAPH:
        raise ValueError(f"attribute '{attr.name}' holds a subgraph")
    if kind == onnx.AttributeProto.TENSOR:
        return numpy_helper.to_array(attr.t)
    if kind == onnx.AttributeProto.TENSORS:
        return [numpy_helper.to_array(t) for t in attr.tensors]
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, list):
        return [v.decode("utf-8") if isinstance(v, bytes) else v for v in value]
    return value


def make_attribute(name: str, value: Any) -> onnx.AttributeProto:
    """Return an attribute ``name`` holding ``value`` (``helper.make_attribute``)."""
    return helper.make_attribute(name, value)


def inline_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return ``model`` with its local functions inlined (``onnx.inliner``)."""
    import onnx.inliner

    return onnx.inliner.inline_local_functions(model)

