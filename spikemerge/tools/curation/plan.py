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
    censor_ms : list of float
        Per group, the window within which a merged unit's second spike is a copy of the first
        (see :func:`censor_window`); empty for a plan made without duplicate lags.
    """

    groups: list[list[UnitId]] = field(default_factory=list)
    source_group_ids: list[int] = field(default_factory=list)
    duplicate_flags: list[bool] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    censor_ms: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.groups)


CENSOR_MS = 0.3
"""Censor window of a merge without duplicates: two detections of one spike by units aligned on the same sample."""


MAX_REACH_MS = 2.0
"""Farthest second copy peak a merge's censor window reaches for (``duplicate_lags``): a window past
~2.5 ms would drop a bursting cell's own spikes, which follow each other by a few milliseconds."""


def censor_window(lags_ms: Sequence[float], base_ms: float = CENSOR_MS, jitter_ms: float = 0.25) -> float:
    """The censor window that leaves one copy of each spike a merged group detected twice.

    A duplicate unit detects the same spikes ``lag`` ms away from the other (real sorters
    misalign a duplicate's template by up to ~2 ms), so after the merge each such spike appears
    twice, ``|lag|`` apart. SpikeInterface's ``censor_ms`` removes a spike that follows the
    spike just before it (kept or not) within the window, so the window must reach the largest lag plus the
    spike-time jitter around it (``jitter_ms``, the duplicate window's half-width); a fixed
    0.3 ms keeps both copies of a 1.9 ms duplicate. The window also drops a real spike that
    follows the previous one by less than the window: with a window under ~2.5 ms these are
    intervals at the edge of a neuron's refractory period (measured on a 2 ms-refractory 8 Hz
    train and a 1.9 ms duplicate: under 1 % of spikes).
    """
    widest = max((abs(float(x)) for x in lags_ms), default=0.0)
    return float(max(base_ms, widest + jitter_ms)) if widest > 0 else float(base_ms)


