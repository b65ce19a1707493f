"""Distillation: fine-tune a pruned model through the torch shim to match the original.

The original model is the teacher; its outputs on the calibration inputs are computed once.
The pruned model runs in the shim, and only its trainable weights move: the weights and
biases of Conv/ConvTranspose/Gemm/MatMul and the scale/bias of normalisation layers (running
statistics, Resize scales, shape constants never change). Label-free by default, the loss is
the output-aware metric of the analysis (:mod:`onnxprune.analysis.measure`): the squared
error of every output's standardised logits, each output weighing alike (1.0 = an error as
large as the output's calibration spread); with ``labels``, cross-entropy of the first
output against the labels. Adam (peak learning rate 1e-4 by default: on the digits ResNet,
pruned to 30 % of its MACs and compensated, 1e-3 first *raised* the loss from 0.025 to 2.5
in one epoch, 1e-4 lowered it steadily) with a cosine decay to 0 over the budget (the time
or the epochs, whichever is further spent), seeded shuffling, for ``epochs`` passes or
``seconds`` of wall time, whichever ends first. A graph exported with a fixed batch (PicoDet,
MTCNN: batch 1) runs that many samples at a time and sums the gradients of several runs into
each step, so every step still sees about ``batch_size`` samples (one Adam step per sample,
as before, moved every weight by about the learning rate on one sample's noise).

Label-free, each training sample is mixed with a random other one and the teacher runs on the
mixed batch (``mix``: Beta(α, α) weights, :mod:`onnxprune.pruning.mixup`): with a few hundred
samples the student otherwise memorises them (training loss ~0, held-out no better).

A held-out slice of the calibration data (every 8th sample, at least one, never mixed) is
never trained on (at most ``HELD_MAX`` samples): the loss there is measured after every epoch
(every tenth of a time budget, or less often where one check costs more than a hundredth of
it, once the step in progress is complete), printed as a plain progress line. The final
weights are written back into the ONNX initializers when their held-out loss is no worse
than the start's, else the best weights measured (possibly the starting ones); training
stops early after ``PATIENCE`` measurements in a row worse than the start. So distillation
never makes the held-out fit worse. (Picking the best measurement instead of the end let a
held-out slice of 32 samples choose by its noise: on PP-OCR cls it kept a state from the
first 30 s of 300.)
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
from onnxprune.data import Dataset
from onnxprune.errors import InputError
from onnxprune.progress import note
from onnxprune.pruning.mixup import ALPHA, Mixer
from onnxprune.pruning.training import Adam, cosine, snapshot, split, spread, trainable
from onnxprune.shim.module import Shim

log = logging.getLogger(__name__)

LR = 1e-4
BATCH = 32
PATIENCE = 4
"""Held-out measurements in a row worse than the start before distillation stops."""
CHECK_SHARE = 0.1
"""On a time budget, the held-out checks take at most about this share of it."""
MEASURED_MAX = 256
"""The outputs' scales are calibrated on at most this many samples, spread over the data."""

