"""Layering: only ``onnxprune/ir/`` touches protobuf (``onnx`` and ``google.protobuf``).

Everything else speaks onnx-graphsurgeon, numpy or the functions ``onnxprune.ir`` exposes
(``ir.to_array``, ``ir.attributes``, ``ir.make_node``, ``ir.check_model``...). ``ir`` also
names the message classes (``ir.ModelProto``...) for annotations and ``isinstance``; their
members (enums such as ``TensorProto.FLOAT``, constructors) stay inside ``ir`` too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "onnxprune"
IR = PACKAGE / "ir"
PROTOBUF = ("onnx", "google.protobuf")
"""Top-level modules that are protobuf (``onnx_graphsurgeon`` and ``onnxruntime`` are not)."""
PROTO_NAMES = frozenset({"ModelProto", "GraphProto", "NodeProto", "TensorProto",
                         "ValueInfoProto", "AttributeProto"})
FIX = "move it into onnxprune/ir/ (a function there) and call that"

ALLOWED: dict[str, str] = {}
"""Files outside ``ir`` that may still use protobuf directly: path (relative to the package
folder) -> the reason. Empty: the test-graph builders in ``onnxprune/testing/`` build through
``ir.build`` and ``ir.proto``. Add an entry only with the reason it cannot go through ``ir``."""


def _is_protobuf(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in PROTOBUF)


def _proto_name(node: ast.expr) -> str | None:
    """``TensorProto`` for ``TensorProto``, ``ir.TensorProto``, ``onnx.TensorProto``; else None."""
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
    return name if name in PROTO_NAMES else None


def violations(source: str, path: str = "<snippet>") -> list[str]:
    """Return one ``path:line: what - fix`` line per protobuf use that belongs in ``ir``.

    Flags ``import onnx``, ``import onnx.x``, ``from onnx import ...``, ``from onnx.x import
    ...`` (and the same for ``google.protobuf``), ``importlib.import_module``/``__import__``
    of them, and members or construction of the message classes (``ir.TensorProto.FLOAT``,
    ``ir.ModelProto()``).
    """
    found = []
    for node in ast.walk(ast.parse(source, filename=path)):
        what = None
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names if _is_protobuf(a.name)]
            if names:
                what = f"'import {', '.join(names)}'"
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and _is_protobuf(node.module):
                what = f"'from {node.module} import {', '.join(a.name for a in node.names)}'"
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            arg = node.args[0] if node.args else None
            if (called in ("import_module", "__import__") and isinstance(arg, ast.Constant)
                    and isinstance(arg.value, str) and _is_protobuf(arg.value)):
                what = f"dynamic import of '{arg.value}'"
            elif _proto_name(func):
                what = f"'{_proto_name(func)}(...)' (a protobuf constructor)"
        elif isinstance(node, ast.Attribute) and _proto_name(node.value):
            what = f"'{_proto_name(node.value)}.{node.attr}' (a protobuf member)"
        if what is not None:
            found.append(f"{path}:{node.lineno}: {what} outside onnxprune/ir/ - {FIX}")
    return found


def _package_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_only_ir_touches_protobuf() -> None:
    found = []
    for path in _package_files():
        rel = path.relative_to(PACKAGE).as_posix()
        if path.is_relative_to(IR) or rel in ALLOWED:
            continue
        found += violations(path.read_text(encoding="utf-8"), f"onnxprune/{rel}")
    assert not found, "protobuf used outside onnxprune/ir/:\n" + "\n".join(found)


def test_allowlist_names_existing_files_with_reasons() -> None:
    for rel, reason in ALLOWED.items():
        assert (PACKAGE / rel).is_file(), f"stale allowlist entry {rel}"
        assert not (PACKAGE / rel).is_relative_to(IR), f"{rel} is in ir/: no entry needed"
        assert len(reason.split()) >= 3, f"allowlist entry {rel} needs its reason"


def test_the_scan_sees_the_imports_of_ir() -> None:
    """The same scan over ir/ finds its (allowed) imports: the walk reads real code."""
    assert len(_package_files()) > 50
    found = [v for p in sorted(IR.glob("*.py"))
             for v in violations(p.read_text(encoding="utf-8"), p.name)]
    assert any("'import onnx'" in v for v in found), found


@pytest.mark.parametrize("snippet", [
    "from onnx import helper",
    "import onnx",
    "import onnx.parser",
    "import numpy, onnx.inliner as inl",
    "from onnx.numpy_helper import to_array",
    "def f():\n    from onnx import numpy_helper\n",
    "from google.protobuf.message import Message",
    "import importlib\nimportlib.import_module('onnx.helper')",
    "x = ir.TensorProto.FLOAT",
    "m = ir.ModelProto()",
    "from onnxprune.ir import TensorProto\nt = TensorProto.INT8",
])
def test_protobuf_use_is_flagged(snippet: str) -> None:
    found = violations(snippet, "onnxprune/x.py")
    assert len(found) == 1, found
    line = snippet.rstrip("\n").count("\n") + 1  # each snippet's protobuf use is its last line
    assert found[0].startswith(f"onnxprune/x.py:{line}: ")
    assert "move it into onnxprune/ir/" in found[0]


@pytest.mark.parametrize("snippet", [
    "import onnx_graphsurgeon as gs",
    "from onnx_graphsurgeon import Graph",
    "import onnxruntime as ort",
    "from onnxruntime.tools import symbolic_shape_infer",
    "import onnxprune",
    "from onnxprune import ir\ndef f(m: ir.ModelProto) -> ir.NodeProto: ...",
    "from onnxprune import ir\nok = isinstance(m, ir.ModelProto)",
    "from . import onnx",
    "x = 'import onnx'",
])
def test_other_imports_are_not_flagged(snippet: str) -> None:
    assert violations(snippet) == []
