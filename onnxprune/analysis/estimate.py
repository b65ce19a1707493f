"""Network estimate: the exact cost of the model with every group shrunk to its effective rank."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from onnxprune import ir, metrics
from onnxprune.analysis.result import NetworkEstimate
from onnxprune.errors import OnnxPruneError
from onnxprune.model import Model
from onnxprune.surgery import apply_plan

log = logging.getLogger(__name__)


def network_estimate(model: Model, widths: Mapping[int, int]) -> NetworkEstimate:
    """MACs and parameters left when each group keeps ``widths[g]`` channels.

    The first ``widths[g]`` channels of each group are kept and the plan is applied with the
    real surgery, so the count is exact (which channels go does not change the cost).

    Args:
        model: the loaded model.
        widths: group id -> channels kept (groups absent or at full size are not pruned).

    Returns:
        The estimate; a surgery failure is reported in ``error``, not raised.

    """
    before = model.cost
    full = {g.id: g.size for g in model.groups.groups}
    plan = {gid: list(range(w)) for gid, w in widths.items() if w < full.get(gid, w)}
    kept = {gid: len(k) for gid, k in plan.items()}
    if not plan:
        return NetworkEstimate(before.macs, before.macs, before.params, before.params, kept)
    try:
        pruned = apply_plan(model, plan)
        shapes = ir.inferred_shapes(pruned, model.input_shapes)
        after = metrics.cost(pruned, shapes)
    except OnnxPruneError as e:
        log.warning("network estimate failed: %s", e)
        return NetworkEstimate(
            before.macs, before.macs, before.params, before.params, kept, error=str(e)
        )
    return NetworkEstimate(before.macs, after.macs, before.params, after.params, kept)
