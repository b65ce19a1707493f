"""Feed one prunable group's accumulators batch by batch: consumers' Grams, roots' Taylor sums.

A batch's watched activations go to every consumer once; during each direction's backward pass
the gradient of each watched tensor is routed (:meth:`GroupAccumulator.routes`, called from the
hooks :mod:`onnxprune.analysis.collect` sets) to the consumer or root that reads it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import torch

from onnxprune.analysis import layout
from onnxprune.analysis.gram import ConsumerAccumulator
from onnxprune.analysis.specs import GroupSpec
from onnxprune.analysis.taylor import TaylorAccumulator

Route = Callable[[torch.Tensor], None]


class GroupAccumulator:
    """Everything accumulated for one prunable group.

    Per batch: :meth:`start_batch`, then per direction the gradients arrive through
    :meth:`routes` (called from backward hooks) and :meth:`end_direction` closes it.
    """

    def __init__(self, spec: GroupSpec, directions: int, device: torch.device):
        self.spec = spec
        self.consumers = [
            ConsumerAccumulator(c, spec.size, directions, device) for c in spec.consumers
        ]
        self.taylor = TaylorAccumulator(spec.roots, spec.size, device)
        self._acts: list[torch.Tensor] = []
        self._outputs: list[int] = []
        self._inputs: list[list[torch.Tensor | None]] = []
        self._seen: set[int] = set()

    def start_batch(self, watched: Mapping[str, torch.Tensor], batch: int) -> None:
        """Read the batch's activations (shared by every direction) into means and capacity."""
        self._acts, self._outputs, self._inputs = [], [], []
        for acc in self.consumers:
            a = layout.activation(acc.spec, watched[acc.spec.x].detach(), batch)
            y = watched[acc.spec.y]
            outputs = layout.outputs_of(acc.spec, y)
            acc.add_batch(a, outputs, y.numel() // max(1, batch * outputs))
            self._acts.append(a)
            self._outputs.append(outputs)
            recurrent = acc.spec.kind == "recurrent"
            names = acc.spec.step.inputs if recurrent else ()
            self._inputs.append([watched[n].detach() if n else None for n in names])

    def routes(self, watched: Mapping[str, torch.Tensor], batch: int) -> list[tuple[str, Route]]:
        """(tensor, callback) pairs: what to do with the gradient of each watched tensor."""
        out: list[tuple[str, Route]] = []
        for i, acc in enumerate(self.consumers):
            out.append((acc.spec.y, functools.partial(self._consumer, i, batch)))
        for root in self.spec.roots:
            x = watched[root.tensor].detach()
            out.append((root.tensor, functools.partial(self.taylor.add_root, root, x, batch=batch)))
        return out

    def _consumer(self, i: int, batch: int, d: torch.Tensor) -> None:
        acc = self.consumers[i]
        d = layout.output_grad(acc.spec, d, batch, self._inputs[i])
        acc.add_gradient(self._acts[i], d)
        self._seen.add(i)

    def end_direction(self, batch: int) -> None:
        """Close a direction: consumers no gradient reached add zero rows."""
        for i, acc in enumerate(self.consumers):
            if i not in self._seen:
                acc.add_zero_rows(batch, self._outputs[i])
        self._seen = set()
        self.taylor.end_direction(batch)

    def close_batch(self) -> None:
        """Close a batch once every direction is in (the positions form adds its Gram now)."""
        for acc, a in zip(self.consumers, self._acts, strict=True):
            acc.close_batch(a)

    def end_batch(self) -> None:
        """Drop the batch's activations."""
        self._acts, self._outputs, self._inputs = [], [], []
