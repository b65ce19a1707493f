"""The analysis pass over the data: forward once per batch, one backward per direction."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.autograd.graph import get_gradient_edge

from onnxprune.analysis.gram import ConsumerStats
from onnxprune.analysis.group import GroupAccumulator, Route
from onnxprune.analysis.objectives import Objective
from onnxprune.analysis.specs import GroupSpec
from onnxprune.analysis.taylor import TaylorStats
from onnxprune.data import Dataset
from onnxprune.progress import track
from onnxprune.shim.module import Shim

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupStats:
    """Everything gathered for one prunable group."""

    id: int
    consumers: tuple[ConsumerStats, ...]
    taylor: TaylorStats
    skipped: tuple[str, ...] = ()


def collect(
    shim: Shim,
    specs: Sequence[GroupSpec],
    data: Dataset,
    objective: Objective,
    *,
    batch_size: int,
    progress: bool = False,
) -> dict[int, GroupStats]:
    """Accumulate the Gram matrices and gate gradients of every group over ``data``.

    Samples are independent in inference mode, so one backward pass per batch and direction
    gives every sample's gradient at every watched tensor, for all groups at once.

    Args:
        shim: the model as a torch module.
        specs: the groups to analyse.
        data: the samples (and labels for the ``labels`` objective).
        objective: the loss and its number of directions.
        batch_size: samples per forward pass.
        progress: log one INFO line per batch.

    Returns:
        Group id -> its statistics.

    Raises:
        InputError: the data or outputs do not suit the objective.

    """
    trim_heap()  # what loading the model freed
    accs = [GroupAccumulator(s, objective.directions, shim.device) for s in specs]
    names = set().union(*(s.tensors() for s in specs)) if specs else set()
    names |= objective.watch
    total = math.ceil(len(data) / batch_size)
    start = 0
    batches = track(data.batches(batch_size), what="analysis", total=total, unit="batch")
    for i, (inputs, labels) in enumerate(batches):
        batch = len(next(iter(inputs.values())))
        _one_batch(shim, accs, names, inputs, labels, objective, start, batch)
        trim_heap()
        start += batch
        if progress:
            log.info("analysis: batch %d/%d (%d samples)", i + 1, total, start)
    stats = {}
    accs.reverse()
    while accs:  # each group's running sums go as soon as its totals are out
        a = accs.pop()
        stats[a.spec.id] = GroupStats(
            a.spec.id, tuple(c.result() for c in a.consumers), a.taylor.result(), a.spec.skipped
        )
    return stats


def _one_batch(
    shim: Shim,
    accs: Sequence[GroupAccumulator],
    names: set[str],
    inputs: Mapping[str, np.ndarray],
    labels: np.ndarray | None,
    objective: Objective,
    start: int,
    batch: int,
) -> None:
    with shim.watch(names, retain_grad=False) as watched:
        outputs = shim(_feeds(inputs, shim.device))
    y = None if labels is None else torch.as_tensor(labels)
    losses = objective.losses(outputs, y, start, watched)
    with torch.no_grad():
        for acc in accs:
            acc.start_batch(watched, batch)
    hooked = _hooked(accs, watched, batch)
    handles = [t.register_hook(hook) for t, hook in hooked]
    targets = _sources([t for t, _ in hooked])
    try:
        for r, loss in enumerate(losses):
            if hooked:  # the targets' gradients are returned and dropped: only hooks matter
                torch.autograd.grad(loss, targets, retain_graph=r < len(losses) - 1,
                                    allow_unused=True)
            for acc in accs:
                acc.end_direction(batch)
            trim_heap()
        with torch.no_grad():
            for acc in accs:
                acc.close_batch()
    finally:
        for h in handles:
            h.remove()
        for acc in accs:
            acc.end_batch()
        shim.watched = {}


def _sources(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Return the tensors whose gradient reaches none of the others' (the backward targets).

    Every other tensor lies between one of these and the loss, so differentiating only these
    runs every hook, and only their gradients are captured (``backward(inputs=...)`` with
    every hooked tensor as a target cloned ~60 ms of gradients per sample into ``.grad`` on
    ResNet-50). The autograd graph is walked once per batch, children before parents.
    """
    nodes = [t.grad_fn if t.grad_fn is not None else get_gradient_edge(t).node
             for t in tensors]  # a leaf's node is its AccumulateGrad
    marks = {id(n) for n in nodes}
    kept: list[object] = list(nodes)  # node wrappers stay alive, so their ids stay theirs
    reaches: dict[int, bool] = {}  # node -> some marked node lies below it
    for root in nodes:
        stack = [(root, False)]
        while stack:
            node, done = stack.pop()
            if id(node) in reaches:
                continue
            children = [c for c, _ in node.next_functions if c is not None]
            if done:
                reaches[id(node)] = any(id(c) in marks or reaches[id(c)] for c in children)
                continue
            kept.extend(children)
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in reaches)
    return [t for t, n in zip(tensors, nodes, strict=True) if not reaches[id(n)]]


def _malloc_trim() -> Callable[[], None]:
    """Return glibc's ``malloc_trim(0)``, or a no-op where there is none."""
    name = ctypes.util.find_library("c")
    fn = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    return (lambda: None) if fn is None else (lambda: fn(0) and None)


trim_heap = _malloc_trim()
"""Hand freed heap memory back to the OS. glibc keeps freed blocks below its (adaptive) mmap
threshold, up to 32 MB each: without this the RSS creeps ~130 MB above what a batch needs."""


def _hooked(
    accs: Sequence[GroupAccumulator], watched: Mapping[str, torch.Tensor], batch: int
) -> list[tuple[torch.Tensor, _Hook]]:
    """Every watched tensor whose gradient some accumulator needs, with its hook."""
    routes: dict[str, list[Route]] = {}
    for acc in accs:
        for name, route in acc.routes(watched, batch):
            routes.setdefault(name, []).append(route)
    names = sorted(n for n in routes if n in watched and watched[n].requires_grad)
    return [(watched[n], _Hook(routes[n])) for n in names]


class _Hook:
    """Backward hook of one watched tensor: feed its gradient to the accumulators."""

    def __init__(self, routes: list[Route]):
        self.routes = routes

    def __call__(self, grad: torch.Tensor) -> None:
        with torch.no_grad():
            for route in self.routes:
                route(grad)


def _feeds(inputs: Mapping[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    """Float inputs require grad: gradients then reach every activation with parameters frozen."""
    out = {}
    for name, value in inputs.items():
        t = torch.from_numpy(np.ascontiguousarray(value)).to(device)
        out[name] = t.requires_grad_(True) if t.is_floating_point() else t
    return out


def freeze(shim: Shim) -> None:
    """Stop gradients to the weights when a float input carries them instead.

    The analysis needs gradients at activations only; weight gradients would cost time, and
    some kernels refuse them (running statistics of BatchNormalization in inference mode).
    """
    if any(dtype is not None and dtype.is_floating_point for dtype in shim.plan.inputs.values()):
        for param in shim.params.values():
            param.requires_grad_(False)
