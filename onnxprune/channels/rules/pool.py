"""Pooling: batch and channel axes pass; spatial axes are mixed."""

from __future__ import annotations

from collections.abc import Mapping

import onnx_graphsurgeon as gs

from onnxprune.channels.context import Context
from onnxprune.channels.rules import register
from onnxprune.channels.rules.base import AxisRule


@register(
    "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"
)
class PoolRule(AxisRule):
    """Each channel is pooled on its own: axes 0 and 1 pass through."""

    def axis_map(self, ctx: Context, node: gs.Node) -> Mapping[int, int] | str:
        """Batch and channel axes pass; MaxPool's indices output is not handled."""
        if any(t.outputs or t.name in ctx.outputs for t in node.outputs[1:]):
            return f"{ctx.describe(node)} uses its indices output"
        return {0: 0, 1: 1}
