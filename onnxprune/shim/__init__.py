"""The torch shim: run an ONNX graph with PyTorch ops, with gates, gradients and write-back.

``Shim(model)`` is an ``nn.Module`` whose forward takes the graph's feeds and returns its
outputs; kernels live in ``onnxprune.shim.ops`` (one module per op family) and are looked up
in ``onnxprune.shim.registry`` by (domain, op type, opset).
"""

from __future__ import annotations

from onnxprune.shim.module import Shim
from onnxprune.shim.registry import Kernel, lookup, op, registered

__all__ = ["Kernel", "Shim", "lookup", "op", "registered"]
