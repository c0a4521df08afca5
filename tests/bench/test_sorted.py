"""The sorted bench's truth-building and scoring, on fake match tables and small NumpySortings (no MEArec)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from spikeinterface.core import NumpySorting

from spikemerge.bench import sorted as sb

FS = 30_000.0


def _poisson(rng, rate_hz, duration_s, refractory_s=0.003):
    isi = rng.exponential(1.0 / rate_hz, size=int(rate_hz * duration_s * 2)) + refractory_s
    times = np.cumsum(isi)
    return np.round(times[times < duration_s] * FS).astype(np.int64)


def _sorting(trains: dict) -> NumpySorting:
    return NumpySorting.from_unit_dict([{u: np.sort(np.asarray(t, dtype=np.int64)) for u, t in trains.items()}], FS)


@pytest.fixture
def neurons():
    rng = np.random.default_rng(0)
    return {"#0": _poisson(rng, 8, 120), "#1": _poisson(rng, 6, 120), "#2": _poisson(rng, 10, 120)}


# ---------------------------------------------------------------- assign_units, pairs


def test_assign_units_needs_the_purity_threshold():
    counts = np.array([[90, 50, 0], [5, 45, 0]])  # neurons x units
    unit_to_neuron, purity = sb.assign_units(counts, [100, 100, 0], ["a", "b"], [1, 2, 3])
    assert unit_to_neuron == {1: "a", 2: None, 3: None}
    assert purity[1] == ("a", 0.9)
    assert purity[2] == ("a", 0.5)


def test_assign_units_exactly_at_threshold_is_pure():
    unit_to_neuron, _ = sb.assign_units(np.array([[80]]), [100], ["a"], [7])
    assert unit_to_neuron == {7: "a"}


def test_true_pairs_and_split_neurons_skip_impure_units():
    unit_to_neuron = {1: "a", 2: "a", 3: "a", 4: "b", 5: None, 6: "c", 7: "c"}
    assert sb.true_pairs(unit_to_neuron) == [[1, 2], [1, 3], [2, 3], [6, 7]]
    assert sb.split_neurons(unit_to_neuron) == {"a": [1, 2, 3], "c": [6, 7]}
    assert sb.split_neurons(unit_to_neuron, min_units=1)["b"] == [4]


# ---------------------------------------------------------------- lags


def test_best_lags_finds_the_offset_of_a_shifted_duplicate(neurons):
    shift = int(round(0.0013 * FS))  # 1.3 ms: outside the comparison's 0.4 ms window
    units = {10: neurons["#0"], 11: neurons["#0"] + shift, 12: neurons["#2"][::2]}
    lags = sb.best_lags(neurons, units, FS)
    assert lags[10][0] == "#0" and abs(lags[10][1]) < 0.05 and lags[10][2] > 0.95
    assert lags[11][0] == "#0" and lags[11][1] == pytest.approx(1.3, abs=0.06) and lags[11][2] > 0.95
    assert lags[12][0] == "#2"


def test_best_lags_of_an_empty_or_far_unit():
    lags = sb.best_lags({"a": np.array([1000, 5000])}, {1: np.array([], dtype=np.int64), 2: np.array([90_000])}, FS)
    assert lags[1] == (None, 0.0, 0.0)
    assert lags[2] == (None, 0.0, 0.0)


# ---------------------------------------------------------------- build_truth on NumpySortings


def test_build_truth_from_a_sorter_like_split(neurons):
    rng = np.random.default_rng(1)
    n0, n1, n2 = neurons["#0"], neurons["#1"], neurons["#2"]
    half = n0.max() // 2
    mixed = np.sort(np.concatenate([n1[: len(n1) // 2], n2[: len(n2) // 2]]))
    jitter = rng.integers(-3, 4, size=n2.size)
    units = {
        1: n0[n0 < half],                                   # time fragment 1 of #0
        2: n0[n0 >= half],                                  # time fragment 2 of #0
        3: n0[::3] + int(round(0.001 * FS)),                # duplicate of #0 offset by 1 ms
        4: n1,                                              # #1 whole
        5: mixed,                                           # half #1, half #2: impure
        6: n2 + jitter,                                     # #2, jittered by up to 0.1 ms
    }
    truth = sb.build_truth(_sorting(neurons), _sorting(units))
    assert truth["unit_to_neuron"] == {"1": "#0", "2": "#0", "3": "#0", "4": "#1", "5": None, "6": "#2"}
    assert truth["impure_units"] == [5]
    assert truth["true_pairs"] == [[1, 2], [1, 3], [2, 3]]
    assert truth["split_neurons"] == {"#0": [1, 2, 3]}
    assert truth["neuron_units"] == {"#0": [1, 2, 3], "#1": [4], "#2": [6]}
    assert truth["lag_ms"]["3"] == pytest.approx(1.0, abs=0.06)
    assert truth["purity"]["5"][1] < 0.8
    assert truth["undetected_neurons"] == []
    json.dumps(truth)  # serialisable as it is


def test_build_truth_without_the_lag_correction_loses_an_offset_duplicate(neurons):
    units = {1: neurons["#0"], 2: neurons["#0"] + int(round(0.0015 * FS))}
    strict = sb.build_truth(_sorting(neurons), _sorting(units), max_lag_ms=0.0)
    assert strict["unit_to_neuron"]["2"] is None
    corrected = sb.build_truth(_sorting(neurons), _sorting(units))
    assert corrected["unit_to_neuron"]["2"] == "#0"


# ---------------------------------------------------------------- scoring


TRUTH = {
    "unit_to_neuron": {"1": "a", "2": "a", "3": "a", "4": "b", "5": "b", "6": None, "7": "c"},
    "impure_units": [6],
}


def test_score_sorted_perfect():
    s = sb.score_sorted([[1, 2, 3], [4, 5]], TRUTH)
    assert (s["true_pairs"], s["pairs_found"], s["tp"], s["fp"], s["fn"]) == (4, 4, 4, 0, 0)
    assert s["f1"] == 1.0 and s["wrong_merges"] == 0


def test_score_sorted_leaves_impure_units_out():
    s = sb.score_sorted([[1, 2, 6], [4, 6]], TRUTH)
    assert s["excluded_pairs"] == 3
    assert (s["pairs_found"], s["tp"], s["fp"], s["fn"]) == (1, 1, 0, 3)
    assert s["precision"] == 1.0 and s["recall"] == 0.25
    assert s["f1"] == pytest.approx(0.4)


def test_score_sorted_tells_impure_units_merged_into_their_neuron_from_those_merged_into_another():
    truth = {**TRUTH, "unit_to_neuron": {**TRUTH["unit_to_neuron"], "8": None, "9": None},
             "impure_units": [6, 8, 9],
             "purity": {"6": ["a", 0.7], "8": ["b", 0.55], "9": ["a", 0.4]}}
    # 6 (mostly a) into a's units; 8 (mostly b) into a's; 9 into a group of b and c (tie: by neuron id),
    # and 6 again with impure units only (not counted: no neuron to tell)
    s = sb.score_sorted([[1, 2, 6, 8], [4, 7, 9], [6, 8]], truth)
    assert (s["impure_own"], s["impure_foreign"]) == (1, 2)
    pure = {u: n for u, n in truth["unit_to_neuron"].items() if n is not None}
    assert sb.impure_placements([["1", "2", "6", "8"], ["4", "7", "9"]], pure, truth["purity"]) == [
        ("6", "a", 0.7, "a"), ("8", "b", 0.55, "a"), ("9", "a", 0.4, "c")]
    assert s["excluded_pairs"] == 5 + 2 + 1
    assert (s["tp"], s["wrong_merges"]) == (1, 1)
    # a truth without purity records (older truth.json) counts nothing
    assert (sb.score_sorted([[1, 2, 6]], TRUTH)["impure_own"], sb.score_sorted([[1, 2, 6]], TRUTH)["impure_foreign"]) == (0, 0)


def test_score_sorted_counts_wrong_merges():
    s = sb.score_sorted([[1, 2, 4], [7, 5]], TRUTH)
    # pairs: 1-2 (tp), 1-4, 2-4, 7-5 (distinct neurons)
    assert (s["tp"], s["fp"], s["wrong_merges"], s["pairs_found"]) == (1, 3, 3, 4)
    assert s["precision"] == 0.25


def test_score_sorted_nothing_merged():
    s = sb.score_sorted([], TRUTH)
    assert s["precision"] == 1.0 and s["recall"] == 0.0 and s["f1"] == 0.0 and s["fn"] == 4


def test_score_sorted_takes_string_or_numpy_ids():
    s = sb.score_sorted([[np.int64(1), "2"]], TRUTH)
    assert s["tp"] == 1


# ---------------------------------------------------------------- names, params, final merge switch


def test_dataset_names_round_trip():
    spec = sb.parse_dataset_name("drift_sc2_s1")
    assert (spec.scenario, spec.sorter, spec.seed, spec.motion_correction) == ("drift", "spykingcircus2", 1, False)
    assert spec.name == "drift_sc2_s1"
    assert sb.parse_dataset_name("burst_tdc2_s12").name == "burst_tdc2_s12"
    kilosort = sb.parse_dataset_name("drift_ks4_s3")
    assert (kilosort.sorter, kilosort.motion_correction, kilosort.name) == ("kilosort4", False, "drift_ks4_s3")
    for bad in ("drift_ks2_s1", "nope_sc2_s1", "drift_sc2_1", "drift"):
        with pytest.raises(ValueError):
            sb.parse_dataset_name(bad)


def test_recording_overrides_are_typed_and_reach_the_spec():
    overrides = sb.parse_overrides(["slow_drift_velocity=16", "n_exc=12", "n_bursting=10", "shape_mod=false",
                                    "slow_drift_amplitude=none", "drift_mode_probe=non-rigid"])
    assert dict(overrides) == {"slow_drift_velocity": 16.0, "n_exc": 12, "n_bursting": 10, "shape_mod": False,
                               "slow_drift_amplitude": None, "drift_mode_probe": "non-rigid"}
    assert isinstance(dict(overrides)["n_exc"], int) and isinstance(dict(overrides)["slow_drift_velocity"], float)
    base = sb.parse_dataset_name("drift_sc2_s5")
    spec = sb.DatasetSpec(base.scenario, base.sorter, base.seed, base.motion_correction, overrides)
    rec = spec.recording_spec()
    assert (rec.slow_drift_velocity, rec.n_exc, rec.seed) == (16.0, 12, 5)
    assert rec.key() != base.recording_spec().key()  # its own recording file, never the dev set's
    assert spec.name == "drift_sc2_s5"
    for bad in (["velocity=16"], ["seed=3"], ["n_exc"], ["shape_mod=yes"], ["n_exc=1.5"]):
        with pytest.raises(ValueError):
            sb.parse_overrides(bad)


def test_template_library_overrides_reach_the_library_and_its_own_files():
    overrides = sb.parse_overrides(["templates.seed=3", "templates.probe=Neuropixels-64", "n_exc=12"])
    assert dict(overrides) == {"templates.seed": 3, "templates.probe": "Neuropixels-64", "n_exc": 12}
    base = sb.parse_dataset_name("drift_tdc2_s7")
    rec = sb.DatasetSpec(base.scenario, base.sorter, base.seed, base.motion_correction, overrides).recording_spec()
    assert (rec.templates.seed, rec.templates.probe, rec.n_exc, rec.seed) == (3, "Neuropixels-64", 12, 7)
    assert rec.templates.n_per_model == sb.TemplateSpec().n_per_model  # the library's other fields kept
    assert rec.templates.key() != sb.TemplateSpec().key() and rec.key() != base.recording_spec().key()
    assert sb.scenario("drift", 7).templates == sb.TemplateSpec()  # the scenario table is left as it was
    for bad in (["templates.sed=3"], ["templates=3"], ["templates.drifting=maybe"]):
        with pytest.raises(ValueError):
            sb.parse_overrides(bad)


def test_specs_hash_on_every_parameter():
    a = sb.scenario("drift", 1)
    assert a.key() == sb.scenario("drift", 1).key()
    assert a.key() != sb.scenario("drift", 2).key()
    assert a.key() != sb.scenario("drift", 1, noise_level=11.0).key()
    assert sb.TemplateSpec(seed=0).key() != sb.TemplateSpec(seed=1).key()


def test_sorter_params_are_seeded_and_single_job():
    for sorter in sb.SORTERS:
        params = sb.sorter_params(sorter, seed=7, motion_correction=False)
        assert params["seed"] == 7 and params["job_kwargs"]["n_jobs"] == 1
        assert params["apply_motion_correction"] is False
    kilosort = sb.sorter_params("kilosort4", seed=7, motion_correction=False)
    assert kilosort["torch_device"] == "cpu" and kilosort["do_correction"] is False
    assert "do_correction" not in sb.sorter_params("kilosort4")  # None: Kilosort's default (it corrects)
    with pytest.raises(ValueError, match="unknown sorter 'kilosort2'"):
        sb.sorter_params("kilosort2")


def test_final_merge_off_patches_and_restores():
    from spikeinterface.sorters.internal import spyking_circus2

    original = spyking_circus2.final_cleaning_circus
    sorting = _sorting({1: [10, 20]})
    with sb.final_merge_off():
        result = spyking_circus2.final_cleaning_circus(None, sorting, None, amplitude_scalings=None)
        assert result.sorting is sorting
        assert result.save_as(format="binary_folder", folder="nowhere") is result
    assert spyking_circus2.final_cleaning_circus is original


def test_kilosorts_final_ccg_merge_is_switched_off_and_restored(monkeypatch):
    """Kilosort 4's final merge (mode "ccg") sees a similarity gate no pair passes; its template
    deduplication (mode "mu") runs as it would. A stand-in module: Kilosort is not a test dependency."""
    import types

    calls = []

    def merging_function(ops, Wall, clu, st, tF, r_thresh=0.5, mode="ccg", check_dt=True, device=None):
        calls.append((mode, r_thresh, check_dt))
        return "merged"

    template_matching = types.SimpleNamespace(merging_function=merging_function)
    monkeypatch.setitem(sys.modules, "kilosort", types.SimpleNamespace(template_matching=template_matching))
    monkeypatch.setitem(sys.modules, "kilosort.template_matching", template_matching)
    with sb.final_merge_off():
        assert template_matching.merging_function({}, None, None, None, None, check_dt=True) == "merged"
        template_matching.merging_function({}, None, None, None, None, 0.9, "mu", check_dt=False)
    assert template_matching.merging_function is merging_function
    assert calls == [("ccg", math.inf, True), ("mu", 0.9, False)]


def test_seeded_draws_repeat_the_sorters_random_draws_and_restore_them():
    """The draws spykingcircus2 and tridesclous2 make unseeded agree twice inside the block, not outside."""
    from spikeinterface.core import generate_recording
    from spikeinterface.sorters.internal import tridesclous2
    from spikeinterface.sortingcomponents import peak_selection
    from spikeinterface.sortingcomponents.peak_detection import matched_filtering

    recording = generate_recording(num_channels=4, durations=[20.0], seed=0)
    peaks = np.zeros(400, dtype=[("sample_index", "int64"), ("channel_index", "int64"), ("amplitude", "float64"),
                                 ("segment_index", "int64")])
    peaks["sample_index"] = np.repeat(np.arange(200), 2)  # two peaks on each sample: their order is the draw's
    peaks["channel_index"] = np.tile([0, 1], 200)

    def draws():
        return (matched_filtering.get_random_data_chunks(recording, num_chunks_per_segment=5),
                tridesclous2.whiten(recording, dtype="float32", mode="local", radius_um=100.0,
                                    num_chunks_per_segment=5).get_traces(end_frame=100),
                peak_selection.select_peaks(peaks, method="uniform", n_peaks=len(peaks))["channel_index"])

    originals = (matched_filtering.get_random_data_chunks, tridesclous2.whiten, peak_selection.select_peaks)
    unseeded = [draws(), draws()]
    with sb.seeded_draws(3):
        first, second = draws(), draws()
    assert all(np.array_equal(x, y) for x, y in zip(first, second))
    assert not any(np.array_equal(x, y) for x, y in zip(*unseeded))  # each is a new draw without the seed
    assert (matched_filtering.get_random_data_chunks, tridesclous2.whiten, peak_selection.select_peaks) == originals


def test_a_recording_with_a_channel_beyond_any_cell_is_refused_before_sorting():
    from spikeinterface.core import NumpyRecording

    from spikemerge.bench.sorted.mearec import check_recording

    rng = np.random.default_rng(0)
    traces = rng.normal(0.0, 10.0, (30000, 4)).astype("float32")
    traces[5000:5100, 1] -= 250.0  # a large cell: fine
    check_recording(NumpyRecording(traces, 30000.0, channel_ids=["a", "b", "c", "d"]), "ok")
    traces[20000:26000, 2] = 5.1e10  # MEArec's failure on one Neuropixels-24 recording
    with pytest.raises(RuntimeError, match=r"burst_x_s1: channel c \(5\.1e\+10 µV\) beyond 5000 µV"):
        check_recording(NumpyRecording(traces, 30000.0, channel_ids=["a", "b", "c", "d"]), "burst_x_s1")


def _blowing_stretch(template, mod, shape_stretch=30.0):
    """MEArec's per-channel rescale, as it behaves on a channel that never dips below 0: ~1e10 there."""
    out = np.asarray(mod, float).reshape(-1, 1) * template
    out[1] = 5.5e10
    return out


