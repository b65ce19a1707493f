"""``inspect``: the channel groups of a model, their share of MACs and what blocks them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from onnxprune import ir
from onnxprune.channels.graph import ChannelGraph, Group
from onnxprune.model import Model, unknown_shape_nodes, unknown_shapes_message


@dataclass(frozen=True)
class GroupReport:
    """One row of the inspect table.

    ``macs`` counts each weight node's MACs once, in the group of its output channels (so
    the shares of all groups and ``InspectReport.outside_macs`` sum to the model's MACs);
    ``touched_macs`` counts every node reading or writing the group's channels (what pruning
    the group reduces; a node counts in two groups). ``tensors``: tensors holding the
    group's channels; ``consumers``: weights that read them.
    """

    id: int
    channels: int
    roots: tuple[str, ...]
    tensors: int
    consumers: int
    macs: int
    macs_share: float
    touched_macs: int
    touched_macs_share: float
    prunable: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class IOReport:
    """A graph input or output: name, dtype, shape as declared and as resolved."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]
    resolved_shape: tuple[int, ...] | None


@dataclass(frozen=True)
class InspectReport:
    """All groups of a model, its interface and the share of its MACs that pruning can reach.

    ``unknown_shape_nodes``: weight nodes whose shapes could not be inferred; their MACs
    are not counted, so the totals are a lower bound.
    """

    groups: tuple[GroupReport, ...]
    total_macs: int
    prunable_macs: int
    params: int
    inputs: tuple[IOReport, ...] = ()
    outputs: tuple[IOReport, ...] = ()
    opset: int = 0
    producer: str = ""
    outside_macs: int = 0
    unknown_shape_nodes: tuple[str, ...] = ()

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
        """Return the model's interface, the aligned group table and its legend."""
        lines = self._header()
        head = (f"{'group':>5} {'ch':>5} {'tensors':>7} {'MACs%':>6} {'touch%':>6}  "
                f"{'status':<9} roots / reason")
        lines += [head, "-" * len(head)]
        for g in self.groups:
            status = "prunable" if g.prunable else "barrier"
            roots = ", ".join(g.roots[:3]) + (" …" if len(g.roots) > 3 else "")
            why = "" if g.prunable else f"  [{g.reasons[0] if g.reasons else 'single channel'}]"
            lines.append(
                f"{g.id:>5} {g.channels:>5} {g.tensors:>7} {100 * g.macs_share:>6.1f} "
                f"{100 * g.touched_macs_share:>6.1f}  {status:<9} {roots}{why}"
            )
        return "\n".join(lines + self._footer())

    def _header(self) -> list[str]:
        def io(kind: str, items: tuple[IOReport, ...]) -> list[str]:
            out = []
            for v in items:
                dims = ",".join(map(str, v.shape))
                got = "" if v.resolved_shape is None or tuple(v.resolved_shape) == v.shape \
                    else f" -> resolved {','.join(map(str, v.resolved_shape))}"
                out.append(f"{kind:<7} {v.name}: {v.dtype} [{dims}]{got}")
            return out

        who = f", producer {self.producer}" if self.producer else ""
        return [f"opset {self.opset}{who}; {self.params:,} parameters, "
                f"{self.total_macs / 1e6:.2f} MMACs", *io("input", self.inputs),
                *io("output", self.outputs), ""]

    def _footer(self) -> list[str]:
        n_ok = sum(g.prunable for g in self.groups)
        total = max(1, self.total_macs)
        lines = [
            f"{n_ok}/{plural(len(self.groups), 'group')} prunable; "
            f"{100 * self.prunable_share:.1f}% of {self.total_macs / 1e6:.2f} MMACs in "
            "prunable groups",
            "MACs%: each weight node's MACs counted once, in the group of its output channels "
            f"(sums to 100% with {100 * self.outside_macs / total:.1f}% outside any group)",
            "touch%: MACs of every node reading or writing the group's channels (what pruning "
            "it reduces; a node counts in two groups); tensors: tensors holding its channels",
        ]
        if self.unknown_shape_nodes:
            lines.append(_unknown_line(self.unknown_shape_nodes))
        return lines


def plural(n: int, noun: str) -> str:
    """``1 group``, ``2 groups``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _unknown_line(nodes: tuple[str, ...]) -> str:
    return f"warning: {unknown_shapes_message(nodes)}"


def group_macs(cg: ChannelGraph, group: Group, node_macs: dict[str, int]) -> int:
    """MACs of the weight-bearing nodes whose channels belong to the group."""
    return sum(node_macs.get(n, 0) for n in group.nodes)


def own_macs(groups: tuple[Group, ...], node_macs: dict[str, int]) -> dict[int, int]:
    """Each node's MACs once, split by channel count among the groups it produces."""
    rooted: dict[str, list[Group]] = {}
    for g in groups:
        for n in g.root_nodes:
            rooted.setdefault(n, []).append(g)
    out = {g.id: 0 for g in groups}
    for n, gs in rooted.items():
        total = sum(g.size for g in gs)
        for g in gs:
            out[g.id] += round(node_macs.get(n, 0) * g.size / max(1, total))
    return out


def inspect(model: Model) -> InspectReport:
    """Describe the interface and every channel group of ``model``.

    Args:
        model: a loaded model (``onnxprune.load``).

    Returns:
        Inputs/outputs, opset, producer, and the groups with channels, roots, MACs shares,
        status and barrier reasons; weight nodes with unknown shapes are listed (and logged).

    """
    cg = model.groups
    cost = model.cost
    total = max(cost.macs, 1)
    node_macs = dict(cost.node_macs)
    own = own_macs(tuple(cg.groups), node_macs)
    rows: list[GroupReport] = []
    reachable: set[str] = set()
    for g in cg.groups:
        touched = group_macs(cg, g, node_macs)
        if g.prunable:
            reachable.update(n for n in g.nodes if cost.node_macs.get(n))
        rows.append(
            GroupReport(
                id=g.id, channels=g.size, roots=g.root_nodes, tensors=len(g.members),
                consumers=len(g.consumers), macs=own[g.id], macs_share=own[g.id] / total,
                touched_macs=touched, touched_macs_share=touched / total,
                prunable=g.prunable, reasons=g.barriers,
            )
        )
    prunable_macs = sum(cost.node_macs[n] for n in reachable)
    unknown = unknown_shape_nodes(cost)  # Model.cost has logged the warning
    proto = model.proto
    return InspectReport(
        tuple(rows), cost.macs, prunable_macs, cost.params,
        inputs=_io(ir.io_specs(proto), model.input_shapes),
        outputs=_io(ir.io_specs(proto, outputs=True), model.shapes),
        opset=ir.opset_version(proto),
        producer=" ".join(x for x in (proto.producer_name, proto.producer_version) if x),
        outside_macs=max(0, cost.macs - sum(own.values())), unknown_shape_nodes=unknown,
    )


def _io(specs: list[ir.TensorSpec], shapes: Mapping[str, tuple[int, ...]]
        ) -> tuple[IOReport, ...]:
    return tuple(IOReport(s.name, str(s.dtype), tuple(s.shape), shapes.get(s.name))
                 for s in specs)
