"""round-to auto's grid guard: a finer grid than the channel block is kept only if measured fast.

The measurement is monkeypatched (no timing in tests): these tests check the decision rule and
that the pipeline asks for it exactly when the loss rule leaves the block grid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import onnxprune
from onnxprune.pruning import grid, grid_guard, targets

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.mark.parametrize(("fine", "block", "keep_fine"), [
    (1.30, 1.40, True),    # within KEEP of the block grid's speed-up, and faster than the original
    (1.10, 1.40, False),   # gives up more than 15 % of the block grid's speed-up
    (0.95, 1.00, False),   # slower than the original: never kept
    (1.00, 1.05, True),
])
def test_decision(fine: float, block: float, keep_fine: bool) -> None:
    choice = grid_guard.GridChoice(4, 16, fine, block)
    assert choice.keep_fine is keep_fine
    assert ("kept multiples of 4" in choice.line()) is keep_fine
    assert f"{fine:.2f}x" in choice.line() and f"{block:.2f}x" in choice.line()


def test_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(grid_guard.SWITCH, "0")
    assert not grid_guard.enabled()
    monkeypatch.setenv(grid_guard.SWITCH, "1")
    assert grid_guard.enabled()


@pytest.fixture(scope="module")
def digits() -> tuple[onnxprune.Model, object]:
    model = onnxprune.load(MODELS / "digits_cnn.onnx")
    calib = np.load(MODELS / "digits_calib.npz")
    return model, {"input": calib["input"][:64]}


@pytest.mark.parametrize("fast", [True, False])
def test_pipeline_follows_the_measurement(monkeypatch: pytest.MonkeyPatch, digits, fast: bool
                                          ) -> None:  # fmt: skip
    """When the loss rule leaves the block grid, the measured choice decides the widths."""
    model, data = digits
    monkeypatch.setenv(grid_guard.SWITCH, "1")
    block = grid.candidates(grid.AUTO, "cpu")[0]
    # the loss rule sees every allocation on the block grid as too lossy: it leaves the block
    monkeypatch.setattr(targets, "_loss", lambda r, a: float(
        all(w % block == 0 for w in r.widths.values())))
    calls = []

    def fake(model, fine, block, fine_step, block_step, opts):  # type: ignore[no-untyped-def]
        calls.append((fine_step, block_step))
        return grid_guard.GridChoice(fine_step, block_step, 1.5 if fast else 0.9, 1.6)

    monkeypatch.setattr(grid_guard, "measure", fake)
    res = onnxprune.prune(model, target_macs=0.5, data=data, refine=False)
    assert len(calls) == 1
    fine_step, block_step = calls[0]
    assert fine_step < block_step
    step = fine_step if fast else block_step
    widths = [len(g.keep) for g in res.plan.groups if len(g.keep) < g.size]
    assert widths and all(w % step == 0 for w in widths)
    if not fast and fine_step == 1:
        assert any(w % block_step == 0 for w in widths)
    assert any("round-to auto: widths in multiples of" in n for n in res.notes)


def test_not_asked_when_the_block_grid_is_kept(monkeypatch: pytest.MonkeyPatch, digits) -> None:
    model, data = digits
    monkeypatch.setenv(grid_guard.SWITCH, "1")
    monkeypatch.setattr(targets, "GRID_SLACK", 10.0)  # the loss rule keeps the block grid

    def fail(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("measured although the block grid was kept")

    monkeypatch.setattr(grid_guard, "measure", fail)
    onnxprune.prune(model, target_macs=0.5, data=data, refine=False)


def test_untimeable_keeps_the_loss_rule_grid(monkeypatch: pytest.MonkeyPatch, digits) -> None:
    """A structure that cannot be timed keeps the loss rule's grid and says why."""
    from onnxprune.errors import InputError

    model, data = digits
    monkeypatch.setenv(grid_guard.SWITCH, "1")
    block = grid.candidates(grid.AUTO, "cpu")[0]
    monkeypatch.setattr(targets, "_loss", lambda r, a: float(
        all(w % block == 0 for w in r.widths.values())))

    def boom(*a, **k):  # type: ignore[no-untyped-def]
        raise InputError("no concrete input shapes")

    monkeypatch.setattr(grid_guard, "measure", boom)
    res = onnxprune.prune(model, target_macs=0.5, data=data, refine=False)
    assert any("could not time them: no concrete input shapes" in n for n in res.notes)
