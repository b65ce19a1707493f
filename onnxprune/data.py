"""Calibration and evaluation data: ``.npy``/``.npz`` arrays, image folders or seeded noise.

Every problem with the data is an ``InputError`` with a one-line message that names the problem
and the fix; arrays come out cast to the model's input dtypes with the batch along axis 0.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from onnxprune import ir
from onnxprune.dataset import Dataset
from onnxprune.errors import InputError
from onnxprune.images import IMAGE_SUFFIXES, LETTERBOX_FILL, ImageOptions, load_folder
from onnxprune.preprocess import Preprocess

__all__ = [  # Dataset lives in dataset.py, the image names in images.py; reached here too
    "IMAGE_SUFFIXES", "LABEL_KEYS", "LETTERBOX_FILL", "Dataset", "ImageOptions", "from_arrays",
    "load_data", "read_labels",
]

LABEL_KEYS = ("labels", "y")


def load_data(
    path: str | os.PathLike[str] | None,
    specs: Sequence[ir.TensorSpec],
    shapes: Mapping[str, tuple[int, ...]],
    *,
    labels: str | os.PathLike[str] | np.ndarray | None = None,
    image_options: Preprocess | None = None,
    limit: int | None = None,
    min_samples: int = 1,
    random_samples: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Load and validate data for a model's graph inputs.

    Args:
        path: a ``.npy`` (single-input models), ``.npz`` (keys = input names, optional
            ``labels``/``y``) or a folder of images; ``None`` with ``random_samples``.
        specs: the model's graph inputs (``ir.io_specs``).
        shapes: resolved input shapes (``ir.resolve_input_shapes``), batch first; an input
            missing here is checked against the static dims of its spec only.
        labels: integer class ids (array or ``.npy``/``.npz`` file), one per sample.
        image_options: how to turn images into tensors (folder data only; see
            :class:`onnxprune.preprocess.Preprocess`).
        limit: keep at most this many samples.
        min_samples: fewer samples than this is an error.
        random_samples: draw this many seeded normal samples instead of reading ``path``.
        seed: seed of the random samples.

    Returns:
        The dataset, cast to the model's input dtypes.

    Raises:
        InputError: the data is missing, unreadable or does not fit the model.

    """
    if not specs:
        raise InputError("the model has no graph inputs; there is nothing to feed data to")
    if (path is None) == (random_samples is None):
        raise InputError(
            "give exactly one of a data path or random_samples; pass --data FILE.npz|FILE.npy|DIR"
        )
    if path is None:
        source, found = "random", None
        arrays = _random(specs, shapes, int(random_samples or 0), seed)
    else:
        source = str(path)
        arrays, found = _read(Path(path), specs, shapes, image_options)
    if labels is not None:
        found = read_labels(labels)
    return from_arrays(arrays, specs, shapes, labels=found, source=source, limit=limit,
                       min_samples=min_samples)


def from_arrays(
    arrays: Mapping[str, np.ndarray],
    specs: Sequence[ir.TensorSpec],
    shapes: Mapping[str, tuple[int, ...]],
    *,
    labels: np.ndarray | None = None,
    source: str = "arrays",
    limit: int | None = None,
    min_samples: int = 1,
) -> Dataset:
    """Validate in-memory arrays (one per graph input, samples along axis 0) as a dataset.

    Raises:
        InputError: an input is missing, or an array does not fit the model.

    """
    missing = [s.name for s in specs if s.name not in arrays]
    if missing:
        raise InputError(
            f"{source}: no array for input(s) {missing}; give one array per model input "
            f"{[s.name for s in specs]}"
        )
    arrays = {s.name: _validate(np.asarray(arrays[s.name]), s, shapes, source) for s in specs}
    found = labels
    n = len(next(iter(arrays.values())))
    if found is not None:
        found = _check_labels(found, n, source)
    data = Dataset(arrays, found, source, validated=True)
    data = data.take(limit) if limit is not None else data
    if len(data) < min_samples:
        raise InputError(
            f"{source}: {len(data)} samples, at least {min_samples} needed; provide more data"
        )
    return data


def _random(
    specs: Sequence[ir.TensorSpec], shapes: Mapping[str, tuple[int, ...]], n: int, seed: int
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for s in specs:
        if s.name not in shapes:
            raise InputError(f"input '{s.name}' has no resolved shape; pass --input-shapes")
        shape = (n, *shapes[s.name][1:])
        if s.dtype.kind == "f":
            out[s.name] = rng.standard_normal(shape).astype(s.dtype)
        else:  # ids, masks, flags: small non-negative values are valid for all of them
            out[s.name] = rng.integers(0, 2, shape).astype(s.dtype)
    return out


def _read(
    path: Path,
    specs: Sequence[ir.TensorSpec],
    shapes: Mapping[str, tuple[int, ...]],
    image_options: Preprocess | None,
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    if not path.exists():
        raise InputError(f"{path}: no such file or folder; pass an .npz, .npy or image folder")
    if path.is_dir():
        return load_folder(path, specs, shapes, image_options), None
    names = [s.name for s in specs]
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if len(names) != 1:
            raise InputError(
                f"{path}: an .npy holds one array but the model has inputs {names}; "
                "pass an .npz with one array per input name"
            )
        return {names[0]: _load_npy(path)}, None
    if suffix == ".npz":
        return _read_npz(path, names)
    raise InputError(f"{path}: unknown data format '{suffix}'; use .npz, .npy or an image folder")


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.asarray(np.load(path, allow_pickle=False))
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"{path}: not a readable .npy array ({e}); re-save it with np.save") from e


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: np.asarray(z[k]) for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"{path}: not a readable .npz ({e}); re-save it with np.savez") from e


