"""Shape inference, folded shape constants and light (weightless) copies."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence

import onnx
import onnx_graphsurgeon as gs
from google.protobuf.message import Message

from onnxprune.ir import limits, symbolic
from onnxprune.ir.load import has_tensor_attr, model_bytes
from onnxprune.ir.specs import with_input_shapes

log = logging.getLogger(__name__)

def infer_shapes(
    model: onnx.ModelProto, *, strict: bool = False, light: bool | None = None
) -> onnx.ModelProto:
    """Run ONNX shape inference (with data propagation) and return the inferred copy.

    Models over ``limits.LIGHT_BYTES`` (or any, with ``light``) are inferred on a copy
    without their weights (shape inference needs only the weights' dims), so the returned
    model holds no weights; the ``Shape`` folding pass is skipped for them. Unless ``strict``,
    shapes it leaves unknown are filled in by :func:`onnxprune.ir.symbolic.fill_missing`.
    """
    if light if light is not None else model_bytes(model) > limits.LIGHT_BYTES:
        m = light_copy(model)
        del m.graph.value_info[:]
        light = onnx.shape_inference.infer_shapes(
            m, check_type=True, strict_mode=strict, data_prop=True
        )
        return light if strict else symbolic.fill_missing(light)
    m = copy.deepcopy(model)
    del m.graph.value_info[:]
    inferred = onnx.shape_inference.infer_shapes(
        m, check_type=True, strict_mode=strict, data_prop=True
    )
    return inferred if strict else symbolic.fill_missing(_add_folded_shapes(inferred))


def infer_shapes_plain(model: onnx.ModelProto, *, strict: bool = False) -> onnx.ModelProto:
    """Run ONNX shape inference as it is and return the inferred copy.

    No type check, no data propagation, no folding or symbolic fallback (see
    :func:`infer_shapes` for those): what ``onnx.shape_inference.infer_shapes`` alone gives.
    """
    return onnx.shape_inference.infer_shapes(model, strict_mode=strict)


def inferred_shapes(
    model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None = None
) -> dict[str, tuple[int, ...]]:
    """``static_shapes(infer_shapes(with_input_shapes(model, input_shapes)))``, lighter.

    Shape inference of a whole model serialises it, parses it back and copies it (a 100 MB
    ResNet-50 peaked 400 MB above the loaded model), and new input shapes copy it once more.
    Above :data:`limits.SHAPES_LIGHT_BYTES` the weightless copy is inferred first; when that
    gives every node output a static shape it is the answer (weights enter shape inference
    only through their values, and a stripped tensor's values are unknown, never different).
    Otherwise the whole model is inferred as before (folding ``Shape`` subgraphs and data
    propagation may need the values).
    """
    size = model_bytes(model)
    if limits.SHAPES_LIGHT_BYTES < size <= limits.LIGHT_BYTES:
        m = light_copy(model)
        if input_shapes is not None:
            m = with_input_shapes(m, input_shapes)
        del m.graph.value_info[:]
        light = onnx.shape_inference.infer_shapes(m, check_type=True, data_prop=True)
        shapes = static_shapes(light)
        if all(o in shapes for n in model.graph.node for o in n.output if o):
            return shapes
    full = model if input_shapes is None else with_input_shapes(model, input_shapes)
    return static_shapes(infer_shapes(full))


def adopt_shapes(model: onnx.ModelProto, inferred: onnx.ModelProto) -> onnx.ModelProto:
    """Give ``model`` the value_info and graph output types of ``inferred``; return ``model``."""
    del model.graph.value_info[:]
    model.graph.value_info.extend(inferred.graph.value_info)
    for mine, theirs in zip(model.graph.output, inferred.graph.output, strict=True):
        mine.type.CopyFrom(theirs.type)
    return model


def light_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """Copy ``model`` without the data of its larger tensors (dims and types are kept).

    The stripped tensors are marked as external data at a location that does not exist, so
    ``onnx.checker`` and shape inference accept the copy; it cannot be run. ``model`` is not
    changed and its weights are never copied.
    """
    return skeleton(model, lambda t: [("location", limits.STRIPPED)])


def skeleton(
    model: onnx.ModelProto,
    external: Callable[[onnx.TensorProto], Sequence[tuple[str, str]]],
) -> onnx.ModelProto:
    """Copy ``model`` field by field; each larger tensor becomes an external reference.

    ``external(tensor)`` returns the tensor's ``external_data`` entries (and may write its
    data somewhere). Field by field because the protobuf runtime (upb) never gives back the
    memory of a cleared field: moving weights out and back would hold them twice.
    """
    skel = onnx.ModelProto()
    _copy_fields(skel, model, skip=("graph",))
    graph = skel.graph
    _copy_fields(graph, model.graph, skip=("initializer", "node"))
    for t in model.graph.initializer:
        _copy_tensor(graph.initializer.add(), t, external)
    for node in model.graph.node:
        new = graph.node.add()
        if not has_tensor_attr(node):
            new.CopyFrom(node)
            continue
        _copy_fields(new, node, skip=("attribute",))
        for attr in node.attribute:
            new_attr = new.attribute.add()
            if not attr.HasField("t"):
                new_attr.CopyFrom(attr)
                continue
            _copy_fields(new_attr, attr, skip=("t",))
            _copy_tensor(new_attr.t, attr.t, external)
    return skel


def _copy_fields(dst: Message, src: Message, *, skip: Sequence[str]) -> None:
    for field, value in src.ListFields():
        if field.name in skip:
            continue
        repeated = getattr(field, "is_repeated", None)
        if repeated is None:  # protobuf < 5.28
            repeated = field.label == field.LABEL_REPEATED
        if repeated:
            getattr(dst, field.name).extend(value)
        elif field.type == field.TYPE_MESSAGE:
            getattr(dst, field.name).CopyFrom(value)
        else:
            setattr(dst, field.name, value)


def _copy_tensor(
    dst: onnx.TensorProto,
    t: onnx.TensorProto,
    external: Callable[[onnx.TensorProto], Sequence[tuple[str, str]]],
) -> None:
    if t.data_location == onnx.TensorProto.EXTERNAL or t.ByteSize() <= limits.LIGHT_TENSOR_BYTES:
        dst.CopyFrom(t)
        return
    dst.name, dst.data_type = t.name, t.data_type
    dst.dims.extend(t.dims)
    if t.doc_string:
        dst.doc_string = t.doc_string
    dst.data_location = onnx.TensorProto.EXTERNAL
    for key, value in external(t):
        entry = dst.external_data.add()
        entry.key, entry.value = key, value


def _add_folded_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Add the static shapes found once ``Shape`` subgraphs are folded (on a copy).

    Before Reshape-14, ONNX shape inference ignores a shape computed from ``Shape`` ops
    (``x.view(x.size(0), -1)`` exported with a dynamic batch), leaving every tensor after it
    unknown. With static input shapes those computations are constants: fold them in a
    throwaway copy, infer again, and keep only the static shapes the first pass missed.
    """
    g = model.graph
    static = {v.name for v in [*g.input, *g.value_info, *g.output] if _is_static(v)}
    missing = {o for n in g.node for o in n.output if o and o not in static}
    if not missing or not any(n.op_type == "Shape" for n in g.node):
        return model
    import onnxruntime as ort

    # graphsurgeon folds with onnxruntime sessions it creates without options; keep their
    # optimizer warnings (e.g. UnsqueezeElimination) off the user's terminal.
    ort.set_default_logger_severity(3)
    graph = gs.import_onnx(model)
    graph.fold_constants(fold_shapes=True, partitioning=None, error_ok=True).cleanup()
    try:
        folded = onnx.shape_inference.infer_shapes(
            gs.export_onnx(graph, do_type_check=False), data_prop=True
        )
    except Exception:  # noqa: BLE001 - best effort: the first pass's shapes stand
        log.debug("shape inference after folding Shape ops failed", exc_info=True)
        return model
    outputs = {v.name: v for v in g.output}
    for v in [*folded.graph.value_info, *folded.graph.output]:
        if v.name in missing and _is_static(v):
            if v.name in outputs:
                outputs[v.name].type.CopyFrom(v.type)
            else:
                g.value_info.append(v)
    return model


def _is_static(v: onnx.ValueInfoProto) -> bool:
    tt = v.type.tensor_type
    return tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim)


def static_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Return the fully static shapes known for every tensor of an inferred model."""
    out: dict[str, tuple[int, ...]] = {}
    values = [*model.graph.input, *model.graph.output, *model.graph.value_info]
    for v in values:
        tt = v.type.tensor_type
        if not tt.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
        if all(d >= 0 for d in dims):
            out[v.name] = tuple(dims)
    for t in model.graph.initializer:
        out[t.name] = tuple(t.dims)
    return out


