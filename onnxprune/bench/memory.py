"""Peak host memory of one onnxruntime session, measured in a fresh child process."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from onnxprune import ir
from onnxprune.bench.runtime import first_line, make_session

log = logging.getLogger(__name__)

MEMORY_METHOD = (
    "host RSS high-water (Linux VmHWM, reset via /proc/self/clear_refs) minus RSS before "
    "session creation + one run per batch size, in a fresh process per model after a warm-up "
    "session; about +-10% run to run"
)
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_WARMUP_MODEL = """
<ir_version: 8, opset_import: ["" : 13]>
warmup (float[1] x) => (float[1] y) { y = Identity(x) }
"""


def _proc_kb(key: str) -> int | None:
    try:
        found = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return None
    return int(found.group(1)) if found else None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # "5" resets VmHWM to the current RSS
    except OSError:
        return False
    return True


def peak_memory(
    path: Path, feeds: Sequence[Mapping[str, np.ndarray]], options: Mapping[str, object]
) -> int | None:
    """Bytes of RSS growth of a session on ``path`` running ``feeds``, or None if unmeasurable."""
    # A fresh process per model: in one process the first session pays onnxruntime's one-time
    # set-up and later ones reuse freed pages, which made identical models differ by 40%.
    if _proc_kb("VmHWM") is None:
        return None
    names = list(feeds[0])
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "feeds.npz"
        np.savez(npz, *[f[n] for f in feeds for n in names])
        cmd = [sys.executable, "-c", "from onnxprune.bench.memory import probe; probe()"]
        cmd += [str(path), str(npz), json.dumps({"names": names, **options})]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([_PACKAGE_ROOT, *sys.path])}
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            return int(done.stdout.split()[-1])
        except (subprocess.SubprocessError, OSError, ValueError, IndexError) as e:
            log.warning("peak memory not measured for %s: %s", path, first_line(e))
            return None


def probe() -> None:
    """Child-process side of ``peak_memory``: print the session's peak RSS growth in bytes."""
    path, npz, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    names = options.pop("names")
    with np.load(npz) as z:
        arrays = [z[f"arr_{i}"] for i in range(len(z.files))]
    feeds = [
        dict(zip(names, arrays[i : i + len(names)], strict=True))
        for i in range(0, len(arrays), len(names))
    ]
    warm = make_session(ir.parse_model(_WARMUP_MODEL))  # onnxruntime's globals
    warm.run(None, {"x": np.ones(1, np.float32)})
    _reset_peak()
    before = _proc_kb("VmRSS") or 0
    sess = make_session(path, **options)
    for f in feeds:
        sess.run(None, f)
    sys.stdout.write(f"{max(0, (_proc_kb('VmHWM') or 0) - before) * 1024}\n")
