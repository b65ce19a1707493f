"""Bad input to the CLI: exit code 2 (3 when nothing can be pruned), one error line, no writes."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper

import onnxprune
from onnxprune.cli import main

MODELS = Path(__file__).resolve().parents[1] / "models"
CNN = MODELS / "digits_cnn.onnx"
OTHER = MODELS / "digits_resnet.onnx"


@dataclass(frozen=True)
class Files:
    """A scratch folder holding a copy of the model, its plan and every bad input."""

    root: Path
    model: Path
    plan: Path

    @property
    def out(self) -> Path:
        return self.root / "out.onnx"


@pytest.fixture(scope="session")
def plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A valid plan for the CNN and one made for another model (saved once per session)."""
    folder = tmp_path_factory.mktemp("plans")
    out = {}
    for key, path in (("own", CNN), ("other", OTHER)):
        out[key] = folder / f"{key}.json"
        onnxprune.prune(onnxprune.load(path), ratio=0.3).plan.save(out[key])
    return out


@pytest.fixture
def files(tmp_path: Path, plans: dict[str, Path]) -> Files:
    model = tmp_path / "model.onnx"
    shutil.copy(CNN, model)
    data = model.read_bytes()
    (tmp_path / "truncated.onnx").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.onnx").write_text("this is not an ONNX model\n")
    png = b"\x89PNG\r\n\x1a\n" + np.random.default_rng(0).bytes(2048)
    (tmp_path / "image.onnx").write_bytes(png)
    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "folder.onnx").mkdir()
    (tmp_path / "link.onnx").symlink_to(model)
    shutil.copy(plans["own"], tmp_path / "plan.json")
    shutil.copy(plans["other"], tmp_path / "other_plan.json")
    (tmp_path / "corrupt_plan.json").write_text('{"format": "onnxprune-plan/1", "groups": [{"id"')
    plan = json.loads(plans["own"].read_text())
    plan["groups"][0]["keep"] = [0, 10_000]
    (tmp_path / "edited_plan.json").write_text(json.dumps(plan))
    return Files(tmp_path, model, tmp_path / "plan.json")


def _snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (folders as '<dir>')."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = "<dir>" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse errors exit from inside parse_args
        return int(e.code or 0)


# Each case: the model argument (a file name in the scratch folder) and extra arguments.
BAD_MODELS = {
    "missing-file": "nope.onnx",
    "directory": "folder.onnx",
    "empty-file": "empty.onnx",
    "truncated": "truncated.onnx",
    "text-file": "text.onnx",
    "png-bytes": "image.onnx",
}
BAD_OPTIONS: dict[str, list[str]] = {
    "unknown-input-name": ["--input-shapes", "images:1,1,8,8"],
    "malformed-input-shapes": ["--input-shapes", "input=1,1,8,8"],
    "non-numeric-input-shapes": ["--input-shapes", "input:1,1,x,8"],
    "zero-dim-input-shapes": ["--input-shapes", "input:1,1,0,8"],
    "wrong-rank-input-shapes": ["--input-shapes", "input:1,8,8"],
    "contradicting-input-shapes": ["--input-shapes", "input:1,3,8,8"],
}
BAD_OUTPUTS: dict[str, Callable[[Files], list[str]]] = {
    "output-folder-missing": lambda f: ["-o", str(f.root / "missing" / "out.onnx")],
    "output-is-input": lambda f: ["-o", str(f.model)],
    "output-is-input-relative": lambda f: ["-o", str(f.root / "." / "model.onnx")],
    "output-is-a-directory": lambda f: ["-o", str(f.root / "folder.onnx")],
    "output-is-a-link-to-input": lambda f: ["-o", str(f.root / "link.onnx")],
}
BAD_RATIOS = ["0", "1", "-0.1", "1.5", "nan", "abc"]
BAD_PLANS = {
    "plan-for-another-model": "other_plan.json",
    "corrupted-plan": "corrupt_plan.json",
    "missing-plan": "nope.json",
    "plan-with-index-out-of-range": "edited_plan.json",
    "plan-is-a-model": "model.onnx",
}


def _tail(command: str, f: Files) -> list[str]:
    """Arguments that make ``command`` valid apart from the model."""
    if command == "prune":
        return ["-o", str(f.out), "--ratio", "0.3"]
    if command == "apply":
        return [str(f.plan), "-o", str(f.out)]
    return []


