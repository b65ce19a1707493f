"""Planted redundancy is found exactly: dead, copied and linearly dependent filters.

Each small torch model has one *planted* group in which k filters are made redundant in one of
three ways; the analysis must report rank C − k for that group and leave every other group's
rank as in the unplanted model. Every planted case is exact by construction:

- dead: the filters (and biases) of every producer of the channel are zero, so the channel is
  0 after ReLU (no BN re-adds a constant);
- copy: every producer of the channel repeats the filter and bias of a source channel, so the
  channel equals the source bit for bit;
- linear: no nonlinearity between the producers and the consumers, and every producer's
  filter and bias are the same combination of two source channels (a depthwise conv keeps
  that only when its kernels for the channel and its sources are equal, so they are).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from onnxprune.analysis import AnalysisResult, analyze
from onnxprune.data import Dataset
from onnxprune.model import load
from onnxprune.testing import export_onnx

SHAPE = (1, 3, 8, 8)
PLANTED = (5, 7)  # channels made redundant (k = 2)
SOURCES = ((0, 1), (2, 3))  # their sources: copy of the first, combination of both
COEF = (0.7, -1.3)
# Random models have steep spectra (their channels share a large positive mean), down to
# λ/λ_1 ≈ 1e-7.5 here, while planted redundancy sits at round-off (≤ 1e-14 for linear
# combinations in float32, exactly 0 for dead channels). Tolerances between the two test
# exactness; the defaults (1e-3) measure *effective* rank and cut real small directions too.
ENERGY_EPS = 1e-10
REL_TOL = 1e-5  # λ_i > 1e-10·λ_1


class Chain(nn.Module):
    """conv → [planted conv] → act → conv → GAP → fc: the planted group is c1's output."""

    def __init__(self, act: bool) -> None:
        super().__init__()
        self.c0, self.c1 = nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 8, 3, padding=1)
        self.c2, self.fc = nn.Conv2d(8, 8, 3, padding=1), nn.Linear(8, 4)
        self.act = nn.ReLU() if act else nn.Identity()

    def producers(self) -> list[nn.Conv2d]:
        return [self.c1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.c1(torch.relu(self.c0(x))))
        h = torch.relu(self.c2(h))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(h, 1), 1))


class Residual(nn.Module):
    """stem → act → (+ c2(relu(c1))) → act → head: the planted group is the stream."""

    def __init__(self, act: bool) -> None:
        super().__init__()
        self.stem, self.c1 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 6, 3, padding=1)
        self.c2, self.head = nn.Conv2d(6, 8, 3, padding=1), nn.Conv2d(8, 6, 3, padding=1)
        self.fc = nn.Linear(6, 4)
        self.act = nn.ReLU() if act else nn.Identity()

    def producers(self) -> list[nn.Conv2d]:
        return [self.stem, self.c2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.act(self.stem(x))
        s = self.act(s + self.c2(torch.relu(self.c1(s))))
        h = torch.relu(self.head(s))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(h, 1), 1))


class Depthwise(nn.Module):
    """MobileNet-style: expand 1×1 → act → depthwise 3×3 → act → project: group = expand+dw."""

    def __init__(self, act: bool) -> None:
        super().__init__()
        self.stem, self.expand = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 12, 1)
        self.dw = nn.Conv2d(12, 12, 3, padding=1, groups=12)
        self.project, self.fc = nn.Conv2d(12, 8, 1), nn.Linear(8, 4)
        self.act = nn.ReLU() if act else nn.Identity()

    def producers(self) -> list[nn.Conv2d]:
        return [self.expand, self.dw]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.expand(torch.relu(self.stem(x))))
        h = torch.relu(self.project(self.act(self.dw(h))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(h, 1), 1))


ARCHS = {"chain": Chain, "residual": Residual, "depthwise": Depthwise}


