"""Small torch architectures covering the channel patterns onnxprune must handle.

Every builder seeds torch, builds the module, randomises all normalisation statistics and affine
parameters (so BatchNorm / LayerNorm are never identities) and returns it in eval mode
(``arch_spec.py``). The modules are deliberately tiny so that an export plus an onnxruntime run
takes well under a second.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from onnxprune.testing import blocks as B
from onnxprune.testing import concat_blocks as C
from onnxprune.testing.arch_spec import SEED, ArchSpec, _seeded, example_input, randomize_norms

__all__ = [  # the spec names live in arch_spec.py; callers reach them here too
    "ARCHS", "LARGE_ARCHS", "SEED", "ArchSpec", "example_input", "get_spec", "mobilenetv2_full",
    "randomize_norms", "resnet50",
]


# ----------------------------------------------------------------------------- small archs


def vgg_bn() -> nn.Module:
    """Conv-BN-ReLU stacks, max-pools, global average pool and a Linear head."""
    return nn.Sequential(
        B.ConvBNAct(3, 8, 3), B.ConvBNAct(8, 8, 3), nn.MaxPool2d(2),
        B.ConvBNAct(8, 16, 3), B.ConvBNAct(16, 16, 3), nn.MaxPool2d(2),
        B.ConvBNAct(16, 32, 3), B.ClassifierHead(32, 10),
    )  # fmt: skip


def resnet_basic() -> nn.Module:
    """ResNet of basic blocks, one with a strided 1x1 projection shortcut."""
    return nn.Sequential(
        B.ConvBNAct(3, 16, 3), B.BasicBlock(16, 16), B.BasicBlock(16, 32, stride=2),
        B.BasicBlock(32, 32), B.ClassifierHead(32, 10),
    )  # fmt: skip


def resnet_bottleneck() -> nn.Module:
    """Bottleneck blocks (expansion 4) with projection shortcuts."""
    return nn.Sequential(
        B.ConvBNAct(3, 16, 3), B.Bottleneck(16, 8, 32), B.Bottleneck(32, 8, 32),
        B.Bottleneck(32, 16, 64, stride=2), B.ClassifierHead(64, 10),
    )  # fmt: skip


def resnext() -> nn.Module:
    """ResNeXt bottlenecks with grouped 3x3 convolutions (groups=4)."""
    return nn.Sequential(
        B.ConvBNAct(3, 16, 3), B.Bottleneck(16, 16, 32, groups=4),
        B.Bottleneck(32, 16, 32, groups=4), B.Bottleneck(32, 32, 64, stride=2, groups=4),
        B.ClassifierHead(64, 10),
    )  # fmt: skip


MBV2_SMALL: tuple[tuple[int, int, int, int], ...] = ((1, 8, 1, 1), (6, 12, 2, 2), (6, 16, 2, 2))
MBV2_FULL: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)  # fmt: skip


def _mobilenetv2(
    cfg: Sequence[tuple[int, int, int, int]], stem: int, last: int, classes: int
) -> nn.Module:
    """MobileNetV2 from an (expand, channels, repeats, stride) table."""
    layers: list[nn.Module] = [B.ConvBNAct(3, stem, 3, stride=2, act=nn.ReLU6)]
    cin = stem
    for t, c, n, s in cfg:
        for i in range(n):
            layers.append(B.InvertedResidual(cin, c, stride=s if i == 0 else 1, expand=t))
            cin = c
    layers += [B.ConvBNAct(cin, last, 1, act=nn.ReLU6), B.ClassifierHead(last, classes)]
    return nn.Sequential(*layers)


def mobilenetv2() -> nn.Module:
    """Inverted residuals with depthwise convs, ReLU6 and residual adds."""
    return _mobilenetv2(MBV2_SMALL, stem=8, last=32, classes=10)


def mobilenetv3() -> nn.Module:
    """MobileNetV3 blocks with Hardswish and SE (pool, conv, ReLU, conv, Hardsigmoid, Mul)."""
    hs, re = nn.Hardswish, nn.ReLU
    return nn.Sequential(
        B.ConvBNAct(3, 8, 3, stride=2, act=hs),
        B.MBConv(8, 8, 3, expand=1, act=re, se=B.SEHard),
        B.MBConv(8, 12, 3, stride=2, expand=4, act=re),
        B.MBConv(12, 12, 5, expand=3, act=hs, se=B.SEHard),
        B.MBConv(12, 16, 5, stride=2, expand=4, act=hs, se=B.SEHard),
        B.ConvBNAct(16, 48, 1, act=hs),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(1),
        nn.Linear(48, 32), nn.Hardswish(), nn.Linear(32, 10),
    )  # fmt: skip


def efficientnet() -> nn.Module:
    """EfficientNet MBConv blocks with SiLU and SE (pool, conv, SiLU, conv, Sigmoid, Mul)."""
    si = nn.SiLU
    return nn.Sequential(
        B.ConvBNAct(3, 8, 3, stride=2, act=si),
        B.MBConv(8, 8, 3, expand=1, act=si, se=B.SESigmoid),
        B.MBConv(8, 12, 3, stride=2, expand=6, act=si, se=B.SESigmoid),
        B.MBConv(12, 12, 3, expand=6, act=si, se=B.SESigmoid),
        B.MBConv(12, 16, 5, stride=2, expand=6, act=si, se=B.SESigmoid),
        B.ConvBNAct(16, 48, 1, act=si), B.ClassifierHead(48, 10),
    )  # fmt: skip


def densenet() -> nn.Module:
    """Dense blocks with a growing torch.cat, pre-activation BN and a transition layer."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False),
        C.DenseBlock(16, growth=8, layers=3), C.Transition(40, 20),
        C.DenseBlock(20, growth=8, layers=2),
        nn.BatchNorm2d(36), nn.ReLU(), B.ClassifierHead(36, 10),
    )  # fmt: skip


