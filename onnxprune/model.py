"""A loaded model: the untouched original, its concrete input shapes and static tensor shapes."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from onnxprune import ir, metrics
from onnxprune.channels.context import Context
from onnxprune.channels.graph import ChannelGraph

log = logging.getLogger(__name__)


@dataclass
class Model:
    """An ONNX model ready for analysis and surgery.

    ``proto`` is never modified: every channel graph works on a fresh import of it.
    """

    proto: ir.ModelProto
    input_shapes: dict[str, tuple[int, ...]]
    path: Path | None = None
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @cached_property
    def cost(self) -> metrics.Cost:
        """MACs, parameters and size of the original model at the concrete input shapes.

        Weight nodes whose shapes are unknown count 0 MACs; a warning names them.
        """
        cost = metrics.cost(self.proto, self.shapes)
        unknown = unknown_shape_nodes(cost)
        if unknown:
            log.warning("%s", unknown_shapes_message(unknown))
        return cost

    def channel_graph(self) -> ChannelGraph:
        """Return a channel graph safe to edit: :attr:`groups` over a copy of its graph.

        The model is imported and its groups derived once (:attr:`groups`); each editable
        graph is a clone of that one, not a new import. A clone keeps the weights it reads
        (surgery edits them); :attr:`groups` keeps none, so the clone reads them afresh.
        """
        return self.groups.clone()

    @property
    def unchanged_file(self) -> Path | None:
        """The file the model was loaded from, when ``proto`` is that file's model as is.

        Only a model older than ``ir.MIN_OPSET`` is converted on load (to that opset), so a
        newer opset says the file holds ``proto``.
        """
        if self.path is None or ir.opset_version(self.proto) <= ir.MIN_OPSET:
            return None
        return self.path

    @cached_property
    def groups(self) -> ChannelGraph:
        """The model's channel graph, kept for read-only questions (do not edit its graph).

        Weights read through it are not kept in it: it lives as long as the model, and would
        otherwise end up holding a copy of every weight a criterion or the analysis read.
        """
        graph = ir.to_graph(self.proto)
        return ChannelGraph(Context(graph, self.shapes, ir.opset_version(self.proto),
                                    keep_values=False))


def unknown_shape_nodes(cost: metrics.Cost) -> tuple[str, ...]:
    """Weight nodes (Conv, Gemm, MatMul) counted 0 MACs because their shapes are unknown."""
    return tuple(n for n, m in cost.node_macs.items() if m == 0)


def unknown_shapes_message(nodes: tuple[str, ...]) -> str:
    """One line naming the nodes whose MACs are not counted and what to check."""
    shown = ", ".join(f"'{n}'" for n in nodes[:3]) + (" …" if len(nodes) > 3 else "")
    return (f"{len(nodes)} weight node{'' if len(nodes) == 1 else 's'} with unknown shapes "
            f"({shown}): their MACs are not counted, so the MACs are a lower bound; check "
            "--input-shapes (the model may not support this input size)")


def load(
    path: str | os.PathLike[str] | ir.ModelProto,
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> Model:
    """Load a model and resolve static shapes for every tensor.

    Args:
        path: an ``.onnx`` file or an in-memory model.
        input_shapes: concrete shapes for inputs with dynamic dims (``{"images": (1, 3, 640,
            640)}``); a dynamic batch dim alone defaults to 1.

    Returns:
        The loaded model.

    Raises:
        InputError: the file is not a usable ONNX model or the shapes do not fit it.

    """
    if isinstance(path, ir.ModelProto):
        proto, where = path, None
    else:
        proto, where = ir.load_model(path), Path(path)
    shapes = ir.resolve_input_shapes(proto, input_shapes)
    return Model(proto=proto, input_shapes=shapes, path=where,
                 shapes=ir.inferred_shapes(proto, shapes))
