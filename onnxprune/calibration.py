"""Calibration sanity: look at what the data does to the model before analysing it (DESIGN §2.7).

The analysis can only find redundancy the data exercises. Data unlike the model's real
inputs (photos without text for a text detector, unnormalised pixels) makes outputs that
barely move and gradients that vanish, and the prune that follows collapses. Each problem
found here is one warning line naming the output or node and the fix:

* an output that is near-constant across samples (its spread across samples is below
  ``CONSTANT_SPREAD`` of its magnitude, or it is all zeros);
* a Sigmoid/Softmax output that is saturated (every value within ``SATURATION_EPS`` of 0 or
  1) on at least ``SATURATED_SHARE`` of the samples: those samples carry no gradient;
* inputs far from what the first layer's BatchNormalization was trained on (its input's
  per-channel mean more than ``BN_Z`` running standard deviations away from the running mean
  on average, or its variance off by more than ``BN_VAR_RATIO`` times);

Too few samples for the group sizes (a rank capped by the data) is reported by the analysis
itself, which knows each group's rank capacity (``analysis/summary.py``: "data-limited").
"""

from __future__ import annotations

import logging

import numpy as np

from onnxprune import ir
from onnxprune.data import Dataset

log = logging.getLogger(__name__)

SAMPLES = 64
"""At most this many samples are run for the checks."""
CONSTANT_SPREAD = 1e-3
SATURATION_EPS = 3e-3
SATURATED_SHARE = 0.75
BN_Z = 3.0
BN_VAR_RATIO = 25.0
FIX = "give inputs like the model's real inputs (same kind of content and preprocessing)"
_PASS_THROUGH = {"Identity", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze"}


def calibration_warnings(model: ir.ModelProto, data: Dataset) -> tuple[str, ...]:
    """Return one warning line per problem the data shows on ``model`` (and log each).

    Args:
        model: the original model.
        data: the calibration data (the first ``SAMPLES`` samples are used).

    Returns:
        The warning lines, empty when nothing looks wrong.

    """
    from onnxprune.bench.compare import _outputs
    from onnxprune.bench.runtime import make_session

    sample = data.take(SAMPLES)
    sess = make_session(model)
    names = [o.name for o in sess.get_outputs()]
    parts: list[list[np.ndarray]] = [[] for _ in names]
    for (ys,), _ in _outputs([sess], sample, 8):
        for acc, y in zip(parts, ys, strict=True):
            acc.append(y)
    outputs = {n: np.concatenate(p) for n, p in zip(names, parts, strict=True)}
    lines: list[str] = []
    for name, y in outputs.items():
        op = _activation_of(model, name)
        lines += _saturated(name, op, y) or _constant(name, y, len(sample))
    lines += _bn_range(model, sample)
    for line in lines:
        log.warning("%s", line)
    return tuple(lines)


def _activation_of(model: ir.ModelProto, output: str) -> str | None:
    """Sigmoid/Softmax that makes ``output``, looking through ops that do not change values."""
    producers = {o: n for n in model.graph.node for o in n.output}
    node = producers.get(output)
    while node is not None and node.op_type in _PASS_THROUGH and node.input:
        node = producers.get(node.input[0])
    if node is not None and node.op_type in ("Sigmoid", "Softmax"):
        return str(node.op_type)
    return None


def _saturated(name: str, op: str | None, y: np.ndarray) -> list[str]:
    if op is None or y.ndim == 0 or len(y) < 2:
        return []
    rows = y.reshape(len(y), -1).astype(np.float64)
    flat = np.all(np.minimum(np.abs(rows), np.abs(1.0 - rows)) <= SATURATION_EPS, axis=1)
    if flat.mean() < SATURATED_SHARE:
        return []
    return [f"calibration data: output '{name}' ({op}) is saturated on {int(flat.sum())} of "
            f"{len(rows)} samples (every value within {SATURATION_EPS:g} of 0 or 1), so those "
            f"samples give the analysis no gradient; {FIX}"]


def _constant(name: str, y: np.ndarray, n: int) -> list[str]:
    if y.ndim == 0 or len(y) != n or n < 2:
        return []
    rows = y.reshape(n, -1).astype(np.float64)
    scale = float(np.sqrt(np.mean(rows**2)))
    spread = float(np.mean(rows.std(axis=0)))
    if scale > 0 and spread > CONSTANT_SPREAD * scale:
        return []
    return [f"calibration data: output '{name}' is near-constant across the {n} samples "
            f"(spread {spread:.2g} vs magnitude {scale:.2g}), so the analysis sees no "
            f"difference between channels; {FIX}"]


def _bn_range(model: ir.ModelProto, data: Dataset) -> list[str]:
    """Compare the first Conv's output on the data with its BatchNormalization's statistics."""
    first = _first_conv_bn(model)
    if first is None:
        return []
    conv, bn = first
    consts = {t.name: ir.to_array(t) for t in model.graph.initializer}
    if any(i not in consts for i in (*conv.input[1:], *bn.input[1:5]) if i):
        return []
    x = data.inputs.get(conv.input[0])
    if x is None or x.ndim != 4:
        return []
    z = _conv2d(conv, x.astype(np.float32), consts)
    if z is None:
        return []
    mean, var = consts[bn.input[3]].astype(np.float64), consts[bn.input[4]].astype(np.float64)
    m = z.mean(axis=(0, 2, 3))
    v = z.var(axis=(0, 2, 3))
    dist = float(np.mean(np.abs(m - mean) / np.sqrt(var + 1e-5)))
    ratio = float(np.exp(np.mean(np.abs(np.log((v + 1e-8) / (var + 1e-8))))))
    if dist <= BN_Z and ratio <= BN_VAR_RATIO:
        return []
    lo, hi = float(x.min()), float(x.max())
    return [f"calibration data: input '{conv.input[0]}' (range {lo:.3g} to {hi:.3g}) is far from "
            f"what the first layer's BatchNormalization '{bn.name}' was trained on (mean off by "
            f"{dist:.1f} std, variance off by {ratio:.1f}x on average); {FIX}, e.g. the same "
            "resizing, scaling and mean/std normalisation"]


def _first_conv_bn(model: ir.ModelProto) -> tuple[ir.NodeProto, ir.NodeProto] | None:
    inits = {t.name for t in model.graph.initializer}
    inputs = {i.name for i in model.graph.input if i.name not in inits}
    for node in model.graph.node:
        if node.op_type == "Conv" and node.input and node.input[0] in inputs:
            users = [n for n in model.graph.node if node.output[0] in n.input]
            if len(users) == 1 and users[0].op_type == "BatchNormalization":
                return node, users[0]
            return None
    return None


def _conv2d(conv: ir.NodeProto, x: np.ndarray, consts: dict[str, np.ndarray]
            ) -> np.ndarray | None:
    import torch
    import torch.nn.functional as F

    attrs = ir.attributes(conv)
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return None
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if len(pads) != 4 or pads[0] != pads[2] or pads[1] != pads[3]:
        return None
    w = torch.from_numpy(consts[conv.input[1]].astype(np.float32))
    b = torch.from_numpy(consts[conv.input[2]].astype(np.float32)) \
        if len(conv.input) > 2 and conv.input[2] else None
    with torch.no_grad():
        z = F.conv2d(torch.from_numpy(x), w, b, stride=tuple(attrs.get("strides", [1, 1])),
                     padding=(pads[0], pads[1]), dilation=tuple(attrs.get("dilations", [1, 1])),
                     groups=int(attrs.get("group", 1)))
    return z.double().numpy()
