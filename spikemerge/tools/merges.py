"""apply_merges: turn judged verdicts into SpikeInterface merges, a curation file and a new analyzer.

Three steps, each usable alone:

1. :func:`plan_merges` reads verdicts and decides which unit groups may be merged. It merges
   exactly what a judge decided, never a transitive chain: if A-B and B-C were judged separately,
   neither is applied and both are reported, because "A-B-C is one neuron" was never judged.
2. :func:`build_curation` / :func:`write_curation` write the plan in SpikeInterface's curation
   format (version "2"), with our provenance as an extra top-level key. SpikeInterface's pydantic
   ``Curation`` model ignores unknown top-level keys (its default ``extra="ignore"``), so the file
   validates, loads with ``load_curation`` and applies with ``apply_curation`` unchanged.
3. :func:`apply_merges` merges a ``SortingAnalyzer`` in memory (the input object is never
   modified), writes the result into a *new* binary folder through a staged temporary folder,
   writes ``curation.json`` and records both in a small manifest so :func:`undo_last_apply`
   can remove exactly what it wrote.

Decisions
---------
New unit ids
    Strategy "append": merged units get ids after the largest existing id (``max + 1``, ...; for
    non-numeric string ids ``"merge0"``, ``"merge1"``, ... skipping names in use). An id never
    names a different unit before and after curation. The ids are chosen here and passed
    explicitly both to ``merge_units`` and into ``curation.json``, so the file and the merged
    analyzer always agree.
Censoring
    Every merged group is censored with ``censor_ms`` (0.3 ms), not only groups flagged as
    duplicates. Two spikes of one neuron are never 0.3 ms apart (the refractory period is about
    1-2 ms), so within a correct merge any such pair is the same event counted twice: removing
    the second copy is what a duplicate needs and removes nothing from a clean split. Censoring
    everything also keeps the result independent of whether the duplicate detector fired.
Sparsity overlap
    SpikeInterface's soft merge refuses groups whose sparsity masks overlap less than
    ``sparsity_overlap`` (0.75, intersection over union). For such a group we fall back, in
    order: (a) a soft merge with the threshold ignored, when the units share at least one
    channel (the merged unit keeps the shared channels, where both units are seen; cheap and
    needs no recording); (b) a hard merge (extensions recomputed from the recording on the
    union of channels) when the units share no channel and a recording is available; (c)
    otherwise the group is reported in ``skipped``. A hard merge makes SpikeInterface recompute
    every extension, so when one group needs it all groups of that apply are merged hard.
Folders
    The merged analyzer goes to ``out_dir/merged_analyzer``; if that exists, the next free
    ``merged_analyzer_2``, ``merged_analyzer_3``, ... is used. Nothing is ever overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from spikeinterface.core import SortingAnalyzer

from ..errors import SpikemergeError
from .outputs import staged_folder, to_jsonable, write_json_atomic
from .verdict import UnitId, Verdict

CURATION_FILE = "curation.json"
MANIFEST_FILE = ".spikemerge-merges.json"
UNDO_FOLDER = ".spikemerge-undo"
NEW_ID_STRATEGY = "append"
SPARSITY_OVERLAP = 0.75
"""SpikeInterface's default: the intersection-over-union of channels a soft merge needs."""

MODE_SOFT = "soft"
MODE_HARD = "hard"
MODE_SOFT_IGNORED = "soft, sparsity overlap ignored"


# --------------------------------------------------------------------------------------------
# plan


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


# --------------------------------------------------------------------------------------------
# curation file


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


def _one_line(exc: BaseException) -> str:
    text = " ".join(part.strip() for part in str(exc).strip().splitlines() if part.strip())
    return text[:400] or type(exc).__name__


def _validate(curation: Mapping[str, Any]) -> None:
    from spikeinterface.curation.curation_model import Curation

    try:
        Curation(**dict(curation))
    except Exception as exc:  # pydantic ValidationError, ValueError
        raise SpikemergeError(
            f"the curation is not valid SpikeInterface curation format: {_one_line(exc)}"
        ) from exc


