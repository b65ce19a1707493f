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


def _shape_elements(ctx: Context, name: str) -> list[object] | None:
    """Symbolic entries of a run-time shape tensor: ints, ("dim", tensor, axis), or None."""
    value = ctx.const(name)
    if value is not None:
        return [int(v) for v in value.reshape(-1)]
    node = ctx.producer(name)
    if node is None:
        return None
    if node.op == "Shape":
        rank = len(ctx.shape(node.inputs[0].name) or ())
        start = int(ctx.attr(node, "start", 0)) % max(rank, 1)
        end = int(ctx.attr(node, "end", rank))
        end = end + rank if end < 0 else min(end, rank)
        return [("dim", node.inputs[0].name, i) for i in range(start, end)]
    if node.op in ("Cast", "Identity", "Unsqueeze", "Squeeze"):
        return _shape_elements(ctx, node.inputs[0].name)
    if node.op == "Concat":
        parts = [_shape_elements(ctx, t.name) for t in node.inputs]
        return None if any(p is None for p in parts) else [e for p in parts for e in p or []]
    if node.op == "Gather":
        data, idx = _shape_elements(ctx, node.inputs[0].name), ctx.input_const(node, 1)
        if data is None or idx is None:
            return None
        return [data[int(i)] for i in idx.reshape(-1)]
    if node.op == "Slice":
        data, picked = _shape_elements(ctx, node.inputs[0].name), slice_indices(ctx, node)
        return None if data is None or picked is None else [data[i] for i in picked]
    return None


def slice_indices(ctx: Context, node: gs.Node) -> list[int] | None:
    """Return the positions a Slice (opset 10+, constant arguments) takes from a 1-D input."""
    shape = ctx.shape(node.inputs[0].name)
    args = [ctx.input_const(node, i) for i in range(1, 5)]
    if shape is None or len(shape) != 1 or args[0] is None or args[1] is None:
        return None
    if any(ctx.input_name(node, i) is not None and args[i - 1] is None for i in (3, 4)):
        return None
    steps = 1 if args[3] is None else int(args[3].reshape(-1)[0])
    start, end = int(args[0].reshape(-1)[0]), int(args[1].reshape(-1)[0])
    return list(range(shape[0]))[slice(start, end, steps)]


def _entry_source(ctx: Context, node: gs.Node, b: int) -> tuple[gs.Node, int, int] | None:
    """Locate entry ``b`` of a Reshape's target shape as an element of a constant.

    Returns (node, input index, flat element index): the Reshape's own shape constant, or a
    constant input of the ``Concat`` that builds the shape (as the legacy exporter writes
    ``view(b, t, heads, head_dim)``) when nothing else reads that Concat's value.
    """
    name = node.inputs[1].name
    if ctx.const(name) is not None:
        return node, 1, b
    cat = ctx.producer(name)
    if cat is None or cat.op != "Concat" or len(ctx.consumers(name)) != 1 or name in ctx.outputs:
        return None
    offset = 0
    for i, part in enumerate(cat.inputs):
        entries = _shape_elements(ctx, part.name)
        if entries is None:
            return None
        if b < offset + len(entries):
            return (cat, i, b - offset) if ctx.const(part.name) is not None else None
        offset += len(entries)
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
        entries = _shape_elements(ctx, node.inputs[1].name)
        if entries is None or b >= len(entries):
            return f"{ctx.describe(node)} reshapes to a shape computed in a way not modelled"
        entry = entries[b]
        if isinstance(entry, int):
            ok = entry != 0 or (a == b and not bool(ctx.attr(node, "allowzero", 0)))
            if ok and (entry == -1 or _entry_source(ctx, node, b) is not None):
                return None
        elif entry == ("dim", node.inputs[0].name, a) and a == b:
            return None
        return f"{ctx.describe(node)} has a shape that fixes the channel count of axis {b}"

    def shrink(self, ctx: Context, node: gs.Node, keep: Mapping[Space, np.ndarray]) -> None:
        """Rewrite the shape constant's entry for each shrunk output axis (not -1 or 0)."""
        if node.op == "Flatten":
            return
        for space, k in keep.items():
            source = _entry_source(ctx, node, space.axis)
            if space.tensor != node.outputs[0].name or source is None:
                continue
            owner, i, at = source
            value = ctx.input_const(owner, i)
            if value is not None and value.reshape(-1)[at] > 0:
                value = value.copy()
                value.reshape(-1)[at] = len(k)
                ctx.set_input_const(owner, i, value)
