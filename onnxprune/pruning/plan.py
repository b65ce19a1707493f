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
from onnxprune.pruning import replay

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
    recovery: Recovery = field(default_factory=lambda: Recovery())

    def keep(self) -> dict[int, list[int]]:
        """Group id -> kept channel indices."""
        return {g.id: list(g.keep) for g in self.groups}

    def to_dict(self, sidecar: str | None = None) -> dict[str, object]:
        """JSON-ready form (``sidecar``: file name of the compensation arrays, if any)."""
        return {
            "format": FORMAT,
            "fingerprint": self.fingerprint,
            "method": dict(self.method),
            "recovery": self.recovery.to_dict(sidecar),
            "groups": [
                {"id": g.id, "roots": list(g.roots), "size": g.size, "keep": list(g.keep),
                 **({"info": dict(g.info)} if g.info else {})}
                for g in self.groups
            ],
        }

    def save(self, path: str | os.PathLike[str]) -> Path | None:
        """Write the plan as JSON, and its compensation updates next to it (atomically).

        Returns:
            The sidecar ``.npz`` holding the compensation updates, when there are any.

        """
        dest = Path(path)
        sidecar = None
        updates = self.recovery.updates
        if updates:
            sidecar = dest.with_suffix(".npz") if dest.suffix != ".npz" else \
                dest.with_name(dest.name + ".npz")
            _, arrays = replay.to_arrays(updates)
            tmp_npz = sidecar.with_name(f".{sidecar.name}.tmp.npz")
            np.savez_compressed(tmp_npz, **arrays)  # type: ignore[arg-type]
            os.replace(tmp_npz, sidecar)
        tmp = dest.with_name(f".{dest.name}.tmp")
        text = json.dumps(self.to_dict(sidecar.name if sidecar else None), indent=1,
                          default=_jsonable)
        tmp.write_text(text)
        os.replace(tmp, dest)
        return sidecar


@dataclass(frozen=True)
class Recovery:
    """What recovery ``prune`` used after the surgery, and the data to replay it.

    Attributes:
        compensation: whether compensation edited the consumers.
        updates: the compensation edits (:mod:`onnxprune.pruning.replay`), or None when they
            were recorded but are not available (a plan read without its sidecar file).
        refinement: whether sequential refinement re-fitted the compensation (its final
            weights are in ``updates`` like the one-shot ones).
        distill_epochs: epochs of distillation, at least 1 when distilled for a time budget
            (its weights are not in the plan).
        steps: the number of prune steps (compensation of steps after the first ran on
            an already pruned model and is not in the plan).
        missing: the sidecar file that was expected but not found (for messages).
        known: False for a plan saved before plans recorded their recovery.

    """

    compensation: bool = False
    updates: tuple[replay.Update, ...] | None = ()
    refinement: bool = False
    distill_epochs: int = 0
    steps: int = 1
    missing: str = ""
    known: bool = True

    def replay_problem(self) -> str:
        """Say why replaying channels and updates would not give prune's model ("" if it would)."""
        if not self.known:
            return ("the plan was saved by an older onnxprune that did not record whether "
                    "prune compensated")
        if self.distill_epochs:
            return ("prune distilled the model and a plan does not hold trained weights")
        if self.compensation and self.steps > 1:
            return (f"prune compensated in {self.steps} steps on intermediate models and a plan "
                    "holds the first step's compensation only")
        if self.compensation and self.updates is None:
            return (f"prune compensated and its updates are in {self.missing or 'a sidecar .npz'}"
                    ", which was not found next to the plan")
        return ""

    def to_dict(self, sidecar: str | None) -> dict[str, object]:
        """JSON-ready form; the update arrays live in ``sidecar``."""
        records = replay.to_arrays(self.updates)[0] if self.updates else []
        return {"compensation": self.compensation, "refinement": self.refinement,
                "distill_epochs": self.distill_epochs, "steps": self.steps,
                "updates_file": sidecar, "updates": records}

    @classmethod
    def from_dict(cls, data: Mapping[str, object], folder: Path) -> Recovery:
        """Read the JSON form, loading the update arrays from ``folder`` when present."""
        records = list(data.get("updates") or [])  # type: ignore[call-overload]
        name = data.get("updates_file")
        updates: tuple[replay.Update, ...] | None = ()
        missing = ""
        if records and name:
            path = folder / str(name)
            if path.is_file():
                with np.load(path) as z:
                    updates = replay.from_arrays(records, {k: z[k] for k in z.files})
            else:
                updates, missing = None, str(path)
        return cls(bool(data.get("compensation", False)), updates,
                   bool(data.get("refinement", False)),
                   int(data.get("distill_epochs", 0) or 0),  # type: ignore[call-overload]
                   int(data.get("steps", 1) or 1), missing)  # type: ignore[call-overload]


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
        recovery = (Recovery.from_dict(data["recovery"], p.parent) if "recovery" in data
                    else Recovery(known=False))
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
    return Plan(groups, fp, data.get("method", {}), recovery)
