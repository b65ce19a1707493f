"""Output fidelity of a pruned model against its original, and accuracy on labelled data."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from onnxprune.bench.runtime import run
from onnxprune.data import Dataset
from onnxprune.errors import InputError


@dataclass(frozen=True)
class OutputFidelity:
    """How closely one output of the pruned model follows the original's.

    ``cosine`` is the mean over samples of the per-sample cosine similarity, ``cosine_min`` the
    worst sample; ``top1_agreement`` is set for class-score outputs ([N, K], K > 1).
    """

    name: str
    cosine: float
    cosine_min: float
    max_abs: float
    top1_agreement: float | None


@dataclass(frozen=True)
class FidelityReport:
    """Output fidelity of a pruned model on a dataset, and both models' accuracy if labelled."""

    outputs: tuple[OutputFidelity, ...]
    samples: int
    source: str
    accuracy_original: float | None = None
    accuracy_pruned: float | None = None

    @property
    def cosine_min(self) -> float:
        """The worst per-sample cosine over all outputs."""
        return min(o.cosine_min for o in self.outputs)

    @property
    def max_abs(self) -> float:
        """The largest absolute difference over all outputs."""
        return max(o.max_abs for o in self.outputs)


def _fixed_batch(sess: ort.InferenceSession) -> int | None:
    dim = sess.get_inputs()[0].shape[0] if sess.get_inputs()[0].shape else None
    return dim if isinstance(dim, int) and dim > 0 else None


def _outputs(
    sessions: Sequence[ort.InferenceSession], dataset: Dataset, batch_size: int
) -> Iterator[tuple[list[list[np.ndarray]], np.ndarray | None]]:
    fixed = _fixed_batch(sessions[0])
    for inputs, labels in dataset.batches(fixed or batch_size):
        n = len(next(iter(inputs.values())))
        if fixed and n < fixed:  # pad the last batch of a fixed-batch model, trim after
            inputs = {k: v[np.arange(fixed) % n] for k, v in inputs.items()}
        fed = len(next(iter(inputs.values())))
        yield [[_rows_of(y, fed, n) for y in run(s, inputs)] for s in sessions], labels


def _rows_of(y: np.ndarray, fed: int, n: int) -> np.ndarray:
    # Outputs batched like the input keep one row per sample (padding trimmed); any other
    # output (a scalar, a fixed-size tensor) counts as one row per run.
    return y[:n] if y.ndim and y.shape[0] == fed else y.reshape(1, -1)


def _class_index(outputs: Sequence[np.ndarray]) -> int | None:
    return next((i for i, y in enumerate(outputs) if y.ndim == 2 and y.shape[1] > 1), None)


def _correct(outputs: Sequence[np.ndarray], labels: np.ndarray) -> int:
    k = _class_index(outputs)
    if k is None:
        raise InputError(
            "labels were given but no output looks like class scores [N, K]; drop --labels"
        )
    if labels.min() < 0 or labels.max() >= outputs[k].shape[1]:
        raise InputError(
            f"labels range {labels.min()}..{labels.max()} but output has "
            f"{outputs[k].shape[1]} classes; labels must be class indices 0..K-1"
        )
    return int((outputs[k].argmax(axis=1) == labels).sum())


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = (x.reshape(len(x), -1).astype(np.float64) for x in (a, b))
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dot = (a * b).sum(axis=1)
    both_zero = (na == 0) & (nb == 0)
    return np.where(both_zero, 1.0, dot / np.maximum(na * nb, np.finfo(np.float64).tiny))


def compare(
    a: ort.InferenceSession, b: ort.InferenceSession, dataset: Dataset, *, batch_size: int = 32
) -> FidelityReport:
    """Fidelity of session ``b`` against session ``a`` on ``dataset`` (accuracy if labelled).

    Raises:
        InputError: an output changes shape, or the data does not fit.

    """
    names = [o.name for o in a.get_outputs()]
    cos: dict[str, list[np.ndarray]] = {n: [] for n in names}
    max_abs = dict.fromkeys(names, 0.0)
    agree: dict[str, list[int]] = {}  # output -> [agreeing rows, rows]; class scores only
    correct = [0, 0]
    for (ya, yb), labels in _outputs([a, b], dataset, batch_size):
        for name, x, y in zip(names, ya, yb, strict=True):
            if x.shape != y.shape:
                raise InputError(
                    f"output '{name}' has shape {list(y.shape)} in the pruned model but "
                    f"{list(x.shape)} in the original on this data; outputs must keep shapes"
                )
            cos[name].append(_cosines(x, y))
            diff = float(np.abs(x.astype(np.float64) - y).max(initial=0.0))
            max_abs[name] = max(max_abs[name], diff)
            if _class_index([x]) == 0:
                same = int((x.argmax(axis=1) == y.argmax(axis=1)).sum())
                count = agree.setdefault(name, [0, 0])
                count[0], count[1] = count[0] + same, count[1] + len(x)
        if labels is not None:
            correct = [c + _correct(y, labels) for c, y in zip(correct, (ya, yb), strict=True)]
    n = len(dataset)
    outputs = tuple(
        OutputFidelity(
            name,
            float(np.concatenate(cos[name]).mean()),
            float(np.concatenate(cos[name]).min()),
            max_abs[name],
            agree[name][0] / agree[name][1] if name in agree else None,
        )
        for name in names
    )
    acc = (correct[0] / n, correct[1] / n) if dataset.labels is not None else (None, None)
    return FidelityReport(outputs, n, dataset.source, *acc)


def accuracies(
    sessions: Sequence[ort.InferenceSession], dataset: Dataset, fid: FidelityReport | None
) -> list[float | None]:
    """Accuracy of each session on a labelled dataset (reusing ``fid``'s when compared)."""
    if dataset.labels is None:
        return [None] * len(sessions)
    if fid is not None:
        return [fid.accuracy_original, fid.accuracy_pruned]
    correct = sum(
        _correct(ys[0], lab) for ys, lab in _outputs(sessions, dataset, 32) if lab is not None
    )
    return [correct / len(dataset)]
