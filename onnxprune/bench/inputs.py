"""Checks of options, model interfaces and batch sizes, and the data (or random inputs) to feed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from onnxprune import ir
from onnxprune.bench.runtime import check_session_options
from onnxprune.data import Dataset, load_data
from onnxprune.errors import InputError

RANDOM_SAMPLES = 32


def check_compatible(original: ir.ModelProto, pruned: ir.ModelProto) -> None:
    """Check that ``pruned`` has ``original``'s input names/dtypes and output names/shapes.

    Raises:
        InputError: naming the first difference.

    """
    ins = [{s.name: str(s.dtype) for s in ir.io_specs(m)} for m in (original, pruned)]
    if ins[0] != ins[1]:
        raise InputError(
            f"the models have different inputs: {ins[0]} vs {ins[1]}; compare a pruned model "
            "with the original it was made from"
        )
    outs = [{s.name: s for s in ir.io_specs(m, outputs=True)} for m in (original, pruned)]
    if list(outs[0]) != list(outs[1]):
        raise InputError(
            f"the models have different outputs: {list(outs[0])} vs {list(outs[1])}; compare "
            "a pruned model with the original it was made from"
        )
    for name, a in outs[0].items():
        b = outs[1][name]
        fixed = [
            x != y
            for x, y in zip(a.shape, b.shape, strict=False)
            if isinstance(x, int) and isinstance(y, int)
        ]
        if len(a.shape) != len(b.shape) or any(fixed) or a.dtype != b.dtype:
            raise InputError(
                f"output '{name}' is {b.dtype} {list(b.shape)} in the pruned model but "
                f"{a.dtype} {list(a.shape)} in the original; graph outputs must keep their shapes"
            )


def check_options(
    threads: int, batches: Sequence[int], warmup: int, iterations: int, opt: str, provider: str
) -> None:
    """Raise ``InputError`` naming the first bad bench option."""
    check_session_options(threads, opt, provider)
    if not batches or min(batches) < 1:
        raise InputError(f"batch sizes {list(batches)}: use positive ints, e.g. --batch 1,8")
    if warmup < 0 or iterations < 1:
        raise InputError(f"warmup {warmup}, iterations {iterations}: use >= 0 and >= 1")


def check_batches(model: ir.ModelProto, batches: Sequence[int]) -> None:
    """Raise ``InputError`` when a batch size differs from a fixed batch dim of the model."""
    for s in ir.io_specs(model):
        fixed = s.shape[0] if s.shape and isinstance(s.shape[0], int) and s.shape[0] > 0 else None
        wrong = [b for b in batches if fixed and b != fixed]
        if wrong:
            raise InputError(
                f"input '{s.name}' has a fixed batch of {fixed}; batch size {wrong[0]} needs a "
                f"model exported with a dynamic batch dim (or use --batch {fixed})"
            )


def prepare(
    model: ir.ModelProto,
    given: Mapping[str, Sequence[int]] | None,
    data: str | Path | Dataset | None,
    labels: str | Path | np.ndarray | None,
    max_batch: int,
    seed: int,
) -> tuple[dict[str, tuple[int, ...]], Dataset]:
    """Resolve the input shapes and load the dataset (seeded random inputs without data)."""
    specs = ir.io_specs(model)
    given_shapes = {k: tuple(int(d) for d in v) for k, v in (given or {}).items()}
    try:
        shapes = ir.resolve_input_shapes(model, given_shapes)
    except InputError:
        if data is None:
            raise
        shapes = given_shapes  # dynamic dims come from the data below
    dataset = _dataset(specs, shapes, data, labels, max_batch, seed)
    from_data = {
        s.name: (
            s.shape[0] if isinstance(s.shape[0], int) and s.shape[0] > 0 else 1,
            *dataset.inputs[s.name].shape[1:],
        )
        for s in specs
        if s.shape and s.name in dataset.inputs
    }
    return ir.resolve_input_shapes(model, {**from_data, **given_shapes}), dataset


def _dataset(
    specs: Sequence[ir.TensorSpec],
    shapes: Mapping[str, tuple[int, ...]],
    data: str | Path | Dataset | None,
    labels: str | Path | np.ndarray | None,
    max_batch: int,
    seed: int,
) -> Dataset:
    if data is None:
        if labels is not None:
            raise InputError("labels were given without data; pass --data with the labels")
        n = max(RANDOM_SAMPLES, max_batch)
        return load_data(None, specs, shapes, random_samples=n, seed=seed)
    if isinstance(data, Dataset):
        missing = [s.name for s in specs if s.name not in data.inputs]
        if missing or labels is not None:
            raise InputError(
                f"dataset {data.source}: lacks inputs {missing} or labels were given beside it; "
                "build the Dataset with every input and its labels (onnxprune.data.load_data)"
            )
        return data
    return load_data(data, specs, shapes, labels=labels)


def feeds(dataset: Dataset, batch: int) -> dict[str, np.ndarray]:
    """Return the first ``batch`` samples of ``dataset`` (repeated when it holds fewer)."""
    index = np.arange(batch) % len(dataset)
    return {k: np.ascontiguousarray(v[index]) for k, v in dataset.inputs.items()}
