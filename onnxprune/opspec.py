"""Facts of the ONNX operator spec that both the channel rules and the shim's kernels use.

A leaf module (no imports), so ``channels/``, ``shim/``, ``metrics`` and ``pruning/`` can all
read it without an import cycle or pulling torch into the rules.
"""

from __future__ import annotations

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
"""Gate blocks of each recurrent op, stacked in W's and R's second axis
(``[num_directions, GATES·hidden, input]``)."""
