"""Accumulate each group's Gram matrix K_g = G_gᵀG_g batch by batch, never materialising G_g.

Rows of G_g are per-sample gradients ∂ℓ/∂W_cons[o, c, tap] over every consumer, output unit
and kernel tap (indices a channel owns several of become extra rows, like taps); columns are
the group's channels. Since Σ_n G_nᵀG_n is the Gram of all rows stacked, each chunk of rows is
added as XᵀX (float64). Alongside: each consumer's own Gram block and input means (for
compensation), and the roots' gate gradients (first-order Taylor) with their Gram.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np
import torch

from onnxprune.analysis import gradients
from onnxprune.analysis.gramsum import GramSum
from onnxprune.analysis.specs import ConsumerSpec, GroupSpec, RootSpec


@dataclass(frozen=True)
class ConsumerStats:
    """What one consumer contributed: its Gram block, rows, rank capacity and input means.

    ``capacity`` bounds the rank the data can show: per sample, the gradient columns are
    linear in the channel's input values, so a sample adds at most min(rows, values, C).
    ``mean[c, j]`` is the mean of the j-th index channel c owns (over samples and positions).
    ``bias`` holds the Gram column of a virtual constant-1 input channel (the consumer's
    bias-gradient column, per tap with the consumer's padding; for a strided ConvTranspose
    each tap's rows hold its output phase): ``bias[c]`` its product with channel c's column,
    ``bias[C]`` its own square. Compensation fits the intercept jointly with it.
    """

    node: str
    op: str
    tensor: str
    weight: str
    rows: int
    capacity: int
    gram: np.ndarray
    mean: np.ndarray
    bias: np.ndarray | None = None


@dataclass(frozen=True)
class TaylorStats:
    """Gate gradients t[n, c] = ∂ℓ_n/∂m_c summed over a group's roots: mean |t| and tᵀt."""

    rows: int
    abs_mean: np.ndarray
    gram: np.ndarray


def _arrange(t: torch.Tensor, owned: torch.Tensor, axis: int) -> torch.Tensor:
    """Pick the ``owned`` [C, m] positions along ``axis`` (position S is a zero pad)."""
    if int(owned.max()) >= t.shape[axis]:
        pad_shape = list(t.shape)
        pad_shape[axis] = 1
        t = torch.cat([t, t.new_zeros(pad_shape)], axis)
    picked = t.index_select(axis, owned.reshape(-1))
    return picked.reshape(*t.shape[:axis], *owned.shape, *t.shape[axis + 1 :])


def _rows(g: torch.Tensor, owned: torch.Tensor, contiguous: bool) -> torch.Tensor:
    """Gradient rows ``[b·o·T·m, C]`` (float64) of a chunk ``[b, o, T, S]``."""
    c, m = owned.shape
    if contiguous and m == 1:  # the common case: one index per channel, in order
        return g.reshape(-1, c).double()
    b, o, t, _ = g.shape
    picked = g.reshape(b, o, t, c, m) if contiguous else _arrange(g, owned, 3)
    x = torch.empty((b, o, t, m, c), dtype=torch.float64, device=g.device)
    x.copy_(picked.transpose(3, 4))
    return x.view(-1, c)


HELD = 1 << 22
"""Output-gradient elements one consumer holds for the rows form before it adds them (16 MB of
float32: ResNet-50 at batch 1 holds all four directions of every 3×3 consumer)."""


class ConsumerAccumulator:
    """Running sums of one consumer of one group.

    Per batch: :meth:`add_batch` with the activation, :meth:`add_gradient` per direction
    (or :meth:`add_zero_rows`), then :meth:`close_batch`. The Gram is taken in the form
    :func:`gradients.choose_form` finds cheaper for the consumer's shapes. The ``rows`` form
    lays the activation out (constant channel, unfolded taps) once per batch, not once per
    direction: it keeps either that layout through the batch, or the batch's output gradients
    until :meth:`close_batch` (or until they reach :data:`HELD` elements), whichever
    is smaller (an expanding 1×1 conv keeps its C+1 input channels rather than R·4C output
    gradients, a 3×3 conv its R·O gradients rather than 9(C+1) unfolded columns).
    """

    def __init__(self, spec: ConsumerSpec, size: int, directions: int, device: torch.device):
        self.spec = spec
        self.size = size
        self.directions = directions
        self.owned = torch.as_tensor(spec.owned, device=device)
        self.contiguous = spec.contiguous
        # A constant-1 channel rides along as channel C: its gradient rows are the
        # consumer's bias-gradient column (per tap, zero-padded like the real channels), so
        # the Gram is (C+1)x(C+1) and compensation can fit the intercept jointly.
        self._one = _with_constant(spec)
        self.gram = GramSum(size + 1, device)
        self.mean_sum = torch.zeros(spec.owned.shape, dtype=torch.float64, device=device)
        self.rows = self.capacity = self.positions = 0
        self.form = "rows"
        self.fold = False  # positions form: taps folded into M (gradients.fold_taps)
        self._m: torch.Tensor | None = None  # positions form: Σ_r D_r D_rᵀ of the batch
        self._pending: list[torch.Tensor] = []  # rows form: the batch's output gradients
        self._pending_size = 0
        self._keep_columns = False  # rows form: keep the laid-out activation, not gradients
        self._x: torch.Tensor | None = None  # ... which is this, [B, (C+1)·Q, P]

    def add_batch(self, a: torch.Tensor, outputs: int, positions: int) -> None:
        """Add a batch's activation (from :func:`gradients.activation`) to means and capacity.

        ``outputs`` and ``positions`` (O and P of the consumer's output) choose the form.
        """
        # per sample in float32 (a float64 sum converts the whole activation first), then
        # over the samples in float64
        own = a.dtype in (torch.float32, torch.float64)
        per = (a.sum(dim=list(range(2, a.dim())), dtype=None if own else torch.float64)
               if a.dim() > 2 else a)
        sums = per.double().sum(0)  # [S]
        self.mean_sum += _arrange(sums, self.owned, 0)
        self.positions += a.numel() // max(1, a.shape[1])
        m = self.owned.shape[1]
        values = m * a[0, 0].numel()
        rows = self.directions * outputs * m * gradients.taps_of(self.spec)
        self.capacity += a.shape[0] * min(values, rows, self.size)
        shape = dict(batch=a.shape[0], positions=positions, size=self.size)
        inputs = tuple(a.shape[2:]) if self.spec.kind == "unfold" else None
        self.form = gradients.choose_form(
            self.spec, outputs=outputs, directions=self.directions, inputs=inputs, **shape)
        self.fold = self.form == "positions" and inputs is not None and gradients.fold_taps(
            self.spec, inputs=inputs, **shape)
        self._m = self._x = None
        self._pending, self._pending_size = [], 0
        q = m * gradients.taps_of(self.spec)
        layout = a.shape[0] * (self.size + 1) * q * positions
        held = a.shape[0] * self.directions * outputs * positions  # the gradients, if held
        self._keep_columns = (self.form == "rows" and self.spec.kind != "grouped"
                              and gradients.keep_layout(layout, held))

    def add_gradient(self, a: torch.Tensor, d: torch.Tensor) -> None:
        """Add one direction's per-sample weight gradients of a batch (constant channel too)."""
        if self.form == "positions":
            self._m = gradients.add_positions(self._m, d)
            self.add_zero_rows(d.shape[0], d.shape[1])
            return
        if self._keep_columns:
            if self._x is None:
                x = gradients.columns(self._one, _append_one(a), self.size + 1)
                self._x = x.reshape(x.shape[0], -1, x.shape[-1])
            self.rows += gradients.add_rows(self.gram, self._one, a, d, self.size + 1, self._x)
            return
        self._pending.append(d)
        self._pending_size += d.numel()
        if self._pending_size >= HELD:
            self._add_pending(a)

    def _add_pending(self, a: torch.Tensor) -> None:
        """Rows form: add the rows of the pending directions."""
        pending, self._pending, self._pending_size = self._pending, [], 0
        if not pending:
            return
        a1 = _append_one(a)
        if self.spec.kind != "grouped":
            self.rows += gradients.add_rows(self.gram, self._one, a1, pending, self.size + 1)
            return
        owned = torch.as_tensor(self._one.owned, device=a.device)
        for d in pending:
            for g in gradients.grouped_chunks(self._one, a1, d):
                x = _rows(g, owned, False)
                self.gram.add(x.T, x.T)
                self.rows += x.shape[0]

    def add_zero_rows(self, batch: int, outputs: int) -> None:
        """Count the rows of a direction (whose gradient never reached the consumer)."""
        self.rows += batch * outputs * self.owned.shape[1] * gradients.taps_of(self.spec)

    def close_batch(self, a: torch.Tensor) -> None:
        """Close a batch: add what waited for every direction (rows, or the positions Gram)."""
        self._add_pending(a)
        self._x = None
        m, self._m = self._m, None
        if m is not None:
            gradients.add_positions_gram(self.gram, self._one, _append_one(a), m, self.size + 1,
                                         fold=self.fold)

    def result(self) -> ConsumerStats:
        """Return the consumer's totals as numpy."""
        s = self.spec
        mean = (self.mean_sum / max(1, self.positions)).cpu().numpy()
        full = self.gram.value().cpu().numpy()
        return ConsumerStats(
            s.node, s.op, s.x, s.weight, self.rows, self.capacity, full[:-1, :-1].copy(), mean,
            full[:, -1].copy(),
        )


def _per_sample_dot(x: torch.Tensor, g: torch.Tensor, axis: int, batch: int) -> torch.Tensor:
    """Σ over every axis but the batch and ``axis`` of x·g: ``[B, L]`` (no x·g temporary)."""
    if x.dim() >= 2 and x.shape[0] == batch and axis == x.dim() - 1:
        return torch.einsum("bpc,bpc->bc", x.reshape(batch, -1, x.shape[-1]),
                            g.reshape(batch, -1, g.shape[-1]))
    if x.dim() >= 3 and x.shape[0] == batch and axis == 1:
        if batch == 1:  # the fastest here; with more samples einsum copies both operands
            return torch.einsum("bcp,bcp->bc", x.flatten(2), g.flatten(2))
        return torch.linalg.vecdot(x.flatten(2), g.flatten(2))
    prod = (x * g).movedim(axis, -1)
    return prod.reshape(batch, -1, prod.shape[-1]).sum(1)


class _Owner:
    """Where a root's indices go in the group: all in order, or a subset by index."""

    def __init__(self, root: RootSpec, size: int, device: torch.device):
        owner = np.asarray(root.owner)
        keep = np.flatnonzero(owner >= 0)
        self.identity = len(owner) == size and np.array_equal(owner, np.arange(size))
        self.keep = torch.as_tensor(keep, device=device)
        self.to = torch.as_tensor(owner[keep], device=device)


class TaylorAccumulator:
    """Running gate-gradient sums of one group over all its roots (one shared gate)."""

    def __init__(self, roots: tuple[RootSpec, ...], size: int, device: torch.device):
        self.roots = roots
        self.size = size
        self.device = device
        self.gram = GramSum(size, device)
        self.abs_sum = torch.zeros(size, dtype=torch.float64, device=device)
        self.rows = 0
        self._t: torch.Tensor | None = None
        self._owners = {id(r): _Owner(r, size, device) for r in roots}

    def add_root(self, root: RootSpec, x: torch.Tensor, g: torch.Tensor, batch: int) -> None:
        """Add one root's share Σ_positions x·∂ℓ/∂x to the current direction."""
        per = _per_sample_dot(x.detach(), g, root.axis % x.dim(), batch).double()  # [B, L]
        own = self._owners[id(root)]
        if self._t is None:
            self._t = torch.zeros(batch, self.size, dtype=torch.float64, device=x.device)
        if own.identity:
            self._t += per
        else:
            self._t.index_add_(1, own.to, per.index_select(1, own.keep))

    def end_direction(self, batch: int) -> None:
        """Close a direction: t[n, c] summed over the roots goes into tᵀt and mean |t|."""
        t = self._t
        if t is None:
            t = torch.zeros(batch, self.size, dtype=torch.float64, device=self.device)
        self.gram.add(t.T, t.T)
        self.abs_sum += t.abs().sum(0)
        self.rows += batch
        self._t = None

    def result(self) -> TaylorStats:
        """Return the totals as numpy."""
        mean = (self.abs_sum / max(1, self.rows)).cpu().numpy()
        return TaylorStats(self.rows, mean, self.gram.value().cpu().numpy())


Route = Callable[[torch.Tensor], None]


class GroupAccumulator:
    """Everything accumulated for one prunable group.

    Per batch: :meth:`start_batch`, then per direction the gradients arrive through
    :meth:`routes` (called from backward hooks) and :meth:`end_direction` closes it.
    """

    def __init__(self, spec: GroupSpec, directions: int, device: torch.device):
        self.spec = spec
        self.consumers = [
            ConsumerAccumulator(c, spec.size, directions, device) for c in spec.consumers
        ]
        self.taylor = TaylorAccumulator(spec.roots, spec.size, device)
        self._acts: list[torch.Tensor] = []
        self._outputs: list[int] = []
        self._inputs: list[list[torch.Tensor | None]] = []
        self._seen: set[int] = set()

    def start_batch(self, watched: Mapping[str, torch.Tensor], batch: int) -> None:
        """Read the batch's activations (shared by every direction) into means and capacity."""
        self._acts, self._outputs, self._inputs = [], [], []
        for acc in self.consumers:
            a = gradients.activation(acc.spec, watched[acc.spec.x].detach(), batch)
            y = watched[acc.spec.y]
            outputs = gradients.outputs_of(acc.spec, y)
            acc.add_batch(a, outputs, y.numel() // max(1, batch * outputs))
            self._acts.append(a)
            self._outputs.append(outputs)
            recurrent = acc.spec.kind == "recurrent"
            names = acc.spec.step.inputs if recurrent else ()
            self._inputs.append([watched[n].detach() if n else None for n in names])

    def routes(self, watched: Mapping[str, torch.Tensor], batch: int) -> list[tuple[str, Route]]:
        """(tensor, callback) pairs: what to do with the gradient of each watched tensor."""
        out: list[tuple[str, Route]] = []
        for i, acc in enumerate(self.consumers):
            out.append((acc.spec.y, functools.partial(self._consumer, i, batch)))
        for root in self.spec.roots:
            x = watched[root.tensor].detach()
            out.append((root.tensor, functools.partial(self.taylor.add_root, root, x, batch=batch)))
        return out

    def _consumer(self, i: int, batch: int, d: torch.Tensor) -> None:
        acc = self.consumers[i]
        d = gradients.output_grad(acc.spec, d, batch, self._inputs[i])
        acc.add_gradient(self._acts[i], d)
        self._seen.add(i)

    def end_direction(self, batch: int) -> None:
        """Close a direction: consumers no gradient reached add zero rows."""
        for i, acc in enumerate(self.consumers):
            if i not in self._seen:
                acc.add_zero_rows(batch, self._outputs[i])
        self._seen = set()
        self.taylor.end_direction(batch)

    def close_batch(self) -> None:
        """Close a batch once every direction is in (the positions form adds its Gram now)."""
        for acc, a in zip(self.consumers, self._acts, strict=True):
            acc.close_batch(a)

    def end_batch(self) -> None:
        """Drop the batch's activations."""
        self._acts, self._outputs, self._inputs = [], [], []


def _with_constant(spec: ConsumerSpec) -> ConsumerSpec:
    """The consumer's spec with a constant-1 channel appended as channel C.

    The activation gets the constant at index S (``_append_one``); the zero pad of channels
    owning fewer indices moves from S to S+1, and the constant channel owns its index once per
    owned position (like the real channels' taps).
    """
    s = len(spec.sel)
    owned = np.where(spec.owned >= s, s + 1, spec.owned)
    owned = np.concatenate([owned, np.full((1, owned.shape[1]), s, dtype=owned.dtype)])
    return replace(spec, sel=np.append(spec.sel, -1), owned=owned)


def _append_one(a: torch.Tensor) -> torch.Tensor:
    """Append a constant-1 channel to a laid-out activation ``[B, S, ...]``."""
    return torch.cat([a, a.new_ones((a.shape[0], 1, *a.shape[2:]))], 1)