@dataclass(frozen=True)
class DistillReport:
    """Held-out loss before and after, epochs, trained tensors, samples and wall time."""

    epochs: float
    loss_before: float
    loss_after: float
    tensors: int
    seconds: float
    supervised: bool
    stopped: str = ""
    mixed: bool = False
    samples: int = 0
    """Samples trained on (the held-out slice not counted)."""

    def line(self) -> str:
        """One line for the prune report."""
        kind = "cross-entropy on labels" if self.supervised else "distillation loss"
        stop = (", on mixed inputs" if self.mixed else "") + (
            f", {self.stopped}" if self.stopped else "")
        return (f"distillation: {self.epochs:.3g} epoch(s), held-out {kind} "
                f"{self.loss_before:.4g} -> {self.loss_after:.4g} ({self.tensors} tensors "
                f"trained on {self.samples} samples, {self.seconds:.1f} s{stop})")


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
    mix: float = ALPHA,
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
        mix: Beta(α, α) of the consistent-teacher mixup (0: none; never with ``labels``).

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
    if not mix >= 0:
        raise InputError(f"--distill-mix {mix:g}: must be 0 (no mixing) or more, e.g. {ALPHA:g}")
    if labels and data.labels is None:
        raise InputError("supervised distillation needs labels: pass --labels or store "
                         "'labels' in the .npz")
    torch.manual_seed(seed)
    asked_batch = batch_size
    fixed = ir.fixed_batch(pruned)
    batch_size = fixed or batch_size
    unit = batch_size if fixed else 1  # a fixed-batch graph takes whole batches only
    # A graph with a fixed batch runs a few samples at a time: their gradients are summed
    # over ``accum`` runs per step, so every Adam step still sees about ``asked_batch``.
    accum = max(1, asked_batch // batch_size)
    start = time.perf_counter()
    student = Shim(pruned, device=device)
    params = trainable(student)
    if not params:
        raise InputError("the pruned model has no trainable weights for distillation")
    train, held = split(data, unit)
    teacher = teacher if teacher is not None else Shim(original, device=device)
    # the outputs' calibration spread: MEASURED_MAX samples suffice; all 1024 pages of a
    # detector's --distill-data took ~170 s of a 300 s budget (170 ms a page at one thread)
    sample = spread(data, MEASURED_MAX, unit)
    measures = () if labels else output_measures(teacher, sample, batch_size, output_weights or {})
    mixer = Mixer(train.inputs, 0.0 if labels else mix, seed)
    t_train = None if labels or mixer.active else _teacher(teacher, train, batch_size, measures)
    t_held = None if labels else _teacher(teacher, held, batch_size, measures)
    opt = Adam(params, lr)
    rng = np.random.default_rng(seed)
    n = len(train)
    run = _Run(student, measures, labels)
    asked = _Run(teacher, measures, labels)  # the teacher, on the mixed inputs
    t_check = time.perf_counter()
    before = run.epoch_loss(held, t_held, batch_size)
    t_check = time.perf_counter() - t_check
    best, best_state, stale, done, stopped = before, snapshot(params), 0, 0.0, ""
    limit = float("inf") if seconds is None else seconds
    # every tenth of a time budget, but the checks take at most about CHECK_SHARE of it
    every = max(limit / 10, t_check / CHECK_SHARE) if seconds is not None else float("inf")
    next_check = start + every
    epoch = 0
    while not stopped:
        order = rng.permutation(n)
        pending = 0
        for i in range(0, n - n % unit, batch_size):
            idx = order[i:i + batch_size]
            if mixer.active:  # the teacher answers on the very inputs the student sees
                feeds = mixer.feeds(idx)
                with torch.no_grad():
                    targets = asked.measure(feeds)
                (run.loss(feeds, targets) / accum).backward()
            else:
                (run.loss(*_pick(train, t_train, idx)) / accum).backward()
            pending += 1
            done += len(idx) / n
            now = time.perf_counter()
            spent = now - start >= limit
            if pending == accum or spent:
                opt.lr = lr * cosine(now - start, limit, done, epochs)
                opt.step()
                pending = 0
            # a held-out check waits for the step in progress: forcing a step at every check
            # cut PicoDet's (2 s a sample, a check every 30 s) to ~9 samples instead of 32
            if spent or (now >= next_check and not pending):
                break
        if pending:  # the epoch's last few runs: a (smaller) step of their own
            opt.step()
        epoch_end = done >= epoch + 1 - 1e-9
        epoch = int(done + 1e-9)
        now = time.perf_counter()
        if (seconds is not None and now < next_check and now - start < limit
                and not (epochs and epoch >= epochs)):
            continue  # on a time budget the held-out loss is measured every tenth of it
        next_check = now + every
        loss_now = run.epoch_loss(held, t_held, batch_size)
        if loss_now < best:
            best, best_state = loss_now, snapshot(params)
        stale = stale + 1 if loss_now > before else 0
        elapsed = time.perf_counter() - start
        # One plain line per measurement (no carriage returns in logs; -q silences it).
        line = (f"distillation: epoch {done:.2f}, {elapsed:.0f} s, held-out loss "
                f"{loss_now:.4g} (best {best:.4g}, start {before:.4g})")
        if progress:
            sys.stderr.write(f"onnxprune: {line}\n")
        else:
            note(line)
        if stale >= PATIENCE:
            stopped = f"early stop: held-out loss above the start {PATIENCE} times in a row"
        elif elapsed >= limit:
            stopped = "time budget spent"
        elif epochs and epoch_end and epoch >= epochs:
            stopped = "epochs done"
    if loss_now > before:  # the end is worse than the start: the best state seen instead
        with torch.no_grad():
            for p, saved in zip(params, best_state, strict=True):
                p.copy_(saved)
    model = student.to_onnx(pruned)
    report = DistillReport(round(done, 3), before, best if loss_now > before else loss_now,
                           len(params),
                           time.perf_counter() - start, labels, stopped, mixer.active, n)
    log.info(report.line())
    return model, report


@torch.no_grad()
def _teacher(teacher: Shim, data: Dataset, batch: int, measures: tuple[OutputMeasure, ...]
             ) -> list[torch.Tensor]:
    run = _Run(teacher, measures, False)
    outs = [[v.detach() for v in run.measure(feeds)] for feeds, _ in data.batches(batch)]
    return [torch.cat([o[k] for o in outs]) for k in range(len(outs[0]))]


def _pick(data: Dataset, targets: list[torch.Tensor] | None, idx: np.ndarray
          ) -> tuple[dict[str, np.ndarray], list[torch.Tensor] | np.ndarray]:
    """Return the feeds of samples ``idx`` and their targets (teacher outputs, or labels)."""
    feeds = {k: v[idx] for k, v in data.inputs.items()}
    if targets is None:
        assert data.labels is not None  # checked by distill()
        return feeds, data.labels[idx]
    t_idx = torch.as_tensor(idx, device=targets[0].device)
    return feeds, [t.index_select(0, t_idx) for t in targets]


class _Run:
    """A shim's measured outputs, and its loss: their squared error per sample, or cross-entropy."""

    def __init__(self, shim: Shim, measures: tuple[OutputMeasure, ...], labels: bool) -> None:
        self.shim, self.measures, self.labels = shim, measures, labels
        self.names = {m.tensor for m in measures if m.tensor != m.output}

    def measure(self, feeds: dict[str, np.ndarray]) -> list[torch.Tensor]:
        """Return the measured outputs on ``feeds`` (the raw outputs when training on labels)."""
        with self.shim.watch(self.names, retain_grad=False) as watched:
            ys = self.shim(feeds)
        return list(ys) if self.labels else measured(self.measures, ys, watched)

    def loss(self, feeds: dict[str, np.ndarray], targets: list[torch.Tensor] | np.ndarray
             ) -> torch.Tensor:
        got = self.measure(feeds)
        n = len(next(iter(feeds.values())))
        if self.labels:
            y = torch.as_tensor(targets, device=got[0].device).long()
            return torch.nn.functional.cross_entropy(got[0].reshape(n, -1), y)
        total = got[0].new_zeros(())
        for g, ref in zip(got, targets, strict=True):
            total = total + (g - ref).pow(2).sum() / n
        return total

    @torch.no_grad()
    def epoch_loss(self, data: Dataset, targets: list[torch.Tensor] | None, batch: int
                   ) -> float:
        n = len(data)
        losses = [float(self.loss(*_pick(data, targets, np.arange(i, min(n, i + batch)))))
                  * (min(n, i + batch) - i) for i in range(0, n, batch)]
        return sum(losses) / max(1, n)
