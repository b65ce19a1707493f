"""Per-output fidelity of a pruned model in the output-aware metric, for the prune report.

Each graph output is measured as the analysis measures it (logits behind Sigmoid/Softmax,
standardised per std block; :mod:`onnxprune.analysis.measure`): the line gives its squared
error relative to its calibration spread (0: identical, 1: as far off as the outputs vary
from sample to sample) and, for a softmax output, how often the argmax class agrees.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from onnxprune import ir
from onnxprune.analysis.measure import measured, output_measures
from onnxprune.data import Dataset
from onnxprune.shim.module import Shim

SAMPLES = 64
"""Calibration samples the report measures on."""
BATCH = 16


@torch.no_grad()
def output_fidelity(original: ir.ModelProto, pruned: ir.ModelProto, data: Dataset,
                    weights: Mapping[str, float], *, batch_size: int = BATCH,
                    device: str = "cpu", teacher: Shim | None = None) -> tuple[str, ...]:
    """One line per measured output: relative error and (softmax) argmax agreement.

    ``teacher`` is ``original`` as a shim on ``device`` when the caller has one.
    """
    batch_size = ir.fixed_batch(original) or batch_size
    data = data.take(min(len(data), SAMPLES) // batch_size * batch_size)
    if not len(data):
        return ()
    a = teacher if teacher is not None else Shim(original, device=device)
    b = Shim(pruned, device=device)
    measures = output_measures(a, data, batch_size, {})
    names = {m.tensor for m in measures if m.tensor != m.output}
    got: list[list[list[torch.Tensor]]] = [[], []]
    for feeds, _ in data.batches(batch_size):
        for k, shim in enumerate((a, b)):
            with shim.watch(names, retain_grad=False) as watched:
                outs = shim(feeds)
            got[k].append(measured(measures, outs, watched))
    lines = [f"fidelity on {len(data)} calibration samples (output-aware: error relative to "
             "the output's spread):"]
    for i, m in enumerate(measures):
        ref = torch.cat([g[i] for g in got[0]]).double()
        new = torch.cat([g[i] for g in got[1]]).double()
        spread = float((ref - ref.mean(0)).pow(2).sum()) or 1.0
        err = float((new - ref).pow(2).sum()) / spread
        text = f"  output {m.output}: error {err:.4f}"
        if m.transform == "log_softmax":
            agree = float((new.argmax(m.axis) == ref.argmax(m.axis)).double().mean())
            text += f", argmax agreement {agree:.4f}"
        if weights.get(m.output, 1.0) != 1.0:
            text += f" (weight {weights[m.output]:g})"
        lines.append(text)
    return tuple(lines)
