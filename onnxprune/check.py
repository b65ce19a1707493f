"""The fidelity gate: the pruned model against the original on the data, and ``--max-drop``.

``prune`` runs it whenever it has data (DESIGN.md §2.7). The *drop* is taken per output in
the most task-like unit the data allows, and the worst output counts:

* a class-score output (``[N, C]``): the accuracy drop when labels are given, else the share
  of samples whose top-1 class changed;
* any other output: 1 − its mean cosine to the original over the samples.

``MAX_DROP`` (0.05) is the default limit: a prune whose drop exceeds it is not written. It was
chosen from measurements (issue 12): compensated prunes at sensible targets stay well below
it (digits models at 50% and 30% of the MACs, 64 calibration samples: 0.000 in-sample and
at most 0.024 of changed top-1 classes on the 540 held-out test digits, uniform-L1 +
compensation included; the 28 test architectures at 70/50/30% on random data: 1 - cosine
0.000-0.003), while collapsed prunes are far above it (digits ResNet, uniform L1 without
compensation: 0.55 at 50%, 0.78 at 30%; PP-OCR angle classifier at 50%: 0.50; PP-OCR
detector calibrated on text-free photos at 50%: 0.875).

Where the drop is measured: data of ``HOLDOUT_MIN`` samples or more is split, the last
``max(HOLDOUT_MIN // 8, n // 8)`` samples are held out from the analysis, compensation and
distillation and only used here; smaller data is checked on all its samples (in-sample, so
optimistic for a fitted recovery, but a collapse shows either way).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from onnxprune import ir
from onnxprune.data import Dataset
from onnxprune.errors import CannotPruneError, InputError

if TYPE_CHECKING:
    from onnxprune.bench import FidelityReport

log = logging.getLogger(__name__)


MAX_DROP = 0.05
"""Default limit of the drop (see the module docstring for how it was chosen)."""
HOLDOUT_MIN = 512
"""Data with at least this many samples is split into fit and held-out check samples."""


@dataclass(frozen=True)
class CheckResult:
    """The fidelity report, the drop (worst output), what it measures and the limit.

    Attributes:
        fidelity: per-output cosine, max |diff| and top-1 agreement (and accuracies).
        drop: the worst output's drop.
        measure: what ``drop`` measures, naming the output.
        max_drop: the limit it was held to.
        held_out: whether the samples were held out from the fit (else in-sample).

    """

    fidelity: FidelityReport
    drop: float
    measure: str
    max_drop: float = MAX_DROP
    held_out: bool = False

    @property
    def passed(self) -> bool:
        """Whether the drop is within ``max_drop``."""
        return self.drop <= self.max_drop

    def line(self) -> str:
        """One line: the drop, on how many samples, against the limit."""
        where = "held-out" if self.held_out else "calibration"
        verdict = "within" if self.passed else "OVER"
        return (f"fidelity check on {self.fidelity.samples} {where} samples: {self.measure} "
                f"{self.drop:.4f}, {verdict} --max-drop {self.max_drop:g}")

    def lines(self) -> list[str]:
        """Printable lines: one per output, then the drop."""
        fid = self.fidelity
        out = [f"check on {fid.samples} calibration samples ({fid.source}):"]
        for o in fid.outputs:
            top1 = "" if o.top1_agreement is None else f", top-1 agreement {o.top1_agreement:.4f}"
            out.append(f"  output {o.name}: cosine mean {o.cosine:.5f} min {o.cosine_min:.5f}, "
                       f"max |diff| {o.max_abs:.4g}{top1}")
        if fid.accuracy_original is not None:
            out.append(f"  accuracy {fid.accuracy_original:.4f} -> {fid.accuracy_pruned:.4f}")
        out.append(f"  drop ({self.measure}): {self.drop:.4f} (--max-drop {self.max_drop:g})")
        return out


def check(original: ir.ModelProto, pruned: ir.ModelProto, data: Dataset, *,
          max_drop: float = MAX_DROP, held_out: bool = False) -> CheckResult:
    """Compare ``pruned`` with ``original`` on ``data`` (onnxruntime); the worst output counts."""
    from onnxprune.bench import fidelity

    fid = fidelity(original, pruned, data)
    labelled = fid.accuracy_original is not None and fid.accuracy_pruned is not None
    drops: list[tuple[float, str]] = []
    for o in fid.outputs:
        if o.top1_agreement is not None and labelled:
            drops.append((fid.accuracy_original - fid.accuracy_pruned,  # type: ignore[operator]
                          f"accuracy drop (output '{o.name}')"))
        elif o.top1_agreement is not None:
            drops.append((1.0 - o.top1_agreement, f"share of changed top-1 classes (output "
                                                   f"'{o.name}')"))
        else:
            drops.append((1.0 - o.cosine, f"1 - mean cosine (output '{o.name}')"))
    drop, measure = max(drops, key=lambda d: d[0])
    return CheckResult(fid, float(drop), measure, max_drop, held_out)


def split_holdout(data: Dataset) -> tuple[Dataset, Dataset | None]:
    """Return (fit samples, held-out check samples or None when the data is small)."""
    n = len(data)
    if n < HOLDOUT_MIN:
        return data, None
    k = max(HOLDOUT_MIN // 8, n // 8)
    return _part(data, slice(0, n - k)), _part(data, slice(n - k, n))


def _part(data: Dataset, part: slice) -> Dataset:
    labels = None if data.labels is None else data.labels[part]
    return Dataset({k: v[part] for k, v in data.inputs.items()}, labels, data.source,
                   data.validated)


def enforce(result: CheckResult, output: str, *, force: bool = False) -> None:
    """Refuse to write ``output`` when the check failed (warn instead with ``force``).

    Raises:
        CannotPruneError: the pruned model drops more than allowed and ``force`` is off.

    """
    if result.passed:
        return
    where = "held-out" if result.held_out else "calibration"
    text = (f"{output}: not written: the pruned model's {result.measure} is {result.drop:.4f} "
            f"on {result.fidelity.samples} {where} samples, over --max-drop "
            f"{result.max_drop:g}")
    if force:
        log.warning("%s; written anyway because of --force", text.replace(": not written", ""))
        return
    raise CannotPruneError(f"{text}; raise the target, add --distill-epochs, try exact widths "
                           "(--round-to 1: small nets lose more on the latency grid), check "
                           "the calibration data, or pass --force to write it anyway")


def check_max_drop(max_drop: float | None, has_data: bool) -> None:
    """Validate --max-drop before any work is done."""
    if max_drop is None:
        return
    if not 0.0 <= max_drop <= 1.0:
        raise InputError(f"--max-drop {max_drop}: must be in [0, 1], e.g. 0.01 for one point")
    if not has_data:
        raise InputError("--max-drop needs data to measure the drop on: pass --data")


def check_drop_limit(max_drop: float) -> None:
    """Validate a drop limit.

    Raises:
        InputError: outside [0, 1].

    """
    if not 0.0 <= max_drop <= 1.0:
        raise InputError(f"--max-drop {max_drop}: must be in [0, 1], e.g. 0.01 for one point")
