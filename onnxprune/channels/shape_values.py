"""Run-time shape values as rules see them: what each entry is, and where a constant one lives.

A Reshape's target shape may be a constant or computed at run time (``Shape`` → ``Gather`` /
``Slice`` → ``Concat`` with constants, as exporters write ``view(b, t, heads, head_dim)``).
The rules need, per entry, whether it is a number, a copy of an input dim, or unknown; and to
rewrite a head or channel count, the constant element that holds it.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from onnxprune.channels.context import Context


def shape_elements(ctx: Context, name: str) -> list[object] | None:
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
        return shape_elements(ctx, node.inputs[0].name)
    if node.op == "Concat":
        parts = [shape_elements(ctx, t.name) for t in node.inputs]
        return None if any(p is None for p in parts) else [e for p in parts for e in p or []]
    if node.op == "Gather":
        data, idx = shape_elements(ctx, node.inputs[0].name), ctx.input_const(node, 1)
        if data is None or idx is None:
            return None
        return [data[int(i)] for i in idx.reshape(-1)]
    if node.op == "Slice":
        data, picked = shape_elements(ctx, node.inputs[0].name), slice_indices(ctx, node)
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


def entry_source(ctx: Context, node: gs.Node, b: int) -> tuple[gs.Node, int, int] | None:
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
        entries = shape_elements(ctx, part.name)
        if entries is None:
            return None
        if b < offset + len(entries):
            return (cat, i, b - offset) if ctx.const(part.name) is not None else None
        offset += len(entries)
    return None
