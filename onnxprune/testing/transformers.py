"""Small transformer architectures for attention-head pruning tests.

Four shapes of multi-head attention as exporters write it: torch ``nn.MultiheadAttention``
alone (fused QKV projection), ``nn.TransformerEncoderLayer`` (with its FFN), a ViT (patch
embedding Conv -> flatten -> transpose -> encoder layers) and a BERT-style encoder with separate
Q/K/V projections, token ids and an attention mask. Like ``archs``, every builder is seeded and
randomises its LayerNorms; ``TRANSFORMERS`` holds their specs and ``export_transformer``
writes them with either exporter.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from onnxprune.testing.archs import SEED, randomize_norms
from onnxprune.testing.export import DYNAMO_OPSET, LEGACY_OPSET, _quiet

EMBED, HEADS, FFN, TOKENS = 64, 8, 128, 16


@dataclass(frozen=True)
class InputSpec:
    """One graph input: name, static shape, and ``vocab`` for int64 ids (0: float normal)."""

    name: str
    shape: tuple[int, ...]
    vocab: int = 0


@dataclass(frozen=True)
class TransformerSpec:
    """A named transformer test architecture with its inputs."""

    name: str
    build: Callable[[], nn.Module]
    inputs: tuple[InputSpec, ...]

    def example(self, *, seed: int = SEED) -> dict[str, np.ndarray]:
        """Deterministic inputs: normal floats, ids below ``vocab``, a mask with a padded tail."""
        rng = np.random.default_rng(seed)
        out: dict[str, np.ndarray] = {}
        for s in self.inputs:
            if s.name == "attention_mask":
                mask = np.ones(s.shape, np.int64)
                mask[..., -s.shape[-1] // 4 :] = 0
                out[s.name] = mask
            elif s.vocab:
                out[s.name] = rng.integers(0, s.vocab, s.shape, dtype=np.int64)
            else:
                out[s.name] = rng.standard_normal(s.shape).astype(np.float32)
        return out


class SelfAttention(nn.Module):
    """``nn.MultiheadAttention`` used as self-attention on a batch-first sequence."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(EMBED, HEADS, batch_first=True)
        self.fc = nn.Linear(EMBED, EMBED)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        h = self.fc(x)
        return self.attn(h, h, h, need_weights=False)[0]


