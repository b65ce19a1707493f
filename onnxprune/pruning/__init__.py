"""Pruning: from options to a verified result, with plans as plain data.

The steps: options -> analysis -> how many (targets, allocation) -> which (select,
criteria) -> surgery -> recovery (compensation, distillation) -> verified result.

- ``options``: :class:`Options`, validated once;
- ``pipeline``: :func:`prune` and :func:`apply`, the steps in order;
- ``recovery``: surgery with compensation and refinement, distillation, the shared teacher;
- ``targets`` / ``allocation``: widths per group for a MACs/params target;
- ``select`` / ``criteria``: which channels each group keeps;
- ``compensation`` / ``distill``: recovery without training code;
- ``plan`` / ``compose``: plans as JSON-able data, composed across steps;
- ``result``: :class:`PruneResult` and its tables.
"""

from __future__ import annotations

from onnxprune.pruning.pipeline import apply, prune
from onnxprune.pruning.plan import Plan, load_plan
from onnxprune.pruning.result import PruneResult
from onnxprune.pruning.select import ratio_plan

__all__ = ["Plan", "PruneResult", "apply", "load_plan", "prune", "ratio_plan"]
