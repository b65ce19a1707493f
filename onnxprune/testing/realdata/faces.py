"""Face and non-face crops for MTCNN's R-Net (24x24) and O-Net (48x48).

Faces are found in the bundled photos (:data:`sources.FACE_PHOTOS`) by the original MTCNN
cascade (P-Net over an image pyramid, R-Net, O-Net, as in facenet-pytorch 2.6.0
``models/utils/detect_face.py``, thresholds 0.6/0.7/0.7), run here with the trained torch
modules rebuilt by ``tools/fetch_models.py``. Crops are then drawn the way MTCNN's training
data are: positives (IoU > 0.65 with a face), part faces (0.4-0.65) and negatives (< 0.3, and
crops of photos without faces), near misses (0.15-0.4), plus scikit-image's bundled LFW
faces and non-faces.

Splits: calibration uses astronaut.png, LFW faces/non-faces 0-49 and the even-numbered
face-free photos; evaluation uses camera.png and grace_hopper.jpg, LFW 50-99 and the odd ones.

Preprocessing as facenet-pytorch: RGB crop (zero-padded outside the image), ``area``
interpolation to the net's size, ``(x - 127.5) * 0.0078125``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from onnxprune.testing.realdata import sources as S

KINDS = ("negative", "part", "positive", "lfw_face", "lfw_non_face", "near_miss")
_IOU_BANDS = {1: (0.4, 0.65), 2: (0.65, 1.01), 5: (0.15, 0.4)}  # IoU with the face
SPLIT_FACES = {"calib": ("astronaut.png",), "eval": ("camera.png", "grace_hopper.jpg")}


def _nms(boxes: np.ndarray, scores: np.ndarray, thresh: float, mode: str = "union") -> np.ndarray:
    order, keep = np.argsort(scores)[::-1], []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        iw = np.clip(
            np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]),
            0,
            None,
        )
        ih = np.clip(
            np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]),
            0,
            None,
        )
        inter = iw * ih
        den = np.minimum(area[i], area[rest]) if mode == "min" else area[i] + area[rest] - inter
        order = rest[inter / den <= thresh]
    return np.array(keep, dtype=np.int64)


def _square(b: np.ndarray) -> np.ndarray:
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    side = np.maximum(w, h)
    out = b.copy()
    out[:, 0] = b[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = b[:, 1] + h * 0.5 - side * 0.5
    out[:, 2:4] = out[:, 0:2] + side[:, None]
    return out


def _bbreg(b: np.ndarray, reg: np.ndarray) -> np.ndarray:
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    out = b.copy()
    out[:, :4] = b[:, :4] + reg[:, :4] * np.stack([w, h, w, h], axis=1)
    return out


def crops(img: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """facenet-pytorch's crop + ``imresample`` + normalisation: (N, 3, size, size) float32."""
    import torch
    from torch.nn.functional import interpolate

    h, w = img.shape[:2]
    out = []
    for x0, y0, x1, y1 in np.round(boxes[:, :4]).astype(int):
        x1, y1 = max(x1, x0 + 2), max(y1, y0 + 2)
        pad = np.zeros((y1 - y0, x1 - x0, 3), dtype=np.float32)
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if sx1 > sx0 and sy1 > sy0:
            pad[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = img[sy0:sy1, sx0:sx1]
        t = torch.from_numpy(pad).permute(2, 0, 1)[None]
        out.append(interpolate(t, size=(size, size), mode="area")[0].numpy())
    return ((np.stack(out) - 127.5) * 0.0078125).astype(np.float32)


@functools.cache
def _nets() -> dict[str, Any]:
    from onnxprune.testing.realdata import cache

    fm = cache.fetch_models_module()
    wheel = fm.ensure_wheel(cache.cache_root(), "facenet")
    return {n: fm.load_mtcnn(f"mtcnn_{n}", wheel) for n in ("pnet", "rnet", "onet")}


def _run(net: Any, x: np.ndarray) -> list[np.ndarray]:
    import torch

    with torch.no_grad():
        return [o.numpy() for o in net(torch.from_numpy(x))]


def _pnet_boxes(img: np.ndarray, min_size: int = 20, factor: float = 0.709) -> np.ndarray:
    import torch
    from torch.nn.functional import interpolate

    h, w = img.shape[:2]
    t = torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)[None]
    scale, found = 12.0 / min_size, []
    while min(h, w) * scale >= 12:
        im = interpolate(t, size=(int(h * scale + 1), int(w * scale + 1)), mode="area")
        reg, prob = _run(_nets()["pnet"], ((im - 127.5) * 0.0078125).numpy())
        ys, xs = np.nonzero(prob[0, 1] > 0.6)
        if ys.size:
            q = np.stack([xs, ys], axis=1).astype(np.float64)
            b = np.concatenate([(2 * q + 1) / scale, (2 * q + 12) / scale], axis=1)
            b = np.concatenate([b, prob[0, 1, ys, xs, None], reg[0][:, ys, xs].T], axis=1)
            found.append(b[_nms(b[:, :4], b[:, 4], 0.5)])
        scale *= factor
    if not found:
        return np.zeros((0, 9))
    b = np.concatenate(found)
    b = b[_nms(b[:, :4], b[:, 4], 0.7)]
    return _square(np.concatenate([_bbreg(b[:, :4], b[:, 5:9]), b[:, 4:5]], axis=1))