def _cases() -> list[object]:
    cases: list[object] = []
    for command in ("inspect", "prune", "apply"):
        for name, model in BAD_MODELS.items():
            cases.append(pytest.param(command, lambda f, m=model, c=command: [
                c, str(f.root / m), *_tail(c, f)], id=f"{command}-{name}"))
        for name, opts in BAD_OPTIONS.items():
            cases.append(pytest.param(command, lambda f, o=opts, c=command: [
                c, str(f.model), *_tail(c, f), *o], id=f"{command}-{name}"))
    for command in ("prune", "apply"):
        for name, out in BAD_OUTPUTS.items():
            def argv(
                f: Files, c: str = command, o: Callable[[Files], list[str]] = out
            ) -> list[str]:
                extra = ["--ratio", "0.3"] if c == "prune" else [str(f.plan)]
                return [c, str(f.model), *extra, *o(f)]
            cases.append(pytest.param(command, argv, id=f"{command}-{name}"))
    for ratio in BAD_RATIOS:
        cases.append(pytest.param("prune", lambda f, r=ratio: [
            "prune", str(f.model), "-o", str(f.out), "--ratio", r], id=f"prune-ratio-{ratio}"))
    for name, plan in BAD_PLANS.items():
        cases.append(pytest.param("apply", lambda f, p=plan: [
            "apply", str(f.model), str(f.root / p), "-o", str(f.out)], id=f"apply-{name}"))
    return cases


@pytest.mark.parametrize(("command", "argv"), _cases())
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    command: str, argv: Callable[[Files], list[str]], files: Files,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = _snapshot(files.root)
    code = _run(argv(files))
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("onnxprune: error: ")
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert _snapshot(files.root) == before


@pytest.mark.parametrize("command", ["analyze", "prune"])
@pytest.mark.parametrize(("device", "says"), [
    ("cuda", "--device cuda: torch sees no CUDA GPU (torch "),
    ("cuda:1", "--device cuda:1: torch sees no CUDA GPU"),
    ("gpu", "--device gpu: not a torch device; use cpu or cuda"),
    ("mps", "--device mps: onnxprune runs its torch side on cpu or cuda"),
])
def test_unusable_device_exits_2_with_the_fix(
    command: str, device: str, says: str, files: Files, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "12.4")  # a CUDA build on a machine without GPU
    before = _snapshot(files.root)
    extra = ["-o", str(files.out), "--target-macs", "0.5"] if command == "prune" else []
    code = _run([command, str(files.model), "--data", str(MODELS / "digits_calib.npz"),
                 "--device", device, *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"onnxprune: error: {says}"), err
    assert not device.startswith("cuda") or "; use --device cpu" in err  # the fix
    assert _snapshot(files.root) == before


@pytest.mark.parametrize("command", ["prune", "apply"])
def test_valid_call_writes_the_output(
    command: str, files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    # Control for the cases above: the same arguments, made valid, do write a model.
    code = _run([command, str(files.model), *_tail(command, files)])
    assert (code, capsys.readouterr().err) == (0, "")
    assert onnx.load(str(files.out)).graph.node


def test_in_place_overwrites_the_input(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    before = files.model.read_bytes()
    code = _run(["prune", str(files.model), "-o", str(files.model), "--ratio", "0.3",
                 "--in-place"])
    assert (code, capsys.readouterr().err) == (0, "")
    assert files.model.read_bytes() != before
    assert sorted(p.name for p in files.root.iterdir() if p.name.startswith(".")) == []


def _all_barrier_model(path: Path) -> Path:
    proto = onnx.parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 13]>
    g (float[1,3,8,8] x) => (float[1,4,8,8] y, float[1,4,8,8] z) {
      [conv1] a = Conv (x, w1)
      [relu] y = Relu (a)
      [conv2] z = Conv (a, w2)
    }""")
    rng = np.random.default_rng(0)
    for name, shape in {"w1": (4, 3, 1, 1), "w2": (4, 4, 1, 1)}.items():
        proto.graph.initializer.append(numpy_helper.from_array(
            rng.standard_normal(shape).astype(np.float32), name))
    onnx.save(proto, str(path))
    return path


def test_model_where_every_group_is_a_barrier_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _all_barrier_model(tmp_path / "blocked.onnx")
    assert [g.prunable for g in onnxprune.load(model).groups.groups] == [False, False]
    before = _snapshot(tmp_path)
    code = _run(["prune", str(model), "-o", str(tmp_path / "out.onnx"), "--ratio", "0.5"])
    err = capsys.readouterr().err
    assert code == 3
    assert err.startswith("onnxprune: error: ") and err.count("\n") == 1
    assert _snapshot(tmp_path) == before


def test_cli_start_up_does_not_import_torch() -> None:
    """inspect/apply/bench and --help stay fast: torch loads only when analyze/prune run."""
    import subprocess
    import sys

    code = ("import sys, onnxprune.cli; onnxprune.cli.build_parser(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
