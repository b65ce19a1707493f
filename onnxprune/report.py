"""``inspect``: the channel groups of a model, their share of MACs and what blocks them."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from onnxprune.channels.graph import ChannelGraph, Group
from onnxprune.model import Model


@dataclass(frozen=True)
class GroupReport:
    """One row of the inspect table."""

    id: int
    channels: int
    roots: tuple[str, ...]
    members: int
    consumers: int
    macs: int
    macs_share: float
    prunable: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class InspectReport:
    """All groups of a model and the share of its MACs that pruning can reach."""

    groups: tuple[GroupReport, ...]
    total_macs: int
    prunable_macs: int
    params: int

    @property
    def prunable_share(self) -> float:
        """Share of the model's MACs in nodes touched by a prunable group."""
        return self.prunable_macs / self.total_macs if self.total_macs else 0.0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {**asdict(self), "prunable_share": self.prunable_share}

    def to_json(self) -> str:
        """JSON text."""
        return json.dumps(self.to_dict(), indent=2)

    def table(self) -> str:
        """Aligned text table with a summary line."""
        head = f"{'group':>5} {'ch':>5} {'members':>7} {'MACs%':>6}  {'status':<9} roots / reason"
        lines = [head, "-" * len(head)]
        for g in self.groups:
            status = "prunable" if g.prunable else "barrier"
            roots = ", ".join(g.roots[:3]) + (" …" if len(g.roots) > 3 else "")
            why = "" if g.prunable else f"  [{g.reasons[0] if g.reasons else 'single channel'}]"
            lines.append(
                f"{g.id:>5} {g.channels:>5} {g.members:>7} {100 * g.macs_share:>6.1f}  "
                f"{status:<9} {roots}{why}"
            )
        n_ok = sum(g.prunable for g in self.groups)
        lines.append(
            f"{n_ok}/{len(self.groups)} groups prunable; {100 * self.prunable_share:.1f}% of "
            f"{self.total_macs / 1e6:.2f} MMACs in prunable groups"
        )
        return "\n".join(lines)


def group_macs(cg: ChannelGraph, group: Group, node_macs: dict[str, int]) -> int:
    """MACs of the weight-bearing nodes whose channels belong to the group."""
    return sum(node_macs.get(n, 0) for n in group.nodes)


def inspect(model: Model) -> InspectReport:
    """Describe every channel group of ``model``.

    Args:
        model: a loaded model (``onnxprune.load``).

    Returns:
        The groups with channels, roots, MACs share, status and barrier reasons.

    """
    cg = model.groups
    cost = model.cost
    total = max(cost.macs, 1)
    rows, reachable = [], set()
    for g in cg.groups:
        macs = group_macs(cg, g, dict(cost.node_macs))
        if g.prunable:
            reachable.update(n for n in g.nodes if cost.node_macs.get(n))
        rows.append(
            GroupReport(
                id=g.id, channels=g.size, roots=g.root_nodes, members=len(g.members),
                consumers=len(g.consumers), macs=macs, macs_share=macs / total,
                prunable=g.prunable, reasons=g.barriers,
            )
        )
    prunable_macs = sum(cost.node_macs[n] for n in reachable)
    return InspectReport(tuple(rows), cost.macs, prunable_macs, cost.params)
