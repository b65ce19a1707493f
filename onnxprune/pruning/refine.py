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
import onnx_graphsurgeon as gs
import torch

from onnxprune import ir
from onnxprune.channels.graph import ChannelGraph
from onnxprune.channels.rules import weight_op
from onnxprune.channels.types import Space
from onnxprune.data import Dataset
from onnxprune.errors import OnnxPruneError
from onnxprune.model import Model
from onnxprune.opspec import GATES as RECURRENT_GATES
from onnxprune.pruning.compensation import (
    CompensationReport,
    ConsumerUpdate,
    intercept_bias,
    weight_readers,
)
from onnxprune.shim.module import Shim

log = logging.getLogger(__name__)

ROWS = 16384
"""Sampled positions (rows of the least-squares fit) per consumer."""
BATCH = 16


@dataclass(frozen=True)
class _Target:
    """A consumer node refitted over its whole input channel axis."""

    node: str
    op: str
    x: str
    axis: int         # channel axis of x
    weight: str
    w_axis: int       # input axis of the weight
    keep: np.ndarray  # kept input channels (in the original's indices)
    size: int         # input channels
    depthwise: bool   # one weight slice per channel: a per-channel (scale, shift) fit


def refine(model: Model, cg: ChannelGraph, plan: Mapping[int, Sequence[int]],
           report: CompensationReport, data: Dataset, *, ridge: float = 1e-6,
           seed: int = 0, device: str = "cpu", teacher: Shim | None = None) -> None:
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
        teacher: ``model`` as a shim on ``device`` to use as the original copy (not edited).

    """
    kept = cg.keep({g: list(k) for g, k in plan.items()})
    targets = _targets(cg, kept)
    if not targets:
        return
    orig = teacher if teacher is not None else Shim(model.proto, device=device)
    sim = orig.copy()
    for param in [*sim.params.values(), *orig.params.values()]:
        param.requires_grad_(False)
    for space, k in kept.items():
        gate = torch.zeros(cg.ctx.dim(space) or 0)
        gate[torch.as_tensor(k)] = 1.0
        sim.set_gate(space.tensor, space.axis, gate)
    state = _State(sim, report.updates)
    rng = np.random.default_rng(seed)
    feeds = [b for b, _ in data.batches(ir.fixed_batch(model.proto) or BATCH)]
    try:
        with torch.no_grad():
            _walk(sim, orig, feeds, targets, state, rng, cg, ridge)
    except OnnxPruneError as e:  # the one-shot updates stand; say why
        log.warning("refinement skipped, one-shot compensation kept: %s", e)
        report.skipped.append(f"refinement: {e}")
        return
    report.updates[:] = state.result()
    refitted = {f"{u.node} ({u.op})" for u in state.refits}
    report.skipped[:] = [s for s in report.skipped if s.split(": ", 1)[0] not in refitted]


def _targets(cg: ChannelGraph, kept: Mapping[Space, np.ndarray]) -> dict[str, _Target]:
    """Every Conv/ConvTranspose/Gemm/MatMul with its own constant weight, by node name."""
    ctx = cg.ctx
    readers = weight_readers(cg)
    by_tensor = {(s.tensor, s.axis): k for s, k in kept.items()}
    out: dict[str, _Target] = {}
    for node in ctx.graph.nodes:
        where = _layout(cg, node)
        if where is None or readers.get(node.inputs[1].name, 0) != 1:
            continue
        axis, w_axis, depthwise = where
        x = node.inputs[0].name
        size = ctx.shape(x)[axis]  # type: ignore[index]
        keep = by_tensor.get((x, axis), np.arange(size))
        out[node.name] = _Target(node.name, node.op, x, axis, node.inputs[1].name, w_axis,
                                 np.asarray(keep), size, depthwise)
    return out


def _layout(cg: ChannelGraph, node: gs.Node) -> tuple[int, int, bool] | None:
    """(channel axis of the input, input axis of the weight, depthwise) or None."""
    wop = weight_op(node.op, node.domain)  # the op's rule knows its layout
    return None if wop is None else wop.refit_layout(cg.ctx, node)


class _State:
    """Current deltas of the sim's weights and the biases added after each consumer."""

    def __init__(self, sim: Shim, updates: Sequence[ConsumerUpdate]) -> None:
        self.sim = sim
        self.original = {n: p.detach().clone() for n, p in sim.params.items()}
        self.oneshot = list(updates)
        self.refits: list[ConsumerUpdate] = []
        self.bias: dict[str, torch.Tensor] = {}
        for up in updates:
            self._add(up)

    def _add(self, up: ConsumerUpdate, sign: float = 1.0) -> None:
        p = self.sim.params.get(up.weight)
        if p is not None:
            p.add_(torch.as_tensor(up.delta, dtype=p.dtype, device=p.device), alpha=sign)
        if up.bias is None:
            return
        b = torch.as_tensor(up.bias, dtype=torch.float32, device=self.sim.device) * sign
        if up.op in RECURRENT_GATES:  # the intercept enters the gates: the W half of B
            self._add_recurrent_bias(up.node, b)
            return
        self.bias[up.node] = self.bias.get(up.node, torch.zeros_like(b)) + b

    def _add_recurrent_bias(self, node: str, b: torch.Tensor) -> None:
        """Add ``b`` ``[directions, gates·hidden]`` to the W half of the node's B, if any."""
        step = next((s for s in self.sim.plan.steps if s.name == node), None)
        name = step.inputs[3] if step is not None and len(step.inputs) > 3 else ""
        p = self.sim.params.get(name) if name else None
        if p is not None and p.dim() == 2 and p.shape[1] == 2 * b.shape[-1]:
            p[:, : b.shape[-1]] += b.to(p.dtype)
        # Without a constant B the simulation runs without this intercept; the written model
        # gets it all the same (compensation creates B), so the refits downstream see a
        # slightly different input than the final model: approximate, never wrong in kind.

    def replace(self, up: ConsumerUpdate) -> None:
        """Use a refit instead of every one-shot update of the same weight."""
        for old in [o for o in self.oneshot if o.weight == up.weight]:
            self.oneshot.remove(old)
            self._add(old, -1.0)
        self.refits.append(up)
        self._add(up)

    def result(self) -> list[ConsumerUpdate]:
        """Return the updates to write: one-shot ones no refit replaced, and the refits."""
        return [*self.oneshot, *self.refits]


