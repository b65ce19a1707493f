"""The joint intercept as a bias: from the fitted constants to a change of the op's bias.

Each folded channel ``c`` carries a constant ``β_c``; the consumer then adds
``Σ_c β_c · Σ_taps W[:, c]`` to every output unit. A strided ConvTranspose sends different
taps to different output phases while its bias is one value per output channel, so the
change is the mean over the phases, exact only when they agree. The change enters the bias
the way the op's rule says (``WeightOp.fold_bias``: Conv's B created when absent, Gemm's C,
the Add after a MatMul, the W half of a recurrent B).
"""

from __future__ import annotations

import math

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.channels.graph import ChannelGraph
from onnxprune.channels.rules import weight_op
from onnxprune.opspec import GATES as RECURRENT_GATES


def intercept_bias(cg: ChannelGraph, node: gs.Node, w_axis: int, w: np.ndarray,
                   idx: np.ndarray, channels: np.ndarray, beta: np.ndarray
                   ) -> tuple[np.ndarray, str]:
    """Bias change Σ_c β_c·(taps of W[:, c]) and whether it is exact.

    Args:
        cg: the channel graph (for attributes).
        node: the consumer.
        w_axis: the weight's input axis.
        w: the consumer's (original) weight.
        idx: ``[C, m]`` input indices owned by each channel.
        channels: the channels whose constants ``beta`` are folded into the bias.
        beta: one constant per channel in ``channels``.

    Returns:
        The bias change per output unit and ``exact``/``approximate``.

    """
    wm = np.moveaxis(w.astype(np.float64), w_axis, 0)  # [in, out, taps...]
    per_tap = sum(np.tensordot(beta, wm[idx[channels, j]], axes=(0, 0))
                  for j in range(idx.shape[1]))  # [out, taps...]
    per_tap = np.asarray(per_tap, dtype=np.float64)
    if node.op in RECURRENT_GATES:  # [directions, gates·hidden]: the W half of B
        return per_tap, "exact"
    if node.op != "ConvTranspose" or per_tap.ndim < 2:
        return per_tap.reshape(per_tap.shape[0], -1).sum(1), "exact"
    return _phase_mean(cg, node, per_tap, float(np.abs(w).max()))


def _phase_mean(cg: ChannelGraph, node: gs.Node, per_tap: np.ndarray, w_max: float
                ) -> tuple[np.ndarray, str]:
    """ConvTranspose: output pixels of each phase receive their own taps; mean over phases."""
    kernel = per_tap.shape[1:]
    nd = len(kernel)
    strides = [int(v) for v in cg.ctx.attr(node, "strides", [1] * nd)]
    if math.prod(strides) == 1:
        return per_tap.reshape(per_tap.shape[0], -1).sum(1), "exact"
    dil = [int(v) for v in cg.ctx.attr(node, "dilations", [1] * nd)]
    pads = [int(v) for v in cg.ctx.attr(node, "pads", [0] * 2 * nd)]
    sums = np.zeros((per_tap.shape[0], *strides))
    for tap in np.ndindex(*kernel):
        phase = tuple((t * d - p) % s for t, d, p, s in zip(tap, dil, pads[:nd], strides,
                                                           strict=True))
        sums[(slice(None), *phase)] += per_tap[(slice(None), *tap)]
    flat = sums.reshape(sums.shape[0], -1)
    spread = float(np.max(flat.max(1) - flat.min(1))) if flat.size else 0.0
    exact = spread <= 1e-6 * max(w_max, 1e-30)  # phases agree up to a fit's rounding
    return flat.mean(1), "exact" if exact else "approximate"


def fold_into_bias(cg: ChannelGraph, node: gs.Node, contrib: np.ndarray, dtype: np.dtype
                   ) -> bool:
    """Fold ``contrib`` into the node's bias the way its rule says (False where it cannot)."""
    wop = weight_op(node.op, node.domain)
    return wop is not None and wop.add_bias(cg.ctx, node, contrib, dtype)
