"""curation: turn judged verdicts into SpikeInterface merges, a curation file and a new analyzer.

Three steps, each usable alone:

1. :func:`plan.plan_merges` reads verdicts and decides which unit groups may be merged. It merges
   exactly what a judge decided, never a transitive chain: if A-B and B-C were judged separately,
   neither is applied and both are reported, because "A-B-C is one neuron" was never judged.
2. :func:`build_curation` / :func:`write_curation` write the plan in SpikeInterface's curation
   format (version "2"), with our provenance as an extra top-level key. SpikeInterface's pydantic
   ``Curation`` model ignores unknown top-level keys (its default ``extra="ignore"``), so the file
   validates, loads with ``load_curation`` and applies with ``apply_curation`` unchanged.
3. :func:`apply_merges` merges a ``SortingAnalyzer`` (the input object is never modified) into
   its own binary folder through a staged temporary folder, writes ``curation.json`` and records
   both in a write-ahead manifest so :func:`undo_last_apply` can remove exactly what it wrote.

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
    everything also keeps the result independent of whether the duplicate detector fired. A
    duplicate offset by a lag (real sorters misalign a duplicate's template by up to ~2 ms)
    leaves its two copies ``|lag|`` apart, so the plan gives such a group a window reaching its
    measured lag (:func:`plan.censor_window`, ``MergePlan.censor_ms``) and the merge uses the
    plan's widest window: SpikeInterface censors a merge, and replays a curation file, with a
    single ``censor_ms``. The cost: when one group needs a wide window (about 2.2 ms for a
    1.9 ms duplicate), every other group of the same apply is censored with it too and loses
    its spikes that follow another within that window (measured on drift_sc2_s2: a clean
    3-unit group lost 31 spikes instead of 1). Merging in one pass per window would avoid it.
Sparsity overlap
    SpikeInterface's soft merge refuses groups whose sparsity masks overlap less than
    ``sparsity_overlap`` (0.75, intersection over union). Such a group is still merged soft when
    its units share at least one channel (the merged unit keeps the shared channels, where both
    units are seen; cheap and needs no recording). Units that share no channel are reported in
    ``skipped`` and not merged: a "hard" merge would make SpikeInterface recompute every
    extension of the whole analyzer from the recording for that one group's sake.
Memory
    The merged analyzer is written by SpikeInterface straight into a staging folder (never built
    in memory and then saved), and its ``waveforms`` are copied file to file by the kernel, with
    only the merged units' rows read and rewritten (block by block through memory when the input
    is not a ``.npy`` file, see :mod:`.waveforms`), so apply holds about one extension's small
    arrays, not two analyzers.
    Only the extensions spikemerge opened are carried over; the others are named in
    ``ApplyResult.extensions_not_carried``.
Folders
    The merged analyzer goes to ``out_dir/merged_analyzer``. An apply in an output folder that
    already holds the merged analyzer of an earlier apply *replaces* it, through the staging
    folder (the earlier one is removed once the new one and ``curation.json`` are in place); a
    folder of that name that spikemerge did not write is never touched (``merged_analyzer_2``,
    ... is used instead).
Undo
    Write-ahead: each apply records every path it will write in ``.spikemerge-merges.json`` as
    ``pending`` before writing anything, and marks it ``complete`` at the end, so
    :func:`undo_last_apply` sees an apply killed at any point. Manifest paths are checked to lie
    inside the output folder before anything is deleted.
"""

from __future__ import annotations

from .apply import MODE_HARD, MODE_SOFT, MODE_SOFT_IGNORED, SPARSITY_OVERLAP, ApplyResult, apply_merges
from .format import CURATION_FILE, build_curation, write_curation
from .plan import CENSOR_MS, MergePlan, censor_window, duplicate_lags, new_unit_ids_for, plan_merges
from .undo import MANIFEST_FILE, UNDO_FOLDER, undo_last_apply

__all__ = [
    "ApplyResult", "CENSOR_MS", "CURATION_FILE", "MANIFEST_FILE", "MODE_HARD", "MODE_SOFT", "MODE_SOFT_IGNORED",
    "MergePlan", "SPARSITY_OVERLAP", "UNDO_FOLDER", "apply_merges", "build_curation", "censor_window",
    "duplicate_lags", "new_unit_ids_for", "plan_merges", "undo_last_apply", "write_curation",
]
