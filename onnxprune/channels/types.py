"""Plain values of the channel graph: spaces, links between them, and what a rule answers."""

from __future__ import annotations

from dataclasses import dataclass, field

from onnxprune.channels.index_map import IndexMap


@dataclass(frozen=True, order=True)
class Space:
    """A channel space: one axis of one tensor, whose length is a channel count."""

    tensor: str
    axis: int

    def __str__(self) -> str:
        return f"{self.tensor}[axis {self.axis}]"


@dataclass(frozen=True)
class Link:
    """Index i of ``a`` is the same channel as index ``map(i)`` of ``b``."""

    a: Space
    b: Space
    map: IndexMap


@dataclass(frozen=True)
class WeightUse:
    """A constant weight whose ``axis`` is indexed by a space's channels.

    ``role`` is ``"root"`` for a producer's output-channel axis and ``"consumer"`` for the
    input-channel axis of an op that mixes channels with weights (Conv, Gemm, MatMul).
    """

    name: str
    axis: int
    role: str


@dataclass(frozen=True)
class Coupling:
    """A rule's answer for one space of one of its node's inputs or outputs.

    ``links`` tie the space (or others of the node) to other spaces; ``absorbs`` says the node
    shrinks its own data when the space shrinks; ``barrier`` is a reason the space can't be
    pruned; ``weight`` names the weight axis the space indexes (roots and consumers).
    """

    links: tuple[Link, ...] = ()
    absorbs: bool = False
    barrier: str | None = None
    weight: WeightUse | None = None
    extra: dict[str, object] = field(default_factory=dict, compare=False)


def barrier(reason: str) -> Coupling:
    """Return a coupling that blocks the space with ``reason``."""
    return Coupling(barrier=reason)
