"""Synthetic sortings whose right merges are known, built with SpikeInterface's generators.

A recording is generated from true neurons; the sorting handed to spikemerge is the true one
damaged the ways real sorters damage it: random 2- and 3-way splits
(``inject_some_split_units``), median-time splits (``split_sorting_by_times``, which under drift
give two units with different templates), median-amplitude splits
(``split_sorting_by_amplitudes``: the larger spikes of a neuron become a second unit), and
shifted duplicates (``inject_some_duplicate_units``). Near-twin *distinct* neurons (a few µm
apart, almost the same shape) are the hard negatives: merging them is the error a curator must
not make.

Every damage kind has its own count in :class:`ScenarioSpec`, so a scenario can hold one kind
only. Specs that leave the newer fields at their defaults generate exactly what they did before
those fields existed (same random draws, same units).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from probeinterface import generate_multi_columns_probe
from spikeinterface.core import BaseSorting, NumpySorting, SortingAnalyzer, create_sorting_analyzer
from spikeinterface.core.generate import (
    default_unit_params_range,
    generate_unit_locations,
    inject_some_duplicate_units,
    inject_some_split_units,
)
from spikeinterface.generation import (
    generate_drifting_recording,
    split_sorting_by_amplitudes,
    split_sorting_by_times,
)

from ..tools.analyzer.load import EXTENSION_PARAMS, REQUIRED_EXTENSIONS


@dataclass(frozen=True)
class ScenarioSpec:
    """How one synthetic recording is damaged; the defaults are the demo's."""

    drift: bool = False
    num_neurons: int = 16
    duration_s: float = 240.0
    num_twin_pairs: int = 2
    twin_distance_um: tuple[float, float] = (4.0, 8.0)
    num_random_splits_2: int = 2
    num_random_splits_3: int = 1
    num_time_splits: int = 2
    num_duplicates: int = 2
    firing_rates: tuple[float, float] = (3.0, 10.0)
    seed: int = 0
    num_amplitude_splits: int = 0
    """Neurons split at their median amplitude (added after the fields above; 0 keeps old specs' output)."""


@dataclass
class GroundTruth:
    """A damaged sorting's analyzer plus what a perfect curator would merge."""

    analyzer: SortingAnalyzer
    spec: ScenarioSpec
    neuron_of_unit: dict
    """Sorted unit id -> id of the true neuron it came from."""
    kinds: dict = field(default_factory=dict)
    """Neuron id -> how it was damaged ("split2", "split3", "time_split", "amplitude_split", "duplicate")."""
    twin_pairs: list = field(default_factory=list)
    """Pairs of sorted unit ids that are distinct near-twin neurons."""
    gt_sorting: BaseSorting | None = None
    """The undamaged sorting (one unit per true neuron, id = neuron id); rebuilt when not stored."""

    def ground_truth_sorting(self) -> BaseSorting:
        """The undamaged sorting: stored, or rebuilt from the damaged one and the truth."""
        if self.gt_sorting is None:
            self.gt_sorting = rebuild_gt_sorting(self.analyzer.sorting, self.neuron_of_unit, self.kinds)
        return self.gt_sorting

    @property
    def true_groups(self) -> list[list]:
        """Groups of sorted units that are one neuron (only groups of two or more)."""
        by_neuron: dict = {}
        for unit, neuron in self.neuron_of_unit.items():
            by_neuron.setdefault(neuron, []).append(unit)
        return [sorted(units) for units in by_neuron.values() if len(units) > 1]


def _probe():
    probe = generate_multi_columns_probe(
        num_columns=2,
        num_contact_per_column=16,
        xpitch=32.0,
        ypitch=20.0,
        y_shift_per_column=[0.0, 10.0],
        contact_shapes="square",
        contact_shape_params={"width": 12.0},
    )
    probe.set_device_channel_indices(np.arange(probe.get_contact_count()))
    return probe


