"""The hierarchical allocation's currency: each group's energy share, weighed by its total
(estimated, or measured by ``--probe``: each group pruned alone, its output error measured)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import onnx
import onnx.parser
import pytest
import torch

import onnxprune
from onnxprune.analysis import analyze
from onnxprune.analysis.measure import measured, output_measures
from onnxprune.data import Dataset
from onnxprune.errors import InputError
from onnxprune.pruning import allocation as alloc_mod
from onnxprune.pruning import probe
from onnxprune.pruning.options import PruneOptions
from onnxprune.pruning.plan import make_plan
from onnxprune.pruning.recovery import finish
from onnxprune.pruning.targets import budget, estimated_weight, target_plan
from onnxprune.shim.module import Shim

SAMPLES = 8


def _analysis(singular_values: np.ndarray) -> SimpleNamespace:
    """What ``budget`` reads of a group's analysis: a full-rank, trusted spectrum."""
    n = len(singular_values)
    return SimpleNamespace(status="ok", singular_values=singular_values, rank=n, capacity=4 * n,
                           loss_scale=None)


def _spectrum(total: float, n: int = 8) -> np.ndarray:
    """Singular values whose energy λ = s²/(2N) decays linearly and sums to ``total``."""
    lam = np.linspace(2.0, 0.25, n)
    lam *= total / lam.sum()
    return np.sqrt(lam * 2 * SAMPLES)


@pytest.mark.parametrize("power", [0.0, 0.5, 1.0])
def test_losses_are_the_energy_share_times_the_total_to_the_power(power: float) -> None:
    wd = alloc_mod.Widths(8, 1)
    small, large = (budget(g, wd, _analysis(_spectrum(t)), SAMPLES, power)
                    for g, t in ((0, 0.01), (1, 100.0)))
    assert small is not None and large is not None
    share = np.linspace(2.0, 0.25, 8) / np.linspace(2.0, 0.25, 8).sum()
    np.testing.assert_allclose(small.losses, share * 0.01 ** power, rtol=1e-9)
    np.testing.assert_allclose(large.losses, share * 100.0 ** power, rtol=1e-9)
    if power == 1.0:  # the absolute estimate: ½·s²/N per direction
        np.testing.assert_allclose(large.losses, _spectrum(100.0) ** 2 / (2 * SAMPLES))