def test_a_burst_stretch_that_blows_up_a_channel_is_kept_to_the_modulated_template(monkeypatch):
    import sys
    import types

    from spikemerge.bench.sorted.mearec import stretch_guarded

    tools = types.ModuleType("MEArec.tools")
    tools.compute_stretched_template = _blowing_stretch
    monkeypatch.setitem(sys.modules, "MEArec", types.ModuleType("MEArec"))
    monkeypatch.setitem(sys.modules, "MEArec.tools", tools)
    template = np.array([[0.0, -100.0, 40.0], [-1e-9, 3.0, 8.0], [0.0, -30.0, 10.0]])
    with stretch_guarded():
        out = tools.compute_stretched_template(template, np.array([0.5, 0.5, 0.5]))
    assert np.allclose(out, 0.5 * template)  # channel 1 from the modulated template, the others MEArec's own
    assert tools.compute_stretched_template is _blowing_stretch  # restored


def test_mearecs_own_stretch_of_a_channel_that_never_dips_is_guarded():
    tools = pytest.importorskip("MEArec.tools")
    from spikemerge.bench.sorted.mearec import stretch_guarded

    x = np.arange(416)
    positive = 10.0 * np.exp(-(((x - 180) / 20.0) ** 2))  # a channel that never dips below 0 ...
    positive[0] = -1e-9  # ... but for a rounding error: MEArec rescales it by -1e-9 / ~-1e-19
    template = np.stack([-100.0 * np.exp(-(((x - 150) / 8.0) ** 2)), positive])
    mod = np.array([0.5, 0.5])
    assert np.abs(tools.compute_stretched_template(template, mod, 30.0)[1]).max() > 1e20
    with stretch_guarded():
        out = tools.compute_stretched_template(template, mod, 30.0)
    assert np.allclose(out[1], 0.5 * positive) and np.isclose(np.abs(out[0]).max(), 50.0)


