"""Concat, Split and Slice: channels keep their identity at an offset along the joined axis."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.channels.context import Context
from onnxprune.channels.index_map import Identity, Offset
from onnxprune.channels.rules import register
from onnxprune.channels.rules.base import Rule
from onnxprune.channels.types import Coupling, Link, Space, barrier


@register("Concat")
class ConcatRule(Rule):
    """Along the joined axis input i is the slice at its offset; other axes tie all inputs."""

    def couple(self, ctx: Context, node: gs.Node, space: Space) -> Coupling:
        """Offset links on the joined axis, identity links (and sliced constants) elsewhere."""
        y = node.outputs[0].name
        rank = len(ctx.shape(y) or ())
        shapes = [ctx.shape(t.name) for t in node.inputs]
        if not rank or any(s is None for s in shapes):
            return barrier(f"{ctx.describe(node)} has inputs of unknown shape")
        axis = int(ctx.attr(node, "axis", 0)) % rank
        links, absorbs, offset = [], False, 0
        for t, shape in zip(node.inputs, [s or () for s in shapes]):
            if space.axis == axis:
                if not ctx.is_const(t.name):
                    links.append(Link(Space(t.name, axis), Space(y, axis), Offset(offset)))
                offset += shape[axis]
            elif ctx.const(t.name) is not None:
                absorbs = True
            else:
                links.append(Link(Space(t.name, space.axis), Space(y, space.axis), Identity()))
        return Coupling(links=tuple(links), absorbs=absorbs)

    def shrink(self, ctx: Context, node: gs.Node, keep: Mapping[Space, np.ndarray]) -> None:
        """Slice constant inputs along shrunk axes other than the joined one."""
        y = node.outputs[0].name
        rank = len(ctx.shape(y) or ())
        axis = int(ctx.attr(node, "axis", 0)) % rank
        for space, k in keep.items():
            if space.tensor != y or space.axis == axis:
                continue
            for i in range(len(node.inputs)):
                if ctx.input_const(node, i) is not None:
                    ctx.take_input(node, i, space.axis, k)


def _split_sizes(ctx: Context, node: gs.Node, dim: int) -> list[int] | None:
    if ctx.opset >= 13 and ctx.input_name(node, 1) is not None:
        sizes = ctx.input_const(node, 1)
        return None if sizes is None else [int(s) for s in sizes.reshape(-1)]
    if ctx.opset < 13 and ctx.attr(node, "split", None) is not None:
        return [int(s) for s in ctx.attr(node, "split")]
    n = len(node.outputs)
    chunk = -(-dim // n)
    return [min(chunk, dim - i * chunk) for i in range(n)]


@register("Split")
class SplitRule(Rule):
    """Output i is the input's slice at its offset along the split axis."""

    def couple(self, ctx: Context, node: gs.Node, space: Space) -> Coupling:
        """Offset links on the split axis, identity links on the others."""
        x = node.inputs[0].name
        xs = ctx.shape(x)
        if xs is None or ctx.positions(node, space.tensor) not in ([0], []):
            return barrier(f"{ctx.describe(node)} has an unknown input shape")
        axis = int(ctx.attr(node, "axis", 0)) % len(xs)
        sizes = _split_sizes(ctx, node, xs[axis])
        if sizes is None:
            return barrier(f"{ctx.describe(node)} splits by sizes computed at run time")
        links, start = [], 0
        for t, size in zip(node.outputs, sizes):
            if space.axis == axis:
                links.append(Link(Space(t.name, axis), Space(x, axis), Offset(start)))
            else:
                links.append(Link(Space(x, space.axis), Space(t.name, space.axis), Identity()))
            start += size
        return Coupling(links=tuple(links), absorbs=space.axis == axis)

    def shrink(self, ctx: Context, node: gs.Node, keep: Mapping[Space, np.ndarray]) -> None:
        """Rewrite the split sizes (as an input from opset 13, else the attribute)."""
        x = node.inputs[0].name
        xs = ctx.shape(x) or ()
        axis = int(ctx.attr(node, "axis", 0)) % len(xs)
        if Space(x, axis) not in keep:
            return
        old = _split_sizes(ctx, node, xs[axis]) or []
        kept = keep[Space(x, axis)]
        bounds = np.cumsum([0, *old])
        sizes = [int(((kept >= lo) & (kept < hi)).sum()) for lo, hi in zip(bounds, bounds[1:])]
        if ctx.opset >= 13:
            node.attrs.pop("num_outputs", None)
            ctx.set_input_const(node, 1, np.asarray(sizes, dtype=np.int64))
        else:
            node.attrs["split"] = sizes


