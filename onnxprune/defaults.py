"""Defaults and choices that the CLI needs before any heavy module (torch) is imported."""

from __future__ import annotations

OBJECTIVES = ("output-aware", "gauss-newton", "labels", "pseudo-label")
"""Objectives of the effective filter analysis (see :mod:`onnxprune.analysis.objectives`)."""

ENERGY_EPS = 1e-4
"""Default ε: share of the spectral energy the effective rank may leave out
(see :mod:`onnxprune.analysis.spectrum`)."""

REL_TOL = 1e-3
"""Default τ: singular values at or below τ·σ_1 do not count towards the threshold rank."""

RANDOM_SAMPLES = 32
"""Seeded normal samples drawn when no data is given."""
