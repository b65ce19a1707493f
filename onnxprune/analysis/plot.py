"""Plot of an analysis: normalised spectra per group and each group's maximum rate."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from onnxprune.errors import InputError

if TYPE_CHECKING:
    from onnxprune.analysis.result import AnalysisResult


def _pyplot():  # type: ignore[no-untyped-def]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise InputError(
            "plotting needs matplotlib, which is not installed; pip install matplotlib "
            "(or onnxprune[plot]) or drop --plot"
        ) from e
    return plt


def plot(result: AnalysisResult, path: str | os.PathLike[str]) -> None:
    """Write the figure to ``path`` (format from the suffix, e.g. ``.png``/``.svg``).

    Left: σ_i/σ_1 against i/C for every analysed group (log scale). Right: each group's
    maximum compression rate 1 − r/C.

    Raises:
        InputError: matplotlib is missing or the file cannot be written.

    """
    plt = _pyplot()
    groups = [g for g in result.groups if g.analysed and g.singular_values is not None]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    floor = 1e-8
    for g in groups:
        sv = np.asarray(g.singular_values, dtype=np.float64)
        norm = np.maximum(sv / sv[0] if sv[0] > 0 else sv, floor)
        left.semilogy((np.arange(sv.size) + 1) / sv.size, norm, lw=1, label=f"g{g.id}")
    left.axhline(result.rel_tol, color="k", ls=":", lw=1, label=f"τ={result.rel_tol:g}")
    left.set(xlabel="i / C", ylabel="σ_i / σ_1", title="normalised spectra", ylim=(floor, 2))
    if len(groups) <= 12:
        left.legend(fontsize=7, ncol=2)
    ids = [str(g.id) for g in groups]
    rates = [g.max_rate or 0.0 for g in groups]
    colors = ["tab:orange" if g.status != "ok" else "tab:blue" for g in groups]
    right.bar(ids, rates, color=colors)
    right.set(xlabel="group", ylabel="max rate 1 − r/C", ylim=(0, 1),
              title="maximum compression rate (orange: not 'ok')")
    right.tick_params(axis="x", labelsize=7, rotation=90)
    fig.tight_layout()
    try:
        fig.savefig(os.fspath(path), dpi=120)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot write the plot ({e}); check the path and suffix") from e
    finally:
        plt.close(fig)
