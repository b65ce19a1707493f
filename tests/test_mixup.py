"""Consistent-teacher mixup of label-free distillation (onnxprune/pruning/mixup.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import onnxprune
from onnxprune import ir
from onnxprune.data import Dataset, load_data
from onnxprune.pruning import distill as D
from onnxprune.pruning.mixup import Mixer, mixable

MODELS = Path(__file__).resolve().parents[1] / "models"


def _inputs(n: int = 16) -> dict[str, np.ndarray]:
    # Sample i is the constant image i: a mix of samples i and j is the constant between them.
    img = np.repeat(np.arange(n, dtype=np.float32), 2 * 4 * 4).reshape(n, 2, 4, 4)
    return {"img": img, "size": np.tile(np.float32([[4, 4]]), (n, 1)),
            "ids": np.arange(n, dtype=np.int64).reshape(n, 1, 1)}


def test_mixes_each_image_with_another_sample_and_leaves_the_rest() -> None:
    inputs = _inputs()
    mixer = Mixer(inputs, 1.0, seed=0)
    assert mixer.active and mixer.names == ["img"]
    idx = np.arange(16)
    out = mixer.feeds(idx)
    img = out["img"]
    # every mixed sample is still constant (one λ per sample), inside the data's range
    assert np.allclose(img, img[:, :1, :1, :1]) and img.min() >= 0 and img.max() <= 15
    assert (np.abs(img[:, 0, 0, 0] - idx) > 1e-3).sum() >= 8  # most samples moved
    # non-image inputs are the sample's own
    assert np.array_equal(out["size"], inputs["size"]) and np.array_equal(out["ids"], inputs["ids"])
    # seeded: the same sequence of batches again
    again = Mixer(inputs, 1.0, seed=0).feeds(idx)
    assert np.array_equal(again["img"], img)


def test_alpha_zero_or_one_sample_does_not_mix() -> None:
    inputs = _inputs()
    for mixer in (Mixer(inputs, 0.0, 0), Mixer({k: v[:1] for k, v in inputs.items()}, 1.0, 0),
                  Mixer({"size": inputs["size"]}, 1.0, 0)):
        assert not mixer.active
        idx = np.arange(min(3, mixer.n))
        out = mixer.feeds(idx)
        assert all(np.array_equal(out[k], mixer.inputs[k][idx]) for k in out)
    assert mixable(inputs["img"]) and not mixable(inputs["size"]) and not mixable(inputs["ids"])


def test_the_teacher_answers_on_the_mixed_inputs(monkeypatch) -> None:
    # Student == teacher (a ReLU network): the training loss is zero only if the targets are
    # the teacher's outputs on the very mixed inputs (mixing the targets instead would not be).
    model = onnx.load(MODELS / "digits_resnet.onnx")
    loaded = onnxprune.load(model)
    data = load_data(MODELS / "digits_calib.npz", ir.io_specs(model), loaded.input_shapes,
                     limit=48)
    seen: list[tuple[float, np.ndarray]] = []
    real_loss = D._Run.loss

    def spy(self, feeds, targets):  # type: ignore[no-untyped-def]
        value = real_loss(self, feeds, targets)
        if value.requires_grad:  # a training step (held-out losses run without grad)
            seen.append((float(value.detach()), np.asarray(next(iter(feeds.values())))))
        return value

    monkeypatch.setattr(D._Run, "loss", spy)
    _, report = D.distill(model, model, data, epochs=1, mix=1.0)
    assert seen and max(v for v, _ in seen) < 1e-8
    train = data.inputs["input"]
    mixed = np.concatenate([x for _, x in seen])
    assert not any(np.array_equal(m, t) for m in mixed[:8] for t in train)  # really new inputs
    assert report.loss_before < 1e-8
    # Without mixing the student trains on the samples themselves.
    seen.clear()
    D.distill(model, model, data, epochs=1, mix=0.0)
    assert any(np.array_equal(seen[0][1][0], t) for t in train)


def test_distill_mix_is_checked_and_reaches_the_cli(tmp_path: Path) -> None:
    model = onnxprune.load(MODELS / "digits_resnet.onnx")
    data = Dataset({"input": np.zeros((4, 1, 8, 8), np.float32)})
    with pytest.raises(onnxprune.InputError, match="--distill-mix -1"):
        onnxprune.prune(model, target_macs=0.5, data=data, distill_epochs=1, distill_mix=-1.0)
    with pytest.raises(onnxprune.InputError, match="--distill-mix -1"):  # the library call too
        D.distill(model.proto, model.proto, data, epochs=1, mix=-1.0)
    proc = subprocess.run(
        [sys.executable, "-m", "onnxprune.cli", "prune", str(MODELS / "digits_resnet.onnx"),
         "-o", str(tmp_path / "o.onnx"), "--target-macs", "0.5", "--data",
         str(MODELS / "digits_calib.npz"), "--distill-epochs", "1", "--distill-mix", "-1"],
        capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "--distill-mix" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "o.onnx").exists()
