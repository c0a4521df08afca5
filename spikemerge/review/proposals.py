"""What spikemerge proposed for an output folder, what a curator saved, and how the two compare.

The proposals are the merges of ``OUT/curation.json`` (written by ``spikemerge run`` or
``apply_merges``), each joined with its candidate group's verdict from ``OUT/decisions.csv``
(confidence, reasoning). A collect overwrites ``curation.json`` with the curator's version, so the
proposals are first kept in ``OUT/review/proposals.json``; that snapshot is what later collects
compare with.

Comparison rules (unit ids are compared as text, so ``7`` and ``"7"`` are one unit):

- a proposed merge is *accepted* when the curator kept exactly its units;
- otherwise it is *rejected*; a curated merge that overlaps it is named as its replacement;
- a curated merge that was not proposed is *added*, attributed to the candidate group whose units
  contain it (with that group's verdict and confidence) when there is one;
- per judged group, the curator *agrees* with the judge when the merges the curator made inside
  the group are exactly the merges the judge proposed for it (none for both counts).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import SpikemergeError, one_line
from ..tools.curation.format import CURATION_FILE
from ..tools.judges.base import UnitId
from ..tools.schemas import parse_units_cell, read_decisions

REVIEW_FOLDER = "review"
PROPOSALS_FILE = "proposals.json"
SAVED_FILE = "saved_curation.json"
REVIEW_FILE = "review.json"
DECISIONS_FILE = "decisions.csv"


def _key(unit_ids: Sequence[UnitId]) -> frozenset[str]:
    return frozenset(str(u) for u in unit_ids)


@dataclass(frozen=True)
class JudgedGroup:
    """A candidate group and the judge's verdict on it, as ``decisions.csv`` records them."""

    group_id: int
    unit_ids: tuple[UnitId, ...]
    decision: str
    confidence: float | None
    reasoning: str = ""


@dataclass(frozen=True)
class Proposal:
    """One merge spikemerge proposed, with the verdict behind it."""

    group_id: int | None
    unit_ids: tuple[UnitId, ...]
    new_unit_id: UnitId | None = None
    confidence: float | None = None
    reasoning: str = ""


@dataclass
class Proposed:
    """Everything a review compares against: the analyzer, its units, the proposals, the judged groups."""

    analyzer: str
    unit_ids: list[UnitId]
    merges: list[Proposal]
    groups: list[JudgedGroup]
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": "1", "analyzer": self.analyzer, "unit_ids": list(self.unit_ids),
            "merges": [asdict(p) for p in self.merges], "groups": [asdict(g) for g in self.groups],
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Proposed":
        return cls(
            analyzer=data["analyzer"], unit_ids=list(data["unit_ids"]),
            merges=[Proposal(**{**m, "unit_ids": tuple(m["unit_ids"])}) for m in data["merges"]],
            groups=[JudgedGroup(**{**g, "unit_ids": tuple(g["unit_ids"])}) for g in data["groups"]],
            provenance=dict(data.get("provenance", {})),
        )

    def group_of(self, unit_ids: Sequence[UnitId]) -> JudgedGroup | None:
        """The smallest judged group holding all of ``unit_ids``."""
        wanted = _key(unit_ids)
        holding = [g for g in self.groups if wanted <= _key(g.unit_ids)]
        return min(holding, key=lambda g: len(g.unit_ids)) if holding else None


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpikemergeError(f"{what} {path} does not exist") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise SpikemergeError(f"{what} {path} is not readable JSON ({one_line(exc)}): give the file the GUI saved") from None
    if not isinstance(data, dict):
        raise SpikemergeError(f"{what} {path} is not a JSON object: give a SpikeInterface curation file")
    return data


def read_judged_groups(out: Path) -> list[JudgedGroup]:
    """The verdicts of ``OUT/decisions.csv``, validated (an empty list when the file is missing)."""
    path = Path(out) / DECISIONS_FILE
    if not path.exists():
        return []
    return [JudgedGroup(group_id=row.group_id, unit_ids=tuple(parse_units_cell(row.unit_ids)), decision=row.decision,
                        confidence=row.confidence, reasoning=row.reasoning) for row in read_decisions(path)]


def proposals_from_curation(out: Path) -> Proposed:
    """Build the proposals from ``OUT/curation.json`` and ``OUT/decisions.csv``."""
    out = Path(out)
    path = out / CURATION_FILE
    if not path.exists():
        raise SpikemergeError(
            f"{out} has no {CURATION_FILE}: run `spikemerge run ANALYZER --out {out}` first "
            "(or session.apply_merges(confirm=True, write_analyzer=False))"
        )
    curation = _read_json(path, "curation file")
    provenance = dict(curation.get("provenance") or {})
    analyzer = provenance.get("analyzer")
    if not analyzer:
        raise SpikemergeError(f"{path} does not say which analyzer it was made from: pass --analyzer PATH")
    groups = read_judged_groups(out)
    by_id = {g.group_id: g for g in groups}
    group_of_merge = {_key(info["unit_ids"]): info.get("group_id") for info in provenance.get("groups", [])}
    merges = []
    for merge in curation.get("merges") or []:
        units = tuple(merge["unit_ids"])
        gid = group_of_merge.get(_key(units))
        verdict = by_id.get(gid) if gid is not None else None
        merges.append(Proposal(
            group_id=gid, unit_ids=units, new_unit_id=merge.get("new_unit_id"),
            confidence=verdict.confidence if verdict else None, reasoning=verdict.reasoning if verdict else "",
        ))
    return Proposed(analyzer=str(analyzer), unit_ids=list(curation["unit_ids"]), merges=merges, groups=groups,
                    provenance=provenance)


