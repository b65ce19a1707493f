"""Deterministic, quiet ONNX export of torch modules with either PyTorch exporter."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from onnxprune.testing.archs import get_spec

logger = logging.getLogger(__name__)

EXPORTERS: tuple[str, ...] = ("legacy", "dynamo")
"""Exporter names: ``legacy`` is TorchScript (opset 17), ``dynamo`` is torch.export (opset 18)."""

LEGACY_OPSET = 17
DYNAMO_OPSET = 18
INPUT_NAME = "input"


def output_names(count: int) -> list[str]:
    """Return ``["output"]`` for one output, else ``["output0", "output1", ...]``.

    Args:
        count: number of graph outputs.

    Returns:
        The output names in order.

    """
    return ["output"] if count == 1 else [f"output{i}" for i in range(count)]


def export_onnx(
    module: nn.Module, input_shape: tuple[int, ...], path: str | os.PathLike[str], *, dynamo: bool
) -> Path:
    """Export ``module`` (in eval mode, static shapes) to ``path``.

    The example input is seeded, the weights are embedded (no external data), the input is named
    ``input`` and the outputs ``output`` / ``output0..``. Exporter chatter (prints, warnings,
    INFO logs) is suppressed. The file is written atomically.

    Args:
        module: the torch module; it is switched to eval mode.
        input_shape: static shape of the single float32 input.
        path: destination ``.onnx`` file; parent directories are created.
        dynamo: use the ``torch.export`` based exporter (opset 18) instead of TorchScript (17).

    Returns:
        The written path.

    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    x = torch.randn(input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = module(x)
    names = output_names(len(out) if isinstance(out, tuple | list) else 1)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.onnx")
    with _quiet():
        if dynamo:
            _export_dynamo(module, x, tmp, names)
        else:
            _export_legacy(module, x, tmp, names)
    os.replace(tmp, path)
    logger.debug("exported %s (%s) to %s", type(module).__name__, _kind(dynamo), path)
    return path


def _kind(dynamo: bool) -> str:
    return "dynamo" if dynamo else "legacy"


def _export_legacy(module: nn.Module, x: torch.Tensor, path: Path, names: list[str]) -> None:
    torch.onnx.export(
        module, (x,), str(path), dynamo=False, opset_version=LEGACY_OPSET,
        input_names=[INPUT_NAME], output_names=names, do_constant_folding=True,
    )  # fmt: skip


def _export_dynamo(module: nn.Module, x: torch.Tensor, path: Path, names: list[str]) -> None:
    torch.onnx.export(
        module, (x,), str(path), dynamo=True, opset_version=DYNAMO_OPSET,
        external_data=False, optimize=True, verbose=False,
        input_names=[INPUT_NAME], output_names=names,
    )  # fmt: skip


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence exporter prints, Python warnings and INFO logs of the exporter stack."""
    loggers = [
        logging.getLogger(n) for n in ("torch.onnx", "torch.export", "onnxscript", "onnx_ir")
    ]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def exported_path(name: str, exporter: str, cache_dir: str | os.PathLike[str]) -> Path:
    """Return the export of architecture ``name`` with ``exporter``, exporting it once.

    The file is ``cache_dir / f"{name}-{exporter}.onnx"``; an existing file is reused.

    Args:
        name: key of :data:`~onnxprune.testing.archs.ARCHS` or ``LARGE_ARCHS``.
        exporter: one of :data:`EXPORTERS`.
        cache_dir: directory holding the exports.

    Returns:
        Path of the ONNX file.

    Raises:
        ValueError: when ``exporter`` is not in :data:`EXPORTERS`.

    """
    if exporter not in EXPORTERS:
        raise ValueError(f"unknown exporter {exporter!r}; use one of {EXPORTERS}")
    path = Path(cache_dir) / f"{name}-{exporter}.onnx"
    if not path.exists():
        spec = get_spec(name)
        export_onnx(spec.build(), spec.input_shape, path, dynamo=exporter == "dynamo")
    return path
