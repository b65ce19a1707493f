"""onnxprune: structured pruning of ONNX models directly in the ONNX graph."""

from __future__ import annotations

from onnxprune.errors import (
    CannotPruneError,
    InputError,
    OnnxPruneError,
    UnsupportedOpError,
    VerificationError,
)
from onnxprune.model import Model, load
from onnxprune.pruning import PruneResult, apply, prune
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
    "PruneOptions",
    "PruneResult",
    "UnsupportedOpError",
    "VerificationError",
    "apply",
    "inspect",
    "load",
    "load_plan",
    "prune",
]
__version__ = "0.1.0"
