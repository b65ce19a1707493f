"""QuantizeLinear / DequantizeLinear on activations: channels pass, per-axis scales shrink.

Weights stored quantised (a DequantizeLinear of constants) are not spaces: the rule of the op
reading them slices them through ``Context.take_input`` (see ``channels/qdq.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.channels.context import Context
from onnxprune.channels.rules import register
from onnxprune.channels.rules.base import AxisRule
from onnxprune.channels.types import Coupling, Space, barrier


def _per_axis(ctx: Context, node: gs.Node) -> int | None:
    """The quantisation axis when the scale has one value per index of it, else None."""
    scale = ctx.input_const(node, 1)
    if scale is None or scale.size == 1:
        return None
    rank = len(ctx.shape(node.inputs[0].name) or ())
    return int(ctx.attr(node, "axis", 1)) % max(rank, 1)


@register("QuantizeLinear", "DequantizeLinear")
class QuantDequantRule(AxisRule):
    """Every axis passes; along a per-axis quantisation axis the scale and zero point shrink."""

    def couple(self, ctx: Context, node: gs.Node, space: Space) -> Coupling:
        """Identity on input 0 / output 0; blocked when the scale is computed at run time."""
        if not ctx.input_is_const(node, 1):
            return barrier(f"{ctx.describe(node)} has a scale computed at run time")
        if int(ctx.attr(node, "block_size", 0)):
            return barrier(f"{ctx.describe(node)} quantises in blocks along an axis")
        c = super().couple(ctx, node, space)
        if c.barrier is not None or _per_axis(ctx, node) != space.axis:
            return c
        return Coupling(links=c.links, absorbs=True)

    def shrink(self, ctx: Context, node: gs.Node, keep: Mapping[Space, np.ndarray]) -> None:
        """Slice a per-axis scale and zero point along the shrunk quantisation axis."""
        axis = _per_axis(ctx, node)
        k = keep.get(Space(node.outputs[0].name, axis)) if axis is not None else None
        if k is None:
            return
        ctx.take_input(node, 1, 0, k)
        zp = ctx.input_const(node, 2)
        if zp is not None and zp.size > 1:
            ctx.take_input(node, 2, 0, k)