def build_curation(
    unit_ids: Sequence[UnitId],
    plan: MergePlan,
    new_unit_ids: Sequence[UnitId],
    provenance: Mapping[str, Any],
) -> dict[str, Any]:
    """The plan as a SpikeInterface curation dict (format version "2") plus a provenance block.

    Parameters
    ----------
    unit_ids : sequence of UnitId
        All unit ids of the analyzer the curation applies to.
    plan : MergePlan
        The groups to merge.
    new_unit_ids : sequence of UnitId
        The id of each merged unit, aligned with ``plan.groups``.
    provenance : mapping
        Tool version, judge, model, prompt hash, thresholds, time... Stored under the top-level
        key ``"provenance"``, which SpikeInterface's ``Curation`` model ignores. The plan's group
        ids, duplicate flags and skipped verdicts are added under ``"groups"`` and ``"skipped"``
        unless the mapping already has those keys.

    Returns
    -------
    dict
        JSON-ready; validated with ``spikeinterface.curation.curation_model.Curation``.

    Raises
    ------
    SpikemergeError
        The ids do not fit (wrong count, a new id already used by another unit, overlapping groups).
    """
    if len(new_unit_ids) != len(plan.groups):
        raise SpikemergeError(
            f"{len(new_unit_ids)} new unit id(s) for {len(plan.groups)} merge group(s): give one per group"
        )
    groups_info = [
        {"group_id": gid, "unit_ids": list(units), "new_unit_id": new, "duplicate": dup}
        for gid, units, new, dup in zip(plan.source_group_ids, plan.groups, new_unit_ids, plan.duplicate_flags)
    ]
    block = dict(provenance)
    block.setdefault("groups", groups_info)
    block.setdefault("skipped", [{"group_id": gid, "reason": reason} for gid, reason in plan.skipped])
    curation = to_jsonable({
        "format_version": "2",
        "unit_ids": [_native(u) for u in unit_ids],
        "merges": [
            {"unit_ids": [_native(u) for u in units], "new_unit_id": _native(new)}
            for units, new in zip(plan.groups, new_unit_ids)
        ],
        "provenance": block,
    })
    _validate(curation)
    return curation


def write_curation(path: Path, curation: Mapping[str, Any]) -> Path:
    """Validate ``curation`` and write it atomically to ``path`` (loadable with ``load_curation``)."""
    data = to_jsonable(dict(curation))
    _validate(data)
    return write_json_atomic(Path(path), data)


# --------------------------------------------------------------------------------------------
# apply


@dataclass
class ApplyResult:
    """What :func:`apply_merges` did.

    Attributes
    ----------
    analyzer_folder : Path or None
        The new merged analyzer folder, or None when none was written.
    curation_path : Path
        The ``curation.json`` written (it lists only the merges that were applied).
    units_before, units_after : int
    merges : list of dict
        Per applied merge: ``group_id``, ``unit_ids``, ``new_unit_id``, ``mode`` ("soft",
        "hard" or "soft, sparsity overlap ignored"), ``censored``, ``duplicate``,
        ``spikes_removed`` (by censoring).
    skipped : list of (int, str)
        The plan's skipped verdicts plus groups that could not be merged, with the reason.

    Every attribute is a plain value (``to_jsonable(result.__dict__)`` is JSON-ready).
    """

    analyzer_folder: Path | None
    curation_path: Path
    units_before: int
    units_after: int
    merges: list[dict] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)

    def summary(self) -> str:
        where = f"merged analyzer in {self.analyzer_folder}" if self.analyzer_folder else "no analyzer written"
        text = (
            f"{len(self.merges)} merge(s) applied, {self.units_before} -> {self.units_after} units; "
            f"{where}; curation in {self.curation_path}"
        )
        if self.skipped:
            ids = ", ".join(str(g) for g, _ in self.skipped)
            text += f"; {len(self.skipped)} verdict(s) not applied (groups {ids})"
        return text


