"""Apply: merge an analyzer straight into a staged folder, never touching the input.

Memory: SpikeInterface writes the merged analyzer directly into a staging folder (no second
in-memory analyzer then saved), from an input whose arrays are memory-mapped (see
``analyzer.open_analyzer``), and only the extensions spikemerge opened are carried over.
A group SpikeInterface cannot merge is found by merging it alone on a copy of its own units,
never by repeating the whole merge. Units that share no channel are reported, not merged hard.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from spikeinterface.core import SortingAnalyzer

from ...errors import SpikemergeError, one_line
from ..outputs import to_jsonable
from ..judges.base import UnitId
from .format import CURATION_FILE, build_curation, write_curation
from .plan import MergePlan, _fmt, _id_lookup, _native, new_unit_ids_for
from .waveforms import carry_waveforms, start_copy
from .undo import COMPLETE, MANIFEST_FILE, PENDING, UNDO_FOLDER, _read_manifest, _remove_if_empty, write_manifest

NEW_ID_STRATEGY = "append"
SPARSITY_OVERLAP = 0.75
"""SpikeInterface's default: the intersection-over-union of channels a soft merge needs."""

MODE_SOFT = "soft"
MODE_HARD = "hard"
"""Kept for readers of earlier curation files; no apply chooses it any more (see module notes)."""
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
    replaced : str or None
        The earlier merged analyzer of this output folder that this apply replaced.
    extensions_not_carried : list of str
        Extensions of the input folder that the merged analyzer does not hold (spikemerge never
        opened them); compute them on the merged analyzer if needed.

    Every attribute is a plain value (``to_jsonable(result.__dict__)`` is JSON-ready).
    """

    analyzer_folder: Path | None
    curation_path: Path
    units_before: int
    units_after: int
    merges: list[dict] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    replaced: str | None = None
    extensions_not_carried: list[str] = field(default_factory=list)

    def summary(self) -> str:
        where = f"merged analyzer in {self.analyzer_folder}" if self.analyzer_folder else "no analyzer written"
        text = (
            f"{len(self.merges)} merge(s) applied, {self.units_before} -> {self.units_after} units; "
            f"{where}; curation in {self.curation_path}"
        )
        if self.replaced:
            text += f" (replacing the earlier {self.replaced})"
        if self.skipped:
            ids = ", ".join(str(g) for g, _ in self.skipped)
            text += f"; {len(self.skipped)} verdict(s) not applied (groups {ids})"
        return text


def warm_up_merge() -> "threading.Thread | None":
    """Compile SpikeInterface's spike-vector splitter now, in a background thread; returns the thread.

    ``merge_units`` splits the spike vector per unit with a numba kernel that SpikeInterface
    compiles without a disk cache, in every new process: 2-2.5 s of the apply stage on the
    lab-scale benchmark, spent while everything waits. Compiled here while evidence is computed
    (numba's lock makes a concurrent compile safe), the merge finds it ready. Called with the
    argument types SpikeInterface passes (int64 arrays, a Python int), so the compiled
    specialisation is the one it uses. None when numba is not installed.
    """
    import threading

    def compile_kernel() -> None:
        try:
            from spikeinterface.core.sorting_tools import HAVE_NUMBA, get_numba_vector_to_list_of_spiketrain

            if HAVE_NUMBA:
                get_numba_vector_to_list_of_spiketrain()(np.zeros(2, dtype=np.int64), np.zeros(2, dtype=np.int64), 1)
        except Exception:  # noqa: BLE001 - only a head start: the merge compiles it itself otherwise
            pass

    thread = threading.Thread(target=compile_kernel, name="spikemerge-merge-warm-up", daemon=True)
    thread.start()
    return thread


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


def _merge(analyzer: SortingAnalyzer, groups: list[list[UnitId]], censor_ms: float | None, n_jobs: int,
           folder: Path | None = None):
    """One SpikeInterface soft merge with explicit new ids, into ``folder`` (binary) or memory.

    Into a folder, SpikeInterface merges every extension but ``waveforms``, which is written
    afterwards block by block (:func:`.waveforms.carry_waveforms`): its own merge would hold the
    whole array in memory. Returns ``(merged, new_ids)``.
    """
    new_ids = new_unit_ids_for(analyzer.unit_ids, len(groups))
    target = {"format": "binary_folder", "folder": folder} if folder is not None else {"format": "memory"}
    streamed = folder is not None and "waveforms" in analyzer.extensions and "random_spikes" in analyzer.extensions
    # the unchanged rows are copied while SpikeInterface merges the rest (a scratch file beside the folder)
    early = start_copy(analyzer, groups, new_ids, censor_ms, folder.parent / f".{folder.name}.waveforms.npy") \
        if streamed else None
    held = analyzer.extensions.pop("waveforms") if streamed else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            merged = analyzer.merge_units(
                merge_unit_groups=[list(g) for g in groups],
                new_unit_ids=new_ids,
                censor_ms=censor_ms,
                merging_mode="soft",
                sparsity_overlap=0.0,  # each group's overlap was checked beforehand
                raise_error_if_overlap_fails=True,
                n_jobs=n_jobs,
                progress_bar=False,
                **target,
            )
    except BaseException:
        if early is not None:
            early.discard()
        raise
    finally:
        if held is not None:  # the input analyzer is left as it was
            analyzer.extensions["waveforms"] = held
    if streamed:
        del merged
        try:
            carry_waveforms(analyzer, folder, groups, new_ids, censor_ms, early=early)
        finally:
            if early is not None:  # used (moved into the folder) or not: no scratch file stays behind
                early.discard()
        merged = None
    return merged, new_ids


def _merges_alone(analyzer: SortingAnalyzer, group: list[UnitId], censor_ms: float | None) -> str | None:
    """Why SpikeInterface cannot merge ``group``, from a copy of only its units (None: it can)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            small = analyzer.select_units(list(group), format="memory")
        _merge(small, [group], censor_ms, 1)
        return None
    except Exception as exc:
        return f"SpikeInterface could not merge it: {one_line(exc)}"


def _merged_counts(analyzer: SortingAnalyzer, groups: list[list[UnitId]], new_ids: list[UnitId], censor_ms: float,
                   written: Path | None) -> dict:
    """Spikes per unit after the merge: read from the sorting just written (``written``), else
    merged again without writing (about a second on a 2.6-million-spike sorting)."""
    if written is not None:
        from spikeinterface.core import load_sorting_analyzer

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_sorting_analyzer(written, load_extensions=False).sorting.count_num_spikes_per_unit()
    from spikeinterface.core.sorting_tools import apply_merges_to_sorting

    return apply_merges_to_sorting(analyzer.sorting, groups, new_unit_ids=new_ids,
                                   censor_ms=censor_ms).count_num_spikes_per_unit()


def _staging_name(out_dir: Path, folder_name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f".{folder_name}.", suffix=".partial", dir=out_dir))


