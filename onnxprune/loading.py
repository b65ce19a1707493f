"""A model and its data in any usual form, loaded together (the API's and the CLI's front door).

The model: a path, an ``onnx.ModelProto`` or a loaded :class:`~onnxprune.model.Model`. The
data: a ``.npz``/``.npy`` path, an image folder (with a preprocess recipe), one array
(single-input models), a dict of arrays, an iterable of feeds or a
:class:`~onnxprune.data.Dataset`, validated once for the model's inputs. Dynamic input dims
are taken from the data unless the given input shapes say otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from onnxprune import ir, progress
from onnxprune.data import Dataset, from_arrays, load_data, read_labels
from onnxprune.errors import InputError
from onnxprune.model import Model, load
from onnxprune.preprocess import Preprocess

ModelLike = str | os.PathLike[str] | ir.ModelProto | Model
"""A model: an ``.onnx`` path, an in-memory ``ModelProto`` or a loaded :class:`Model`."""
DataLike = (str | os.PathLike[str] | np.ndarray | Mapping[str, np.ndarray] | Dataset
            | Iterable[Mapping[str, np.ndarray] | np.ndarray])
"""Data: a file or folder, an array, a dict of arrays, an iterable of feeds or a Dataset."""
PreprocessLike = Preprocess | str | Mapping[str, Any] | None
"""A :class:`Preprocess`, a preset name, a ``.json``/``.yaml`` file or a mapping of options."""
ShapesLike = Mapping[str, Sequence[int]] | Sequence[str] | str | None
"""``{"x": (1, 3, 48, 192)}``, ``["x:1,3,48,192"]`` or ``"x:1,3,48,192 y:1,2"``."""


def load_with_data(
    model: ModelLike,
    data: DataLike | None = None,
    *,
    preprocess: PreprocessLike = None,
    labels: str | os.PathLike[str] | np.ndarray | None = None,
    input_shapes: ShapesLike = None,
    samples: int | None = None,
) -> tuple[Model, Dataset | None]:
    """Load ``model`` and ``data`` together, the model's dynamic dims taken from the data.

    Args:
        model: an ``.onnx`` path, a ``ModelProto`` or a loaded :class:`Model`.
        data: see :data:`DataLike`; ``None`` for none.
        preprocess: how image files become tensors (image folders only).
        labels: integer class ids (array, ``.npy`` or ``.npz``), one per sample.
        input_shapes: shapes for dynamic dims; override what the data says.
        samples: use at most this many samples.

    Returns:
        The loaded model (concrete input shapes) and the validated dataset (or ``None``).

    Raises:
        InputError: the model or data is unusable, or they do not fit each other.

    """
    given = _shapes(input_shapes)
    if labels is not None and data is None:
        raise InputError("labels were given without data; pass --data with the labels")
    if isinstance(model, Model) and not given:
        proto, loaded = model.proto, model
    else:
        proto = model.proto if isinstance(model, Model) else (
            model if isinstance(model, ir.ModelProto) else ir.load_model(model))
        loaded = None
    dataset = None
    if data is not None:
        specs = ir.io_specs(proto)
        known = loaded.input_shapes if loaded is not None else given
        dataset = _dataset(data, specs, known, Preprocess.of(preprocess), labels, samples)
    if loaded is None:
        from_data = _from_data(proto, dataset)
        if from_data:
            progress.detail("input shapes from the data: " + " ".join(
                f"{k}:{','.join(map(str, v))}" for k, v in from_data.items() if k not in given))
        loaded = load(proto, input_shapes={**from_data, **given})
        if not isinstance(model, (Model, ir.ModelProto)):
            loaded.path = Path(model)
    return loaded, dataset


def load_distill_data(model: Model, data: DataLike, *, preprocess: PreprocessLike = None
                      ) -> Dataset:
    """Load more unlabelled samples for distillation only, validated for ``model``'s inputs.

    Raises:
        InputError: the samples do not fit the model's (concrete) inputs.

    """
    try:
        found = _dataset(data, ir.io_specs(model.proto), model.input_shapes,
                         Preprocess.of(preprocess), None, None)
    except InputError as e:  # name the flag: --data loads through the same checks
        raise InputError(f"--distill-data: {e}") from e
    for name, shape in model.input_shapes.items():
        got = found.inputs.get(name)
        if got is None or tuple(got.shape[1:]) != tuple(shape[1:]):
            have = "missing" if got is None else "x".join(map(str, got.shape[1:]))
            want = "x".join(map(str, shape[1:]))
            raise InputError(f"--distill-data: input '{name}' is {have} per sample but the "
                             f"model runs {want}; give samples shaped like --data")
    return found


def _shapes(value: ShapesLike) -> dict[str, tuple[int, ...]]:
    if value is None:
        return {}
    if isinstance(value, str):
        return ir.parse_input_shapes(value.split())
    if isinstance(value, Mapping):
        return {k: tuple(int(d) for d in v) for k, v in value.items()}
    return ir.parse_input_shapes(list(value))


def _dataset(
    data: DataLike,
    specs: Sequence[ir.TensorSpec],
    shapes: Mapping[str, tuple[int, ...]],
    preprocess: Preprocess | None,
    labels: str | os.PathLike[str] | np.ndarray | None,
    samples: int | None,
) -> Dataset:
    if isinstance(data, Dataset):
        return data.take(samples) if samples is not None else data
    if isinstance(data, (str, os.PathLike)):
        return load_data(data, specs, shapes, labels=labels, image_options=preprocess,
                         limit=samples)
    arrays = _arrays(data, specs)
    found = None if labels is None else read_labels(labels)
    return from_arrays(arrays, specs, shapes, labels=found, limit=samples)


def _arrays(data: Any, specs: Sequence[ir.TensorSpec]) -> dict[str, np.ndarray]:
    names = [s.name for s in specs]
    if isinstance(data, np.ndarray):
        if len(names) != 1:
            raise InputError(f"one array given but the model has inputs {names}; pass a dict "
                             "{input_name: array}")
        return {names[0]: data}
    if isinstance(data, Mapping):
        return {k: np.asarray(v) for k, v in data.items()}
    if isinstance(data, Iterable):
        feeds = [_arrays(f, specs) for f in data]
        if not feeds:
            raise InputError("the data iterable yielded no feeds; give at least one batch")
        return {k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]}
    raise InputError(f"data of type {type(data).__name__}: pass a .npz/.npy path, an image "
                     "folder, an array, a dict of arrays or an iterable of feeds")


def _from_data(proto: ir.ModelProto, data: Dataset | None) -> dict[str, tuple[int, ...]]:
    """Concrete shapes of the inputs whose dims are dynamic, read off the data (batch 1)."""
    if data is None:
        return {}
    out = {}
    for s in ir.io_specs(proto):
        dynamic = any(not (isinstance(d, int) and d > 0) for d in s.shape[1:])
        if dynamic and s.name in data.inputs:
            batch = s.shape[0] if s.shape and isinstance(s.shape[0], int) and s.shape[0] > 0 \
                else 1
            out[s.name] = (batch, *data.inputs[s.name].shape[1:])
    return out
