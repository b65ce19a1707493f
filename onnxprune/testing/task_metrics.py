"""Task metrics of a pruned real model against the original (label-free: the original decides).

Each metric turns both models' raw outputs into the decisions the model's own package makes,
then scores how many of the original's decisions the pruned model reproduces (1.0: all):

- ppocr_det: DB binarisation, probability > 0.3 (rapidocr's ``thresh``); score: text-pixel
  IoU, pooled over pages;
- ppocr_rec: CTC greedy decode with the model's own dictionary; score: share of identical
  strings;
- ppocr_cls: argmax of 0 / 180; score: share of equal decisions;
- picodet_layout: rapid-layout's decode (DFL boxes, score > 0.5, per-class NMS at 0.5);
  score: detection F1 at IoU 0.5 within a class;
- mtcnn_*: face probability > 0.7 (facenet-pytorch's R-/O-Net threshold); score: share of
  equal decisions.

Pooled IoU is sum(intersection) / sum(union) over all pages (1.0 when neither model marks any
pixel); detection F1 is 2·TP / (n_original + n_pruned) over all pages, matching greedily by
score within a class (1.0 when neither detects anything; ``detections.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from onnxprune.testing.detections import (
    LAYOUT_CONF,
    LAYOUT_NMS,
    LAYOUT_STRIDES,
    MATCH_IOU,
    box_iou,
    detection_f1,
    layout_detections,
    matches,
)

__all__ = [  # the detection names live in detections.py; callers reach them here too
    "DET_THRESH", "FACE_THRESH", "LAYOUT_CONF", "LAYOUT_NMS", "LAYOUT_STRIDES", "MATCH_IOU",
    "METRIC_NAMES", "TaskScore", "agreement", "base_rates", "box_iou", "ctc_decode", "decide",
    "detection_f1", "face_decisions", "layout_detections", "matches", "pooled_iou",
    "rec_charset", "run", "score", "text_mask",
]

DET_THRESH = 0.3
FACE_THRESH = 0.7

METRIC_NAMES = {
    "ppocr_det": "text-pixel IoU",
    "ppocr_rec": "identical strings",
    "ppocr_cls": "angle agreement",
    "picodet_layout": "detection F1",
    "mtcnn_pnet": "face agreement",
    "mtcnn_rnet": "face agreement",
    "mtcnn_onet": "face agreement",
}


@dataclass(frozen=True)
class TaskScore:
    """A task metric's value (1.0 = the pruned model decides as the original) and its parts."""

    metric: str
    value: float
    n: int
    detail: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- running


def run(model: str | Path | bytes, x: np.ndarray, *, threads: int = 1) -> list[np.ndarray]:
    """Run a model one sample at a time (some have a fixed batch of 1); outputs stacked.

    Args:
        model: an ONNX file path or serialised model bytes.
        x: inputs, samples along axis 0 (the model's only input).
        threads: onnxruntime intra-op threads.

    Returns:
        One array per graph output, samples along axis 0.

    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    src = str(model) if isinstance(model, Path) else model
    sess = ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    per = [sess.run(None, {name: x[i : i + 1]}) for i in range(len(x))]
    return [np.concatenate([p[k] for p in per]) for k in range(len(per[0]))]


# ----------------------------------------------------------------------------- decisions


def text_mask(prob: np.ndarray, thresh: float = DET_THRESH) -> np.ndarray:
    """DB's binarisation: (N, 1, H, W) probabilities -> (N, H, W) text pixels."""
    return prob[:, 0] > thresh


def rec_charset(model: str | Path) -> list[str]:
    """Return the recogniser's CTC classes as rapidocr builds them.

    Blank, then the model's ``character`` metadata, then a space.
    """
    from onnxprune import ir

    meta = ir.file_metadata(model)
    if "character" not in meta:
        raise KeyError(f"{model} has no 'character' metadata: is it the PP-OCR recogniser?")
    return ["blank", *meta["character"].splitlines(), " "]


def ctc_decode(probs: np.ndarray, charset: Sequence[str]) -> list[str]:
    """Rapidocr's ``CTCLabelDecode``: argmax per step, merge repeats, drop blanks (0)."""
    out = []
    for idx in probs.argmax(axis=2):
        keep = np.ones(len(idx), dtype=bool)
        keep[1:] = idx[1:] != idx[:-1]
        keep &= idx != 0
        out.append("".join(charset[i] for i in idx[keep]))
    return out


def face_decisions(prob: np.ndarray, thresh: float = FACE_THRESH) -> np.ndarray:
    """MTCNN's face decision from its (N, 2) or (N, 2, H, W) softmax: face prob > thresh."""
    p = prob[:, 1]
    return p.reshape(len(p), -1).max(axis=1) > thresh


# ----------------------------------------------------------------------------- scores


