"""Plans: which channels each group keeps, as plain JSON that can be edited and replayed."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from onnxprune.channels.graph import ChannelGraph
from onnxprune.errors import InputError

FORMAT = "onnxprune-plan/1"


@dataclass(frozen=True)
class GroupPlan:
    """The kept channels of one group and the numbers that justified them."""

    id: int
    roots: tuple[str, ...]
    size: int
    keep: tuple[int, ...]
    info: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """A pruning plan for one model (identified by its graph fingerprint)."""

    groups: tuple[GroupPlan, ...]
    fingerprint: str
    method: Mapping[str, object] = field(default_factory=dict)

    def keep(self) -> dict[int, list[int]]:
        """Group id -> kept channel indices."""
        return {g.id: list(g.keep) for g in self.groups}

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "format": FORMAT,
            "fingerprint": self.fingerprint,
            "method": dict(self.method),
            "groups": [
                {"id": g.id, "roots": list(g.roots), "size": g.size, "keep": list(g.keep),
                 **({"info": dict(g.info)} if g.info else {})}
                for g in self.groups
            ],
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the plan as JSON (atomically)."""
        dest = Path(path)
        tmp = dest.with_name(f".{dest.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, default=_jsonable))
        os.replace(tmp, dest)


def _jsonable(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def fingerprint(cg: ChannelGraph) -> str:
    """Return a short hash of the groups' structure (ids, sizes, roots) that a plan must match."""
    text = ";".join(f"{g.id}:{g.size}:{','.join(g.root_nodes)}" for g in cg.groups)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def make_plan(
    cg: ChannelGraph,
    keep: Mapping[int, list[int] | np.ndarray],
    *,
    method: Mapping[str, object] | None = None,
    info: Mapping[int, Mapping[str, object]] | None = None,
) -> Plan:
    """Build a plan from group id -> kept indices."""
    groups = tuple(
        GroupPlan(
            id=gid, roots=cg.group(gid).root_nodes, size=cg.group(gid).size,
            keep=tuple(sorted(int(i) for i in k)), info=dict((info or {}).get(gid, {})),
        )
        for gid, k in sorted(keep.items())
    )
    return Plan(groups, fingerprint(cg), dict(method or {}))


def load_plan(path: str | os.PathLike[str], cg: ChannelGraph) -> Plan:
    """Read a plan and check that it belongs to the model of ``cg``.

    Raises:
        InputError: unreadable, of another format, or made for a different model.

    """
    p = Path(path)
    try:
        data = json.loads(p.read_text())
        groups = tuple(
            GroupPlan(int(g["id"]), tuple(g["roots"]), int(g["size"]),
                      tuple(int(i) for i in g["keep"]), g.get("info", {}))
            for g in data["groups"]
        )
        fp = str(data["fingerprint"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{p}: not a readable onnxprune plan ({e}); save one with "
                         "'onnxprune prune --save-plan'") from e
    if data.get("format") != FORMAT:
        raise InputError(f"{p}: plan format {data.get('format')!r}, expected {FORMAT!r}")
    if fp != fingerprint(cg):
        raise InputError(
            f"{p}: this plan was made for a different model (fingerprint {fp}, model has "
            f"{fingerprint(cg)}); re-run 'onnxprune prune --save-plan' on this model"
        )
    return Plan(groups, fp, data.get("method", {}))
