"""Turn a group's accumulated statistics into its :class:`GroupAnalysis`."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from onnxprune.analysis.collect import GroupStats
from onnxprune.analysis.result import GroupAnalysis
from onnxprune.analysis.spectrum import spectrum
from onnxprune.channels.graph import Group

log = logging.getLogger(__name__)


def summarise(
    group: Group,
    stats: GroupStats | None,
    node_macs: Mapping[str, int],
    total_macs: int,
    *,
    energy_eps: float,
    rel_tol: float,
) -> GroupAnalysis:
    """Spectrum, effective ranks and status of one group.

    Args:
        group: the channel group.
        stats: what the pass gathered for it (``None`` for groups that were not analysed).
        node_macs: MACs per node of the original model.
        total_macs: the model's MACs.
        energy_eps: ε of the energy rank.
        rel_tol: τ of the threshold rank.

    Returns:
        The group's analysis.

    """
    share = sum(node_macs.get(n, 0) for n in group.nodes) / max(1, total_macs)
    base = GroupAnalysis(group.id, group.root_nodes, group.size, "blocked", mac_share=share)
    if group.barriers:
        return replace(base, reason=group.barriers[0])
    if stats is None:
        return replace(base, status="single-channel")
    fallback = not stats.consumers
    if fallback:
        gram, rows, capacity = stats.taylor.gram, stats.taylor.rows, stats.taylor.rows
    else:
        gram = stats.consumers[0].gram.copy()
        for c in stats.consumers[1:]:  # a running sum: stacking would hold every Gram twice
            gram += c.gram
        rows = sum(c.rows for c in stats.consumers)
        capacity = sum(c.capacity for c in stats.consumers)
    spec = spectrum(gram, energy_eps=energy_eps, rel_tol=rel_tol)
    status, reason = _status(group, spec.empty, fallback, capacity, stats.skipped)
    ranked = not spec.empty  # no gradient at all says nothing about redundancy: no rank
    return replace(
        base, status=status, reason=reason, rows=rows, capacity=capacity,
        rank=spec.rank if ranked else None,
        rank_threshold=spec.rank_threshold if ranked else None,
        max_rate=spec.max_rate if ranked else None, fallback=fallback,
        singular_values=spec.singular_values, gram=gram, consumers=stats.consumers,
        activation_mean=_mean(stats), taylor=stats.taylor.abs_mean,
        taylor_gram=stats.taylor.gram,
    )


def _status(
    group: Group, empty: bool, fallback: bool, capacity: int, skipped: tuple[str, ...]
) -> tuple[str, str]:
    if empty:
        return "no-signal", "every gradient of the group is zero on this data"
    if fallback:
        why = f"consumers not usable: {'; '.join(skipped)}" if skipped else "no weight consumer"
        return "taylor-fallback", why
    if capacity < 2 * group.size:
        return "data-limited", f"rank capacity {capacity} < 2·{group.size}; add samples"
    return "ok", "; ".join(f"skipped {s}" for s in skipped)


def warn(groups: Sequence[GroupAnalysis]) -> None:
    """Log one warning per kind of limited result (not one per group)."""
    for status, what in (
        ("data-limited", "the data can show a rank below 2·C, so the rank is capped by the "
         "data, not by redundancy; use more samples"),
        ("taylor-fallback", "no usable weight consumer; ranks come from gate gradients"),
        ("no-signal", "every gradient is zero on the data; no rank is claimed"),
    ):
        ids = [g.id for g in groups if g.status == status]
        if ids:
            log.warning("group(s) %s: %s", ", ".join(map(str, ids)), what)


def _mean(stats: GroupStats) -> np.ndarray | None:
    """Each channel's input mean averaged over its consumers and owned indices."""
    if not stats.consumers:
        return None
    return np.mean([c.mean.mean(axis=1) for c in stats.consumers], axis=0)