def _unit_layout(spec: ScenarioSpec, channel_locations: np.ndarray, rng: np.random.Generator):
    """Unit positions and shape parameters, with the last ``2 * num_twin_pairs`` units as twins."""
    num_free = spec.num_neurons - spec.num_twin_pairs
    locations = generate_unit_locations(
        num_free, channel_locations, margin_um=10.0, minimum_z=5.0, maximum_z=35.0,
        minimum_distance=25.0, seed=int(rng.integers(1 << 31)),
    )
    params = {
        name: rng.uniform(low, high, num_free) for name, (low, high) in default_unit_params_range.items()
        if isinstance((low, high), tuple) and low is not None
    }
    params["alpha"] = rng.uniform(150.0, 400.0, num_free)
    # each twin copies one free unit: a few µm away, the same shape, a slightly different size
    sources = rng.choice(num_free, spec.num_twin_pairs, replace=False)
    twin_locations, twin_params = [], {k: [] for k in params}
    for source in sources:
        angle = rng.uniform(0, 2 * np.pi)
        distance = rng.uniform(*spec.twin_distance_um)
        loc = locations[source].copy()
        loc[:2] += distance * np.array([np.cos(angle), np.sin(angle)])
        twin_locations.append(loc)
        for name, values in params.items():
            value = values[source]
            if name == "alpha":
                value = value * rng.uniform(0.85, 1.15)
            twin_params[name].append(value)
    locations = np.vstack([locations, np.array(twin_locations).reshape(-1, locations.shape[1])])
    params = {k: np.concatenate([v, np.array(twin_params[k])]) for k, v in params.items()}
    twins = [(int(s), num_free + i) for i, s in enumerate(sources)]
    return locations, params, twins


def _displacement_kwargs(spec: ScenarioSpec) -> dict:
    start = 0.1 * spec.duration_s
    return dict(
        displacement_sampling_frequency=5.0,
        drift_start_um=[0, 15],
        drift_stop_um=[0, -15],
        drift_step_um=1,
        motion_list=[dict(drift_mode="zigzag", non_rigid_gradient=None, t_start_drift=start,
                          t_end_drift=None, period_s=1.6 * (spec.duration_s - start))],
    )


