"""The ONNX checker, on models in memory, on files, and on large models without their weights.

Also the ONNX reference evaluator, the spec's own arithmetic (tests use it as an oracle).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import onnx

from onnxprune.ir import limits
from onnxprune.ir.shapes import light_copy

CheckerError = onnx.checker.ValidationError
"""What the checker raises for an invalid model (``onnx.checker.ValidationError``)."""


def check_model(model: onnx.ModelProto | str | os.PathLike[str], *,
                full_check: bool = False) -> None:
    """Run ``onnx.checker.check_model`` on a model or an ``.onnx`` file.

    ``full_check`` adds strict shape inference. A file is checked with its external data
    where it lies (a model in memory must be under 2 GB).

    Raises:
        CheckerError: the model is invalid (shape inference errors have their own types).

    """
    if not isinstance(model, onnx.ModelProto):
        model = os.fspath(model)
    onnx.checker.check_model(model, full_check=full_check)


def check_light(model: onnx.ModelProto, *, full_check: bool = True) -> None:
    """Check a large model without its weights (a copy whose weights point at an empty file).

    The checker only asks that external data files exist; it reads no weights.
    """
    with tempfile.TemporaryDirectory(prefix="onnxprune-check-") as folder:
        path = Path(folder) / "model.onnx"
        path.write_bytes(light_copy(model).SerializeToString())
        (Path(folder) / limits.STRIPPED).touch()
        onnx.checker.check_model(str(path), full_check=full_check)


def run_reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run ``model`` with ONNX's reference evaluator: the spec's arithmetic, slow, for tests."""
    from onnx.reference import ReferenceEvaluator

    return [np.asarray(y) for y in ReferenceEvaluator(model).run(None, dict(feeds))]
