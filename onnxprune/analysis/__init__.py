"""Effective filter analysis: how many filters of each channel group the model really uses.

For every prunable group the per-sample gradients of the weights that *read* its channels
(the consumers' input weights) are stacked into a matrix G_g with one column per channel;
dead, duplicated and linearly dependent channels make its columns dependent. The numerical
rank of G_g, read from the spectrum of its Gram matrix K_g = G_gᵀG_g (accumulated batch by
batch, never materialised), counts the effective filters, and 1 − rank/C is the group's
maximum compression rate. See DESIGN.md §2.3.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import numpy as np
import torch

from onnxprune import ir
from onnxprune.analysis.collect import GroupStats, collect, freeze, trim_heap
from onnxprune.analysis.estimate import network_estimate
from onnxprune.analysis.gram import ConsumerStats
from onnxprune.analysis.measure import output_measures
from onnxprune.analysis.objectives import OBJECTIVES, Objective
from onnxprune.analysis.result import STATUSES, AnalysisResult, GroupAnalysis, NetworkEstimate
from onnxprune.analysis.specs import group_specs
from onnxprune.analysis.spectrum import ENERGY_EPS, REL_TOL, Spectrum, spectrum
from onnxprune.analysis.summary import summarise, warn
from onnxprune.analysis.taylor import TaylorStats
from onnxprune.data import Dataset, load_data
from onnxprune.defaults import RANDOM_SAMPLES
from onnxprune.errors import InputError
from onnxprune.model import Model
from onnxprune.shim.dtypes import torch_device
from onnxprune.shim.module import Shim

log = logging.getLogger(__name__)

__all__ = [
    "ENERGY_EPS", "MIN_SAMPLES", "OBJECTIVES", "RANDOM_SAMPLES", "REL_TOL", "STATUSES",
    "AnalysisResult", "ConsumerStats", "GroupAnalysis", "NetworkEstimate", "Spectrum",
    "TaylorStats", "analyze", "spectrum",
]

MIN_SAMPLES = 2
"""Fewer samples than this cannot show redundancy *across* inputs."""

ACTIVATION_BUDGET = 192 << 20
"""Bytes of activations one batch may hold on the CPU: they stay alive through every backward
pass, so a larger ``batch_size`` is lowered to fit (the results do not depend on the batch
size)."""
GPU_SHARE = 0.25
"""On a GPU, the share of its free memory that one batch's activations may take instead. The
CPU budget there held PP-OCR det and rec to one sample per pass, and the shim's per-node Python
work then made an H100 no faster than a 2-core CPU; with this share rec's analysis of 64 lines
went from 19.0 s to 3.9 s there (``benchmarks/results/gpu_2026-11-28``)."""



def analyze(
    model: Model,
    data: Dataset | None = None,
    *,
    objective: str = "output-aware",
    directions: int = 4,
    batch_size: int = 16,
    energy_eps: float = ENERGY_EPS,
    rel_tol: float = REL_TOL,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = False,
    estimate: bool = True,
    output_weights: Mapping[str, float] | None = None,
    shim: Shim | None = None,
) -> AnalysisResult:
    """Run the effective filter analysis of every prunable group of ``model``.

    Args:
        model: a loaded model (``onnxprune.load``).
        data: calibration samples (``onnxprune.data.load_data``); ``None`` draws
            :data:`RANDOM_SAMPLES` seeded normal samples (weights-only, not task-aware).
        objective: ``output-aware`` (any model, each output in its own scale, see
            :mod:`onnxprune.analysis.measure`), ``gauss-newton`` (the raw outputs),
            ``labels`` (cross-entropy against
            ``data.labels``) or ``pseudo-label`` (against the model's own argmax).
        directions: random output directions per sample for ``gauss-newton``.
        batch_size: samples per forward pass (a model with a fixed batch uses its own).
        energy_eps: ε of the energy rank (see :mod:`onnxprune.analysis.spectrum`).
        rel_tol: τ of the threshold rank.
        device: torch device of the shim (``cpu``, ``cuda``).
        seed: seed of the directions (and of random data).
        progress: log one INFO line per batch.
        estimate: also compute the network estimate (runs the surgery once).
        output_weights: output name -> energy weight (``output-aware``; default 1 each).
        shim: ``model`` as a :class:`Shim` on ``device`` that the caller keeps for later
            steps (the analysis may turn its weights' gradients off, nothing else); default: one
            built here and freed before the spectra.

    Returns:
        One :class:`GroupAnalysis` per channel group, and the network estimate.

    Raises:
        InputError: bad options or data (shape, dtype, too few samples, labels missing or
            not matching), or outputs that do not suit the objective.
        UnsupportedOpError: the shim cannot run the model.

    """
    _check_options(objective, directions, batch_size, energy_eps, rel_tol)
    torch_device(device)
    data = _checked_data(model, data, objective, seed)
    batch_size, data = _batching(model, data, batch_size, device)
    obj, stats = _gather(model, data, objective, directions, seed, batch_size, device, progress,
                         output_weights, shim)
    trim_heap()  # the shim and the pass's buffers, before the spectra and the estimate
    cost = model.cost
    groups = tuple(
        summarise(g, stats.get(g.id), cost.node_macs, cost.macs, energy_eps=energy_eps,
                  rel_tol=rel_tol)
        for g in model.groups.groups
    )
    warn(groups)
    widths = {g.id: g.rank for g in groups if g.rank is not None}
    est = network_estimate(model, widths) if estimate else None
    return AnalysisResult(groups, est, objective, obj.directions, len(data), energy_eps, rel_tol)


def _gather(
    model: Model, data: Dataset, objective: str, directions: int, seed: int, batch_size: int,
    device: str, progress: bool, output_weights: Mapping[str, float] | None,
    shim: Shim | None = None,
) -> tuple[Objective, dict[int, GroupStats]]:
    """Run the pass over the data; a shim built here (a copy of the weights) is freed on return."""
    if shim is None:
        shim = Shim(model.proto, device=device)
    freeze(shim)
    sketch = objective in ("gauss-newton", "output-aware")
    measures = (output_measures(shim, data, batch_size, output_weights or {})
                if objective == "output-aware" else ())
    obj = Objective(objective, directions if sketch else 1, seed, _softmax_output(shim), measures)
    specs = group_specs(model, shim)
    return obj, collect(shim, specs, data, obj, batch_size=batch_size, progress=progress)


def _check_options(
    objective: str, directions: int, batch_size: int, energy_eps: float, rel_tol: float
) -> None:
    checks = (
        (objective in OBJECTIVES, f"objective '{objective}': use one of {', '.join(OBJECTIVES)}"),
        (directions >= 1, f"directions {directions}: must be at least 1"),
        (batch_size >= 1, f"batch size {batch_size}: must be at least 1"),
        (0.0 < energy_eps < 1.0, f"energy eps {energy_eps}: must be in (0, 1), e.g. 1e-4"),
        (0.0 < rel_tol < 1.0, f"relative tolerance {rel_tol}: must be in (0, 1), e.g. 1e-3"),
    )
    for ok, message in checks:
        if not ok:
            raise InputError(message)


def _checked_data(model: Model, data: Dataset | None, objective: str, seed: int) -> Dataset:
    specs = ir.io_specs(model.proto)
    if data is None:
        if objective == "labels":
            raise InputError("objective 'labels' needs data with labels; pass --data and --labels")
        data = load_data(None, specs, model.input_shapes, random_samples=RANDOM_SAMPLES, seed=seed)
    if data.source == "random":
        log.warning(
            "analysis on %d random samples is about the weights, not the task; pass --data "
            "for task-aware results", len(data),
        )
    names = sorted(s.name for s in specs)
    if sorted(data.inputs) != names:
        raise InputError(
            f"data has inputs {sorted(data.inputs)}, the model takes {names}; give one array "
            "per model input"
        )
    for spec in specs:
        _check_shape(data.inputs[spec.name], spec, model.input_shapes[spec.name])
        if not data.validated:  # from_arrays checked the values already
            _check_values(data.inputs[spec.name], spec)
    if len(data) < MIN_SAMPLES:
        raise InputError(
            f"{len(data)} sample(s) given, the analysis needs at least {MIN_SAMPLES}; add samples"
        )
    if objective == "labels":
        _check_labels(data)
    return data


def _check_shape(a: np.ndarray, spec: ir.TensorSpec, shape: tuple[int, ...]) -> None:
    want = [None, *shape[1:]]
    if a.ndim != len(shape) or tuple(a.shape[1:]) != tuple(shape[1:]):
        raise InputError(
            f"input '{spec.name}' has shape {list(a.shape)}, the model expects {want} "
            "(samples along axis 0); fix the data or pass --input-shapes"
        )


def _check_values(a: np.ndarray, spec: ir.TensorSpec) -> None:
    if (a.dtype.kind == "f") != (spec.dtype.kind == "f"):
        raise InputError(
            f"input '{spec.name}' is {a.dtype}, the model wants {spec.dtype}; save it as such"
        )
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise InputError(f"input '{spec.name}' contains NaN or inf; clean the data")


def _check_labels(data: Dataset) -> None:
    labels = data.labels
    if labels is None:
        raise InputError(
            "objective 'labels' needs labels: pass --labels FILE, store 'labels' in the .npz, "
            "or use --objective pseudo-label / gauss-newton"
        )
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != len(data):
        raise InputError(
            f"labels must be {len(data)} integer class ids (one per sample), got "
            f"{labels.dtype} {list(labels.shape)}; fix the labels"
        )


def _batching(model: Model, data: Dataset, batch_size: int, device: str = "cpu"
              ) -> tuple[int, Dataset]:
    """Feed a model with a fixed batch dim exactly that many samples per pass."""
    fixed = {
        s.shape[0] for s in ir.io_specs(model.proto)
        if s.shape and isinstance(s.shape[0], int) and s.shape[0] > 0
    }
    if not fixed:
        return _capped(model, batch_size, activation_budget(device)), data
    size = int(max(fixed))
    usable = len(data) - len(data) % size
    if usable < MIN_SAMPLES:
        raise InputError(f"the model's batch is fixed at {size}; give at least "
                         f"{max(size, MIN_SAMPLES)} samples")
    if usable < len(data):
        log.warning("fixed batch %d: using %d of %d samples", size, usable, len(data))
    return size, data.take(usable)


def activation_budget(device: str) -> int:
    """Bytes one batch's activations may take on ``device`` (see :data:`GPU_SHARE`)."""
    dev = torch.device(device)
    if dev.type != "cuda":
        return ACTIVATION_BUDGET
    free, _ = torch.cuda.mem_get_info(dev)
    return max(ACTIVATION_BUDGET, int(GPU_SHARE * free))


def _capped(model: Model, batch_size: int, budget: int = ACTIVATION_BUDGET) -> int:
    """Lower ``batch_size`` so that one batch's activations fit ``budget`` bytes."""
    produced = {name for node in model.proto.graph.node for name in node.output}
    total = sum(math.prod(shape) for name, shape in model.shapes.items() if name in produced)
    per_sample = 4 * total // max(1, max((s[0] for s in model.input_shapes.values() if s),
                                         default=1))
    cap = max(1, budget // max(1, per_sample))
    if batch_size <= cap:
        return batch_size
    log.info("batch size %d -> %d: a sample's activations take %.0f MB", batch_size, cap,
             per_sample / 2**20)
    return cap


def _softmax_output(shim: Shim) -> bool:
    """Tell whether the first graph output comes from a Softmax (probabilities, not logits)."""
    first = shim.plan.outputs[0] if shim.plan.outputs else ""
    return any(s.op_type == "Softmax" and first in s.outputs for s in shim.plan.steps)
