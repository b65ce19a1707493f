"""Distillation: fine-tune a pruned model through the torch shim to match the original.

The original model is the teacher; its outputs on the calibration inputs are computed once.
The pruned model runs in the shim, and only its trainable weights move: the weights and
biases of Conv/ConvTranspose/Gemm/MatMul and the scale/bias of normalisation layers (running
statistics, Resize scales, shape constants never change). Label-free by default, the loss is
the output-aware metric of the analysis (:mod:`onnxprune.analysis.measure`): the squared
error of every output's standardised logits, each output weighing alike (1.0 = an error as
large as the output's calibration spread); with ``labels``, cross-entropy of the first
output against the labels. Adam (learning rate 1e-4 by default: on the digits ResNet,
pruned to 30 % of its MACs and compensated, 1e-3 first *raised* the loss from 0.025 to 2.5
in one epoch, 1e-4 lowered it steadily), seeded shuffling, for ``epochs`` passes or
``seconds`` of wall time, whichever ends first.

A held-out slice of the calibration data (every 8th sample, at least one) is never trained
on: the loss there is measured after every epoch (and every tenth of a time budget), printed
as a plain progress line, and the best weights by that loss (possibly the starting ones) are
written back into the ONNX initializers; training stops early after ``PATIENCE``
measurements without improvement. So distillation never makes the held-out fit worse.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from onnxprune import ir
from onnxprune.analysis.measure import OutputMeasure, measured, output_measures
from onnxprune.channels.rules import weight_op
from onnxprune.data import Dataset
from onnxprune.errors import InputError
from onnxprune.progress import note
from onnxprune.shim.module import Shim

log = logging.getLogger(__name__)

LR = 1e-4
BATCH = 32
PATIENCE = 4
"""Held-out measurements without improvement before distillation stops."""
HOLD_OUT = 8
"""Every HOLD_OUT-th calibration sample is held out for early stopping."""

@dataclass(frozen=True)
class DistillReport:
    """Held-out loss before and after, epochs, trained tensors and wall time."""

    epochs: float
    loss_before: float
    loss_after: float
    tensors: int
    seconds: float
    supervised: bool
    stopped: str = ""

    def line(self) -> str:
        """One line for the prune report."""
        kind = "cross-entropy on labels" if self.supervised else "distillation loss"
        stop = f", {self.stopped}" if self.stopped else ""
        return (f"distillation: {self.epochs:.3g} epoch(s), held-out {kind} "
                f"{self.loss_before:.4g} -> {self.loss_after:.4g} ({self.tensors} tensors "
                f"trained, {self.seconds:.1f} s{stop})")


def distill(
    original: ir.ModelProto,
    pruned: ir.ModelProto,
    data: Dataset,
    *,
    epochs: int = 0,
    seconds: float | None = None,
    lr: float = LR,
    batch_size: int = BATCH,
    labels: bool = False,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
    output_weights: Mapping[str, float] | None = None,
    teacher: Shim | None = None,
) -> tuple[ir.ModelProto, DistillReport]:
    """Fine-tune ``pruned`` to match ``original`` on ``data`` and return the updated model.

    Args:
        original: the teacher.
        pruned: the student.
        data: calibration samples (a held-out slice is taken from them).
        epochs: at most this many passes (0: only ``seconds`` limits).
        seconds: at most this much wall time (None: only ``epochs`` limits).
        lr: Adam learning rate.
        batch_size: samples per step.
        labels: cross-entropy on the data's labels instead of the teacher.
        seed: shuffling seed.
        device: torch device.
        progress: one plain line per held-out measurement on stderr.
        output_weights: energy weights of the outputs in the loss (default 1 each).
        teacher: ``original`` as a shim on ``device`` (default: built here).

    Raises:
        InputError: bad options, or ``labels`` without labels in the data.

    """
    if epochs < 0 or (epochs == 0 and seconds is None):
        raise InputError(f"--distill-epochs {epochs}: must be at least 1 (or give "
                         "--distill-time)")
    if seconds is not None and not seconds > 0:
        raise InputError(f"--distill-time {seconds:g} s: must be positive")
    if lr <= 0 or batch_size < 1:
        raise InputError("distillation needs a positive learning rate and batch size")
    if labels and data.labels is None:
        raise InputError("supervised distillation needs labels: pass --labels or store "
                         "'labels' in the .npz")
    torch.manual_seed(seed)
    batch_size = _batch(pruned, batch_size)
    start = time.perf_counter()
    student = Shim(pruned, device=device)
    params = _trainable(student)
    if not params:
        raise InputError("the pruned model has no trainable weights for distillation")
    train, held = _split(data, batch_size if _fixed(pruned) else 1)
    teacher = teacher if teacher is not None else Shim(original, device=device)
    measures = () if labels else output_measures(teacher, data, batch_size, output_weights or {})
    t_train = None if labels else _teacher(teacher, train, batch_size, measures)
    t_held = None if labels else _teacher(teacher, held, batch_size, measures)
    opt = _Adam(params, lr)
    rng = np.random.default_rng(seed)
    n = len(train)
    run = _Run(student, measures, labels)
    before = run.epoch_loss(held, t_held, batch_size)
    best, best_state, stale, done, stopped = before, _snapshot(params), 0, 0.0, ""
    limit = float("inf") if seconds is None else seconds
    every = limit / 10 if seconds is not None else float("inf")
    next_check = start + every
    epoch = 0
    while not stopped:
        order = rng.permutation(n)
        for i in range(0, n - n % batch_size if _fixed(pruned) else n, batch_size):
            run.loss(train, t_train, order[i:i + batch_size]).backward()
            opt.step()
            done += len(order[i:i + batch_size]) / n
            now = time.perf_counter()
            if now - start >= limit or now >= next_check:
                break
        epoch_end = done >= epoch + 1 - 1e-9
        epoch = int(done + 1e-9)
        next_check = time.perf_counter() + every
        loss_now = run.epoch_loss(held, t_held, batch_size)
        if loss_now < best:
            best, best_state, stale = loss_now, _snapshot(params), 0
        else:
            stale += 1
        elapsed = time.perf_counter() - start
        # One plain line per measurement (no carriage returns in logs; -q silences it).
        line = (f"distillation: epoch {done:.2f}, {elapsed:.0f} s, held-out loss "
                f"{loss_now:.4g} (best {best:.4g}, start {before:.4g})")
        if progress:
            sys.stderr.write(f"onnxprune: {line}\n")
        else:
            note(line)
        if stale >= PATIENCE:
            stopped = f"early stop after {PATIENCE} measurements without improvement"
        elif elapsed >= limit:
            stopped = "time budget spent"
        elif epochs and epoch_end and epoch >= epochs:
            stopped = "epochs done"
    with torch.no_grad():
        for p, saved in zip(params, best_state, strict=True):
            p.copy_(saved)
    model = student.to_onnx(pruned)
    report = DistillReport(round(done, 3), before, best, len(params),
                           time.perf_counter() - start, labels, stopped)
    log.info(report.line())
    return model, report


def _split(data: Dataset, unit: int) -> tuple[Dataset, Dataset]:
    """Every HOLD_OUT-th sample (in whole batches of ``unit``) held out, the rest to train on."""
    n = len(data) - len(data) % unit
    blocks = np.arange(n // unit)
    held_blocks = blocks[HOLD_OUT - 1 :: HOLD_OUT] if len(blocks) >= 2 else blocks[:0]
    if len(blocks) >= 2 and not held_blocks.size:
        held_blocks = blocks[-1:]
    mask = np.zeros(n, bool)
    for b in held_blocks:
        mask[b * unit:(b + 1) * unit] = True
    held_idx, train_idx = np.flatnonzero(mask), np.flatnonzero(~mask)
    if not held_idx.size:  # too few samples to hold any out: measure on the training data
        held_idx = train_idx
    return _subset(data, train_idx), _subset(data, held_idx)


def _subset(data: Dataset, idx: np.ndarray) -> Dataset:
    labels = None if data.labels is None else data.labels[idx]
    return Dataset({k: v[idx] for k, v in data.inputs.items()}, labels, data.source)


def _snapshot(params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


class _Adam:
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


def _trainable(shim: Shim) -> list[torch.nn.Parameter]:
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


def _fixed(model: ir.ModelProto) -> bool:
    return any(s.shape and isinstance(s.shape[0], int) and s.shape[0] > 0
               for s in ir.io_specs(model))


def _batch(model: ir.ModelProto, batch_size: int) -> int:
    fixed = [s.shape[0] for s in ir.io_specs(model)
             if s.shape and isinstance(s.shape[0], int) and s.shape[0] > 0]
    return int(fixed[0]) if fixed else batch_size


@torch.no_grad()
def _teacher(teacher: Shim, data: Dataset, batch: int, measures: tuple[OutputMeasure, ...]
             ) -> list[torch.Tensor]:
    outs: list[list[torch.Tensor]] = []
    names = {m.tensor for m in measures if m.tensor != m.output}
    for feeds, _ in data.batches(batch):
        with teacher.watch(names, retain_grad=False) as watched:
            ys = teacher(feeds)
        outs.append([v.detach() for v in measured(measures, ys, watched)])
    return [torch.cat([o[k] for o in outs]) for k in range(len(outs[0]))]


class _Run:
    """The student's loss: the measured outputs' squared error per sample, or cross-entropy."""

    def __init__(self, student: Shim, measures: tuple[OutputMeasure, ...], labels: bool) -> None:
        self.student, self.measures, self.labels = student, measures, labels
        self.names = {m.tensor for m in measures if m.tensor != m.output}

    def loss(self, data: Dataset, targets: list[torch.Tensor] | None, idx: np.ndarray
             ) -> torch.Tensor:
        feeds = {k: v[idx] for k, v in data.inputs.items()}
        with self.student.watch(self.names, retain_grad=False) as watched:
            ys = self.student(feeds)
        if self.labels:
            assert data.labels is not None  # checked by distill()
            y = torch.as_tensor(data.labels[idx], device=ys[0].device).long()
            return torch.nn.functional.cross_entropy(ys[0].reshape(len(idx), -1), y)
        assert targets is not None
        t_idx = torch.as_tensor(idx, device=ys[0].device)
        total = ys[0].new_zeros(())
        for got, ref in zip(measured(self.measures, ys, watched), targets, strict=True):
            total = total + (got - ref.index_select(0, t_idx)).pow(2).sum() / len(idx)
        return total

    @torch.no_grad()
    def epoch_loss(self, data: Dataset, targets: list[torch.Tensor] | None, batch: int
                   ) -> float:
        n = len(data)
        losses = [float(self.loss(data, targets, np.arange(i, min(n, i + batch))))
                  * (min(n, i + batch) - i) for i in range(0, n, batch)]
        return sum(losses) / max(1, n)
