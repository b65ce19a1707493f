"""Numerical hygiene of the weights the tool writes."""

from __future__ import annotations

import numpy as np


def flush_subnormals(value: np.ndarray) -> np.ndarray:
    """Return ``value`` with its subnormal floats set to zero (other values unchanged).

    Compensation, refinement and distillation compute in float64 and cast back; a tiny result
    (|x| < 1.2e-38 in float32) becomes a subnormal float, and x86 CPUs run arithmetic on
    subnormals many times slower unless flush-to-zero is on, which onnxruntime does not set by
    default. Measured: one compensated 1x1 conv of PP-OCRv4 rec (208 -> 240 channels, 208
    subnormal weights) took 9.5 ms instead of 0.6 ms, and the pruned model ran 0.91x of the
    original's speed. Zeroing them changes no value by more than the smallest normal float.
    """
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f" or value.size == 0:
        return value
    tiny = np.finfo(value.dtype).tiny
    sub = (np.abs(value) < tiny) & (value != 0)
    if not sub.any():
        return value
    out = value.copy()
    out[sub] = 0
    return out