def _has_recording(analyzer: SortingAnalyzer) -> bool:
    return bool(analyzer.has_recording() or analyzer.has_temporary_recording())


def _overlap(analyzer: SortingAnalyzer, units: Sequence[UnitId]) -> tuple[float, int]:
    """Intersection-over-union of the group's sparsity masks, and the number of shared channels."""
    if analyzer.sparsity is None:
        return 1.0, analyzer.get_num_channels()
    masks = analyzer.sparsity.mask[analyzer.sorting.ids_to_indices(list(units))]
    inter = int(np.logical_and.reduce(masks, axis=0).sum())
    union = int(np.logical_or.reduce(masks, axis=0).sum())
    return (inter / union if union else 0.0), inter


def _merge(analyzer: SortingAnalyzer, groups: list[list[UnitId]], mode: str, censor_ms: float | None, n_jobs: int):
    """One SpikeInterface merge in memory, with explicit new ids. Returns (merged, new_ids)."""
    new_ids = new_unit_ids_for(analyzer.unit_ids, len(groups))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        merged = analyzer.merge_units(
            merge_unit_groups=[list(g) for g in groups],
            new_unit_ids=new_ids,
            censor_ms=censor_ms,
            merging_mode=mode,
            sparsity_overlap=0.0,  # each group's overlap was checked (and a fallback chosen) beforehand
            raise_error_if_overlap_fails=True,
            format="memory",
            n_jobs=n_jobs,
            progress_bar=False,
        )
    return merged, new_ids


def _next_free_folder(out_dir: Path, name: str) -> Path:
    candidate, k = out_dir / name, 2
    while candidate.exists():
        candidate = out_dir / f"{name}_{k}"
        k += 1
    return candidate


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _read_manifest(out_dir: Path) -> dict[str, Any]:
    path = Path(out_dir) / MANIFEST_FILE
    if not path.exists():
        return {"applies": []}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SpikemergeError(
            f"{path} is unreadable ({_one_line(exc)}): delete it to start a new undo history"
        ) from exc
    data.setdefault("applies", [])
    return data


def _run_merges(
    analyzer: SortingAnalyzer,
    groups: list[list[UnitId]],
    modes: list[str],
    censor_ms: float | None,
    n_jobs: int,
) -> tuple[Any, list[int], list[UnitId], str, dict[int, str]]:
    """Merge as many groups as possible; a failing group never loses the others.

    ``modes`` holds each group's planned mode (``MODE_SOFT``/``MODE_SOFT_IGNORED``/``MODE_HARD``).
    Returns the merged analyzer (or None), the indices of the applied groups, their new ids,
    the SpikeInterface merging mode used and ``{index: reason}`` for groups that failed.
    """
    failed: dict[int, str] = {}
    wanted = list(range(len(groups)))
    if any(m == MODE_HARD for m in modes):
        try:
            merged, new_ids = _merge(analyzer, [groups[i] for i in wanted], "hard", censor_ms, n_jobs)
            return merged, wanted, new_ids, "hard", failed
        except Exception as exc:
            reason = f"hard merge (recomputing from the recording) failed: {_one_line(exc)}"
            for i in wanted:
                if modes[i] == MODE_HARD:
                    failed[i] = reason
            wanted = [i for i in wanted if modes[i] != MODE_HARD]
    if not wanted:
        return None, [], [], "soft", failed
    try:
        merged, new_ids = _merge(analyzer, [groups[i] for i in wanted], "soft", censor_ms, n_jobs)
        return merged, wanted, new_ids, "soft", failed
    except Exception:
        pass
    # find the groups that fail on their own, then merge the rest together
    survivors = []
    for i in wanted:
        try:
            _merge(analyzer, [groups[i]], "soft", censor_ms, n_jobs)
            survivors.append(i)
        except Exception as exc:
            failed[i] = f"SpikeInterface could not merge it: {_one_line(exc)}"
    if not survivors:
        return None, [], [], "soft", failed
    merged, new_ids = _merge(analyzer, [groups[i] for i in survivors], "soft", censor_ms, n_jobs)
    return merged, survivors, new_ids, "soft", failed


