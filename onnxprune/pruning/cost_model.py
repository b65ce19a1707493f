"""The bilinear cost model: MACs or weight parameters as a function of the group widths.

Every Conv/ConvTranspose/Gemm/MatMul node (every op whose rule gives cost-model ``axes``) costs
``base · f_in · f_out`` (MACs or weight parameters), where ``f_in``/``f_out`` are the kept
shares of the indices of its input and output channel spaces. A group that keeps ``w`` of its
``C`` channels keeps ``w/C`` of the indices it owns in every space it reaches (a Flatten
feeding a Gemm: ``w·H·W`` features), so the shares are affine in the widths and the cost is
bilinear — exact for MACs whenever the spatial sizes do not change (pruning never changes
them). A depthwise conv reads one input channel per output channel: its cost scales with
``f_out`` only. Parameters outside these weights (biases, norms) are left out of the model;
the caller checks the real cost after surgery.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from onnxprune.channels.graph import ChannelGraph
from onnxprune.channels.rules import weight_op
from onnxprune.channels.rules.base import WeightOp
from onnxprune.channels.types import Space


class CostModel:
    """Bilinear cost of the model as a function of group widths (see the module doc).

    Args:
        cg: the model's channel graph.
        metric: ``macs`` or ``params``.
        total: the model's total of that metric (parameters outside the modelled weights
            count as a constant).

    """

    def __init__(self, cg: ChannelGraph, metric: str, total: int) -> None:
        self.ids = [g.id for g in cg.groups]
        self.sizes = np.array([g.size for g in cg.groups], dtype=np.float64)
        owned = owned_spaces(cg)
        rows = []
        self.nodes: list[str] = []  # the node of each row (the latency model prices them)
        for node in cg.ctx.graph.nodes:
            wop = weight_op(node.op, node.domain)  # ops whose rule gives cost-model axes
            if wop is None or wop.axes is None or len(node.inputs) < 2 or not node.outputs:
                continue
            base = self._base(cg, node, wop, metric)
            if base <= 0:
                continue
            pin, pout = self._shares(cg, node, wop, owned, len(self.ids))
            depthwise = _depthwise(cg, node, wop)
            rows.append((base, pin, pout, depthwise))
            self.nodes.append(node.name)
        n = len(rows)
        self.base = np.array([r[0] for r in rows], dtype=np.float64)
        self.pin = np.array([r[1] for r in rows]).reshape(n, len(self.ids))
        self.pout = np.array([r[2] for r in rows]).reshape(n, len(self.ids))
        self.dw = np.array([r[3] for r in rows], dtype=bool)
        self.modelled = float(self.base.sum())
        self.total = float(total)
        self.fixed = self.total - self.modelled  # cost the widths do not change

    @staticmethod
    def _base(cg: ChannelGraph, node, wop: WeightOp, metric: str) -> float:  # type: ignore[no-untyped-def]
        if metric == "macs":
            # Only the MACs that scale with the channels (a recurrent op's input projection;
            # its recurrence over the unpruned hidden size stays in the fixed cost).
            shapes = [cg.ctx.shape(t.name) or _const_shape(cg, t.name) for t in node.inputs]
            return float(wop.shrinking_macs(node.attrs, shapes,
                                            cg.ctx.shape(node.outputs[0].name)))
        names = [node.inputs[i].name for i in wop.cost_inputs if i < len(node.inputs)]
        return float(sum(c.size for c in map(cg.ctx.const, names) if c is not None))

    @staticmethod
    def _shares(cg: ChannelGraph, node, wop: WeightOp, owned, n_groups: int):  # type: ignore[no-untyped-def]
        x, y = node.inputs[0].name, node.outputs[0].name
        xs, ys = cg.ctx.shape(x), cg.ctx.shape(y)
        if wop.batched and cg.ctx.const(node.inputs[1].name) is None and ys:
            # Attention (Q·Kᵀ, softmax·V): its MACs shrink with the heads on a batch axis.
            share = np.zeros(n_groups)
            for axis, n in enumerate(ys):
                for col, count in owned.get(Space(y, axis), ()):
                    share[col] = max(share[col], count / n)
            return np.zeros(n_groups), share
        ax_in, ax_out = wop.axes(node.attrs, xs, ys) if wop.axes else (-1, -1)
        out = []
        for tensor, axis, shape in ((x, ax_in, xs), (y, ax_out, ys)):
            share = np.zeros(n_groups)
            if shape and 0 <= axis < len(shape) and shape[axis]:
                for col, count in owned.get(Space(tensor, axis), ()):
                    share[col] = count / shape[axis]
            out.append(share)
        return out[0], out[1]

    def cost(self, widths: np.ndarray) -> float:
        """Cost at ``widths`` (aligned with :attr:`ids`)."""
        removed = 1.0 - widths / self.sizes
        fin = 1.0 - self.pin @ removed
        fout = 1.0 - self.pout @ removed
        per = self.base * np.where(self.dw, fout, fin * fout)
        return self.fixed + float(per.sum())

    def savings(self, widths: np.ndarray, new: np.ndarray) -> np.ndarray:
        """Cost saved by moving each group alone from ``widths`` to ``new`` (vector)."""
        removed = 1.0 - widths / self.sizes
        fin = 1.0 - self.pin @ removed
        fout = 1.0 - self.pout @ removed
        delta = (widths - new) / self.sizes  # per group
        fin2 = fin[:, None] - self.pin * delta[None, :]
        fout2 = fout[:, None] - self.pout * delta[None, :]
        now = np.where(self.dw, fout, fin * fout)
        after = np.where(self.dw[:, None], fout2, fin2 * fout2)
        return (self.base[:, None] * (now[:, None] - after)).sum(0)


def owned_spaces(cg: ChannelGraph) -> dict[Space, list[tuple[int, int]]]:
    """Map every channel space to the (group column, channel count) pairs that own it."""
    owned: dict[Space, list[tuple[int, int]]] = {}
    for col, g in enumerate(cg.groups):
        for space, owner in g.members.items():
            owned.setdefault(space, []).append((col, int((owner >= 0).sum())))
    return owned


def touched(cg: ChannelGraph) -> np.ndarray:
    """Activation elements each group's channels carry, model-wide (aligned with the groups).

    A latency proxy that needs no measuring: a channel of a 160x160 stem map moves as many
    elements as 64 channels at 20x20 for far fewer MACs, and such memory-bound layers do not
    get faster in proportion to the MACs they lose.
    """
    out = np.zeros(len(cg.groups))
    for col, g in enumerate(cg.groups):
        for space, owner in g.members.items():
            if cg.ctx.const(space.tensor) is not None:
                continue
            shape = cg.ctx.shape(space.tensor)
            if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
                continue
            out[col] += float(np.prod(shape)) * int((owner >= 0).sum()) / shape[space.axis]
    return out


class Pricing(Protocol):
    """What an allocation needs of a cost.

    :class:`CostModel` (MACs, params) or the measured latency
    (``pruning/latency_cost.LatencyCost``).
    """

    ids: list[int]
    sizes: np.ndarray
    total: float

    def cost(self, widths: np.ndarray) -> float:
        """Cost at ``widths`` (aligned with ``ids``)."""
        ...

    def savings(self, widths: np.ndarray, new: np.ndarray) -> np.ndarray:
        """Cost saved by moving each group alone from ``widths`` to ``new``."""
        ...


def _const_shape(cg: ChannelGraph, name: str) -> tuple[int, ...] | None:
    c = cg.ctx.const(name)
    return None if c is None else tuple(c.shape)


def _depthwise(cg: ChannelGraph, node, wop: WeightOp) -> bool:  # type: ignore[no-untyped-def]
    w = cg.ctx.const(node.inputs[1].name)
    return wop.depthwise is not None and w is not None and wop.depthwise(node.attrs, w.shape)
