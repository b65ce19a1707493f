"""Latency as the cost of the allocation: the model's predicted p50 as a function of the widths.

:class:`LatencyCost` has the interface of :class:`~onnxprune.pruning.cost_model.CostModel`
(``ids``, ``sizes``, ``total``, ``cost``, ``savings``), so the hierarchical, uniform and
global allocations spend milliseconds instead of MACs without knowing it (DESIGN.md §2.4).

Per prunable node, the kept shares of its input and output channel spaces are those of the
MACs model (affine in the group widths). Its latency at ``c_in -> c_out`` channels is
separable in the measured curves (``pruning/latency.py``)::

    t(c_in, c_out) = t_out(c_out) * t_in(c_in) / t_full

with each curve interpolated linearly between its measured widths (made non-decreasing from
the full width down, so that a smaller width never costs more: measurement noise must not
stop the greedy) and
extrapolated linearly below the smallest one. A depthwise node has only ``t_out``. Nodes
without a curve (grouped convs, MatMuls of two activations) cost their MACs at the median
ms-per-MAC of the measured ones. The rest of the model time (elementwise ops, pooling, SE
gates; its share of the profiled model time, ``LatencyTable.rest``) is spread over the other
nodes by the elements they read and write, each scaling with the kept share of its output's
channels. Everything is scaled so that the full widths cost exactly the measured model p50.
"""

from __future__ import annotations

import numpy as np

from onnxprune.channels.graph import ChannelGraph
from onnxprune.channels.types import Space
from onnxprune.pruning.cost_model import CostModel, owned_spaces
from onnxprune.pruning.latency import Curve, LatencyTable

FREE = ("Constant", "Shape", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity",
        "Cast", "Gather", "ConstantOfShape", "Range")
"""Ops that cost (almost) nothing at run time: views, shape arithmetic."""


class LatencyCost:
    """Predicted model latency (ms) as a function of the group widths (see the module doc).

    Args:
        cg: the model's channel graph.
        table: the measured latency table of the same model.

    """

    def __init__(self, cg: ChannelGraph, table: LatencyTable) -> None:
        macs = CostModel(cg, "macs", 1)
        self.ids, self.sizes = macs.ids, macs.sizes
        self.pin, self.pout, self.dw = macs.pin, macs.pout, macs.dw
        curves = [table.curves.get(n) for n in macs.nodes]
        per_mac = [c.full_ms / b for c, b in zip(curves, macs.base, strict=True) if c]
        rate = float(np.median(per_mac)) if per_mac else 0.0
        self.c_in, self.c_out, self.lut_in, self.lut_out = _luts(cg, macs, curves, rate)
        rows = np.arange(len(curves))
        self.full = self.lut_out[rows, self.c_out]  # every node at full widths
        self.norm = np.maximum(self.lut_in[rows, self.c_in], 1e-12)
        self.dw = np.array([c.depthwise if c else d for c, d in zip(curves, self.dw,
                                                                    strict=True)], bool)
        nodes_ms = float(self.full.sum())
        rest = min(max(table.rest, 0.0), 0.9)
        self.rest_base, self.rest_share = _rest(cg, set(macs.nodes) | set(table.fused),
                                                nodes_ms * rest / (1.0 - rest))
        self.scale = table.model_ms / max(nodes_ms + float(self.rest_base.sum()), 1e-12)
        self.total = table.model_ms

    def _nodes(self, fin: np.ndarray, fout: np.ndarray) -> np.ndarray:
        """Latency of every node (rows) at kept shares ``fin``/``fout`` (same leading shape)."""
        rows = np.arange(len(self.full)).reshape((-1,) + (1,) * (fin.ndim - 1))
        c_in, c_out = self.c_in.reshape(rows.shape), self.c_out.reshape(rows.shape)
        ci = np.clip(np.rint(fin * c_in), 0, c_in).astype(int)
        co = np.clip(np.rint(fout * c_out), 0, c_out).astype(int)
        t_out = self.lut_out[rows, co]
        t_in = self.lut_in[rows, ci]
        dense = t_out * t_in / self.norm.reshape(rows.shape)
        return np.where(self.dw.reshape(rows.shape), t_out, dense)

    def cost(self, widths: np.ndarray) -> float:
        """Predicted latency (ms) at ``widths`` (aligned with :attr:`ids`)."""
        removed = 1.0 - widths / self.sizes
        fin = 1.0 - self.pin @ removed
        fout = 1.0 - self.pout @ removed
        rest = self.rest_base @ (1.0 - self.rest_share @ removed)
        return self.scale * (float(self._nodes(fin, fout).sum()) + float(rest))

    def savings(self, widths: np.ndarray, new: np.ndarray) -> np.ndarray:
        """Latency saved by moving each group alone from ``widths`` to ``new`` (vector)."""
        removed = 1.0 - widths / self.sizes
        fin = 1.0 - self.pin @ removed
        fout = 1.0 - self.pout @ removed
        delta = (widths - new) / self.sizes
        now = self._nodes(fin, fout).sum()
        after = self._nodes(fin[:, None] - self.pin * delta[None, :],
                            fout[:, None] - self.pout * delta[None, :]).sum(0)
        rest_saved = (self.rest_base[:, None] * self.rest_share * delta[None, :]).sum(0)
        return self.scale * ((now - after) + rest_saved)


