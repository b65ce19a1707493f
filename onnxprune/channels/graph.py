"""The channel-dependency graph: spaces reached from every root, tied element by element.

Build: from every root (an output space whose channels a node can drop) walk the graph, asking
each node's rule about each space it touches; links tie indices of spaces together. A union-find
over the individual indices gives *atomic channels* (everything that must go together). Atomic
channels are grouped by the set of roots they contain: a group is what one set of producers
writes, e.g. all convs that feed one residual stream, or a Concat's single input.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.channels.context import Context
from onnxprune.channels.rules import rule_for
from onnxprune.channels.types import Coupling, Link, Space, WeightUse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightRef:
    """A node whose constant weight is indexed by a group's channels (root or consumer)."""

    node: str
    op: str
    space: Space
    weight: WeightUse


@dataclass(frozen=True)
class Group:
    """A set of channels that are pruned together, with everything that touches them.

    ``members`` maps each space holding the group's channels to an array giving, for every
    index of that space, the group channel it belongs to (-1 for indices of other groups).
    """

    id: int
    size: int
    roots: tuple[WeightRef, ...]
    consumers: tuple[WeightRef, ...]
    members: Mapping[Space, np.ndarray] = field(repr=False)
    barriers: tuple[str, ...]
    nodes: tuple[str, ...]

    @property
    def prunable(self) -> bool:
        """True when nothing blocks the group and it has more than one channel."""
        return not self.barriers and self.size > 1

    @property
    def root_nodes(self) -> tuple[str, ...]:
        """Names of the nodes that produce the group's channels."""
        return tuple(dict.fromkeys(r.node for r in self.roots))