def load_proposals(out: Path) -> Proposed:
    """The proposals of ``out``: its ``curation.json``, or the snapshot taken before a collect replaced it."""
    out = Path(out)
    snapshot = out / REVIEW_FOLDER / PROPOSALS_FILE
    curation_path = out / CURATION_FILE
    reviewed = curation_path.exists() and "review" in (_read_json(curation_path, "curation file").get("provenance") or {})
    if reviewed:
        if not snapshot.exists():
            raise SpikemergeError(f"{curation_path} is already a reviewed curation and {snapshot} is missing: run spikemerge again")
        return Proposed.from_dict(_read_json(snapshot, "proposals file"))
    return proposals_from_curation(out)


def read_curated(path: Path, unit_ids: Sequence[UnitId]) -> dict[str, Any]:
    """A SpikeInterface curation file (format 1 or 2), validated, as a format-2 dict.

    Raises a one-line error when it is not a curation or names units the analyzer does not have.
    """
    from spikeinterface.curation.curation_model import Curation

    data = _read_json(path, "curation file")
    try:
        model = Curation(**data)
    except Exception as exc:  # pydantic ValidationError, ValueError
        raise SpikemergeError(f"{path} is not a SpikeInterface curation: {one_line(exc)}") from None
    curated = model.model_dump(exclude={"supported_versions"})
    curated["format_version"] = "2"
    known = _key(unit_ids)
    strangers = sorted(set(map(str, curated["unit_ids"])) - known)
    if strangers:
        raise SpikemergeError(
            f"{path} curates units {strangers[:5]} that this analyzer does not have: give the curation of this output folder"
        )
    return curated


@dataclass(frozen=True)
class Added:
    """A merge the curator made that spikemerge did not propose."""

    unit_ids: tuple[UnitId, ...]
    group_id: int | None
    decision: str | None
    confidence: float | None
    replaces: tuple[int | None, ...] = ()


@dataclass
class Comparison:
    """Accepted, rejected and added merges, and how often the curator agreed with the judge."""

    accepted: list[Proposal]
    rejected: list[tuple[Proposal, list[UnitId] | None]]
    added: list[Added]
    groups_agreed: int
    groups_judged: int

    @property
    def proposed(self) -> int:
        return len(self.accepted) + len(self.rejected)

    def summary(self) -> str:
        """One line on how much the curator agreed with the judge."""
        kept = (f"kept {len(self.accepted)} of {self.proposed} proposed merges "
                f"({100 * len(self.accepted) / self.proposed:.0f} %)") if self.proposed else "had no proposed merge to check"
        groups = (f"; agreed with the judge on {self.groups_agreed} of {self.groups_judged} judged groups "
                  f"({100 * self.groups_agreed / self.groups_judged:.0f} %)") if self.groups_judged else ""
        return f"The curator {kept}, rejected {len(self.rejected)}, added {len(self.added)}{groups}."


def compare(proposed: Proposed, curated_merges: Sequence[Sequence[UnitId]]) -> Comparison:
    """Compare the proposed merges with the merges a curator saved (see the module docstring)."""
    curated = [tuple(m) for m in curated_merges if len(m) >= 2]
    curated_keys = {_key(m) for m in curated}
    proposed_keys = {_key(p.unit_ids) for p in proposed.merges}
    accepted = [p for p in proposed.merges if _key(p.unit_ids) in curated_keys]
    rejected = []
    for p in proposed.merges:
        if _key(p.unit_ids) in curated_keys:
            continue
        overlapping = [m for m in curated if _key(m) & _key(p.unit_ids)]
        rejected.append((p, list(overlapping[0]) if overlapping else None))
    added = []
    for merge in curated:
        if _key(merge) in proposed_keys:
            continue
        group = proposed.group_of(merge)
        replaces = tuple(p.group_id for p in proposed.merges
                         if _key(p.unit_ids) & _key(merge) and _key(p.unit_ids) not in curated_keys)
        added.append(Added(unit_ids=merge, group_id=group.group_id if group else None,
                           decision=group.decision if group else None,
                           confidence=group.confidence if group else None, replaces=replaces))
    agreed = 0
    judged = [g for g in proposed.groups if g.decision in ("merge", "not merge", "abstain")]
    for group in judged:
        members = _key(group.unit_ids)
        judge_parts = {_key(p.unit_ids) for p in proposed.merges if p.group_id == group.group_id}
        curator_parts = {_key(m) & members for m in curated if len(_key(m) & members) >= 2}
        agreed += judge_parts == curator_parts
    return Comparison(accepted=accepted, rejected=rejected, added=added, groups_agreed=agreed, groups_judged=len(judged))
