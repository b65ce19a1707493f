"""Flatten and Reshape: a channel axis may be merged with its neighbours; split into heads.

Channel c of input axis a becomes the block of output indices ``o*C*J + c*J + j`` of the axis
it is merged into (``Merge(inner=J, outer=Q)``): Flatten→Gemm gives each channel H·W features.
An input axis split into several output axes blocks (removing one channel would not remove a
whole slice of one output axis), except a split into attention heads (``heads.choose_split``):
head h then owns the block of D channels ``h*D .. h*D+D-1`` and the shape's head count (a
constant, or a constant part of the Concat that computes the shape) is rewritten.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.channels.context import Context
from onnxprune.channels.heads import choose_split
from onnxprune.channels.index_map import Merge
from onnxprune.channels.rules import register
from onnxprune.channels.rules.base import Rule
from onnxprune.channels.shape_values import entry_source, shape_elements
from onnxprune.channels.types import Coupling, Link, Space, barrier


def _prod(xs: Sequence[int]) -> int:
    return int(np.prod(xs, dtype=np.int64)) if len(xs) else 1


def merge_target(src: Sequence[int], a: int, dst: Sequence[int]) -> tuple[int, Merge] | None:
    """Find the axis of ``dst`` into which axis ``a`` of ``src`` is merged, and the map."""
    before, inner_all = _prod(src[:a]), _prod(src[a + 1 :])
    for b in range(len(dst)):
        pre, post = _prod(dst[:b]), _prod(dst[b + 1 :])
        if pre == 0 or post == 0 or before % pre or inner_all % post:
            continue
        outer, inner = before // pre, inner_all // post
        if dst[b] == outer * src[a] * inner:
            return b, Merge(inner=inner, outer=outer)
    return None


def _merge_source(src: Sequence[int], dst: Sequence[int], b: int) -> tuple[int, Merge] | None:
    """The first non-trivial axis of ``src`` that is merged into axis ``b`` of ``dst``."""
    for a in range(len(src)):
        found = merge_target(src, a, dst)
        if found is not None and found[0] == b and (src[a] > 1 or dst[b] == 1):
            return a, found[1]
    return None


def _split_source(ctx: Context, node: gs.Node, b: int) -> tuple[int, Merge] | None:
    """Find the input axis whose channels a head split puts on output axis ``b``."""
    for a, n in enumerate(ctx.shape(node.inputs[0].name) or ()):
        chosen = choose_split(ctx, node, a) if n > 1 else None
        if chosen is not None and chosen[0] == b:
            return a, chosen[1]
    return None


def _links(ctx: Context, node: gs.Node, space: Space) -> Link | None:
    """Link ``space`` through the node: a merge, or a head split (see ``heads``)."""
    x, y = node.inputs[0].name, node.outputs[0].name
    xs, ys = ctx.shape(x), ctx.shape(y)
    if xs is None or ys is None:
        return None
    split = node.op == "Reshape"
    if space.tensor == x:
        found = merge_target(xs, space.axis, ys)
        if found is not None:
            return Link(space, Space(y, found[0]), found[1])
        chosen = choose_split(ctx, node, space.axis) if split else None
        return None if chosen is None else Link(Space(y, chosen[0]), space, chosen[1])
    found = _merge_source(xs, ys, space.axis)
    if found is not None:
        return Link(Space(x, found[0]), space, found[1])
    chosen = _split_source(ctx, node, space.axis) if split else None
    return None if chosen is None else Link(space, Space(x, chosen[0]), chosen[1])


@register("Flatten", "Reshape")
class ReshapeRule(Rule):
    """Merges keep channels whole (Merge map); a head split ties each head to its block."""

    def couple(self, ctx: Context, node: gs.Node, space: Space) -> Coupling:
        """Link the channel axis to the output axis it is merged into (or split over)."""
        x, y = node.inputs[0].name, node.outputs[0].name
        if ctx.shape(x) is None or ctx.shape(y) is None or ctx.positions(
            node, space.tensor
        ) not in ([0], []):
            return barrier(f"{ctx.describe(node)} has tensors of unknown shape")
        link = _links(ctx, node, space)
        if link is None:
            return barrier(
                f"{ctx.describe(node)} splits the channels of '{x}' axis {space.axis} over "
                "several axes (heads/bins/shuffle)"
            )
        ends = {s.tensor: s.axis for s in (link.a, link.b)}
        problem = self._shape_problem(ctx, node, ends[x], ends[y])
        if problem:
            return barrier(problem)
        return Coupling(links=(link,), absorbs=True)

    def _shape_problem(self, ctx: Context, node: gs.Node, a: int, b: int) -> str | None:
        if node.op == "Flatten":
            return None
        entries = shape_elements(ctx, node.inputs[1].name)
        if entries is None or b >= len(entries):
            return f"{ctx.describe(node)} reshapes to a shape computed in a way not modelled"
        entry = entries[b]
        if isinstance(entry, int):
            ok = entry != 0 or (a == b and not bool(ctx.attr(node, "allowzero", 0)))
            if ok and (entry == -1 or entry_source(ctx, node, b) is not None):
                return None
        elif entry == ("dim", node.inputs[0].name, a) and a == b:
            return None
        return f"{ctx.describe(node)} has a shape that fixes the channel count of axis {b}"

    def shrink(self, ctx: Context, node: gs.Node, keep: Mapping[Space, np.ndarray]) -> None:
        """Rewrite the shape constant's entry for each shrunk output axis (not -1 or 0)."""
        if node.op == "Flatten":
            return
        for space, k in keep.items():
            source = entry_source(ctx, node, space.axis)
            if space.tensor != node.outputs[0].name or source is None:
                continue
            owner, i, at = source
            value = ctx.input_const(owner, i)
            if value is not None and value.reshape(-1)[at] > 0:
                value = value.copy()
                value.reshape(-1)[at] = len(k)
                ctx.set_input_const(owner, i, value)
