"""What a test architecture is: a name, a deterministic builder and an input shape.

Every builder seeds torch, builds the module, randomises all normalisation statistics and affine
parameters (so BatchNorm / LayerNorm are never identities) and returns it in eval mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

SEED = 0


@dataclass(frozen=True)
class ArchSpec:
    """A named test architecture.

    Attributes:
        name: registry key, also used for file names of exports.
        build: returns a fresh, deterministic module in eval mode.
        input_shape: static NCHW shape of the single input.

    """

    name: str
    build: Callable[[], nn.Module]
    input_shape: tuple[int, ...]


def randomize_norms(module: nn.Module, *, seed: int = SEED) -> nn.Module:
    """Give every BatchNorm / LayerNorm non-trivial statistics and affine parameters.

    Args:
        module: the module to modify in place.
        seed: seed of the private generator used for the values.

    Returns:
        The same module, for chaining.

    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                _fill_uniform(sub.running_mean, -0.2, 0.2, gen)  # type: ignore[arg-type]
                _fill_uniform(sub.running_var, 0.5, 1.5, gen)  # type: ignore[arg-type]
            if isinstance(sub, nn.modules.batchnorm._BatchNorm | nn.LayerNorm):
                _fill_uniform(sub.weight, 0.5, 1.5, gen)
                _fill_uniform(sub.bias, -0.2, 0.2, gen)
    return module


def _fill_uniform(t: torch.Tensor, low: float, high: float, gen: torch.Generator) -> None:
    t.copy_(torch.rand(t.shape, generator=gen) * (high - low) + low)


def _seeded(factory: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    """Wrap a factory so that every call yields the same weights, in eval mode."""

    def build() -> nn.Module:
        torch.manual_seed(SEED)
        return randomize_norms(factory()).eval()

    build.__name__ = getattr(factory, "__name__", "build")
    return build


def example_input(spec: ArchSpec, *, seed: int = SEED) -> torch.Tensor:
    """Return a deterministic standard-normal input for ``spec``.

    Args:
        spec: the architecture.
        seed: seed of the private generator.

    Returns:
        A float32 tensor of shape ``spec.input_shape``.

    """
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(spec.input_shape, generator=gen)
