"""Both Gram forms (rows, positions) against explicit per-sample autograd gradients.

The reference runs the shim one sample at a time, takes ∂ℓ_r/∂W of every consumer weight with
autograd for each Gauss–Newton direction r, stacks the rows of G_g explicitly (indices a
channel owns become extra rows) and forms GᵀG. The analysis, with the form forced, must give
the same Gram to 1e-5 relative for every consumer kind: k×k convs with stride, padding and
dilation, a conv reading through a depthwise conv, ConvTranspose (batch folded into groups),
Conv1d, Gemm after Flatten (a channel owns H·W features) and MatMul over tokens; the rows
form keeping the laid-out activation or the output gradients through a batch, the positions
form with a conv's taps folded into M and unfolded.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from onnxprune.analysis import AnalysisResult, analyze, gradients
from onnxprune.analysis import gram as gram_module
from onnxprune.analysis.objectives import gn_directions
from onnxprune.analysis.specs import group_specs
from onnxprune.data import Dataset
from onnxprune.model import Model, load
from onnxprune.shim.module import Shim
from onnxprune.testing import export_onnx

SEED, DIRECTIONS, SAMPLES = 5, 3, 5
analysis_module = sys.modules["onnxprune.analysis"]
MODELS = Path(__file__).resolve().parents[1] / "models"


class Convs(nn.Module):
    """Stride, padding, dilation, asymmetric kernels; Flatten→Gemm reads 4 features a channel."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.a = nn.Conv2d(6, 6, (3, 5), padding=(2, 4), dilation=2)
        self.b = nn.Conv2d(6, 5, 3, stride=2, padding=1)
        self.c = nn.Conv2d(5, 4, 2, stride=2)
        self.fc = nn.Linear(4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.stem(x))
        s = torch.relu(s + self.a(s))
        h = torch.relu(self.c(torch.relu(self.b(s))))
        return self.fc(h.flatten(1))


