"""How image files become a model input, as data: :class:`Preprocess`, presets, files.

The recipe is the one most exporters document::

    pixels (RGB or BGR, or grayscale) -> resize (stretch / letterbox / keep-height-pad /
    center-crop) -> x * scale -> (x - mean) / std -> NCHW or NHWC, dtype

It is built from a preset (``imagenet``, ``yolo``, ``paddle-ocr``, ...), ``key=value``
overrides (the CLI's ``--preprocess``) or a small JSON/YAML file (``--preprocess-file``),
and :meth:`Preprocess.summary` says in one line what was applied.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxprune.errors import InputError
from onnxprune.preprocess_text import channels_word, is_dtype, load_mapping, parse_value

if TYPE_CHECKING:
    from PIL import Image

RESIZE_MODES = ("stretch", "letterbox", "keep-height-pad", "center-crop")
RESAMPLE = ("bilinear", "nearest", "bicubic", "area", "lanczos")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """One image-to-tensor recipe: ``((resize(pixels) * scale) - mean) / std``.

    Attributes:
        size: (H, W) of the tensor; ``None`` ("model") takes the model's input H, W.
        resize: ``stretch`` (to H x W), ``letterbox`` (keep aspect, centre, pad),
            ``keep-height-pad`` (resize to H keeping aspect, width capped at W, pad on the
            right: PP-OCR text lines) or ``center-crop`` (cover H x W, crop the centre).
        resample: ``bilinear``, ``nearest``, ``bicubic``, ``area`` or ``lanczos``.
        pad: pixel value (0-255 scale, before ``scale``/``mean``/``std``) of padded areas.
        scale: multiplies the pixels (``1/255`` maps them to [0, 1]).
        mean: subtracted after ``scale``; 1 or C values.
        std: divides after ``mean``; 1 or C values.
        channels: ``rgb``, ``bgr`` or ``gray``.
        layout: ``nchw`` or ``nhwc``.
        dtype: numpy dtype of the tensor.
        name: the preset it came from (for the summary).

    """

    size: tuple[int, int] | None = None
    resize: str = "stretch"
    resample: str = "bilinear"
    pad: float = 0.0
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    channels: str = "rgb"
    layout: str = "nchw"
    dtype: str = "float32"
    name: str = "custom"

    def __post_init__(self) -> None:
        checks = (
            (self.resize in RESIZE_MODES, f"resize '{self.resize}': use one of "
             f"{', '.join(RESIZE_MODES)}"),
            (self.resample in RESAMPLE, f"resample '{self.resample}': use one of "
             f"{', '.join(RESAMPLE)}"),
            (self.channels in ("rgb", "bgr", "gray"), f"channels '{self.channels}': use rgb, "
             "bgr or gray"),
            (self.layout in ("nchw", "nhwc"), f"layout '{self.layout}': use nchw or nhwc"),
            (bool(self.std) and 0 not in self.std, "std must be non-empty and non-zero"),
            (bool(self.mean), "mean must have 1 or C values"),
            (self.size is None or (len(self.size) == 2 and min(self.size) > 0),
             f"size {self.size}: use H,W with positive integers, or 'model'"),
            (is_dtype(self.dtype), f"dtype '{self.dtype}': use a numpy dtype like float32"),
        )
        for ok, message in checks:
            if not ok:
                raise InputError(f"preprocess: {message}")

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **changes: Any) -> Preprocess:
        """Return the preset ``name`` (see :data:`PRESETS`) with keyword changes.

        Raises:
            InputError: an unknown preset or option.

        """
        if name not in PRESETS:
            raise InputError(f"unknown preprocess preset '{name}'; presets are "
                             f"{', '.join(PRESETS)}")
        return PRESETS[name].with_options(**changes)

    def with_options(self, **changes: Any) -> Preprocess:
        """Return a copy with options changed; values may be text as on the command line.

        Raises:
            InputError: an unknown option or a value that does not parse.

        """
        known = {f.name for f in fields(self)}
        parsed: dict[str, Any] = {}
        for key, value in changes.items():
            field = _ALIASES.get(key.replace("_", "-"), key.replace("-", "_"))
            if field not in known:
                raise InputError(f"preprocess option '{key}' is unknown; options are "
                                 f"{', '.join(sorted(known - {'name'}))}")
            parsed[field] = parse_value(field, value)
        return replace(self, **parsed)

    @classmethod
    def parse(cls, items: Sequence[str]) -> Preprocess:
        """Build from CLI words: an optional preset name, then ``key=value`` pairs or flags.

        ``imagenet``, ``paddle-ocr size=48,320``, ``resize=letterbox pad=114 scale=1/255``;
        the flags ``rgb``/``bgr``/``gray``, ``nchw``/``nhwc`` and the resize modes stand for
        their option.

        Raises:
            InputError: an unknown preset, option or value.

        """
        items = list(items)
        base = cls()
        if items and "=" not in items[0] and items[0].lower() not in _FLAGS:
            base = cls.preset(items.pop(0))
        changes = {}
        for item in items:
            key, sep, value = item.partition("=")
            flag = _FLAGS.get(item.lower())
            if not sep and flag:
                key, value = flag, channels_word(item) if flag == "channels" else item.lower()
            elif not sep:
                raise InputError(f"--preprocess '{item}': expected KEY=VALUE (or a flag: rgb, "
                                 "bgr, gray, nchw, nhwc, a resize mode) after the preset name, "
                                 "e.g. mean=0.5 std=0.5")
            changes[key] = value
        return base.with_options(**changes)

    @classmethod
    def from_file(cls, path: str | Path) -> Preprocess:
        """Load a recipe from JSON (or YAML, when pyyaml is installed).

        The file holds a mapping: ``{"preset": "paddle-ocr", "size": [48, 320]}`` or every
        option spelled out.

        Raises:
            InputError: the file is missing, unreadable, or holds unknown options.

        """
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise InputError(f"{p}: cannot read the preprocess file ({e}); check the path") from e
        raw = load_mapping(p, text)
        preset = raw.pop("preset", None)
        base = cls.preset(str(preset)) if preset is not None else cls()
        return base.with_options(**raw)

    @classmethod
    def of(cls, value: Preprocess | str | Mapping[str, Any] | None) -> Preprocess | None:
        """Accept a :class:`Preprocess`, a preset name, a file path or a mapping of options.

        Raises:
            InputError: none of these.

        """
        if value is None or isinstance(value, Preprocess):
            return value
        if isinstance(value, Mapping):
            raw = dict(value)
            preset = raw.pop("preset", None)
            return (cls.preset(str(preset)) if preset else cls()).with_options(**raw)
        if isinstance(value, (str, Path)):
            text = str(value)
            if text in PRESETS:
                return cls.preset(text)
            if Path(text).suffix.lower() in (".json", ".yaml", ".yml"):
                return cls.from_file(text)
            return cls.parse(text.split())
        raise InputError(f"preprocess {value!r}: pass a Preprocess, a preset name "
                         f"({', '.join(PRESETS)}), a mapping or a .json file")

    # -- description -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (loadable with :meth:`from_file`)."""
        out = asdict(self)
        out["size"] = list(self.size) if self.size else "model"
        return out

    def summary(self, size: tuple[int, int] | None = None) -> str:
        """One line saying what is applied, e.g. for ``paddle-ocr``.

        ``BGR, keep-height-pad to 48x192 (bilinear, pad 127.5), x*1/255, -[0.5], /[0.5],
        NCHW float32``.
        """
        hw = size or self.size
        where = f"{hw[0]}x{hw[1]}" if hw else "the model's HxW"
        pad = f", pad {self.pad:g}" if self.resize in ("letterbox", "keep-height-pad") else ""
        scale = "1/255" if math.isclose(self.scale, 1 / 255) else f"{self.scale:g}"
        return (f"{self.name}: {self.channels.upper()}, {self.resize} to {where} "
                f"({self.resample}{pad}), x*{scale}, -{_nums(self.mean)}, /{_nums(self.std)}, "
                f"{self.layout.upper()} {self.dtype}")

    # -- application -----------------------------------------------------------------------
    def apply(self, image: Image.Image, size: tuple[int, int]) -> np.ndarray:
        """Turn one PIL image into an (H, W, C) float array (before layout/dtype)."""
        im = image.convert("L" if self.channels == "gray" else "RGB")
        pixels = self._resized(im, size)
        if self.channels == "bgr":
            pixels = pixels[..., ::-1]
        channels = pixels.shape[-1]
        mean, std = (np.asarray(v, np.float32) for v in (self.mean, self.std))
        if {mean.size, std.size} - {1, channels}:
            raise InputError(f"preprocess: mean/std need 1 or {channels} values, got "
                             f"{list(self.mean)}/{list(self.std)}")
        return ((pixels * np.float32(self.scale) - mean) / std).astype(np.float32)

    def to_tensor(self, images: Iterable[np.ndarray]) -> np.ndarray:
        """Stack (H, W, C) arrays from :meth:`apply` into the batch in ``layout``/``dtype``."""
        batch = np.stack(list(images))
        if self.layout == "nchw":
            batch = batch.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(batch.astype(self.dtype))

    def _resized(self, im: Image.Image, size: tuple[int, int]) -> np.ndarray:
        h, w = size
        filt = _filter(self.resample)
        chans = 1 if im.mode == "L" else 3
        if self.resize == "stretch":
            return _pixels(im.resize((w, h), filt), chans)
        if self.resize == "center-crop":
            r = max(h / im.height, w / im.width)
            nw, nh = max(w, round(im.width * r)), max(h, round(im.height * r))
            left, top = (nw - w) // 2, (nh - h) // 2
            return _pixels(im.resize((nw, nh), filt).crop((left, top, left + w, top + h)), chans)
        if self.resize == "keep-height-pad":
            # PP-OCR resize_norm_img: height H, width ceil(H * aspect) capped at W, left-aligned
            nw, nh, x0, y0 = min(w, math.ceil(h * im.width / im.height)), h, 0, 0
        else:  # letterbox: fit inside, centred
            r = min(h / im.height, w / im.width)
            nw, nh = max(1, round(im.width * r)), max(1, round(im.height * r))
            x0, y0 = (w - nw) // 2, (h - nh) // 2
        canvas = np.full((h, w, chans), self.pad, dtype=np.float32)
        canvas[y0:y0 + nh, x0:x0 + nw] = _pixels(im.resize((nw, nh), filt), chans)
        return canvas


