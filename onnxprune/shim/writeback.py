"""Write tensor values back into an ONNX model's initializers and Constant nodes."""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import torch

from onnxprune import ir
from onnxprune.numerics import flush_subnormals

__all__ = ["write_back"]

_SCALAR_ATTRS = {"value_float": False, "value_floats": True}


def write_back(model: ir.ModelProto, values: Mapping[str, torch.Tensor]) -> ir.ModelProto:
    """Return a copy of ``model`` with the named tensors replaced by ``values``.

    Each tensor keeps its name and element type; its shape follows the new value.

    Args:
        model: the model to copy.
        values: tensor name -> new value (initializers or ``Constant`` node outputs).

    Returns:
        The updated copy.

    """
    out = copy.deepcopy(model)
    for init in out.graph.initializer:
        if init.name in values:
            init.CopyFrom(_tensor(init, values[init.name]))
    for node in out.graph.node:
        if (
            node.op_type == "Constant"
            and node.domain in ("", "ai.onnx")
            and node.output[0] in values
        ):
            _set_constant(node, values[node.output[0]])
    return out


def _tensor(old: ir.TensorProto, value: torch.Tensor) -> ir.TensorProto:
    dtype = ir.np_dtype(old.data_type)
    arr = flush_subnormals(value.detach().to("cpu", torch.float64).numpy().astype(dtype))
    return ir.from_array(arr, old.name)


def _set_constant(node: ir.NodeProto, value: torch.Tensor) -> None:
    for attr in node.attribute:
        if attr.name == "value":
            attr.t.CopyFrom(_tensor(attr.t, value))
            return
        if attr.name in _SCALAR_ATTRS:
            vec = value.detach().to("cpu", torch.float64).numpy().astype(np.float32)
            if _SCALAR_ATTRS[attr.name] == (vec.ndim == 1):
                if attr.name == "value_float":
                    attr.f = float(vec)
                else:
                    del attr.floats[:]
                    attr.floats.extend(vec.tolist())
                return
            attr.CopyFrom(ir.make_attribute("value", ir.from_array(vec)))
            return
