"""In-domain calibration and evaluation sets for the real models, built from what wheels ship.

``load(model, split)`` returns a :class:`RealSet`: the model's input exactly as its own package
preprocesses it (float32, N x C x H x W, one sample per row) and what was rendered
(``meta``: texts, angle labels, layout boxes, crop kinds). Sets are deterministic for a given
(model, split, count, seed), built once and cached as compressed npz under
``<cache>/realdata/`` (``$ONNXPRUNE_CACHE`` or ``~/.cache/onnxprune``): pixels as uint8,
normalised on loading (faces, already interpolated, as float16).

Calibration and evaluation are disjoint: different fonts, different halves of the vocabulary,
different photos/faces where the task allows it, different seeds (see ``sources``). Sample i
comes from its own seeded generator, so a smaller count is a prefix of a larger one.

| model | input | calib | eval | content |
| --- | --- | --- | --- | --- |
| ppocr_det | 3x320x320 | 128 | 64 | text pages over paper / faded photos |
| ppocr_rec | 3x48x320 | 256 | 200 | single text lines, ``meta["text"]`` |
| ppocr_cls | 3x48x192 | 256 | 200 | text lines, half rotated 180, ``meta["label"]`` |
| picodet_layout | 3x800x608 | 128 | 64 | document pages, ``meta["boxes"]`` |
| mtcnn_pnet/rnet/onet | 3x48x48 / 3x24x24 / 3x48x48 | 256 | 200 | face / non-face crops |
"""

from __future__ import annotations

import logging
import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from onnxprune.testing.realdata import faces, layout, text
from onnxprune.testing.realdata.cache import cache_root, model_path

log = logging.getLogger(__name__)

# Bump when a change alters what is built, so that cached sets are rebuilt.
VERSION = 1
Shape = tuple[int, int, int]
Built = tuple[np.ndarray, dict[str, Any]]
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclass(frozen=True)
class SetSpec:
    """How one model's set is made: input name/shape, default sizes, builder, normalisation."""

    input_name: str
    shape: tuple[int, int, int]
    calib: int
    eval: int
    build: Callable[[np.random.Generator, str, Shape], Built]
    norm: str  # "half": (x/255-0.5)/0.5, "imagenet": x/255, ImageNet mean/std; "float": as is


def _det(
    rng: np.random.Generator, split: str, shape: tuple[int, int, int]
) -> tuple[np.ndarray, dict]:
    px, mask = text.det_page(rng, split, shape[1], shape[2])
    return px, {"mask": mask}


def _rec(
    rng: np.random.Generator, split: str, shape: tuple[int, int, int]
) -> tuple[np.ndarray, dict]:
    px, width, txt = text.rec_line(rng, split, shape[1], shape[2])
    return px, {"width": width, "text": txt}


def _cls(
    rng: np.random.Generator, split: str, shape: tuple[int, int, int]
) -> tuple[np.ndarray, dict]:
    px, width, label = text.cls_line(rng, split, shape[1], shape[2])
    return px, {"width": width, "label": label}


def _layout(
    rng: np.random.Generator, split: str, shape: tuple[int, int, int]
) -> tuple[np.ndarray, dict]:
    px, boxes = layout.layout_page(rng, split, shape[1], shape[2])
    return px, {"boxes": boxes}


def _face(
    rng: np.random.Generator, split: str, shape: tuple[int, int, int]
) -> tuple[np.ndarray, dict]:
    x, kind = faces.face_crop(rng, split, shape[1])
    return x, {"kind": kind}


SPECS: dict[str, SetSpec] = {
    "ppocr_det": SetSpec("x", (3, 320, 320), 128, 64, _det, "half"),
    "ppocr_rec": SetSpec("x", (3, 48, 320), 256, 200, _rec, "half"),
    "ppocr_cls": SetSpec("x", (3, 48, 192), 256, 200, _cls, "half"),
    "picodet_layout": SetSpec("image", (3, 800, 608), 128, 64, _layout, "imagenet"),
    "mtcnn_pnet": SetSpec("input", (3, 48, 48), 256, 200, _face, "float"),
    "mtcnn_rnet": SetSpec("input", (3, 24, 24), 256, 200, _face, "float"),
    "mtcnn_onet": SetSpec("input", (3, 48, 48), 256, 200, _face, "float"),
}
NAMES = tuple(SPECS)


