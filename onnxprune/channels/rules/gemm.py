"""Gemm with a constant B: root on the output features, consumer on A's features."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.channels.context import Context
from onnxprune.channels.index_map import Identity
from onnxprune.channels.rules import register
from onnxprune.channels.rules.base import Layout, Rule, Shape, WeightOp, prod
from onnxprune.channels.types import Coupling, Link, Space, WeightUse, barrier


def _gemm_macs(attrs: Mapping[str, Any], x: Shape, w: Shape, y: Shape | None) -> int:
    k = x[0] if attrs.get("transA", 0) else x[-1]
    return prod(y or ()) * int(k)


def _gemm_axes(attrs: Mapping[str, Any], x: Shape | None, y: Shape | None) -> tuple[int, int]:
    return (0 if attrs.get("transA", 0) else 1), 1


def _gemm_layout(attrs: Mapping[str, Any], x: Shape, w: Shape) -> Layout | None:
    # A's features on axis 1 (no transA); B's input axis 0, or 1 with transB.
    if int(attrs.get("transA", 0)) or len(x) != 2:
        return None
    return 1, 1 if int(attrs.get("transB", 0)) else 0, False


def _fold_bias(ctx: Context, node: gs.Node, change: np.ndarray, dtype: np.dtype) -> bool:
    """Add to C (alpha·change/beta): created when absent, broadcast to a row when scalar."""
    alpha = float(ctx.attr(node, "alpha", 1.0))
    beta = float(ctx.attr(node, "beta", 1.0))
    has_c = len(node.inputs) > 2 and node.inputs[2].name
    old = ctx.input_const(node, 2) if has_c else None
    if has_c and old is None:
        return False
    if beta == 0.0 and has_c:
        return False
    add = alpha * change / (beta if has_c else 1.0)
    if old is None:
        if not has_c and beta != 1.0:
            node.attrs["beta"] = 1.0
        ctx.set_input_const(node, 2, add.astype(dtype))
        return True
    if old.size not in (1, add.size) or (old.ndim and old.shape[-1] not in (1, add.size)):
        return False
    shape = (*old.shape[:-1], add.size) if old.ndim else (add.size,)
    ctx.set_input_const(node, 2, (np.broadcast_to(old, shape) + add.reshape(
        (1,) * (len(shape) - 1) + (add.size,))).astype(old.dtype))
    return True


@register("Gemm")
class GemmRule(Rule):
    """``Y = A·B (+C)``: Y's features are B's output units (root), A's features are consumed."""

    weight_ops = {"Gemm": WeightOp(
        trainable=(1, 2), macs=_gemm_macs, axes=_gemm_axes,
        gradient=lambda rank, group: "gemm" if rank == 2 else None,
        fold_bias=_fold_bias, layout=_gemm_layout,
    )}

    def roots(self, ctx: Context, node: gs.Node) -> list[tuple[Space, Coupling]]:
        """The output feature space, when B is constant."""
        if not ctx.input_is_const(node, 1):
            return []
        space = Space(node.outputs[0].name, 1)
        return [(space, self.couple(ctx, node, space))]

    def couple(self, ctx: Context, node: gs.Node, space: Space) -> Coupling:
        """Root on output axis 1, consumer on A's feature axis, rows of A tie to rows of Y."""
        a, y = node.inputs[0].name, node.outputs[0].name
        b = node.inputs[1].name
        trans_a, trans_b = int(ctx.attr(node, "transA", 0)), int(ctx.attr(node, "transB", 0))
        if not ctx.is_const(b) or ctx.positions(node, space.tensor) not in ([0], []):
            return barrier(f"{ctx.describe(node)} multiplies two run-time tensors")
        feat_axis, row_axis = (0, 1) if trans_a else (1, 0)
        if space.tensor == y and space.axis == 1:
            return Coupling(absorbs=True, weight=WeightUse(b, 0 if trans_b else 1, "root"))
        if space.tensor == a and space.axis == feat_axis:
            return Coupling(absorbs=True, weight=WeightUse(b, 1 if trans_b else 0, "consumer"))
        c = ctx.input_const(node, 2)
        if c is not None and c.ndim == 2 and c.shape[0] > 1:
            return barrier(f"{ctx.describe(node)} adds a bias that varies along rows")
        link = Link(Space(a, row_axis), Space(y, 0), Identity())
        return Coupling(links=(link,))

    def shrink(self, ctx: Context, node: gs.Node, keep: Mapping[Space, np.ndarray]) -> None:
        """Slice B (and C) by the kept output features and input features."""
        a, y = node.inputs[0].name, node.outputs[0].name
        trans_a, trans_b = int(ctx.attr(node, "transA", 0)), int(ctx.attr(node, "transB", 0))
        if not ctx.input_is_const(node, 1):
            raise RuntimeError(f"{ctx.describe(node)}: weights vanished during surgery")
        keep_out, keep_in = keep.get(Space(y, 1)), keep.get(Space(a, 0 if trans_a else 1))
        if keep_out is not None:
            ctx.take_input(node, 1, 0 if trans_b else 1, keep_out)
        if keep_in is not None:
            ctx.take_input(node, 1, 1 if trans_b else 0, keep_in)
        c = ctx.input_const(node, 2)
        if keep_out is not None and c is not None and c.ndim >= 1 and c.shape[-1] > 1:
            ctx.take_input(node, 2, c.ndim - 1, keep_out)
