"""Preprocess options as text: the CLI's ``key=value`` words and JSON/YAML files to values.

Numbers may be fractions (``scale=1/255``), sizes ``H,W``, ``HxW``, one side or ``model``,
lists comma-separated; the channel words ``grey``/``grayscale``/``L`` mean ``gray``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from onnxprune.errors import InputError


def is_dtype(name: str) -> bool:
    """Tell whether ``name`` names a numpy dtype."""
    try:
        np.dtype(name)
    except TypeError:
        return False
    return True


def parse_value(field: str, value: Any) -> Any:
    """Return an option's value from text (or JSON), e.g. ``size`` from ``48,320``.

    Raises:
        InputError: a value that does not parse, naming the option and examples.

    """
    try:
        return _PARSERS.get(field, str)(value)
    except (TypeError, ValueError, ZeroDivisionError) as e:
        raise InputError(f"preprocess {field}={value!r}: {e}; e.g. size=224,224 "
                         "scale=1/255 mean=0.485,0.456,0.406 channels=bgr") from e


def _number(value: Any) -> float:
    text = str(value).strip()
    if "/" in text:
        num, _, den = text.partition("/")
        return float(num) / float(den)
    return float(text)


def _numbers(value: Any) -> tuple[float, ...]:
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return tuple(_number(v) for v in items)


def _size(value: Any) -> tuple[int, int] | None:
    if value is None or str(value).lower() == "model":
        return None
    items = value if isinstance(value, (list, tuple)) else str(value).replace("x", ",").split(",")
    dims = tuple(int(v) for v in items)
    if len(dims) == 1:
        dims = (dims[0], dims[0])
    if len(dims) != 2:
        raise ValueError("size takes H,W")
    return dims  # type: ignore[return-value]


def _lower(value: Any) -> str:
    return str(value).lower()


def channels_word(value: Any) -> str:
    """Return ``rgb``, ``bgr`` or ``gray`` for a channel word (``grey``, ``L`` are gray)."""
    text = str(value).lower()
    return "gray" if text in ("grey", "grayscale", "greyscale", "l") else text


_PARSERS: dict[str, Any] = {
    "size": _size, "pad": _number, "scale": _number, "mean": _numbers, "std": _numbers,
    "channels": channels_word, "layout": _lower, "resize": _lower, "resample": _lower,
    "dtype": str, "name": str,
}


def load_mapping(path: Path, text: str) -> dict[str, Any]:
    """Return the mapping of options a JSON (or YAML) preprocess file holds.

    Raises:
        InputError: YAML without pyyaml, invalid text, or not a mapping.

    """
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as e:
            raise InputError(f"{path}: YAML needs pyyaml (pip install pyyaml); or write the "
                             "same options as JSON") from e
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise InputError(f"{path}: not valid YAML ({e}); fix the file") from e
    else:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: not valid JSON ({e}); fix the file") from e
    if not isinstance(raw, dict):
        raise InputError(f"{path}: expected a mapping of options like {{\"preset\": "
                         "\"imagenet\", \"size\": [224, 224]}")
    return raw
