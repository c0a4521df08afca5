"""Each damage kind yields the ground truth it claims; scenarios hold the kinds they say; the cache."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, replace

import numpy as np
import pytest

from spikemerge.bench import run as bench_run
from spikemerge.bench.run import SCENARIOS, dataset_key, load_or_make, scenario_spec
from spikemerge.bench.synthetic import ScenarioSpec, rebuild_gt_sorting

from .conftest import TINY_SPEC

KIND_FIELD = {
    "split2": "num_random_splits_2",
    "split3": "num_random_splits_3",
    "time_split": "num_time_splits",
    "amplitude_split": "num_amplitude_splits",
    "duplicate": "num_duplicates",
}
UNITS_PER_NEURON = {"split2": 2, "split3": 3, "time_split": 2, "amplitude_split": 2, "duplicate": 2}


def _units_of(truth) -> dict:
    by_neuron: dict = {}
    for unit, neuron in truth.neuron_of_unit.items():
        by_neuron.setdefault(neuron, []).append(unit)
    return by_neuron


def test_every_kind_is_made_as_often_as_asked(tiny_truth):
    counts = Counter(tiny_truth.kinds.values())
    assert counts == {kind: getattr(TINY_SPEC, name) for kind, name in KIND_FIELD.items()}
    by_neuron = _units_of(tiny_truth)
    for neuron, units in by_neuron.items():
        assert len(units) == UNITS_PER_NEURON.get(tiny_truth.kinds.get(neuron), 1), (neuron, units)


def test_merging_the_true_groups_recovers_the_neurons(tiny_truth):
    sorting = tiny_truth.analyzer.sorting
    assert set(int(u) for u in sorting.unit_ids) == set(tiny_truth.neuron_of_unit)
    merged_count = len(sorting.unit_ids) - sum(len(g) - 1 for g in tiny_truth.true_groups)
    assert merged_count == TINY_SPEC.num_neurons
    assert len(set(tiny_truth.neuron_of_unit.values())) == TINY_SPEC.num_neurons


def test_splits_partition_the_neurons_spikes(tiny_truth):
    """A split neuron's units share no spike and together hold exactly the neuron's spikes."""
    sorting, gt = tiny_truth.analyzer.sorting, tiny_truth.ground_truth_sorting()
    for neuron, units in _units_of(tiny_truth).items():
        kind = tiny_truth.kinds.get(neuron)
        if kind in (None, "duplicate"):
            continue
        trains = [sorting.get_unit_spike_train(u) for u in units]
        union = np.sort(np.concatenate(trains))
        assert len(np.unique(union)) == len(union), f"{kind} units of neuron {neuron} share spikes"
        assert np.array_equal(union, gt.get_unit_spike_train(neuron)), kind


def test_time_splits_are_before_and_after_the_median(tiny_truth):
    sorting = tiny_truth.analyzer.sorting
    for neuron, units in _units_of(tiny_truth).items():
        if tiny_truth.kinds.get(neuron) != "time_split":
            continue
        new = [u for u in units if u != neuron][0]
        late = sorting.get_unit_spike_train(new)
        kept = sorting.get_unit_spike_train(neuron)
        median = np.median(np.concatenate([late, kept]))
        assert np.all(late > median)
        assert np.mean(kept <= median) > 0.9  # the splitter leaves 5 % of the late spikes behind


def test_amplitude_splits_take_about_half_the_spikes(tiny_truth):
    sorting = tiny_truth.analyzer.sorting
    amplitudes = tiny_truth.analyzer.get_extension("spike_amplitudes").get_data(outputs="by_unit")[0]
    for neuron, units in _units_of(tiny_truth).items():
        if tiny_truth.kinds.get(neuron) != "amplitude_split":
            continue
        new = [u for u in units if u != neuron][0]
        n_new, n_kept = sorting.count_num_spikes_per_unit()[new], sorting.count_num_spikes_per_unit()[neuron]
        assert 0.35 < n_new / (n_new + n_kept) < 0.6  # 95 % of the spikes on one side of the median
        # the two parts sit on opposite sides of the neuron's median amplitude
        assert np.median(amplitudes[new]) != pytest.approx(np.median(amplitudes[neuron]), rel=0.02)


def test_duplicates_are_shifted_copies(tiny_truth):
    sorting = tiny_truth.analyzer.sorting
    for neuron, units in _units_of(tiny_truth).items():
        if tiny_truth.kinds.get(neuron) != "duplicate":
            continue
        copy = [u for u in units if u != neuron][0]
        shift = sorting.get_unit_spike_train(copy) - sorting.get_unit_spike_train(neuron)
        assert len(np.unique(shift)) == 1 and 0 < abs(shift[0]) <= 5


def test_twins_are_distinct_undamaged_neurons_close_together(tiny_truth):
    assert len(tiny_truth.twin_pairs) == TINY_SPEC.num_twin_pairs
    locations = tiny_truth.analyzer.get_extension("unit_locations").get_data()
    index = {int(u): i for i, u in enumerate(tiny_truth.analyzer.unit_ids)}
    for a, b in tiny_truth.twin_pairs:
        assert tiny_truth.neuron_of_unit[a] != tiny_truth.neuron_of_unit[b]
        assert a not in tiny_truth.kinds and b not in tiny_truth.kinds
        assert np.linalg.norm(locations[index[a], :2] - locations[index[b], :2]) < 25.0


def test_rebuilt_truth_equals_the_stored_one(tiny_truth):
    stored = tiny_truth.ground_truth_sorting()
    rebuilt = rebuild_gt_sorting(tiny_truth.analyzer.sorting, tiny_truth.neuron_of_unit, tiny_truth.kinds)
    assert list(stored.unit_ids) == list(rebuilt.unit_ids) == list(range(TINY_SPEC.num_neurons))
    for u in stored.unit_ids:
        assert np.array_equal(stored.get_unit_spike_train(u), rebuilt.get_unit_spike_train(u))


def test_cached_dataset_is_not_regenerated(tiny_cache, tiny_truth, monkeypatch):
    monkeypatch.setattr(bench_run, "make_ground_truth", lambda spec: pytest.fail("regenerated a cached dataset"))
    again = load_or_make(TINY_SPEC, tiny_cache)
    assert again.neuron_of_unit == tiny_truth.neuron_of_unit
    assert again.analyzer.has_extension("spike_locations")  # stored while the recording was at hand
    entries = [p.name for p in tiny_cache.iterdir()]
    assert entries == [dataset_key(TINY_SPEC)]  # no staging folder left behind


def test_failed_generation_leaves_no_cache_entry(tmp_path, monkeypatch):
    def broken(spec):
        raise RuntimeError("generator crashed")

    monkeypatch.setattr(bench_run, "make_ground_truth", broken)
    with pytest.raises(RuntimeError):
        load_or_make(TINY_SPEC, tmp_path)
    assert list(tmp_path.iterdir()) == []


# -- scenarios (specs only, nothing generated) ----------------------------------------------------


def test_legacy_specs_keep_their_cache_keys():
    """static and drift (the demo's datasets) hash as before amplitude splits existed."""
    assert dataset_key(scenario_spec("static", 0)) == "0a76e97401f9"
    assert dataset_key(scenario_spec("drift", 0)) == "8087be209092"
    assert SCENARIOS["static"] == replace(ScenarioSpec(), drift=False)
    assert SCENARIOS["drift"] == replace(ScenarioSpec(), drift=True)


def test_new_fields_change_the_cache_key():
    assert dataset_key(replace(ScenarioSpec(), num_amplitude_splits=1)) != dataset_key(ScenarioSpec())


@pytest.mark.parametrize("name, kind", [("random_splits", {"split2", "split3"}), ("time_splits", {"time_split"}),
                                        ("amplitude", {"amplitude_split"}), ("duplicates", {"duplicate"}),
                                        ("hard_negatives", set())])
def test_single_kind_scenarios_hold_only_their_kind(name, kind):
    spec = asdict(SCENARIOS[name])
    asked = {k for k, field in KIND_FIELD.items() if spec[field] > 0}
    assert asked == kind
    assert spec["num_twin_pairs"] >= 1


def test_quick_shortens_only_the_duration():
    assert scenario_spec("amplitude", 3, quick=True) == replace(SCENARIOS["amplitude"], seed=3, duration_s=120.0)
