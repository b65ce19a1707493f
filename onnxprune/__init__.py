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
from onnxprune.plan import Plan, load_plan
from onnxprune.pruning import PruneResult, apply, prune
from onnxprune.report import InspectReport, inspect

__all__ = [
    "CannotPruneError",
    "InputError",
    "InspectReport",
    "Model",
    "OnnxPruneError",
    "Plan",
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
