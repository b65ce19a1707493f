"""Effective filter analysis: Grams against brute force, objectives, bad data, spectrum, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from onnxprune import ir
from onnxprune.analysis import STATUSES, analyze, spectrum
from onnxprune.analysis import specs as specs_module
from onnxprune.analysis.objectives import gn_directions
from onnxprune.channels.graph import Group
from onnxprune.cli import main
from onnxprune.data import Dataset, load_data
from onnxprune.errors import InputError
from onnxprune.model import Model, load
from onnxprune.shim.module import Shim
from onnxprune.testing import export_onnx

MODELS = Path(__file__).resolve().parents[1] / "models"
SEED, DIRECTIONS = 3, 2



class Conv2dNet(nn.Module):
    """Residual stream read by a dilated conv, a strided conv and a ConvTranspose; Flatten→Gemm."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.b = nn.Conv2d(6, 6, 3, padding=2, dilation=2)
        self.c = nn.Conv2d(6, 5, 3, stride=2, padding=1)
        self.ct = nn.ConvTranspose2d(6, 4, 2, stride=2)
        self.fc = nn.Linear(5 * 16, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = torch.relu(self.stem(x))
        s = torch.relu(a + self.b(a))
        c = torch.relu(self.c(s)).flatten(1)
        return self.fc(c), torch.relu(self.ct(s)).mean((2, 3))


class TokenNet(nn.Module):
    """Conv1d, then two Linear layers over tokens (MatMul consumers with a token axis)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 3, padding=1)
        self.l1, self.l2 = nn.Linear(6, 5), nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x)).transpose(1, 2)
        return self.l2(torch.relu(self.l1(h)))


class RecurrentNet(nn.Module):
    """Conv1d features read by a bidirectional recurrent layer (W consumer), then Linear."""

    def __init__(self, cell: type[nn.Module]) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 3, padding=1)
        self.rnn = cell(6, 3, bidirectional=True)
        self.fc = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, _ = self.rnn(torch.relu(self.conv(x)).permute(2, 0, 1))
        return self.fc(seq.transpose(0, 1))  # batch-first, as the objective expects


NETS = {
    "conv2d": (Conv2dNet, (1, 3, 8, 8)),
    "tokens": (TokenNet, (1, 4, 10)),
    "lstm": (lambda: RecurrentNet(nn.LSTM), (1, 4, 7)),
    "gru": (lambda: RecurrentNet(nn.GRU), (1, 4, 7)),
    "rnn": (lambda: RecurrentNet(nn.RNN), (1, 4, 7)),
}


@pytest.fixture(scope="module")
def nets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Model, np.ndarray]]:
    tmp = tmp_path_factory.mktemp("analysis_nets")
    out = {}
    for name, (cls, shape) in NETS.items():
        torch.manual_seed(0)
        model = load(export_onnx(cls(), shape, tmp / f"{name}.onnx", dynamo=False))
        x = np.random.default_rng(0).standard_normal((5, *shape[1:])).astype(np.float32)
        out[name] = (model, x)
    return out


def _gated(shim: Shim, groups: list[Group]) -> dict[int, torch.Tensor]:
    """Put one shared gate per group on every root output; return the gate vectors."""
    gates = {}
    for g in groups:
        m = torch.ones(g.size, requires_grad=True)
        for root in g.roots:
            owner = torch.as_tensor(g.members[root.space])
            gate = torch.where(owner >= 0, m[owner.clamp_min(0)], torch.ones(()))
            shim.set_gate(root.space.tensor, root.space.axis, gate)
        gates[g.id] = m
    return gates


def _columns(grad: torch.Tensor, axis: int, owner: np.ndarray, size: int) -> torch.Tensor:
    """Rows × C of one weight gradient: the indices a channel owns become extra rows."""
    cols = grad.double().movedim(axis, -1).reshape(-1, grad.shape[axis])
    idx = [np.flatnonzero(owner == c) for c in range(size)]
    return torch.stack([cols[:, i] for i in idx], -1).reshape(-1, size)


def brute_force(model: Model, x: np.ndarray) -> tuple[dict, dict]:
    """Per-sample autograd with G materialised: consumer Grams and Taylor Grams per group."""
    shim = Shim(model.proto)
    groups = [g for g in model.groups.groups if g.prunable]
    grams: dict = {(g.id, r.node): 0 for g in groups for r in g.consumers}
    taylor: dict = {g.id: 0 for g in groups}
    for n in range(len(x)):
        gates = _gated(shim, groups)
        outs = shim({"input": x[n : n + 1]})
        f = torch.cat([o.reshape(-1) for o in outs])
        v = gn_directions(SEED, n, DIRECTIONS, f.numel())
        weights = [shim.params[r.weight.name] for g in groups for r in g.consumers]
        for r in range(DIRECTIONS):
            grads = torch.autograd.grad((v[r] * f).sum(), weights + list(gates.values()),
                                        retain_graph=True)
            it = iter(grads)
            for g in groups:
                for ref in g.consumers:
                    cols = _columns(next(it), ref.weight.axis, g.members[ref.space], g.size)
                    grams[g.id, ref.node] = grams[g.id, ref.node] + cols.T @ cols
            for g in groups:
                t = next(it).double()
                taylor[g.id] = taylor[g.id] + torch.outer(t, t)
    return grams, taylor


def _rel(a: np.ndarray, b: torch.Tensor) -> float:
    ref = b.numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    return float(np.linalg.norm(a - ref) / np.linalg.norm(ref))


@pytest.mark.parametrize("name", list(NETS))
def test_gram_matches_brute_force(name: str, nets: dict) -> None:
    model, x = nets[name]
    result = analyze(model, Dataset({"input": x}), objective="gauss-newton",
                     directions=DIRECTIONS, batch_size=2, seed=SEED, estimate=False)
    grams, taylor = brute_force(model, x)
    checked = 0
    for g in result.groups:
        if not g.analysed:
            continue
        for c in g.consumers:
            assert _rel(c.gram, grams[g.id, c.node]) < 1e-6, (g.id, c.node)
            checked += 1
        assert _rel(g.gram, sum(grams[g.id, c.node] for c in g.consumers)) < 1e-6
        assert _rel(g.taylor_gram, taylor[g.id]) < 1e-6
    assert checked == len(grams)


def test_rows_and_means_conv2d(nets: dict) -> None:
    model, x = nets["conv2d"]
    result = analyze(model, Dataset({"input": x}), directions=DIRECTIONS, estimate=False)
    by_node = {c.node: c for g in result.groups for c in g.consumers}
    fc = by_node["/fc/Gemm"]  # 5 channels × 16 features each, 4 outputs
    assert fc.rows == 5 * DIRECTIONS * 4 * 16 and fc.mean.shape == (5, 16)
    assert by_node["/c/Conv"].rows == 5 * DIRECTIONS * 5 * 9  # samples·R·outputs·taps
    shim = Shim(model.proto)
    tensor = by_node["/c/Conv"].tensor
    with shim.watch([tensor]) as w:
        shim({"input": x})
    want = w[tensor].detach().double().mean((0, 2, 3)).numpy()
    np.testing.assert_allclose(by_node["/c/Conv"].mean[:, 0], want, rtol=1e-6)


def test_batch_size_does_not_change_the_gram(nets: dict) -> None:
    model, x = nets["conv2d"]
    data = Dataset({"input": x})
    a = analyze(model, data, directions=DIRECTIONS, batch_size=1, estimate=False)
    b = analyze(model, data, directions=DIRECTIONS, batch_size=4, estimate=False)
    for ga, gb in zip(a.groups, b.groups, strict=True):
        if ga.analysed:
            assert _rel(ga.gram, gb.gram) < 1e-5
            assert ga.rows == gb.rows and ga.capacity == gb.capacity


def test_taylor_fallback_without_usable_consumers(nets: dict, monkeypatch) -> None:
    model, x = nets["conv2d"]
    monkeypatch.setattr(specs_module, "_kind", lambda *args: None)
    result = analyze(model, Dataset({"input": x}), directions=DIRECTIONS, estimate=False)
    analysed = [g for g in result.groups if g.analysed]
    assert [g.id for g in analysed] == [0, 1]
    for g in analysed:
        assert g.fallback and g.status in ("taylor-fallback", "data-limited")
        assert g.rows == len(x) * DIRECTIONS and not g.consumers
        np.testing.assert_array_equal(g.gram, g.taylor_gram)
        assert 1 <= g.rank <= g.channels


class FinalStateNet(nn.Module):
    """A classifier on the LSTM's final hidden state Y_h (the sequence Y is not read)."""

    def __init__(self, both: bool) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 3, padding=1)
        self.rnn = nn.LSTM(6, 3)
        self.fc = nn.Linear(3, 2)
        self.both = both

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, (h, _) = self.rnn(torch.relu(self.conv(x)).permute(2, 0, 1))
        out = self.fc(h[0])
        return out + seq.mean(0)[:, :2] if self.both else out


