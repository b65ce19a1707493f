"""Reductions and softmax: channels pass when the op works along other axes."""

from __future__ import annotations

from collections.abc import Mapping

import onnx_graphsurgeon as gs

from onnxprune.channels.context import Context
from onnxprune.channels.rules import register
from onnxprune.channels.rules.base import AxisRule

_REDUCE = (
    "ReduceMean ReduceMax ReduceMin ReduceSum ReduceProd ReduceL1 ReduceL2 ReduceLogSum "
    "ReduceLogSumExp ReduceSumSquare"
).split()
# Opset from which each reduction takes its axes as an input instead of an attribute.
_AXES_INPUT_SINCE = {"ReduceSum": 13}


@register(*_REDUCE, "ArgMax", "ArgMin")
class ReduceRule(AxisRule):
    """Channels pass when the reduced axes exclude them; reducing over channels blocks."""

    def _axes(self, ctx: Context, node: gs.Node, rank: int) -> list[int] | None:
        if node.op in ("ArgMax", "ArgMin"):
            return [int(ctx.attr(node, "axis", 0)) % rank]
        if ctx.opset >= _AXES_INPUT_SINCE.get(node.op, 18):
            if ctx.input_name(node, 1) is None:
                noop = int(ctx.attr(node, "noop_with_empty_axes", 0))
                return [] if noop else list(range(rank))
            axes = ctx.input_const(node, 1)
            return None if axes is None else [int(a) % rank for a in axes.reshape(-1)]
        axes = ctx.attr(node, "axes", None)
        return list(range(rank)) if axes is None else [int(a) % rank for a in axes]

    def axis_map(self, ctx: Context, node: gs.Node) -> Mapping[int, int] | str:
        """Kept axes renumbered when ``keepdims`` is 0."""
        rank = len(ctx.shape(node.inputs[0].name) or ())
        axes = self._axes(ctx, node, rank)
        if axes is None:
            return f"{ctx.describe(node)} reduces over axes computed at run time"
        keep = int(ctx.attr(node, "keepdims", 1))
        out, j = {}, 0
        for a in range(rank):
            if a not in axes:
                out[a] = a if keep else j
                j += 1
        return out

    def blocked(self, ctx: Context, node: gs.Node, axis: int) -> str:
        """Reducing over channels mixes them."""
        return f"{ctx.describe(node)} reduces over the channels of axis {axis}"


@register("Softmax", "LogSoftmax", "Hardmax")
class SoftmaxRule(AxisRule):
    """Channels pass unless the softmax normalises over them."""

    def axis_map(self, ctx: Context, node: gs.Node) -> Mapping[int, int] | str:
        """Before opset 13 softmax flattens every axis from ``axis`` on into one."""
        rank = len(ctx.shape(node.inputs[0].name) or ())
        default = -1 if ctx.opset >= 13 else 1
        axis = int(ctx.attr(node, "axis", default)) % max(rank, 1)
        if ctx.opset >= 13:
            return {a: a for a in range(rank) if a != axis}
        return {a: a for a in range(axis)}

    def blocked(self, ctx: Context, node: gs.Node, axis: int) -> str:
        """Normalising over channels couples every channel."""
        return f"{ctx.describe(node)} normalises over the channels of axis {axis}"
