"""Hierarchical pruning to a target: allocation, selection, compensation, plans, CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

import onnxprune
from onnxprune import ir
from onnxprune.pruning import allocation
from onnxprune.analysis import analyze
from onnxprune.pruning.criteria import pivot_order
from onnxprune.data import Dataset, load_data
from onnxprune.testing.export import export_onnx
from onnxprune.testing.oracle import run

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"


@pytest.fixture(scope="module")
def digits() -> tuple[onnxprune.Model, Dataset, object]:
    model = onnxprune.load(MODELS / "digits_resnet.onnx")
    data = load_data(MODELS / "digits_calib.npz", ir.io_specs(model.proto), model.input_shapes,
                     limit=64)
    return model, data, analyze(model, data, estimate=False)


def _accuracy(proto: onnx.ModelProto) -> float:
    test = np.load(MODELS / "digits_test.npz")
    (y,) = run(proto, {"input": test["input"]})
    return float((y.argmax(1) == test["labels"]).mean())


# -- allocation ------------------------------------------------------------------------------


def test_allocation_stays_at_or_above_effective_rank_when_the_target_allows(digits) -> None:
    model, data, an = digits
    ranks = {g.id: g.rank for g in an.groups if g.rank is not None and g.status == "ok"}
    # The estimate at effective ranks is the most the first pass can prune; ask for less.
    widths = {gid: r for gid, r in ranks.items()}
    est = allocation.CostModel(model.groups, "macs", model.cost.macs)
    w = est.sizes.copy()
    for gid, r in widths.items():
        w[est.ids.index(gid)] = r
    floor = est.cost(w) / est.total
    target = floor + (1 - floor) / 3
    res = onnxprune.prune(model, target_macs=target, data=data, analysis=an)
    assert not res.allocation.past_rank
    for g in res.plan.groups:
        if g.id in ranks:
            assert len(g.keep) >= ranks[g.id], (g.id, len(g.keep), ranks[g.id])
    assert abs(res.after.macs / res.before.macs - target) < 0.02


def test_a_target_past_the_redundancy_is_reached_and_reported(digits) -> None:
    model, data, an = digits
    res = onnxprune.prune(model, target_macs=0.1, data=data, analysis=an)
    assert res.allocation.past_rank
    for gid, (rank, width) in res.allocation.past_rank.items():
        assert width < rank
        assert res.plan.groups[[g.id for g in res.plan.groups].index(gid)].info["past_rank"]
    assert "past their max rate" in res.summary()
    assert abs(res.after.macs / res.before.macs - 0.1) < 0.02


@pytest.mark.parametrize("how", ["hierarchical", "uniform", "global"])
def test_round_to_is_honoured(how: str, digits) -> None:
    model, data, an = digits
    res = onnxprune.prune(model, target_macs=0.5, data=data, analysis=an, allocation=how,
                          criterion="l1" if how != "hierarchical" else None, round_to=8,
                          min_channels=8)
    assert res.plan.groups
    for g in res.plan.groups:
        assert len(g.keep) % 8 == 0 and len(g.keep) >= 8, (g.id, len(g.keep))
    assert abs(res.after.macs / res.before.macs - 0.5) < 0.03


def test_min_channels_and_exclude(digits) -> None:
    model, data, an = digits
    first = next(g for g in model.groups.groups if g.prunable)
    res = onnxprune.prune(model, target_macs=0.4, data=data, analysis=an, min_channels=12,
                          exclude=[str(first.id)])
    assert first.id not in {g.id for g in res.plan.groups}
    assert all(len(g.keep) >= 12 for g in res.plan.groups)


def test_cost_model_is_exact_for_macs(digits) -> None:
    model, _, _ = digits
    cm = allocation.CostModel(model.groups, "macs", model.cost.macs)
    rng = np.random.default_rng(0)
    plan = {g.id: np.sort(rng.choice(g.size, g.size // 3 + 1, replace=False))
            for g in model.groups.groups if g.prunable}
    w = cm.sizes.copy()
    for gid, k in plan.items():
        w[cm.ids.index(gid)] = len(k)
    res = onnxprune.apply(model, onnxprune.pruning.plan.make_plan(model.groups, plan))
    assert cm.cost(w) == pytest.approx(res.after.macs, rel=1e-9)


def test_unreachable_target_is_exit_3(tmp_path: Path) -> None:
    out = tmp_path / "o.onnx"
    proc = subprocess.run(
        [sys.executable, "-m", "onnxprune.cli", "prune", str(MODELS / "digits_cnn.onnx"),
         "-o", str(out), "--target-macs", "0.01", "--allocation", "uniform", "--criterion",
         "l1", "--min-channels", "16"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 3, proc.stderr
    assert "cannot be reached" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_analysis_criteria_without_data_are_refused() -> None:
    model = onnxprune.load(MODELS / "digits_cnn.onnx")
    with pytest.raises(onnxprune.InputError, match="calibration data"):
        onnxprune.prune(model, target_macs=0.5, criterion="effective")
    with pytest.raises(onnxprune.InputError, match="calibration data"):
        onnxprune.prune(model, target_macs=0.5, allocation="hierarchical")
    with pytest.raises(onnxprune.InputError, match="exactly one"):
        onnxprune.prune(model, target_macs=0.5, ratio=0.3)
    with pytest.raises(onnxprune.InputError, match="kept fraction"):
        onnxprune.prune(model, target_macs=1.5, allocation="uniform", criterion="l1",
                        compensate=False)
    with pytest.raises(onnxprune.InputError, match="distill-epochs"):
        onnxprune.prune(model, target_macs=0.5, allocation="uniform", criterion="l1",
                        compensate=False, distill_epochs=-1)
    with pytest.raises(onnxprune.InputError, match="no group id"):
        onnxprune.prune(model, target_macs=0.5, allocation="uniform", criterion="l1",
                        compensate=False, exclude=["nope"])


# -- selection ------------------------------------------------------------------------------


def test_pivot_order_takes_independent_channels_first() -> None:
    rng = np.random.default_rng(0)
    g = rng.normal(size=(40, 6))
    g[:, 3] = g[:, 0]                   # copy
    g[:, 5] = 2 * g[:, 1] - g[:, 2]     # linear combination
    g[:, 4] = 0.0                       # dead
    order = pivot_order(g.T @ g)
    first = set(order[:3].tolist())
    assert len(first) == 3 and 4 not in first
    assert np.linalg.matrix_rank(g[:, order[:3]]) == 3
    assert order[-1] == 4


# -- compensation -----------------------------------------------------------------------------


class _Planted(torch.nn.Module):
    """conv1 (8 filters: 2 affine combinations of others, 1 dead) -> conv2 (reads them)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 6, 3)          # no padding: the intercept is exact
        self.head = torch.nn.Linear(6, 4)
        with torch.no_grad():
            w, b = self.conv1.weight, self.conv1.bias
            w[5] = 0.5 * w[0] - w[1]
            b[5] = 0.5 * b[0] - b[1]
            w[6] = w[2] + 2 * w[3]
            b[6] = b[2] + 2 * b[3]
            w[7] = 0.0
            b[7] = 0.0                                   # a dead channel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))                    # conv2 reads the pre-activation
        return self.head(torch.relu(y).mean((2, 3)))