@dataclass(frozen=True, eq=False)
class RealSet:
    """One split of one model's set: ``x`` (float32 NCHW) under ``input_name``, and ``meta``."""

    model: str
    split: str
    input_name: str
    x: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.x)

    def feeds(self) -> dict[str, np.ndarray]:
        """``{input_name: x}``, e.g. for ``onnxprune.data.Dataset(inputs=...)``."""
        return {self.input_name: self.x}


def _seed(model: str, split: str, seed: int) -> int:
    return zlib.crc32(f"{model}/{split}".encode()) ^ seed


def _build(model: str, split: str, count: int, seed: int) -> dict[str, np.ndarray]:
    spec = SPECS[model]
    base = _seed(model, split, seed)
    pixels, metas = [], []
    for i in range(count):
        px, meta = spec.build(np.random.default_rng([base, i]), split, spec.shape)
        pixels.append(px)
        metas.append(meta)
    arrays: dict[str, np.ndarray] = {"pixels": np.stack(pixels)}
    if spec.norm == "float":
        arrays["pixels"] = arrays["pixels"].astype(np.float16)
    for key in metas[0] if metas else ():
        values = [m[key] for m in metas]
        if key == "boxes":  # ragged: one row per region, first column the page index
            rows = [np.c_[np.full(len(v), i), v] for i, v in enumerate(values) if len(v)]
            arrays[key] = (
                np.concatenate(rows).astype(np.int32) if rows else np.zeros((0, 6), np.int32)
            )
        else:
            arrays[key] = np.asarray(values)
    return arrays


def build(model: str, split: str, count: int, *, seed: int = 0) -> RealSet:
    """Build one split of a model's set without touching the cache (see :func:`load`)."""
    spec = SPECS[model]
    arrays = _build(model, split, count, seed)
    meta = {k: v for k, v in arrays.items() if k != "pixels"}
    return RealSet(model, split, spec.input_name, _normalise(spec, arrays), meta)


def _normalise(spec: SetSpec, arrays: dict[str, np.ndarray]) -> np.ndarray:
    px = arrays["pixels"]
    if spec.norm == "float":
        return px.astype(np.float32)
    x = px.astype(np.float32) / 255.0
    if spec.norm == "imagenet":
        x = (x - _IMAGENET_MEAN) / _IMAGENET_STD
    else:
        x = (x - 0.5) / 0.5
        if "width" in arrays:  # rapidocr pads with zeros *after* normalising
            pad = np.arange(x.shape[2])[None, None, :] >= arrays["width"][:, None, None]
            x[np.broadcast_to(pad, x.shape[:3])] = 0.0
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def load(model: str, split: str, count: int | None = None, *, seed: int = 0,
         rebuild: bool = False) -> RealSet:  # fmt: skip
    """Return (building and caching it if needed) one split of a model's real-task set.

    Args:
        model: one of :data:`NAMES`.
        split: ``"calib"`` or ``"eval"``.
        count: number of samples (default: the model's calib/eval size in the table above).
        seed: varies every sample; the splits stay disjoint for any seed.
        rebuild: build again even if cached.

    Returns:
        The set, inputs float32 as the model's package feeds them.

    Raises:
        KeyError: unknown model or split.

    """
    if model not in SPECS or split not in ("calib", "eval"):
        raise KeyError(
            f"no real-task set for {model!r}/{split!r}: models {NAMES}, splits calib/eval"
        )
    spec = SPECS[model]
    n = count if count is not None else getattr(spec, split)
    path = cache_root() / "realdata" / f"{model}_{split}_n{n}_s{seed}_v{VERSION}.npz"
    if path.exists() and not rebuild:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    else:
        t0 = time.perf_counter()
        arrays = _build(model, split, n, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.npz")
        np.savez_compressed(tmp, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
        log.info(
            "built %s/%s (%d samples) in %.1fs: %s", model, split, n, time.perf_counter() - t0, path
        )
    meta = {k: v for k, v in arrays.items() if k != "pixels"}
    return RealSet(model, split, spec.input_name, _normalise(spec, arrays), meta)


__all__ = ["NAMES", "SPECS", "RealSet", "build", "cache_root", "load", "model_path"]
