"""The shim's kernels, one module per op family; importing this package registers them all."""

from __future__ import annotations

from onnxprune.shim.ops import (  # noqa: F401  (imported for their registrations)
    activation,
    conv,
    elementwise,
    index,
    norm,
    pad,
    pool,
    quant,
    recurrent,
    reduce,
    resize,
    shape,
    tensor,
)
