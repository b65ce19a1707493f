"""Benchmark and compare models with onnxruntime: latency, cost, memory, fidelity, accuracy.

With two models, timed runs alternate A, B, A, B, ... so that machine drift (frequency scaling,
other processes) hits both alike and cancels in the ratios.

The package is split by concern: ``runtime`` (sessions, guarded runs, interleaved timing),
``inputs`` (option/interface checks, data), ``compare`` (fidelity, accuracy), ``memory`` (peak
RSS in a child process) and ``report`` (the report and its table/Markdown/JSON). Every public
name is importable from ``onnxprune.bench``.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from onnxprune import ir, metrics
from onnxprune.bench.compare import FidelityReport, OutputFidelity, accuracies, compare
from onnxprune.bench.inputs import (
    RANDOM_SAMPLES,
    check_batches,
    check_compatible,
    check_options,
    feeds,
    prepare,
)
from onnxprune.bench.memory import MEMORY_METHOD, peak_memory
from onnxprune.bench.report import BenchReport, BenchSettings, ModelStats
from onnxprune.bench.runtime import OPTIMIZATION, PROVIDERS, Latency, latency, make_session
from onnxprune.data import Dataset

__all__ = [
    "MEMORY_METHOD",
    "OPTIMIZATION",
    "PROVIDERS",
    "RANDOM_SAMPLES",
    "BenchReport",
    "BenchSettings",
    "FidelityReport",
    "Latency",
    "ModelStats",
    "OutputFidelity",
    "bench",
    "check_compatible",
    "fidelity",
    "make_session",
]


def bench(
    model: str | Path,
    pruned: str | Path | None = None,
    *,
    data: str | Path | Dataset | None = None,
    labels: str | Path | np.ndarray | None = None,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    threads: int = 1,
    batches: Sequence[int] = (1,),
    warmup: int = 10,
    iterations: int = 50,
    optimization: str = "all",
    provider: str = "cpu",
    seed: int = 0,
    measure_memory: bool = True,
) -> BenchReport:
    """Measure one model, or compare a pruned model with its original, in onnxruntime.

    Args:
        model: the original ``.onnx`` file.
        pruned: the pruned ``.onnx`` file to compare with it.
        data: a data file/folder (see ``onnxprune.data.load_data``) or a ``Dataset``; random
            inputs (and a warning) when omitted.
        labels: integer class ids for accuracy.
        input_shapes: shapes for dynamic input dims; taken from the data when omitted.
        threads: onnxruntime intra-op threads (inter-op is 1, execution sequential).
        batches: batch sizes to time.
        warmup: untimed runs per model and batch size.
        iterations: timed runs per model and batch size.
        optimization: graph optimisation level, one of ``OPTIMIZATION``.
        provider: ``cpu`` or ``cuda``.
        seed: seed of the random inputs.
        measure_memory: measure each session's peak memory (a subprocess per model, ~1 s).

    Returns:
        The report.

    Raises:
        InputError: bad options, models with different inputs/outputs, or data that does not fit.

    """
    check_options(threads, batches, warmup, iterations, optimization, provider)
    paths = [Path(model)] + ([Path(pruned)] if pruned is not None else [])
    protos = [ir.load_model(p) for p in paths]
    if len(protos) == 2:
        check_compatible(protos[0], protos[1])
    check_batches(protos[0], batches)
    shapes, dataset = prepare(protos[0], input_shapes, data, labels, max(batches), seed)
    fed = {b: feeds(dataset, b) for b in batches}
    options = {"threads": threads, "optimization": optimization, "provider": provider}
    # make_session is looked up in this module so that tests can record the runs
    sessions = [
        make_session(p, threads=threads, optimization=optimization, provider=provider)
        for p in paths
    ]
    memory = [
        peak_memory(p, list(fed.values()), options) if measure_memory else None for p in paths
    ]
    fid = compare(sessions[0], sessions[1], dataset) if len(sessions) == 2 else None
    accuracy = accuracies(sessions, dataset, fid)
    stats = tuple(
        _stats(*args, shapes) for args in zip(protos, paths, memory, accuracy, strict=True)
    )
    timed = tuple(latency(sessions, b, fed[b], warmup, iterations) for b in batches)
    settings = BenchSettings(
        threads=threads,
        optimization=optimization,
        provider=provider,
        warmup=warmup,
        iterations=iterations,
        data=dataset.source,
        samples=len(dataset),
        input_shapes=shapes,
        memory_method=MEMORY_METHOD if memory[0] is not None else "not measured",
    )
    return BenchReport(stats, timed, fid, settings)


def fidelity(
    original: ir.ModelProto, pruned: ir.ModelProto, dataset: Dataset, *, batch_size: int = 32
) -> FidelityReport:
    """Compare the outputs of ``pruned`` with those of ``original`` on ``dataset``.

    Args:
        original: the reference model.
        pruned: the model to check; same input and output names, dtypes and shapes.
        dataset: the inputs (and optional labels for accuracy).
        batch_size: samples per run (a model with a fixed batch dim uses that instead).

    Returns:
        Per-output cosine / max-abs / top-1 agreement, and accuracies when labelled.

    Raises:
        InputError: the models do not have the same interface, or the data does not fit.

    """
    check_compatible(original, pruned)
    a, b = make_session(original), make_session(pruned)
    return compare(a, b, dataset, batch_size=batch_size)


def _stats(
    model: ir.ModelProto,
    path: Path,
    memory: int | None,
    accuracy: float | None,
    shapes: Mapping[str, tuple[int, ...]],
) -> ModelStats:
    cost = metrics.cost(ir.with_input_shapes(model, shapes))
    batch = next(iter(shapes.values()))[0] if shapes else 1  # MACs are reported per sample
    # size of the model as given (weights included), not of the shape-resolved copy
    size = ir.model_bytes(model)
    return ModelStats(str(path), cost.params, cost.macs // max(1, batch), size, memory, accuracy)


class _CallableModule(types.ModuleType):
    """A module that is also the one-call :func:`onnxprune.api.bench`.

    ``onnxprune.bench(model, pruned, data=...)`` takes models and data in any usual form;
    the module's names stay importable as before.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> BenchReport:
        from onnxprune.api import bench as api_bench

        return api_bench(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
