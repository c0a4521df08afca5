"""The one AnalyzerView: lazy opening, what is (never) read, and analyzers of every shape end to end."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from spikeinterface.core import (
    NumpySorting, create_sorting_analyzer, generate_ground_truth_recording, load_sorting_analyzer,
)

from spikemerge.tools.analyzer.load import EXTENSION_PARAMS, REQUIRED_EXTENSIONS, open_analyzer
from spikemerge.tools.analyzer.view import AnalyzerView, ViewParams, plausible_locations
from spikemerge.tools.evidence.pairs import EvidenceContext, time_differences
from spikemerge.tools.render import groups as render
from spikemerge.tools.render.figures import lag_histogram
from spikemerge.tools.session import STAGES, CurationSession
from tests.helpers import folder_digest


def _analyzer(folder: Path, durations: list[float], sparse: bool, fmt: str = "binary_folder", seed: int = 3) -> Path:
    """A small generated analyzer saved without its recording; two units share each neuron's spikes."""
    from spikeinterface.core.generate import inject_some_split_units

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recording, sorting = generate_ground_truth_recording(
            durations=durations, sampling_frequency=30_000.0, num_channels=16, num_units=5,
            generate_sorting_kwargs=dict(firing_rates=12.0, refractory_period_ms=4.0), seed=seed,
        )
        ids = list(sorting.unit_ids)
        sorting = NumpySorting.from_unit_dict(  # integer ids, as the split injector expects
            [{int(u): sorting.get_unit_spike_train(u, segment_index=s) for u in ids}
             for s in range(sorting.get_num_segments())], sorting.sampling_frequency)
        sorting = inject_some_split_units(sorting, split_ids=[sorting.unit_ids[0]], num_split=2, seed=seed)
        analyzer = create_sorting_analyzer(sorting, recording, format="memory", sparse=sparse,
                                           job_kwargs={"progress_bar": False})
        for name in REQUIRED_EXTENSIONS:
            analyzer.compute(name, **EXTENSION_PARAMS.get(name, {}))
        analyzer.save_as(format=fmt, folder=folder)
    for name in ("recording.json", "recording.pickle"):
        (folder / name).unlink(missing_ok=True)
    return folder


@pytest.fixture(scope="module")
def two_segments(tmp_path_factory) -> Path:
    return _analyzer(tmp_path_factory.mktemp("segments") / "analyzer", [12.0, 9.0], sparse=True)


def _curate(folder: Path, out: Path) -> CurationSession:
    session = CurationSession.open(folder, out, progress=False)
    search = session.find_candidates(min_similarity=0.5)
    assert search.groups, "the split unit should be a candidate"
    session.render_group(group_ids=[min(session.groups)])
    session.judge_group()
    result = session.apply_merges(confirm=True)
    assert (out / "curation.json").exists() and (out / "run.json").exists()
    if result.merges:
        assert load_sorting_analyzer(result.analyzer_folder).get_num_units() == result.units_after
    return session


def test_segments_are_apart_on_the_one_time_axis(two_segments):
    view = AnalyzerView(open_analyzer(two_segments))
    analyzer = view.analyzer
    first_length = analyzer.get_num_samples(0)
    assert view.segment_offsets[1] == first_length + round(view.params.segment_gap_s * view.fs)
    assert view.duration_s == pytest.approx(21.0 + view.params.segment_gap_s)
    for u in view.unit_ids:
        train = view.train(u)
        assert np.all(np.diff(train) >= 0)
        late = train[train >= view.segment_offsets[1]]
        spikes = analyzer.sorting.get_unit_spike_train(u, segment_index=1)
        assert np.array_equal(late - view.segment_offsets[1], spikes)  # exactly the segment's samples
        assert np.array_equal(view.unit(u).times_s, train / view.fs)
        assert np.isin(view.unit(u).waveform_times_s, view.unit(u).times_s).all()  # the same axis