def test_compensation_is_exact_on_planted_dependence(tmp_path: Path) -> None:
    path = export_onnx(_Planted().eval(), (1, 3, 10, 10), tmp_path / "planted.onnx", dynamo=False)
    model = onnxprune.load(path, input_shapes={"input": (1, 3, 10, 10)})
    rng = np.random.default_rng(1)
    data = Dataset({"input": rng.normal(size=(24, 3, 10, 10)).astype(np.float32)})
    an = analyze(model, data, estimate=False)
    g = next(a for a in an.groups if a.channels == 8)
    assert g.rank == 5
    keep = {g.id: list(range(5))}
    plan = onnxprune.pruning.plan.make_plan(model.groups, keep)
    from onnxprune.pruning.options import PruneOptions
    from onnxprune.pruning.pipeline import _finish

    opts = PruneOptions(ratio=0.5, criterion="l1", compensate=True,
                        ridge=1e-9).resolved(has_data=True)
    comp = _finish(model, plan, opts, an, None, [])
    plain = onnxprune.apply(model, plan)
    feeds = {"input": rng.normal(size=(1, 3, 10, 10)).astype(np.float32)}
    (ref,) = run(model.proto, feeds)
    (got,) = run(comp.model, feeds)
    (bad,) = run(plain.model, feeds)
    scale = np.abs(ref).max()
    assert np.abs(got - ref).max() / scale < 1e-4
    assert np.abs(bad - ref).max() / scale > 1e-2  # without compensation it is not exact
    assert comp.compensation.compensated and not comp.compensation.skipped


