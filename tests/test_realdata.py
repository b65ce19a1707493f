"""The rendered real-task sets without the models: preprocessing, determinism, disjoint splits."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.testing import realdata
from onnxprune.testing.realdata import sources

pytest.importorskip("skimage")


@pytest.mark.parametrize("name", ["ppocr_det", "ppocr_rec", "ppocr_cls", "picodet_layout"])
def test_shapes_and_ranges(name: str) -> None:
    s = realdata.build(name, "eval", 3)
    assert s.x.shape == (3, *realdata.SPECS[name].shape) and s.x.dtype == np.float32
    if name == "picodet_layout":  # ImageNet-normalised BGR
        assert -2.2 < s.x.min() and s.x.max() < 2.7
    else:  # (x/255 - 0.5) / 0.5
        assert -1.0 <= s.x.min() and s.x.max() <= 1.0


@pytest.mark.parametrize("name", ["ppocr_rec", "ppocr_cls"])
def test_lines_are_zero_padded_right_of_their_width(name: str) -> None:
    s = realdata.build(name, "calib", 8)
    width = s.meta["width"]
    assert (width <= s.x.shape[3]).all() and (width >= s.x.shape[2]).all()
    for x, w in zip(s.x, width, strict=True):
        assert np.all(x[:, :, w:] == 0.0)
        assert np.any(x[:, :, :w] != 0.0)


def test_classifier_labels_are_balanced_and_flip_the_line() -> None:
    s = realdata.build("ppocr_cls", "calib", 40)
    assert 0.25 < s.meta["label"].mean() < 0.75


def test_layout_boxes_lie_on_their_page() -> None:
    s = realdata.build("picodet_layout", "calib", 2)
    boxes = s.meta["boxes"]  # [page, cls, x0, y0, x1, y1]
    _, h, w = realdata.SPECS["picodet_layout"].shape
    assert set(boxes[:, 0]) == {0, 1}
    assert (boxes[:, 2] < boxes[:, 4]).all() and (boxes[:, 3] < boxes[:, 5]).all()
    assert (boxes[:, 2:] >= 0).all()
    assert (boxes[:, [2, 4]] <= w).all() and (boxes[:, [3, 5]] <= h).all()


def test_det_text_mask_marks_dark_pixels() -> None:
    s = realdata.build("ppocr_det", "calib", 4)
    mask = s.meta["mask"]
    assert mask.any(axis=(1, 2)).sum() >= 3
    grey = s.x.mean(axis=1)
    assert grey[mask].min() < grey[~mask].mean()  # ink inside the text boxes


def test_samples_are_seeded_and_a_prefix_of_larger_sets() -> None:
    a = realdata.build("ppocr_rec", "calib", 5)
    b = realdata.build("ppocr_rec", "calib", 3)
    c = realdata.build("ppocr_rec", "calib", 3, seed=1)
    assert np.array_equal(a.x[:3], b.x) and list(a.meta["text"][:3]) == list(b.meta["text"])
    assert not np.array_equal(b.x, c.x)


def test_splits_use_disjoint_fonts_and_vocabulary() -> None:
    assert not set(sources.FONTS["calib"]) & set(sources.FONTS["eval"])
    calib, ev = set(sources.words("calib")), set(sources.words("eval"))
    assert not calib & ev and len(calib) > 300 and len(ev) > 300
