"""Image folders as model input: find the images, read them, preprocess them into one tensor.

How pixels become values is the :class:`~onnxprune.preprocess.Preprocess` recipe; this module
chooses it when none is given (the model's H, W and layout), checks it against the model's
input and stacks the images. ``onnxprune.data.load_data`` reads a folder through here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from onnxprune import ir
from onnxprune.errors import InputError
from onnxprune.preprocess import Preprocess

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


LETTERBOX_FILL = 114  # the grey YOLO-style exporters pad with


def ImageOptions(  # noqa: N802 - the former dataclass's name, kept for callers
    size: tuple[int, int] | None = None,
    resize: str = "stretch",
    scale: float = 1.0 / 255.0,
    mean: tuple[float, ...] = (0.0,),
    std: tuple[float, ...] = (1.0,),
    channel_order: str = "rgb",
    layout: str = "nchw",
    dtype: str = "float32",
) -> Preprocess:
    """Return the :class:`~onnxprune.preprocess.Preprocess` of the former image options."""
    resize = "center-crop" if resize == "shorter-side+center-crop" else resize
    pad = float(LETTERBOX_FILL) if resize == "letterbox" else 0.0
    return Preprocess(size=size, resize=resize, pad=pad, scale=scale, mean=tuple(mean),
                      std=tuple(std), channels=channel_order, layout=layout, dtype=dtype)


def load_folder(
    path: Path,
    specs: Sequence[ir.TensorSpec],
    shapes: Mapping[str, tuple[int, ...]],
    options: Preprocess | None,
) -> dict[str, np.ndarray]:
    """Read every image of ``path`` into the one input's tensor, preprocessed.

    Raises:
        InputError: several inputs, no images, an unreadable image, a layout or size that
            cannot be told.

    """
    if len(specs) != 1:
        raise InputError(
            f"{path}: an image folder feeds one input, the model has {[s.name for s in specs]}; "
            "pass an .npz with one array per input"
        )
    files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(
            f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}); add images or pass an .npz"
        )
    spec = specs[0]
    dims = list(shapes.get(spec.name, spec.shape))
    if len(dims) != 4:
        raise InputError(
            f"{path}: input '{spec.name}' {dims} is not a rank-4 image tensor; pass an .npz"
        )
    opts = options or _default_options(dims)
    if _looks_nhwc(dims) and opts.layout == "nchw":
        raise InputError(
            f"{path}: input '{spec.name}' {dims} looks channels-last; add layout=nhwc to "
            "--preprocess (or \"layout\": \"nhwc\" in the preprocess file)"
        )
    hw, c = (dims[2:4], dims[1]) if opts.layout == "nchw" else (dims[1:3], dims[3])
    if c == 1 and opts.channels != "gray":
        opts = replace(opts, channels="gray")
    size = opts.size or tuple(hw)
    if not _positive_ints(size):
        raise InputError(
            f"{path}: input '{spec.name}' {dims} has no fixed H,W; pass --preprocess size=H,W "
            "or --input-shapes"
        )
    hw_size = (int(size[0]), int(size[1]))
    images = opts.to_tensor(_load_image(f, hw_size, opts) for f in files)
    _announce(path, len(files), opts, hw_size)
    return {spec.name: images}


def _announce(path: Path, n: int, opts: Preprocess, size: tuple[int, int]) -> None:
    from onnxprune import progress

    progress.note(f"{n} image(s) from {path}, preprocess {opts.summary(size)}")


def _positive_ints(dims: Sequence[int | str]) -> bool:
    return all(isinstance(d, int) and d > 0 for d in dims)


def _looks_nhwc(dims: list[int | str]) -> bool:
    return dims[1] not in (1, 3) and dims[3] in (1, 3)


def _default_options(dims: list[int | str]) -> Preprocess:
    layout = "nhwc" if _looks_nhwc(dims) else "nchw"
    log.warning(
        "no --preprocess: stretching images to the model's H,W, scale 1/255, no mean/std, "
        "RGB, %s; pass --preprocess PRESET|KEY=VALUE.. (presets: imagenet, yolo, paddle-ocr, "
        "paddle-det, mtcnn) to match the model's preprocessing",
        layout,
    )
    return Preprocess(layout=layout, name="default")


def _load_image(f: Path, size: tuple[int, int], opts: Preprocess) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(f) as raw:
            return opts.apply(raw, size)
    except (OSError, ValueError) as e:  # UnidentifiedImageError is an OSError
        raise InputError(f"{f}: not a readable image ({e}); remove or re-save it") from e