def make_ground_truth(spec: ScenarioSpec = ScenarioSpec(), n_jobs: int = 1, progress: bool = False) -> GroundTruth:
    """Generate a recording, damage its sorting as ``spec`` says, and build an analyzer in memory.

    The analyzer holds every extension spikemerge needs, so it can be saved to a folder and
    curated without its recording.
    """
    rng = np.random.default_rng(spec.seed)
    probe = _probe()
    locations, unit_params, twins = _unit_layout(spec, probe.contact_positions, rng)
    templates_kwargs = dict(ms_before=1.5, ms_after=3.0, mode="ellipsoid", unit_params=unit_params)
    displacement = _displacement_kwargs(spec) if spec.drift else dict(
        displacement_sampling_frequency=5.0, drift_start_um=[0, 0], drift_stop_um=[0, 0], drift_step_um=1,
        motion_list=[dict(drift_mode="zigzag", non_rigid_gradient=None, t_start_drift=0.0,
                          t_end_drift=None, period_s=spec.duration_s)],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        static_rec, drifting_rec, sorting = generate_drifting_recording(
            num_units=spec.num_neurons,
            duration=spec.duration_s,
            probe=probe,
            unit_locations=locations,
            generate_displacement_vector_kwargs=displacement,
            generate_templates_kwargs=templates_kwargs,
            generate_sorting_kwargs=dict(firing_rates=spec.firing_rates, refractory_period_ms=4.0),
            generate_noise_kwargs=dict(noise_levels=(6.0, 8.0), spatial_decay=25.0),
            seed=int(rng.integers(1 << 31)),
        )
    recording = drifting_rec if spec.drift else static_rec
    neuron_ids = [int(u) for u in sorting.unit_ids]
    sorting = NumpySorting.from_sorting(sorting)
    sorting = NumpySorting.from_unit_dict(
        [{int(u): sorting.get_unit_spike_train(u) for u in sorting.unit_ids}], sorting.sampling_frequency
    )

    twin_neurons = {n for pair in twins for n in pair}
    candidates = [n for n in neuron_ids if n not in twin_neurons]
    order = list(rng.permutation(candidates))
    counts = [spec.num_time_splits, spec.num_random_splits_2, spec.num_random_splits_3, spec.num_duplicates,
              spec.num_amplitude_splits]
    if sum(counts) > len(order):
        raise ValueError(f"{sum(counts)} damaged neurons asked for, only {len(order)} available")
    time_ids, order = order[: counts[0]], order[counts[0]:]
    split2_ids, order = order[: counts[1]], order[counts[1]:]
    split3_ids, order = order[: counts[2]], order[counts[2]:]
    dup_ids, order = order[: counts[3]], order[counts[3]:]
    amplitude_ids = order[: counts[4]]  # drawn last, so specs without amplitude splits are unchanged
    gt_sorting = sorting

    neuron_of_unit = {n: n for n in neuron_ids}
    kinds = {}
    # 1. median-time splits (this generator assumes unit id == unit index, true here)
    if time_ids:
        shell = create_sorting_analyzer(sorting, recording, format="memory", sparse=False,
                                        job_kwargs={"progress_bar": False})
        sorting, pairs = split_sorting_by_times(shell, unit_ids=np.array(time_ids), seed=int(rng.integers(1 << 31)))
        for old, new in pairs:
            neuron_of_unit[int(new)] = int(old)
            kinds[int(old)] = "time_split"
    # 1b. median-amplitude splits: SpikeInterface's splitter also reads unit ids as unit indices
    if amplitude_ids:
        sorting, pairs = _split_by_amplitudes(sorting, recording, amplitude_ids, seed=int(rng.integers(1 << 31)))
        for old, new in pairs:
            neuron_of_unit[int(new)] = int(old)
            kinds[int(old)] = "amplitude_split"
    # 2. random 2- and 3-way splits: the split unit is replaced by new ids
    for ids, num_split, kind in ((split2_ids, 2, "split2"), (split3_ids, 3, "split3")):
        if not ids:
            continue
        sorting, new_ids = inject_some_split_units(
            sorting, split_ids=[int(i) for i in ids], num_split=num_split, output_ids=True,
            seed=int(rng.integers(1 << 31)),
        )
        for old, news in new_ids.items():
            neuron = neuron_of_unit.pop(int(old))
            for new in news:
                neuron_of_unit[int(new)] = neuron
            kinds[neuron] = kind
    # 3. shifted duplicates: inject_some_duplicate_units copies the first units of the sorting
    if dup_ids:
        unit_ids = list(sorting.unit_ids)
        front = [u for u in unit_ids if int(u) in dup_ids] + [u for u in unit_ids if int(u) not in dup_ids]
        sorting = sorting.select_units(front)
        before = set(int(u) for u in sorting.unit_ids)
        sorting = inject_some_duplicate_units(sorting, num=len(dup_ids), max_shift=5, seed=int(rng.integers(1 << 31)))
        added = [int(u) for u in sorting.unit_ids if int(u) not in before]
        for source, new in zip(front[: len(dup_ids)], added):
            neuron_of_unit[new] = neuron_of_unit[int(source)]
            kinds[neuron_of_unit[int(source)]] = "duplicate"
    sorting = NumpySorting.from_unit_dict(
        [{int(u): sorting.get_unit_spike_train(u) for u in sorted(int(x) for x in sorting.unit_ids)}],
        sorting.sampling_frequency,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        job_kwargs = {"n_jobs": n_jobs, "progress_bar": progress, "chunk_duration": "1s"}
        analyzer = create_sorting_analyzer(sorting, recording, format="memory", sparse=True, job_kwargs=job_kwargs)
        for name in REQUIRED_EXTENSIONS:
            params = dict(EXTENSION_PARAMS.get(name, {}))
            if name in ("waveforms", "noise_levels", "spike_amplitudes"):
                params.update(job_kwargs)
            analyzer.compute(name, **params)
    twin_pairs = [(a, b) for a, b in twins if a in neuron_of_unit and b in neuron_of_unit]
    return GroundTruth(analyzer=analyzer, spec=spec, neuron_of_unit=neuron_of_unit, kinds=kinds, twin_pairs=twin_pairs,
                       gt_sorting=gt_sorting)


def _split_by_amplitudes(sorting: BaseSorting, recording, unit_ids: list, seed: int) -> tuple[BaseSorting, list]:
    """Split each of ``unit_ids`` at its median spike amplitude with ``split_sorting_by_amplitudes``.

    Parameters
    ----------
    sorting : BaseSorting
        A sorting whose unit ids are ``0..N-1`` in order (the splitter uses ids as indices).
    recording : BaseRecording
        The recording the amplitudes are measured on.
    unit_ids : list
        Units to split.
    seed : int
        Seed of the splitter (which of the large spikes stay behind).

    Returns
    -------
    (BaseSorting, list of (old_id, new_id))
    """
    ids = [int(u) for u in sorting.unit_ids]
    if ids != list(range(len(ids))):
        raise RuntimeError(f"amplitude splits need unit ids 0..N-1 in order, got {ids}")
    job_kwargs = {"n_jobs": 1, "progress_bar": False, "chunk_duration": "1s"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shell = create_sorting_analyzer(sorting, recording, format="memory", sparse=False, job_kwargs=job_kwargs)
        shell.compute("random_spikes", method="uniform", max_spikes_per_unit=300, seed=0)
        shell.compute("templates", **job_kwargs)
        shell.compute("spike_amplitudes", **job_kwargs)
        new_sorting, pairs = split_sorting_by_amplitudes(shell, unit_ids=np.array([int(u) for u in unit_ids]), seed=seed)
    return new_sorting, [(int(a), int(b)) for a, b in pairs]


def rebuild_gt_sorting(sorting: BaseSorting, neuron_of_unit: dict, kinds: dict) -> NumpySorting:
    """The undamaged sorting, rebuilt from a damaged one and its truth.

    Splits partition a neuron's spikes, so the neuron's train is the union of its units'
    trains; a duplicated neuron keeps its own unit (id = neuron id) and gains a shifted copy,
    so its train is that unit's alone.

    Parameters
    ----------
    sorting : BaseSorting
        The damaged sorting (single segment).
    neuron_of_unit : dict
        Sorted unit id -> true neuron id.
    kinds : dict
        Neuron id -> damage kind.

    Returns
    -------
    NumpySorting
        One unit per neuron, unit id = neuron id, sorted by id.
    """
    trains: dict = {}
    for unit, neuron in neuron_of_unit.items():
        if kinds.get(neuron) == "duplicate" and unit != neuron:
            continue
        trains.setdefault(int(neuron), []).append(sorting.get_unit_spike_train(unit))
    return NumpySorting.from_unit_dict(
        [{n: np.sort(np.concatenate(trains[n])) for n in sorted(trains)}], sorting.sampling_frequency
    )


def save_gt_sorting(sorting: BaseSorting, path: Path) -> Path:
    """Write a single-segment sorting as ``.npz`` (unit ids, spike samples, unit indices, rate)."""
    vector = sorting.to_spike_vector()
    with open(path, "wb") as handle:
        np.savez(handle, unit_ids=np.asarray(sorting.unit_ids), sample_index=vector["sample_index"],
                 unit_index=vector["unit_index"], sampling_frequency=sorting.sampling_frequency)
    return Path(path)


def load_gt_sorting(path: Path) -> NumpySorting:
    """Read a sorting written by :func:`save_gt_sorting`."""
    data = np.load(path)
    ids = [x.item() for x in data["unit_ids"]]
    samples, indices = data["sample_index"], data["unit_index"]
    return NumpySorting.from_unit_dict(
        [{u: samples[indices == i] for i, u in enumerate(ids)}], float(data["sampling_frequency"])
    )


def save_ground_truth(truth: GroundTruth, folder: Path) -> Path:
    """Save the analyzer (without its generated recording) and the truth beside it."""
    import json

    folder = Path(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        truth.analyzer.save_as(format="binary_folder", folder=folder / "analyzer")
    (folder / "truth.json").write_text(json.dumps({
        "spec": truth.spec.__dict__,
        "neuron_of_unit": {str(k): v for k, v in truth.neuron_of_unit.items()},
        "kinds": {str(k): v for k, v in truth.kinds.items()},
        "twin_pairs": truth.twin_pairs,
    }, indent=2))
    return folder / "analyzer"
