"""Accumulate each consumer's block of a group's Gram K_g = G_gᵀG_g by batches, never forming G_g.

Rows of G_g are per-sample gradients ∂ℓ/∂W_cons[o, c, tap] over every consumer, output unit
and kernel tap (indices a channel owns several of become extra rows, like taps); columns are
the group's channels. Since Σ_n G_nᵀG_n is the Gram of all rows stacked, each chunk of rows is
added as XᵀX (float64), and K_g is the sum of the consumers' blocks. Alongside each block: the
consumer's rows, rank capacity, input means and bias column (for compensation). The roots' gate
gradients are summed in :mod:`~onnxprune.analysis.taylor`; :mod:`~onnxprune.analysis.group`
feeds both, group by group.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from onnxprune.analysis import gradients
from onnxprune.analysis.forms import add_positions, add_positions_gram, add_rows, grouped_chunks
from onnxprune.analysis.gramsum import GramSum
from onnxprune.analysis.layout import columns, taps_of
from onnxprune.analysis.specs import ConsumerSpec


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
        """Add a batch's activation to the means and the rank capacity.

        ``a`` comes from :func:`~onnxprune.analysis.layout.activation`; ``outputs`` and
        ``positions`` (O and P of the consumer's output) choose the form.
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
        rows = self.directions * outputs * m * taps_of(self.spec)
        self.capacity += a.shape[0] * min(values, rows, self.size)
        shape = dict(batch=a.shape[0], positions=positions, size=self.size)
        inputs = tuple(a.shape[2:]) if self.spec.kind == "unfold" else None
        self.form = gradients.choose_form(
            self.spec, outputs=outputs, directions=self.directions, inputs=inputs, **shape)
        self.fold = self.form == "positions" and inputs is not None and gradients.fold_taps(
            self.spec, inputs=inputs, **shape)
        self._m = self._x = None
        self._pending, self._pending_size = [], 0
        q = m * taps_of(self.spec)
        layout = a.shape[0] * (self.size + 1) * q * positions
        held = a.shape[0] * self.directions * outputs * positions  # the gradients, if held
        self._keep_columns = (self.form == "rows" and self.spec.kind != "grouped"
                              and gradients.keep_layout(layout, held))

    def add_gradient(self, a: torch.Tensor, d: torch.Tensor) -> None:
        """Add one direction's per-sample weight gradients of a batch (constant channel too)."""
        if self.form == "positions":
            self._m = add_positions(self._m, d)
            self.add_zero_rows(d.shape[0], d.shape[1])
            return
        if self._keep_columns:
            if self._x is None:
                x = columns(self._one, _append_one(a), self.size + 1)
                self._x = x.reshape(x.shape[0], -1, x.shape[-1])
            self.rows += add_rows(self.gram, self._one, a, d, self.size + 1, self._x)
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
            self.rows += add_rows(self.gram, self._one, a1, pending, self.size + 1)
            return
        owned = torch.as_tensor(self._one.owned, device=a.device)
        for d in pending:
            for g in grouped_chunks(self._one, a1, d):
                x = _rows(g, owned, False)
                self.gram.add(x.T, x.T)
                self.rows += x.shape[0]

    def add_zero_rows(self, batch: int, outputs: int) -> None:
        """Count the rows of a direction (whose gradient never reached the consumer)."""
        self.rows += batch * outputs * self.owned.shape[1] * taps_of(self.spec)

    def close_batch(self, a: torch.Tensor) -> None:
        """Close a batch: add what waited for every direction (rows, or the positions Gram)."""
        self._add_pending(a)
        self._x = None
        m, self._m = self._m, None
        if m is not None:
            add_positions_gram(self.gram, self._one, _append_one(a), m, self.size + 1,
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
