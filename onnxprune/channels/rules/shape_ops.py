"""Shape: reading a tensor's shape is safe; what the shape feeds is checked by its readers."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from onnxprune.channels.context import Context
from onnxprune.channels.rules import register
from onnxprune.channels.rules.base import Rule
from onnxprune.channels.shape_values import slice_indices
from onnxprune.channels.types import Coupling, Space, barrier

# Ops through which a shape value may flow on its way to a Reshape/Expand that checks it.
_SHAPE_ARITHMETIC = {"Gather", "Concat", "Unsqueeze", "Squeeze", "Cast", "Identity", "Slice"}
_CHECKED_READERS = {"Reshape", "Expand"}


@register("Shape")
class ShapeRule(Rule):
    """Absorbs: the shape value follows the pruned tensor at run time.

    Only allowed when every reader of the value is shape arithmetic ending in a Reshape or
    Expand (whose rules check that the channel entry adapts), so a changed channel count
    cannot leak into anything else.
    """

    def couple(self, ctx: Context, node: gs.Node, space: Space) -> Coupling:
        """Absorb, or block when the shape value reaches an op that is not checked."""
        start = int(ctx.attr(node, "start", 0))
        rank = len(ctx.shape(space.tensor) or ())
        end = int(ctx.attr(node, "end", rank))
        end = end + rank if end < 0 else min(end, rank)
        start = start + rank if start < 0 else start
        if not start <= space.axis < end:
            return Coupling(absorbs=True)
        bad = self._unchecked_reader(ctx, node.outputs[0].name, set(), space.axis - start)
        if bad is not None:
            return barrier(f"the shape of '{space.tensor}' flows into {ctx.describe(bad)}")
        return Coupling(absorbs=True)

    def _unchecked_reader(
        self, ctx: Context, name: str, seen: set[str], at: int | None = None
    ) -> gs.Node | None:
        """Return a reader the channel count reaches unchecked (``at``: its element, if known)."""
        if name in seen:
            return None
        seen.add(name)
        for reader in ctx.consumers(name):
            if reader.op in _CHECKED_READERS and reader.inputs[0].name != name:
                continue
            if at is not None and not self._picks(ctx, reader, name, at):
                continue  # a Slice/Gather that leaves the channel count out (head_dim)
            if reader.op not in _SHAPE_ARITHMETIC:
                return reader
            for out in reader.outputs:
                bad = self._unchecked_reader(ctx, out.name, seen)
                if bad is not None:
                    return bad
        if name in ctx.outputs:
            return ctx.producer(name)
        return None

    @staticmethod
    def _picks(ctx: Context, reader: gs.Node, name: str, at: int) -> bool:
        """Tell whether ``reader`` may use element ``at`` of the shape value ``name``."""
        if reader.inputs[0].name != name:
            return True
        if reader.op == "Slice":
            picked = slice_indices(ctx, reader)
            return picked is None or at in picked
        if reader.op == "Gather":
            idx = ctx.input_const(reader, 1)
            size = (ctx.shape(name) or (0,))[0]
            return idx is None or at in {int(i) % max(size, 1) for i in idx.reshape(-1)}
        return True
