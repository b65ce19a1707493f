"""Flatten and Reshape: a channel axis may be merged with its neighbours, never split.

Channel c of input axis a becomes the block of output indices ``o*C*J + c*J + j`` of the axis
it is merged into (``Merge(inner=J, outer=Q)``): Flatten→Gemm gives each channel H·W features.
An input axis that is split into several output axes (heads, distribution bins, channel
shuffle) blocks: removing one channel would not remove a whole slice of every output axis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.channels.context import Context
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
        return _sliced_elements(ctx, node)
    return None


def _sliced_elements(ctx: Context, node: gs.Node) -> list[object] | None:
    """A Slice of a 1-D shape tensor with constant bounds (the legacy exporter's flatten)."""
    data = _shape_elements(ctx, node.inputs[0].name)
    if ctx.opset < 10:
        bounds = [ctx.attr(node, k) for k in ("starts", "ends", "axes")] + [[1]]
    else:
        bounds = [ctx.input_const(node, i) if ctx.input_name(node, i) else None
                  for i in range(1, 5)]
    starts, ends, axes, steps = (
        None if b is None else [int(v) for v in np.ravel(b)] for b in bounds
    )
    if data is None or starts is None or ends is None or len(starts) != 1:
        return None
    if (axes or [0])[0] not in (0, -1) or (steps or [1])[0] == 0:
        return None
    # ONNX's clamping of 1-D slice bounds is Python's (both signs of step).
    return data[starts[0] : ends[0] : (steps or [1])[0]]


@register("Flatten", "Reshape")
class ReshapeRule(Rule):
    """Merges keep channels whole (Merge map); splits of a channel axis block."""

    def couple(self, ctx: Context, node: gs.Node, space: Space) -> Coupling:
        """Link the channel axis to the output axis it is merged into."""
        x, y = node.inputs[0].name, node.outputs[0].name
        xs, ys = ctx.shape(x), ctx.shape(y)
        if xs is None or ys is None or ctx.positions(node, space.tensor) not in ([0], []):
            return barrier(f"{ctx.describe(node)} has tensors of unknown shape")
        if space.tensor == x:
            found = merge_target(xs, space.axis, ys)
            a, b = space.axis, found[0] if found else -1
        else:
            found = _merge_source(xs, ys, space.axis)
            a, b = (found[0] if found else -1), space.axis
        if found is None:
            return barrier(
                f"{ctx.describe(node)} splits the channels of '{x}' axis {space.axis} over "
                "several axes (heads/bins/shuffle)"
            )
        problem = self._shape_problem(ctx, node, a, b)
        if problem:
            return barrier(problem)
        return Coupling(links=(Link(Space(x, a), Space(y, b), found[1]),), absorbs=True)

    def _shape_problem(self, ctx: Context, node: gs.Node, a: int, b: int) -> str | None:
        if node.op == "Flatten":
            return None
        entries = _shape_elements(ctx, node.inputs[1].name)
        if entries is None or b >= len(entries):
            return f"{ctx.describe(node)} reshapes to a shape computed in a way not modelled"
        entry = entries[b]
        if isinstance(entry, int):
            ok = entry != 0 or (a == b and not bool(ctx.attr(node, "allowzero", 0)))
            is_const = ctx.const(node.inputs[1].name) is not None
            if ok and (is_const or entry == -1):
                return None
        elif entry == ("dim", node.inputs[0].name, a) and a == b:
            return None
        return f"{ctx.describe(node)} has a shape that fixes the channel count of axis {b}"

    def shrink(self, ctx: Context, node: gs.Node, keep: Mapping[Space, np.ndarray]) -> None:
        """Rewrite the constant shape's entry for each shrunk output axis (not -1 or 0)."""
        if node.op == "Flatten":
            return
        shape = ctx.input_const(node, 1)
        if shape is None:
            return
        shape = shape.copy()
        for space, k in keep.items():
            if space.tensor == node.outputs[0].name and shape[space.axis] > 0:
                shape[space.axis] = len(k)
        ctx.set_input_const(node, 1, shape)
