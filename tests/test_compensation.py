"""Compensation with the joint intercept and sequential refinement on planted channels.

A producer of 9 channels: 0-4 independent, 5 constant (w = 0, b = 0.7), 6 a duplicate of 0,
7 affine in 1 (2·c1 + 0.3), 8 linear in 2 and 3. Keeping 0-4 must reproduce the original
exactly through every kind of consumer, one-shot and refined.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import onnxprune
from onnxprune.analysis import analyze
from onnxprune.data import Dataset
from onnxprune.pruning.compensation import ConsumerUpdate, joint_coefficients
from onnxprune.pruning.options import PruneOptions
from onnxprune.pruning.pipeline import _finish
from onnxprune.pruning.plan import make_plan
from onnxprune.testing.export import export_onnx
from onnxprune.testing.oracle import run

C, KEEP = 9, 5


def _plant(w: torch.Tensor, b: torch.Tensor, which: str) -> None:
    """Make channel KEEP.. of (w, b) the planted kind; the others stay random."""
    with torch.no_grad():
        if which == "constant":
            w[5], b[5] = 0.0, 0.7
        elif which == "duplicate":
            w[5], b[5] = w[0], b[0]
        elif which == "affine":
            w[5], b[5] = 2 * w[1], 2 * b[1] + 0.3
        elif which == "linear":
            w[5], b[5] = w[2] - 0.5 * w[3], b[2] - 0.5 * b[3]
        w[6:], b[6:] = w[4], b[4]  # the rest copies of a kept channel (a duplicate each)


class _Conv(torch.nn.Module):
    def __init__(self, which: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.p = torch.nn.Conv2d(3, C, 3, padding=1)
        self.c = torch.nn.Conv2d(C, 4, 3)  # no padding: the intercept is exact everywhere
        _plant(self.p.weight, self.p.bias, which)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(self.p(x))


class _Depthwise(torch.nn.Module):
    """producer -> depthwise (shares the group) -> 1x1 consumer; planted after the depthwise."""

    def __init__(self, which: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.p = torch.nn.Conv2d(3, C, 1)
        self.d = torch.nn.Conv2d(C, C, 3, padding=1, groups=C)
        self.c = torch.nn.Conv2d(C, 4, 1)
        with torch.no_grad():
            pw, pb, dw, db = self.p.weight, self.p.bias, self.d.weight, self.d.bias
            if which == "constant":
                dw[5], db[5] = 0.0, 0.7
            elif which == "duplicate":
                pw[5], pb[5], dw[5], db[5] = pw[0], pb[0], dw[0], db[0]
            elif which == "affine":
                pw[5], pb[5], dw[5], db[5] = 2 * pw[1], 2 * pb[1], dw[1], 2 * db[1] + 0.3
            else:  # 2 and 3 share a kernel, so 5 = 2 - 0.5·3 after the depthwise too
                dw[3] = dw[2]
                pw[5], pb[5] = pw[2] - 0.5 * pw[3], pb[2] - 0.5 * pb[3]
                dw[5], db[5] = dw[2], db[2] - 0.5 * db[3]
            pw[6:], pb[6:], dw[6:], db[6:] = pw[4], pb[4], dw[4], db[4]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(self.d(self.p(x)))


class _Flatten(torch.nn.Module):
    def __init__(self, which: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.p = torch.nn.Conv2d(3, C, 3, padding=1, stride=2)
        self.fc = torch.nn.Linear(C * 16, 5)
        _plant(self.p.weight, self.p.bias, which)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.p(x), 1))


class _Transpose(torch.nn.Module):
    def __init__(self, which: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.p = torch.nn.Conv2d(3, C, 3, padding=1)
        self.t = torch.nn.ConvTranspose2d(C, 4, 2, stride=2)
        _plant(self.p.weight, self.p.bias, which)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.t(self.p(x))


KINDS = ("constant", "duplicate", "affine", "linear")
CONSUMERS = {"conv": _Conv, "depthwise": _Depthwise, "flatten_gemm": _Flatten,
             "conv_transpose": _Transpose}


def _prune(tmp_path: Path, module: torch.nn.Module, *, refine: bool, compensate: bool = True
           ) -> tuple[np.ndarray, np.ndarray, onnxprune.PruneResult]:
    path = export_onnx(module.eval(), (1, 3, 8, 8), tmp_path / "m.onnx", dynamo=False)
    model = onnxprune.load(path, input_shapes={"input": (1, 3, 8, 8)})
    rng = np.random.default_rng(1)
    data = Dataset({"input": rng.normal(size=(32, 3, 8, 8)).astype(np.float32)})
    an = analyze(model, data, estimate=False)
    group = next(g for g in model.groups.groups if g.size == C)
    plan = make_plan(model.groups, {group.id: list(range(KEEP))})
    opts = PruneOptions(ratio=0.5, criterion="l1", compensate=compensate, refine=refine,
                        ridge=1e-9).resolved(has_data=True)
    result = _finish(model, plan, opts, an, None, [], data)
    feeds = {"input": rng.normal(size=(1, 3, 8, 8)).astype(np.float32)}
    (ref,) = run(model.proto, feeds)
    (got,) = run(result.model, feeds)
    return ref, got, result


@pytest.mark.parametrize("refine", [False, True], ids=["one-shot", "refined"])
@pytest.mark.parametrize("which", KINDS)
@pytest.mark.parametrize("consumer", sorted(CONSUMERS))
def test_planted_channel_is_exact(tmp_path: Path, consumer: str, which: str,
                                  refine: bool) -> None:
    ref, got, result = _prune(tmp_path, CONSUMERS[consumer](which), refine=refine)
    err = np.abs(got - ref).max() / np.abs(ref).max()
    comp = result.compensation
    assert comp is not None and comp.compensated and not comp.skipped
    phased = consumer == "conv_transpose" and which in ("constant", "affine")
    if phased:  # a per-channel bias cannot follow per-phase constants: best uniform value
        _, plain, _ = _prune(tmp_path, CONSUMERS[consumer](which), refine=False,
                             compensate=False)
        assert comp.approximate
        assert err < 0.5 * np.abs(plain - ref).max() / np.abs(ref).max()
    else:
        assert err < 1e-5
        assert not comp.approximate and not comp.no_intercept
    if refine:
        assert comp.refined or consumer == "flatten_gemm"


def test_joint_intercept_rescues_a_constant_channel() -> None:
    rng = np.random.default_rng(0)
    g = rng.normal(size=(60, 4))
    one = rng.normal(size=60)  # the bias-gradient column
    g[:, 3] = 0.7 * one        # a constant channel: its gradient is 0.7 x the bias column
    gram = g.T @ g
    bias = np.append(g.T @ one, one @ one)
    a, beta = joint_coefficients(gram, bias, np.arange(3), np.array([3]), ridge=1e-12)
    assert np.abs(a).max() < 1e-9 and abs(beta[0] - 0.7) < 1e-9


class _Uneven(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.p = torch.nn.Conv2d(3, 6, 1)
        self.c = torch.nn.Conv2d(10, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.p(x)
        return self.c(torch.cat([h, h[:, 2:]], 1))


@pytest.mark.parametrize("refine", [False, True], ids=["one-shot", "refined"])
def test_uneven_reader_is_skipped_or_refitted(tmp_path: Path, refine: bool) -> None:
    path = export_onnx(_Uneven().eval(), (1, 3, 8, 8), tmp_path / "u.onnx", dynamo=False)
    model = onnxprune.load(path, input_shapes={"input": (1, 3, 8, 8)})
    group = next((g for g in model.groups.groups if g.size == 6), None)
    if group is None:
        pytest.skip("the slice makes the group a barrier here")
    rng = np.random.default_rng(1)
    data = Dataset({"input": rng.normal(size=(16, 3, 8, 8)).astype(np.float32)})
    an = analyze(model, data, estimate=False)
    plan = make_plan(model.groups, {group.id: [0, 1, 2, 3]})
    opts = PruneOptions(ratio=0.5, criterion="l1", compensate=True,
                        refine=refine).resolved(has_data=True)
    result = _finish(model, plan, opts, an, None, [], data)
    comp = result.compensation
    assert comp is not None
    readers = [f"{ref.node} ({ref.op})" for ref in group.consumers]
    if not refine:  # the one-shot fit cannot serve it: skipped, and said so
        assert any("unevenly" in s for s in comp.skipped)
        assert not set(readers) & set(comp.compensated)
        return
    # refinement fits its whole (concatenated) input instead: exact again
    assert set(readers) <= set(comp.refined) and not comp.skipped
    feeds = {"input": rng.normal(size=(1, 3, 8, 8)).astype(np.float32)}
    (ref,) = run(model.proto, feeds)
    (got,) = run(result.model, feeds)
    plain = run(onnxprune.apply(model, plan).model, feeds)[0]
    assert np.abs(got - ref).max() < 0.5 * np.abs(plain - ref).max()


def test_update_is_plain_data() -> None:
    up = ConsumerUpdate("n", "Conv", "w", np.ones((2, 3)), np.zeros(2), "exact", "refined", 4)
    d = up.to_dict()
    assert d["shape"] == [2, 3] and d["bias"] == [0.0, 0.0] and d["group"] == 4


# -- options and flags --------------------------------------------------------------------


def test_cli_flags_reach_the_options() -> None:
    import argparse

    from onnxprune.commands import prune as cmd

    parser = argparse.ArgumentParser()
    cmd.register(parser.add_subparsers())
    args = parser.parse_args(["prune", "m.onnx", "-o", "o.onnx", "--target-macs", "0.5",
                              "--output-weight", "prob=2", "--output-weight", "reg=0",
                              "--distill-time", "5m", "--no-refine"])
    opts = cmd.options_from(args)
    assert opts.output_weights == (("prob", 2.0), ("reg", 0.0))
    assert opts.distill_time == 300.0 and not opts.refine and opts.distils
    assert opts.objective == "output-aware"
    with pytest.raises(SystemExit):
        parser.parse_args(["prune", "m.onnx", "-o", "o", "--target-macs", "0.5",
                           "--distill-time", "soon"])
    with pytest.raises(onnxprune.InputError, match="output-weight"):
        PruneOptions(target_macs=0.5, output_weights=(("prob", -1.0),)).resolved(has_data=True)
