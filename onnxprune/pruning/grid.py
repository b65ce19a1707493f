"""Latency-friendly widths: the grid that ``--round-to auto`` snaps every group's width to.

The rule (documented, no measuring). onnxruntime's CPU provider runs convolutions through
MLAS; its NCHWc transformer rewrites a Conv (dense, 1x1, depthwise) into the blocked NCHWc
kernels only when the output channels (and, to chain without reorders, the input channels)
are multiples of the NCHWc block, which is the width of one vector register of floats:
16 with AVX-512F, 8 with AVX/AVX2, none elsewhere (SSE, ARM: plain im2col + SGEMM, whose
kernels still work in strips of 4 floats). A Conv that misses the block falls back to
im2col + SGEMM and adds reorder nodes around it, which is why free widths (``--round-to 1``)
measured 1.3-2.8x *slower* on MobileNet-family exports at half their MACs. SGEMM (Gemm,
MatMul, the fallback) packs its B matrix in strips of the same width, so one grid serves every
prunable op. CUDA (cuDNN, tensor cores) wants multiples of 8.

So ``auto`` is: every group's width a multiple of :func:`block_size` (its full width is always
allowed, as with any ``round_to``). When the target cannot be reached on that grid (narrow
nets: a 16-channel group cannot shrink at all), the allocation retries on half the grid, down
to 1, and says so (:func:`candidates`). The measured latency table (``pruning/latency.py``)
then prices the widths on the grid; it never picks off-grid widths.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

AUTO = "auto"


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """Return the CPU feature flags of this machine (empty when they cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = next((ln for ln in text.splitlines() if ln.startswith(("flags", "Features"))), "")
    return frozenset(line.split(":", 1)[1].split()) if ":" in line else frozenset()


def block_size(provider: str = "cpu", flags: frozenset[str] | None = None) -> int:
    """Return the channel block the provider's fast kernels want on this machine.

    Args:
        provider: ``cpu`` or ``cuda``.
        flags: CPU flags to decide from (default: this machine's).

    Returns:
        16 (AVX-512F), 8 (AVX/AVX2, or CUDA) or 4 (other CPUs).

    """
    if provider == "cuda":
        return 8
    flags = cpu_flags() if flags is None else flags
    if "avx512f" in flags:
        return 16
    if "avx2" in flags or "avx" in flags:
        return 8
    if not flags and platform.machine().lower() in ("x86_64", "amd64"):
        return 8  # flags unreadable (not Linux): every x86-64 CPU of the last decade has AVX
    return 4


def candidates(round_to: int | str, provider: str = "cpu",
               flags: frozenset[str] | None = None) -> tuple[int, ...]:
    """Return the grids to try, coarsest first.

    A number is used as given. ``auto`` starts at the block size and halves down to 1: the
    first grid on which the allocation reaches its target wins.
    """
    if round_to != AUTO:
        return (int(round_to),)
    step = block_size(provider, flags)
    out = [step]
    while step > 1:
        step //= 2
        out.append(step)
    return tuple(out)


def parse_round_to(text: str) -> int | str:
    """Parse ``--round-to``: ``auto`` or a positive integer.

    Raises:
        ValueError: anything else.

    """
    if text.strip().lower() == AUTO:
        return AUTO
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value
