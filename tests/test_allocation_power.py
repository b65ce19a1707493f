"""The hierarchical allocation's currency: each group's energy share, weighed by its total."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import onnx
import onnx.parser
import pytest

import onnxprune
from onnxprune.errors import InputError
from onnxprune.pruning import allocation as alloc_mod
from onnxprune.pruning.options import PruneOptions
from onnxprune.pruning.targets import budget

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
