"""onnxprune: structured pruning of ONNX models directly in the ONNX graph."""

from __future__ import annotations

from onnxprune.errors import (
    CannotPruneError,
    InputError,
    OnnxPruneError,
    UnsupportedOpError,
    VerificationError,
)

__all__ = [
    "CannotPruneError",
    "InputError",
    "OnnxPruneError",
    "UnsupportedOpError",
    "VerificationError",
]
__version__ = "0.1.0"
