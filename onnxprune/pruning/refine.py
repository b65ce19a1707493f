"""Sequential refinement of compensation (DESIGN.md §2.5).

One-shot compensation fits every consumer on the *original* model's statistics, so the
errors of the consumers above it are not seen and accumulate through depth. Refinement walks
the graph once, in topological order, over the calibration data with two copies of the
original model side by side:

- the *pruned* copy runs in the original's index space: every channel space of a pruned
  group is gated to zero on its dropped channels (exactly what the pruned model computes,
  since the ops between a group's spaces act per channel), and consumers carry their
  compensation;
- the *original* copy runs unchanged.

At each consumer that reads a group's channels one index each (Conv, ConvTranspose, Gemm,
MatMul), the original activations it reads are fitted, by least squares with an intercept
on sampled positions, by the kept channels of the pruned copy (which already carry every
upstream refit): x_c ≈ Σ_k M_ck·x'_k + β_c for every channel c of the group. The consumer's
weight becomes W'[:, k] = Σ_c W[:, c]·M_ck (per tap), its bias gains Σ_c β_c·Σ_taps W[:, c]
(phase-averaged for a strided ConvTranspose), and the pruned copy runs on with it. Groups
that lost no channel are refitted too when their input drifted. Consumers the fit cannot
serve (several indices per channel as after Flatten, too few rows) keep their one-shot
update; the result is the same plain :class:`ConsumerUpdate` data.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from onnxprune.channels.graph import ChannelGraph, Group, WeightRef
from onnxprune.data import Dataset
from onnxprune.model import Model
from onnxprune.pruning.compensation import (
    CompensationReport,
    ConsumerUpdate,
    intercept_bias,
    owned_indices,
    unusable,
    weight_readers,
)
from onnxprune.shim.module import Shim

log = logging.getLogger(__name__)

ROWS = 16384
"""Sampled positions (rows of the least-squares fit) per consumer."""
BATCH = 16


@dataclass(frozen=True)
class _Target:
    ref: WeightRef
    group: Group
    keep: np.ndarray
    idx: np.ndarray  # [C] input index of each channel


def refine(model: Model, cg: ChannelGraph, plan: Mapping[int, Sequence[int]],
           report: CompensationReport, data: Dataset, *, ridge: float = 1e-6,
           seed: int = 0, device: str = "cpu") -> None:
    """Replace the one-shot updates of ``report`` by sequential refits where possible.

    Args:
        model: the model being pruned (its original weights).
        cg: a channel graph of ``model`` (not edited here).
        plan: group id -> kept channels.
        report: the one-shot compensation; its ``updates`` are replaced and extended.
        data: the calibration data.
        ridge: ρ relative to the mean diagonal of the kept channels' Gram.
        seed: seed of the sampled positions.
        device: torch device.

    """
    targets = _targets(cg, plan)
    if not targets:
        return
    sim, orig = Shim(model.proto, device=device), Shim(model.proto, device=device)
    for param in [*sim.params.values(), *orig.params.values()]:
        param.requires_grad_(False)
    for space, kept in cg.keep({g: list(k) for g, k in plan.items()}).items():
        gate = torch.zeros(cg.ctx.dim(space))
        gate[torch.as_tensor(kept)] = 1.0
        sim.set_gate(space.tensor, space.axis, gate)
    state = _State(model, sim, report.updates)
    rng = np.random.default_rng(seed)
    feeds = [b for b, _ in data.batches(BATCH)]
    with torch.no_grad():
        _walk(sim, orig, feeds, targets, state, rng, cg, ridge)
    report.updates[:] = state.result()


def _targets(cg: ChannelGraph, plan: Mapping[int, Sequence[int]]) -> dict[str, list[_Target]]:
    readers = weight_readers(cg)
    out: dict[str, list[_Target]] = {}
    for group in cg.groups:
        keep = np.asarray(sorted(plan.get(group.id, range(group.size))), dtype=np.int64)
        for ref in group.consumers:
            if unusable(cg, group, ref, True, readers):
                continue
            idx = owned_indices(group, ref)
            if idx is None or idx.shape[1] != 1 or not keep.size:
                continue
            out.setdefault(ref.node, []).append(_Target(ref, group, keep, idx[:, 0]))
    return out


class _State:
    """Current deltas per (consumer, weight, group) and the sim's parameters that carry them."""

    def __init__(self, model: Model, sim: Shim, updates: Sequence[ConsumerUpdate]) -> None:
        self.sim = sim
        self.original = {n: p.detach().clone() for n, p in sim.params.items()}
        self.oneshot = list(updates)
        self.refits: dict[tuple[str, str], ConsumerUpdate] = {}
        self.bias: dict[str, torch.Tensor] = {}
        self.replaced: set[tuple[str, str]] = set()
        for up in updates:
            self._add(up)

    def _add(self, up: ConsumerUpdate) -> None:
        p = self.sim.params.get(up.weight)
        if p is not None:
            p.add_(torch.as_tensor(up.delta, dtype=p.dtype))
        if up.bias is not None:
            b = torch.as_tensor(up.bias, dtype=torch.float32)
            self.bias[up.node] = self.bias.get(up.node, torch.zeros_like(b)) + b

    def replace(self, up: ConsumerUpdate, group: int) -> None:
        """Use a refit instead of the one-shot update of (consumer, group)."""
        key = (up.node, up.weight)
        for old in self.oneshot:
            if (old.node, old.weight) == key and old.group == group:
                self.oneshot.remove(old)
                self._add(ConsumerUpdate(old.node, old.op, old.weight, -old.delta,
                                         None if old.bias is None else -old.bias))
                break
        self.refits[(*key, str(group))] = up  # type: ignore[index]
        self._add(up)

    def result(self) -> list[ConsumerUpdate]:
        return [*self.oneshot, *self.refits.values()]