def test_ccg_panel_counts_equal_the_evidence_counts(two_segments):
    """Render and evidence read the same view, so the ±1.5 ms count of a panel is the evidence's count."""
    ctx = EvidenceContext(open_analyzer(two_segments))
    settings = render.DEFAULT_SETTINGS
    units = ctx.unit_ids[:3]
    payload = render._payload_crosscorrelograms(render.as_view(ctx), units, settings)
    checked = 0
    for i, a in enumerate(units):
        for j, b in enumerate(units):
            counts, edges = lag_histogram(payload["trains"][i], payload["trains"][j], ctx.fs, settings, auto=i == j)
            centres = 0.5 * (edges[:-1] + edges[1:])
            panel = int(counts[np.abs(centres) < settings.refractory_ms].sum())
            ta, tb = ctx.unit(a).times_s, ctx.unit(b).times_s
            lags_ms = time_differences(ta, tb if i != j else ta, 2 * settings.refractory_ms / 1000.0) * 1000.0
            if i == j:
                lags_ms = lags_ms[lags_ms != 0]
            evidence = int(np.count_nonzero((lags_ms >= -settings.refractory_ms) & (lags_ms < settings.refractory_ms)))
            assert panel == evidence
            checked += evidence
    assert checked > 0, "the split unit's parts should have coincidences to compare"


def test_a_location_fit_that_ran_off_the_probe_falls_back_to_the_centre_of_mass():
    fitted = np.array([[0.0, 10.0], [-316.0, -751.0], [np.nan, np.nan], [30.0, 0.0]])
    centre = np.array([[1.0, 11.0], [-2.0, -70.0], [4.0, 5.0], [20.0, 0.0]])
    peak = np.array([[0.0, 0.0], [0.0, -70.0], [0.0, 0.0], [-15.0, 0.0]])
    contacts = np.array([[-20.0, -100.0], [20.0, 100.0]])
    out = plausible_locations(fitted, centre, peak, contacts, ViewParams(location_max_offset_um=40.0))
    assert out.tolist() == [[0.0, 10.0], [-2.0, -70.0], [4.0, 5.0], [20.0, 0.0]]  # 45 µm off: the centre


def test_a_fit_resting_on_the_probe_plane_beside_the_contacts_falls_back_to_the_centre_of_mass():
    # x, y and the distance from the probe plane, as monopolar triangulation gives them; contacts span
    # x -24..24: 41.5 µm beside them on the plane (within 50 µm of the peak channel) is a failed fit,
    # the same place 12 µm off the plane, or 10 µm beside the contacts on it, is not
    fitted = np.array([[-65.5, 70.5, 1.0], [-65.5, 70.5, 12.0], [-34.0, 80.0, 1.0], [-5.0, 60.0, 1.0]])
    centre = np.array([[-5.0, 58.0], [-5.0, 58.0], [-6.0, 60.0], [-4.0, 59.0]])
    peak = np.array([[-24.0, 90.0]] * 4)
    contacts = np.array([[-24.0, -200.0], [24.0, 200.0], [-8.0, 0.0]])
    out = plausible_locations(fitted, centre, peak, contacts)
    assert out.tolist() == [[-5.0, 58.0], [-65.5, 70.5], [-34.0, 80.0], [-5.0, 60.0]]
    off = plausible_locations(fitted, centre, peak, contacts, ViewParams(location_max_outside_um=float("inf")))
    assert off.tolist() == fitted[:, :2].tolist()