class ViT(nn.Module):
    """Patch-embedding Conv, flatten + transpose to tokens, encoder layers, mean-pool head."""

    def __init__(self, *, depth: int = 2, patch: int = 4, image: int = 32, classes: int = 10):
        super().__init__()
        self.patch = nn.Conv2d(3, EMBED, patch, stride=patch)
        self.pos = nn.Parameter(torch.randn(1, (image // patch) ** 2, EMBED) * 0.1)
        layer = nn.TransformerEncoderLayer(
            EMBED, HEADS, FFN, dropout=0.0, batch_first=True, norm_first=True,
            activation="gelu",
        )  # fmt: skip
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        with torch.no_grad():  # the encoder clones one layer; exporters would share its weights
            for p in self.encoder.parameters():
                p.add_(torch.randn_like(p) * 0.1)
        self.norm = nn.LayerNorm(EMBED)
        self.head = nn.Linear(EMBED, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        tokens = self.patch(x).flatten(2).transpose(1, 2) + self.pos
        return self.head(self.norm(self.encoder(tokens)).mean(dim=1))


class BertLayer(nn.Module):
    """Post-norm BERT layer: separate Q/K/V Linears, heads by view + transpose, GELU FFN."""

    def __init__(self) -> None:
        super().__init__()
        self.q, self.k, self.v = (nn.Linear(EMBED, EMBED) for _ in range(3))
        self.o = nn.Linear(EMBED, EMBED)
        self.norm1, self.norm2 = nn.LayerNorm(EMBED), nn.LayerNorm(EMBED)
        self.up, self.down = nn.Linear(EMBED, FFN), nn.Linear(FFN, EMBED)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, HEADS, EMBED // HEADS).transpose(1, 2)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:  # noqa: D102
        q, k, v = self._heads(self.q(x)), self._heads(self.k(x)), self._heads(self.v(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(EMBED // HEADS) + bias
        ctx = (scores.softmax(dim=-1) @ v).transpose(1, 2)
        b, n = x.shape[:2]
        x = self.norm1(x + self.o(ctx.reshape(b, n, EMBED)))
        return self.norm2(x + self.down(nn.functional.gelu(self.up(x))))


class Bert(nn.Module):
    """Token + position embeddings, BERT layers with an additive mask, classifier on token 0."""

    def __init__(self, *, depth: int = 2, vocab: int = 50, classes: int = 3):
        super().__init__()
        self.tokens = nn.Embedding(vocab, EMBED)
        self.pos = nn.Parameter(torch.randn(1, TOKENS, EMBED) * 0.1)
        self.norm = nn.LayerNorm(EMBED)
        self.layers = nn.ModuleList(BertLayer() for _ in range(depth))
        self.cls = nn.Linear(EMBED, classes)

    def forward(  # noqa: D102
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        bias = (1.0 - attention_mask[:, None, None, :].float()) * -10000.0
        x = self.norm(self.tokens(input_ids) + self.pos)
        for layer in self.layers:
            x = layer(x, bias)
        return self.cls(x[:, 0])


def _seeded(factory: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        torch.manual_seed(SEED)
        return randomize_norms(factory()).eval()

    return build


class EncoderLayer(nn.Module):
    """``nn.TransformerEncoderLayer`` (post-norm, ReLU FFN) called with its input alone."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(EMBED, HEADS, FFN, dropout=0.0, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.layer(x)


_SEQ = (InputSpec("input", (1, TOKENS, EMBED)),)
TRANSFORMERS: dict[str, TransformerSpec] = {
    s.name: s
    for s in (
        TransformerSpec("mha", _seeded(SelfAttention), _SEQ),
        TransformerSpec("encoder_layer", _seeded(EncoderLayer), _SEQ),
        TransformerSpec("vit", _seeded(ViT), (InputSpec("input", (1, 3, 32, 32)),)),
        TransformerSpec(
            "bert", _seeded(Bert),
            (InputSpec("input_ids", (1, TOKENS), vocab=50),
             InputSpec("attention_mask", (1, TOKENS), vocab=2)),
        ),  # fmt: skip
    )
}
"""Transformer test architectures by name."""


def export_transformer(name: str, exporter: str, cache_dir: str | os.PathLike[str]) -> Path:
    """Return ``cache_dir / f"{name}-{exporter}.onnx"``, exporting it once (static shapes).

    Args:
        name: key of :data:`TRANSFORMERS`.
        exporter: ``legacy`` (TorchScript, opset 17) or ``dynamo`` (torch.export, opset 18).
        cache_dir: directory holding the exports.

    Returns:
        Path of the ONNX file; graph inputs are named as in the spec, the output ``output``.

    """
    spec = TRANSFORMERS[name]
    path = Path(cache_dir) / f"{name}-{exporter}.onnx"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    module = spec.build()
    args = tuple(torch.from_numpy(v) for v in spec.example().values())
    names = [s.name for s in spec.inputs]
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.onnx")
    # Not under no_grad: torch then takes its fused fast path (_transformer_encoder_layer_fwd,
    # _native_multi_head_attention), which the legacy exporter cannot write.
    with _quiet():
        if exporter == "dynamo":
            torch.onnx.export(
                module, args, str(tmp), dynamo=True, opset_version=DYNAMO_OPSET,
                external_data=False, optimize=True, input_names=names, output_names=["output"],
            )  # fmt: skip
        else:
            torch.onnx.export(
                module, args, str(tmp), dynamo=False, opset_version=LEGACY_OPSET,
                input_names=names, output_names=["output"], do_constant_folding=True,
            )  # fmt: skip
    os.replace(tmp, path)
    return path
