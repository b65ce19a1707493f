"""Ops that move, pad, repeat or resample axes without mixing channels."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.channels.context import Context
from onnxprune.channels.rules import register
from onnxprune.channels.rules.base import AxisRule
from onnxprune.channels.types import Coupling, Space, barrier


def _rank(ctx: Context, name: str) -> int:
    return len(ctx.shape(name) or ())


def _axes_arg(ctx: Context, node: gs.Node, since: int, index: int = 1) -> list[int] | None:
    """Axes given as an attribute before opset ``since`` and as input ``index`` from it on."""
    if ctx.opset >= since:
        if ctx.input_name(node, index) is None:
            return []
        value = ctx.input_const(node, index)
        return None if value is None else [int(a) for a in value.reshape(-1)]
    return [int(a) for a in ctx.attr(node, "axes", [])]


@register("Transpose")
class TransposeRule(AxisRule):
    """Axis ``perm[j]`` of the input becomes axis j of the output."""

    def axis_map(self, ctx: Context, node: gs.Node) -> Mapping[int, int] | str:
        """Inverse of the permutation."""
        rank = _rank(ctx, node.inputs[0].name)
        perm = ctx.attr(node, "perm", None) or list(reversed(range(rank)))
        return {int(p): j for j, p in enumerate(perm)}


@register("Squeeze")
class SqueezeRule(AxisRule):
    """Removed size-1 axes shift the later ones down."""

    def axis_map(self, ctx: Context, node: gs.Node) -> Mapping[int, int] | str:
        """Kept axes renumbered."""
        shape = ctx.shape(node.inputs[0].name) or ()
        axes = _axes_arg(ctx, node, 13)
        if axes is None:
            return f"{ctx.describe(node)} squeezes axes computed at run time"
        gone = {a % len(shape) for a in axes} if axes else {i for i, d in enumerate(shape) if d == 1}
        kept = [a for a in range(len(shape)) if a not in gone]
        return {a: j for j, a in enumerate(kept)}


@register("Unsqueeze")
class UnsqueezeRule(AxisRule):
    """Inserted axes shift the later ones up."""

    def axis_map(self, ctx: Context, node: gs.Node) -> Mapping[int, int] | str:
        """Input axes in order onto the output axes that were not inserted."""
        out_rank = _rank(ctx, node.outputs[0].name)
        axes = _axes_arg(ctx, node, 13)
        if axes is None or not out_rank:
            return f"{ctx.describe(node)} unsqueezes axes computed at run time"
        new = {a % out_rank for a in axes}
        return dict(enumerate(a for a in range(out_rank) if a not in new))


@register("Pad")
class PadRule(AxisRule):
    """Axes without padding pass through."""

    def axis_map(self, ctx: Context, node: gs.Node) -> Mapping[int, int] | str:
        """Identity on axes whose begin and end pads are zero."""
        rank = _rank(ctx, node.inputs[0].name)
        if ctx.opset >= 11:
            pads = ctx.input_const(node, 1)
            axes = _axes_arg(ctx, node, 18, 3) or list(range(rank))
        else:
            pads, axes = np.asarray(ctx.attr(node, "pads", [])), list(range(rank))
        if pads is None:
            return f"{ctx.describe(node)} pads by amounts computed at run time"
        pads = pads.reshape(-1)
        padded = {axes[i] % rank for i in range(len(axes)) if pads[i] or pads[i + len(axes)]}
        return {a: a for a in range(rank) if a not in padded}


@register("Tile")
class TileRule(AxisRule):
    """Axes repeated once pass through."""

    def axis_map(self, ctx: Context, node: gs.Node) -> Mapping[int, int] | str:
        """Identity on axes with a repeat of 1."""
        reps = ctx.input_const(node, 1)
        if reps is None:
            return f"{ctx.describe(node)} repeats by amounts computed at run time"
        return {a: a for a, r in enumerate(reps.reshape(-1)) if int(r) == 1}


@register("Gather")
class GatherRule(AxisRule):
    """Axes other than the gathered one pass through (shifted by the indices' rank)."""

    def axis_map(self, ctx: Context, node: gs.Node) -> Mapping[int, int] | str:
        """Identity before ``axis``, shifted after it."""
        rank = _rank(ctx, node.inputs[0].name)
        axis = int(ctx.attr(node, "axis", 0)) % max(rank, 1)
        idx_rank = _rank(ctx, node.inputs[1].name)
        return {a: (a if a < axis else a + idx_rank - 1) for a in range(rank) if a != axis}

    def blocked(self, ctx: Context, node: gs.Node, axis: int) -> str:
        """Gathering along the channel axis picks channels by index."""
        return f"{ctx.describe(node)} gathers along the channel axis {axis}"


@register("Resize", "Upsample")
class ResizeRule(AxisRule):
    """Axes with scale 1 pass; a constant ``sizes`` that names the channel count is rewritten."""

    def _factors(self, ctx: Context, node: gs.Node) -> np.ndarray | None:
        xs, ys = ctx.shape(node.inputs[0].name), ctx.shape(node.outputs[0].name)
        if node.op == "Upsample" and ctx.opset < 9:
            return np.asarray(ctx.attr(node, "scales", []), dtype=np.float64)
        scales_at = 1 if node.op == "Upsample" or ctx.opset < 11 else 2
        scales, sizes = ctx.input_const(node, scales_at), ctx.input_const(node, scales_at + 1)
        if scales is not None and scales.size:
            return scales.astype(np.float64).reshape(-1)
        if sizes is not None and xs is not None and ys is not None:
            return np.asarray(ys, dtype=np.float64) / np.asarray(xs, dtype=np.float64)
        return None

    def axis_map(self, ctx: Context, node: gs.Node) -> Mapping[int, int] | str:
        """Identity on unscaled axes."""
        if ctx.attr(node, "axes", None) is not None:
            return f"{ctx.describe(node)} uses the 'axes' attribute"
        factors = self._factors(ctx, node)
        if factors is None:
            return f"{ctx.describe(node)} resizes by amounts computed at run time"
        return {a: a for a, f in enumerate(factors) if f == 1.0}

    def shrink(self, ctx: Context, node: gs.Node, keep: Mapping[Space, np.ndarray]) -> None:
        """Rewrite a constant ``sizes`` entry of each shrunk axis."""
        at = 3 if node.op == "Resize" and ctx.opset >= 11 else None
        sizes = None if at is None else ctx.input_const(node, at)
        if sizes is None or not sizes.size:
            return
        sizes = sizes.copy()
        for space, k in keep.items():
            if space.tensor == node.outputs[0].name:
                sizes[space.axis] = len(k)
        ctx.set_input_const(node, at, sizes)


@register("Expand")
class ExpandRule(AxisRule):
    """Same-sized axes pass; an axis broadcast to the channel count takes its size from a shape
    constant, which is rewritten (its channels come from whatever it is combined with).
    """

    def axis_map(self, ctx: Context, node: gs.Node) -> Mapping[int, int] | str:
        """Input axes aligned from the right onto the output's."""
        xs, ys = ctx.shape(node.inputs[0].name), ctx.shape(node.outputs[0].name)
        if xs is None or ys is None:
            return f"{ctx.describe(node)} has tensors of unknown shape"
        off = len(ys) - len(xs)
        return {a: a + off for a in range(len(xs)) if xs[a] == ys[a + off]}

    def couple(self, ctx: Context, node: gs.Node, space: Space) -> Coupling:
        """Pass-through, or absorb an output axis that the shape constant broadcasts."""
        y = node.outputs[0].name
        xs, ys = ctx.shape(node.inputs[0].name), ctx.shape(y)
        if space.tensor == y and xs is not None and ys is not None:
            ax = space.axis - (len(ys) - len(xs))
            if ax < 0 or xs[ax] == 1:
                if not ctx.input_is_const(node, 1):
                    return barrier(f"{ctx.describe(node)} broadcasts to a run-time shape")
                return Coupling(absorbs=True)
        c = super().couple(ctx, node, space)
        return Coupling(links=c.links, absorbs=True) if c.barrier is None else c

    def shrink(self, ctx: Context, node: gs.Node, keep: Mapping[Space, np.ndarray]) -> None:
        """Rewrite the shape constant's entry for each shrunk output axis."""
        shape = ctx.input_const(node, 1)
        ys = ctx.shape(node.outputs[0].name) or ()
        if shape is None:
            return
        shape = shape.copy()
        for space, k in keep.items():
            if space.tensor == node.outputs[0].name:
                i = space.axis - (len(ys) - len(shape))
                if i >= 0 and shape[i] not in (1, -1):
                    shape[i] = len(k)
        ctx.set_input_const(node, 1, shape)