def test_venv_bin_goes_first_on_path(monkeypatch):
    import os
    import sys

    monkeypatch.setenv("PATH", os.pathsep.join(["/usr/bin", str(Path(sys.executable).parent)]))
    sb.ensure_venv_bin_on_path()
    parts = os.environ["PATH"].split(os.pathsep)
    assert parts[0] == str(Path(sys.executable).parent) and parts.count(parts[0]) == 1


def test_builds_side_by_side_simulate_a_template_library_once(tmp_path, monkeypatch):
    """Two builds on a new cache: one simulates, the other waits and reads the same file."""
    import os
    import sys
    import threading
    import time
    import types

    calls = []

    def gen_templates(*args, **kwargs):
        calls.append(kwargs["params"])
        time.sleep(0.3)  # long enough for the second build to arrive while the first simulates
        return types.SimpleNamespace(templates=[0, 1])

    def save_template_generator(tempgen, filename):
        Path(filename).write_bytes(b"templates")

    fake = types.ModuleType("MEArec")
    fake.gen_templates = gen_templates
    fake.save_template_generator = save_template_generator
    fake.get_default_cell_models_folder = lambda: str(tmp_path / "cells")
    monkeypatch.setitem(sys.modules, "MEArec", fake)
    monkeypatch.setenv("PATH", os.environ.get("PATH", ""))
    monkeypatch.setattr(sb.TemplateSpec, "mearec_params", lambda self: {})
    spec = sb.TemplateSpec()
    paths = []
    builds = [threading.Thread(target=lambda: paths.append(sb.make_templates(spec, tmp_path))) for _ in range(2)]
    for build in builds:
        build.start()
    for build in builds:
        build.join()
    assert len(calls) == 1
    assert len(paths) == 2 and paths[0] == paths[1] and paths[0].read_bytes() == b"templates"