def _slice_params(ctx: Context, node: gs.Node) -> tuple[list[int], ...] | None:
    rank = len(ctx.shape(node.inputs[0].name) or ())
    if ctx.opset < 10:
        starts, ends = ctx.attr(node, "starts", []), ctx.attr(node, "ends", [])
        axes = ctx.attr(node, "axes", None) or list(range(len(starts)))
        return list(starts), list(ends), [a % rank for a in axes], [1] * len(starts)
    vals = [ctx.input_const(node, i) if ctx.input_name(node, i) else None for i in range(1, 5)]
    if vals[0] is None or vals[1] is None:
        return None
    if (ctx.input_name(node, 3) and vals[2] is None) or (ctx.input_name(node, 4) and vals[3] is None):
        return None
    starts, ends = [int(v) for v in vals[0]], [int(v) for v in vals[1]]
    axes = [int(a) % rank for a in vals[2]] if vals[2] is not None else list(range(len(starts)))
    steps = [int(s) for s in vals[3]] if vals[3] is not None else [1] * len(starts)
    return starts, ends, axes, steps


def _clamp(v: int, dim: int) -> int:
    return max(0, min(dim, v + dim if v < 0 else v))


@register("Slice")
class SliceRule(Rule):
    """A step-1 slice of the channel axis is the input's channels from ``start`` on."""

    def couple(self, ctx: Context, node: gs.Node, space: Space) -> Coupling:
        """Offset link on a sliced axis, identity elsewhere; strided channel slices block."""
        x, y = node.inputs[0].name, node.outputs[0].name
        params, xs = _slice_params(ctx, node), ctx.shape(x)
        if params is None or xs is None or ctx.positions(node, space.tensor) not in ([0], []):
            return barrier(f"{ctx.describe(node)} slices by amounts computed at run time")
        starts, _, axes, steps = params
        if space.axis not in axes:
            return Coupling(links=(Link(Space(x, space.axis), Space(y, space.axis), Identity()),))
        i = axes.index(space.axis)
        if steps[i] != 1:
            return barrier(f"{ctx.describe(node)} takes every {steps[i]}th channel")
        start = _clamp(starts[i], xs[space.axis])
        link = Link(Space(y, space.axis), Space(x, space.axis), Offset(start))
        return Coupling(links=(link,), absorbs=True)

    def shrink(self, ctx: Context, node: gs.Node, keep: Mapping[Space, np.ndarray]) -> None:
        """Re-count the bounds of each shrunk sliced axis among the kept channels."""
        params, xs = _slice_params(ctx, node), ctx.shape(node.inputs[0].name)
        if params is None or xs is None:
            return
        starts, ends, axes, _ = (list(p) for p in params)
        for i, axis in enumerate(axes):
            kept = keep.get(Space(node.inputs[0].name, axis))
            if kept is None:
                continue
            lo, hi = _clamp(starts[i], xs[axis]), _clamp(ends[i], xs[axis])
            starts[i], ends[i] = int((kept < lo).sum()), int((kept < hi).sum())
        if ctx.opset < 10:
            node.attrs["starts"], node.attrs["ends"] = starts, ends
            return
        ctx.set_input_const(node, 1, np.asarray(starts, dtype=np.int64))
        ctx.set_input_const(node, 2, np.asarray(ends, dtype=np.int64))