def test_effective_selection_keeps_an_independent_basis(tmp_path: Path) -> None:
    from onnxprune.pruning.criteria import CRITERIA, top_k

    path = export_onnx(_Planted().eval(), (1, 3, 10, 10), tmp_path / "planted.onnx", dynamo=False)
    model = onnxprune.load(path, input_shapes={"input": (1, 3, 10, 10)})
    rng = np.random.default_rng(1)
    data = Dataset({"input": rng.normal(size=(24, 3, 10, 10)).astype(np.float32)})
    an = analyze(model, data, estimate=False)
    group = next(g for g in model.groups.groups if g.size == 8)
    scores = CRITERIA["effective"](model.groups, group, rng, an.group(group.id))
    kept = set(top_k(scores, 5).tolist())
    # Five channels that span the group: never the constant one, never a combination
    # together with all of its parts.
    assert 7 not in kept
    assert not {0, 1, 5} <= kept and not {2, 3, 6} <= kept


# -- plans, distillation, steps -----------------------------------------------------------------


def _initializers(path: Path) -> dict[str, bytes]:
    m = onnx.load(str(path))
    return {t.name: numpy_helper.to_array(t).tobytes() for t in m.graph.initializer}


def test_apply_of_saved_plan_is_byte_identical_without_recovery(tmp_path: Path) -> None:
    src = MODELS / "digits_cnn.onnx"
    a, b, plan = tmp_path / "a.onnx", tmp_path / "b.onnx", tmp_path / "plan.json"
    cli = [sys.executable, "-m", "onnxprune.cli"]
    subprocess.run([*cli, "prune", str(src), "-o", str(a), "--target-macs", "0.5", "--data",
                    str(MODELS / "digits_calib.npz"), "--samples", "32", "--no-compensation",
                    "--save-plan", str(plan)], check=True, capture_output=True)
    subprocess.run([*cli, "apply", str(src), str(plan), "-o", str(b)], check=True,
                   capture_output=True)
    ia, ib = _initializers(a), _initializers(b)
    assert ia == ib and ia
    import json

    saved = json.loads(plan.read_text())
    assert saved["method"]["allocation"] == "hierarchical"
    assert all("rank" in g["info"] and "width" in g["info"] for g in saved["groups"])


def test_distillation_lowers_the_loss_and_is_seeded(digits) -> None:
    model, data, an = digits
    kw = dict(target_macs=0.3, data=data, analysis=an, compensate=False)
    a = onnxprune.prune(model, distill_epochs=2, **kw)
    b = onnxprune.prune(model, distill_epochs=2, **kw)
    d = a.distillation
    assert d is not None and d.loss_after < d.loss_before and d.tensors > 0
    assert _initializers_of(a.model) == _initializers_of(b.model)
    assert _initializers_of(a.model) != _initializers_of(onnxprune.prune(model, **kw).model)
    # The best epoch is kept: from a compensated start distillation never ends worse.
    c = onnxprune.prune(model, target_macs=0.3, data=data, analysis=an, distill_epochs=1)
    assert c.distillation.loss_after <= c.distillation.loss_before