def test_the_view_keeps_plausible_fits_and_replaces_one_put_off_the_probe(two_segments, tmp_path):
    import shutil

    folder = tmp_path / "analyzer"
    shutil.copytree(two_segments, folder)
    view = AnalyzerView(open_analyzer(folder))
    fitted = np.asarray(view.analyzer.get_extension("unit_locations").get_data())[:, :2]
    assert np.allclose(view.locations, fitted)  # every generated unit sits near its peak channel
    data = np.asarray(view.analyzer.get_extension("unit_locations").get_data()).copy()
    data[1, :2] = [-400.0, 900.0]  # a fit that ran away, as monopolar triangulation can at its bound
    np.save(folder / "extensions" / "unit_locations" / "unit_locations.npy", data)
    moved = AnalyzerView(open_analyzer(folder))
    assert np.allclose(np.delete(moved.locations, 1, axis=0), np.delete(fitted, 1, axis=0))
    assert np.linalg.norm(moved.locations[1] - moved.peak_channel_locations[1]) < ViewParams().location_max_offset_um
    assert np.allclose(AnalyzerView(open_analyzer(folder), ViewParams(location_max_offset_um=1e9)).locations[1],
                       [-400.0, 900.0])  # the rule's one number, in the view's table


def test_a_pair_is_placed_by_one_localizer(two_segments, tmp_path):
    """Where one unit's fit was replaced by its centre of mass, its pairs compare centres of mass on
    both sides; pairs of plausible fits compare the fits. The distances the candidate search reads
    place the pair so; a pair's record keeps each unit's own place in ``distance_um`` (what the
    thin hand-over model was fitted on)."""
    import shutil

    from spikemerge.tools.evidence.handover import unit_distances
    from spikemerge.tools.evidence.pairs import EvidenceContext, pair_evidence
    from spikemerge.tools.evidence.params import EvidenceParams

    folder = tmp_path / "analyzer"
    shutil.copytree(two_segments, folder)
    data = np.asarray(open_analyzer(folder).get_extension("unit_locations").get_data()).copy()
    data[1, :2] = [-400.0, 900.0]
    np.save(folder / "extensions" / "unit_locations" / "unit_locations.npy", data)
    view = AnalyzerView(open_analyzer(folder))
    u0, u1, u2 = view.unit_ids[:3]
    assert view.fit_replaced.tolist()[:3] == [False, True, False]
    both_centres = view.pair_locations(u0, u1)
    assert np.allclose(both_centres[0], view.centre_of_mass_locations[0])
    assert np.allclose(both_centres[1], view.centre_of_mass_locations[1])
    assert not np.allclose(view.locations[0], view.centre_of_mass_locations[0])  # the fit, elsewhere
    both_fits = view.pair_locations(u0, u2)
    assert np.allclose(both_fits[0], view.locations[0]) and np.allclose(both_fits[1], view.locations[2])
    assert np.isclose(view.pair_distances[0, 1], np.linalg.norm(both_centres[0] - both_centres[1]))
    assert np.isclose(view.pair_distances[0, 2], np.linalg.norm(both_fits[0] - both_fits[1]))
    ctx = EvidenceContext(open_analyzer(folder))
    assert np.array_equal(unit_distances(ctx), ctx.pair_distances)
    own = unit_distances(ctx, EvidenceParams(one_localizer=False))[0, 1]
    assert not np.isclose(own, ctx.pair_distances[0, 1])  # a fit against a centre of mass
    assert np.isclose(pair_evidence(ctx, u0, u1)["distance_um"], own)


def test_a_flat_template_is_placed_at_its_peak_channel_not_at_nan(two_segments, tmp_path):
    import shutil

    folder = tmp_path / "analyzer"
    shutil.copytree(two_segments, folder)
    path = folder / "extensions" / "templates" / "average.npy"
    templates = np.load(path)
    templates[1] = 0.0  # SpikeInterface's centre of mass divides by the template's sum
    np.save(path, templates)
    view = AnalyzerView(open_analyzer(folder))
    assert np.isfinite(view.centre_of_mass_locations).all()
    assert np.allclose(view.centre_of_mass_locations[1], view.peak_channel_locations[1])


def test_multi_segment_analyzer_end_to_end(two_segments, tmp_path):
    before = folder_digest(two_segments)
    _curate(two_segments, tmp_path / "out")
    assert folder_digest(two_segments) == before


