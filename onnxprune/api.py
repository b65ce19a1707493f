"""One-call Python API: a model and data in any usual form, one function per job.

::

    import onnxprune

    r = onnxprune.prune("model.onnx", target_macs=0.5, data="calib.npz")
    print(r.summary())
    r.save("pruned.onnx")

Every function takes the model as a path, an ``onnx.ModelProto`` or a loaded
:class:`~onnxprune.model.Model`, and the data as a ``.npz``/``.npy`` path, an image folder (with
``preprocess``), one array (single-input models), a dict of arrays (one per input name), an
iterable of feeds (dicts or arrays, each with a batch axis) or a
:class:`~onnxprune.data.Dataset`. Dynamic input dims are taken from the data unless
``input_shapes`` gives them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxprune import ir, metrics, progress
from onnxprune.data import Dataset, from_arrays, load_data, read_labels
from onnxprune.errors import InputError
from onnxprune.model import Model, load
from onnxprune.preprocess import Preprocess
from onnxprune.pruning import pipeline
from onnxprune.pruning.options import PruneOptions
from onnxprune.pruning.result import PruneResult

if TYPE_CHECKING:
    from onnxprune.analysis import AnalysisResult
    from onnxprune.bench import BenchReport

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


def prune(
    model: ModelLike,
    *,
    data: DataLike | None = None,
    preprocess: PreprocessLike = None,
    labels: str | os.PathLike[str] | np.ndarray | None = None,
    input_shapes: ShapesLike = None,
    samples: int | None = None,
    analysis: AnalysisResult | None = None,
    options: PruneOptions | None = None,
    **option_values: Any,
) -> PruneResult:
    """Prune a model to a target (or by a uniform ratio) and verify the result.

    Args:
        model: an ``.onnx`` path, a ``ModelProto`` or a loaded :class:`Model`.
        data: calibration data (see :data:`DataLike`); without it a target uses the
            data-free baseline (uniform widths, L1 channels, no compensation) and says so.
        preprocess: how image files become tensors (see :class:`Preprocess`).
        labels: integer class ids for supervised distillation.
        input_shapes: shapes for dynamic dims (default: from the data).
        samples: use at most this many samples.
        analysis: a ready analysis of the model (skips running it).
        options: a :class:`PruneOptions`; keyword arguments override its fields.
        **option_values: any :class:`PruneOptions` field: ``target_macs=0.5`` keeps half
            the MACs, ``ratio=0.3`` removes 30% of every group's channels.

    Returns:
        The :class:`PruneResult`: ``.save(path)``, ``.summary()``, ``.table()``, ``.plan``.

    Raises:
        InputError: bad options, model or data.
        CannotPruneError: nothing can be pruned, or the target cannot be reached.
        VerificationError: the pruned model failed verification.

    """
    loaded, dataset = load_with_data(model, data, preprocess=preprocess, labels=labels,
                                     input_shapes=input_shapes, samples=samples)
    return pipeline.prune(loaded, data=dataset, analysis=analysis, options=options,
                          **option_values)


def analyze(
    model: ModelLike,
    *,
    data: DataLike | None = None,
    preprocess: PreprocessLike = None,
    labels: str | os.PathLike[str] | np.ndarray | None = None,
    input_shapes: ShapesLike = None,
    samples: int | None = None,
    **analysis_options: Any,
) -> AnalysisResult:
    """Run the effective filter analysis: each group's effective rank and maximum rate.

    Args:
        model: an ``.onnx`` path, a ``ModelProto`` or a loaded :class:`Model`.
        data: calibration data (see :data:`DataLike`); ``None`` uses seeded random samples
            (about the weights, not the task; a warning says so).
        preprocess: how image files become tensors.
        labels: integer class ids (for ``objective="labels"``).
        input_shapes: shapes for dynamic dims (default: from the data).
        samples: use at most this many samples.
        **analysis_options: ``objective``, ``directions``, ``batch_size``, ``energy_eps``,
            ``rel_tol``, ``device``, ``seed``, ``estimate`` (see
            :func:`onnxprune.analysis.analyze`).

    Returns:
        The :class:`~onnxprune.analysis.AnalysisResult` (``.table()``, ``.to_json()``,
        ``.plot(path)``).

    Raises:
        InputError: bad options, model or data.

    """
    from onnxprune.analysis import analyze as run_analysis

    loaded, dataset = load_with_data(model, data, preprocess=preprocess, labels=labels,
                                     input_shapes=input_shapes, samples=samples)
    return run_analysis(loaded, dataset, **analysis_options)


def bench(
    model: ModelLike,
    pruned: ModelLike | None = None,
    *,
    data: DataLike | None = None,
    preprocess: PreprocessLike = None,
    labels: str | os.PathLike[str] | np.ndarray | None = None,
    input_shapes: ShapesLike = None,
    samples: int | None = None,
    **bench_options: Any,
) -> BenchReport:
    """Time a model in onnxruntime, or compare a pruned model with its original.

    Args:
        model: the original (path, ``ModelProto`` or :class:`Model`).
        pruned: the pruned model to compare with it.
        data: inputs (see :data:`DataLike`); seeded random inputs when omitted.
        preprocess: how image files become tensors.
        labels: integer class ids for accuracy.
        input_shapes: shapes for dynamic dims (default: from the data).
        samples: use at most this many samples.
        **bench_options: ``threads``, ``batches``, ``warmup``, ``iterations``,
            ``optimization``, ``provider``, ``seed``, ``measure_memory`` (see
            :func:`onnxprune.bench.bench`).

    Returns:
        The :class:`~onnxprune.bench.BenchReport` (``.table()``, ``.to_json()``).

    Raises:
        InputError: bad options, models with different interfaces, or unusable data.

    """
    import tempfile

    from onnxprune.bench import bench as run_bench

    loaded, dataset = load_with_data(model, data, preprocess=preprocess, labels=labels,
                                     input_shapes=input_shapes, samples=samples)
    given = [(m, name) for m, name in ((model, "original"), (pruned, "pruned")) if m is not None]
    with tempfile.TemporaryDirectory(prefix="onnxprune-bench-") as tmp:
        paths = [_on_disk(m, Path(tmp) / f"{name}.onnx") for m, name in given]
        report = run_bench(paths[0], paths[1] if len(paths) > 1 else None, data=dataset,
                           input_shapes=loaded.input_shapes, **bench_options)
    # name in-memory models as such, not by the temporary file they were timed from
    names = [f"<in-memory {name}>" if p.parent == Path(tmp) else str(p)
             for p, (_, name) in zip(paths, given, strict=True)]
    models = tuple(replace(m, path=n) for m, n in zip(report.models, names, strict=True))
    return replace(report, models=models)


def cost(model: ModelLike, *, input_shapes: ShapesLike = None) -> metrics.Cost:
    """MACs, parameters and serialised size of a model at concrete input shapes.

    Args:
        model: an ``.onnx`` path, a ``ModelProto`` or a loaded :class:`Model`.
        input_shapes: shapes for dynamic dims (a dynamic batch alone defaults to 1).

    Returns:
        ``Cost(macs, params, size_bytes, node_macs)``.

    Raises:
        InputError: the model is unusable or a dynamic dim has no shape.

    """
    loaded, _ = load_with_data(model, None, input_shapes=input_shapes)
    return loaded.cost


# -- helpers ---------------------------------------------------------------------------------

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


def _on_disk(model: ModelLike, spare: Path) -> Path:
    """Return the model's file, or ``spare`` holding the in-memory model (ort reads files)."""
    if isinstance(model, Model) and model.path is not None:
        return model.path
    if isinstance(model, (Model, ir.ModelProto)):
        proto = model.proto if isinstance(model, Model) else model
        return ir.save_model(proto, spare)
    return Path(model)
