"""Plot of an analysis: normalised spectra per group and each group's maximum rate."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

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


LEGEND_MAX = 20
"""Up to this many groups get a legend entry each; more are coloured by group id."""


def plot(result: AnalysisResult, path: str | os.PathLike[str]) -> None:
    """Write the figure to ``path`` (format from the suffix, e.g. ``.png``/``.svg``).

    Left: σ_i/σ_1 against i/C for every analysed group (log scale): a legend entry per group
    up to :data:`LEGEND_MAX` groups (20 distinct colours x line styles), beyond that a colour
    scale by group id. Right: every group's maximum compression rate 1 − r/C, with groups
    that have no rate (blocked, single channel, no signal) drawn as grey hatched bars and
    named in the legend, so no group is silently left out.

    Raises:
        InputError: matplotlib is missing or the file cannot be written.

    """
    plt = _pyplot()
    groups = [g for g in result.groups if g.analysed and g.singular_values is not None]
    n_all = len(result.groups)
    width = min(24.0, max(12.0, 0.22 * n_all + 6))
    fig, (left, right) = plt.subplots(1, 2, figsize=(width, 5.5),
                                      gridspec_kw={"width_ratios": [1, 1.3]})
    _spectra(plt, fig, left, groups, result.rel_tol)
    _rates(right, result)
    fig.tight_layout()
    try:
        fig.savefig(os.fspath(path), dpi=120)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot write the plot ({e}); check the path and suffix") from e
    finally:
        plt.close(fig)


def _spectra(plt: Any, fig: Any, ax: Any, groups: list[Any], rel_tol: float) -> None:
    floor = 1e-8
    many = len(groups) > LEGEND_MAX
    cmap = plt.get_cmap("viridis" if many else "tab10")
    styles = ("-", "--", ":", "-.")
    ids = [g.id for g in groups] or [0]
    for k, g in enumerate(groups):
        sv = np.asarray(g.singular_values, dtype=np.float64)
        norm = np.maximum(sv / sv[0] if sv[0] > 0 else sv, floor)
        if many:
            color, style = cmap((g.id - min(ids)) / max(1, max(ids) - min(ids))), "-"
        else:
            color, style = cmap(k % 10), styles[(k // 10) % len(styles)]
        ax.semilogy((np.arange(sv.size) + 1) / sv.size, norm, lw=1, color=color, ls=style,
                    label=f"g{g.id}")
    ax.axhline(rel_tol, color="k", ls=":", lw=1, label=f"τ={rel_tol:g}")
    ax.set(xlabel="i / C", ylabel="σ_i / σ_1", ylim=(floor, 2),
           title=f"normalised spectra ({len(groups)} analysed groups)")
    if many:
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        scale = ScalarMappable(norm=Normalize(min(ids), max(ids)), cmap=cmap)
        fig.colorbar(scale, ax=ax, label="group id")
        ax.text(0.02, rel_tol * 1.5, f"τ={rel_tol:g}", fontsize=7)
    else:
        ax.legend(fontsize=7, ncol=2 if len(groups) > 10 else 1, loc="lower left")


def _rates(ax: Any, result: AnalysisResult) -> None:
    from matplotlib.patches import Patch

    groups = list(result.groups)
    x = np.arange(len(groups))
    rated = [g.max_rate is not None for g in groups]
    rates = [g.max_rate if g.max_rate is not None else 1.0 for g in groups]
    colors = ["tab:blue" if g.status == "ok" else "tab:orange" if ok else "white"
              for g, ok in zip(groups, rated, strict=True)]
    hatches = ["" if ok else "//" for ok in rated]
    # a group without a rate is a full-height hatched outline: "n/a", not a rate of 1
    bars = ax.bar(x, rates, color=colors, edgecolor=["none" if ok else "0.6" for ok in rated])
    for bar, hatch in zip(bars, hatches, strict=True):
        bar.set_hatch(hatch)
    step = max(1, len(groups) // 40)  # at most ~40 tick labels
    ax.set_xticks(x[::step], [str(g.id) for g in groups][::step], fontsize=7, rotation=90)
    ax.set(xlabel="group", ylabel="max rate 1 − r/C", ylim=(0, 1.05),
           title="maximum compression rate per group")
    blocked = sum(not ok for ok in rated)
    ax.legend(handles=[
        Patch(color="tab:blue", label="ok"),
        Patch(color="tab:orange", label="limited (data-limited, taylor-fallback)"),
        Patch(facecolor="white", edgecolor="0.6", hatch="//",
              label=f"no rate: blocked / single channel / no signal ({blocked})"),
    ], fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, frameon=False)
