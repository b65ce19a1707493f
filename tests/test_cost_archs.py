"""MACs and cost-model values of every test architecture, frozen from before the ops' meaning
moved onto their rules (issue 14): the per-op lists in metrics/allocation were replaced by
``WeightOp`` descriptions, and every number must stay the same (both exporters alike)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

import onnxprune
from onnxprune.pruning.allocation import CostModel
from onnxprune.testing import ARCH_CASES

# name: (total MACs, nodes counted, sha256[:12] of the sorted per-node MACs,
#        weight parameters in the params cost model)
FROZEN = {
    "convnext": (600896, 12, "b47443593ddc", 18682),
    "densenet": (12271976, 13, "fbea3e4fffe2", 17122),
    "efficientnet": (526688, 22, "9c4d6622840c", 16342),
    "flatten_gemm": (137536, 4, "11ec7fa6bcec", 9946),
    "inception": (3129784, 14, "299d7265aea8", 5854),
    "mobilenetv2": (560576, 17, "f562c85beafc", 12250),
    "mobilenetv3": (395912, 21, "e71c5838dedd", 10579),
    "resnet_basic": (13549888, 9, "94b765dce213", 38346),
    "resnet_bottleneck": (4964992, 13, "dbcf620fafa0", 9834),
    "resnext": (6668928, 13, "b0a2eda455a5", 12330),
    "shufflenetv2": (410080, 14, "1f84ecc95260", 5066),
    "unet": (25591808, 13, "ca16b256ac47", 29474),
    "vgg_bn": (1990976, 6, "3989787e7cb9", 9266),
    "yolov8": (7822592, 62, "cbc076ddfddb", 371032),
}  # fmt: skip


def _digest(values: list[int]) -> str:
    return hashlib.sha256(repr(sorted(values)).encode()).hexdigest()[:12]


@pytest.mark.parametrize(("name", "exporter"), ARCH_CASES)
def test_macs_and_cost_model_unchanged(
    arch_model: Callable[[str, str], Path], name: str, exporter: str
) -> None:
    model = onnxprune.load(arch_model(name, exporter))
    per_node = [int(v) for v in model.cost.node_macs.values()]
    total, nodes, digest, params = FROZEN[name]
    assert (model.cost.macs, len(per_node)) == (total, nodes)
    assert _digest(per_node) == digest
    # Pruning never changes spatial sizes, so every MAC of these CNNs is in the cost model.
    assert CostModel(model.groups, "macs", model.cost.macs).modelled == total
    assert CostModel(model.groups, "params", model.cost.params).modelled == params