def _luts(cg: ChannelGraph, macs: CostModel, curves: list[Curve | None], rate: float
          ) -> tuple[np.ndarray, ...]:
    """Dense lookup tables: latency at every integer width, one row per node."""
    sizes = []
    for node_name, c in zip(macs.nodes, curves, strict=True):
        sizes.append((c.c_in, c.c_out) if c else _channels(cg, node_name))
    c_in = np.array([s[0] for s in sizes], dtype=np.int64)
    c_out = np.array([s[1] for s in sizes], dtype=np.int64)
    n = len(sizes)
    lut_in = np.zeros((n, int(c_in.max(initial=1)) + 1))
    lut_out = np.zeros((n, int(c_out.max(initial=1)) + 1))
    full = np.zeros(n)
    for r, (c, base) in enumerate(zip(curves, macs.base, strict=True)):
        if c is not None:
            full[r] = c.full_ms
            lut_out[r, : c.c_out + 1] = interpolate(c.outs, c.c_out)
            lut_in[r, : c.c_in + 1] = (interpolate(c.ins, c.c_in) if c.ins
                                       else np.full(c.c_in + 1, c.full_ms))
        else:  # not measured: MACs at the measured rate, bilinear
            full[r] = max(base * rate, 1e-9)
            lut_out[r, : c_out[r] + 1] = full[r] * np.arange(c_out[r] + 1) / max(c_out[r], 1)
            lut_in[r, : c_in[r] + 1] = full[r] * np.arange(c_in[r] + 1) / max(c_in[r], 1)
    return c_in, c_out, lut_in, lut_out


def interpolate(points: tuple[tuple[int, float], ...], size: int) -> np.ndarray:
    """Latency at widths 0..size from measured (width, ms) points (see the module doc)."""
    xs = np.array([p[0] for p in points], dtype=np.float64)
    ys = np.array([p[1] for p in points], dtype=np.float64)
    ys = np.minimum.accumulate(ys[::-1])[::-1]  # anchored at the full width
    grid = np.arange(size + 1, dtype=np.float64)
    out = np.interp(grid, xs, ys)
    if len(xs) > 1:  # below the smallest measured width: continue the first segment
        slope = (ys[1] - ys[0]) / (xs[1] - xs[0])
        low = grid < xs[0]
        out[low] = np.maximum(ys[0] - slope * (xs[0] - grid[low]), 0.0)
    else:
        out = ys[0] * grid / max(xs[0], 1.0)
    return out


def _channels(cg: ChannelGraph, name: str) -> tuple[int, int]:
    node = next(n for n in cg.ctx.graph.nodes if n.name == name)
    xs = cg.ctx.shape(node.inputs[0].name) or (1, 1)
    ys = cg.ctx.shape(node.outputs[0].name) or (1, 1)
    axis = 1 if node.op in ("Conv", "ConvTranspose") else -1
    return int(xs[axis] or 1), int(ys[axis] or 1)


def _rest(cg: ChannelGraph, skip: set[str], rest_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """Per other node: its share of ``rest_ms`` and the group shares of its output channels."""
    owned = owned_spaces(cg)
    n_groups = len(cg.groups)
    weights, shares = [], []
    for node in cg.ctx.graph.nodes:
        if node.name in skip or node.op in FREE or not node.outputs:
            continue
        tensors = [t.name for t in [*node.inputs, *node.outputs]
                   if t.name and cg.ctx.const(t.name) is None]
        elems = sum(int(np.prod(s)) for s in map(cg.ctx.shape, tensors) if s)
        if elems == 0:
            continue
        out = node.outputs[0].name
        shape = cg.ctx.shape(out) or ()
        share = np.zeros(n_groups)
        for axis, dim in enumerate(shape):
            for col, count in owned.get(Space(out, axis), ()):
                share[col] += count / dim if dim else 0.0
        weights.append(float(elems))
        shares.append(share)
    w = np.array(weights)
    base = rest_ms * w / w.sum() if w.size and w.sum() > 0 else np.zeros(0)
    return base, np.array(shares).reshape(len(weights), n_groups)
