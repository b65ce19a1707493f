"""What the latency table measures of each prunable node: a micro-benchmark spec.

Every Conv (dense or depthwise), ConvTranspose, Gemm and MatMul with a constant weight and a
static input becomes a :class:`~onnxprune.bench.micro.NodeSpec` (its op, attributes, shapes,
weight axes, bias) with the activation onnxruntime fuses into it, behind a BatchNormalization
it folds (:func:`node_specs` also names those fused nodes).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from onnxprune.bench.micro import FUSED, NodeSpec, Tail
from onnxprune.channels.context import Context
from onnxprune.model import Model


def node_specs(model: Model) -> tuple[dict[str, NodeSpec], set[str]]:
    """Micro-benchmark specs of the model's prunable nodes, and the nodes fused into them."""
    ctx = model.groups.ctx
    specs, fused = {}, set()
    for node in ctx.graph.nodes:
        spec = _spec(ctx, node)
        if spec is None:
            continue
        tail, names = _tail(ctx, node)
        specs[node.name] = replace(spec, tail=tail)
        fused.update(names)
    return specs, fused


def _spec(ctx: Context, node) -> NodeSpec | None:  # type: ignore[no-untyped-def]
    if node.op not in ("Conv", "ConvTranspose", "Gemm", "MatMul") or len(node.inputs) < 2:
        return None
    w = ctx.const(node.inputs[1].name)
    xs = ctx.shape(node.inputs[0].name)
    if w is None or xs is None or not all(xs):
        return None
    attrs = tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                         for k, v in node.attrs.items()))
    b = ctx.const(node.inputs[2].name) if len(node.inputs) > 2 and node.inputs[2].name else None
    bias = b is not None
    group = int(ctx.attr(node, "group", 1))
    if node.op == "Conv" and group == 1:
        return NodeSpec("Conv", attrs, tuple(xs), w.shape, bias, 1, 1, 0)
    if node.op == "Conv" and group == xs[1] == w.shape[0] and w.shape[1] == 1:
        attrs = tuple((k, v) for k, v in attrs if k != "group")
        return NodeSpec("Conv", attrs, tuple(xs), w.shape, bias, 1, 1, 0, depthwise=True)
    if node.op == "ConvTranspose" and group == 1:
        return NodeSpec("ConvTranspose", attrs, tuple(xs), w.shape, bias, 1, 0, 1)
    if node.op == "Gemm" and w.ndim == 2 and len(xs) == 2:
        ta, tb = int(ctx.attr(node, "transA", 0)), int(ctx.attr(node, "transB", 0))
        w_out = 0 if tb else 1
        bias = bias and b is not None and b.size == w.shape[w_out] and b.ndim == 1
        return NodeSpec("Gemm", attrs, tuple(xs), w.shape, bias, 0 if ta else 1,
                        1 if tb else 0, w_out)
    if node.op == "MatMul" and w.ndim == 2:
        return NodeSpec("MatMul", (), tuple(xs), w.shape, False, len(xs) - 1, 0, 1)
    return None


def _tail(ctx: Context, node) -> tuple[Tail | None, list[str]]:  # type: ignore[no-untyped-def]
    """Return the activation onnxruntime fuses into ``node`` (behind a folded BatchNorm)."""
    names = []
    out = node.outputs[0].name
    readers = ctx.consumers(out)
    if node.op == "Conv" and len(readers) == 1 and readers[0].op == "BatchNormalization":
        names.append(readers[0].name)
        out = readers[0].outputs[0].name
        readers = ctx.consumers(out)
    if len(readers) != 1 or readers[0].op not in FUSED:
        return None, names
    act = readers[0]
    bounds = tuple(float(np.asarray(ctx.const(t.name)).reshape(()))
                   for t in act.inputs[1:] if t.name and ctx.const(t.name) is not None)
    if act.op == "Clip" and len(bounds) != len([t for t in act.inputs[1:] if t.name]):
        return None, names  # bounds computed at run time: not fused
    attrs = tuple(sorted((k, v) for k, v in act.attrs.items() if k not in ("min", "max")))
    if act.op == "Clip" and not bounds and act.attrs:  # opset < 11: bounds as attributes
        bounds = (float(act.attrs.get("min", -3.4e38)), float(act.attrs.get("max", 3.4e38)))
    names.append(act.name)
    return Tail(act.op, attrs, bounds), names
