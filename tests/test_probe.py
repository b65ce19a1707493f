"""Measured loss scales (``--probe``): each group pruned alone, its output error measured."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import onnxprune
from onnxprune.analysis import analyze
from onnxprune.analysis.measure import measured, output_measures
from onnxprune.data import Dataset
from onnxprune.pruning import allocation as alloc_mod
from onnxprune.pruning import probe
from onnxprune.pruning.options import PruneOptions
from onnxprune.pruning.plan import make_plan
from onnxprune.pruning.recovery import finish
from onnxprune.pruning.targets import budget, estimated_weight, target_plan
from onnxprune.shim.module import Shim
from tests.test_allocation_power import SAMPLES, _analysis, _spectrum, _twin_chain


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