def _twin_chain() -> onnxprune.Model:
    """Two parallel branches of 16 channels with the same MACs, summed at the output."""
    model = onnx.parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[1, 4, 8, 8] x) => (float[1, 4, 8, 8] y) {
        a = Conv <pads = [1, 1, 1, 1]> (x, wa)
        ra = Relu (a)
        ya = Conv (ra, va)
        b = Conv <pads = [1, 1, 1, 1]> (x, wb)
        rb = Relu (b)
        yb = Conv (rb, vb)
        y = Add (ya, yb)
    }
    """)
    rng = np.random.default_rng(0)
    for i, node in enumerate(model.graph.node):
        node.name = f"{node.op_type}_{i}"
    for name, shape in (("wa", (16, 4, 3, 3)), ("va", (4, 16, 1, 1)),
                        ("wb", (16, 4, 3, 3)), ("vb", (4, 16, 1, 1))):
        model.graph.initializer.append(onnx.numpy_helper.from_array(
            rng.standard_normal(shape).astype(np.float32), name))
    return onnxprune.load(model)


def _widths(power: float) -> tuple[int, int]:
    """Widths of the (small-loss, large-loss) branches at half the MACs."""
    model = _twin_chain()
    cg = model.groups
    groups = [g for g in cg.groups if g.prunable and g.size == 16]
    assert len(groups) == 2
    cost = alloc_mod.CostModel(cg, "macs", model.cost.macs)
    wd = alloc_mod.Widths(16, 1)
    totals = (0.5, 1.0)
    budgets = [budget(g.id, wd, _analysis(_spectrum(t, 16)), SAMPLES, power)
               for g, t in zip(groups, totals, strict=True)]
    alloc = alloc_mod.hierarchical(cost, [b for b in budgets if b is not None], 0.5, "macs")
    return tuple(alloc.widths.get(g.id, 16) for g in groups)  # type: ignore[return-value]


def test_power_zero_treats_groups_alike_and_power_one_spares_the_one_the_outputs_need() -> None:
    alike = _widths(0.0)
    assert abs(alike[0] - alike[1]) <= 1  # same share spectra, same costs: same widths
    half, full = _widths(0.5), _widths(1.0)
    # the branch the outputs depend on less gives up more channels, the more so at power 1
    assert full[0] < half[0] < alike[0] and alike[1] < half[1] < full[1]


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_energy_power_out_of_range_is_refused_with_the_fix(bad: float) -> None:
    with pytest.raises(InputError, match="--energy-power .*between 0 .* and 1"):
        PruneOptions.of(None, target_macs=0.5, energy_power=bad).resolved(has_data=True)


def test_the_plan_records_the_power() -> None:
    model = _twin_chain()
    data = np.random.default_rng(1).standard_normal((16, 4, 8, 8)).astype(np.float32)
    res = onnxprune.prune(model, target_macs=0.6, data={"x": data}, energy_power=1.0,
                          round_to=1)
    assert res.plan.method["energy_power"] == 1.0


# -- measured weights (--probe) ------------------------------------------------------------

def test_a_measured_scale_replaces_the_estimate_in_the_budget() -> None:
    wd = alloc_mod.Widths(8, 1)
    a = _analysis(_spectrum(4.0))
    plain = budget(0, wd, a, SAMPLES, 0.5)
    a.loss_scale = 7.0
    probed = budget(0, wd, a, SAMPLES, 0.5)
    assert plain is not None and probed is not None
    share = np.linspace(2.0, 0.25, 8) / np.linspace(2.0, 0.25, 8).sum()
    np.testing.assert_allclose(plain.losses, share * 4.0 ** 0.5, rtol=1e-9)
    np.testing.assert_allclose(probed.losses, share * 7.0, rtol=1e-9)


def _setup() -> tuple[onnxprune.Model, Dataset, object]:
    model = _twin_chain()
    rng = np.random.default_rng(1)
    data = Dataset({"x": rng.standard_normal((48, 4, 8, 8)).astype(np.float32)})
    return model, data, analyze(model, data, estimate=False)


def test_unprobed_groups_get_the_estimate_times_the_median_conversion() -> None:
    _, _, an = _setup()
    gids = [g.id for g in an.groups if g.rank]
    assert len(gids) == 2
    est = {g: estimated_weight(an.group(g), an.samples, 0.5) for g in gids}
    out = probe._with_scales(an, {gids[0]: 3.0 * est[gids[0]]}, 0.5)
    assert out.probed == 1
    assert out.group(gids[0]).loss_scale == pytest.approx(3.0 * est[gids[0]])
    assert out.group(gids[1]).loss_scale == pytest.approx(3.0 * est[gids[1]])
    assert an.group(gids[0]).loss_scale is None  # the input analysis is not changed


def test_the_probe_measures_the_group_pruned_alone_as_the_prune_would() -> None:
    model, data, an = _setup()
    opts = PruneOptions(target_macs=0.5, round_to=1, probe=True).resolved(has_data=True)
    first, _ = target_plan(model, 0.5, opts, an, guard=False)
    probed = probe.calibrate(model, an, first, opts, data)
    g = next(g for g in first.groups if 0 < len(g.keep) < g.size)
    share = probe.energy_share(an.group(g.id), g.size, len(g.keep), an.samples)
    # The same group pruned alone by the pipeline (compensation and refinement), measured
    # independently on the probe's samples in the output-aware measure.
    alone = finish(model, make_plan(model.groups, {g.id: list(g.keep)}), opts, an, None, [],
                   data)
    idx = np.linspace(0, len(data) - 1, probe.SAMPLES).round().astype(int)
    feeds = {"x": torch.from_numpy(data.inputs["x"][idx])}
    ref_shim, new_shim = Shim(model.proto), Shim(alone.model)
    ms = output_measures(ref_shim, data.subset(idx), 1, {})
    with torch.no_grad():
        ref = measured(ms, ref_shim(feeds), {})[0].double()
        new = measured(ms, new_shim(feeds), {})[0].double()
    err = 0.5 * float((new - ref).pow(2).sum()) / len(idx)
    assert share > probe.MIN_SHARE
    assert probed.group(g.id).loss_scale == pytest.approx(err / share, rel=1e-3)


def test_prune_with_probe_reallocates_and_says_so() -> None:
    model, data, an = _setup()
    plain = onnxprune.prune(model, target_macs=0.5, data=data, analysis=an, round_to=1)
    probed = onnxprune.prune(model, target_macs=0.5, data=data, analysis=an, round_to=1,
                             probe=True)
    assert not any("--probe" in n for n in plain.notes)
    assert any("--probe: 2 of the 2 group(s)" in n for n in probed.notes)
    assert abs(probed.after.macs / probed.before.macs - 0.5) <= alloc_mod.TOLERANCE
    # the final widths are the allocation on the measured scales
    opts = PruneOptions(target_macs=0.5, round_to=1, probe=True).resolved(has_data=True)
    first, _ = target_plan(model, 0.5, opts, an, guard=False)
    again, _ = target_plan(model, 0.5, opts, probe.calibrate(model, an, first, opts, data))
    assert probed.plan.keep() == again.keep()
    assert probed.plan.method["probed"] == 2 and plain.plan.method["probed"] == 0
    assert all("loss_scale" in g.info for g in probed.plan.groups)


@pytest.mark.parametrize("flag", [[], ["--probe"]], ids=["default", "probe"])
def test_cli_flag_reaches_the_options(flag: list[str]) -> None:
    import argparse

    from onnxprune.commands import prune as cmd

    parser = argparse.ArgumentParser()
    cmd.register(parser.add_subparsers())
    args = parser.parse_args(["prune", "m.onnx", "-o", "o.onnx", "--target-macs", "0.5", *flag])
    assert cmd.options_from(args).probe is bool(flag)


@pytest.mark.parametrize("kw", [dict(target_latency=0.5), dict(ratio=0.3),
                                dict(target_macs=0.5, allocation="uniform"),
                                dict(target_macs=0.5, compensate=False)],
                         ids=["latency", "ratio", "uniform", "no-compensation"])
def test_probe_where_it_cannot_act_is_refused_with_the_fix(kw: dict) -> None:
    with pytest.raises(InputError, match="--probe .*drop --probe"):
        PruneOptions(probe=True, **kw).resolved(has_data=True)