def test_dense_analyzer_end_to_end(tmp_path):
    folder = _analyzer(tmp_path / "dense", [20.0], sparse=False)
    assert load_sorting_analyzer(folder).sparsity is None
    session = _curate(folder, tmp_path / "out")
    assert session.context.sparsity_mask.all()


def test_zarr_analyzer_end_to_end(tmp_path):
    folder = _analyzer(tmp_path / "analyzer.zarr", [20.0], sparse=True, fmt="zarr")
    session = _curate(folder, tmp_path / "out")
    assert session.info.format == "zarr"


def test_a_huge_extension_spikemerge_does_not_need_is_never_read(analyzer_folder, tmp_path, monkeypatch):
    pcs = analyzer_folder / "extensions" / "principal_components"
    pcs.mkdir()
    (pcs / "params.json").write_text(json.dumps({"n_components": 5, "mode": "by_channel_local"}))
    (pcs / "run_info.json").write_text(json.dumps({"run_completed": True, "runtime_s": 1.0}))
    (pcs / "info.json").write_text("{}")
    huge = np.lib.format.open_memmap(pcs / "pca_projection.npy", mode="w+", dtype=np.float32,
                                     shape=(2_000_000, 5, 64))  # 2.6 GB, sparse on disk
    del huge
    opened = []
    real_load = np.load

    def watching_load(file, *args, **kwargs):
        opened.append(str(file))
        if "principal_components" in str(file):
            raise AssertionError(f"spikemerge read {file}")
        return real_load(file, *args, **kwargs)

    monkeypatch.setattr(np, "load", watching_load)
    session = CurationSession.open(analyzer_folder, tmp_path / "out", progress=False)
    assert "principal_components" in session.info.extensions_present
    session.find_candidates()
    session.compute_evidence()
    session.judge_group()
    result = session.apply_merges(confirm=True)
    assert result.merges and result.extensions_not_carried == ["principal_components"]
    assert opened and not [f for f in opened if "principal_components" in f]


def test_a_unit_s_waveforms_are_read_only_when_used(analyzer_folder, monkeypatch):
    view = AnalyzerView(open_analyzer(analyzer_folder))
    read = []
    real_read = view.sampled_waveforms
    monkeypatch.setattr(view, "sampled_waveforms", lambda u: read.append(u) or real_read(u))
    for u in view.unit_ids:  # spike times of every unit, as candidate search reads them
        assert view.unit(u).times_s.size > 0 and view.unit(u).num_waveforms > 0
    assert read == [] and view.units_with_waveforms() == []
    first = view.unit_ids[0]
    waveforms = view.unit(first).waveforms
    assert read == [first] and view.units_with_waveforms() == [first]
    assert waveforms.shape[0] == view.unit(first).num_waveforms
    expected = view.analyzer.get_extension("waveforms").get_waveforms_one_unit(view.analyzer.unit_ids[0])
    assert np.array_equal(waveforms, np.asarray(expected, dtype=np.float32))


def test_run_json_stages_cover_the_wall_time_and_record_peak_memory(analyzer_folder, tmp_path):
    session = CurationSession.open(analyzer_folder, tmp_path / "out", progress=False)
    session.find_candidates()
    session.render_group(group_ids=[min(session.groups)])
    session.judge_group()
    session.apply_merges(confirm=True)
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    stages = run["stage_seconds"]
    assert set(STAGES) <= set(stages)
    assert all(stages[s] > 0 for s in ("load", "find", "evidence", "render", "judge", "apply", "report"))
    covered = sum(stages.values())
    assert covered + run["other_seconds"] == pytest.approx(run["wall_seconds"], abs=0.01)
    assert run["other_seconds"] < 0.05 * run["wall_seconds"] + 0.5
    assert run["peak_rss_bytes"]["self"] > 50 * 2**20