def pooled_iou(ref: np.ndarray, out: np.ndarray) -> float:
    """sum(ref & out) / sum(ref | out) over all samples; 1.0 when both are empty."""
    union = np.logical_or(ref, out).sum()
    return 1.0 if union == 0 else float(np.logical_and(ref, out).sum() / union)


def agreement(ref: np.ndarray, out: np.ndarray) -> float:
    """Share of samples with the same decision."""
    return float(np.mean(np.asarray(ref) == np.asarray(out)))


def decide(
    model: str, outputs: Sequence[np.ndarray], *, charset: Sequence[str] | None = None
) -> Any:
    """Turn a model's outputs into its package's decisions (see the module docstring)."""
    if model == "ppocr_det":
        return text_mask(outputs[0])
    if model == "ppocr_rec":
        if charset is None:
            raise ValueError("ppocr_rec needs the charset (rec_charset(original_path))")
        return ctc_decode(outputs[0], charset)
    if model == "ppocr_cls":
        return outputs[0].argmax(axis=1)
    if model == "picodet_layout":
        return layout_detections(outputs)
    if model.startswith("mtcnn_"):
        return face_decisions(outputs[-1])
    raise KeyError(f"no task metric for {model!r}: one of {sorted(METRIC_NAMES)}")


def score(model: str, ref: Any, out: Any) -> TaskScore:
    """Score the pruned model's decisions ``out`` against the original's ``ref``."""
    if model == "ppocr_det":
        value = pooled_iou(ref, out)
        detail = {"ref_pixels": int(ref.sum()), "out_pixels": int(out.sum())}
    elif model == "picodet_layout":
        value = detection_f1(ref, out)
        detail = {"ref_boxes": sum(map(len, ref)), "out_boxes": sum(map(len, out))}
    else:
        value, detail = agreement(ref, out), {}
    return TaskScore(METRIC_NAMES[model], value, len(ref), detail)


# ----------------------------------------------------------------------------- base rates


def base_rates(model: str, ref: Any, meta: dict[str, np.ndarray]) -> dict[str, Any]:
    """Describe what the original decides on a set, and how that matches what was rendered.

    Args:
        model: the model name.
        ref: the original's decisions on the set (:func:`decide`).
        meta: the set's ``meta`` (rendered texts, labels, boxes, crop kinds).

    Returns:
        Rates that show the set exercises the task (e.g. pages with text detected, strings
        equal to the rendered text).

    """
    n = len(ref)
    if model == "ppocr_det":
        per_page = ref.reshape(n, -1).mean(axis=1)
        return {
            "pages_with_text_detected": float(np.mean(per_page > 0)),
            "pages_with_text_rendered": float(np.mean(meta["mask"].reshape(n, -1).any(axis=1))),
            "text_pixel_share": float(per_page.mean()),
            "iou_with_rendered_text_boxes": pooled_iou(meta["mask"], ref),
        }
    if model == "ppocr_rec":
        texts = [str(t) for t in meta["text"]]
        squash = lambda s: s.replace(" ", "").lower()  # noqa: E731
        return {
            "non_empty": float(np.mean([len(r) > 0 for r in ref])),
            "equals_rendered_text": float(
                np.mean([r == t for r, t in zip(ref, texts, strict=True)])
            ),
            "equals_rendered_ignoring_spaces_case": float(
                np.mean([squash(r) == squash(t) for r, t in zip(ref, texts, strict=True)])
            ),
        }
    if model == "ppocr_cls":
        return {
            "accuracy_vs_rendered_angle": agreement(ref, meta["label"]),
            "share_decided_180": float(np.mean(ref == 1)),
            "constant_model_scores": float(max(np.mean(ref == 1), np.mean(ref != 1))),
        }
    if model == "picodet_layout":
        boxes = meta["boxes"]
        rendered = [boxes[boxes[:, 0] == i, 1:] for i in range(n)]
        classes = np.concatenate([r[:, 0] for r in ref]).astype(int) if n else np.zeros(0, int)
        return {
            "detections_per_page": float(np.mean([len(r) for r in ref])),
            "pages_with_detections": float(np.mean([len(r) > 0 for r in ref])),
            "detections_by_class": np.bincount(classes, minlength=10).tolist(),
            "f1_vs_rendered_regions_same_class": detection_f1(
                [np.c_[g[:, :1], np.ones(len(g)), g[:, 1:]] for g in rendered], ref
            ),
        }
    if model.startswith("mtcnn_"):
        kinds = meta["kind"]
        from onnxprune.testing.realdata.faces import KINDS as names

        return {
            "face_rate": float(np.mean(ref)),
            "constant_model_scores": float(max(np.mean(ref), 1 - np.mean(ref))),
            **{
                f"face_rate_{k}": float(np.mean(ref[kinds == i]))
                for i, k in enumerate(names)
                if (kinds == i).any()
            },
        }
    raise KeyError(model)
