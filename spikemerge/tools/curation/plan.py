"""Which judged merges may be applied: exactly what a judge decided, never a chain of separate judgements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ...errors import SpikemergeError
from ..judges.base import UnitId, Verdict


@dataclass
class MergePlan:
    """Which unit groups to merge, and which verdicts were not applied and why.

    Attributes
    ----------
    groups : list of list of UnitId
        Disjoint groups of at least two units, ordered by the candidate group they came from;
        units inside a group follow the analyzer's unit order.
    source_group_ids : list of int
        The candidate group id each group came from.
    duplicate_flags : list of bool
        Whether the group was judged a duplicate (the same spikes detected twice).
    skipped : list of (int, str)
        ``(group_id, reason)`` for merge verdicts that are not applied as their own group.
    """

    groups: list[list[UnitId]] = field(default_factory=list)
    source_group_ids: list[int] = field(default_factory=list)
    duplicate_flags: list[bool] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.groups)


def _native(unit_id: Any) -> UnitId:
    """A numpy scalar id as the plain int or str it stands for."""
    return unit_id.item() if isinstance(unit_id, np.generic) else unit_id


def _id_lookup(unit_ids: Sequence[UnitId]) -> tuple[dict[str, UnitId], dict[str, int]]:
    """Map the text of each unit id to the id itself and to its position.

    Verdicts read back from JSON or CSV may carry ``"7"`` for unit ``7``; matching on text
    accepts both (an analyzer never holds both ``7`` and ``"7"``).
    """
    ids = [_native(u) for u in unit_ids]
    return {str(u): u for u in ids}, {str(u): i for i, u in enumerate(ids)}


def _canonical(
    units: Sequence[UnitId], lookup: dict[str, UnitId], order: dict[str, int], group_id: int
) -> list[UnitId]:
    unknown = [u for u in units if str(_native(u)) not in lookup]
    if unknown:
        known = ", ".join(str(u) for u in list(lookup.values())[:12])
        raise SpikemergeError(
            f"group {group_id} names unit(s) {', '.join(str(u) for u in unknown)} that the analyzer does not have "
            f"(its units: {known}{', ...' if len(lookup) > 12 else ''}): judge groups from this analyzer's candidates"
        )
    keys = sorted({str(_native(u)) for u in units}, key=order.__getitem__)
    return [lookup[k] for k in keys]


def _fmt(units: Sequence[UnitId]) -> str:
    return "-".join(str(u) for u in units)


def plan_merges(
    verdicts: Sequence[Verdict],
    unit_ids: Sequence[UnitId],
    duplicates: Mapping[int, bool] | None = None,
) -> MergePlan:
    """Decide which groups to merge from judges' verdicts, without chaining separate judgements.

    Only ``decision == "merge"`` verdicts are merged, and each merges exactly its
    ``merge_unit_ids``. When merge verdicts share units:

    * identical unit sets are one merge (the first group applies it, the others are listed in
      ``skipped`` as covered by it);
    * if one set contains all the others and no verdict of the overlap left out a unit of it,
      the containing set was judged as a whole and is applied (the contained verdicts are
      listed as covered by it);
    * otherwise (A-B and B-C judged separately) none of them is applied: each is listed in
      ``skipped`` with a reason asking for the union to be judged as one group.

    A merge is also skipped when another verdict judged two of its units apart ("not merge",
    or left out of that verdict's merge subset while a partner was kept). Verdicts with
    ``decision == "error"`` are ignored. When several verdicts carry the same group id the
    last one counts, as in a resumed journal.

    Parameters
    ----------
    verdicts : sequence of Verdict
        The judges' decisions.
    unit_ids : sequence of UnitId
        The analyzer's unit ids; every unit a verdict names must be one of them.
    duplicates : mapping of int to bool, optional
        Group id -> whether the group was judged a duplicate (narrow zero-lag CCG peak).

    Returns
    -------
    MergePlan

    Raises
    ------
    SpikemergeError
        A verdict names a unit the analyzer does not have.
    """
    duplicates = dict(duplicates or {})
    lookup, order = _id_lookup(unit_ids)
    latest: dict[int, Verdict] = {}
    for verdict in verdicts:
        latest[int(verdict.group_id)] = verdict

    judged: dict[int, list[UnitId]] = {}  # every unit each verdict looked at
    merged: dict[int, list[UnitId]] = {}  # the units each merge verdict merges
    apart: list[tuple[int, set[str]]] = []  # (group id, units judged not one neuron)
    for gid, verdict in latest.items():
        if verdict.decision == "error":
            continue
        judged[gid] = _canonical(verdict.unit_ids, lookup, order, gid)
        if verdict.decision == "merge":
            merged[gid] = _canonical(verdict.merge_unit_ids, lookup, order, gid)
        else:
            apart.append((gid, {str(u) for u in judged[gid]}))

    # connected components of merge verdicts that share units (union-find on group ids)
    parent = {gid: gid for gid in merged}

    def root(gid: int) -> int:
        while parent[gid] != gid:
            parent[gid] = parent[parent[gid]]
            gid = parent[gid]
        return gid

    owner: dict[str, int] = {}
    for gid in sorted(merged):
        for unit in merged[gid]:
            key = str(unit)
            if key in owner:
                parent[root(gid)] = root(owner[key])
            else:
                owner[key] = gid
    components: dict[int, list[int]] = {}
    for gid in sorted(merged):
        components.setdefault(root(gid), []).append(gid)

    chosen: list[int] = []
    skipped: dict[int, str] = {}
    covered_by: dict[int, int] = {}  # contained verdict -> the group whose merge includes it
    for members in components.values():
        if len(members) == 1:
            chosen.append(members[0])
            continue
        sets = {gid: {str(u) for u in merged[gid]} for gid in members}
        biggest = max(members, key=lambda g: (len(sets[g]), -g))
        top = sets[biggest]
        contained = all(sets[g] <= top for g in members)
        left_out = any(
            ({str(u) for u in judged[g]} - sets[g]) & top for g in members
        )
        if contained and not left_out:
            chosen.append(biggest)
            for gid in members:
                if gid != biggest:
                    covered_by[gid] = biggest
                    skipped[gid] = (
                        f"not applied on its own: units {_fmt(merged[gid])} are inside group {biggest}'s "
                        f"merge {_fmt(merged[biggest])}, which is applied"
                    )
            continue
        union = sorted(set().union(*sets.values()), key=order.__getitem__)
        union_ids = _fmt([lookup[k] for k in union])
        for gid in members:
            others = [g for g in members if g != gid and sets[g] & sets[gid]]
            shared = sorted(set().union(*(sets[g] & sets[gid] for g in others)), key=order.__getitem__)
            skipped[gid] = (
                f"shares unit(s) {_fmt([lookup[k] for k in shared])} with group(s) "
                f"{', '.join(str(g) for g in others)}, judged separately; merges are not chained: "
                f"judge units {union_ids} as one group, or re-judge the groups so they do not overlap"
            )

    plan = MergePlan()
    for gid in sorted(chosen):
        units = {str(u) for u in merged[gid]}
        conflict = next(
            ((other, units & seen) for other, seen in apart if other != gid and len(units & seen) >= 2), None
        )
        if conflict is not None:
            other, both = conflict
            both_ids = _fmt(sorted((lookup[k] for k in both), key=lambda u: order[str(u)]))
            skipped[gid] = (
                f"group {other} judged units {both_ids} not to be one neuron, which contradicts this merge: "
                f"re-judge units {_fmt(merged[gid])} together"
            )
            continue
        covered = [g for g, by in covered_by.items() if by == gid]
        plan.groups.append(list(merged[gid]))
        plan.source_group_ids.append(gid)
        plan.duplicate_flags.append(bool(duplicates.get(gid, False) or any(duplicates.get(g, False) for g in covered)))
    plan.skipped = sorted(skipped.items())
    return plan


def new_unit_ids_for(unit_ids: Sequence[UnitId], num_groups: int) -> list[UnitId]:
    """Ids for ``num_groups`` merged units that no existing unit has ("append" strategy).

    Integer ids continue after the largest one; string ids that are all digits do the same
    as text; other string ids become ``"merge0"``, ``"merge1"``, ... skipping names in use.
    """
    ids = [_native(u) for u in unit_ids]
    if all(isinstance(u, (int, np.integer)) and not isinstance(u, bool) for u in ids):
        start = max((int(u) for u in ids), default=-1) + 1
        return [start + i for i in range(num_groups)]
    texts = [str(u) for u in ids]
    if texts and all(t.isdigit() for t in texts):
        start = max(int(t) for t in texts) + 1
        return [str(start + i) for i in range(num_groups)]
    taken, new, k = set(texts), [], 0
    while len(new) < num_groups:
        name = f"merge{k}"
        if name not in taken:
            new.append(name)
        k += 1
    return new
