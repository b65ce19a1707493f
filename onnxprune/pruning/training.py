"""The small training kit of distillation: the held-out split, the trainable weights, weight
snapshots, the cosine decay, Adam."""

from __future__ import annotations

import math

import numpy as np
import torch

from onnxprune.channels.rules import weight_op
from onnxprune.data import Dataset
from onnxprune.shim.module import Shim

HOLD_OUT = 8
"""Every HOLD_OUT-th calibration sample is held out for early stopping."""
HELD_MAX = 64
"""At most this many samples held out: each check runs them all, and on 1024 detector pages a
slice of 128 cost ~40 s a check, most of a 300 s budget (64 still average the loss well)."""


def split(data: Dataset, unit: int) -> tuple[Dataset, Dataset]:
    """Every HOLD_OUT-th sample (in whole batches of ``unit``) held out, the rest to train on.

    No more than ``HELD_MAX`` samples (rounded up to whole batches) are held out: beyond that,
    every HOLD_OUT-th block is thinned evenly and the rest train.
    """
    n = len(data) - len(data) % unit
    blocks = np.arange(n // unit)
    held_blocks = blocks[HOLD_OUT - 1 :: HOLD_OUT] if len(blocks) >= 2 else blocks[:0]
    if len(blocks) >= 2 and not held_blocks.size:
        held_blocks = blocks[-1:]
    most = max(1, -(-HELD_MAX // unit))
    if held_blocks.size > most:
        held_blocks = held_blocks[np.linspace(0, held_blocks.size - 1, most).round().astype(int)]
    mask = np.zeros(n, bool)
    for b in held_blocks:
        mask[b * unit:(b + 1) * unit] = True
    held_idx, train_idx = np.flatnonzero(mask), np.flatnonzero(~mask)
    if not held_idx.size:  # too few samples to hold any out: measure on the training data
        held_idx = train_idx
    return subset(data, train_idx), subset(data, held_idx)


def spread(data: Dataset, most: int, unit: int = 1) -> Dataset:
    """At most ``most`` samples of ``data``, whole blocks of ``unit`` spread evenly over it."""
    blocks, keep = len(data) // unit, max(1, most // unit)
    if blocks <= keep:
        return data
    pick = np.linspace(0, blocks - 1, keep).round().astype(int)
    return subset(data, (pick[:, None] * unit + np.arange(unit)).ravel())


def subset(data: Dataset, idx: np.ndarray) -> Dataset:
    """Return the samples ``idx`` of ``data`` (inputs and labels)."""
    labels = None if data.labels is None else data.labels[idx]
    return Dataset({k: v[idx] for k, v in data.inputs.items()}, labels, data.source)


def trainable(shim: Shim) -> list[torch.nn.Parameter]:
    """The weights distillation moves (their rules list them), set to require grad; no others.

    Running statistics and scales the shim marks frozen, and scalars, never train.
    """
    names: list[str] = []
    for step in shim.plan.steps:
        wop = weight_op(step.op_type, step.domain)  # its rule lists the trainable inputs
        for i in wop.trainable if wop is not None else ():
            if i < len(step.inputs) and step.inputs[i] in shim.params:
                names.append(step.inputs[i])
    frozen = set(getattr(shim, "frozen", ()))  # statistics, scales: never trained
    chosen = dict.fromkeys(n for n in names if n not in frozen)
    for name, p in shim.params.items():
        p.requires_grad_(name in chosen and p.numel() > 1)
    return [shim.params[n] for n in chosen if shim.params[n].requires_grad]


def cosine(elapsed: float, limit: float, done: float, epochs: int) -> float:
    """Cosine learning-rate factor over the budget spent (time or epochs, whichever is ahead)."""
    spent = max(elapsed / limit if math.isfinite(limit) else 0.0,
                done / epochs if epochs else 0.0)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, spent)))


def snapshot(params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    """Return detached copies of ``params``."""
    return [p.detach().clone() for p in params]


class Adam:
    """Adam (Kingma & Ba), β = (0.9, 0.999), ε = 1e-8 — the update of ``torch.optim.Adam``.

    Written out because creating a ``torch.optim`` optimizer imports ``torch._dynamo``,
    which costs seconds on every ``prune`` call.
    """

    def __init__(self, params: list[torch.nn.Parameter], lr: float) -> None:
        self.params, self.lr, self.t = params, lr, 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self) -> None:
        """Apply one update from the parameters' gradients, then clear them."""
        self.t += 1
        b1, b2 = 0.9, 0.999
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is None:
                continue
            m.mul_(b1).add_(p.grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            p.addcdiv_(m / c1, (v / c2).sqrt_().add_(1e-8), value=-self.lr)
            p.grad = None
