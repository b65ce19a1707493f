"""Rendered text for the PP-OCR models: detector pages and recogniser/classifier lines.

Preprocessing follows rapidocr-onnxruntime 1.4.4 (``ch_ppocr_det/utils.py`` ``DetPreProcess``,
``ch_ppocr_rec/text_recognize.py`` and ``ch_ppocr_cls/text_cls.py`` ``resize_norm_img``,
``config.yaml``): images are BGR (rapidocr reads with OpenCV); the detector gets
``(x/255 - 0.5)/0.5`` at sides that are multiples of 32 (pages are rendered at the model's
320x320, so no resize); a line is resized to height 48 keeping its aspect (width capped at
the model's width, so a longer line is squeezed), ``(x/255 - 0.5)/0.5``, zero-padded on the
right.
"""

from __future__ import annotations

import math

import numpy as np

from onnxprune.testing.realdata import sources as S


def _bgr(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img[:, :, ::-1])


def _fit_words(rng: np.random.Generator, split: str, fnt, max_w: int, n_max: int) -> str:  # type: ignore[no-untyped-def]
    text = S.phrase(rng, split, int(rng.integers(1, n_max + 1)))
    while fnt.getlength(text) > max_w and " " in text:
        text = text.rsplit(" ", 1)[0]
    return text


def det_page(rng: np.random.Generator, split: str, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Render a text page: (BGR uint8 HWC, boolean mask of the rendered text boxes)."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(S.background(rng, w, h))
    draw = ImageDraw.Draw(img)
    mask = np.zeros((h, w), dtype=bool)
    fonts = S.FONTS[split]
    y = int(rng.integers(2, 30))
    empty = rng.random() < 0.08  # some pages without text, as in real scans/photos
    while not empty and y < h - 12:
        size = int(rng.integers(11, 34))
        fnt = S.font(fonts[int(rng.integers(0, len(fonts)))], size)
        x = int(rng.integers(2, w // 3))
        text = _fit_words(rng, split, fnt, w - x - 4, 6)
        box = draw.textbbox((x, y), text, font=fnt)
        draw.text((x, y), text, font=fnt, fill=S.ink(rng))
        x0, y0, x1, y1 = (int(v) for v in box)
        mask[max(0, y0) : y1, max(0, x0) : x1] = True
        y = y1 + int(rng.integers(3, 2 * size + 4))
    return _bgr(np.asarray(img)), mask


def line_image(rng: np.random.Generator, split: str, max_aspect: float) -> tuple[np.ndarray, str]:
    """One rendered text line (RGB uint8, width/height <= ``max_aspect``) and its text."""
    from PIL import Image, ImageDraw

    fonts = S.FONTS[split]
    size = int(rng.integers(22, 44))
    fnt = S.font(fonts[int(rng.integers(0, len(fonts)))], size)
    pad_y = int(rng.integers(2, size // 3 + 3))
    ascent, descent = fnt.getmetrics()
    h = ascent + descent + 2 * pad_y
    pad_x = int(rng.integers(2, size // 2 + 3))
    text = _fit_words(rng, split, fnt, int(max_aspect * h) - 2 * pad_x, 5)
    w = max(h, math.ceil(fnt.getlength(text)) + 2 * pad_x)
    img = Image.fromarray(S.background(rng, w, h))
    ImageDraw.Draw(img).text((pad_x, pad_y), text, font=fnt, fill=S.ink(rng))
    return np.asarray(img), text


def line_input(img: np.ndarray, h: int, w: int) -> tuple[np.ndarray, int]:
    """Rapidocr's ``resize_norm_img`` resize for one line: (BGR uint8 (h, w, 3), width used).

    The normalisation and the zero padding right of the width are applied on loading.
    """
    ih, iw = img.shape[:2]
    rw = min(w, math.ceil(h * iw / ih))
    out = np.zeros((h, w, 3), dtype=np.uint8)
    out[:, :rw] = _bgr(S.resize(np.ascontiguousarray(img), rw, h))
    return out, rw


def rec_line(rng: np.random.Generator, split: str, h: int, w: int) -> tuple[np.ndarray, int, str]:
    """Render a recogniser line (never squeezed: it fits w/h), its width and the rendered text."""
    img, text = line_image(rng, split, 0.97 * w / h)
    return (*line_input(img, h, w), text)


def cls_line(rng: np.random.Generator, split: str, h: int, w: int) -> tuple[np.ndarray, int, int]:
    """Render a classifier line, its width and its angle class (0 upright, 1 turned 180)."""
    img, _ = line_image(rng, split, float(rng.uniform(1.5, 7.0)))
    label = int(rng.random() < 0.5)
    if label:
        img = np.ascontiguousarray(img[::-1, ::-1])
    return (*line_input(img, h, w), label)
