"""The real-task yardstick on tiny sets: data that exercises the task, metrics that can fail.

For each real model of ``benchmarks/real_quality.py``: a tiny in-domain evaluation set is
built (``onnxprune.testing.realdata``), the original decides on it as its package would, and
- the set is meaningful (the original finds text / faces / layout regions, reads the text),
- the original scored against itself is exactly 1.0,
- the original with one early backbone Conv's weights zeroed scores far below 1.0.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from onnxprune.testing import realdata
from onnxprune.testing import task_metrics as T
from onnxprune.testing.realdata import sources

pytestmark = pytest.mark.real
REPO = Path(__file__).resolve().parents[1]

# model -> (samples, highest score a broken model may reach, base-rate checks)
CASES: dict[str, tuple[int, float, dict[str, tuple[float, float]]]] = {
    "ppocr_det": (8, 0.3, {"pages_with_text_detected": (0.75, 1.0),
                           "iou_with_rendered_text_boxes": (0.25, 1.0)}),
    "ppocr_rec": (24, 0.3, {"non_empty": (0.9, 1.0), "equals_rendered_text": (0.6, 1.0)}),
    "ppocr_cls": (24, 0.8, {"accuracy_vs_rendered_angle": (0.75, 1.0)}),
    "picodet_layout": (3, 0.3, {"detections_per_page": (4.0, 100.0),
                                "f1_vs_rendered_regions_same_class": (0.5, 1.0)}),
    "mtcnn_rnet": (48, 0.8, {"face_rate": (0.2, 0.8), "face_rate_positive": (0.8, 1.0)}),
    "mtcnn_onet": (48, 0.8, {"face_rate": (0.2, 0.8), "face_rate_positive": (0.8, 1.0)}),
}  # fmt: skip


def zero_backbone_conv(model: onnx.ModelProto, where: float = 0.2) -> onnx.ModelProto:
    """A copy with every weight of one early backbone Conv set to zero.

    The Conv a fifth of the way through the Convs in node order: on these models a plain
    (non-depthwise) Conv of the backbone that every output depends on. The Conv at the very
    middle can sit in a branch that legitimately matters little (PicoDet's middle Conv is a
    depthwise Conv of one head: zeroing it keeps detection F1 at 0.98).
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    # Weights are initializers (MTCNN, PicoDet) or Constant nodes (Paddle's PP-OCR exports).
    tensors = {t.name: t for t in out.graph.initializer}
    for node in out.graph.node:
        if node.op_type == "Constant":
            tensors[node.output[0]] = next(a.t for a in node.attribute if a.name == "value")
    convs = [n for n in out.graph.node if n.op_type == "Conv" and n.input[1] in tensors]
    conv = convs[int(len(convs) * where)]
    for name in conv.input[1:]:
        t = tensors[name]
        t.CopyFrom(numpy_helper.from_array(np.zeros_like(numpy_helper.to_array(t)), t.name))
    return out


@pytest.fixture(scope="module")
def fetched(real_records: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return real_records


@pytest.mark.parametrize("name", list(CASES))
def test_yardstick_sanity(fetched: dict[str, dict[str, Any]], name: str) -> None:
    count, broken_max, rates = CASES[name]
    path = fetched[name]["path"]
    ev = realdata.load(name, "eval", count)
    assert ev.x.shape == (count, *realdata.SPECS[name].shape) and ev.x.dtype == np.float32
    charset = T.rec_charset(path) if name == "ppocr_rec" else None
    ref = T.decide(name, T.run(path, ev.x), charset=charset)

    base = T.base_rates(name, ref, ev.meta)
    for key, (lo, hi) in rates.items():
        assert lo <= base[key] <= hi, (key, base)

    again = T.decide(name, T.run(path, ev.x), charset=charset)
    assert T.score(name, ref, again).value == 1.0

    broken = zero_backbone_conv(onnx.load(path)).SerializeToString()
    low = T.score(name, ref, T.decide(name, T.run(broken, ev.x), charset=charset))
    assert low.value <= broken_max, low


@pytest.mark.parametrize("name", ["ppocr_rec", "mtcnn_onet"])
def test_splits_are_disjoint_and_deterministic(fetched: dict[str, Any], name: str) -> None:
    calib = realdata.load(name, "calib", 6)
    ev = realdata.load(name, "eval", 6)
    assert np.array_equal(realdata.load(name, "calib", 6, rebuild=True).x, calib.x)
    assert not any(np.array_equal(a, b) for a in calib.x for b in ev.x)
    if name == "ppocr_rec":  # vocabulary words never cross splits (month names in dates may)
        months = {m.lower() for m in sources._MONTHS}

        def words(texts: np.ndarray) -> set[str]:
            found = {w.strip(".,:;!?").lower() for t in texts for w in str(t).split()}
            return {w for w in found if w.isalpha()} - months

        assert words(calib.meta["text"]) and words(ev.meta["text"])
        assert not words(calib.meta["text"]) & words(ev.meta["text"])


def test_benchmark_quick_run(fetched: dict[str, Any], tmp_path: Path) -> None:
    """benchmarks/real_quality.py end to end on the smallest model: cells land at their MACs."""
    out = tmp_path / "rq.json"
    methods = ["default", "no-refine", "uniform-l1", "onnxsim-l2"]
    cmd = [sys.executable, "benchmarks/real_quality.py", "--quick", "--only", "mtcnn_rnet",
           "--methods", *methods, "--json", str(out)]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    cells = {r["method"]: r for r in json.loads(out.read_text())["records"] if "target" in r}
    for method in ("default", "uniform-l1"):
        assert abs(cells[method]["macs_kept"] - 0.5) <= 0.02
        assert 0.0 <= cells[method]["value"] <= 1.0
    assert "no refine option" in cells["no-refine"].get("na", "no refine option")
    assert "value" in cells["onnxsim-l2"] or "na" in cells["onnxsim-l2"]
    assert "| mtcnn_rnet (face agreement) | default |" in done.stdout


def test_set_adds_prune_options_to_onnxprune_methods() -> None:
    """--set KEY=VALUE reaches every onnxprune method's options (JSON values), not onnxsim's;
    an unknown option is refused with the list of prune()'s options."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import real_quality as RQ
    finally:
        sys.path.pop(0)
    args = RQ.parse(["--only", "ppocr_cls", "--set", "allocation=global", "--set", "steps=2",
                     "--set", "ridge=1e-3"])
    assert args.set == {"allocation": "global", "steps": 2, "ridge": 1e-3}
    assert RQ.prune_options("default", args) == ({"allocation": "global", "steps": 2,
                                                   "ridge": 1e-3}, "")
    opts, _ = RQ.prune_options("no-refine", args)
    assert opts == {"refine": False, "allocation": "global", "steps": 2, "ridge": 1e-3}
    with pytest.raises(SystemExit):
        RQ.parse(["--set", "no_such_option=1"])
    with pytest.raises(SystemExit):
        RQ.parse(["--set", "allocation"])
