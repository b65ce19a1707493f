"""Transformer exports (both exporters): heads and FFN prunable, exact against the oracle."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import onnxprune
from onnxprune import ir
from onnxprune.pruning.allocation import TOLERANCE
from onnxprune.cli import main
from onnxprune.data import load_data
from onnxprune.surgery import apply_plan
from onnxprune.testing import EXPORTERS, oracle
from onnxprune.testing.transformers import EMBED, FFN, HEADS, TRANSFORMERS, export_transformer

CASES = [
    pytest.param(name, exporter, id=f"{name}-{exporter}")
    for name in TRANSFORMERS
    for exporter in EXPORTERS
]
# (heads groups, FFN groups): the residual stream through LayerNorm stays a barrier.
GROUPS = {"mha": (1, 0), "encoder_layer": (1, 1), "vit": (2, 2), "bert": (2, 2)}


@pytest.fixture(scope="session")
def transformer(onnx_cache_dir: Path) -> Callable[[str, str], onnxprune.Model]:
    """``transformer(name, exporter)``: the loaded export, exported once per session."""
    return lambda name, exporter: onnxprune.load(
        export_transformer(name, exporter, onnx_cache_dir)
    )


def _samples(name: str, n: int) -> dict[str, np.ndarray]:
    parts = [TRANSFORMERS[name].example(seed=s) for s in range(n)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _error(model: onnxprune.Model, pruned, plan: dict[int, list[int]], name: str) -> float:  # type: ignore[no-untyped-def]
    feeds = TRANSFORMERS[name].example(seed=7)
    want = oracle.run(oracle.zeroed(model, plan), feeds)
    return oracle.max_rel_error(oracle.run(pruned, feeds), want)


@pytest.mark.parametrize(("name", "exporter"), CASES)
def test_heads_and_ffn_are_prunable(transformer, name: str, exporter: str) -> None:  # type: ignore[no-untyped-def]
    model = transformer(name, exporter)
    prunable = [g.size for g in model.groups.groups if g.prunable]
    n_heads, n_ffn = GROUPS[name]
    assert sorted(prunable) == sorted([HEADS] * n_heads + [FFN] * n_ffn + [EMBED] * (name == "mha"))
    assert onnxprune.inspect(model).prunable_share >= 0.9


@pytest.mark.parametrize(("name", "exporter"), CASES)
def test_exact_against_zeroed_head_oracle(transformer, name: str, exporter: str) -> None:  # type: ignore[no-untyped-def]
    model = transformer(name, exporter)
    plan = oracle.every_other_plan(model, share=0.3, seed=1)
    pruned = apply_plan(model, plan)
    assert _error(model, pruned, plan, name) <= 1e-5
    # The heads really went: the pruned model differs from the original.
    feeds = TRANSFORMERS[name].example(seed=7)
    assert oracle.max_rel_error(oracle.run(pruned, feeds), oracle.run(model.proto, feeds)) > 1e-3


def _npz(name: str, folder: Path, n: int = 16) -> Path:
    path = folder / f"{name}.npz"
    np.savez(path, **_samples(name, n))
    return path


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", ["vit", "bert"])
def test_target_macs_by_heads_matches_oracle(  # type: ignore[no-untyped-def]
    transformer, tmp_path: Path, name: str, exporter: str
) -> None:
    # FFN groups excluded, so that reaching 0.7 of the MACs takes heads.
    model = transformer(name, exporter)
    ffn = [str(g.id) for g in model.groups.groups if g.prunable and g.size == FFN]
    data = load_data(_npz(name, tmp_path), ir.io_specs(model.proto), model.input_shapes)
    result = onnxprune.prune(
        model, target_macs=0.7, data=data, exclude=ffn, compensate=False
    )
    plan = result.plan.keep()
    assert len(plan) == 2 and all(len(k) < HEADS for k in plan.values())  # heads of both layers
    assert result.after.macs <= (0.7 + TOLERANCE) * result.before.macs
    assert _error(model, result.model, plan, name) <= 1e-5


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_cli_prunes_vit_with_data(tmp_path: Path, onnx_cache_dir: Path, exporter: str) -> None:
    src = export_transformer("vit", exporter, onnx_cache_dir)
    out = tmp_path / "vit-pruned.onnx"
    argv = ["prune", str(src), "-o", str(out), "--target-macs", "0.7",
            "--data", str(_npz("vit", tmp_path))]  # fmt: skip
    assert main(argv) == 0
    before, after = onnxprune.load(src).cost.macs, onnxprune.load(out).cost.macs
    assert after <= (0.7 + TOLERANCE) * before


@pytest.mark.real
def test_paddle_svtr_mixer_heads_are_exact(real_records: dict[str, dict[str, object]]) -> None:
    # PP-OCRv4 recogniser: fused QKV reshaped to [B, T, 3, heads, head_dim], Q/K/V sliced.
    rec = real_records["ppocr_rec"]
    shapes = ir.parse_input_shapes(rec["input_shapes"])  # type: ignore[arg-type]
    model = onnxprune.load(str(rec["path"]), input_shapes=shapes)
    roots = (("p2o.MatMul.0",), ("p2o.MatMul.12",))
    heads = [g for g in model.groups.groups if g.root_nodes in roots]
    assert [(g.size, g.prunable) for g in heads] == [(8, True), (8, True)]
    plan = {heads[0].id: [0, 2, 3, 5, 6], heads[1].id: [1, 2, 4, 7]}
    feeds = oracle.random_feeds(model, seed=2)
    got = oracle.run(apply_plan(model, plan), feeds)
    want = oracle.run(oracle.zeroed(model, plan), feeds)
    assert oracle.max_rel_error(got, want, floor=1.0) <= 1e-5