@functools.cache
def detect_faces(name: str) -> np.ndarray:
    """Face boxes ``[x0, y0, x1, y1, score]`` the original MTCNN cascade finds in a photo."""
    img = S.face_photo(name)
    b = _pnet_boxes(img)
    for net, size in (("rnet", 24), ("onet", 48)):
        if not len(b):
            break
        outs = _run(_nets()[net], crops(img, b, size))
        reg, prob = outs[0], outs[-1]
        ok = prob[:, 1] > 0.7
        b = np.concatenate([b[ok, :4], prob[ok, 1:2]], axis=1)
        b = _bbreg(b, reg[ok])
        b = b[_nms(b[:, :4], b[:, 4], 0.7, "min" if net == "onet" else "union")]
        if net == "rnet":
            b = _square(b)
    return b


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


def _jitter(rng: np.random.Generator, face: np.ndarray, lo: float, hi: float) -> np.ndarray:
    side = face[2] - face[0]
    reach = 0.4 if lo >= 0.4 else 0.7
    for _ in range(200):
        s = side * rng.uniform(0.8, 1.25)
        cx = (face[0] + face[2]) / 2 + rng.uniform(-reach, reach) * side
        cy = (face[1] + face[3]) / 2 + rng.uniform(-reach, reach) * side
        box = np.array([cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2])
        if lo <= _iou(box, face) < hi:
            return box
    return face[:4].copy()


def _negative_box(rng: np.random.Generator, img: np.ndarray, faces: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    for _ in range(200):
        s = rng.uniform(24, min(h, w) / 2)
        x0, y0 = rng.uniform(0, w - s), rng.uniform(0, h - s)
        box = np.array([x0, y0, x0 + s, y0 + s])
        if all(_iou(box, f) < 0.3 for f in faces):
            return box
    return box


def _lfw(rng: np.random.Generator, index: int, size: int) -> np.ndarray:
    grey = S.lfw_subset()[index] * 255.0
    img = np.repeat(grey[:, :, None], 3, axis=2).astype(np.float32)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    return crops(np.ascontiguousarray(img), np.array([[0, 0, 25, 25]], dtype=np.float64), size)[0]


def face_crop(rng: np.random.Generator, split: str, size: int) -> tuple[np.ndarray, int]:
    """One crop and its kind (see :data:`KINDS`).

    Part faces and near misses dominate on purpose: they are where the face probability is
    close to the threshold, so they are the decisions that pruning can flip.
    """
    kind = int(rng.choice(len(KINDS), p=[0.2, 0.3, 0.2, 0.1, 0.1, 0.1]))
    lfw_base = 0 if split == "calib" else 50
    if kind == 3:
        return _lfw(rng, lfw_base + int(rng.integers(0, 50)), size), kind
    if kind == 4:
        return _lfw(rng, 100 + lfw_base + int(rng.integers(0, 50)), size), kind
    names = SPLIT_FACES[split]
    name = names[int(rng.integers(0, len(names)))]
    img, faces = S.face_photo(name).astype(np.float32), _square(detect_faces(name))
    if kind == 0 and rng.random() < 0.5:
        pics = S.photos()[split == "eval" :: 2]
        img, faces = pics[int(rng.integers(0, len(pics)))][1].astype(np.float32), np.zeros((0, 5))
    if kind == 0 or not len(faces):
        box = _negative_box(rng, img, faces)
    else:
        face = faces[int(rng.integers(0, len(faces)))]
        box = _jitter(rng, face, *_IOU_BANDS[kind])
    if rng.random() < 0.5:
        img = np.ascontiguousarray(img[:, ::-1])
        w = img.shape[1]
        box = np.array([w - box[2], box[1], w - box[0], box[3]])
    img = np.clip(img * rng.uniform(0.7, 1.2) + rng.uniform(-20, 20), 0, 255)
    return crops(img, box[None], size)[0], kind