def _save_analyzer(merged: SortingAnalyzer, folder: Path) -> None:
    """Write ``merged`` as a binary_folder at ``folder`` (which must not exist)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        merged.save_as(format="binary_folder", folder=folder)


def apply_merges(
    analyzer: SortingAnalyzer,
    plan: MergePlan,
    out_dir: Path,
    provenance: Mapping[str, Any],
    *,
    write_analyzer: bool = True,
    folder_name: str = "merged_analyzer",
    censor_ms: float | None = 0.3,
    n_jobs: int = 1,
    sparsity_overlap: float = SPARSITY_OVERLAP,
) -> ApplyResult:
    """Merge the plan's groups: ``curation.json`` always, the merged analyzer in a new folder.

    The input analyzer is not modified: SpikeInterface builds the merged analyzer as a new
    in-memory object, which is then saved through a staged temporary folder renamed into place
    only when complete. A group SpikeInterface cannot merge is reported in ``skipped`` and the
    others are still merged; ``curation.json`` lists exactly the merges that were applied, so
    ``apply_curation`` on the input reproduces the merged analyzer's unit ids.

    Parameters
    ----------
    analyzer : SortingAnalyzer
        The analyzer the plan was made for (left unchanged).
    plan : MergePlan
        From :func:`plan_merges`.
    out_dir : Path
        The output folder (created if missing).
    provenance : mapping
        Stored in ``curation.json`` under ``"provenance"``; an ``"apply"`` entry is added with
        the merge settings (censor_ms, new-id strategy, per-group mode).
    write_analyzer : bool, default: True
        Write the merged analyzer as a binary_folder. When False only ``curation.json`` is
        written and no merge is computed (the modes are what the merge would use).
    folder_name : str, default: "merged_analyzer"
        Name of the new folder; if taken, ``<name>_2``, ``<name>_3``, ... is used instead.
    censor_ms : float or None, default: 0.3
        Spikes of a merged unit closer than this to the previous one are removed, in every
        group (see the module notes: harmless for a true merge, needed for duplicates).
        None or 0 disables censoring.
    n_jobs : int, default: 1
        Processes for SpikeInterface's merge (a hard merge recomputes extensions).
    sparsity_overlap : float, default: 0.75
        Channel overlap (intersection over union) under which a plain soft merge is refused
        and a fallback is chosen (see the module notes).

    Returns
    -------
    ApplyResult

    Raises
    ------
    SpikemergeError
        A plan unit is not in the analyzer, or the merged analyzer could not be written
        (nothing is left half-written and ``curation.json`` is unchanged).
    """
    out_dir = Path(out_dir)
    lookup, _ = _id_lookup(analyzer.unit_ids)
    for gid, units in zip(plan.source_group_ids, plan.groups):
        missing = [u for u in units if str(_native(u)) not in lookup]
        if missing:
            raise SpikemergeError(
                f"group {gid} names unit(s) {', '.join(map(str, missing))} not in this analyzer: "
                "plan the merges from this analyzer's verdicts"
            )
    groups = [[lookup[str(_native(u))] for u in units] for units in plan.groups]
    censor = float(censor_ms) if censor_ms else None
    units_before = int(analyzer.get_num_units())
    recording = _has_recording(analyzer)

    # 1. each group's mode from its channel overlap
    skipped: list[tuple[int, str]] = list(plan.skipped)
    modes: list[str | None] = []
    for gid, units in zip(plan.source_group_ids, groups):
        overlap, shared = _overlap(analyzer, units)
        if overlap >= sparsity_overlap:
            modes.append(MODE_SOFT)
        elif shared > 0:
            modes.append(MODE_SOFT_IGNORED)
        elif recording:
            modes.append(MODE_HARD)
        else:
            modes.append(None)
            skipped.append((gid, (
                f"units {_fmt(units)} share no channel (sparsity overlap 0) and the recording is not available "
                "for a hard merge: open the analyzer with its recording to merge this group"
            )))
    todo = [i for i, m in enumerate(modes) if m is not None]

    # 2. merge in memory (the input analyzer is never changed)
    merged = None
    applied: list[int] = []
    new_ids: list[UnitId] = []
    si_mode = "hard" if any(modes[i] == MODE_HARD for i in todo) else "soft"
    if todo and write_analyzer:
        merged, done, new_ids, si_mode, failed = _run_merges(
            analyzer, [groups[i] for i in todo], [modes[i] for i in todo], censor, n_jobs
        )
        applied = [todo[k] for k in done]
        for k, reason in failed.items():
            skipped.append((plan.source_group_ids[todo[k]], reason))
    elif todo:
        applied = todo
        new_ids = new_unit_ids_for(analyzer.unit_ids, len(applied))

    # 3. what was applied, with spikes removed by censoring
    counts = analyzer.sorting.count_num_spikes_per_unit()
    if merged is not None:
        after_counts = merged.sorting.count_num_spikes_per_unit()
    elif applied and censor:
        from spikeinterface.core.sorting_tools import apply_merges_to_sorting

        sorting = apply_merges_to_sorting(
            analyzer.sorting, [groups[i] for i in applied], new_unit_ids=new_ids, censor_ms=censor
        )
        after_counts = sorting.count_num_spikes_per_unit()
    else:
        after_counts = {}
    merges = []
    for i, new in zip(applied, new_ids):
        before = int(sum(counts[u] for u in groups[i]))
        after = int(after_counts.get(new, before)) if after_counts else before
        merges.append({
            "group_id": plan.source_group_ids[i],
            "unit_ids": [_native(u) for u in groups[i]],
            "new_unit_id": _native(new),
            "mode": MODE_HARD if si_mode == "hard" else modes[i],
            "censored": censor is not None,
            "duplicate": plan.duplicate_flags[i],
            "spikes_removed": before - after,
        })
    applied_plan = MergePlan(
        groups=[groups[i] for i in applied],
        source_group_ids=[plan.source_group_ids[i] for i in applied],
        duplicate_flags=[plan.duplicate_flags[i] for i in applied],
        skipped=sorted(skipped, key=lambda item: item[0]),
    )
    units_after = units_before - sum(len(g) - 1 for g in applied_plan.groups)
    block = dict(provenance)
    block["apply"] = {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "new_id_strategy": NEW_ID_STRATEGY,
        "censor_ms": censor,
        "sparsity_overlap": sparsity_overlap,
        "merges": merges,
        "analyzer_written": bool(merged is not None),
        "how_to_reapply": (
            "spikeinterface.curation.apply_curation(analyzer, load_curation(path), "
            f"censor_ms={censor}, merging_mode={si_mode!r}, sparsity_overlap=0.0)"
        ),
    }
    curation = build_curation(analyzer.unit_ids, applied_plan, new_ids, block)

    # 4. write: analyzer staged then renamed, curation.json atomic, then the undo manifest
    out_dir.mkdir(parents=True, exist_ok=True)
    curation_path = out_dir / CURATION_FILE
    manifest = _read_manifest(out_dir)
    entry: dict[str, Any] = {
        "time": block["apply"]["time"],
        "analyzer_folder": None,
        "curation": CURATION_FILE,
        "previous_curation": None,
        "merges": len(merges),
        "units_before": units_before,
        "units_after": units_after,
    }
    backup = None
    analyzer_folder = None
    try:
        if merged is not None:
            analyzer_folder = _next_free_folder(out_dir, folder_name)
            try:
                with staged_folder(analyzer_folder) as staging:
                    staging.rmdir()  # SpikeInterface creates the folder itself
                    _save_analyzer(merged, staging)
            except Exception as exc:
                raise SpikemergeError(
                    f"could not write the merged analyzer to {analyzer_folder} ({_one_line(exc)}); nothing was "
                    "written: check free disk space and permissions, then apply again"
                ) from exc
            entry["analyzer_folder"] = analyzer_folder.name
        try:
            if curation_path.exists():  # kept so that undo can restore it
                backup = out_dir / UNDO_FOLDER / f"curation.before-{len(manifest['applies']) + 1}.json"
                backup.parent.mkdir(exist_ok=True)
                shutil.copy2(curation_path, backup)
                entry["previous_curation"] = backup.relative_to(out_dir).as_posix()
            write_curation(curation_path, curation)
        except BaseException:
            if analyzer_folder is not None and analyzer_folder.exists():
                shutil.rmtree(analyzer_folder, ignore_errors=True)
            raise
    except BaseException:
        if backup is not None:
            backup.unlink(missing_ok=True)
            _remove_if_empty(backup.parent)
        raise
    entry["curation_sha256"] = _sha256(curation_path)
    manifest["applies"].append(entry)
    write_json_atomic(out_dir / MANIFEST_FILE, manifest)

    return ApplyResult(
        analyzer_folder=analyzer_folder,
        curation_path=curation_path,
        units_before=units_before,
        units_after=units_after,
        merges=merges,
        skipped=applied_plan.skipped,
    )


def undo_last_apply(out_dir: Path) -> str:
    """Remove what the last :func:`apply_merges` in ``out_dir`` wrote, and say what was removed.

    The merged analyzer folder is deleted; ``curation.json`` is restored to what it was before
    that apply (or removed if there was none). A ``curation.json`` changed since by someone else
    is left alone. Only files recorded in the manifest are touched.

    Parameters
    ----------
    out_dir : Path
        The output folder given to :func:`apply_merges`.

    Returns
    -------
    str
        One line describing what was undone.

    Raises
    ------
    SpikemergeError
        No apply recorded in ``out_dir``.
    """
    out_dir = Path(out_dir)
    manifest = _read_manifest(out_dir)
    if not manifest["applies"]:
        raise SpikemergeError(f"nothing to undo in {out_dir}: no merges were applied there")
    entry = manifest["applies"].pop()
    done = []
    folder_name = entry.get("analyzer_folder")
    if folder_name:
        folder = out_dir / folder_name
        if folder.resolve().parent == out_dir.resolve() and folder.is_dir():
            shutil.rmtree(folder)
            done.append(f"removed {folder_name}")
        else:
            done.append(f"{folder_name} was already gone")
    curation_path = out_dir / entry.get("curation", CURATION_FILE)
    previous = out_dir / entry["previous_curation"] if entry.get("previous_curation") else None
    if not curation_path.exists():
        done.append(f"{curation_path.name} was already gone")
    elif _sha256(curation_path) != entry.get("curation_sha256"):
        done.append(f"kept {curation_path.name} (changed since the merge was applied)")
    elif previous is not None and previous.exists():
        os.replace(previous, curation_path)
        done.append(f"restored the previous {curation_path.name}")
    else:
        curation_path.unlink()
        done.append(f"removed {curation_path.name}")
    if previous is not None:
        previous.unlink(missing_ok=True)
        _remove_if_empty(previous.parent)
    write_json_atomic(out_dir / MANIFEST_FILE, manifest)
    return (
        f"undid the apply of {entry.get('time', '?')} ({entry.get('merges', 0)} merge(s), "
        f"{entry.get('units_before', '?')} -> {entry.get('units_after', '?')} units): {'; '.join(done)}"
    )
