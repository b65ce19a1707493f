"""Objectives ℓ whose per-sample gradients fill the Gram matrices (one backward per direction).

Every objective is a sum of independent per-sample terms, so one backward pass over a batch
gives every sample's gradient at every watched tensor at once:

- ``output-aware`` (default, any model): the Gauss–Newton sketch below, taken over each
  output in its own scale (see :mod:`onnxprune.analysis.measure`): trailing
  Sigmoid/Softmax/LogSoftmax are looked through to their logits (log-softmax for Softmax),
  and each output, and each block of an output's channels whose calibration std differs by
  more than a decade, is standardised so that every output carries the same energy
  (times its ``--output-weight``).
- ``gauss-newton`` (any model): ℓ_{n,r} = ⟨v_{n,r}, f(x_n)⟩ with v_{n,r} ~ N(0, I) over
  the sample's concatenated, flattened raw float outputs; E_v[GᵀG] is the Gauss–Newton matrix
  J_nᵀJ_n summed over samples. Directions are drawn per sample from a generator seeded by
  ``(seed, sample index)``, so results do not depend on the batch size.
- ``labels``: per-sample cross-entropy of the classifier output against given labels.
- ``pseudo-label``: cross-entropy against the model's own argmax (no labels needed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from onnxprune.analysis.measure import OutputMeasure, measured
from onnxprune.defaults import OBJECTIVES as OBJECTIVES  # re-export (torch-free home)
from onnxprune.errors import InputError


def gn_directions(seed: int, index: int, directions: int, size: int) -> torch.Tensor:
    """Draw the Gauss–Newton directions of one sample: ``[directions, size]`` standard normals.

    Args:
        seed: the analysis seed.
        index: the sample's index in the dataset.
        directions: how many directions (R).
        size: number of float output values of one sample.

    Returns:
        A float32 CPU tensor.

    """
    state = np.random.SeedSequence([seed, index]).generate_state(2, dtype=np.uint64)
    gen = torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))
    return torch.randn(directions, size, generator=gen)


@dataclass(frozen=True)
class Objective:
    """One of :data:`OBJECTIVES`, bound to what it needs to build the per-batch losses.

    Attributes:
        name: the objective's name.
        directions: row blocks per sample (R for ``gauss-newton``, 1 otherwise).
        seed: seed of the Gauss–Newton directions.
        probabilities: the classifier output is already a softmax (use its log).
        measures: how each output is measured (``output-aware`` only).

    """

    name: str
    directions: int = 1
    seed: int = 0
    probabilities: bool = False
    measures: tuple[OutputMeasure, ...] = ()

    @property
    def watch(self) -> frozenset[str]:
        """Intermediate tensors (logits) the objective reads besides the graph outputs."""
        return frozenset(m.tensor for m in self.measures if m.tensor != m.output)

    def losses(
        self, outputs: Sequence[torch.Tensor], labels: torch.Tensor | None, start: int,
        watched: Mapping[str, torch.Tensor] | None = None,
    ) -> list[torch.Tensor]:
        """Scalar losses of one batch, one per direction (each a sum over samples).

        Args:
            outputs: the graph outputs of the batch (batch along axis 0).
            labels: integer class ids of the batch (``labels`` objective only).
            start: index of the batch's first sample in the dataset.
            watched: the intermediate tensors of :attr:`watch` (``output-aware``).

        Returns:
            ``directions`` scalar tensors.

        Raises:
            InputError: the outputs do not suit the objective or labels are out of range.

        """
        if self.name == "gauss-newton":
            return self._sketch(outputs, start)
        if self.name == "output-aware":
            return self._sketch(measured(self.measures, outputs, watched or {}), start)
        logits = self._classifier(outputs)
        if self.name == "pseudo-label":
            labels = logits.detach().argmax(1)
        if labels is None:
            raise InputError("objective 'labels' needs labels; pass --labels FILE")
        return [self._cross_entropy(logits, labels.to(logits.device))]

    def _sketch(self, outputs: Sequence[torch.Tensor], start: int) -> list[torch.Tensor]:
        batch = _batch_of(outputs)
        flat = [o.reshape(batch, -1) for o in outputs if o.is_floating_point() and o.dim() > 0]
        if not flat:
            raise InputError("gauss-newton needs a float graph output; the model has none")
        f = torch.cat(flat, 1) if len(flat) > 1 else flat[0]
        v = torch.stack(
            [gn_directions(self.seed, start + n, self.directions, f.shape[1]) for n in range(batch)]
        ).to(device=f.device, dtype=f.dtype)
        return [(v[:, r] * f).sum() for r in range(self.directions)]

    def _classifier(self, outputs: Sequence[torch.Tensor]) -> torch.Tensor:
        out = outputs[0]
        if out.dim() != 2 or not out.is_floating_point():
            raise InputError(
                f"objective '{self.name}' needs a classifier output [N, classes] as the first "
                f"graph output, got {out.dtype} {list(out.shape)}; use --objective gauss-newton"
            )
        return out

    def _cross_entropy(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        k = logits.shape[1]
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= k):
            bad = int(labels.max()) if int(labels.max()) >= k else int(labels.min())
            raise InputError(
                f"label {bad} is outside the model's {k} classes (0..{k - 1}); fix the labels"
            )
        if self.probabilities:
            return F.nll_loss(torch.log(logits.clamp_min(1e-12)), labels, reduction="sum")
        return F.cross_entropy(logits, labels, reduction="sum")


def _batch_of(outputs: Sequence[torch.Tensor]) -> int:
    sizes = {int(o.shape[0]) for o in outputs if o.is_floating_point() and o.dim() > 0}
    if len(sizes) != 1:
        raise InputError(
            f"graph outputs disagree on the batch axis (first dims {sorted(sizes)}); the "
            "analysis needs every float output batch-first"
        )
    return sizes.pop()
