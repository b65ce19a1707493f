"""A CRNN-style text recogniser: conv backbone, height squeezed, a recurrent layer, CTC logits.

This is the shape of PP-OCR / classic CRNN recognisers: a conv map ``[N, C, 1, W]`` becomes the
sequence ``[W, N, C]`` (Squeeze + Transpose) that an LSTM/GRU/RNN reads, and a Linear gives
per-step class logits for CTC decoding.
"""

from __future__ import annotations

import torch
from torch import nn

from onnxprune.testing import blocks as B
from onnxprune.testing.archs import ArchSpec, _seeded

INPUT_SHAPE = (1, 3, 32, 64)
CLASSES = 37


class CRNN(nn.Module):
    """Conv backbone -> squeeze height -> permute -> recurrent layer -> Linear logits.

    Args:
        cell: ``nn.LSTM``, ``nn.GRU`` or ``nn.RNN``.
        flatten: merge C and H with ``flatten(1, 2)`` (a Reshape) instead of ``squeeze(2)``.

    """

    def __init__(self, cell: type[nn.Module] = nn.LSTM, *, flatten: bool = False) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            B.ConvBNAct(3, 16, 3), nn.MaxPool2d(2),
            B.ConvBNAct(16, 32, 3), nn.MaxPool2d(2),
            B.ConvBNAct(32, 64, 3), nn.MaxPool2d((2, 1)),
            B.ConvBNAct(64, 64, 3), nn.MaxPool2d((2, 1)),
            nn.Conv2d(64, 96, (2, 1)), nn.ReLU(),
        )  # fmt: skip
        self.flatten = flatten
        self.rnn = cell(96, 32, bidirectional=True)
        self.head = nn.Linear(64, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return log-probabilities ``[N, T, classes]``."""
        f = self.backbone(x)  # [N, 96, 1, W/4]
        f = f.flatten(1, 2) if self.flatten else f.squeeze(2)
        seq, _ = self.rnn(f.permute(2, 0, 1))  # [T, N, 2H]
        # Batch-first logits [N, T, classes] (as PP-OCR's CTC head): the analysis objectives
        # take axis 0 of every output as the batch.
        return self.head(seq.transpose(0, 1)).log_softmax(-1)


def crnn_spec(cell: str = "LSTM", *, flatten: bool = False) -> ArchSpec:
    """The CRNN with ``cell`` ("LSTM", "GRU" or "RNN") as a test architecture."""
    cls = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}[cell]

    def crnn() -> nn.Module:
        return CRNN(cls, flatten=flatten)

    name = f"crnn_{cell.lower()}" + ("_flatten" if flatten else "")
    return ArchSpec(name, _seeded(crnn), INPUT_SHAPE)
