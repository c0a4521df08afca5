"""Ground truth of over-splits made by a real spike sorter.

MEArec simulates a recording (biophysical cell templates on a 32-channel probe, with drift,
bursting cells whose amplitude decays within a burst, or low-SNR units); one of SpikeInterface's
internal sorters (``spykingcircus2``, ``tridesclous2``) sorts it with its own final merge step
switched off; ``compare_sorter_to_ground_truth`` says which sorted unit is which neuron. A
dataset is written to ``<cache>/<name>/`` as::

    analyzer/      SortingAnalyzer (binary_folder) of the sorted units, recording attached
    truth.json     unit_to_neuron, impure_units, true_pairs, split_neurons, sorter, scenario
    recording.h5   the MEArec recording (gt spike trains inside)
    sorting/       the sorter's units before its final merge (NumpyFolder)
    READY          written last, when everything above is complete

Everything heavy (MEArec, LFPy, NEURON, hdbscan) is the ``[bench]`` extra and is imported
lazily; the truth-building and scoring functions work on plain arrays and are tested without it.

Seeds: MEArec's template seed (positions and rotations; each cell model gets ``seed + i``), its
four recording seeds (spike trains, template selection, convolution jitter, noise), the sorter's
``seed`` and ``n_jobs=1`` for the recording and the sorter. The sorters still draw from unseeded
randomness in a few places (SpikeInterface 0.105.3), so a rebuild gives the same recording but
possibly a slightly different sorting; the truth is always computed from the sorting at hand.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from itertools import combinations
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from .scoring import score_merges

MIN_PURITY = 0.8
"""A sorted unit is a neuron's when at least this fraction of its spikes match that neuron."""
DELTA_TIME_MS = 0.4
"""Matching window of the ground-truth comparison (SpikeInterface's default)."""
MAX_LAG_MS = 2.0
"""Largest constant offset between a sorted unit's spike times and its neuron's that is corrected."""
SORTERS = ("spykingcircus2", "tridesclous2")

Log = Callable[[str], None]


