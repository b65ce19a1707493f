"""Keep a finer grid than the provider's channel block only if it is measured to stay fast.

``round-to auto`` leaves the block grid (16 channels with AVX-512) for a finer one when the
grid costs too much of the analysis' estimated loss (``targets._affordable_grid``: narrow nets
such as MTCNN lose their task on a 16-channel grid). But widths off the block also take convs
off onnxruntime's blocked (NCHWc) kernels (MLAS wants the channel counts in multiples of its
block), with reorders around them: the MobileNet family ran 0.6-0.8x of the original's speed at
exact widths (``benchmarks/results/speedup_2026-11-27.md``, ``--round-to 1``).
So when the loss rule picks a finer grid, both structures (surgery only: latency does not
depend on the weights) are timed against the original,
interleaved, and the finer grid is kept only while it is faster than the original and keeps
at least :data:`KEEP` of the block grid's speed-up. Timing noise can tip a close call either
way; both choices meet the target, and the report says what was measured.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from onnxprune.bench.speed import speed_check
from onnxprune.model import Model
from onnxprune.pruning.options import PruneOptions
from onnxprune.pruning.plan import Plan
from onnxprune.surgery import apply_plan

KEEP = 0.85
"""Share of the block grid's measured speed-up the finer grid must keep."""
SWITCH = "ONNXPRUNE_GRID_GUARD"
"""Environment variable: ``0`` skips the measurement and keeps the loss rule's grid (the test
suite sets it, so that results there do not depend on timing)."""


def enabled() -> bool:
    """Whether the guard measures (see :data:`SWITCH`)."""
    return os.environ.get(SWITCH, "1") != "0"


@dataclass(frozen=True)
class GridChoice:
    """The measured speed-ups of both grids and which one is kept."""

    fine: int
    block: int
    fine_speedup: float
    block_speedup: float
    provider: str = "cpu"

    @property
    def keep_fine(self) -> bool:
        """Whether the finer grid is fast enough (see the module doc)."""
        return self.fine_speedup >= 1.0 and self.fine_speedup >= KEEP * self.block_speedup

    def line(self) -> str:
        """One line for the report."""
        kept = (f"kept multiples of {self.fine} (their estimated loss is lower)" if self.keep_fine
                else f"kept the grid of {self.block} (the finer widths are slower)")
        return (f"round-to auto: widths in multiples of {self.fine} measured "
                f"{self.fine_speedup:.2f}x, on the grid of {self.block} "
                f"{self.block_speedup:.2f}x the original's speed (structure only, interleaved, "
                f"{self.provider}); {kept}")


def measure(model: Model, fine: Plan, block: Plan, fine_step: int, block_step: int,
            opts: PruneOptions) -> GridChoice:
    """Time the two plans' structures against the original (surgery only, no recovery)."""
    speedups = []
    for plan in (fine, block):
        pruned = apply_plan(model, plan.keep(), check=False)
        speed = speed_check(model.unchanged_file or model.proto, pruned, model.input_shapes,
                            threads=opts.threads, provider=opts.provider,
                            optimization=opts.optimization)
        speedups.append(speed.speedup)
    return GridChoice(fine_step, block_step, speedups[0], speedups[1], opts.provider)