def test_distillation_by_time_holds_out_and_reports_progress(digits, capsys) -> None:
    model, data, an = digits
    res = onnxprune.prune(model, target_macs=0.3, data=data, analysis=an, distill_time=3.0,
                          progress=True)
    d = res.distillation
    assert d is not None and d.loss_after <= d.loss_before and d.stopped
    assert d.seconds < 3.0 + 30.0  # a measurement may finish after the budget
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("distilling")]
    assert lines and all("held-out loss" in ln and "\r" not in ln for ln in lines)
    with pytest.raises(onnxprune.InputError, match="distill-time"):
        onnxprune.prune(model, target_macs=0.3, data=data, analysis=an, distill_time=-1.0)


def _initializers_of(m: onnx.ModelProto) -> dict[str, bytes]:
    return {t.name: numpy_helper.to_array(t).tobytes() for t in m.graph.initializer}


def test_steps_reach_the_target_and_compose_the_plan(digits) -> None:
    model, data, an = digits
    with pytest.raises(onnxprune.InputError, match="calibration data itself"):
        onnxprune.prune(model, target_macs=0.4, analysis=an, steps=2)
    res = onnxprune.prune(model, target_macs=0.4, data=data, steps=2, compensate=False)
    assert abs(res.after.macs / res.before.macs - 0.4) < 0.02
    replay = onnxprune.apply(model, res.plan)
    assert _initializers_of(replay.model) == _initializers_of(res.model)
    assert any("step 1/2" in n for n in res.notes)


def test_hierarchical_with_compensation_beats_uniform_l1_on_digits(digits) -> None:
    model, data, an = digits
    ours = onnxprune.prune(model, target_macs=0.3, data=data, analysis=an)
    base = onnxprune.prune(model, target_macs=0.3, allocation="uniform", criterion="l1",
                           compensate=False)
    assert abs(ours.after.macs - base.after.macs) / base.before.macs < 0.03
    assert _accuracy(ours.model) > _accuracy(base.model) + 0.2


def test_cli_check_and_max_drop(tmp_path: Path) -> None:
    src = MODELS / "digits_cnn.onnx"
    out = tmp_path / "o.onnx"
    cli = [sys.executable, "-m", "onnxprune.cli", "prune", str(src), "-o", str(out), "--data",
           str(MODELS / "digits_calib.npz"), "--labels", str(MODELS / "digits_calib.npz")]
    ok = subprocess.run([*cli, "--target-macs", "0.5", "--samples", "64", "--check"],
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "accuracy" in ok.stdout and "drop (accuracy drop)" in ok.stdout and out.exists()
    out.unlink()
    bad = subprocess.run([*cli, "--target-macs", "0.05", "--allocation", "uniform",
                          "--criterion", "l1", "--no-compensation", "--max-drop", "0.0001"],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 3, bad.stderr
    assert "--max-drop" in bad.stderr and "nothing written" in bad.stderr
    assert not out.exists()


class _SplitNet(torch.nn.Module):
    """conv(3->8) split into parts of 2 and 6 channels; the 2-channel part has tiny filters."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.a = torch.nn.Conv2d(2, 4, 1)
        self.b = torch.nn.Conv2d(6, 4, 1)
        with torch.no_grad():
            self.conv.weight[:2] *= 1e-3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, q = torch.split(torch.relu(self.conv(x)), [2, 6], dim=1)
        return self.a(p) + self.b(q)


def test_selection_keeps_one_channel_of_every_split_part(tmp_path: Path) -> None:
    path = export_onnx(_SplitNet().eval(), (1, 3, 8, 8), tmp_path / "split.onnx", dynamo=False)
    model = onnxprune.load(path, input_shapes={"input": (1, 3, 8, 8)})
    res = onnxprune.prune(model, ratio=0.5, criterion="l1")
    (g,) = [g for g in res.plan.groups if g.size == 8]
    assert len(g.keep) == 4 and {0, 1} & set(g.keep) and len({2, 3, 4, 5, 6, 7} & set(g.keep)) == 3
