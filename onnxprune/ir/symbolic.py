"""Symbolic shape inference as a fallback where ONNX's own inference gives up.

ONNX shape inference loses track of shapes computed at run time (a Reshape whose target is a
``Concat`` of ``Shape``/``Gather``/arithmetic results, as Paddle2ONNX writes them), and
every tensor after it stays unknown, which makes its channel groups barriers.
onnxruntime ships a symbolic shape inference that propagates such shape computations; with
static input shapes it resolves them to numbers. This module adds the static shapes it finds
for the tensors the first pass left unknown and never overrides a shape already known.
"""

from __future__ import annotations

import logging

import onnx

log = logging.getLogger(__name__)


def _is_static(v: onnx.ValueInfoProto) -> bool:
    tt = v.type.tensor_type
    return tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim)


def _known(model: onnx.ModelProto) -> set[str]:
    g = model.graph
    return {v.name for v in [*g.input, *g.value_info, *g.output] if _is_static(v)}


def _symbolic(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    """Shapes found by onnxruntime's symbolic inference (on its own copy), by tensor name.

    The class is driven step by step rather than through ``SymbolicShapeInference.infer_shapes``:
    that entry point writes ``sym_shape_infer_temp.onnx`` into the working directory when some
    shape stays unknown, and discards the shapes it did find.
    """
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference
    except ImportError:  # an onnxruntime build without its tools: the first pass stands
        log.debug("onnxruntime.tools.symbolic_shape_infer is not available")
        return {}
    sym = SymbolicShapeInference(2**31 - 1, True, False, 0)
    try:
        sym._preprocess(model)
        while sym.run_:
            sym._infer_impl()
    except Exception:  # noqa: BLE001 - best effort: keep what was found before the failure
        log.debug("symbolic shape inference stopped early", exc_info=True)
    return dict(getattr(sym, "known_vi_", {}))


def fill_missing(model: onnx.ModelProto) -> onnx.ModelProto:
    """Add the static shapes symbolic inference finds for tensors still unknown in ``model``.

    Args:
        model: a model after ONNX shape inference (edited in place).

    Returns:
        ``model``, with a value_info (or graph output type) added for every tensor whose shape
        was unknown and that symbolic inference resolves to a fully static shape.

    """
    known = _known(model)
    missing = {o for n in model.graph.node for o in n.output if o and o not in known}
    if not missing:
        return model
    found = _symbolic(model)
    outputs = {v.name: v for v in model.graph.output}
    added = 0
    for v in found.values():
        if v.name in missing and _is_static(v):
            if v.name in outputs:
                outputs[v.name].type.CopyFrom(v.type)
            else:
                model.graph.value_info.append(v)
            added += 1
    log.debug("symbolic shape inference resolved %s of %s unknown shapes", added, len(missing))
    return model
