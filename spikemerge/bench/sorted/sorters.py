"""SpikeInterface's internal sorters, seeded (down to their detection thresholds), on one job, with their final merge
step switched off."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .specs import SORTERS


class _Unmerged:
    """Stands in for the analyzer the sorters' final merge returns: the sorting as it came in."""

    def __init__(self, sorting):
        self.sorting = sorting
        self._recording = None

    def save_as(self, *args, **kwargs):
        return self


@contextlib.contextmanager
def final_merge_off():
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
def detection_thresholds_seeded(seed: int):
    """Seed the data chunks from which spykingcircus2's peak detector sets its thresholds.

    SpikeInterface 0.105.3's matched-filtering detector (``sortingcomponents/peak_detection/
    matched_filtering.py``) measures the noise that sets its thresholds on chunks drawn by
    ``get_random_data_chunks`` with no seed, so from the operating system's entropy: the thresholds,
    then the peaks and every unit after them, changed from run to run whatever the sorter's ``seed``
    (one drifting recording sorted three times: 64, 57 and 63 units). No sorter parameter reaches
    that draw (the detection ``method_kwargs`` also go to the locally exclusive detector, which
    refuses ``random_chunk_kwargs``), so the draw is given the sorter's seed here. tridesclous2 does
    not use this detector; the patch is inert for it.
    """
    from spikeinterface.sortingcomponents.peak_detection import matched_filtering

    original = matched_filtering.get_random_data_chunks

    def seeded(recording, *args, **kwargs):
        kwargs.setdefault("seed", seed)
        return original(recording, *args, **kwargs)

    matched_filtering.get_random_data_chunks = seeded
    try:
        yield
    finally:
        matched_filtering.get_random_data_chunks = original


def sorter_params(sorter: str, seed: int = 0, motion_correction: bool | None = None) -> dict:
    """Parameters handed to ``run_sorter``: seeded, one job, verbose off."""
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
    raise ValueError(f"unknown sorter {sorter!r}: use {', '.join(SORTERS)}")


def run_sorter_unmerged(recording, sorter: str, folder: Path, seed: int = 0, motion_correction: bool | None = None):
    """Sort ``recording`` with ``sorter`` (final merge off) in ``folder``; returns the sorting (NumpySorting)."""
    import spikeinterface.sorters as ss
    from spikeinterface.core import NumpySorting
    from threadpoolctl import threadpool_limits

    params = sorter_params(sorter, seed, motion_correction)
    np.random.seed(seed)
    with final_merge_off(), detection_thresholds_seeded(seed), threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sorting = ss.run_sorter(sorter, recording, folder=str(folder), remove_existing_folder=True, verbose=False,
                                raise_error=True, **params)
    return NumpySorting.from_sorting(sorting)