def _read_npz(path: Path, names: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    found = _load_npz(path)
    labels = next((found.pop(k) for k in LABEL_KEYS if k in found), None)
    if len(names) == 1 and names[0] not in found and len(found) == 1:
        return {names[0]: next(iter(found.values()))}, labels
    missing = [n for n in names if n not in found]
    if missing:
        raise InputError(
            f"{path}: no array for input(s) {missing}; found keys {sorted(found)}, expected "
            f"{names} - re-save with np.savez(file, **{{input_name: array}})"
        )
    return {n: found[n] for n in names}, labels


def _validate(
    a: np.ndarray, spec: ir.TensorSpec, shapes: Mapping[str, tuple[int, ...]], source: str
) -> np.ndarray:
    want = _expected(spec, shapes)
    shown = "[N," + ",".join("?" if d is None else str(d) for d in want[1:]) + "]"
    if a.ndim != len(want):
        raise InputError(
            f"{source}: input '{spec.name}' has rank {a.ndim} {list(a.shape)}, the model expects "
            f"rank {len(want)} {shown}; reshape the data (samples along axis 0)"
        )
    if any(w is not None and w != g for w, g in zip(want[1:], a.shape[1:], strict=True)):
        raise InputError(
            f"{source}: input '{spec.name}' has shape {list(a.shape)}, expected {shown}; "
            "fix the data or pass --input-shapes"
        )
    a = _cast(a, spec, source)
    if a.dtype.kind in "fc" and not np.isfinite(a).all():
        bad = int(np.argmax(~np.isfinite(a.reshape(len(a), -1)).all(axis=1)))
        raise InputError(
            f"{source}: input '{spec.name}' contains NaN/inf (first in sample {bad}); "
            "clean the data"
        )
    return a


def _expected(spec: ir.TensorSpec, shapes: Mapping[str, tuple[int, ...]]) -> list[int | None]:
    if spec.name in shapes:
        return [None, *shapes[spec.name][1:]]
    return [None] + [d if isinstance(d, int) and d > 0 else None for d in spec.shape[1:]]


def _cast(a: np.ndarray, spec: ir.TensorSpec, source: str) -> np.ndarray:
    want = spec.dtype
    if want.kind == "b":
        ok = a.dtype.kind == "b"
    elif a.dtype.kind in "iu" and want.kind in "iu":  # any int width, if the values fit
        info = np.iinfo(want)
        ok = not a.size or (info.min <= int(a.min()) and int(a.max()) <= info.max)
    else:  # bool/int -> float and float64 -> float32 are fine; float -> int is not
        ok = np.can_cast(a.dtype, want, casting="same_kind")
    if not ok:
        raise InputError(
            f"{source}: input '{spec.name}' is {a.dtype} but the model wants {want}, which "
            f"cannot hold it without loss; save the data as {want}"
        )
    return np.ascontiguousarray(a, dtype=want)


def read_labels(labels: str | os.PathLike[str] | np.ndarray) -> np.ndarray:
    """Read integer class ids from an array, ``.npy`` or ``.npz`` (``labels``/``y`` key)."""
    if isinstance(labels, np.ndarray):
        return labels
    p = Path(labels)
    if not p.is_file():
        raise InputError(f"{p}: no such labels file; pass an .npy or .npz of class ids")
    if p.suffix.lower() == ".npy":
        return _load_npy(p)
    if p.suffix.lower() != ".npz":
        raise InputError(f"{p}: labels must be an .npy or .npz file of integer class ids")
    found = _load_npz(p)
    key = next((k for k in LABEL_KEYS if k in found), None)
    if key is None and len(found) != 1:
        raise InputError(f"{p}: found keys {sorted(found)}; store the labels under 'labels' or 'y'")
    return found[key] if key else next(iter(found.values()))


def _check_labels(labels: np.ndarray, n: int, source: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise InputError(
            f"labels must be a 1-D array of integer class ids, got {labels.dtype} with shape "
            f"{list(labels.shape)}; save them as int64 (one-hot: use argmax(axis=1))"
        )
    if len(labels) != n:
        raise InputError(
            f"{len(labels)} labels for {n} samples in {source}; give one label per sample"
        )
    return labels.astype(np.int64)


