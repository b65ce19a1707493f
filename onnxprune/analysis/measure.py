"""How each graph output is measured by the ``output-aware`` objective (DESIGN.md §2.3).

The Gauss–Newton sketch over the raw concatenated outputs is dominated by whatever output has
the largest values (box coordinates in pixels drown sigmoid class scores), and at a saturated
Sigmoid/Softmax its gradients vanish. An :class:`OutputMeasure` therefore says, per output:

- which tensor is measured: trailing Sigmoid/HardSigmoid/Softmax/LogSoftmax are looked through
  (also across Identity/Transpose/Reshape/Flatten/Squeeze/Unsqueeze) to their input, the
  logits; a Softmax's logits are measured as their log-softmax (shift-free);
- its scale: the measured tensor's channels (axis 1) are split into *blocks* wherever their
  calibration std jumps by more than a decade (box rows vs class rows of a detection head),
  each block is divided by its RMS std and weighted so that every block of an output, and
  every output, carries the same energy; ``--output-weight NAME=W`` multiplies an output's
  energy by W (0 ignores it).

The same measure drives the analysis (and so selection and compensation weights),
distillation and the per-output fidelity line of the report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from onnxprune.data import Dataset
from onnxprune.errors import InputError
from onnxprune.shim.module import Shim
from onnxprune.shim.plan import Step

_PASS_THROUGH = ("Identity", "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze")
_SQUASH = {"Sigmoid": "sigmoid", "HardSigmoid": "none", "Softmax": "log_softmax",
           "LogSoftmax": "log_softmax"}
FISHER: float | None = None
"""Experimental: weigh the logits by the likelihood's Fisher factor (probabilities mixed with
this share of uniform); None measures the plain logits."""
DECADE = 1.0
"""A jump of more than this in log10 of the channel std starts a new block."""
FLOOR = 1e-4
"""Channel stds below this share of the output's largest are raised to it."""


@dataclass(frozen=True)
class OutputMeasure:
    """How one graph output is measured.

    Attributes:
        output: the graph output's name.
        index: its position among the graph outputs.
        tensor: the tensor measured (the output itself or the logits behind it).
        transform: ``none`` or ``log_softmax`` (of ``tensor`` along ``axis``).
        axis: the softmax axis.
        coerce: opset < 13 softmax: flatten to 2-D at ``axis`` first.
        weight: the user's energy weight.
        scale: per channel (axis 1) factor, or one value; empty until calibrated.
        blocks: number of std blocks found.

    """

    output: str
    index: int
    tensor: str
    transform: str = "none"
    axis: int = -1
    coerce: bool = False
    weight: float = 1.0
    scale: np.ndarray = field(default_factory=lambda: np.ones(1), compare=False)
    blocks: int = 1

    def apply(self, t: torch.Tensor) -> torch.Tensor:
        """Return the measured value of ``t`` (the tensor named :attr:`tensor`), unscaled."""
        if self.transform == "sigmoid":
            if FISHER is None:
                return t
            p = torch.sigmoid(t.detach())
            return t * ((1 - FISHER) * p * (1 - p) + FISHER / 4).sqrt()
        if self.transform != "log_softmax":
            return t
        if FISHER is not None:
            ax = self.axis % t.dim()
            z = t.reshape(*t.shape[:ax], -1) if self.coerce else t.movedim(ax, -1)
            q = (1 - FISHER) * torch.softmax(z.detach(), -1) + FISHER / z.shape[-1]
            f = q.sqrt() * (z - (q * z).sum(-1, keepdim=True))
            return f.reshape(t.shape) if self.coerce else f.movedim(-1, ax)
        if self.coerce:
            ax = self.axis % t.dim()
            flat = t.reshape(*t.shape[:ax], -1)
            return torch.log_softmax(flat, -1).reshape(t.shape)
        return torch.log_softmax(t, self.axis)

    def scaled(self, t: torch.Tensor) -> torch.Tensor:
        """Return the measured, standardised value of ``t``."""
        v = self.apply(t)
        s = torch.as_tensor(self.scale, dtype=v.dtype, device=v.device)
        if s.numel() > 1:
            s = s.reshape(1, -1, *([1] * (v.dim() - 2)))
        return v * s