def _walk(sim: Shim, orig: Shim, feeds: list[dict[str, np.ndarray]],
          targets: Mapping[str, _Target], state: _State, rng: np.random.Generator,
          cg: ChannelGraph, ridge: float) -> None:
    env_s = [sim._initial_env(f) for f in feeds]  # noqa: SLF001 (stepwise run of the plan)
    env_o = [orig._initial_env(f) for f in feeds]  # noqa: SLF001
    for step, frees in zip(sim.plan.steps, sim.plan.frees, strict=True):
        t = targets.get(step.name)
        if t is not None and t.op == step.op_type:
            up = _fit(t, env_s, env_o, state, rng, cg, ridge)
            if up is not None:
                state.replace(up)
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
    x = torch.cat([p.reshape(-1, p.shape[-1]) for p in parts])
    if pick is None:
        pick = rng.choice(len(x), ROWS, replace=False) if len(x) > ROWS else np.arange(len(x))
    return x[torch.as_tensor(pick, device=x.device)].double(), pick


def _fit(t: _Target, env_s: list[dict[str, torch.Tensor]],
         env_o: list[dict[str, torch.Tensor]], state: _State, rng: np.random.Generator,
         cg: ChannelGraph, ridge: float) -> ConsumerUpdate | None:
    xs, pick = _rows(env_s, t.x, t.axis, None, rng)
    xo, _ = _rows(env_o, t.x, t.axis, pick, rng)
    if t.keep.size == t.size and torch.equal(xs, xo):
        return None  # nothing dropped, nothing drifted
    keep = torch.as_tensor(t.keep, device=xs.device)
    if t.depthwise:
        coef, beta = _diagonal(xs, xo, t.keep, t.size)
    else:
        x = torch.cat([xs[:, keep], xs.new_ones(len(xs), 1)], 1)
        if len(x) < 4 * x.shape[1]:
            return None  # too few rows for the fit: keep the one-shot update
        gram = x.T @ x
        scale = float(torch.diagonal(gram)[:-1].mean()) or 1.0
        gram += ridge * scale * torch.eye(len(gram), dtype=gram.dtype, device=gram.device)
        sol = torch.linalg.solve(gram, x.T @ xo).cpu().numpy()  # [nk + 1, C]
        coef, beta = sol[:-1], sol[-1]
    w0 = state.original[t.weight].double().cpu().numpy()
    wm = np.moveaxis(w0, t.w_axis, 0)
    new = wm.copy()
    if t.depthwise:
        new[t.keep] = wm[t.keep] * coef.reshape(-1, *([1] * (wm.ndim - 1)))
    else:
        new[t.keep] = np.tensordot(coef, wm, axes=(1, 0))
    node = next(n for n in cg.ctx.graph.nodes if n.name == t.node and n.op == t.op)
    if t.depthwise:
        bias = _depthwise_bias(wm, t.keep, beta)
        exact = "exact"
    else:
        bias, exact = intercept_bias(cg, node, t.w_axis, w0, np.arange(t.size)[:, None],
                                     np.arange(t.size), beta)
    return ConsumerUpdate(t.node, t.op, t.weight, np.moveaxis(new - wm, 0, t.w_axis), bias,
                          exact, "refined")


def _diagonal(xs: torch.Tensor, xo: torch.Tensor, keep: np.ndarray, size: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Per kept channel: x_o ≈ a·x_s + b (a depthwise conv cannot mix channels)."""
    k = torch.as_tensor(keep, device=xs.device)
    a_s, a_o = xs[:, k], xo[:, k]
    ms, mo = a_s.mean(0), a_o.mean(0)
    var = (a_s - ms).pow(2).mean(0)
    cov = ((a_s - ms) * (a_o - mo)).mean(0)
    a = torch.where(var > 1e-12 * var.max().clamp_min(1e-30), cov / var.clamp_min(1e-30),
                    torch.ones_like(var))
    beta = np.zeros(size)
    beta[keep] = (mo - a * ms).cpu().numpy()
    return a.cpu().numpy(), beta


def _depthwise_bias(wm: np.ndarray, keep: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Bias change of a depthwise conv: channel c's shift times the sum of its kernel."""
    out = wm.shape[0]  # weight [C·mult, 1, k...] with mult == 1 here
    taps = wm.reshape(out, -1).sum(1)
    bias = np.zeros(out)
    bias[keep] = beta[keep] * taps[keep]
    return bias
