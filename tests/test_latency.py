"""Latency-aware pruning: the grid rule, the latency cost on a synthetic table, the cache, and
the speed check of ``prune`` (every measurement monkeypatched: no timing in tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import pytest

import onnxprune
from onnxprune.bench.speed import SpeedCheck
from onnxprune.cli import main
from onnxprune.commands import prune as prune_cmd
from onnxprune.data import Dataset
from onnxprune.pruning import allocation as alloc_mod
from onnxprune.pruning import cost_model, grid, latency
from onnxprune.pruning.latency import Curve, LatencyTable
from onnxprune.pruning.latency_cost import LatencyCost, interpolate
from onnxprune.pruning.options import PruneOptions
from onnxprune.pruning.targets import target_plan

MODELS = Path(__file__).resolve().parents[1] / "models"
AVX512 = frozenset({"fpu", "avx", "avx2", "avx512f"})


def _parsed(text: str, weights: dict[str, tuple[int, ...]]) -> onnxprune.Model:
    """A model from ONNX text, its nodes named, its weights seeded normal."""
    rng = np.random.default_rng(0)
    model = onnx.parser.parse_model(text)
    for i, node in enumerate(model.graph.node):
        node.name = f"{node.op_type}_{i}"
    for name, shape in weights.items():
        model.graph.initializer.append(onnx.numpy_helper.from_array(
            rng.standard_normal(shape).astype(np.float32), name))
    return onnxprune.load(model)


def _chain() -> onnxprune.Model:
    """Conv 3->64, Relu, Conv 64->64, Relu, Conv 64->8: two prunable groups of 64."""
    return _parsed("""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[1, 3, 8, 8] x) => (float[1, 8, 8, 8] y) {
        a = Conv <pads = [1, 1, 1, 1]> (x, w1)
        ra = Relu (a)
        b = Conv <pads = [1, 1, 1, 1]> (ra, w2)
        rb = Relu (b)
        y = Conv (rb, w3)
    }
    """, {"w1": (64, 3, 3, 3), "w2": (64, 64, 3, 3), "w3": (8, 64, 1, 1)})


def _table(model: onnxprune.Model, *, steps: bool = True) -> LatencyTable:
    """Synthetic curves: 1 ms per 16 output channels (flat between steps when ``steps``)."""
    curves = {}
    for node in model.groups.ctx.graph.nodes:
        if node.op != "Conv":
            continue
        w = model.groups.ctx.const(node.inputs[1].name)
        c_out, c_in = int(w.shape[0]), int(w.shape[1])
        outs = tuple((c, float(np.ceil(c / 16)) if steps else c / 16) for c in (16, 32, 48, 64)
                     if c <= c_out) or ((c_out, 1.0),)
        ins = tuple((c, float(np.ceil(c / 16)) * outs[-1][1] / np.ceil(c_in / 16))
                    for c in (16, 32, 48, 64) if c <= c_in) or ((c_in, outs[-1][1]),)
        curves[node.name] = Curve(c_in, c_out, outs, ins)
    total = sum(c.full_ms for c in curves.values())
    return LatencyTable("k", {"provider": "cpu", "threads": 1}, total, curves)


# -- the snapping rule ---------------------------------------------------------------------------
@pytest.mark.parametrize(("flags", "provider", "block"), [
    (AVX512, "cpu", 16), (frozenset({"avx", "avx2"}), "cpu", 8), (frozenset({"avx"}), "cpu", 8),
    (frozenset({"neon", "asimd"}), "cpu", 4), (AVX512, "cuda", 8),
])
def test_block_size_follows_the_vector_width(flags: frozenset[str], provider: str,
                                             block: int) -> None:
    assert grid.block_size(provider, flags) == block


def test_auto_tries_the_block_then_halves_it() -> None:
    assert grid.candidates("auto", "cpu", AVX512) == (16, 8, 4, 2, 1)
    assert grid.candidates(8, "cpu", AVX512) == (8,)
    assert grid.parse_round_to("AUTO") == "auto"
    assert grid.parse_round_to("4") == 4
    with pytest.raises(ValueError):
        grid.parse_round_to("0")


def test_auto_widths_are_on_the_grid_and_land_on_the_macs_target(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grid, "cpu_flags", lambda: AVX512)
    model = _chain()
    opts = PruneOptions(target_macs=0.56, allocation="uniform", criterion="l1",
                        compensate=False).resolved(has_data=False)
    plan, alloc = target_plan(model, 0.56, opts, None)  # 48 of 64 channels: 0.573 of the MACs
    assert alloc.widths == {0: 48, 1: 48}
    assert abs(alloc.estimate - 0.56) <= alloc_mod.TOLERANCE
    assert plan.method["round_to"] == 16


def test_auto_relaxes_the_grid_when_the_target_needs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grid, "cpu_flags", lambda: AVX512)
    model = _chain()
    opts = PruneOptions(target_macs=0.2, allocation="uniform", criterion="l1",
                        compensate=False).resolved(has_data=False)
    _, alloc = target_plan(model, 0.2, opts, None)
    assert abs(alloc.estimate - 0.2) <= alloc_mod.TOLERANCE
    assert any("round-to auto: on the latency-friendly grid of 16 channels the target "
               "cannot be reached" in n for n in alloc.notes)


# -- the latency cost on a synthetic table ------------------------------------------------------
def test_interpolate_is_monotone_and_anchored_at_full_width() -> None:
    lut = interpolate(((16, 2.0), (32, 1.0), (64, 4.0)), 64)  # noise: 16 slower than 32
    assert lut[64] == 4.0
    assert np.all(np.diff(lut) >= 0)
    assert lut[32] == pytest.approx(1.0)
    assert lut[48] == pytest.approx(2.5)


def test_latency_cost_prices_widths_from_the_curves() -> None:
    model = _chain()
    cost = LatencyCost(model.groups, _table(model))
    full = cost.sizes.copy()
    assert cost.cost(full) == pytest.approx(cost.total)
    # conv1 (3->64): 4 ms at 64 out; conv2 (64->64): 4 ms; conv3 (64->8): 1 ms at 64 in
    assert cost.total == pytest.approx(9.0)
    half = np.where(full == 64, 32.0, full)
    # conv1 2 ms, conv2 2 * 2 / 4 = 1 ms, conv3 1 * 2/4 = 0.5 ms
    assert cost.cost(half) == pytest.approx(3.5)
    saved = cost.savings(full, half)
    for i in range(len(full)):
        one = full.copy()
        one[i] = half[i]
        assert saved[i] == pytest.approx(cost.total - cost.cost(one))


def test_hierarchical_allocation_respects_a_latency_budget() -> None:
    model = _chain()
    cost = LatencyCost(model.groups, _table(model))
    budgets = []
    for g in model.groups.groups:
        if g.prunable and g.size == 64:
            wd = alloc_mod.Widths(g.size, 16, 16)
            losses = np.linspace(1.0, 0.1, g.size) / g.size
            budgets.append(alloc_mod.GroupBudget(g.id, wd, losses, 16, 16))
    assert len(budgets) == 2
    alloc = alloc_mod.hierarchical(cost, budgets, 0.5, "latency")
    widths = cost.sizes.copy()
    col = {gid: i for i, gid in enumerate(cost.ids)}
    for gid, w in alloc.widths.items():
        widths[col[gid]] = w
        assert w % 16 == 0
    assert cost.cost(widths) / cost.total <= 0.5 + alloc_mod.TOLERANCE
    assert alloc.estimate == pytest.approx(cost.cost(widths) / cost.total)


def test_target_latency_plan_spends_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grid, "cpu_flags", lambda: AVX512)
    model = _chain()
    cost = LatencyCost(model.groups, _table(model))
    opts = PruneOptions(target_latency=0.4, allocation="uniform", criterion="l1",
                        compensate=False).resolved(has_data=False)
    _, alloc = target_plan(model, 0.4, opts, None, cost=cost)
    assert alloc.metric == "latency"
    assert alloc.estimate <= 0.4 + alloc_mod.TOLERANCE
    assert all(w % 16 == 0 for w in alloc.widths.values())


# -- cache ----------------------------------------------------------------------------------------
def test_table_is_cached_by_model_and_settings(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setenv("ONNXPRUNE_CACHE", str(tmp_path))
    model = _chain()
    built: list[dict[str, object]] = []

    def fake_build(m: onnxprune.Model, *, key: str, settings: dict[str, object], step: int
                   ) -> LatencyTable:
        built.append(settings)
        t = _table(m)
        return LatencyTable(key, settings, t.model_ms, t.curves, build_s=1.5, measured=7)

    monkeypatch.setattr(latency, "build", fake_build)
    first = latency.table_for(model, threads=1)
    again = latency.table_for(model, threads=1)
    assert len(built) == 1 and not first.cached and again.cached
    assert again.curves == first.curves and again.model_ms == first.model_ms
    assert (tmp_path / "latency" / f"{first.key}.json").exists()
    other = latency.table_for(model, threads=2)
    assert len(built) == 2 and other.key != first.key
    assert set(built[0]) >= {"model_sha256", "provider", "threads", "cpu", "onnxruntime"}


# -- the speed check of prune ---------------------------------------------------------------------
def _fake_speed(original: float, pruned: float):  # type: ignore[no-untyped-def]
    def measure(*_a: object, **kw: object) -> SpeedCheck:
        return SpeedCheck(original, pruned, 5, int(kw.get("threads", 1)), "cpu")  # type: ignore[arg-type]
    return measure


ARGS = ["--target-macs", "0.5", "--allocation", "uniform", "--criterion", "l1",
        "--no-compensation"]


def test_slower_model_is_written_with_one_loud_line(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(prune_cmd, "speed_check", _fake_speed(1.0, 1.25))
    out = tmp_path / "p.onnx"
    assert main(["prune", str(MODELS / "digits_cnn.onnx"), "-o", str(out), *ARGS,
                 "--round-to", "1"]) == 0
    assert out.exists()
    got = capsys.readouterr()
    assert "speed-up 0.80x" in got.out
    loud = [ln for ln in got.err.splitlines() if "SLOWER" in ln]
    assert len(loud) == 1 and "--round-to auto" in loud[0]


@pytest.mark.parametrize(("pruned_ms", "floor", "hint"), [(1.0, "1.5", False), (1.9, "1.0", True)])
def test_faster_model_prints_speedup_without_warning(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        pruned_ms: float, floor: str, hint: bool) -> None:
    # 2x at about half the MACs is as fast as the MACs promise; 1.05x there gets the hint.
    monkeypatch.setattr(prune_cmd, "speed_check", _fake_speed(2.0, pruned_ms))
    assert main(["prune", str(MODELS / "digits_cnn.onnx"), "-o", str(tmp_path / "p.onnx"),
                 *ARGS, "--min-speedup", floor]) == 0
    got = capsys.readouterr()
    assert f"speed-up {2.0 / pruned_ms:.2f}x" in got.out and "SLOWER" not in got.err
    assert ("latency fell less than the MACs" in got.out) == hint


def test_min_speedup_refuses_to_write(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(prune_cmd, "speed_check", _fake_speed(1.0, 0.9))
    out = tmp_path / "p.onnx"
    assert main(["prune", str(MODELS / "digits_cnn.onnx"), "-o", str(out), *ARGS,
                 "--min-speedup", "1.2"]) == 3
    assert not out.exists()
    assert "below --min-speedup 1.2" in capsys.readouterr().err


def test_speedup_warning_text() -> None:
    slow = SpeedCheck(1.0, 2.0, 5, 1, "cpu")
    assert slow.speedup == 0.5 and slow.ratio == 2.0
    assert "--target-latency" in (slow.warning("auto") or "")
    assert SpeedCheck(2.0, 1.0, 5, 1, "cpu").warning(1) is None


def test_a_faster_model_short_of_its_macs_gets_a_hint() -> None:
    check = SpeedCheck(10.0, 6.5, 5, 1, "cpu", 0.65)  # 1.54x at half the MACs: 0.77
    line = check.hint(0.5) or ""
    assert "efficiency 0.77" in line and "--target-latency" in line and "--per-node" in line
    assert check.hint(0.7) is None  # 1.54x x 0.7 = 1.08: as fast as the MACs promise
    assert check.hint(None) is None
    assert SpeedCheck(1.0, 2.0, 5, 1, "cpu").hint(0.5) is None  # slower: the warning's job


def test_structure_hash_ignores_weight_values_not_shapes() -> None:
    model = _chain()
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    w = onnx.numpy_helper.to_array(proto.graph.initializer[0]) * 2.0
    proto.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(w, "w1"))
    assert latency.structure_hash(onnxprune.load(proto)) == latency.structure_hash(model)
    proto.graph.node[0].attribute[0].ints[:] = [0, 0, 0, 0]  # pads: other shapes
    assert latency.structure_hash(onnxprune.load(proto)) != latency.structure_hash(model)


def test_latency_target_is_re_aimed_at_the_measurements() -> None:
    from onnxprune.pruning.latency_target import Aim

    aim = Aim(0.5)
    assert aim.next() == 0.5
    aim.measured(0.5, 0.625)  # the table was optimistic: re-aim proportionally
    assert aim.next() == pytest.approx(0.4)
    aim.measured(0.4, 0.55)  # then by the secant through both tries
    assert aim.next() == pytest.approx(0.4 + (0.5 - 0.55) * (0.4 - 0.5) / (0.55 - 0.625))
    aim.measured(0.333, 0.51)
    assert aim.next() is None  # landed within 4 %
    done = Aim(0.5, corrections=1)
    done.next()
    done.measured(0.5, 0.7)
    done.next()
    done.measured(0.36, 0.6)
    assert done.next() is None  # out of corrections


def test_target_latency_prune_reports_predicted_and_measured(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from onnxprune.pruning import pipeline

    model = _chain()
    monkeypatch.setattr(latency, "table_for", lambda m, **kw: _table(m))
    measured = iter([0.6, 0.5])  # the first prune misses, the re-aimed one lands

    def fake(original: object, pruned: object, shapes: object, **kw: object) -> SpeedCheck:
        return SpeedCheck(10.0, 10.0 * next(measured), 5, 1, "cpu")

    monkeypatch.setattr(pipeline, "speed_check", fake)
    res = onnxprune.prune(model, target_latency=0.5, allocation="uniform", criterion="l1",
                          compensate=False)
    assert res.speed is not None and res.speed.ratio == pytest.approx(0.5)
    assert any(n.startswith("latency kept: predicted") and "measured 0.500" in n
               for n in res.notes)
    assert any("re-aimed" in n for n in res.notes)


def test_bench_per_node_lists_the_slowest_nodes_of_both_models(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _chain()
    original = tmp_path / "a.onnx"
    onnx.save(model.proto, str(original))
    pruned = tmp_path / "b.onnx"
    assert main(["prune", str(original), "-o", str(pruned), *ARGS, "--no-speed-check"]) == 0
    capsys.readouterr()
    assert main(["bench", str(original), str(pruned), "--per-node", "3", "--no-memory",
                 "--iterations", "3", "--warmup", "1"]) == 0
    out = capsys.readouterr().out
    assert "speed-up b=1" in out and "efficiency b=1" in out
    lines = out.split("per node (onnxruntime profiler")[1].splitlines()
    assert lines[1].split()[:2] == ["node", "op"]
    assert len(lines) == 1 + 1 + 3 + 1  # title, header, 3 nodes, total
    assert lines[-1].startswith("all nodes")


def test_uniform_lands_on_the_coarse_grid_by_moving_single_groups() -> None:
    model = _chain()
    cm = alloc_mod.CostModel(model.groups, "macs", model.cost.macs)
    allowed = {g.id: alloc_mod.Widths(g.size, 16, 16) for g in model.groups.groups
               if g.prunable and g.size == 64}
    # one ratio gives 48/48 (0.573) or 32/32 (0.264): 0.39 needs one group at 48, one at 32
    alloc = alloc_mod.uniform(cm, allowed, 0.39, "macs")
    assert sorted(alloc.widths.values()) == [32, 48]
    assert abs(alloc.estimate - 0.39) <= alloc_mod.TOLERANCE


def _stem_and_body() -> onnxprune.Model:
    """Three groups of 32: a stem at 32x32, then two at 16x16, with equal MACs in A, B, C."""
    return _parsed("""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[1, 8, 32, 32] x) => (float[1, 8, 16, 16] y) {
        a = Conv <pads = [1, 1, 1, 1]> (x, w1)
        ra = Relu (a)
        b = Conv <pads = [1, 1, 1, 1], strides = [2, 2]> (ra, w2)
        rb = Relu (b)
        c = Conv <pads = [1, 1, 1, 1]> (rb, w3)
        rc = Relu (c)
        y = Conv (rc, w4)
    }
    """, {"w1": (32, 8, 3, 3), "w2": (32, 32, 3, 3), "w3": (32, 32, 3, 3), "w4": (8, 32, 1, 1)})


def test_uniform_landing_brings_back_the_group_with_the_fewest_elements_per_mac() -> None:
    # All three at 16 keep 0.335 of the MACs; stepping one back to 32 lands at 0.58 (the
    # 32x32 stem: 32,768 more activation elements for 1.77 M MACs), 0.50 (b: 8,192 for
    # 1.18 M) or 0.42 (c: 8,192 for 0.62 M). At equal shares the landing picks by elements
    # moved per MAC: b (the stem is memory-bound: its latency does not follow its MACs).
    model = _stem_and_body()
    cm = alloc_mod.CostModel(model.groups, "macs", model.cost.macs)
    allowed = {g.id: alloc_mod.Widths(g.size, 16, 16) for g in model.groups.groups
               if g.prunable}
    assert len(allowed) == 3
    stem, b, c = sorted(allowed)
    touched = cost_model.touched(model.groups)
    col = {g.id: i for i, g in enumerate(model.groups.groups)}
    assert touched[col[stem]] == 4 * touched[col[b]] == 4 * touched[col[c]]
    alloc = alloc_mod.uniform(cm, allowed, 0.5, "macs", touched)
    assert alloc.widths == {stem: 16, c: 16}
    assert abs(alloc.estimate - 0.5) <= alloc_mod.TOLERANCE
    # Without the elements the first group of equal share (the stem) comes back first,
    # overshoots to 0.58, and the landing, crossing back, ends far below the target.
    blind = alloc_mod.uniform(cm, allowed, 0.5, "macs")
    assert blind.estimate < 0.5 - alloc_mod.TOLERANCE


# -- the grid's cost in estimated loss (round-to auto on narrow nets) ------------------------------
def _grid_step(model: onnxprune.Model, data: Dataset, target: float) -> int:
    from onnxprune.analysis import analyze

    an = analyze(model, data, estimate=False)
    opts = PruneOptions(target_macs=target).resolved(has_data=True)
    plan, _ = target_plan(model, target, opts, an)
    return int(plan.method["round_to"])


def test_auto_keeps_the_block_grid_where_it_costs_little(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grid, "cpu_flags", lambda: AVX512)
    models = Path(__file__).resolve().parents[1] / "models"
    model = onnxprune.load(models / "digits_resnet.onnx")
    calib = np.load(models / "digits_calib.npz")
    assert _grid_step(model, Dataset({"input": calib["input"][:128]}), 0.5) == 16


@pytest.mark.real
def test_auto_leaves_the_block_grid_on_a_narrow_net(real_records, monkeypatch) -> None:
    # MTCNN R-Net (28-128 channels): on the 16-grid its face decisions fell to 0.845 at 0.7
    # MACs (0.965 with exact widths, benchmarks/results/real_quality_2026-11-27.md).
    monkeypatch.setattr(grid, "cpu_flags", lambda: AVX512)
    rec = real_records["mtcnn_rnet"]
    model = onnxprune.load(rec["path"])
    calib = np.load(rec["calib"])
    step = _grid_step(model, Dataset({k: calib[k] for k in calib.files}), 0.7)
    assert step < 16
