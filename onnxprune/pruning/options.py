"""What a prune is asked for: one frozen :class:`PruneOptions`, validated once.

The CLI builds it from its flags, Python callers pass its fields as keyword arguments of
:func:`onnxprune.prune`. Adding an option is adding a field here (with its default and its
check in :meth:`PruneOptions.resolved`), a flag in ``commands/prune.py`` and its use.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from onnxprune.bench.runtime import check_session_options
from onnxprune.check import MAX_DROP, check_drop_limit
from onnxprune.errors import InputError
from onnxprune.pruning import allocation as alloc_mod
from onnxprune.pruning import grid
from onnxprune.pruning.compensation import RIDGE
from onnxprune.pruning.criteria import CRITERIA, NEEDS_ANALYSIS
from onnxprune.pruning.mixup import ALPHA as MIX


@dataclass(frozen=True)
class PruneOptions:
    """Everything :func:`onnxprune.prune` can be asked for.

    Exactly one of ``ratio``, ``target_macs``, ``target_params`` and ``target_latency`` is
    given. ``None`` for
    ``criterion``, ``allocation`` and ``compensate`` means "the default for the data given"
    and is filled in by :meth:`resolved`.

    Attributes:
        ratio: remove this share of every prunable group (the classic uniform baseline).
        target_macs: fraction of the MACs to keep, in (0, 1).
        target_params: fraction of the parameters to keep, in (0, 1).
        target_latency: fraction of the original's p50 latency to keep, in (0, 1): the
            allocation spends a measured latency table (``pruning/latency.py``) instead of MACs.
        criterion: which channels to keep: ``effective`` (default with data), ``taylor``,
            ``l1`` (default without data), ``l2``, ``random``.
        allocation: how many per group: ``hierarchical`` (default with data), ``uniform``,
            ``global``.
        energy_power: how much a group's total estimated loss weighs when the hierarchical
            allocation compares groups (``pruning/allocation.py``): 0 counts the share of each
            group's spectral energy discarded (every group alike), 1 the absolute estimate.
        objective: objective of the analysis (``output-aware`` by default).
        output_weights: (graph output, energy weight) pairs of the ``output-aware``
            objective, distillation loss and fidelity line (others weigh 1).
        compensate: fold dropped channels into kept ones (default: on when data is given).
        refine: refit each compensated consumer, in topological order, on the already
            pruned upstream model's activations against the original's consumer output.
        probe: before the final allocation, prune each group alone at a first allocation's
            width (compensated and refined) and measure its output error, so the allocation
            prices the groups by measured loss (``pruning/probe.py``; hierarchical
            ``--target-macs/params`` only; one refinement pass per pruned group).
        ridge: compensation ridge relative to the Gram's mean diagonal.
        distill_epochs: epochs of distillation against the original (0: none).
        distill_time: seconds of distillation (an alternative to epochs; both: first hit).
        distill_lr: Adam learning rate of distillation (None: 1e-4).
        distill_batch: distillation batch size (None: 32).
        distill_labels: distil with cross-entropy on the data's labels instead.
        distill_mix: Beta(α, α) of the consistent-teacher mixup of label-free distillation
            (each training sample mixed with a random other one, the teacher run on the
            mix; ``pruning/mixup.py``); 0 trains on the samples as they are.
        round_to: widths are multiples of this (the full width is always allowed);
            ``auto`` (default): the grid the provider's fast kernels want (``pruning/grid.py``),
            relaxed only where the target cannot be reached on it; 1: exact MACs.
        min_channels: no group goes below this width.
        exclude: group ids (as text) or root node names to leave alone.
        steps: reach the target in this many steps, re-analysing in between.
        seed: seed of ``random``, the analysis directions and distillation.
        device: torch device of the analysis and distillation.
        progress: report progress on stderr.
        threads: onnxruntime intra-op threads of the latency table and the speed check.
        provider: onnxruntime provider (``cpu``, ``cuda``) of the latency table and grid.
        optimization: onnxruntime graph optimisation level of the latency measurements.
        max_drop: the fidelity gate's limit (:mod:`onnxprune.check`); the result's
            ``check.passed`` says whether the pruned model is within it (the CLI refuses to
            write it otherwise).

    """

    ratio: float | None = None
    target_macs: float | None = None
    target_params: float | None = None
    target_latency: float | None = None
    criterion: str | None = None
    allocation: str | None = None
    energy_power: float = alloc_mod.ENERGY_POWER
    objective: str = "output-aware"
    output_weights: tuple[tuple[str, float], ...] = ()
    compensate: bool | None = None
    refine: bool = True
    probe: bool = False
    ridge: float = RIDGE
    distill_epochs: int = 0
    distill_time: float | None = None
    distill_lr: float | None = None
    distill_batch: int | None = None
    distill_labels: bool = False
    distill_mix: float = MIX
    round_to: int | str = grid.AUTO
    min_channels: int = 1
    exclude: tuple[str, ...] = ()
    steps: int = 1
    seed: int = 0
    device: str = "cpu"
    progress: bool = False
    threads: int = 1
    provider: str = "cpu"
    optimization: str = "all"
    max_drop: float = MAX_DROP

    @classmethod
    def of(cls, base: PruneOptions | None = None, **changes: object) -> PruneOptions:
        """Build options from ``base`` (or the defaults) with keyword changes.

        Raises:
            InputError: a keyword that is not an option.

        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise InputError(f"unknown prune option '{unknown[0]}'; options are "
                             f"{', '.join(sorted(known))}")
        if "exclude" in changes:
            changes["exclude"] = tuple(changes["exclude"])  # type: ignore[arg-type]
        if isinstance(changes.get("output_weights"), dict):
            changes["output_weights"] = tuple(changes["output_weights"].items())  # type: ignore[union-attr]
        return replace(base or cls(), **changes)  # type: ignore[arg-type]

    # -- derived ---------------------------------------------------------------------------
    @property
    def metric(self) -> str | None:
        """``macs``, ``params`` or ``latency`` for a target, None for a ratio."""
        if self.ratio is not None:
            return None
        if self.target_latency is not None:
            return "latency"
        return "macs" if self.target_macs is not None else "params"

    @property
    def target(self) -> float | None:
        """The fraction of the metric to keep (None for a ratio)."""
        for value in (self.target_macs, self.target_params, self.target_latency):
            if value is not None:
                return value
        return None

    @property
    def distils(self) -> bool:
        """Return whether distillation was asked for (by epochs or by time)."""
        return bool(self.distill_epochs) or self.distill_time is not None

    @property
    def needs_analysis(self) -> bool:
        """Return whether the analysis (and so data) is needed."""
        return (self.allocation == "hierarchical" or self.criterion in NEEDS_ANALYSIS
                or bool(self.compensate))

    # -- validation ------------------------------------------------------------------------
    def resolved(self, *, has_data: bool) -> PruneOptions:
        """Fill in the data-dependent defaults and check every option, once.

        Raises:
            InputError: an option out of range, a combination that does not make sense, or
                options that need calibration data without it.

        """
        self._check_goal()
        allocation = self.allocation or (
            "hierarchical" if has_data and self.ratio is None else "uniform")
        criterion = self.criterion or ("effective" if has_data and self.ratio is None
                                       else "l1")
        compensate = (has_data and self.ratio is None) if self.compensate is None \
            else bool(self.compensate)
        opts = replace(self, allocation=allocation, criterion=criterion, compensate=compensate,
                       exclude=tuple(self.exclude))
        opts._check_values()
        if opts.probe and (opts.metric is None or opts.target_latency is not None
                           or allocation != "hierarchical" or not compensate):
            raise InputError("--probe measures groups for the hierarchical allocation of "
                             "--target-macs/--target-params with compensation; drop --probe, "
                             "or use --target-macs with --data")
        if opts.needs_analysis and not has_data:
            need = [w for w, on in (
                (f"--allocation {allocation}", allocation == "hierarchical"),
                (f"--criterion {criterion}", criterion in NEEDS_ANALYSIS),
                ("compensation", compensate)) if on]
            raise InputError(
                f"{' and '.join(need)} need(s) calibration data: pass --data FILE.npz (or "
                "--random-data N), or use --allocation uniform --criterion l1 --no-compensation"
            )
        return opts

    def _check_goal(self) -> None:
        given = [n for n, v in (("ratio", self.ratio), ("target-macs", self.target_macs),
                                ("target-params", self.target_params),
                                ("target-latency", self.target_latency)) if v is not None]
        if len(given) != 1:
            raise InputError("give exactly one of --target-macs, --target-params, "
                             "--target-latency or --ratio "
                             f"(got {', '.join(given) or 'none'})")
        if self.metric is not None:
            alloc_mod.check_target(self.target, f"target-{self.metric}")
        if self.ratio is not None and not 0.0 < self.ratio < 1.0:
            raise InputError(f"--ratio {self.ratio}: must be strictly between 0 and 1, e.g. 0.3 "
                             "(the share of each group's channels to remove)")
        if self.ratio is not None and self.allocation not in (None, "uniform"):
            raise InputError("--ratio removes the same share of every group; use --target-macs "
                             "for --allocation hierarchical/global")

    def _check_values(self) -> None:
        if self.device != "cpu":  # torch loads only where it is asked for
            from onnxprune.shim.dtypes import torch_device

            torch_device(self.device)
        if self.allocation not in alloc_mod.ALLOCATIONS:
            raise InputError(f"unknown allocation '{self.allocation}'; choose one of "
                             f"{', '.join(alloc_mod.ALLOCATIONS)}")
        if self.criterion not in CRITERIA:
            raise InputError(f"unknown criterion '{self.criterion}'; choose one of "
                             f"{sorted(CRITERIA)}")
        if self.round_to != grid.AUTO and (not isinstance(self.round_to, int)
                                           or self.round_to < 1):
            raise InputError(f"--round-to {self.round_to}: use 'auto' or an integer >= 1")
        if not 0.0 <= self.energy_power <= 1.0:
            raise InputError(f"--energy-power {self.energy_power:g}: must be between 0 (every "
                             f"group alike) and 1 (the absolute estimate), e.g. "
                             f"{alloc_mod.ENERGY_POWER:g}")
        if self.min_channels < 1:
            raise InputError("--min-channels must be at least 1")
        if self.metric == "latency" and self.steps > 1:
            raise InputError("--target-latency prunes in one step; drop --steps")
        check_session_options(self.threads, self.optimization, self.provider)
        if self.steps < 1:
            raise InputError(f"--steps {self.steps}: must be at least 1")
        if self.steps > 1 and self.ratio is not None:
            raise InputError("--steps needs --target-macs or --target-params")
        if self.ridge <= 0:
            raise InputError(f"ridge {self.ridge}: must be positive, e.g. {RIDGE:g}")
        check_drop_limit(self.max_drop)
        if self.distill_epochs < 0:
            raise InputError(f"--distill-epochs {self.distill_epochs}: must be 0 (none) or more")
        if not self.distill_mix >= 0:
            raise InputError(f"--distill-mix {self.distill_mix:g}: must be 0 (no mixing) or "
                             f"more, e.g. {MIX:g}")
        if self.distill_time is not None and not self.distill_time > 0:
            raise InputError(f"--distill-time {self.distill_time:g} s: must be positive, "
                             "e.g. 5m")
        for name, w in self.output_weights:
            if not w >= 0:
                raise InputError(f"--output-weight {name}={w:g}: weights must be 0 or more")