def _write_merged(analyzer: SortingAnalyzer, groups: list[list[UnitId]], censor_ms: float | None, n_jobs: int,
                  staging: Path) -> tuple[list[int], list[UnitId], dict[int, str]]:
    """Merge into ``staging``; a group that fails alone is dropped and the rest merged again.

    Returns the indices of the merged groups, their new ids, and ``{index: reason}`` of the others.
    """
    failed: dict[int, str] = {}
    wanted = list(range(len(groups)))
    while wanted:
        shutil.rmtree(staging, ignore_errors=True)  # SpikeInterface creates the folder itself
        try:
            _, new_ids = _merge(analyzer, [groups[i] for i in wanted], censor_ms, n_jobs, folder=staging)
            return wanted, new_ids, failed
        except Exception:
            culprits = {i: r for i in wanted if (r := _merges_alone(analyzer, groups[i], censor_ms))}
            if not culprits:  # nothing fails alone: the write itself failed
                shutil.rmtree(staging, ignore_errors=True)
                raise
            failed.update(culprits)
            wanted = [i for i in wanted if i not in culprits]
    shutil.rmtree(staging, ignore_errors=True)
    return [], [], failed


def _earlier_merged_folder(manifest: dict, out_dir: Path, folder_name: str) -> bool:
    """True when ``out_dir/folder_name`` exists and the last apply that names it wrote it."""
    if not (out_dir / folder_name).is_dir():
        return False
    for entry in reversed(manifest["applies"]):
        if isinstance(entry, dict) and entry.get("analyzer_folder") == folder_name:
            return entry.get("status", COMPLETE) == COMPLETE
    return False


def _next_free_folder(out_dir: Path, name: str) -> Path:
    candidate, k = out_dir / name, 2
    while candidate.exists():
        candidate = out_dir / f"{name}_{k}"
        k += 1
    return candidate


def _curation_bytes(curation: Mapping[str, Any]) -> bytes:
    """The bytes ``write_curation`` writes (same serialisation), to hash before writing."""
    return (json.dumps(to_jsonable(dict(curation)), indent=2) + "\n").encode("utf-8")


