"""``prune --check``: fidelity of the pruned model on the calibration data, and ``--max-drop``.

The *drop* is measured in the most task-like unit the data allows: the accuracy drop when
labels are given; else, for classifiers, the share of samples whose top-1 class changed;
else 1 − the mean cosine of the least faithful output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import onnx

from onnxprune.data import Dataset
from onnxprune.errors import CannotPruneError, InputError

if TYPE_CHECKING:
    from onnxprune.bench import FidelityReport


@dataclass(frozen=True)
class CheckResult:
    """The fidelity report, the drop and what it measures."""

    fidelity: FidelityReport
    drop: float
    measure: str

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
        out.append(f"  drop ({self.measure}): {self.drop:.4f}")
        return out


def check(original: onnx.ModelProto, pruned: onnx.ModelProto, data: Dataset) -> CheckResult:
    """Compare ``pruned`` with ``original`` on ``data`` (onnxruntime)."""
    from onnxprune.bench import fidelity

    fid = fidelity(original, pruned, data)
    if fid.accuracy_original is not None and fid.accuracy_pruned is not None:
        return CheckResult(fid, fid.accuracy_original - fid.accuracy_pruned, "accuracy drop")
    agree = [o.top1_agreement for o in fid.outputs if o.top1_agreement is not None]
    if agree:
        return CheckResult(fid, 1.0 - min(agree), "share of changed top-1 classes")
    return CheckResult(fid, 1.0 - min(o.cosine for o in fid.outputs), "1 - mean cosine")


def enforce(result: CheckResult, max_drop: float | None) -> None:
    """Raise when the drop exceeds ``max_drop``.

    Raises:
        CannotPruneError: the pruned model drops more than allowed.

    """
    if max_drop is None:
        return
    if result.drop > max_drop:
        raise CannotPruneError(
            f"pruned model fails --max-drop {max_drop:g}: {result.measure} is "
            f"{result.drop:.4f}; nothing written - raise the target, add --distill-epochs, "
            "or allow a larger drop"
        )


def check_max_drop(max_drop: float | None, has_data: bool) -> None:
    """Validate --max-drop before any work is done."""
    if max_drop is None:
        return
    if not 0.0 <= max_drop <= 1.0:
        raise InputError(f"--max-drop {max_drop}: must be in [0, 1], e.g. 0.01 for one point")
    if not has_data:
        raise InputError("--max-drop needs data to measure the drop on: pass --data")