def test_status_lists_datasets_and_failures(tmp_path, neurons):
    folder = tmp_path / "drift_sc2_s1"
    folder.mkdir()
    truth = sb.build_truth(_sorting(neurons), _sorting({1: neurons["#0"][::2], 2: neurons["#0"][1::2]}))
    truth.update(sorter="spykingcircus2", num_neurons=3)
    (folder / "truth.json").write_text(json.dumps(truth))
    (folder / "READY").touch()
    path = sb.write_status(tmp_path, {"burst_tdc2_s1": "RuntimeError: boom"})
    text = path.read_text()
    assert "| drift_sc2_s1 | yes | spykingcircus2 |" in text and "| 1 |" in text
    assert "burst_tdc2_s1: RuntimeError: boom" in text


# ---------------------------------------------------------------- end to end (MEArec)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("MEArec") is None, reason="MEArec is not installed (the [bench] extra)")
def test_cached_dataset_is_complete():
    """A dataset built by scripts/make_sorted_bench.py opens and scores (skips when none is cached)."""
    cache = sb.default_cache()
    ready = sorted(p.parent for p in cache.glob("*/READY")) if cache.exists() else []
    if not ready:
        pytest.skip(f"no READY dataset in {cache}")
    data = sb.load_dataset(ready[0], in_memory=False)
    for ext in ("random_spikes", "waveforms", "templates", "noise_levels", "unit_locations", "spike_amplitudes"):
        assert data.analyzer.has_extension(ext)
    perfect = [us for us in data.truth["split_neurons"].values()]
    assert sb.score_sorted(perfect, data.truth)["f1"] == 1.0 or not data.truth["true_pairs"]


