"""Ground truth of over-splits made by a real spike sorter.

MEArec simulates a recording (biophysical cell templates on a 32-channel probe, with drift,
bursting cells whose amplitude decays within a burst, or low-SNR units); one of SpikeInterface's
internal sorters (``spykingcircus2``, ``tridesclous2``) or Kilosort 4 (``kilosort4``, the
``[kilosort]`` extra, on the CPU) sorts it with its own final merge step switched off;
``compare_sorter_to_ground_truth`` says which sorted unit is which neuron. A dataset is written to
``<cache>/<name>/`` as::

    analyzer/      SortingAnalyzer (binary_folder) of the sorted units, recording attached
    truth.json     unit_to_neuron, impure_units, true_pairs, split_neurons, sorter, scenario
    recording.h5   the MEArec recording (gt spike trains inside)
    sorting/       the sorter's units before its final merge (NumpyFolder)
    READY          written last, when everything above is complete

Everything heavy (MEArec, LFPy, NEURON, hdbscan) is the ``[bench]`` extra and is imported
lazily; the truth-building and scoring functions work on plain arrays and are tested without it.

The package: ``specs`` (what a dataset is, its name and cache), ``mearec`` (templates and
recordings), ``sorters`` (final merge off), ``truth`` (which unit is which neuron, scores) and
``datasets`` (building and opening the folders, STATUS.md).

Seeds: MEArec's template seed (positions and rotations; each cell model gets ``seed + i``), its
four recording seeds (spike trains, template selection, convolution jitter, noise), the sorter's
``seed`` and ``n_jobs=1`` for the recording and the sorter. Both sorters also made random draws
without a seed (SpikeInterface 0.105.3), so a rebuild gave the same recording and a different
sorting (spykingcircus2 on one drifting recording, three times on one machine: 64, 57 and 63
units); ``sorters.seeded_draws`` hands those draws the sorter's seed (from 2026-12-05: sets built
before then do not rebuild to their sorting). The truth is always computed from the sorting at hand.
"""

from __future__ import annotations

from .datasets import (
    SortedGroundTruth, build_analyzer, build_dataset, is_ready, load_dataset, make_dataset, mark_failed,
    sorted_ground_truth, write_json, write_status,
)
from .mearec import (
    ensure_venv_bin_on_path, make_recording, make_templates, read_recording,
)
from .sorters import (
    final_merge_off, run_sorter_unmerged, seeded_draws, sorter_params,
)
from .specs import (
    BENCH_SCENARIOS, BENCH_SCENARIO_HELP, DEFAULT_MOTION_CORRECTION, DatasetSpec, Log, RecordingSpec,
    SCENARIOS, SORTER_SHORT_NAMES, SORTERS, TemplateSpec, dataset_name, dataset_spec, default_cache,
    parse_dataset_name, parse_overrides, scenario,
)
from .truth import (
    DELTA_TIME_MS, MAX_LAG_MS, MIN_PURITY, assign_units, best_lags, build_truth, impure_merges, impure_placements,
    load_truth, pair_facts, pair_kinds, score_sorted, shift_sorting, split_neurons, summarise_truth, to_python,
    true_pairs, unit_facts,
)

__all__ = [
    "BENCH_SCENARIOS", "BENCH_SCENARIO_HELP", "DEFAULT_MOTION_CORRECTION", "DELTA_TIME_MS", "DatasetSpec",
    "Log", "MAX_LAG_MS", "MIN_PURITY", "RecordingSpec", "SCENARIOS", "SORTER_SHORT_NAMES", "SORTERS",
    "SortedGroundTruth",
    "TemplateSpec", "assign_units", "best_lags", "build_analyzer", "build_dataset", "build_truth",
    "dataset_name", "dataset_spec", "default_cache", "ensure_venv_bin_on_path", "final_merge_off",
    "impure_merges", "impure_placements", "is_ready", "load_dataset", "load_truth", "make_dataset", "make_recording",
    "make_templates", "mark_failed", "pair_facts", "pair_kinds", "parse_dataset_name", "parse_overrides",
    "read_recording", "run_sorter_unmerged",
    "scenario", "seeded_draws", "score_sorted", "shift_sorting", "sorted_ground_truth", "sorter_params",
    "split_neurons",
    "summarise_truth", "to_python", "true_pairs", "unit_facts", "write_json", "write_status",
]