def _not_carried(analyzer: SortingAnalyzer) -> list[str]:
    if analyzer.format == "memory":
        return []
    try:
        saved = set(analyzer.get_saved_extension_names())
    except Exception:
        return []
    return sorted(saved - set(analyzer.get_loaded_extension_names()))


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
    """Merge the plan's groups: ``curation.json`` always, the merged analyzer in its own folder.

    The input analyzer is not modified: SpikeInterface writes the merged analyzer into a staged
    temporary folder, renamed into place only when complete. A rerun in the same output folder
    *replaces* the merged analyzer an earlier apply wrote there (through the staging folder: the
    earlier one is removed only once the new one is complete); a folder of that name that
    spikemerge did not write is never touched (the next free ``<name>_2``, ... is used). A group
    SpikeInterface cannot merge is reported in ``skipped`` and the others are still merged;
    ``curation.json`` lists exactly the merges that were applied, so ``apply_curation`` on the
    input reproduces the merged analyzer's unit ids. Every path is recorded in the undo manifest
    as ``pending`` before it is written (see :mod:`.undo`).

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
        Name of the merged analyzer's folder.
    censor_ms : float or None, default: 0.3
        Spikes of a merged unit closer than this to the previous one are removed, in every
        group (see the module notes: harmless for a true merge, needed for duplicates). When
        the plan holds a duplicate offset by a lag, the widest of the plan's per-group windows
        is used instead (``MergePlan.censor_ms``). None or 0 disables censoring.
    n_jobs : int, default: 1
        Processes for SpikeInterface's merge.
    sparsity_overlap : float, default: 0.75
        Channel overlap (intersection over union) under which a plain soft merge is refused
        and the shared channels are used instead (see the module notes).

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

    # 1. each group's mode from its channel overlap; units sharing no channel are not merged
    skipped: list[tuple[int, str]] = list(plan.skipped)
    modes: list[str | None] = []
    for gid, units in zip(plan.source_group_ids, groups):
        overlap, shared = _overlap(analyzer, units)
        if overlap >= sparsity_overlap:
            modes.append(MODE_SOFT)
        elif shared > 0:
            modes.append(MODE_SOFT_IGNORED)
        else:
            modes.append(None)
            skipped.append((gid, (
                f"units {_fmt(units)} share no channel (sparsity overlap 0), so a merged unit would have no "
                "waveforms: check the pair in the report, and merge it by hand with SpikeInterface's "
                "merge_units(..., merging_mode='hard') on an analyzer with its recording if it is one neuron"
            )))
    todo = [i for i, m in enumerate(modes) if m is not None]
    if censor is not None and plan.censor_ms:
        # a duplicate offset by a lag needs a window reaching it (plan.censor_window); SpikeInterface
        # censors a merge with one window, and apply_curation replays one censor_ms: the widest
        censor = max([censor] + [float(plan.censor_ms[i]) for i in todo])

    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(out_dir)
    manifest_existed = (out_dir / MANIFEST_FILE).exists()
    number = len(manifest["applies"]) + 1
    curation_path = out_dir / CURATION_FILE
    replacing = bool(write_analyzer and todo and _earlier_merged_folder(manifest, out_dir, folder_name))
    analyzer_folder = (out_dir / folder_name if replacing else _next_free_folder(out_dir, folder_name)) \
        if (write_analyzer and todo) else None
    staging = _staging_name(out_dir, folder_name) if analyzer_folder is not None else None
    replaced_path = out_dir / UNDO_FOLDER / f"{folder_name}.replaced-{number}" if replacing else None
    backup = out_dir / UNDO_FOLDER / f"curation.before-{number}.json" if curation_path.exists() else None
    rel = lambda p: p.relative_to(out_dir).as_posix() if p is not None else None  # noqa: E731
    entry: dict[str, Any] = {
        "status": PENDING,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "analyzer_folder": rel(analyzer_folder),
        "staging": rel(staging),
        "replaced": rel(replaced_path),
        "curation": CURATION_FILE,
        "previous_curation": rel(backup),
        "curation_sha256": None,
        "merges": 0,
        "units_before": units_before,
        "units_after": units_before,
    }
    # write-ahead: the entry names every path before any of them is written
    manifest["applies"].append(entry)
    write_manifest(out_dir, manifest)

    def abandon() -> None:
        """Remove what this apply wrote so far and its manifest entry: nothing half-written."""
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if backup is not None:
            backup.unlink(missing_ok=True)
            _remove_if_empty(backup.parent)
        manifest["applies"].pop()
        if manifest_existed or manifest["applies"]:
            write_manifest(out_dir, manifest)
        else:
            (out_dir / MANIFEST_FILE).unlink(missing_ok=True)

    # 2. merge straight into the staging folder (the input analyzer is never changed)
    applied: list[int] = []
    new_ids: list[UnitId] = []
    try:
        if todo and analyzer_folder is not None:
            try:
                done, new_ids, failed = _write_merged(analyzer, [groups[i] for i in todo], censor, n_jobs, staging)
            except Exception as exc:
                raise SpikemergeError(
                    f"could not write the merged analyzer to {analyzer_folder} ({one_line(exc)}); nothing was "
                    "written: check free disk space and permissions, then apply again"
                ) from exc
            applied = [todo[k] for k in done]
            for k, reason in failed.items():
                skipped.append((plan.source_group_ids[todo[k]], reason))
        elif todo:
            applied = todo
            new_ids = new_unit_ids_for(analyzer.unit_ids, len(applied))
    except BaseException:
        abandon()
        raise

    # 3. what was applied, with spikes removed by censoring (read from the written sorting)
    counts = analyzer.sorting.count_num_spikes_per_unit()
    after_counts: dict = {}
    if applied and censor:
        after_counts = _merged_counts(analyzer, [groups[i] for i in applied], new_ids, censor,
                                      staging if analyzer_folder is not None else None)
    merges = []
    for i, new in zip(applied, new_ids):
        before = int(sum(counts[u] for u in groups[i]))
        after = int(after_counts.get(new, before)) if after_counts else before
        merges.append({
            "group_id": plan.source_group_ids[i],
            "unit_ids": [_native(u) for u in groups[i]],
            "new_unit_id": _native(new),
            "mode": modes[i],
            "censored": censor is not None,
            "duplicate": plan.duplicate_flags[i],
            "spikes_removed": before - after,
        })
    applied_plan = MergePlan(
        groups=[groups[i] for i in applied],
        source_group_ids=[plan.source_group_ids[i] for i in applied],
        duplicate_flags=[plan.duplicate_flags[i] for i in applied],
        skipped=sorted(skipped, key=lambda item: item[0]),
        censor_ms=[plan.censor_ms[i] for i in applied] if plan.censor_ms else [],
    )
    units_after = units_before - sum(len(g) - 1 for g in applied_plan.groups)
    written = analyzer_folder is not None and bool(applied)
    not_carried = _not_carried(analyzer) if written else []
    block = dict(provenance)
    block["apply"] = {
        "time": entry["time"],
        "new_id_strategy": NEW_ID_STRATEGY,
        "censor_ms": censor,
        "sparsity_overlap": sparsity_overlap,
        "merges": merges,
        "analyzer_written": written,
        "extensions_not_carried": not_carried,
        "how_to_reapply": (
            "spikeinterface.curation.apply_curation(analyzer, load_curation(path), "
            f"censor_ms={censor}, merging_mode='soft', sparsity_overlap=0.0)"
        ),
    }
    curation = build_curation(analyzer.unit_ids, applied_plan, new_ids, block)
    entry.update({"merges": len(merges), "units_after": units_after,
                  "curation_sha256": hashlib.sha256(_curation_bytes(curation)).hexdigest()})
    if not written:
        entry.update({"analyzer_folder": None, "staging": None, "replaced": None})
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    write_manifest(out_dir, manifest)

    # 4. into place: the analyzer (swapping out an earlier one of ours), then curation.json; the
    #    earlier analyzer is deleted only once both are in place
    try:
        if written:
            if replacing:
                replaced_path.parent.mkdir(exist_ok=True)
                os.replace(analyzer_folder, replaced_path)
            os.replace(staging, analyzer_folder)
            if replacing:
                entry["swapped"] = True
                write_manifest(out_dir, manifest)
        if backup is not None:  # kept so that undo can restore it
            backup.parent.mkdir(exist_ok=True)
            shutil.copy2(curation_path, backup)
        write_curation(curation_path, curation)
    except BaseException:
        # put back what was there: the earlier analyzer, the earlier curation
        if written and analyzer_folder.exists() and (not replacing or replaced_path.exists()):
            shutil.rmtree(analyzer_folder, ignore_errors=True)
        if replacing and replaced_path.exists():
            os.replace(replaced_path, analyzer_folder)
            _remove_if_empty(replaced_path.parent)
        abandon()
        raise
    if replacing and written:
        shutil.rmtree(replaced_path, ignore_errors=True)
        _remove_if_empty(replaced_path.parent)
    entry["status"] = COMPLETE
    write_manifest(out_dir, manifest)

    return ApplyResult(
        analyzer_folder=analyzer_folder if written else None,
        curation_path=curation_path,
        units_before=units_before,
        units_after=units_after,
        merges=merges,
        skipped=applied_plan.skipped,
        replaced=folder_name if (written and replacing) else None,
        extensions_not_carried=not_carried,
    )
