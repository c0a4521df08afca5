"""Apply: merge an analyzer in memory and write the result into a new folder, never touching the input."""

from __future__ import annotations

import shutil
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from spikeinterface.core import SortingAnalyzer

from ...errors import SpikemergeError, one_line
from ..outputs import staged_folder, write_json_atomic
from ..judges.base import UnitId
from .format import CURATION_FILE, build_curation, write_curation
from .plan import MergePlan, _fmt, _id_lookup, _native, new_unit_ids_for
from .undo import MANIFEST_FILE, UNDO_FOLDER, _read_manifest, _remove_if_empty, _sha256

NEW_ID_STRATEGY = "append"
SPARSITY_OVERLAP = 0.75
"""SpikeInterface's default: the intersection-over-union of channels a soft merge needs."""

MODE_SOFT = "soft"
MODE_HARD = "hard"
MODE_SOFT_IGNORED = "soft, sparsity overlap ignored"


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
            reason = f"hard merge (recomputing from the recording) failed: {one_line(exc)}"
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
            failed[i] = f"SpikeInterface could not merge it: {one_line(exc)}"
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
                    f"could not write the merged analyzer to {analyzer_folder} ({one_line(exc)}); nothing was "
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
