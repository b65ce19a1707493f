"""Attention heads: which split of a channel axis by a Reshape is a head (or Q/K/V) axis.

A Reshape that splits a channel axis C into several axes (``[B, T, E] -> [B, T, H, D]``) ties
each index of one output axis to a block of channels: head h owns channels ``h*D .. h*D+D-1``
(``Merge(inner=D)`` from the head axis onto C). Any such axis could carry the channels, but only
one may: removing channels must remove whole slices of exactly one output axis. Which one is
decided by what happens to each axis downstream:

- an axis that reaches a batch axis of a MatMul of two run-time tensors is a head axis
  (``Q·Kᵀ`` and ``softmax·V`` keep heads apart), so it carries the channels;
- a fused QKV projection is split ``[.., 3E] -> [.., 3, E]`` and its parts are picked with a
  constant Gather along the ``3`` axis; then the other axis carries the channels (index j of
  Q, K and V together) and the head split happens at the next Reshape.

Any other split (channel shuffle, YOLO distribution bins) stays a barrier.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.channels.context import Context
from onnxprune.channels.index_map import Merge
from onnxprune.channels.rules import rule_for
from onnxprune.channels.rules.base import AxisRule

_DEPTH = 8  # ops followed downstream when deciding an axis's fate
_MOVERS = ("Transpose", "Unsqueeze", "Squeeze")
_PASS = ("Mul", "Div", "Add", "Sub", "Cast", "Identity")


def _prod(xs: Sequence[int]) -> int:
    return int(np.prod(xs, dtype=np.int64)) if len(xs) else 1


def _chunk(xs: Sequence[int], a: int, ys: Sequence[int]) -> tuple[int, int, int] | None:
    """End of the input chunk holding axis ``a`` and the output chunk's bounds [j0, j1).

    A chunk is a run of axes with the same element count on both sides (row-major reshape).
    """
    starts = {_prod(ys[:k]): k for k in range(len(ys) + 1)}
    i0 = max(k for k in range(a + 1) if _prod(xs[:k]) in starts)
    i1 = min(k for k in range(a + 1, len(xs) + 1) if _prod(xs[:k]) in starts)
    j0 = min(k for k in range(len(ys) + 1) if _prod(ys[:k]) == _prod(xs[:i0]))
    j1 = max(k for k in range(len(ys) + 1) if _prod(ys[:k]) == _prod(xs[:i1]))
    return i1, j0, j1


def split_candidates(xs: Sequence[int], a: int, ys: Sequence[int]) -> list[tuple[int, Merge]]:
    """Output axes whose index is a function of the channel index of input axis ``a``.

    Returns (b, map) pairs, outermost first; ``map`` ties axis b (source) to axis a (target):
    channel c belongs to index ``(c // inner) % ys[b]`` of axis b.
    """
    found = _chunk(xs, a, ys)
    if found is None:
        return []
    i1, j0, j1 = found
    s, c = _prod(xs[a + 1 : i1]), int(xs[a])
    out = []
    for b in range(j0, j1):
        n, stride = int(ys[b]), _prod(ys[b + 1 : j1])
        if n > 1 and n < c and stride % s == 0 and (c * s) % (stride * n) == 0:
            out.append((b, Merge(inner=stride // s, outer=(c * s) // (stride * n))))
    return out


def choose_split(ctx: Context, node: gs.Node, a: int) -> tuple[int, Merge] | None:
    """Pick the output axis of Reshape ``node`` that carries axis ``a``'s channels (or None)."""
    xs, ys = ctx.shape(node.inputs[0].name), ctx.shape(node.outputs[0].name)
    if xs is None or ys is None:
        return None
    cands = split_candidates(xs, a, ys)
    y = node.outputs[0].name
    fates = [axis_fate(ctx, y, b, _DEPTH) for b, _ in cands]
    heads = [c for c, f in zip(cands, fates, strict=True) if f == "heads"]
    if heads:
        return heads[0]
    if len(cands) == 2 and fates[0] == "selected" and fates[1] != "selected":
        return cands[1]
    return None


def axis_fate(ctx: Context, tensor: str, axis: int, depth: int) -> str:
    """``heads``, ``selected`` (constant Gather along it) or ``other``: where an axis goes."""
    if depth <= 0:
        return "other"
    # Reading the shape (the legacy exporter's 1/sqrt(head_dim)) says nothing about the axis.
    readers = [n for n in ctx.consumers(tensor) if n.op != "Shape"]
    fates = {_node_fate(ctx, n, tensor, axis, depth) for n in readers}
    for fate in ("heads", "selected"):
        if fates == {fate}:
            return fate
    return "other"


def _node_fate(ctx: Context, node: gs.Node, tensor: str, axis: int, depth: int) -> str:
    ys = ctx.shape(node.outputs[0].name) if node.outputs else None
    xs = ctx.shape(tensor)
    if ys is None or xs is None:
        return "other"
    if node.op == "MatMul" and ctx.const(node.inputs[1].name) is None:
        return "heads" if axis < len(xs) - 2 else "other"
    if node.op == "Gather" and ctx.input_const(node, 1) is not None:
        if int(ctx.attr(node, "axis", 0)) % len(xs) == axis:
            return "selected"
    nxt = _follow(ctx, node, tensor, axis, xs, ys)
    return "other" if nxt is None else axis_fate(ctx, node.outputs[0].name, nxt, depth - 1)


def _follow(
    ctx: Context, node: gs.Node, tensor: str, axis: int, xs: Sequence[int], ys: Sequence[int]
) -> int | None:
    """Return the output axis that input axis ``axis`` becomes (ops that keep it whole)."""
    if node.op in _MOVERS + ("Gather",) and ctx.positions(node, tensor) == [0]:
        rule = rule_for(node.op)
        amap = rule.axis_map(ctx, node) if isinstance(rule, AxisRule) else "no map"
        return None if isinstance(amap, str) else amap.get(axis)
    if node.op == "Slice" and ctx.positions(node, tensor) == [0]:
        # Paddle picks Q, K and V with Slices along another axis; this one passes whole.
        return axis if len(ys) == len(xs) and ys[axis] == xs[axis] else None
    if node.op in _PASS:
        out = axis + len(ys) - len(xs)
        return out if 0 <= out < len(ys) and ys[out] == xs[axis] else None
    if node.op == "Reshape" and ctx.positions(node, tensor) == [0]:
        same = [b for b in range(len(ys)) if _prod(ys[:b]) == _prod(xs[:axis])
                and ys[b] == xs[axis]]  # fmt: skip
        return same[0] if same else None
    return None
