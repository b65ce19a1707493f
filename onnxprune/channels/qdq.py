"""Weights stored quantised: constants behind a DequantizeLinear (QDQ models).

A weight ``DequantizeLinear(w_q, scale, zero_point)`` whose three inputs are constants is read
by the rules as the float constant it dequantises to (exactly as onnxruntime computes it), and
sliced by slicing ``w_q`` together with the per-axis scale and zero point when the slice runs
along the quantisation axis. The quantised storage stays: nothing is re-quantised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx_graphsurgeon as gs

if TYPE_CHECKING:
    from onnxprune.channels.context import Context


def dequantizer(ctx: Context, name: str) -> gs.Node | None:
    """The DequantizeLinear of constants that produces ``name``, or None."""
    node = ctx.producer(name)
    if node is None or node.op != "DequantizeLinear" or int(node.attrs.get("block_size", 0)):
        return None
    inputs = [t for t in node.inputs if t.name]
    if not all(isinstance(t, gs.Constant) for t in inputs):
        return None
    # Integer storage only (float8/int4 storage is not read here).
    return node if np.asarray(node.inputs[0].values).dtype.kind in "iu" else None


def _along(v: np.ndarray, axis: int, rank: int) -> np.ndarray:
    if v.size == 1:
        return v.reshape(())
    shape = [1] * rank
    shape[axis % rank] = -1
    return v.reshape(shape)


def dequantized(ctx: Context, node: gs.Node) -> np.ndarray:
    """The float value of a DequantizeLinear of constants: ``(w_q - zero_point) * scale``."""
    q = np.asarray(node.inputs[0].values)
    scale = np.asarray(node.inputs[1].values)
    axis = int(node.attrs.get("axis", 1))
    v = q.astype(np.int64)
    zp = ctx.input_const(node, 2)
    if zp is not None:
        v = v - _along(zp.astype(np.int64), axis, q.ndim)
    return v.astype(scale.dtype) * _along(scale, axis, q.ndim)


def _own(ctx: Context, node: gs.Node, i: int) -> gs.Node:
    """The DequantizeLinear feeding input ``i`` of ``node``, cloned if others read it too."""
    dq = ctx.producer(node.inputs[i].name)
    assert dq is not None  # the caller checked it is a dequantizer
    out = dq.outputs[0]
    if [n for n in out.outputs if n is not node] or out.name in ctx.outputs:
        name = f"{out.name}__pruned{len(ctx.tensors)}"
        fresh = gs.Variable(name, dtype=out.dtype, shape=out.shape)
        clone = gs.Node("DequantizeLinear", f"{dq.name}__pruned{len(ctx.tensors)}",
                        dict(dq.attrs), list(dq.inputs), [fresh])
        ctx.graph.nodes.append(clone)
        ctx.tensors[name] = fresh
        node.inputs[i] = fresh
        dq = clone
    return dq


def take(ctx: Context, node: gs.Node, i: int, axis: int, keep: np.ndarray) -> None:
    """Keep ``keep`` along ``axis`` of a quantised weight: w_q, and scale/zero point per axis."""
    dq = _own(ctx, node, i)
    rank = np.asarray(dq.inputs[0].values).ndim
    ctx.take_input(dq, 0, axis, keep)
    scale = ctx.input_const(dq, 1)
    if scale is None or scale.size == 1 or int(dq.attrs.get("axis", 1)) % rank != axis % rank:
        return
    ctx.take_input(dq, 1, 0, keep)
    zp = ctx.input_const(dq, 2)
    if zp is not None and zp.size > 1:
        ctx.take_input(dq, 2, 0, keep)
