"""Conversion between protobuf models and onnx-graphsurgeon graphs."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnx_graphsurgeon as gs

log = logging.getLogger(__name__)

def to_graph(model: onnx.ModelProto) -> gs.Graph:
    """Import a model into onnx-graphsurgeon, folding ``Constant`` nodes into constants.

    Paddle exports keep weights in ``Constant`` nodes; folding them lets every rule treat
    weights one way.
    """
    graph = gs.import_onnx(model)
    outputs = {t.name for t in graph.outputs}
    for node in [n for n in graph.nodes if n.op == "Constant" and len(n.outputs) == 1]:
        value = _constant_value(node)
        out = node.outputs[0]
        if value is None or out.name in outputs:
            continue
        const = gs.Constant(out.name, value)
        for consumer in list(out.outputs):
            for i, t in enumerate(list(consumer.inputs)):
                if t is out:
                    consumer.inputs[i] = const
        node.outputs.clear()
    graph.cleanup()
    # Constant subgraphs (a Paddle bias Reshape'd to [1,C,1,1]) become plain constants, so
    # rules see per-channel constants; run-time shapes are left alone.
    graph.fold_constants(fold_shapes=False, partitioning=None, error_ok=True)
    graph.cleanup()
    return graph


def peek_constant(const: gs.Constant) -> np.ndarray:
    """Return the value of a graph constant without loading it into the graph.

    A weight not yet loaded is read from its tensor (one copy of its data, read-only);
    ``const.values`` would keep it in the graph, and onnx-graphsurgeon copies it once more.
    """
    lazy = getattr(const, "_values", None)
    if isinstance(lazy, gs.ir.tensor.LazyValues) and lazy.tensor.data_type in _PLAIN_TYPES:
        return onnx.numpy_helper.to_array(lazy.tensor)
    return np.asarray(const.values if not isinstance(lazy, gs.ir.tensor.LazyValues)
                      else lazy.load())


_PLAIN_TYPES = {
    onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.INT64,
    onnx.TensorProto.INT32, onnx.TensorProto.INT8, onnx.TensorProto.UINT8,
}
"""Element types whose ``numpy_helper.to_array`` is what onnx-graphsurgeon's load gives."""


def _constant_value(node: gs.Node) -> np.ndarray | None:
    attrs = node.attrs
    if "value" in attrs:
        return np.asarray(attrs["value"].values)
    for key, dtype in (("value_float", np.float32), ("value_int", np.int64)):
        if key in attrs:
            return np.asarray(attrs[key], dtype=dtype)
    for key, dtype in (("value_floats", np.float32), ("value_ints", np.int64)):
        if key in attrs:
            return np.asarray(list(attrs[key]), dtype=dtype)
    return None


def from_graph(graph: gs.Graph, like: onnx.ModelProto, *, consume: bool = False
               ) -> onnx.ModelProto:
    """Export a graph back to a model keeping ``like``'s opsets, IR version and metadata.

    The weights are written into the model once each: onnx-graphsurgeon's export holds three
    copies of them at its peak (tensors, a graph, the model), so it runs on weightless
    stand-ins and each initializer is filled in afterwards. With ``consume`` every constant
    of ``graph`` gives up its value once written (the graph must not be used again), so the
    weights are never held twice.
    """
    model = _export_lean(graph, consume)
    model.ir_version = like.ir_version
    del model.opset_import[:]
    model.opset_import.extend(like.opset_import)
    model.producer_name = like.producer_name
    model.producer_version = like.producer_version
    del model.metadata_props[:]
    model.metadata_props.extend(like.metadata_props)
    del model.graph.value_info[:]
    if model.ir_version < 4:  # before IR 4 every initializer must also be a graph input
        listed = {v.name for v in model.graph.input}
        for t in model.graph.initializer:
            if t.name not in listed:
                model.graph.input.append(
                    onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                )
    return model


def _export_lean(graph: gs.Graph, consume: bool) -> onnx.ModelProto:
    """``gs.export_onnx`` with every initializer's data filled in after the export.

    This reaches into onnx-graphsurgeon's private tensor storage (``Constant._values``); an
    onnx-graphsurgeon without it gets the plain export (same model, more peak memory).
    """
    try:
        from onnx_graphsurgeon.exporters.onnx_exporter import OnnxExporter
        from onnx_graphsurgeon.ir.tensor import LazyValues, SparseValues

        consts = [t for t in graph.tensors().values()
                  if isinstance(t, gs.Constant) and not isinstance(t._values, SparseValues)]
    except (ImportError, AttributeError) as e:
        log.debug("lean export unavailable (%s): plain onnx-graphsurgeon export", e)
        return gs.export_onnx(graph, do_type_check=False)
    values = [t._values for t in consts]
    try:
        for t in consts:
            stub = onnx.TensorProto()  # what the export copies; replaced below
            stub.name, stub.data_type = t.name, onnx.TensorProto.FLOAT
            stub.dims.append(0)
            t._values = LazyValues(stub)
        model = gs.export_onnx(graph, do_type_check=False)
    finally:
        for t, v in zip(consts, values, strict=True):
            t._values = v
    del values
    written = {init.name: init for init in model.graph.initializer}
    for t in consts:
        dst = written.get(t.name)
        if dst is None:
            continue
        lazy = t._values if isinstance(t._values, LazyValues) else None
        dst.CopyFrom(lazy.tensor if lazy is not None else OnnxExporter.export_tensor_proto(t))
        dst.name = t.name
        if consume:
            t._values = LazyValues(dst)
    return model