def inception() -> nn.Module:
    """Inception blocks: parallel 1x1 / 3x3 / 5x5 / pool-proj branches, concatenated."""
    return nn.Sequential(
        B.ConvBNAct(3, 16, 3), C.InceptionBlock(16, (8, 8, 12, 4, 6, 6)), nn.MaxPool2d(2),
        C.InceptionBlock(32, (12, 8, 16, 4, 8, 8)), B.ClassifierHead(44, 10),
    )  # fmt: skip


def shufflenetv2() -> nn.Module:
    """ShuffleNetV2 units: chunk channel split, branch, concat, view/transpose/view shuffle."""
    return nn.Sequential(
        B.ConvBNAct(3, 16, 3, stride=2), C.ShuffleUnit(16, 32, stride=2),
        C.ShuffleUnit(32, 32), C.ShuffleUnit(32, 32), B.ConvBNAct(32, 48, 1),
        B.ClassifierHead(48, 10),
    )  # fmt: skip


def flatten_gemm() -> nn.Module:
    """Conv stack, torch.flatten of a 16x4x4 map, then Linear-ReLU-Linear."""
    return nn.Sequential(
        B.ConvBNAct(3, 8, 3, stride=2), B.ConvBNAct(8, 16, 3, stride=2), nn.MaxPool2d(2),
        nn.Flatten(1), nn.Linear(16 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 10),
    )  # fmt: skip


def convnext() -> nn.Module:
    """ConvNeXt: patchify stem, blocks with channels-last LayerNorm MLP, downsample."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 4, stride=4), B.LayerNorm2d(16),
        B.ConvNeXtBlock(16), B.ConvNeXtBlock(16),
        B.LayerNorm2d(16), nn.Conv2d(16, 32, 2, stride=2),
        B.ConvNeXtBlock(32),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.LayerNorm(32), nn.Linear(32, 10),
    )  # fmt: skip


def yolov8() -> nn.Module:
    """YOLOv8-style detector (C2f, SPPF, FPN/PAN neck, decoupled DFL head) for 64x64."""
    from onnxprune.testing.yolo import YOLOv8

    return YOLOv8(image=64)


def unet() -> nn.Module:
    """UNet: encoder double convs, max-pool, ConvTranspose up-sampling, skip cat, 1x1 head."""
    return B.UNet(base=8, classes=2)


# ----------------------------------------------------------------------------- large archs


def resnet50(width: int = 64, image: int = 224) -> ArchSpec:
    """Torchvision-like ResNet-50 ([3, 4, 6, 3] bottlenecks, expansion 4).

    Args:
        width: channels of the stem and first stage (64 gives the real 64..2048 widths).
        image: side of the square input image.

    Returns:
        The spec, named ``resnet50`` (``resnet50_w{width}`` when the width is not 64).

    """

    def factory() -> nn.Module:
        return B.ResNet(width=width, stages=(3, 4, 6, 3), classes=1000)

    name = "resnet50" if width == 64 else f"resnet50_w{width}"
    return ArchSpec(name, _seeded(factory), (1, 3, image, image))


def mobilenetv2_full(image: int = 224) -> ArchSpec:
    """Real-width MobileNetV2 (1.0x, 1000 classes).

    Args:
        image: side of the square input image.

    Returns:
        The spec, named ``mobilenetv2_full``.

    """

    def factory() -> nn.Module:
        return _mobilenetv2(MBV2_FULL, stem=32, last=1280, classes=1000)

    return ArchSpec("mobilenetv2_full", _seeded(factory), (1, 3, image, image))


def _registry(items: Sequence[tuple[Callable[[], nn.Module], int]]) -> dict[str, ArchSpec]:
    return {f.__name__: ArchSpec(f.__name__, _seeded(f), (1, 3, s, s)) for f, s in items}


ARCHS: dict[str, ArchSpec] = _registry([
    (vgg_bn, 32), (resnet_basic, 32), (resnet_bottleneck, 32), (mobilenetv2, 32),
    (mobilenetv3, 32), (efficientnet, 32), (densenet, 32), (inception, 32),
    (shufflenetv2, 32), (resnext, 32), (yolov8, 64), (unet, 64), (flatten_gemm, 32),
    (convnext, 32),
])  # fmt: skip
"""Small test architectures by name."""

LARGE_ARCHS: dict[str, ArchSpec] = {s.name: s for s in (resnet50(), mobilenetv2_full())}
"""Real-size architectures for benchmarks (not part of the per-test matrix)."""


def get_spec(name: str) -> ArchSpec:
    """Look up ``name`` in :data:`ARCHS`, then in :data:`LARGE_ARCHS`.

    Args:
        name: registry key.

    Returns:
        The spec.

    Raises:
        KeyError: when no registry has ``name`` (the message lists the known names).

    """
    spec = ARCHS.get(name) or LARGE_ARCHS.get(name)
    if spec is None:
        known = ", ".join(sorted(ARCHS) + sorted(LARGE_ARCHS))
        raise KeyError(f"unknown architecture {name!r}; known: {known}")
    return spec