# ---------------------------------------------------------------- the bench runner on a sorted truth


def test_bench_scores_a_sorted_truth_without_its_impure_units(neurons):
    from types import SimpleNamespace

    from spikemerge.bench.run import score_result

    n0 = neurons["#0"]
    units = {1: n0[::2], 2: n0[1::2], 3: neurons["#1"], 4: np.sort(np.concatenate([neurons["#2"], neurons["#1"]]))}
    sorting = _sorting(units)
    truth = sb.SortedGroundTruth(analyzer=SimpleNamespace(sorting=sorting), truth={},
                                 neuron_of_unit={1: "#0", 2: "#0", 3: "#1"}, impure_units=[4],
                                 gt_sorting=_sorting(neurons))
    assert truth.true_groups == [[1, 2]]
    scores = score_result(truth, [[1, 2, 4]])
    assert (scores["tp"], scores["fp"], scores["fn"], scores["distinct_merges"]) == (1, 0, 0, 0)
    assert scores["merged"] == [[1, 2, 4]]


def test_bench_cli_accepts_sorted_scenarios_by_name_only():
    from spikemerge.bench.cli import parse_list
    from spikemerge.bench.run import SCENARIOS
    from spikemerge.errors import SpikemergeError

    assert parse_list("sorted_drift,sorted_burst", list(SCENARIOS), "scenario(s)", extra=list(sb.BENCH_SCENARIOS)) == [
        "sorted_drift", "sorted_burst"]
    assert parse_list("all", list(SCENARIOS), "scenario(s)", extra=list(sb.BENCH_SCENARIOS)) == list(SCENARIOS)
    with pytest.raises(SpikemergeError):
        parse_list("sorted_nope", list(SCENARIOS), "scenario(s)", extra=list(sb.BENCH_SCENARIOS))