def default_cache() -> Path:
    """``$SPIKEMERGE_CACHE`` or ``~/.cache/spikemerge/sorted_bench``."""
    env = os.environ.get("SPIKEMERGE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "spikemerge" / "sorted_bench"


# --------------------------------------------------------------------------------------------
# scenario parameters
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateSpec:
    """MEArec template library: one per probe and seed, simulated once and cached.

    Drifting templates (each EAP at ``drift_steps`` positions along a path of ``min_drift`` to
    ``max_drift`` µm) serve static recordings too: MEArec then uses one position.
    """

    probe: str = "Neuronexus-32"
    n_per_model: int = 10
    drifting: bool = True
    min_drift: float = 30.0
    max_drift: float = 60.0
    drift_steps: int = 16
    min_amp: float = 30.0
    seed: int = 0

    def key(self) -> str:
        return _hash(asdict(self))

    def mearec_params(self) -> dict:
        import MEArec as mr

        params = mr.get_default_templates_params()
        params.update(probe=self.probe, n=self.n_per_model, drifting=self.drifting, min_drift=self.min_drift,
                      max_drift=self.max_drift, drift_steps=self.drift_steps, min_amp=self.min_amp, seed=self.seed)
        return params


@dataclass(frozen=True)
class RecordingSpec:
    """One MEArec recording; every field is a MEArec parameter or maps straight onto one."""

    duration_s: float = 300.0
    n_exc: int = 12
    n_inh: int = 4
    f_exc: float = 5.0
    f_inh: float = 12.0
    min_amp: float = 50.0
    max_amp: float = 300.0
    min_dist: float = 25.0
    noise_level: float = 10.0
    noise_mode: str = "uncorrelated"
    drifting: bool = False
    drift_mode_speed: str = "slow"
    drift_mode_probe: str = "rigid"
    slow_drift_velocity: float = 10.0
    slow_drift_amplitude: float | None = None
    slow_drift_waveform: str = "triangluar"  # MEArec's spelling
    n_drifting: int | None = None
    angle_tol: float = 15.0
    bursting: bool = False
    n_bursting: int | None = None
    exp_decay: float = 0.2
    n_burst_spikes: int = 10
    max_burst_duration: float = 100.0
    shape_mod: bool = False
    process: str = "poisson"
    seed: int = 0
    templates: TemplateSpec = field(default_factory=TemplateSpec)

    def key(self) -> str:
        return _hash(asdict(self))

    def mearec_params(self) -> dict:
        import MEArec as mr

        params = mr.get_default_recordings_params()
        st = params["spiketrains"]
        st.update(n_exc=self.n_exc, n_inh=self.n_inh, f_exc=self.f_exc, f_inh=self.f_inh, duration=self.duration_s,
                  process=self.process)
        tp = params["templates"]
        tp.update(min_amp=self.min_amp, max_amp=self.max_amp, min_dist=self.min_dist)
        rec = params["recordings"]
        rec.update(noise_level=self.noise_level, noise_mode=self.noise_mode, filter=True, dtype="float32",
                   drifting=self.drifting, drift_mode_speed=self.drift_mode_speed,
                   drift_mode_probe=self.drift_mode_probe, slow_drift_velocity=self.slow_drift_velocity,
                   slow_drift_amplitude=self.slow_drift_amplitude, slow_drift_waveform=self.slow_drift_waveform,
                   n_drifting=self.n_drifting, angle_tol=self.angle_tol, bursting=self.bursting, n_bursting=self.n_bursting,
                   exp_decay=self.exp_decay, n_burst_spikes=self.n_burst_spikes,
                   max_burst_duration=self.max_burst_duration, shape_mod=self.shape_mod)
        s = self.seed
        params["seeds"] = {"spiketrains": 1000 + s, "templates": 2000 + s, "convolution": 3000 + s, "noise": 4000 + s}
        return params


SCENARIOS: dict[str, RecordingSpec] = {
    # slow rigid drift: every neuron moves 12 µm/min along the probe, up and down (triangle wave)
    "drift": RecordingSpec(duration_s=300.0, n_exc=10, n_inh=4, drifting=True, slow_drift_velocity=12.0,
                           min_amp=50.0, min_dist=20.0, angle_tol=45.0),
    # bursting cells: consecutive spikes within a burst lose amplitude (exp_decay) and stretch
    "burst": RecordingSpec(duration_s=240.0, n_exc=12, n_inh=4, f_exc=8.0, bursting=True, n_bursting=8,
                           exp_decay=0.25, n_burst_spikes=8, max_burst_duration=100.0, shape_mod=True,
                           min_amp=60.0),
    # static probe, units close to the noise floor
    "lowsnr": RecordingSpec(duration_s=300.0, n_exc=14, n_inh=4, min_amp=30.0, max_amp=120.0, noise_level=12.0),
}
"""Scenario name -> recording parameters (the seed is set per dataset)."""


def scenario(name: str, seed: int = 1, **overrides) -> RecordingSpec:
    """The recording spec of scenario ``name`` with ``seed`` and any field overridden."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}: use {', '.join(SCENARIOS)}")
    return replace(SCENARIOS[name], seed=seed, **overrides)


def _hash(record: Mapping) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------------------------
# MEArec: templates and recordings
# --------------------------------------------------------------------------------------------


def ensure_venv_bin_on_path() -> None:
    """Put this interpreter's ``bin`` first on PATH: MEArec compiles NEURON mechanisms with ``nrnivmodl``."""
    bin_dir = str(Path(sys.executable).parent)
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if parts[:1] != [bin_dir]:
        os.environ["PATH"] = os.pathsep.join([bin_dir] + [p for p in parts if p != bin_dir])


def _atomic_target(path: Path) -> Path:
    """A hidden name beside ``path`` that keeps its suffix (MEArec insists on ``.h5``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


def make_templates(spec: TemplateSpec, cache: Path, n_jobs: int = 2, log: Log | None = None) -> Path:
    """The template library of ``spec`` (``<cache>/templates/templates_<key>.h5``), simulated when missing.

    Each cell model is simulated with seed ``spec.seed + i`` whatever the number of jobs, so
    ``n_jobs`` changes the wall time only. About 7 minutes on 2 cores for 32 channels.
    """
    log = log or (lambda line: None)
    path = Path(cache) / "templates" / f"templates_{spec.key()}.h5"
    if path.exists():
        return path
    ensure_venv_bin_on_path()
    import MEArec as mr

    log(f"templates {spec.key()}: simulating {spec} (minutes)")
    start = time.perf_counter()
    # one work folder for every library: MEArec reuses the intracellular simulations it holds
    # when their parameters match (they depend on the seed, not on the probe or drift)
    tmp_dir = path.parent / ".work"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.chdir(tmp_dir):  # MEArec writes tmp_params_path.yaml into the working directory
        tempgen = mr.gen_templates(mr.get_default_cell_models_folder(), params=spec.mearec_params(),
                                   templates_tmp_folder=str(tmp_dir), parallel=n_jobs > 1, n_jobs=n_jobs,
                                   verbose=False, delete_tmp=True)
    target = _atomic_target(path)
    mr.save_template_generator(tempgen, filename=str(target))
    os.replace(target, path)
    (path.with_suffix(".json")).write_text(json.dumps({**asdict(spec), "seconds": time.perf_counter() - start},
                                                      indent=1))
    log(f"templates {spec.key()}: {len(tempgen.templates)} templates in {time.perf_counter() - start:.0f} s")
    return path


def make_recording(spec: RecordingSpec, path: Path, cache: Path, log: Log | None = None) -> Path:
    """Simulate the recording of ``spec`` into ``path`` (an ``.h5``), unless it is there already."""
    log = log or (lambda line: None)
    path = Path(path)
    if path.exists():
        return path
    templates = make_templates(spec.templates, cache, log=log)
    import MEArec as mr

    start = time.perf_counter()
    log(f"recording {spec.key()}: simulating {spec.duration_s:.0f} s")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recgen = mr.gen_recordings(params=spec.mearec_params(), templates=str(templates), verbose=False, n_jobs=1)
    target = _atomic_target(path)
    mr.save_recording_generator(recgen, filename=str(target))
    os.replace(target, path)
    log(f"recording {spec.key()}: {len(recgen.spiketrains)} cells in {time.perf_counter() - start:.0f} s")
    return path


def read_recording(path: Path):
    """The MEArec recording and its ground-truth sorting (SpikeInterface extractors)."""
    import spikeinterface.extractors as se

    return se.read_mearec(str(path))


# --------------------------------------------------------------------------------------------
# sorters, final merge off
# --------------------------------------------------------------------------------------------


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
    with final_merge_off(), threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sorting = ss.run_sorter(sorter, recording, folder=str(folder), remove_existing_folder=True, verbose=False,
                                raise_error=True, **params)
    return NumpySorting.from_sorting(sorting)


# --------------------------------------------------------------------------------------------
# truth (numpy only)
# --------------------------------------------------------------------------------------------


def best_lags(gt_trains: Mapping[Any, np.ndarray], unit_trains: Mapping[Any, np.ndarray], fs: float,
              max_lag_ms: float = MAX_LAG_MS, bin_ms: float = 0.1) -> dict[Any, tuple[Any, float, float]]:
    """Per sorted unit, the neuron and constant offset that line up most of its spikes.

    For every spike of the unit, the differences to every neuron spike within ``max_lag_ms``
    are binned (``bin_ms``); the (neuron, lag) bin with most spikes, together with its two
    neighbours, gives the lag (their weighted mean) and the fraction of the unit's spikes within it.

    Parameters
    ----------
    gt_trains, unit_trains : mapping of id -> sorted sample indices
    fs : float
        Sampling frequency (Hz).

    Returns
    -------
    dict
        unit id -> (neuron id or None, lag in ms (unit time minus neuron time), fraction of the
        unit's spikes within ±1 bin of that lag).
    """
    neurons = list(gt_trains)
    if not neurons:
        return {u: (None, 0.0, 0.0) for u in unit_trains}
    times = np.concatenate([np.asarray(gt_trains[n], dtype=np.int64) for n in neurons])
    labels = np.concatenate([np.full(len(gt_trains[n]), i) for i, n in enumerate(neurons)])
    order = np.argsort(times, kind="stable")
    times, labels = times[order], labels[order]
    max_lag = int(round(max_lag_ms * fs / 1000.0))
    bin_samples = max(1, int(round(bin_ms * fs / 1000.0)))
    n_bins = 2 * (max_lag // bin_samples) + 1
    out: dict[Any, tuple[Any, float, float]] = {}
    for unit, train in unit_trains.items():
        train = np.asarray(train, dtype=np.int64)
        if train.size == 0:
            out[unit] = (None, 0.0, 0.0)
            continue
        lo = np.searchsorted(times, train - max_lag, side="left")
        hi = np.searchsorted(times, train + max_lag, side="right")
        counts = hi - lo
        if counts.sum() == 0:
            out[unit] = (None, 0.0, 0.0)
            continue
        spike = np.repeat(np.arange(train.size), counts)
        idx = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi) if b > a])
        diff = train[spike] - times[idx]
        lab = labels[idx]
        bins = np.clip(np.round(diff / bin_samples).astype(np.int64) + n_bins // 2, 0, n_bins - 1)
        hist = np.zeros((len(neurons), n_bins))
        np.add.at(hist, (lab, bins), 1.0)
        smooth = hist.copy()
        smooth[:, 1:] += hist[:, :-1]
        smooth[:, :-1] += hist[:, 1:]
        i, b = np.unravel_index(np.argmax(smooth), smooth.shape)
        window = np.arange(max(0, b - 1), min(n_bins, b + 2))
        weights = hist[i, window]
        lag_bins = float(np.sum(weights * (window - n_bins // 2)) / max(weights.sum(), 1.0))
        out[unit] = (neurons[i], lag_bins * bin_samples * 1000.0 / fs, float(smooth[i, b] / train.size))
    return out


def assign_units(match_counts: np.ndarray, unit_spike_counts: Sequence[int], neuron_ids: Sequence,
                 unit_ids: Sequence, min_purity: float = MIN_PURITY) -> tuple[dict, dict]:
    """Which neuron each sorted unit belongs to, from the comparison's matched-spike counts.

    Parameters
    ----------
    match_counts : array (num_neurons, num_units)
        Spikes of each sorted unit matched to each neuron (``GroundTruthComparison.match_event_count``).
    unit_spike_counts : sequence of int
        Spikes per sorted unit.
    min_purity : float
        A unit is a neuron's when at least this fraction of its spikes match it; otherwise it is impure.

    Returns
    -------
    (unit_to_neuron, purity)
        unit id -> neuron id or None; unit id -> (best neuron, fraction of the unit's spikes it matches).
    """
    match_counts = np.asarray(match_counts, dtype=float).reshape(len(neuron_ids), len(unit_ids))
    unit_to_neuron: dict = {}
    purity: dict = {}
    for j, unit in enumerate(unit_ids):
        n = int(unit_spike_counts[j])
        if n == 0 or len(neuron_ids) == 0:
            unit_to_neuron[unit] = None
            purity[unit] = (None, 0.0)
            continue
        i = int(np.argmax(match_counts[:, j]))
        frac = float(match_counts[i, j] / n)
        purity[unit] = (neuron_ids[i], frac)
        unit_to_neuron[unit] = neuron_ids[i] if frac >= min_purity else None
    return unit_to_neuron, purity


def true_pairs(unit_to_neuron: Mapping[Any, Any]) -> list[list]:
    """Every pair of (pure) units of one neuron, sorted."""
    by_neuron = split_neurons(unit_to_neuron, min_units=2)
    return sorted([list(p) for units in by_neuron.values() for p in combinations(sorted(units), 2)])


def split_neurons(unit_to_neuron: Mapping[Any, Any], min_units: int = 2) -> dict[Any, list]:
    """Neuron -> its pure units, for neurons with at least ``min_units`` of them."""
    by_neuron: dict[Any, list] = {}
    for unit, neuron in unit_to_neuron.items():
        if neuron is not None:
            by_neuron.setdefault(neuron, []).append(unit)
    return {n: sorted(us) for n, us in by_neuron.items() if len(us) >= min_units}


def unit_facts(train: np.ndarray, fs: float) -> dict[str, float]:
    """Spike count and when the unit fires (first, 10th, 50th, 90th percentile, last spike; s)."""
    if len(train) == 0:
        return {"n_spikes": 0}
    t = np.asarray(train) / fs
    q10, q50, q90 = np.percentile(t, [10, 50, 90])
    return {"n_spikes": int(len(t)), "first_s": round(float(t[0]), 2), "p10_s": round(float(q10), 2),
            "median_s": round(float(q50), 2), "p90_s": round(float(q90), 2), "last_s": round(float(t[-1]), 2)}


def pair_facts(a: np.ndarray, b: np.ndarray, fs: float, lag_a_ms: float = 0.0, lag_b_ms: float = 0.0,
               window_s: float = 10.0) -> dict[str, float]:
    """How two units of one neuron relate: time overlap, shared spikes, lag between them.

    ``overlap``: fraction of ``window_s`` bins where both fire, over bins where either fires
    (0 for time fragments that hand over, near 1 for duplicates or amplitude/burst splits);
    ``shared``: fraction of the smaller unit's spikes within 0.4 ms of the other's once both are
    lined up on the neuron (a duplicate detects the same spikes twice); ``lag_ms``: offset of
    b's spike times from a's (from their offsets to the neuron).
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if len(a) == 0 or len(b) == 0:
        return {"overlap": 0.0, "shared": 0.0, "lag_ms": 0.0}
    edges = np.arange(0, max(a[-1], b[-1]) + window_s * fs + 1, window_s * fs)
    ha, _ = np.histogram(a, edges)
    hb, _ = np.histogram(b, edges)
    either = np.sum((ha > 0) | (hb > 0))
    both = np.sum((ha > 0) & (hb > 0))
    a0 = a - int(round(lag_a_ms * fs / 1000.0))
    b0 = np.sort(b - int(round(lag_b_ms * fs / 1000.0)))
    small, large = (a0, b0) if len(a0) <= len(b0) else (b0, np.sort(a0))
    idx = np.clip(np.searchsorted(large, small), 1, len(large) - 1)
    nearest = np.minimum(np.abs(large[idx] - small), np.abs(large[idx - 1] - small))
    shared = float(np.mean(nearest <= 0.0004 * fs)) if len(large) > 1 else 0.0
    return {"overlap": round(float(both / max(either, 1)), 3), "shared": round(shared, 3),
            "lag_ms": round(lag_b_ms - lag_a_ms, 3)}


def _trains(sorting) -> dict:
    return {u: sorting.get_unit_spike_train(u, segment_index=0) for u in sorting.unit_ids}


def shift_sorting(sorting, lags_samples: Mapping[Any, int]):
    """``sorting`` with each unit's spike times moved by ``-lags_samples[unit]`` (clipped to the recording)."""
    from spikeinterface.core import NumpySorting

    trains = _trains(sorting)
    shifted = {u: np.sort(t - int(lags_samples.get(u, 0))) for u, t in trains.items()}
    shifted = {u: t[t >= 0] for u, t in shifted.items()}
    return NumpySorting.from_unit_dict([shifted], sampling_frequency=sorting.sampling_frequency)


def build_truth(gt_sorting, sorting, min_purity: float = MIN_PURITY, delta_time_ms: float = DELTA_TIME_MS,
                max_lag_ms: float = MAX_LAG_MS) -> dict[str, Any]:
    """Which sorted unit is which neuron, by ``compare_sorter_to_ground_truth``.

    Each unit's spike times are first lined up with its best neuron (a constant offset of up to
    ``max_lag_ms``: sorters misalign some templates, and an offset duplicate would otherwise
    match nothing within the comparison's ``delta_time_ms``); the comparison then counts the
    matched spikes, and a unit belongs to a neuron when ``min_purity`` of its spikes match it.

    Returns
    -------
    dict
        ``unit_to_neuron`` (unit -> neuron or None), ``impure_units``, ``true_pairs``,
        ``split_neurons``, ``purity`` (unit -> [best neuron, fraction]), ``lag_ms`` (unit -> offset of
        its spike times from its neuron's, ms), ``neuron_units`` (every neuron -> its pure units),
        ``undetected_neurons`` and the comparison's settings.
    """
    from spikeinterface.comparison import compare_sorter_to_ground_truth

    fs = sorting.sampling_frequency
    lags = best_lags(_trains(gt_sorting), _trains(sorting), fs, max_lag_ms=max_lag_ms)
    lag_samples = {u: int(round(lag * fs / 1000.0)) for u, (_, lag, _) in lags.items()}
    aligned = shift_sorting(sorting, lag_samples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        comp = compare_sorter_to_ground_truth(gt_sorting, aligned, delta_time=delta_time_ms, exhaustive_gt=True)
    counts = comp.match_event_count.loc[list(gt_sorting.unit_ids), list(aligned.unit_ids)].to_numpy()
    n_spikes = [len(aligned.get_unit_spike_train(u, segment_index=0)) for u in aligned.unit_ids]
    unit_to_neuron, purity = assign_units(counts, n_spikes, list(gt_sorting.unit_ids), list(aligned.unit_ids),
                                          min_purity)
    all_units = split_neurons(unit_to_neuron, min_units=1)
    trains = _trains(sorting)
    return {
        "unit_to_neuron": {str(_plain(u)): (None if n is None else str(_plain(n))) for u, n in unit_to_neuron.items()},
        "impure_units": [_plain(u) for u, n in unit_to_neuron.items() if n is None],
        "true_pairs": [[_plain(a), _plain(b)] for a, b in true_pairs(unit_to_neuron)],
        "split_neurons": {str(_plain(n)): [_plain(u) for u in us] for n, us in split_neurons(unit_to_neuron).items()},
        "neuron_units": {str(_plain(n)): [_plain(u) for u in all_units.get(n, [])] for n in gt_sorting.unit_ids},
        "undetected_neurons": [str(_plain(n)) for n in gt_sorting.unit_ids if n not in all_units],
        "purity": {str(_plain(u)): [None if b is None else str(_plain(b)), round(f, 4)] for u, (b, f) in purity.items()},
        "lag_ms": {str(_plain(u)): round(lag, 3) for u, (_, lag, _) in lags.items()},
        "units": {str(_plain(u)): unit_facts(t, fs) for u, t in trains.items()},
        "pairs": {f"{a}-{b}": pair_facts(trains[a], trains[b], fs, lags[a][1], lags[b][1])
                  for a, b in true_pairs(unit_to_neuron)},
        "min_purity": min_purity,
        "delta_time_ms": delta_time_ms,
        "max_lag_ms": max_lag_ms,
    }


def _plain(value):
    return value.item() if hasattr(value, "item") else value


# --------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------


def load_truth(path: Path) -> dict[str, Any]:
    """``truth.json`` of a dataset folder (or the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / "truth.json"
    return json.loads(path.read_text())


def _unit_key(truth: Mapping) -> Callable[[Any], str]:
    return lambda u: str(_plain(u))


def score_sorted(merges: Iterable[Sequence[Any]], truth: Mapping[str, Any]) -> dict[str, Any]:
    """Pair-level score of ``merges`` against a sorted-bench truth; pairs touching an impure unit are left out.

    Parameters
    ----------
    merges : iterable of sequences of unit ids
        Merge groups (ids as in the analyzer; compared as strings).
    truth : mapping
        A ``truth.json`` record (``unit_to_neuron`` with ``None`` for impure units).

    Returns
    -------
    dict
        ``true_pairs``, ``pairs_found`` (merged pairs between pure units), ``tp``, ``fp``, ``fn``,
        ``precision``, ``recall``, ``f1``, ``wrong_merges`` (merged pairs of two distinct neurons;
        equal to ``fp`` since impure units are left out) and ``excluded_pairs`` (merged pairs
        that touch an impure unit).
    """
    key = _unit_key(truth)
    pure = {u: n for u, n in truth["unit_to_neuron"].items() if n is not None}
    groups = [[key(u) for u in g] for g in merges]
    kept = [[u for u in g if u in pure] for g in groups]
    excluded = sum(1 for g in groups for a, b in combinations(g, 2) if a not in pure or b not in pure)
    scores = score_merges([g for g in kept if len(g) > 1], pure)
    found = {frozenset(p) for g in kept for p in combinations(g, 2)}
    n_true = sum(len(us) * (len(us) - 1) // 2 for us in split_neurons(pure, 2).values())
    return {"true_pairs": n_true, "pairs_found": len(found), "tp": scores["tp"], "fp": scores["fp"],
            "fn": scores["fn"], "precision": scores["precision"], "recall": scores["recall"], "f1": scores["f1"],
            "wrong_merges": scores["distinct_merges"], "excluded_pairs": excluded}


# --------------------------------------------------------------------------------------------
# analyzer and dataset
# --------------------------------------------------------------------------------------------


def build_analyzer(sorting, recording, folder: Path, n_jobs: int = 1):
    """A sparse binary_folder ``SortingAnalyzer`` of ``sorting`` with every extension spikemerge reads."""
    from spikeinterface.core import create_sorting_analyzer
    from spikeinterface.core.sortinganalyzer import get_extension_class
    from threadpoolctl import threadpool_limits

    from ..tools.analyzer import EXTENSION_PARAMS, REQUIRED_EXTENSIONS

    job_kwargs = {"n_jobs": n_jobs, "progress_bar": False, "chunk_duration": "1s"}
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        analyzer = create_sorting_analyzer(sorting, recording, format="binary_folder", folder=str(folder), sparse=True,
                                           overwrite=True, **job_kwargs)
        for name in REQUIRED_EXTENSIONS:
            params = dict(EXTENSION_PARAMS.get(name, {}))
            if get_extension_class(name).need_job_kwargs:
                params.update(job_kwargs)
            analyzer.compute(name, **params)
    return analyzer


def dataset_name(scenario_name: str, sorter: str, seed: int) -> str:
    """``drift_sc2_s1``-style names."""
    short = {"spykingcircus2": "sc2", "tridesclous2": "tdc2"}[sorter]
    return f"{scenario_name}_{short}_s{seed}"


def build_dataset(name: str, spec: RecordingSpec, sorter: str, cache: Path, scenario_name: str = "",
                  sorter_seed: int | None = None, motion_correction: bool | None = None, n_jobs: int = 1,
                  log: Log | None = None, recording_path: Path | None = None) -> dict[str, Any]:
    """Build ``<cache>/<name>/`` (recording, sorting, analyzer, truth.json, READY), skipping what is there.

    The recording is simulated once per spec into ``<cache>/recordings/rec_<key>.h5`` (or taken
    from ``recording_path``) and hard-linked into the dataset folder, so two sorters of one
    scenario and seed sort the same recording. Returns the dataset's summary (see :func:`summarise_truth`).
    """
    log = log or (lambda line: None)
    cache = Path(cache)
    folder = cache / name
    if (folder / "READY").exists():
        return summarise_truth(load_truth(folder))
    folder.mkdir(parents=True, exist_ok=True)
    with _building(folder):
        return _build_dataset(folder, name, spec, sorter, cache, scenario_name, sorter_seed, motion_correction,
                              n_jobs, log, recording_path)


@contextlib.contextmanager
def _building(folder: Path):
    """Claim ``folder`` with a BUILDING file (pid); refuse when a live process holds it."""
    marker = folder / "BUILDING"
    if marker.exists():
        try:
            pid = int(marker.read_text().split()[0])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError, PermissionError):
            pass  # a stale claim: its process is gone
        else:
            if pid != os.getpid():
                raise RuntimeError(f"{folder.name} is being built by process {pid} (remove {marker} if it is not)")
    marker.write_text(f"{os.getpid()} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)


def _build_dataset(folder, name, spec, sorter, cache, scenario_name, sorter_seed, motion_correction, n_jobs, log,
                   recording_path) -> dict[str, Any]:
    times: dict[str, float] = {}
    start = time.perf_counter()
    rec_path = folder / "recording.h5"
    if not rec_path.exists():
        shared = Path(recording_path) if recording_path is not None else cache / "recordings" / f"rec_{spec.key()}.h5"
        make_recording(spec, shared, cache, log=lambda line: log(f"{name}: {line}"))
        if _same_fs(shared, folder):
            os.link(shared, rec_path)
        else:
            shutil.copy(shared, rec_path)
    times["recording_s"] = time.perf_counter() - start
    recording, gt_sorting = read_recording(rec_path)

    sorting_folder = folder / "sorting"
    t0 = time.perf_counter()
    if not (sorting_folder / "spikes.npy").exists() and not (sorting_folder / "si_folder.json").exists():
        log(f"{name}: sorting with {sorter} (final merge off)")
        sorting = run_sorter_unmerged(recording, sorter, folder / "sorter_output",
                                      seed=spec.seed if sorter_seed is None else sorter_seed,
                                      motion_correction=motion_correction)
        if sorting_folder.exists():
            shutil.rmtree(sorting_folder)
        sorting = sorting.save(folder=str(sorting_folder))
        shutil.rmtree(folder / "sorter_output", ignore_errors=True)
    from spikeinterface.core import load

    sorting = load(str(sorting_folder))
    times["sort_s"] = time.perf_counter() - t0
    log(f"{name}: {len(sorting.unit_ids)} units; ground-truth comparison")

    t0 = time.perf_counter()
    truth = build_truth(gt_sorting, sorting)
    truth.update(sorter=sorter, sorter_params=sorter_params(sorter, spec.seed if sorter_seed is None else sorter_seed,
                                                             motion_correction),
                 scenario={"name": scenario_name, **asdict(spec)}, num_units=len(sorting.unit_ids),
                 num_neurons=len(gt_sorting.unit_ids), sampling_frequency=sorting.sampling_frequency,
                 duration_s=recording.get_total_duration(), recording="recording.h5", final_merge="off",
                 versions=_versions())
    times["truth_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    log(f"{name}: analyzer")
    build_analyzer(sorting, recording, folder / "analyzer", n_jobs=n_jobs)
    times["analyzer_s"] = time.perf_counter() - t0
    truth["build_seconds"] = {k: round(v, 1) for k, v in times.items()}
    from .synthetic import save_gt_sorting

    save_gt_sorting(gt_sorting, folder / "gt_sorting.npz")
    _write_json(folder / "truth.json", truth)
    (folder / "READY").touch()
    return summarise_truth(truth)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("spikeinterface", "MEArec", "neuron", "LFPy", "hdbscan", "numpy"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            pass
    return out


def _same_fs(a: Path, b: Path) -> bool:
    try:
        return os.stat(a).st_dev == os.stat(b).st_dev
    except OSError:
        return False


def _write_json(path: Path, record: Mapping) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=1, default=_plain))
    os.replace(tmp, path)


def pair_kinds(truth: Mapping[str, Any], overlap_max: float = 0.3, shared_min: float = 0.5) -> dict[str, Any]:
    """True pairs by how the sorter split them, from ``truth['pairs']``.

    ``duplicate``: at least ``shared_min`` of the smaller unit's spikes are the other's, lined up
    (the same spikes detected twice, possibly offset); ``fragments``: the units fire in different
    periods (time overlap under ``overlap_max``; drift hand-overs); ``concurrent``: both fire at
    the same time on different spikes (amplitude or burst splits). Also the absolute lags of the
    duplicates (ms).
    """
    kinds = {"duplicate": 0, "fragments": 0, "concurrent": 0}
    lags = []
    for facts in (truth.get("pairs") or {}).values():
        if facts["shared"] >= shared_min:
            kinds["duplicate"] += 1
            lags.append(abs(facts["lag_ms"]))
        elif facts["overlap"] < overlap_max:
            kinds["fragments"] += 1
        else:
            kinds["concurrent"] += 1
    return {**kinds, "duplicate_lags_ms": sorted(round(x, 2) for x in lags)}


def summarise_truth(truth: Mapping[str, Any]) -> dict[str, Any]:
    """Units, pure/impure, true pairs, neurons split and into how many units."""
    split = truth["split_neurons"]
    return {
        "sorter": truth.get("sorter"),
        "units": len(truth["unit_to_neuron"]),
        "neurons": truth.get("num_neurons"),
        "impure_units": len(truth["impure_units"]),
        "true_pairs": len(truth["true_pairs"]),
        "split_neurons": len(split),
        "split_sizes": {n: len(us) for n, us in split.items()},
        "undetected_neurons": len(truth.get("undetected_neurons", [])),
        "pair_kinds": pair_kinds(truth),
    }


# --------------------------------------------------------------------------------------------
# named datasets and the bench
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: a scenario, a seed, a sorter and whether the sorter corrects motion."""

    scenario: str
    sorter: str
    seed: int = 1
    motion_correction: bool | None = None
    """None: the sorter's default (spykingcircus2 corrects motion, tridesclous2 does not)."""
    overrides: tuple[tuple[str, Any], ...] = ()
    """RecordingSpec fields set apart from the scenario's (held-out sets vary them); see :func:`parse_overrides`."""

    @property
    def name(self) -> str:
        return dataset_name(self.scenario, self.sorter, self.seed)

    def recording_spec(self) -> RecordingSpec:
        return scenario(self.scenario, self.seed, **dict(self.overrides))


DEFAULT_MOTION_CORRECTION = {"drift": False}
"""Scenarios whose datasets sort without motion correction, so drift cuts neurons into time fragments."""


def dataset_spec(scenario_name: str, sorter: str, seed: int) -> DatasetSpec:
    """The dataset of ``scenario_name`` sorted by ``sorter`` with ``seed`` (motion correction as the scenario says)."""
    scenario(scenario_name, seed)  # validates the name
    if sorter not in SORTERS:
        raise ValueError(f"unknown sorter {sorter!r}: use {', '.join(SORTERS)}")
    return DatasetSpec(scenario_name, sorter, seed, DEFAULT_MOTION_CORRECTION.get(scenario_name))


def parse_overrides(items: Iterable[str]) -> tuple[tuple[str, Any], ...]:
    """``["slow_drift_velocity=16", "n_bursting=10"]`` -> RecordingSpec overrides, typed by the field's default.

    ``none`` sets a field to None; booleans read ``true``/``false``. Unknown fields and the seed
    (set by the dataset name) are refused, so a typo cannot silently build the default scenario.
    """
    defaults = asdict(RecordingSpec())
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key, text = key.strip(), text.strip()
        if not sep or key not in defaults or key in ("seed", "templates"):
            raise ValueError(f"not a recording override: {item!r} (expected key=value, key one of "
                             f"{', '.join(k for k in defaults if k not in ('seed', 'templates'))})")
        default = defaults[key]
        if text.lower() == "none":
            value: Any = None
        elif isinstance(default, bool):
            if text.lower() not in ("true", "false"):
                raise ValueError(f"{key} takes true or false, not {text!r}")
            value = text.lower() == "true"
        elif isinstance(default, str):
            value = text
        elif isinstance(default, int) or key in ("n_drifting", "n_bursting"):
            value = int(text)
        else:
            value = float(text)
        out[key] = value
    return tuple(sorted(out.items()))


def parse_dataset_name(name: str) -> DatasetSpec:
    """``drift_sc2_s1`` -> DatasetSpec('drift', 'spykingcircus2', 1)."""
    try:
        scenario_name, short, seed = name.rsplit("_", 2)
        sorter = {"sc2": "spykingcircus2", "tdc2": "tridesclous2"}[short]
        if not seed.startswith("s"):
            raise ValueError
        return dataset_spec(scenario_name, sorter, int(seed[1:]))
    except (ValueError, KeyError):
        raise ValueError(f"not a dataset name: {name!r} (expected <scenario>_<sc2|tdc2>_s<seed>, "
                         f"scenario one of {', '.join(SCENARIOS)})") from None


def make_dataset(spec: DatasetSpec, cache: Path | None = None, log: Log | None = None) -> dict[str, Any]:
    """Build (or find) the dataset ``spec`` in ``cache``; returns its summary."""
    cache = Path(cache) if cache is not None else default_cache()
    return build_dataset(spec.name, spec.recording_spec(), spec.sorter, cache, scenario_name=spec.scenario,
                         motion_correction=spec.motion_correction, log=log)


BENCH_SCENARIOS: dict[str, tuple[str, str]] = {
    "sorted_drift": ("drift", "spykingcircus2"),
    "sorted_burst": ("burst", "tridesclous2"),
    "sorted_lowsnr": ("lowsnr", "spykingcircus2"),
    "sorted_drift_tdc2": ("drift", "tridesclous2"),
    "sorted_burst_sc2": ("burst", "spykingcircus2"),
}
"""``spikemerge bench --scenarios`` name -> (scenario, sorter); the bench's seed picks the dataset."""

BENCH_SCENARIO_HELP: dict[str, str] = {
    name: f"MEArec {sc} recording sorted by {so} (final merge off); truth from the ground-truth comparison"
    for name, (sc, so) in BENCH_SCENARIOS.items()
}


@dataclass
class SortedGroundTruth:
    """A sorted-bench dataset in the shape the bench runner scores (see ``run.GroundTruth``).

    ``neuron_of_unit`` holds the pure units only; ``impure_units`` are left out of pair scoring.
    """

    analyzer: Any
    truth: dict
    neuron_of_unit: dict
    impure_units: list
    gt_sorting: Any
    name: str = ""

    def ground_truth_sorting(self):
        return self.gt_sorting

    @property
    def true_groups(self) -> list[list]:
        return [sorted(us) for us in split_neurons(self.neuron_of_unit, 2).values()]


def load_dataset(folder: Path, in_memory: bool = True) -> SortedGroundTruth:
    """Open a READY dataset folder: its analyzer (a memory copy by default), truth and gt sorting.

    The gt sorting comes from ``gt_sorting.npz`` (written beside truth.json), so neither the
    recording nor MEArec is needed to score.
    """
    from spikeinterface.core import load_sorting_analyzer

    from .synthetic import load_gt_sorting

    folder = Path(folder)
    if not (folder / "READY").exists():
        raise FileNotFoundError(f"{folder} is not a complete sorted-bench dataset (no READY file)")
    truth = load_truth(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analyzer = load_sorting_analyzer(folder / "analyzer")
        if in_memory:
            analyzer = analyzer.save_as(format="memory")
    by_str = {str(_plain(u)): u for u in analyzer.unit_ids}
    neuron_of_unit = {by_str[u]: n for u, n in truth["unit_to_neuron"].items() if n is not None}
    impure = [by_str[str(u)] for u in truth["impure_units"]]
    return SortedGroundTruth(analyzer=analyzer, truth=truth, neuron_of_unit=neuron_of_unit, impure_units=impure,
                             gt_sorting=load_gt_sorting(folder / "gt_sorting.npz"), name=folder.name)


def sorted_ground_truth(bench_scenario: str, seed: int, cache: Path | None = None,
                        log: Log | None = None) -> SortedGroundTruth:
    """The dataset behind ``spikemerge bench --scenarios <bench_scenario>`` for ``seed``, built when missing."""
    scenario_name, sorter = BENCH_SCENARIOS[bench_scenario]
    spec = dataset_spec(scenario_name, sorter, seed)
    cache = Path(cache) if cache is not None else default_cache()
    make_dataset(spec, cache, log=log)
    return load_dataset(cache / spec.name)


def write_status(cache: Path, failures: Mapping[str, str] | None = None, notes: Sequence[str] = ()) -> Path:
    """``<cache>/STATUS.md``: every dataset folder, READY or not, with its counts; failures with their cause."""
    cache = Path(cache)
    lines = ["# sorted bench: status", "",
             f"Written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by scripts/make_sorted_bench.py.", "",
             "| dataset | ready | sorter | motion corr. | units | neurons | impure | true pairs | split neurons "
             "(neuron:units) | undetected | pairs: duplicate / fragments / concurrent | build s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    failed = dict(failures or {})
    for folder in sorted(p for p in cache.iterdir() if p.is_dir() and (p / "truth.json").exists()
                         or (p.is_dir() and (p / "FAILED").exists())):
        if (folder / "FAILED").exists() and not (folder / "READY").exists():
            failed.setdefault(folder.name, (folder / "FAILED").read_text().strip())
        if not (folder / "truth.json").exists():
            continue
        truth = load_truth(folder)
        s = summarise_truth(truth)
        sizes = ", ".join(f"{n}:{k}" for n, k in sorted(s["split_sizes"].items(), key=lambda kv: -kv[1]))
        secs = sum((truth.get("build_seconds") or {}).values())
        mc = (truth.get("sorter_params") or {}).get("apply_motion_correction", "default")
        lines.append(f"| {folder.name} | {'yes' if (folder / 'READY').exists() else 'no'} | {s['sorter']} | {mc} | "
                     f"{s['units']} | {s['neurons']} | {s['impure_units']} | {s['true_pairs']} | "
                     f"{s['split_neurons']} ({sizes}) | {s['undetected_neurons']} | "
                     f"{s['pair_kinds']['duplicate']} / {s['pair_kinds']['fragments']} / "
                     f"{s['pair_kinds']['concurrent']} | {secs:.0f} |")
    if failed:
        lines += ["", "## failed", ""] + [f"- {name}: {why}" for name, why in failed.items()]
    path = cache / "STATUS.md"
    if notes:
        lines += ["", "## notes", ""] + [f"- {n}" for n in notes]
    elif path.exists() and "\n## notes\n" in path.read_text():  # keep notes written by hand or an earlier call
        lines += ["", "## notes" + path.read_text().split("\n## notes", 1)[1].rstrip("\n")]
    tmp = path.with_name(".STATUS.md.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path