@torch.no_grad()
def output_measures(shim: Shim, data: Dataset, batch_size: int,
                    weights: Mapping[str, float]) -> tuple[OutputMeasure, ...]:
    """Locate and calibrate the measure of every float graph output of ``shim`` on ``data``.

    Raises:
        InputError: bad ``weights``, or the model has no float output.

    """
    names = list(shim.plan.outputs)
    check_weights(weights, names)
    found = locate(shim.plan.steps, names)
    values: list[list[torch.Tensor]] = [[] for _ in found]
    floats = [True] * len(found)
    for inputs, _ in data.batches(batch_size):
        batch = len(next(iter(inputs.values())))
        with shim.watch({m.tensor for m in found if m.tensor != m.output},
                        retain_grad=False) as watched:
            outs = shim(inputs)
        for i, m in enumerate(found):
            t = outs[m.index] if m.tensor == m.output else watched[m.tensor]
            if m.tensor != m.output and (t.dim() == 0 or t.shape[0] != batch):
                found[i] = m = OutputMeasure(m.output, m.index, m.output)  # not batch-first
                t, values[i] = outs[m.index], []
            floats[i] = floats[i] and t.is_floating_point() and t.dim() > 0
            if floats[i]:
                values[i].append(m.apply(t).float())
    out = tuple(calibrate(m, values[i], float(weights.get(m.output, 1.0)))
                for i, m in enumerate(found) if floats[i])
    if not out:
        raise InputError("the output-aware objective needs a float graph output; the model has "
                         "none")
    return out


def locate(steps: Sequence[Step], outputs: Sequence[str]) -> list[OutputMeasure]:
    """One unscaled measure per graph output, looking through trailing squashes.

    Args:
        steps: the shim plan's steps.
        outputs: the graph output names.

    """
    producer = {o: s for s in steps for o in s.outputs}
    found = []
    for i, name in enumerate(outputs):
        step = producer.get(name)
        while step is not None and step.op_type in _PASS_THROUGH:
            step = producer.get(step.inputs[0])
        if step is not None and step.op_type in _SQUASH:
            kind = _SQUASH[step.op_type]
            axis = int(step.attrs.get("axis", -1))
            found.append(OutputMeasure(name, i, step.inputs[0], kind, axis, step.opset < 13))
        else:
            found.append(OutputMeasure(name, i, name))
    return found


def calibrate(measure: OutputMeasure, values: Sequence[torch.Tensor], weight: float
              ) -> OutputMeasure:
    """Fix the scale of one measure from its (unscaled) values on the calibration data."""
    v = torch.cat([x.detach().double() for x in values])
    if v.dim() < 2:
        v = v.reshape(-1, 1)
    per = v.transpose(0, 1).reshape(v.shape[1], -1)  # [C, samples * positions]
    std = per.std(1, unbiased=False).cpu().numpy() if per.shape[1] > 1 else np.ones(len(per))
    top = float(std.max()) if std.size and std.max() > 0 else 1.0
    std = np.maximum(std, FLOOR * top)
    blocks = _blocks(np.log10(std))
    inner = math.prod(v.shape[2:])
    scale = np.empty(len(std))
    for b in blocks:
        rms = math.sqrt(float(np.mean(std[b] ** 2)))
        scale[b] = math.sqrt(weight) / (rms * math.sqrt(len(blocks) * len(b) * inner))
    return OutputMeasure(measure.output, measure.index, measure.tensor, measure.transform,
                         measure.axis, measure.coerce, weight, scale, len(blocks))


def _blocks(logs: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(logs)
    cuts = np.flatnonzero(np.diff(logs[order]) > DECADE) + 1
    return [np.sort(part) for part in np.split(order, cuts)]


def measured(measures: Sequence[OutputMeasure], outputs: Sequence[torch.Tensor],
             watched: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
    """Return the standardised value of every weighted output of a batch."""
    out = []
    for m in measures:
        if m.weight <= 0:
            continue
        t = outputs[m.index] if m.tensor == m.output else watched[m.tensor]
        out.append(m.scaled(t))
    return out


def check_weights(weights: Mapping[str, float], outputs: Sequence[str]) -> None:
    """Refuse weights for unknown outputs or negative weights.

    Raises:
        InputError: a weight names no graph output or is negative, or all are zero.

    """
    for name, w in weights.items():
        if name not in outputs:
            raise InputError(f"--output-weight {name}={w:g}: the model has no output '{name}'; "
                             f"its outputs are {', '.join(outputs)}")
        if not w >= 0:
            raise InputError(f"--output-weight {name}={w:g}: weights must be 0 or more")
    if outputs and all(weights.get(o, 1.0) == 0 for o in outputs):
        raise InputError("--output-weight: every output has weight 0; keep at least one")
