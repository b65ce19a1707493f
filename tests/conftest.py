"""Shared pytest fixtures: one torch thread, a session-wide cache of exported architectures."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from onnxprune.pruning import grid_guard
from onnxprune.testing import exported_path

# Results in tests must not depend on timing: the grid guard (which times two structures when
# round-to auto's loss rule leaves the channel block) keeps the loss rule's grid here, in this
# process and in the CLI subprocesses it starts. tests/test_grid_guard.py tests the guard itself
# with a monkeypatched measurement.
os.environ[grid_guard.SWITCH] = "0"


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    """One torch thread for the whole session: the test models are tiny, and on a small shared
    machine thread hand-offs cost more than they give."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def onnx_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory holding every architecture export of this test session."""
    return tmp_path_factory.mktemp("onnx_archs")


@pytest.fixture(scope="session")
def arch_model(onnx_cache_dir: Path) -> Callable[[str, str], Path]:
    """Return ``arch_model(name, exporter) -> Path``, exporting each pair once per session."""

    def get(name: str, exporter: str) -> Path:
        return exported_path(name, exporter, onnx_cache_dir)

    return get


@pytest.fixture(scope="session")
def real_records() -> dict[str, dict[str, object]]:
    """Records of the real models (tools/fetch_models.py --json), fetched once per session."""
    import json
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "tools/fetch_models.py", "--json"],
        cwd=repo, capture_output=True, text=True, timeout=900, check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"fetch_models.py exited {proc.returncode}:\n{proc.stderr}", pytrace=False)
    return {r["name"]: r for r in json.loads(proc.stdout)}


@pytest.fixture(autouse=True)
def _no_timing_in_prune(monkeypatch: pytest.MonkeyPatch) -> None:
    """``prune`` times the pruned model against the original before writing; tests must not
    depend on a shared machine's timing, so the measurement reports equal latencies (tests of
    the speed check itself patch it again)."""
    from onnxprune.bench.speed import SpeedCheck
    from onnxprune.commands import prune as prune_cmd
    from onnxprune.pruning import pipeline

    def equal(*_args: object, threads: int = 1, provider: str = "cpu", **_kw: object
              ) -> SpeedCheck:
        return SpeedCheck(1.0, 1.0, 5, threads, provider)

    monkeypatch.setattr(prune_cmd, "speed_check", equal)
    monkeypatch.setattr(pipeline, "speed_check", equal)