def _walk(sim: Shim, orig: Shim, feeds: list[dict[str, np.ndarray]],
          targets: Mapping[str, list[_Target]], state: _State, rng: np.random.Generator,
          cg: ChannelGraph, ridge: float) -> None:
    env_s = [sim._initial_env(f) for f in feeds]  # noqa: SLF001 (stepwise run of the plan)
    env_o = [orig._initial_env(f) for f in feeds]  # noqa: SLF001
    for step, frees in zip(sim.plan.steps, sim.plan.frees, strict=True):
        for t in targets.get(step.name, ()):
            if t.ref.op != step.op_type:
                continue
            up = _fit(t, env_s, env_o, state, rng, cg, ridge)
            if up is not None:
                state.replace(up, t.group.id)
                # the step's kernels read the parameters from the environment
                for env in env_s:
                    env[t.ref.weight.name] = sim.params[t.ref.weight.name]
        for shim, envs, bias in ((sim, env_s, state.bias.get(step.name)), (orig, env_o, None)):
            for env in envs:
                results = shim._run_step(step, env)  # noqa: SLF001
                for k, (name, value) in enumerate(zip(step.outputs, results, strict=False)):
                    if name:
                        if k == 0 and bias is not None:
                            value = _add_bias(step.op_type, value, bias)
                        shim._publish(env, name, value)  # noqa: SLF001
                for name in frees:
                    env.pop(name, None)


def _add_bias(op: str, y: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    b = bias.to(device=y.device, dtype=y.dtype)
    if op in ("Conv", "ConvTranspose"):
        return y + b.reshape(1, -1, *([1] * (y.dim() - 2)))
    return y + b


def _rows(envs: list[dict[str, torch.Tensor]], name: str, axis: int, pick: np.ndarray | None,
          rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray]:
    parts = [env[name].detach().movedim(axis, -1) for env in envs]
    x = torch.cat([p.reshape(-1, p.shape[-1]) for p in parts]).double()
    if pick is None:
        pick = rng.choice(len(x), ROWS, replace=False) if len(x) > ROWS else np.arange(len(x))
    return x[torch.as_tensor(pick)], pick


def _fit(t: _Target, env_s: list[dict[str, torch.Tensor]],
         env_o: list[dict[str, torch.Tensor]], state: _State, rng: np.random.Generator,
         cg: ChannelGraph, ridge: float) -> ConsumerUpdate | None:
    space = t.ref.space
    xs, pick = _rows(env_s, space.tensor, space.axis, None, rng)
    xo, _ = _rows(env_o, space.tensor, space.axis, pick, rng)
    x = torch.cat([xs[:, torch.as_tensor(t.idx[t.keep])], xs.new_ones(len(xs), 1)], 1)
    y = xo[:, torch.as_tensor(t.idx)]
    if len(x) < 4 * x.shape[1]:
        return None
    if torch.equal(xs[:, torch.as_tensor(t.idx[t.keep])], y[:, torch.as_tensor(t.keep)]) \
            and t.keep.size == t.group.size:
        return None  # nothing dropped, nothing drifted
    gram = x.T @ x
    scale = float(torch.diagonal(gram)[:-1].mean()) or 1.0
    gram += ridge * scale * torch.eye(len(gram), dtype=gram.dtype)
    sol = torch.linalg.solve(gram, x.T @ y).cpu().numpy()  # [nk + 1, C]
    coef, beta = sol[:-1], sol[-1]
    w0 = state.original[t.ref.weight.name].double().cpu().numpy()
    wm = np.moveaxis(w0, t.ref.weight.axis, 0)
    new = wm.copy()
    new[t.idx[t.keep]] = np.tensordot(coef, wm[t.idx], axes=(1, 0))
    node = next(n for n in cg.ctx.graph.nodes if n.name == t.ref.node and n.op == t.ref.op)
    bias, exact = intercept_bias(cg, node, t.ref, w0, t.idx[:, None],
                                 np.arange(t.group.size), beta)
    return ConsumerUpdate(t.ref.node, t.ref.op, t.ref.weight.name,
                          np.moveaxis(new - wm, 0, t.ref.weight.axis), bias, exact, "refined",
                          t.group.id)