def test_pair_facts_tell_fragments_from_duplicates(neurons):
    n0 = neurons["#0"]
    half = n0.max() // 2
    fragments = sb.pair_facts(n0[n0 < half], n0[n0 >= half], FS)
    assert fragments["overlap"] <= 0.1 and fragments["shared"] == 0.0
    shift = int(round(0.001 * FS))
    duplicate = sb.pair_facts(n0, n0[::2] + shift, FS, 0.0, 1.0)
    assert duplicate["overlap"] > 0.9 and duplicate["shared"] > 0.95 and duplicate["lag_ms"] == 1.0
    facts = sb.unit_facts(n0, FS)
    assert facts["n_spikes"] == len(n0) and facts["first_s"] <= facts["median_s"] <= facts["last_s"]


def test_a_dataset_being_built_by_a_live_process_is_refused(tmp_path):
    import os
    import subprocess
    import sys

    folder = tmp_path / "drift_sc2_s1"
    folder.mkdir()
    with sb.datasets._building(folder):
        assert (folder / "BUILDING").read_text().split()[0] == str(os.getpid())
    assert not (folder / "BUILDING").exists()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (folder / "BUILDING").write_text(f"{other.pid} now\n")
        with pytest.raises(RuntimeError, match="being built"):
            with sb.datasets._building(folder):
                pass
    finally:
        other.kill()
        other.wait()
    with sb.datasets._building(folder):  # the claim of a finished process is stale
        pass


