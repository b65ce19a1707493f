"""Small edits of a model's constants by node name (for replaying recorded recovery)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import numpy_helper


def node_inputs(model: onnx.ModelProto, wanted: Sequence[tuple[str, int]]
                ) -> dict[tuple[str, int], tuple[str, np.ndarray]]:
    """Return ``(node, input index) -> (tensor name, value)`` for constant inputs.

    Inputs that are absent or not initializers are left out.
    """
    nodes = {n.name: n for n in model.graph.node}
    inits = {t.name: t for t in model.graph.initializer}
    out = {}
    for node_name, i in wanted:
        node = nodes.get(node_name)
        if node is None or i >= len(node.input) or node.input[i] not in inits:
            continue
        out[(node_name, i)] = (node.input[i], numpy_helper.to_array(inits[node.input[i]]))
    return out


def set_node_inputs(model: onnx.ModelProto,
                    values: Mapping[tuple[str, int], tuple[str, np.ndarray]],
                    attrs: Mapping[tuple[str, str], object] | None = None) -> onnx.ModelProto:
    """Return a copy of ``model`` whose nodes read the given named constants.

    Each ``(node, input index) -> (name, value)`` becomes an initializer ``name`` read by that
    input (appended when the node has fewer inputs); initializers nobody reads any more are
    dropped. ``attrs`` sets ``(node, attribute) -> value``.

    Raises:
        KeyError: a node name that the model does not have.

    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes = {n.name: n for n in out.graph.node}
    inits = {t.name: t for t in out.graph.initializer}
    for (node_name, i), (name, value) in values.items():
        node = nodes[node_name]
        while len(node.input) <= i:
            node.input.append("")
        tensor = numpy_helper.from_array(np.ascontiguousarray(value), name)
        if name in inits:
            inits[name].CopyFrom(tensor)
        else:
            inits[name] = out.graph.initializer.add()
            inits[name].CopyFrom(tensor)
        node.input[i] = name
    for (node_name, attr), attr_value in (attrs or {}).items():
        node = nodes[node_name]
        kept = [a for a in node.attribute if a.name != attr]
        del node.attribute[:]
        node.attribute.extend([*kept, onnx.helper.make_attribute(attr, attr_value)])
    read = {i for n in out.graph.node for i in n.input} | {o.name for o in out.graph.output}
    unused = [t for t in out.graph.initializer if t.name not in read]
    for t in unused:
        out.graph.initializer.remove(t)
    return out
