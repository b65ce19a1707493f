"""Box detections for the task metrics: PicoDet's decode as rapid-layout does it, and F1.

Boxes are corners ``[x0, y0, x1, y1]`` in input pixels; a detection is ``[cls, score, box]``.
Detection F1 is 2·TP / (n_original + n_pruned) over all pages, matching greedily by score
within a class at IoU >= 0.5 (1.0 when neither model detects anything).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LAYOUT_CONF = 0.5
LAYOUT_NMS = 0.5
LAYOUT_STRIDES = (8, 16, 32, 64)
MATCH_IOU = 0.5


def _softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _nms(boxes: np.ndarray, scores: np.ndarray, thresh: float, top_k: int = 100) -> np.ndarray:
    order, keep = np.argsort(scores)[::-1][:200], list[int]()
    while order.size and len(keep) < top_k:
        i, order = order[0], order[1:]
        keep.append(i)
        order = order[box_iou(boxes[i : i + 1], boxes[order])[0] <= thresh]
    return np.array(keep, dtype=np.int64)


def layout_detections(
    outputs: Sequence[np.ndarray],
    image_hw: tuple[int, int] = (800, 608),
    conf: float = LAYOUT_CONF,
    nms: float = LAYOUT_NMS,
) -> list[np.ndarray]:
    """Decode PicoDet as rapid-layout does (``pp/post_process.py``).

    Returns one array ``[cls, score, x0, y0, x1, y1]`` per image.

    ``outputs``: the 4 score outputs (N, A_s, classes) then the 4 box-distribution outputs
    (N, A_s, 4 * (reg_max + 1)), strides 8, 16, 32, 64; boxes in input pixels.
    """
    half = len(outputs) // 2
    scores, dists = outputs[:half], outputs[half:]
    reg = dists[0].shape[-1] // 4
    result = []
    for n in range(len(scores[0])):
        all_boxes, all_scores = [], []
        for stride, sc, di in zip(LAYOUT_STRIDES, scores, dists, strict=True):
            fh, fw = int(np.ceil(image_hw[0] / stride)), int(np.ceil(image_hw[1] / stride))
            ww, hh = np.meshgrid(np.arange(fw), np.arange(fh))
            cx, cy = (ww.ravel() + 0.5) * stride, (hh.ravel() + 0.5) * stride
            d = _softmax(di[n].reshape(-1, reg)) @ np.arange(reg)
            d = d.reshape(-1, 4) * stride
            top = np.argsort(sc[n].max(axis=1))[::-1][:1000]  # rapid-layout's nms_top_k
            box = np.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], 1)
            all_boxes.append(box[top])
            all_scores.append(sc[n][top])
        boxes, probs = np.concatenate(all_boxes), np.concatenate(all_scores)
        dets = []
        for c in range(probs.shape[1]):
            m = probs[:, c] > conf
            if m.any():
                keep = _nms(boxes[m], probs[m, c], nms)
                b, s = boxes[m][keep], probs[m, c][keep]
                dets.append(np.c_[np.full(len(keep), c), s, b])
        result.append(np.concatenate(dets) if dets else np.zeros((0, 6)))
    return result


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of corner boxes a (n, 4) and b (m, 4)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:4], b[None, :, 2:4])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area = lambda x: np.clip(x[:, 2] - x[:, 0], 0, None) * np.clip(x[:, 3] - x[:, 1], 0, None)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


def matches(ref: np.ndarray, out: np.ndarray, iou: float = MATCH_IOU) -> int:
    """Count the true positives of ``out`` against ``ref``.

    Detections are matched one-to-one to reference ones of the same class at IoU >= ``iou``,
    greedily in decreasing score order.
    """
    used = np.zeros(len(ref), dtype=bool)
    tp = 0
    for d in out[np.argsort(-out[:, 1])] if len(out) else out:
        same = (ref[:, 0] == d[0]) & ~used
        if not same.any():
            continue
        ious = np.where(same, box_iou(d[None, 2:6], ref[:, 2:6])[0], -1.0)
        j = int(ious.argmax())
        if ious[j] >= iou:
            used[j] = True
            tp += 1
    return tp


def detection_f1(
    ref: Sequence[np.ndarray], out: Sequence[np.ndarray], iou: float = MATCH_IOU
) -> float:
    """2·TP / (n_ref + n_out) over all images; 1.0 when neither detects anything."""
    tp = sum(matches(r, o, iou) for r, o in zip(ref, out, strict=True))
    total = sum(len(r) for r in ref) + sum(len(o) for o in out)
    return 1.0 if total == 0 else 2.0 * tp / total