_FLAGS = {
    **dict.fromkeys(("rgb", "bgr", "gray", "grey", "grayscale"), "channels"),
    **dict.fromkeys(("nchw", "nhwc"), "layout"),
    **dict.fromkeys(RESIZE_MODES, "resize"),
}
_ALIASES = {"order": "channels", "color": "channels", "pad-value": "pad", "mode": "resize"}


def _nums(values: Sequence[float]) -> str:
    return "[" + ",".join(f"{v:g}" for v in values) + "]"


def _filter(name: str) -> Any:
    from PIL import Image

    r = Image.Resampling
    return {"bilinear": r.BILINEAR, "nearest": r.NEAREST, "bicubic": r.BICUBIC,
            "area": r.BOX, "lanczos": r.LANCZOS}[name]


def _pixels(im: Image.Image, chans: int) -> np.ndarray:
    return np.asarray(im, dtype=np.float32).reshape(im.height, im.width, chans)


PRESETS: dict[str, Preprocess] = {
    "imagenet": Preprocess(resize="center-crop", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                           name="imagenet"),
    "yolo": Preprocess(resize="letterbox", pad=114.0, name="yolo"),
    "paddle-ocr": Preprocess(resize="keep-height-pad", pad=127.5, mean=(0.5,), std=(0.5,),
                             channels="bgr", name="paddle-ocr"),
    "paddle-det": Preprocess(mean=IMAGENET_MEAN, std=IMAGENET_STD, channels="bgr",
                             name="paddle-det"),
    "mtcnn": Preprocess(resample="area", scale=1.0, mean=(127.5,), std=(128.0,),
                        name="mtcnn"),
    "raw": Preprocess(name="raw"),
}
"""Common conventions. ``paddle-ocr``: PP-OCR text-line cls/rec (pad 127.5 is 0 after the
normalisation, as PaddleOCR pads); ``paddle-det``: PP-OCR det and PicoDet (BGR, ImageNet
statistics, plain resize); ``raw``: RGB x/255 stretched, nothing else."""
