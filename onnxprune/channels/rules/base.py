"""The interface every channel rule implements."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.channels.types import Coupling, Space, barrier

if TYPE_CHECKING:
    from onnxprune.channels.context import Context


class Rule:
    """What one op family does to channels.

    ``couple`` answers, for a channel space on one of the node's inputs or outputs, which other
    spaces it is tied to (``Coupling.links``), whether the node absorbs the shrinkage in its own
    data, or why it cannot be pruned. ``roots`` lists the output spaces whose channels the node
    can drop (producers with weights). ``shrink`` edits the node's data for the kept indices.
    """

    op_types: tuple[str, ...] = ()

    def roots(self, ctx: Context, node: gs.Node) -> list[tuple[Space, Coupling]]:
        """Return the node's output spaces that can start a prunable group."""
        return []

    def couple(self, ctx: Context, node: gs.Node, space: Space) -> Coupling:
        """Answer for ``space`` (a space of one of the node's inputs or outputs)."""
        return barrier(f"{ctx.describe(node)} has no channel handling")

    def shrink(self, ctx: Context, node: gs.Node, keep: Mapping[Space, np.ndarray]) -> None:
        """Shrink the node's own data; ``keep`` holds the kept indices of its changed spaces."""


class AxisRule(Rule):
    """An op that moves each axis of its first input to one axis of its first output.

    Subclasses give ``axis_map`` (input axis -> output axis for the axes whose channels pass
    through unchanged) and ``blocked`` (why an axis does not pass); ``shrink_axis`` edits
    constants that hard-code the axis length (Resize sizes, Expand shapes).
    """

    def axis_map(self, ctx: Context, node: gs.Node) -> Mapping[int, int] | str:
        """Map input-0 axes to output-0 axes, or return a reason the node cannot be handled."""
        rank = len(ctx.shape(node.inputs[0].name) or ())
        return {a: a for a in range(rank)}

    def blocked(self, ctx: Context, node: gs.Node, axis: int) -> str:
        """Why channels on input axis ``axis`` cannot pass through the node."""
        return f"{ctx.describe(node)} mixes or drops input axis {axis}"

    def couple(self, ctx: Context, node: gs.Node, space: Space) -> Coupling:
        """Tie a space of input 0 to its axis of output 0 (or the other way round)."""
        from onnxprune.channels.index_map import Identity
        from onnxprune.channels.types import Link

        x, y = node.inputs[0].name, node.outputs[0].name
        amap = self.axis_map(ctx, node)
        if isinstance(amap, str):
            return barrier(amap)
        if space.tensor == x and ctx.positions(node, x) == [0]:
            if space.axis not in amap:
                return barrier(self.blocked(ctx, node, space.axis))
            return Coupling(links=(Link(space, Space(y, amap[space.axis]), Identity()),))
        inverse = {b: a for a, b in amap.items()}
        if space.tensor == y and ctx.positions(node, y, outputs=True) == [0]:
            if space.axis not in inverse:
                return barrier(self.blocked(ctx, node, space.axis))
            return Coupling(links=(Link(Space(x, inverse[space.axis]), space, Identity()),))
        return barrier(f"channels reach a secondary input or output of {ctx.describe(node)}")