@pytest.mark.parametrize(
    ("both", "why"),
    [
        pytest.param(False, "its sequence output Y is not read", id="Y_h-only"),
        pytest.param(True, "its final states Y_h/Y_c are read", id="Y-and-Y_h"),
    ],
)
def test_recurrent_reading_final_states_falls_back_to_gate_gradients(
    tmp_path: Path, both: bool, why: str
) -> None:
    torch.manual_seed(0)
    model = load(export_onnx(FinalStateNet(both), (1, 4, 7), tmp_path / "m.onnx", dynamo=False))
    x = np.random.default_rng(0).standard_normal((6, 4, 7)).astype(np.float32)
    result = analyze(model, Dataset({"input": x}), directions=DIRECTIONS, estimate=False)
    (group,) = [g for g in result.groups if g.analysed]
    assert group.fallback and not group.consumers
    assert group.rows == len(x) * DIRECTIONS
    (skipped,) = specs_module.group_specs(model, Shim(model.proto))[0].skipped
    assert "(LSTM)" in skipped and why in skipped


# -- spectrum -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lam", "eps", "tol", "rank", "rank_t"),
    [
        ([4.0, 1.0, 0.0, 0.0], 1e-3, 1e-3, 2, 2),
        ([1.0, 1.0, 1.0, 1.0], 1e-3, 1e-3, 4, 4),
        ([1.0, 1e-2, 1e-5, 1e-8], 1e-3, 1e-3, 2, 3),  # energy 1e-5 < ε; σ 3e-3 > τ
        ([1.0, 1e-2, 1e-5, 1e-8], 1e-6, 1e-3, 3, 3),
        ([0.0, 0.0, 0.0], 1e-3, 1e-3, 1, 1),  # no signal: a group keeps one channel
    ],
)
def test_spectrum_ranks(lam: list[float], eps: float, tol: float, rank: int, rank_t: int) -> None:
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((len(lam), len(lam))))
    s = spectrum(q @ np.diag(lam) @ q.T, energy_eps=eps, rel_tol=tol)
    assert (s.rank, s.rank_threshold) == (rank, rank_t)
    assert s.max_rate == pytest.approx(1 - rank / len(lam))
    np.testing.assert_allclose(s.eigenvalues, sorted(lam, reverse=True), atol=1e-12)


