"""The data value: model inputs with the samples along axis 0, optional labels, the source.

Made by ``onnxprune.data`` (files, image folders, arrays, seeded noise), read by every step
that runs the model on data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from onnxprune.errors import InputError


@dataclass(frozen=True, eq=False)
class Dataset:
    """Model inputs (samples along axis 0), optional integer labels and where they came from.

    ``validated``: the arrays were checked and cast for a model's inputs (:func:`from_arrays`:
    dtypes, finite values), so later steps check only their shapes; parts keep the mark.
    """

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None = None
    source: str = ""
    validated: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        counts = {name: len(a) for name, a in self.inputs.items()}
        if self.labels is not None:
            counts["labels"] = len(self.labels)
        if not self.inputs or len(set(counts.values())) != 1:
            raise InputError(
                f"{self.source}: inputs and labels need the same number of samples, got {counts}"
            )

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    def batches(self, batch_size: int) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray | None]]:
        """Yield ``(inputs, labels)`` slices of at most ``batch_size`` samples, in order."""
        step = max(1, batch_size)
        for i in range(0, len(self), step):
            part = slice(i, i + step)
            labels = None if self.labels is None else self.labels[part]
            yield {k: v[part] for k, v in self.inputs.items()}, labels

    def take(self, n: int) -> Dataset:
        """Return the first ``n`` samples."""
        labels = None if self.labels is None else self.labels[:n]
        return Dataset({k: v[:n] for k, v in self.inputs.items()}, labels, self.source,
                       self.validated)

    def subset(self, index: np.ndarray) -> Dataset:
        """Return the samples at ``index`` (in that order)."""
        labels = None if self.labels is None else self.labels[index]
        return Dataset({k: v[index] for k, v in self.inputs.items()}, labels, self.source,
                       self.validated)
