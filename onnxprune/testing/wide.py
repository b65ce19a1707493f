"""A wide conv stack built directly in ONNX (no torch): big weights, tiny images.

``wide_conv_stack(channels=2048, layers=15)`` holds ~2.3 GB of float32 weights, which forces
the external-data path of loading, verifying and saving; small settings give a model that
exercises the same code in a test (with ``ir.EXTERNAL_DATA_BYTES`` lowered). Weights are
generated and written one layer at a time, so building it never holds them twice.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from onnxprune import ir


def wide_conv_stack(
    *, channels: int, layers: int, image: int = 4, kernel: int = 3, opset: int = 17, seed: int = 0
) -> ir.ModelProto:
    """Return ``x -> [Conv(k×k, channels) -> Relu] × layers -> GAP -> Flatten -> Gemm(10)``.

    Args:
        channels: width of every conv.
        layers: number of convs.
        image: input side (the input is ``1×3×image×image``).
        kernel: conv kernel side (odd; 'same' padding).
        opset: default-domain opset.
        seed: weights are seeded normal values scaled by 1/sqrt(fan-in).

    Returns:
        The model, weights in memory (save it with ``onnxprune.ir.save_model``).

    """
    rng = np.random.default_rng(seed)
    nodes, shapes = [], []
    prev, cin = "x", 3
    pad = kernel // 2
    for i in range(layers):
        shapes.append((f"w{i}", (channels, cin, kernel, kernel)))
        nodes.append(ir.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"],
                                  name=f"conv{i}", pads=[pad] * 4,
                                  kernel_shape=[kernel, kernel]))
        nodes.append(ir.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"))
        prev, cin = f"r{i}", channels
    nodes += [
        ir.make_node("GlobalAveragePool", [prev], ["gap"], name="gap"),
        ir.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        ir.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["y"], name="fc", transB=1),
    ]
    graph = ir.make_graph(
        nodes, "wide_conv_stack",
        [ir.make_value_info("x", np.float32, [1, 3, image, image])],
        [ir.make_value_info("y", np.float32, [1, 10])],
    )
    ir_version = 8 if opset <= 18 else 9 if opset <= 20 else 10
    model = ir.make_model(graph, opset=opset, ir_version=ir_version,
                          producer_name="onnxprune-wide")
    # Added one at a time into the model itself: never two copies of all the weights.
    for i, (name, shape) in enumerate(shapes):
        w = rng.standard_normal(shape, dtype=np.float32)
        w *= np.float32(1.0 / np.sqrt(np.prod(shape[1:])))
        _add(model, w, name)
        _add(model, rng.standard_normal(channels, dtype=np.float32) * np.float32(0.1), f"b{i}")
    fc = rng.standard_normal((10, channels), dtype=np.float32) / np.float32(np.sqrt(channels))
    _add(model, fc, "fc_w")
    _add(model, np.zeros(10, np.float32), "fc_b")
    return model


def _add(model: ir.ModelProto, value: np.ndarray, name: str) -> None:
    model.graph.initializer.add().CopyFrom(ir.from_array(value, name))


def weight_bytes(*, channels: int, layers: int, kernel: int = 3) -> int:
    """Bytes of float32 weights :func:`wide_conv_stack` creates."""
    convs = channels * 3 * kernel * kernel + (layers - 1) * channels * channels * kernel * kernel
    return 4 * (convs + layers * channels + 10 * channels + 10)


def write_wide(path: str | os.PathLike[str], **kwargs: int) -> Path:
    """Build :func:`wide_conv_stack` and save it (external data when over 2 GB)."""
    return ir.save_model(wide_conv_stack(**kwargs), path)
