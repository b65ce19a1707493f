"""Size and opset limits of the protobuf layer (tests may monkeypatch them here)."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

_TWO_GB = 2**31 - 1
EXTERNAL_DATA_BYTES = _TWO_GB
"""Models larger than this are written (and verified) with their weights in a ``.data`` file."""
LIGHT_BYTES = 2**28
"""Above this size, shape inference and the checker work on a copy without the weights."""
HEAVY_BYTES = 2**26
"""In-memory models larger than this are never serialised whole: onnxruntime opens them from a
temporary copy with external data (``bench.make_session``), and verification checks and
infers their shapes on a weightless copy."""
SHAPES_LIGHT_BYTES = 2**20
"""Above this size (and up to ``LIGHT_BYTES``) static shapes are tried on a weightless copy
first (``ir.inferred_shapes``)."""
LIGHT_TENSOR_BYTES = 1024
STRIPPED = "__onnxprune_weights_not_loaded__"
MIN_OPSET = 7
MAX_OPSET = 23