class DepthwiseAdjacent(nn.Module):
    """A group running through a depthwise conv to a 1×1 and a 5×5 consumer; ConvTranspose."""

    def __init__(self) -> None:
        super().__init__()
        self.expand = nn.Conv2d(3, 8, 1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.project = nn.Conv2d(8, 6, 1)
        self.wide = nn.Conv2d(8, 4, 5, padding=2)
        self.up = nn.ConvTranspose2d(6, 3, 3, stride=2, padding=1, output_padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.dw(torch.relu(self.expand(x))))
        p = torch.relu(self.project(h))
        return self.up(p).mean((2, 3)), self.wide(h).mean((2, 3))


class Tokens(nn.Module):
    """Conv1d (stride 2) into a dilated Conv1d, then MatMul consumers over a token axis."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 3, stride=2, padding=1)
        self.conv2 = nn.Conv1d(6, 6, 3, stride=2, padding=2, dilation=2)
        self.l1, self.l2 = nn.Linear(6, 7), nn.Linear(7, 5)
        self.head = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv2(torch.relu(self.conv(x)))).transpose(1, 2)
        h = self.l2(torch.relu(self.l1(h)))
        return self.head(torch.relu(h).mean(1))


NETS = {
    "convs": (Convs, (1, 3, 8, 8)),
    "depthwise-adjacent": (DepthwiseAdjacent, (1, 3, 6, 6)),
    "tokens": (Tokens, (1, 4, 12)),
}


@pytest.fixture(scope="module")
def nets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Model, np.ndarray]]:
    tmp = tmp_path_factory.mktemp("forms")
    out = {}
    for name, (cls, shape) in NETS.items():
        torch.manual_seed(0)
        model = load(export_onnx(cls(), shape, tmp / f"{name}.onnx", dynamo=False))
        x = np.random.default_rng(1).standard_normal((SAMPLES, *shape[1:])).astype(np.float32)
        out[name] = (model, x)
    return out


def _rows(grad: torch.Tensor, axis: int, owner: np.ndarray, size: int) -> torch.Tensor:
    """The rows of G_g one weight gradient gives: ``[rows, C]`` (owned indices become rows)."""
    cols = grad.double().movedim(axis, -1).reshape(-1, grad.shape[axis])
    per = [np.flatnonzero(owner == c) for c in range(size)]
    m = max(len(p) for p in per)
    zero = torch.zeros(cols.shape[0], dtype=torch.float64)
    blocks = [[cols[:, p[j]] if j < len(p) else zero for p in per] for j in range(m)]
    return torch.cat([torch.stack(b, -1) for b in blocks])


def reference_grams(model: Model, x: np.ndarray) -> dict[tuple[int, str], torch.Tensor]:
    """K per (group, consumer node) from explicit per-sample, per-direction weight gradients."""
    shim = Shim(model.proto)
    refs = [(g, r) for g in model.groups.groups if g.prunable for r in g.consumers]
    weights = [shim.params[r.weight.name] for _, r in refs]
    grams: dict[tuple[int, str], torch.Tensor] = {}
    for n in range(len(x)):
        f = torch.cat([o.reshape(-1) for o in shim({"input": x[n : n + 1]})])
        v = gn_directions(SEED, n, DIRECTIONS, f.numel())
        for r in range(DIRECTIONS):
            grads = torch.autograd.grad((v[r] * f).sum(), weights, retain_graph=True)
            for (g, ref), grad in zip(refs, grads, strict=True):
                rows = _rows(grad, ref.weight.axis, g.members[ref.space], g.size)
                key = (g.id, ref.node)
                grams[key] = grams.get(key, 0) + rows.T @ rows
    return grams


def _analysed(
    model: Model, x: np.ndarray, form: str | None, monkeypatch: pytest.MonkeyPatch, batch: int = 2,
    fold: bool | None = None, keep: bool | None = None, held: int | None = None,
) -> AnalysisResult:
    if form is not None:  # the grouped kind (ConvTranspose) only has the rows form
        monkeypatch.setattr(
            gradients, "choose_form",
            lambda spec, **kw: "rows" if spec.kind == "grouped" else form,
        )
    if fold is not None:
        monkeypatch.setattr(gradients, "fold_taps", lambda spec, **kw: fold)
    if keep is not None:
        monkeypatch.setattr(gradients, "keep_layout", lambda layout, held: keep)
    if held is not None:  # gradients held for the rows form before they are added
        monkeypatch.setattr(gram_module, "HELD", held)
    return analyze(model, Dataset({"input": x}), objective="gauss-newton", directions=DIRECTIONS,
                   batch_size=batch,
                   seed=SEED, estimate=False)


def _rel(a: np.ndarray, b: torch.Tensor) -> float:
    return float(np.linalg.norm(a - b.numpy()) / np.linalg.norm(b.numpy()))


@pytest.mark.parametrize(("form", "fold", "keep", "held"), [
    ("rows", None, False, None), ("rows", None, False, 1), ("rows", None, True, None),
    ("positions", False, None, None), ("positions", True, None, None),
    (None, None, None, None)])
@pytest.mark.parametrize("name", list(NETS))
def test_gram_matches_per_sample_autograd(name: str, form: str | None, fold: bool | None,
                                          keep: bool | None, held: int | None, nets: dict,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    model, x = nets[name]
    result = _analysed(model, x, form, monkeypatch, fold=fold, keep=keep, held=held)
    want = reference_grams(model, x)
    got = {(g.id, c.node): c for g in result.groups if g.analysed for c in g.consumers}
    assert sorted(got) == sorted(want)
    for key, c in got.items():
        assert _rel(c.gram, want[key]) < 1e-5, key


@pytest.mark.parametrize("name", list(NETS))
def test_forms_count_the_same_rows(name: str, nets: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    model, x = nets[name]
    rows = _analysed(model, x, "rows", monkeypatch)
    by_positions = _analysed(model, x, "positions", monkeypatch, batch=3)
    for a, b in zip(rows.groups, by_positions.groups, strict=True):
        assert a.rows == b.rows and a.capacity == b.capacity
        for ca, cb in zip(a.consumers, b.consumers, strict=True):
            assert (ca.node, ca.rows) == (cb.node, cb.rows)
            np.testing.assert_allclose(ca.mean, cb.mean, rtol=1e-12)


@pytest.mark.parametrize(("form", "fold", "keep"), [
    ("rows", None, False), ("rows", None, True), ("positions", False, None),
    ("positions", True, None)])
def test_linear_redundancy_stays_at_round_off(form: str, fold: bool | None, keep: bool | None,
                                              tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A channel that is an exact combination of two others: λ_min/λ_1 far below 1e-10."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 5, 3, padding=1),
                        nn.ReLU(), nn.Flatten(), nn.Linear(5 * 36, 3))
    with torch.no_grad():
        w, b = net[0].weight, net[0].bias
        w[5], b[5] = 0.7 * w[0] - 1.3 * w[1], 0.7 * b[0] - 1.3 * b[1]
    model = load(export_onnx(net, (1, 3, 6, 6), tmp_path / "linear.onnx", dynamo=False))
    x = np.random.default_rng(2).standard_normal((8, 3, 6, 6)).astype(np.float32)
    result = _analysed(model, x, form, monkeypatch, batch=4, fold=fold, keep=keep)
    group = next(g for g in result.groups if g.analysed and g.channels == 6)
    lam = np.linalg.eigvalsh(group.gram)
    assert abs(lam[0]) / lam[-1] < 1e-12 and lam[1] / lam[-1] > 1e-8


@pytest.mark.parametrize(
    ("node", "positions", "form"),
    [
        ("/a/Conv", 64, "rows"),  # 6 outputs × 3 directions over 64 positions: rows are few
        ("/fc/Gemm", 1, "positions"),  # one position: the sample adds |δ|²·a aᵀ
    ],
)
def test_choose_form_takes_the_cheaper(node: str, positions: int, form: str, nets: dict) -> None:
    model, _ = nets["convs"]
    specs = group_specs(model, Shim(model.proto))
    group, spec = next((g, c) for g in specs for c in g.consumers if c.node == node)
    outputs = int(model.shapes[spec.y][1] if spec.kind == "unfold" else model.shapes[spec.y][-1])
    got = gradients.choose_form(spec, batch=2, outputs=outputs, positions=positions,
                                size=group.size, directions=DIRECTIONS)
    assert got == form


def test_batch_lowered_to_the_activation_budget(monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    model = load(MODELS / "digits_cnn.onnx")  # batch dim dynamic
    x = np.random.default_rng(3).standard_normal((6, *model.input_shapes["input"][1:]))
    data = Dataset({"input": x.astype(np.float32)})
    ones = analyze(model, data, directions=2, batch_size=1, estimate=False)
    monkeypatch.setattr(analysis_module, "ACTIVATION_BUDGET", 1)  # one sample per batch
    with caplog.at_level(logging.INFO, logger="onnxprune.analysis"):
        capped = analyze(model, data, directions=2, batch_size=4, estimate=False, progress=True)
    messages = [r.message for r in caplog.records]
    assert sum("analysis: batch" in m for m in messages) == 6
    assert any(m.startswith("batch size 4 -> 1") for m in messages)
    for a, b in zip(ones.groups, capped.groups, strict=True):
        np.testing.assert_array_equal(a.gram, b.gram)


def test_a_gpu_batch_is_capped_by_a_share_of_its_free_memory(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """On the CPU budget a 320x320 detector ran one sample per pass, too few to fill a GPU."""
    from onnxprune.analysis import _capped, activation_budget

    free = 8 << 30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 80 << 30))
    assert activation_budget("cpu") == analysis_module.ACTIVATION_BUDGET
    assert activation_budget("cuda") == int(analysis_module.GPU_SHARE * free)
    free = 1 << 20  # an almost full card still gets the CPU's budget
    assert activation_budget("cuda:0") == analysis_module.ACTIVATION_BUDGET
    model = load(MODELS / "digits_cnn.onnx")
    produced = {o for n in model.proto.graph.node for o in n.output}
    per_sample = 4 * sum(int(np.prod(s)) for k, s in model.shapes.items() if k in produced)
    assert _capped(model, 64, 3 * per_sample) == 3
    assert _capped(model, 2, 3 * per_sample) == 2


def test_backward_targets_are_the_tensors_below_all_others() -> None:
    """Differentiating the lowest hooked tensors runs the hooks of every one above them."""
    from onnxprune.analysis.collect import _sources

    x = torch.randn(1, 3, requires_grad=True)
    a = x * 2
    b, side = a.exp(), torch.randn(1, 3, requires_grad=True) * 3
    c = b + a + side
    assert [t is b for t in _sources([b, c])] == [True]
    assert [t is x for t in _sources([b, c, x])] == [True]
    assert {id(t) for t in _sources([c, a, side])} == {id(a), id(side)}
