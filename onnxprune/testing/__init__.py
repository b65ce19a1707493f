"""Test architectures (small torch modules) and their ONNX export, for tests and benchmarks.

``ARCH_CASES`` (every architecture x exporter as ``pytest.param``) is built lazily on first
access so that importing this package does not import pytest.
"""

from __future__ import annotations

from typing import Any

from onnxprune.testing.archs import ARCHS, LARGE_ARCHS, ArchSpec, example_input, get_spec
from onnxprune.testing.export import EXPORTERS, export_onnx, exported_path

__all__ = [
    "ARCHS",
    "ARCH_CASES",
    "EXPORTERS",
    "LARGE_ARCHS",
    "ArchSpec",
    "arch_cases",
    "example_input",
    "export_onnx",
    "exported_path",
    "get_spec",
]


def arch_cases() -> list[Any]:
    """Return one ``pytest.param(name, exporter, id="name-exporter")`` per arch and exporter.

    Returns:
        The parameter list, in registry order, exporters innermost.

    """
    import pytest

    return [
        pytest.param(name, exporter, id=f"{name}-{exporter}")
        for name in ARCHS
        for exporter in EXPORTERS
    ]


def __getattr__(name: str) -> Any:
    if name == "ARCH_CASES":
        return arch_cases()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