# -- digits models: objectives, bad data, CLI ---------------------------------------------


@pytest.fixture(scope="module")
def digits() -> tuple[Model, Dataset]:
    model = load(MODELS / "digits_cnn.onnx")
    data = load_data(MODELS / "digits_calib.npz", ir.io_specs(model.proto), model.input_shapes,
                     limit=48)
    return model, data


@pytest.mark.parametrize("objective", ["output-aware", "gauss-newton", "labels", "pseudo-label"])
def test_objectives_on_digits(objective: str, digits: tuple[Model, Dataset]) -> None:
    model, data = digits
    result = analyze(model, data, objective=objective, directions=2)
    assert [g.id for g in result.groups] == [g.id for g in model.groups.groups]
    analysed = [g for g in result.groups if g.analysed]
    assert len(analysed) == sum(g.prunable for g in model.groups.groups) == 5
    for g in analysed:
        assert 1 <= g.rank <= g.channels and 1 <= g.rank_threshold <= g.channels
        assert 0.0 <= g.max_rate < 1.0 and g.status in STATUSES
        assert g.gram.shape == (g.channels, g.channels) and g.rows > 0
    # the first conv of the trained model has 19 filters that are dead on every input
    assert result.group(0).rank_threshold == 13
    est = result.estimate
    assert est is not None and not est.error
    assert 0 < est.macs_after < est.macs_before and 0 < est.params_after < est.params_before
    assert est.widths == {g.id: g.rank for g in analysed if g.rank < g.channels}


