"""Distillation's schedule: cosine decay, which state is kept, when it stops early."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import onnxprune
from onnxprune import ir
from onnxprune.data import load_data
from onnxprune.pruning import distill as D
from onnxprune.pruning.training import cosine

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture(scope="module")
def setup() -> tuple[onnx.ModelProto, onnx.ModelProto, object]:
    model = onnxprune.load(MODELS / "digits_resnet.onnx")
    data = load_data(MODELS / "digits_calib.npz", ir.io_specs(model.proto), model.input_shapes,
                     limit=64)
    pruned = onnxprune.prune(model, target_macs=0.5, data=data, compensate=False).model
    return model.proto, pruned, data


def _weights(m: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}


def _scripted(monkeypatch, losses: list[float]) -> None:
    """Make the held-out measurements return ``losses`` in turn (the last one repeats)."""
    it = iter(losses)
    last = [losses[-1]]

    def fake(self, data, targets, batch):  # type: ignore[no-untyped-def]
        last[0] = next(it, last[0])
        return last[0]

    monkeypatch.setattr(D._Run, "epoch_loss", fake)


def test_cosine_decay() -> None:
    assert cosine(0.0, 10.0, 0.0, 0) == pytest.approx(1.0)
    assert cosine(5.0, 10.0, 0.0, 0) == pytest.approx(0.5)
    assert cosine(1.0, math.inf, 3.0, 4) == pytest.approx(0.5 * (1 + math.cos(0.75 * math.pi)))
    assert cosine(20.0, 10.0, 0.0, 0) == pytest.approx(0.0)  # past the budget: 0, not up


def test_the_end_state_is_kept_when_no_worse_than_the_start(setup, monkeypatch) -> None:
    original, pruned, data = setup
    # The same training twice (the held-out losses are scripted, so they do not steer it):
    # ending at 0.8 (no worse than the start) keeps the end state; ending at 1.2 falls back
    # to the best measured state, the one after epoch 1 (0.5).
    _scripted(monkeypatch, [1.0, 0.5, 0.8])
    kept_end, rep = D.distill(original, pruned, data, epochs=2)
    assert rep.loss_after == 0.8 and rep.stopped == "epochs done"
    _scripted(monkeypatch, [1.0, 0.5, 1.2])
    kept_best, rep = D.distill(original, pruned, data, epochs=2)
    assert rep.loss_after == 0.5
    w_end, w_best, w0 = _weights(kept_end), _weights(kept_best), _weights(pruned)
    assert any(not np.array_equal(w_end[k], w_best[k]) for k in w_end)
    assert any(not np.array_equal(w_best[k], w0[k]) for k in w0)  # epoch 1 did train


def test_a_worse_end_falls_back_and_a_diverging_run_stops(setup, monkeypatch) -> None:
    original, pruned, data = setup
    _scripted(monkeypatch, [1.0, 2.0])
    tuned, rep = D.distill(original, pruned, data, epochs=50)
    # above the start PATIENCE times in a row: stopped, and the start state written back
    assert rep.stopped.startswith("early stop") and rep.epochs == pytest.approx(D.PATIENCE)
    assert rep.loss_after == 1.0
    w0, w1 = _weights(pruned), _weights(tuned)
    assert all(np.array_equal(w0[k], w1[k]) for k in w0)
    # one dip below the start resets the count: the run goes on to its epochs
    _scripted(monkeypatch, [1.0, 2.0, 2.0, 2.0, 0.9, 2.0, 2.0, 2.0, 0.95])
    _, rep = D.distill(original, pruned, data, epochs=8)
    assert rep.stopped == "epochs done" and rep.loss_after == 0.95


def _batch_one(m: onnx.ModelProto) -> onnx.ModelProto:
    fixed = onnx.ModelProto()
    fixed.CopyFrom(m)
    for v in [*fixed.graph.input, *fixed.graph.output]:
        v.type.tensor_type.shape.dim[0].dim_value = 1
    return fixed


@pytest.mark.parametrize("asked, steps", [(1, 56), (8, 7), (12, 5)])
def test_a_fixed_batch_graph_sums_gradients_over_the_asked_batch(setup, monkeypatch, asked,
                                                                 steps) -> None:
    # A graph fixed at batch 1 (PicoDet's export, MTCNN's) runs one sample at a time; its
    # Adam steps must still see about ``batch_size`` samples, not one noisy sample each.
    original, pruned, data = setup
    original, pruned = _batch_one(original), _batch_one(pruned)
    counted: list[int] = []
    real_step = D.Adam.step

    def step(self):  # type: ignore[no-untyped-def]
        counted.append(1)
        real_step(self)

    monkeypatch.setattr(D.Adam, "step", step)
    _scripted(monkeypatch, [1.0, 0.5])
    tuned, rep = D.distill(original, pruned, data, epochs=1, batch_size=asked, mix=0.0)
    # 64 samples, every 8th held out: 56 trained, ceil(56 / asked) steps (the last may be short)
    assert len(data) == 64 and sum(counted) == steps and rep.epochs == pytest.approx(1.0)
    w0, w1 = _weights(pruned), _weights(tuned)
    assert any(not np.array_equal(w0[k], w1[k]) for k in w0)


def test_a_held_out_check_on_a_time_budget_waits_for_the_step_in_progress(setup, monkeypatch
                                                                         ) -> None:
    # A slow fixed-batch model reaches a held-out check (every tenth of the budget) in the
    # middle of accumulating a step: the step must still sum the asked batch, not be cut short.
    original, pruned, data = setup
    original, pruned = _batch_one(original), _batch_one(pruned)
    clock = iter(range(10**6))  # one "second" per reading: checks fall mid-step

    class FakeTime:
        @staticmethod
        def perf_counter() -> float:
            return float(next(clock))

    runs, sizes = [0], []
    real_step, real_loss = D.Adam.step, D._Run.loss

    def step(self):  # type: ignore[no-untyped-def]
        sizes.append(runs[0])
        runs[0] = 0
        real_step(self)

    def loss(self, feeds, targets):  # type: ignore[no-untyped-def]
        runs[0] += 1
        return real_loss(self, feeds, targets)

    monkeypatch.setattr(D, "time", FakeTime)
    monkeypatch.setattr(D.Adam, "step", step)
    monkeypatch.setattr(D._Run, "loss", loss)
    _scripted(monkeypatch, [1.0, 0.5])
    _, rep = D.distill(original, pruned, data, seconds=150.0, batch_size=8, mix=0.0)
    assert rep.stopped == "time budget spent" and len(sizes) > 10
    assert all(k == 8 for k in sizes[:-1]) and 1 <= sizes[-1] <= 8  # only the last is short


def test_the_held_out_slice_is_capped_and_spread_over_the_data() -> None:
    from onnxprune.data import Dataset
    from onnxprune.pruning.training import HELD_MAX, split

    x = np.arange(1024, dtype=np.float32)[:, None]
    for unit in (1, 4):
        train, held = split(Dataset({"x": x}), unit)
        got = held.inputs["x"][:, 0].astype(int)
        assert len(got) == HELD_MAX and len(train) == 1024 - HELD_MAX
        assert got.min() < 64 and got.max() > 900  # spread, not the first 64
        assert not set(got) & set(train.inputs["x"][:, 0].astype(int))
        if unit > 1:  # whole batches of a fixed-batch graph
            assert all(np.array_equal(b, b[0] + np.arange(unit)) for b in got.reshape(-1, unit))
    train, held = split(Dataset({"x": x[:128]}), 1)
    assert len(held) == 16 and len(train) == 112  # small sets: every 8th, as before


def test_costly_held_out_checks_are_spaced_to_a_tenth_of_the_budget(setup, monkeypatch) -> None:
    # One check costs 40 "seconds" of a 300 s budget: checking every tenth (30 s) would spend
    # most of the budget measuring. Checks are spaced to take at most about a tenth of it.
    original, pruned, data = setup
    now = [0.0]

    class FakeTime:
        @staticmethod
        def perf_counter() -> float:
            now[0] += 0.5
            return now[0]

    checks = []

    def fake(self, data, targets, batch):  # type: ignore[no-untyped-def]
        now[0] += 40.0
        checks.append(now[0])
        return 1.0 - 0.01 * len(checks)

    monkeypatch.setattr(D, "time", FakeTime)
    monkeypatch.setattr(D._Run, "epoch_loss", fake)
    _, rep = D.distill(original, pruned, data, seconds=300.0, mix=0.0)
    assert rep.stopped == "time budget spent"
    assert len(checks) == 2  # the start and the end: 40 s each is already a quarter


def test_spread_takes_whole_blocks_evenly_and_small_data_whole() -> None:
    from onnxprune.data import Dataset
    from onnxprune.pruning.training import spread

    x = np.arange(1000, dtype=np.float32)[:, None]
    got = spread(Dataset({"x": x}), 256).inputs["x"][:, 0].astype(int)
    assert len(got) == 256 and got[0] == 0 and got[-1] == 999 and len(set(got)) == 256
    got = spread(Dataset({"x": x}), 256, unit=4).inputs["x"][:, 0].astype(int)
    assert len(got) == 256 and all(np.array_equal(b, b[0] + np.arange(4)) and b[0] % 4 == 0
                                   for b in got.reshape(-1, 4))
    assert len(spread(Dataset({"x": x[:100]}), 256)) == 100


def test_output_scales_are_calibrated_on_a_bounded_sample(setup, monkeypatch) -> None:
    original, pruned, data = setup
    seen = []
    real = D.output_measures

    def spy(shim, sample, batch, weights):  # type: ignore[no-untyped-def]
        seen.append(len(sample))
        return real(shim, sample, batch, weights)

    monkeypatch.setattr(D, "output_measures", spy)
    monkeypatch.setattr(D, "MEASURED_MAX", 16)
    _scripted(monkeypatch, [1.0, 0.5])
    D.distill(original, pruned, data, epochs=1)
    assert seen == [16] and len(data) == 64
