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
``input_shapes`` gives them (``loading.py`` turns each form into a model and a dataset).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxprune import ir, metrics
from onnxprune.loading import (
    DataLike,
    ModelLike,
    PreprocessLike,
    ShapesLike,
    load_distill_data,
    load_with_data,
)
from onnxprune.model import Model
from onnxprune.pruning import pipeline
from onnxprune.pruning.options import PruneOptions
from onnxprune.pruning.result import PruneResult

if TYPE_CHECKING:
    from onnxprune.analysis import AnalysisResult
    from onnxprune.bench import BenchReport


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
    distill_data: DataLike | None = None,
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
        distill_data: more unlabelled samples (same forms as ``data``, same input shapes)
            for distillation alone: the analysis stays on ``data``, distillation gains
            from thousands of samples (default: distil on ``data``).
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
    more = None if distill_data is None else load_distill_data(loaded, distill_data,
                                                                preprocess=preprocess)
    return pipeline.prune(loaded, data=dataset, analysis=analysis, options=options,
                          distill_data=more, **option_values)


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


def _on_disk(model: ModelLike, spare: Path) -> Path:
    """Return the model's file, or ``spare`` holding the in-memory model (ort reads files)."""
    if isinstance(model, Model) and model.path is not None:
        return model.path
    if isinstance(model, (Model, ir.ModelProto)):
        proto = model.proto if isinstance(model, Model) else model
        return ir.save_model(proto, spare)
    return Path(model)