class _Walk:
    """Breadth-first discovery of spaces, links, absorbers and barriers from the roots."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.links: list[Link] = []
        self.barriers: dict[Space, list[str]] = {}
        self.refs: dict[Space, list[WeightRef]] = {}
        self.touching: dict[Space, set[str]] = {}
        self.seen: dict[Space, None] = {}
        self._handled: set[tuple[int, Space]] = set()
        self._queue: deque[Space] = deque()

    def add_root(self, node: gs.Node, space: Space, coupling: Coupling) -> None:
        self._handled.add((id(node), space))
        self._enqueue(space)
        self._apply(node, space, coupling)

    def run(self) -> None:
        while self._queue:
            self._visit(self._queue.popleft())

    def _enqueue(self, space: Space) -> None:
        if space not in self.seen:
            self.seen[space] = None
            self._queue.append(space)

    def _visit(self, space: Space) -> None:
        ctx = self.ctx
        if ctx.dim(space) is None:
            self._block(space, f"tensor '{space.tensor}' has no static shape")
            return
        if space.tensor in ctx.outputs:
            self._block(space, f"channels reach graph output '{space.tensor}'")
        if space.tensor in ctx.inputs:
            self._block(space, f"channels come from graph input '{space.tensor}'")
        producer = ctx.producer(space.tensor)
        nodes = ([producer] if producer is not None else []) + ctx.consumers(space.tensor)
        for node in {id(n): n for n in nodes}.values():
            if (id(node), space) in self._handled:
                continue
            self._handled.add((id(node), space))
            self._apply(node, space, self._ask(node, space))

    def _ask(self, node: gs.Node, space: Space) -> Coupling:
        rule = rule_for(node.op, node.domain or "")
        if rule is None:
            where = f" of domain '{node.domain}'" if node.domain else ""
            return Coupling(barrier=f"{self.ctx.describe(node)}: no channel rule for op "
                            f"{node.op}{where}")
        try:
            return rule.couple(self.ctx, node, space)
        except Exception as e:  # noqa: BLE001 - an unexpected pattern is a barrier, not a crash
            log.debug("rule %s failed on %s", node.op, node.name, exc_info=True)
            return Coupling(barrier=f"{self.ctx.describe(node)}: pattern not understood ({e})")

    def _apply(self, node: gs.Node, space: Space, c: Coupling) -> None:
        self.touching.setdefault(space, set()).add(node.name)
        if c.barrier:
            self._block(space, c.barrier)
        if c.weight is not None:
            self.refs.setdefault(space, []).append(WeightRef(node.name, node.op, space, c.weight))
        for link in c.links:
            self.links.append(link)
            for s in (link.a, link.b):
                self._handled.add((id(node), s))
                self.touching.setdefault(s, set()).add(node.name)
                self._enqueue(s)

    def _block(self, space: Space, reason: str) -> None:
        self.barriers.setdefault(space, [])
        if reason not in self.barriers[space]:
            self.barriers[space].append(reason)


def _components(n: int, edges_a: np.ndarray, edges_b: np.ndarray) -> np.ndarray:
    """Label every element with the smallest element of its connected component."""
    labels = np.arange(n, dtype=np.int64)
    while True:
        low = np.minimum(labels[edges_a], labels[edges_b])
        before = labels.copy()
        np.minimum.at(labels, edges_a, low)
        np.minimum.at(labels, edges_b, low)
        labels = labels[labels]
        while not np.array_equal(labels, labels[labels]):
            labels = labels[labels]
        if np.array_equal(labels, before):
            return labels


class ChannelGraph:
    """Prunable groups of a graph, derived from the channel rules.

    Args:
        ctx: the graph and its static shapes.

    """

    def __init__(self, ctx: Context):
        self.ctx = ctx
        walk = _Walk(ctx)
        for node in ctx.graph.nodes:
            rule = rule_for(node.op, node.domain or "")
            if rule is None:
                continue
            try:
                found = rule.roots(ctx, node)
            except Exception:  # noqa: BLE001 - a node the rule can't read is just not a root
                log.debug("roots() failed on %s", node.name, exc_info=True)
                continue
            for space, coupling in found:
                walk.add_root(node, space, coupling)
        walk.run()
        self._walk = walk
        self.groups: list[Group] = self._group(walk)
        self._by_id = {g.id: g for g in self.groups}

    def group(self, gid: int) -> Group:
        """The group with id ``gid``."""
        return self._by_id[gid]

    def clone(self) -> ChannelGraph:
        """Return the same groups over a copy of the graph, for one surgery to edit.

        The groups are plain values and are shared; the graph's nodes and tensors are copied
        (its weight arrays are shared: edits replace a constant's array, never write into it),
        so neither the model is re-imported nor the rules asked again.
        """
        twin = object.__new__(ChannelGraph)
        twin.ctx = self.ctx.clone()
        twin._walk, twin.groups, twin._by_id = self._walk, self.groups, self._by_id
        return twin

    def _group(self, walk: _Walk) -> list[Group]:
        spaces = [s for s in walk.seen if self.ctx.dim(s) is not None]
        sizes = np.array([self.ctx.dim(s) for s in spaces], dtype=np.int64)
        offsets = dict(zip(spaces, np.concatenate([[0], np.cumsum(sizes)[:-1]]).tolist()))
        a_parts, b_parts = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for link in walk.links:
            na, nb = self.ctx.dim(link.a), self.ctx.dim(link.b)
            if na is None or nb is None:
                continue
            ia, ib = link.map.pairs(na, nb)
            a_parts.append(ia + offsets[link.a])
            b_parts.append(ib + offsets[link.b])
        labels = _components(int(sizes.sum()), np.concatenate(a_parts), np.concatenate(b_parts))
        comp_roots = self._root_sets(walk, spaces, offsets, labels)
        return self._make_groups(walk, spaces, offsets, labels, comp_roots)

    def _root_sets(
        self, walk: _Walk, spaces: list[Space], offsets: Mapping[Space, int], labels: np.ndarray
    ) -> dict[int, tuple[Space, ...]]:
        roots: dict[int, list[Space]] = {}
        for space in spaces:
            refs = walk.refs.get(space, [])
            if not any(r.weight.role == "root" for r in refs):
                continue
            start = offsets[space]
            for comp in np.unique(labels[start : start + self.ctx.dim(space)]).tolist():
                roots.setdefault(comp, []).append(space)
        return {c: tuple(s) for c, s in roots.items()}

    def _make_groups(
        self,
        walk: _Walk,
        spaces: list[Space],
        offsets: Mapping[Space, int],
        labels: np.ndarray,
        comp_roots: Mapping[int, tuple[Space, ...]],
    ) -> list[Group]:
        keys: dict[tuple[Space, ...], list[int]] = {}
        for comp, key in comp_roots.items():
            keys.setdefault(key, []).append(comp)
        order = {s: i for i, s in enumerate(spaces)}
        groups = []
        for gid, (key, comps) in enumerate(sorted(keys.items(), key=lambda kv: order[kv[0][0]])):
            first = key[0]
            start = offsets[first]
            span = labels[start : start + self.ctx.dim(first)]
            comps = sorted(comps, key=lambda c: int(np.flatnonzero(span == c)[0]))
            groups.append(self._one_group(walk, gid, comps, spaces, offsets, labels))
        return groups

    def _one_group(
        self,
        walk: _Walk,
        gid: int,
        comps: Sequence[int],
        spaces: Iterable[Space],
        offsets: Mapping[Space, int],
        labels: np.ndarray,
    ) -> Group:
        channel_of = {c: i for i, c in enumerate(comps)}
        lookup = np.full(labels.max() + 1 if labels.size else 1, -1, dtype=np.int64)
        lookup[list(channel_of)] = list(channel_of.values())
        members: dict[Space, np.ndarray] = {}
        for space in spaces:
            start = offsets[space]
            owner = lookup[labels[start : start + self.ctx.dim(space)]]
            if (owner >= 0).any():
                members[space] = owner
        refs = [r for s in members for r in walk.refs.get(s, [])]
        barriers = tuple(dict.fromkeys(b for s in members for b in walk.barriers.get(s, [])))
        nodes = tuple(sorted({n for s in members for n in walk.touching.get(s, set())}))
        return Group(
            id=gid,
            size=len(comps),
            roots=tuple(r for r in refs if r.weight.role == "root"),
            consumers=tuple(r for r in refs if r.weight.role == "consumer"),
            members=members,
            barriers=barriers,
            nodes=nodes,
        )

    def keep(self, plan: Mapping[int, Sequence[int]]) -> dict[Space, np.ndarray]:
        """Kept indices of every space that a plan (group id -> kept channels) changes."""
        dropped: dict[Space, np.ndarray] = {}
        for gid, kept in plan.items():
            group = self._by_id[gid]
            gone = np.setdiff1d(np.arange(group.size), np.asarray(kept, dtype=np.int64))
            if not gone.size:
                continue
            for space, owner in group.members.items():
                mask = np.isin(owner, gone)
                prev = dropped.get(space)
                dropped[space] = mask if prev is None else (prev | mask)
        return {s: np.flatnonzero(~m) for s, m in dropped.items() if m.any()}
