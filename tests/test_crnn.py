"""CRNN-style models (conv -> squeeze -> permute -> LSTM/GRU/RNN -> Linear -> CTC logits).

The conv backbone's channels are pruned up to the recurrent op's input weight; the model,
exported with both torch exporters, matches the zeroed-channel oracle and prunes to a MACs
target from data through the CLI.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import onnxprune
from onnxprune.cli import main
from onnxprune.metrics import RECURRENT_GATES, recurrent_macs
from onnxprune.report import inspect
from onnxprune.surgery import apply_plan
from onnxprune.testing import export_onnx, oracle
from onnxprune.testing.crnn import crnn_spec

# Every cell with squeeze(2); the flatten(1, 2) variant (a Reshape, computed from Shape slices
# by the legacy exporter) with the LSTM only.
CASES = [
    pytest.param(cell, flatten, exporter, id=f"{cell}{'-flatten' if flatten else ''}-{exporter}")
    for cell, flatten in (("LSTM", False), ("LSTM", True), ("GRU", False), ("RNN", False))
    for exporter in ("legacy", "dynamo")
]


@pytest.fixture(scope="module")
def crnn(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("crnn")
    cache: dict[tuple[str, bool, str], onnxprune.Model] = {}

    def get(cell: str, flatten: bool, exporter: str) -> onnxprune.Model:
        key = (cell, flatten, exporter)
        if key not in cache:
            spec = crnn_spec(cell, flatten=flatten)
            path = tmp / f"{spec.name}-{exporter}.onnx"
            export_onnx(spec.build(), spec.input_shape, path, dynamo=exporter == "dynamo")
            cache[key] = onnxprune.load(path)
        return cache[key]

    return get


def _recurrence_macs(model: onnxprune.Model) -> int:
    """MACs of the recurrences (H·Rᵀ): counted in the reachable nodes, but never pruned."""
    total = 0
    for node in model.proto.graph.node:
        if node.op_type in RECURRENT_GATES:
            x = model.shapes[node.input[0]]
            w = model.groups.ctx.const(node.input[1])
            assert w is not None
            total += recurrent_macs(node.op_type, x, w.shape)[1]
    return total


@pytest.mark.parametrize(("cell", "flatten", "exporter"), CASES)
def test_backbone_feeding_the_recurrent_op_is_prunable(
    crnn, cell: str, flatten: bool, exporter: str
) -> None:
    model = crnn(cell, flatten, exporter)
    report = inspect(model)
    assert report.prunable_share >= 0.95
    # Stricter: without the recurrence, which the hidden-size barrier keeps whole.
    assert (report.prunable_macs - _recurrence_macs(model)) / report.total_macs >= 0.95
    widths = sorted(g.channels for g in report.groups if g.prunable)
    if not (cell == "RNN" and exporter == "dynamo"):  # dynamo unrolls nn.RNN into MatMuls
        assert widths == [16, 32, 64, 64, 96]
        (last,) = [g for g in model.groups.groups if g.size == 96]
        assert [c.op for c in last.consumers] == [cell]


@pytest.mark.parametrize(("cell", "flatten", "exporter"), CASES)
def test_pruned_equals_zeroed_oracle(crnn, cell: str, flatten: bool, exporter: str) -> None:
    model = crnn(cell, flatten, exporter)
    plan = oracle.every_other_plan(model, share=0.3, seed=1)
    pruned = apply_plan(model, plan)
    feeds = oracle.random_feeds(model, seed=2)
    want = oracle.run(oracle.zeroed(model, plan), feeds)
    assert oracle.max_rel_error(oracle.run(pruned, feeds), want) <= 1e-5
    before, after = model.cost.macs, onnxprune.load(pruned).cost.macs
    assert after < 0.75 * before


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_cli_prunes_to_a_macs_target_with_data(
    crnn, tmp_path: Path, capsys: pytest.CaptureFixture[str], exporter: str
) -> None:
    model = crnn("LSTM", False, exporter)
    src, out, data = tmp_path / "crnn.onnx", tmp_path / "pruned.onnx", tmp_path / "x.npz"
    onnx.save(model.proto, src)
    x = np.random.default_rng(0).standard_normal((16, 3, 32, 64)).astype(np.float32)
    np.savez(data, input=x)
    code = main(["prune", str(src), "-o", str(out), "--target-macs", "0.7", "--data", str(data)])
    assert code == 0, capsys.readouterr().err
    pruned = onnxprune.load(out)
    ratio = pruned.cost.macs / model.cost.macs
    assert 0.6 <= ratio <= 0.72
    (lstm,) = [n for n in pruned.proto.graph.node if n.op_type == "LSTM"]
    w = pruned.groups.ctx.const(lstm.input[1])
    assert w is not None and w.shape[:2] == (2, 4 * 32) and w.shape[2] <= 96


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_analysis_reads_the_lstm_input_weight(crnn, exporter: str) -> None:
    from onnxprune.analysis import analyze
    from onnxprune.data import Dataset

    model = crnn("LSTM", False, exporter)
    x = np.random.default_rng(0).standard_normal((6, 3, 32, 64)).astype(np.float32)
    result = analyze(model, Dataset({"input": x}), directions=2, estimate=False)
    (last,) = [g for g in result.groups if g.channels == 96]
    assert not last.fallback
    assert [c.op for c in last.consumers] == ["LSTM"]
    # rows: samples x directions x (2 directions x 4 gates x 32 hidden) gate rows
    assert last.rows == 6 * 2 * 256
