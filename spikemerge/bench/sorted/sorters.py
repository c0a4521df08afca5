"""The bench's sorters with their final merge step switched off: SpikeInterface's internal sorters, seeded
(down to the draws they leave unseeded) on one job, and Kilosort 4 on the CPU."""

from __future__ import annotations

import contextlib
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .specs import SORTER_SHORT_NAMES


class _Unmerged:
    """Stands in for the analyzer the sorters' final merge returns: the sorting as it came in."""

    def __init__(self, sorting):
        self.sorting = sorting
        self._recording = None

    def save_as(self, *args, **kwargs):
        return self


@contextlib.contextmanager
def final_merge_off():
    """Skip the final merge step of every sorter the bench runs (``_internal_merge_off`` and,
    where Kilosort is installed, ``_kilosort_merge_off``)."""
    with _internal_merge_off(), _kilosort_merge_off():
        yield


@contextlib.contextmanager
def _kilosort_merge_off():
    """Skip Kilosort 4's final merge: after clustering, ``cluster_spikes`` merges each unit into its most
    similar neighbour (template correlation at least 0.5) whose crosscorrelogram shows a refractory dip
    (``template_matching.merging_function``, mode ``"ccg"``), the curation step spikemerge does. Kilosort
    4.1.7 has no setting that turns only this off; the function is replaced by one that raises that
    similarity gate past 1, so no pair passes and units, spikes and the refractory flags come back as
    clustered. Its other mode (``"mu"``, removing duplicate templates while they are learned) is part
    of how Kilosort forms clusters and still runs. Without Kilosort installed, nothing is patched.
    """
    try:
        from kilosort import template_matching
    except ImportError:
        yield
        return
    original = template_matching.merging_function

    def unmerged(ops, Wall, clu, st, tF, r_thresh=0.5, mode="ccg", *args, **kwargs):
        if mode == "ccg":
            r_thresh = math.inf
        return original(ops, Wall, clu, st, tF, r_thresh, mode, *args, **kwargs)

    template_matching.merging_function = unmerged
    try:
        yield
    finally:
        template_matching.merging_function = original


@contextlib.contextmanager
def _internal_merge_off():
    """Skip the final ``auto_merge_units`` step of spykingcircus2 and tridesclous2.

    SpikeInterface 0.105.3 has no switch for it: spykingcircus2 always runs it (its ``merging``
    dict gets a ``debug_folder`` added, so it is never empty) and tridesclous2 hard-codes
    ``auto_merge = True``. Both call ``spyking_circus2.final_cleaning_circus`` (tridesclous2
    imports it at call time), which is replaced here by one that returns the sorting unmerged.
    The merges inside clustering (``merge_from_templates``) still run: they are part of how
    the sorter forms clusters, not a curation step.
    """
    from spikeinterface.sorters.internal import spyking_circus2

    original = spyking_circus2.final_cleaning_circus

    def unmerged(recording, sorting, templates, *args, **kwargs):
        return _Unmerged(sorting)

    spyking_circus2.final_cleaning_circus = unmerged
    try:
        yield
    finally:
        spyking_circus2.final_cleaning_circus = original