def duplicate_lags(pairs: Sequence[Mapping[str, Any]], members: set, min_fraction: float,
                   min_excess: float) -> dict[frozenset, float]:
    """The measured lag of every pair of ``members`` whose evidence shows the same spikes twice.

    ``pairs`` are pair-evidence records (``duplicate_fraction``, ``duplicate_excess``,
    ``duplicate_lag_ms``, and ``duplicate_reach_ms`` where copies sit at more than one lag: the
    farthest one's, unsigned); a pair counts when both its share of coincident spikes and their
    excess over chance reach the judge's duplicate thresholds. Keys are
    ``frozenset({str(a), str(b)})``, as :func:`plan_merges` reads them.
    """
    out = {}
    for p in pairs:
        if ({p["unit_a"], p["unit_b"]} <= members and p.get("duplicate_fraction", 0.0) >= min_fraction
                and p.get("duplicate_excess", 0.0) >= min_excess):
            # copies at a second lag (``duplicate_reach_ms``) are copies too: the window reaches them,
            # up to ``MAX_REACH_MS``
            reach = min(float(p.get("duplicate_reach_ms", 0.0)), MAX_REACH_MS)
            out[frozenset((str(p["unit_a"]), str(p["unit_b"])))] = max(abs(float(p["duplicate_lag_ms"])), reach)
    return out


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
    duplicate_lags_ms: Mapping[frozenset, float] | None = None,
    censor_ms: float = CENSOR_MS,
    jitter_ms: float = 0.25,
) -> MergePlan:
    """Decide which groups to merge from judges' verdicts, without chaining separate judgements.

    Only ``decision == "merge"`` verdicts are merged, and each merges exactly its
    ``merge_groups`` (a verdict may hold several merges: one group judged to hold two neurons'
    splits). Each part is a merge claim. When claims share units:

    * identical unit sets are one merge (the first group applies it, the others are listed in
      ``skipped`` as covered by it);
    * if one set contains all the others and no verdict of the overlap put two of its units in
      different parts, the containing set was judged as a whole and is applied (the contained
      claims are listed as covered by it);
    * otherwise (A-B and B-C judged separately) none of them is applied: each is listed in
      ``skipped`` with a reason asking for the union to be judged as one group.

    A merge is also skipped when another verdict judged two of its units apart ("not merge",
    or placed in different parts of its partition). Verdicts with ``decision == "error"`` or
    ``"abstain"`` neither merge nor keep apart. When several verdicts carry the same group id
    the last one counts, as in a resumed journal.

    Parameters
    ----------
    verdicts : sequence of Verdict
        The judges' decisions.
    unit_ids : sequence of UnitId
        The analyzer's unit ids; every unit a verdict names must be one of them.
    duplicates : mapping of int to bool, optional
        Group id -> whether the group was judged a duplicate (narrow zero-lag CCG peak).
    duplicate_lags_ms : mapping of frozenset to float, optional
        ``frozenset({str(a), str(b)})`` -> the measured lag (ms) of each pair judged to hold the
        same spikes twice; a group's censor window reaches the largest lag among its pairs
        (:func:`censor_window`), so the merged unit keeps one copy of each spike.
    censor_ms, jitter_ms : float
        The censor window of a group without duplicates, and the spike-time jitter added to a
        duplicate's lag.

    Returns
    -------
    MergePlan
        One entry per applied part; a group with two merges appears twice in
        ``source_group_ids``.

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

    blocks: dict[int, list[set[str]]] = {}  # each deciding verdict's partition
    claims: dict[tuple[int, int], list[UnitId]] = {}  # (group id, part) -> the units it merges
    for gid, verdict in latest.items():
        if verdict.decision in ("error", "abstain"):
            continue
        _canonical(verdict.unit_ids, lookup, order, gid)  # every unit must exist
        blocks[gid] = [{str(lookup[str(_native(u))]) for u in block} for block in verdict.blocks()]
        for k, part in enumerate(verdict.merge_groups):
            claims[(gid, k)] = _canonical(part, lookup, order, gid)

    def apart_in(gid: int, units: set[str]) -> list[str]:
        """Two units of ``units`` that verdict ``gid`` placed in different parts, if any."""
        hits = [block & units for block in blocks[gid] if block & units]
        if len(hits) < 2:
            return []
        return sorted({next(iter(hits[0])), next(iter(hits[1]))}, key=order.__getitem__)

    # connected components of claims that share units (union-find)
    parent = {c: c for c in claims}

    def root(c: tuple[int, int]) -> tuple[int, int]:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    owner: dict[str, tuple[int, int]] = {}
    for c in sorted(claims):
        for unit in claims[c]:
            key = str(unit)
            if key in owner:
                parent[root(c)] = root(owner[key])
            else:
                owner[key] = c
    components: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for c in sorted(claims):
        components.setdefault(root(c), []).append(c)

    chosen: list[tuple[int, int]] = []
    skipped: dict[tuple[int, int], str] = {}
    covered_by: dict[tuple[int, int], tuple[int, int]] = {}
    for members in components.values():
        if len(members) == 1:
            chosen.append(members[0])
            continue
        sets = {c: {str(u) for u in claims[c]} for c in members}
        biggest = max(members, key=lambda c: (len(sets[c]), -c[0], -c[1]))
        top = sets[biggest]
        contained = all(sets[c] <= top for c in members)
        if contained and not any(apart_in(gid, top) for gid in {c[0] for c in members}):
            chosen.append(biggest)
            for c in members:
                if c != biggest:
                    covered_by[c] = biggest
                    skipped[c] = (
                        f"not applied on its own: units {_fmt(claims[c])} are inside group {biggest[0]}'s "
                        f"merge {_fmt(claims[biggest])}, which is applied"
                    )
            continue
        union = sorted(set().union(*sets.values()), key=order.__getitem__)
        union_ids = _fmt([lookup[k] for k in union])
        for c in members:
            others = [o for o in members if o != c and sets[o] & sets[c]]
            shared = sorted(set().union(*(sets[o] & sets[c] for o in others)), key=order.__getitem__)
            skipped[c] = (
                f"shares unit(s) {_fmt([lookup[k] for k in shared])} with group(s) "
                f"{', '.join(sorted({str(o[0]) for o in others}))}, judged separately; merges are not chained: "
                f"judge units {union_ids} as one group, or re-judge the groups so they do not overlap"
            )

    plan = MergePlan()
    for c in sorted(chosen):
        gid, units = c[0], {str(u) for u in claims[c]}
        conflict = next(((other, apart_in(other, units)) for other in sorted(blocks)
                         if other != gid and apart_in(other, units)), None)
        if conflict is not None:
            other, both = conflict
            skipped[c] = (
                f"group {other} judged units {_fmt([lookup[k] for k in both])} not to be one neuron, which "
                f"contradicts this merge: re-judge units {_fmt(claims[c])} together"
            )
            continue
        covered = [o for o, by in covered_by.items() if by == c]
        plan.groups.append(list(claims[c]))
        plan.source_group_ids.append(gid)
        plan.duplicate_flags.append(bool(duplicates.get(gid, False) or any(duplicates.get(o[0], False) for o in covered)))
        members = [str(u) for u in claims[c]]
        lags = [lag for key, lag in (duplicate_lags_ms or {}).items() if set(map(str, key)) <= set(members)]
        plan.censor_ms.append(censor_window(lags, censor_ms, jitter_ms))
    plan.skipped = sorted((c[0], reason) for c, reason in skipped.items())
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
