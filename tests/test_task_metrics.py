"""Task metrics on hand-made outputs whose right answer is known (no models, no fetching)."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.testing import task_metrics as T


def _onehot_steps(indices: list[int], classes: int) -> np.ndarray:
    probs = np.full((1, len(indices), classes), 0.01, dtype=np.float32)
    probs[0, np.arange(len(indices)), indices] = 0.9
    return probs


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([1, 1, 0, 1, 2, 2, 0, 0, 3], "aab "),  # repeats merge, a blank separates a double letter
        ([0, 0, 0], ""),
        ([3, 3, 3], " "),
        ([2, 0, 2, 1], "bba"),
    ],
)
def test_ctc_decode(steps: list[int], expected: str) -> None:
    assert T.ctc_decode(_onehot_steps(steps, 4), ["blank", "a", "b", " "]) == [expected]


def test_pooled_iou_is_pooled_not_averaged() -> None:
    ref = np.zeros((2, 4, 4), dtype=bool)
    out = np.zeros((2, 4, 4), dtype=bool)
    ref[0, :2] = True  # 8 pixels, all found
    out[0, :2] = True
    ref[1, 0, 0] = True  # 1 pixel, missed; 1 false pixel
    out[1, 3, 3] = True
    assert T.pooled_iou(ref, out) == pytest.approx(8 / 10)
    assert T.pooled_iou(ref[:0], out[:0]) == 1.0
    assert T.pooled_iou(np.zeros((1, 2, 2), bool), np.zeros((1, 2, 2), bool)) == 1.0


def _det(cls: int, score: float, x0: float, y0: float, x1: float, y1: float) -> list[float]:
    return [cls, score, x0, y0, x1, y1]


def test_detection_f1_needs_class_and_iou() -> None:
    ref = [np.array([_det(0, 0.9, 0, 0, 10, 10), _det(1, 0.8, 20, 20, 30, 30)])]
    same = [ref[0].copy()]
    shifted = [np.array([_det(0, 0.9, 4, 0, 14, 10), _det(1, 0.8, 20, 20, 30, 30)])]  # IoU 6/14
    wrong_class = [np.array([_det(2, 0.9, 0, 0, 10, 10), _det(1, 0.8, 20, 20, 30, 30)])]
    extra = [np.array([*ref[0], _det(0, 0.7, 50, 50, 60, 60)])]
    assert T.detection_f1(ref, same) == 1.0
    assert T.detection_f1(ref, shifted) == pytest.approx(2 * 1 / 4)
    assert T.detection_f1(ref, wrong_class) == pytest.approx(2 * 1 / 4)
    assert T.detection_f1(ref, extra) == pytest.approx(2 * 2 / 5)
    assert T.detection_f1([np.zeros((0, 6))], [np.zeros((0, 6))]) == 1.0
    assert T.detection_f1(ref, [np.zeros((0, 6))]) == 0.0


def test_one_match_per_reference_box() -> None:
    ref = [np.array([_det(0, 0.9, 0, 0, 10, 10)])]
    twice = [np.array([_det(0, 0.9, 0, 0, 10, 10), _det(0, 0.8, 0, 0, 10, 10)])]
    assert T.detection_f1(ref, twice) == pytest.approx(2 * 1 / 3)


def _layout_outputs(anchor: int, cls: int, dist: tuple[int, int, int, int]) -> list[np.ndarray]:
    """PicoDet outputs for an 64x64 input: one confident anchor at stride 8, reg_max 7."""
    sizes = [(64 // s) * (64 // s) for s in T.LAYOUT_STRIDES]
    scores = [np.zeros((1, a, 10), dtype=np.float32) for a in sizes]
    boxes = [np.zeros((1, a, 32), dtype=np.float32) for a in sizes]
    scores[0][0, anchor, cls] = 0.9
    logits = np.full((4, 8), -30.0, dtype=np.float32)
    logits[np.arange(4), list(dist)] = 30.0
    boxes[0][0, anchor] = logits.ravel()
    return [*scores, *boxes]


def test_layout_decode_places_the_box_like_rapid_layout() -> None:
    # anchor 9 at stride 8 on an 8-wide grid: column 1, row 1 -> centre (12, 12);
    # distances (left, top, right, bottom) = (1, 2, 3, 4) bins of 8 pixels
    dets = T.layout_detections(_layout_outputs(9, 4, (1, 2, 3, 4)), image_hw=(64, 64))
    assert len(dets) == 1 and dets[0].shape == (1, 6)
    np.testing.assert_allclose(dets[0][0], [4, 0.9, 12 - 8, 12 - 16, 12 + 24, 12 + 32], atol=1e-4)


def test_layout_decode_drops_low_scores() -> None:
    outs = _layout_outputs(9, 4, (1, 2, 3, 4))
    outs[0][0, 9, 4] = T.LAYOUT_CONF - 0.01
    assert T.layout_detections(outs, image_hw=(64, 64))[0].shape == (0, 6)


def test_face_decisions_threshold_and_maps() -> None:
    prob = np.array([[0.2, 0.8], [0.4, 0.6], [0.31, 0.69]], dtype=np.float32)
    assert T.face_decisions(prob).tolist() == [True, False, False]
    pnet = np.zeros((2, 2, 3, 3), dtype=np.float32)
    pnet[0, 1, 2, 2] = 0.95
    assert T.face_decisions(pnet).tolist() == [True, False]


def test_score_names_the_metric_and_counts() -> None:
    ref = np.array([0, 1, 1, 0])
    s = T.score("ppocr_cls", ref, np.array([0, 1, 0, 0]))
    assert (s.metric, s.value, s.n) == ("angle agreement", 0.75, 4)
    with pytest.raises(KeyError, match="no task metric"):
        T.decide("yolo", [ref])