def _bad(digits: tuple[Model, Dataset], case: str) -> tuple[Dataset | None, dict]:
    model, data = digits
    x, y = data.inputs["input"], data.labels
    return {
        "shape": (Dataset({"input": x[:, :, :7, :7]}), {}),
        "rank": (Dataset({"input": x[:, 0]}), {}),
        "dtype": (Dataset({"input": (x * 10).astype(np.int64)}), {}),
        "name": (Dataset({"image": x}), {}),
        "nan": (Dataset({"input": np.where(x > 0.5, np.nan, x).astype(np.float32)}), {}),
        "few": (Dataset({"input": x[:1]}), {}),
        "no-labels": (Dataset({"input": x}), {"objective": "labels"}),
        "labels-range": (Dataset({"input": x}, y + 10), {"objective": "labels"}),
        "labels-float": (Dataset({"input": x}, y.astype(np.float32)), {"objective": "labels"}),
        "random-labels": (None, {"objective": "labels"}),
        "objective": (data, {"objective": "hessian"}),
        "directions": (data, {"directions": 0}),
        "eps": (data, {"energy_eps": 1.5}),
    }[case]


@pytest.mark.parametrize(
    "case",
    ["shape", "rank", "dtype", "name", "nan", "few", "no-labels", "labels-range",
     "labels-float", "random-labels", "objective", "directions", "eps"],
)
def test_bad_data_is_an_input_error(case: str, digits: tuple[Model, Dataset]) -> None:
    data, options = _bad(digits, case)
    with pytest.raises(InputError) as e:
        analyze(digits[0], data, estimate=False, **options)
    assert "\n" not in str(e.value)


def test_labels_that_do_not_match_the_samples() -> None:
    with pytest.raises(InputError, match="same number of samples"):
        Dataset({"input": np.zeros((4, 1, 8, 8), np.float32)}, np.zeros(3, np.int64))


def test_cli_json_has_one_record_per_group(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["analyze", str(MODELS / "digits_cnn.onnx"), "--data",
               str(MODELS / "digits_calib.npz"), "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    model = load(MODELS / "digits_cnn.onnx")
    assert [g["id"] for g in report["groups"]] == [g.id for g in model.groups.groups]
    assert report["samples"] == 256 and report["objective"] == "output-aware"
    assert all("gram" not in g for g in report["groups"])
    ok = [g for g in report["groups"] if g["rank"] is not None]
    assert all(0 <= g["max_rate"] < 1 and len(g["singular_values"]) == g["channels"] for g in ok)
    assert report["estimate"]["macs_after"] < report["estimate"]["macs_before"]


def test_cli_table_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "spectra.png"
    rc = main(["analyze", str(MODELS / "digits_resnet.onnx"), "--data",
               str(MODELS / "digits_calib.npz"), "--objective", "labels", "--samples", "32",
               "--plot", str(plot)])
    out = capsys.readouterr().out
    assert rc == 0 and plot.stat().st_size > 10_000
    assert out.splitlines()[0].split()[:5] == ["group", "ch", "rank", "rank@τ", "max"]
    assert "network estimate at effective ranks" in out.splitlines()[-1]


def test_cli_bad_data_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, input=np.zeros((4, 1, 5, 5), np.float32))
    rc = main(["analyze", str(MODELS / "digits_cnn.onnx"), "--data", str(bad)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "shape" in err


def test_cli_labels_not_matching_the_samples_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = tmp_path / "labels.npy"
    np.save(labels, np.zeros(5, np.int64))  # the calibration file holds 256 samples
    rc = main(["analyze", str(MODELS / "digits_cnn.onnx"), "--data",
               str(MODELS / "digits_calib.npz"), "--labels", str(labels),
               "--objective", "labels"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "5 labels for 256 samples" in err