def test_pair_kinds_sort_true_pairs_by_how_they_were_split():
    truth = {"pairs": {"1-2": {"overlap": 0.05, "shared": 0.0, "lag_ms": 0.0},
                       "1-3": {"overlap": 0.95, "shared": 0.9, "lag_ms": -1.2},
                       "4-5": {"overlap": 0.9, "shared": 0.02, "lag_ms": 0.1}}}
    assert sb.pair_kinds(truth) == {"duplicate": 1, "fragments": 1, "concurrent": 1, "duplicate_lags_ms": [1.2]}


def test_status_keeps_its_notes_when_rewritten(tmp_path):
    sb.write_status(tmp_path, notes=["drift copies are 1.9 ms early"])
    text = sb.write_status(tmp_path, {"x_sc2_s1": "boom"}).read_text()
    assert "## notes\n\n- drift copies are 1.9 ms early" in text and "x_sc2_s1: boom" in text
    assert text.count("## notes") == 1


def test_a_set_found_after_a_failed_try_no_longer_reads_as_failed(tmp_path):
    """build_dataset, whoever calls it, removes the FAILED file of an earlier try once the set is there."""
    folder = tmp_path / "drift_sc2_s1"
    folder.mkdir()
    (folder / "truth.json").write_text(json.dumps({**TRUTH, "true_pairs": [], "split_neurons": {}}))
    (folder / "READY").touch()
    (folder / "FAILED").write_text("RuntimeError: Templates could not be selected.")
    summary = sb.build_dataset("drift_sc2_s1", None, "spykingcircus2", tmp_path)
    assert summary["units"] == len(TRUTH["unit_to_neuron"])
    assert not (folder / "FAILED").exists()