@torch.no_grad()
def plant(module: nn.Module, kind: str) -> None:
    """Make the PLANTED channels of every producer dead, copies or linear combinations."""
    for conv in module.producers():
        w, b = conv.weight, conv.bias
        depthwise = conv.groups > 1
        for c, (s, t) in zip(PLANTED, SOURCES, strict=True):
            if kind == "dead":
                w[c], b[c] = 0.0, 0.0
            elif kind == "copy":
                w[c], b[c] = w[s], b[s]
            elif depthwise:  # linear through a depthwise conv: equal kernels, combined bias
                w[t], w[c] = w[s], w[s]
                b[c] = COEF[0] * b[s] + COEF[1] * b[t]
            else:
                w[c] = COEF[0] * w[s] + COEF[1] * w[t]
                b[c] = COEF[0] * b[s] + COEF[1] * b[t]


@torch.no_grad()
def _healthy(module: nn.Module) -> nn.Module:
    """Positive biases, so no ReLU channel of the random model is dead by accident."""
    gen = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            m.bias.copy_(0.2 + 0.3 * torch.rand(m.bias.shape, generator=gen))
    return module


def _export(arch: str, kind: str | None, act: bool, tmp: Path) -> Path:
    torch.manual_seed(0)
    module = _healthy(ARCHS[arch](act))
    if kind is not None:
        plant(module, kind)
    return export_onnx(module, SHAPE, tmp / f"{arch}-{kind}-{act}.onnx", dynamo=False)


def _planted_group(model, module_cls: type) -> int:  # type: ignore[no-untyped-def]
    first = {Chain: "/c1/Conv", Residual: "/stem/Conv", Depthwise: "/expand/Conv"}[module_cls]
    return next(g.id for g in model.groups.groups if first in g.root_nodes)


def _ranks(path: Path) -> tuple[dict[int, tuple[int, int]], AnalysisResult]:
    model = load(path)
    x = np.random.default_rng(1).standard_normal((24, *SHAPE[1:])).astype(np.float32)
    result = analyze(
        model, Dataset({"input": x}), directions=2, batch_size=12, estimate=False,
        energy_eps=ENERGY_EPS, rel_tol=REL_TOL,
    )
    ranks = {g.id: (g.rank, g.rank_threshold) for g in result.groups if g.analysed}
    return ranks, result



@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, bool], dict]:
    """Ranks of the unplanted models (full rank in the planted group), per arch and act."""
    tmp = tmp_path_factory.mktemp("unplanted")
    out = {}
    for arch in ARCHS:
        for act in (True, False):
            out[arch, act] = _ranks(_export(arch, None, act, tmp))[0]
    return out


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("kind", ["dead", "copy", "linear"])
def test_planted_rank(arch: str, kind: str, reference: dict, tmp_path: Path) -> None:
    act = kind != "linear"  # linear redundancy only survives without a nonlinearity
    path = _export(arch, kind, act, tmp_path)
    ranks, result = _ranks(path)
    gid = _planted_group(load(path), ARCHS[arch])
    size = result.group(gid).channels
    before = reference[arch, act]
    assert before[gid] == (size, size)
    assert ranks[gid] == (size - len(PLANTED), size - len(PLANTED))
    assert {g: r for g, r in ranks.items() if g != gid} == {
        g: r for g, r in before.items() if g != gid
    }


def test_group_without_signal_claims_no_rank(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = _healthy(Chain(act=True))
    with torch.no_grad():
        module.c1.weight.zero_()
        module.c1.bias.zero_()
    model = load(export_onnx(module, SHAPE, tmp_path / "all-dead.onnx", dynamo=False))
    x = np.random.default_rng(1).standard_normal((8, *SHAPE[1:])).astype(np.float32)
    result = analyze(model, Dataset({"input": x}), directions=2)
    dead = result.group(_planted_group(model, Chain))
    assert dead.status == "no-signal" and dead.rank is None and dead.max_rate is None
    assert not dead.gram.any() and dead.rows == 8 * 2 * 8 * 9
    assert result.estimate is not None and dead.id not in result.estimate.widths