@contextlib.contextmanager
def seeded_draws(seed: int):
    """Give the sorter's ``seed`` to the random draws SpikeInterface 0.105.3's internal sorters make
    without one, so that a recording sorts to the same units every time.

    Each of these draws from the operating system's entropy (``np.random.default_rng(None)``) whatever
    the sorter's ``seed``, and changes every unit after it. Measured on drift_tdc2_s369's recording,
    seed 369, separate processes: tridesclous2 gave 56 and 55 units, spykingcircus2 on another drifting
    recording 64, 57 and 63; with these draws seeded, the same spike vector run after run.

    - spykingcircus2's matched-filtering peak detector measures the noise that sets its thresholds
      on chunks from ``get_random_data_chunks`` (``sortingcomponents/peak_detection/
      matched_filtering.py``). No sorter parameter reaches it: the detection ``method_kwargs`` also
      go to the locally exclusive detector, which refuses ``random_chunk_kwargs``.
    - tridesclous2 whitens on random chunks (``whiten`` in ``sorters/internal/tridesclous2.py``)
      and subsamples its peaks with ``select_peaks(method="uniform")``; with every peak kept, the
      draw still shuffles peaks that fall on one sample, and the clustering follows their order.

    Each is wrapped to add the seed where the caller gave none; the modules the sorters import
    lazily are imported first, so none of them keeps a wrapper after the block.
    """
    import spikeinterface.sortingcomponents.clustering.main  # noqa: F401
    import spikeinterface.sortingcomponents.matching  # noqa: F401
    import spikeinterface.sortingcomponents.tools  # noqa: F401
    from spikeinterface.sorters.internal import tridesclous2
    from spikeinterface.sortingcomponents import peak_selection
    from spikeinterface.sortingcomponents.peak_detection import matched_filtering

    originals = (matched_filtering.get_random_data_chunks, tridesclous2.whiten, peak_selection.select_peaks)
    chunks, whiten, select_peaks = originals

    def chunks_seeded(recording, *args, **kwargs):
        kwargs.setdefault("seed", seed)
        return chunks(recording, *args, **kwargs)

    def whiten_seeded(recording, *args, **kwargs):
        kwargs.setdefault("seed", seed)
        return whiten(recording, *args, **kwargs)

    def select_peaks_seeded(peaks, *args, **kwargs):
        if len(args) < 3 and kwargs.get("seed") is None:  # ``seed`` is select_peaks' fourth parameter
            kwargs["seed"] = seed
        return select_peaks(peaks, *args, **kwargs)

    matched_filtering.get_random_data_chunks = chunks_seeded
    tridesclous2.whiten, peak_selection.select_peaks = whiten_seeded, select_peaks_seeded
    try:
        yield
    finally:
        (matched_filtering.get_random_data_chunks, tridesclous2.whiten, peak_selection.select_peaks) = originals


def sorter_params(sorter: str, seed: int = 0, motion_correction: bool | None = None) -> dict:
    """Parameters handed to ``run_sorter``: seeded where the sorter takes a seed, one job, verbose off."""
    job_kwargs = {"n_jobs": 1, "progress_bar": False}
    if sorter == "spykingcircus2":
        params: dict[str, Any] = {"seed": seed, "job_kwargs": job_kwargs, "deterministic_peaks_detection": True}
        if motion_correction is not None:
            params["apply_motion_correction"] = motion_correction
        return params
    if sorter == "tridesclous2":
        params = {"seed": seed, "job_kwargs": job_kwargs}
        if motion_correction is not None:
            params["apply_motion_correction"] = motion_correction
        return params
    if sorter == "kilosort4":
        # SpikeInterface's wrapper seeds NumPy and torch itself (with 1); Kilosort's batches run on the CPU
        params = {"torch_device": "cpu", "progress_bar": False}
        if motion_correction is not None:
            params["do_correction"] = motion_correction
        return params
    raise ValueError(f"unknown sorter {sorter!r}: use {', '.join(SORTER_SHORT_NAMES)}")


def run_sorter_unmerged(recording, sorter: str, folder: Path, seed: int = 0, motion_correction: bool | None = None):
    """Sort ``recording`` with ``sorter`` (final merge off) in ``folder``; returns the sorting (NumpySorting)."""
    import spikeinterface.sorters as ss
    from spikeinterface.core import NumpySorting
    from threadpoolctl import threadpool_limits

    params = sorter_params(sorter, seed, motion_correction)
    np.random.seed(seed)
    with final_merge_off(), seeded_draws(seed), threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sorting = ss.run_sorter(sorter, recording, folder=str(folder), remove_existing_folder=True, verbose=False,
                                raise_error=True, **params)
    return NumpySorting.from_sorting(sorting)
