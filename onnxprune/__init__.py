"""onnxprune: structured pruning of ONNX models directly in the ONNX graph.

One call per job; models and data in any usual form (see :mod:`onnxprune.api`)::

    import onnxprune

    r = onnxprune.prune("model.onnx", target_macs=0.5, data="calib.npz")
    r.save("pruned.onnx")
"""

from __future__ import annotations

from onnxprune import bench  # a callable module: onnxprune.bench(...) is api.bench
from onnxprune.api import analyze, cost, load_with_data, prune
from onnxprune.errors import (
    CannotPruneError,
    InputError,
    OnnxPruneError,
    UnsupportedOpError,
    VerificationError,
)
from onnxprune.model import Model, load
from onnxprune.preprocess import Preprocess
from onnxprune.pruning import PruneResult, apply
from onnxprune.pruning.options import PruneOptions
from onnxprune.pruning.plan import Plan, load_plan
from onnxprune.report import InspectReport, inspect

__all__ = [
    "CannotPruneError",
    "InputError",
    "InspectReport",
    "Model",
    "OnnxPruneError",
    "Plan",
    "Preprocess",
    "PruneOptions",
    "PruneResult",
    "UnsupportedOpError",
    "VerificationError",
    "analyze",
    "apply",
    "bench",
    "cost",
    "inspect",
    "load",
    "load_plan",
    "load_with_data",
    "prune",
]
__version__ = "0.1.0"
