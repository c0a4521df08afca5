"""render_groups / render_group: every figure draws, the cache is content-true, output is stable."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image
from spikeinterface.core import NumpySorting, create_sorting_analyzer

from spikemerge.errors import SpikemergeError
from spikemerge.tools.render import groups as render
from spikemerge.tools.render.groups import (
    ALL_FEATURES,
    DEFAULT_FEATURES,
    OPTIONAL_FEATURES,
    render_group,
    render_groups,
)
from spikemerge.tools.render.figures import lag_histogram
from spikemerge.tools.render.style import RenderSettings


def _pair_and_triple(truth) -> tuple[list, list]:
    groups = truth.true_groups
    pair = next(g for g in groups if len(g) == 2)
    triple = next(g for g in groups if len(g) == 3)
    return pair, triple


def _check_png(path) -> None:
    assert path.exists() and path.suffix == ".png"
    with Image.open(path) as image:
        assert image.format == "PNG"
        long_side = max(image.size)
        assert 512 <= long_side <= 1200
        assert "Software" not in image.info and "Creation Time" not in image.info


@pytest.fixture(scope="module")
def rendered(small_truth, tmp_path_factory):
    """Every feature for one 2-unit and one 3-unit group."""
    pair, triple = _pair_and_triple(small_truth)
    out = tmp_path_factory.mktemp("images")
    paths = render_groups(small_truth.analyzer, {1: pair, 2: triple}, out, ALL_FEATURES)
    return out, paths, pair, triple


def _tiny_analyzer(truth, spikes_per_unit: dict, sparsity: dict):
    """An analyzer over the truth's recording with hand-picked spike trains (few spikes allowed)."""
    source = truth.analyzer
    frames = int(12 * source.sampling_frequency)  # the first 12 s are plenty and keep the test fast
    recording = source.recording.frame_slice(0, frames)
    trains = {}
    for new, (old, n) in spikes_per_unit.items():
        train = source.sorting.get_unit_spike_train(old)
        trains[new] = train[(train > 100) & (train < frames - 100)][:n]
    sorting = NumpySorting.from_unit_dict([trains], source.sampling_frequency)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analyzer = create_sorting_analyzer(sorting, recording, format="memory", sparse=True, **sparsity)
        analyzer.compute("random_spikes", max_spikes_per_unit=200, seed=0)
        analyzer.compute("waveforms", ms_before=1.0, ms_after=2.0)
        analyzer.compute("templates")
        analyzer.compute("spike_amplitudes")
    return analyzer


def test_every_feature_renders_for_two_and_three_units(rendered):
    _, paths, _, _ = rendered
    for group_id in (1, 2):
        assert list(paths[group_id]) == list(ALL_FEATURES)
        for path in paths[group_id].values():
            _check_png(path)


def test_feature_lists_are_the_contract():
    assert DEFAULT_FEATURES == ("crosscorrelograms", "amplitudes", "waveforms", "pca")
    assert OPTIONAL_FEATURES == ("spike_locations", "waveforms_multi", "composite")


def test_same_inputs_give_same_bytes(rendered, small_truth, tmp_path):
    _, paths, pair, _ = rendered
    again = render_group(small_truth.analyzer, 1, pair, tmp_path, DEFAULT_FEATURES)
    for feature, path in again.items():
        assert path.read_bytes() == paths[1][feature].read_bytes()


def test_cache_hit_reuses_the_file_without_drawing(rendered, small_truth, monkeypatch):
    out, paths, pair, _ = rendered
    calls = []
    monkeypatch.setattr(render, "render_jobs", lambda jobs, settings: calls.append(jobs))
    before = {f: (p.stat().st_mtime_ns, p.read_bytes()) for f, p in paths[1].items()}
    again = render_groups(small_truth.analyzer, {1: pair}, out, ALL_FEATURES)
    assert calls == []
    assert again[1] == paths[1]
    assert {f: (p.stat().st_mtime_ns, p.read_bytes()) for f, p in again[1].items()} == before
    # the same units under another group id: copied, not drawn, same pixels
    twin = render_groups(small_truth.analyzer, {9: pair}, out, DEFAULT_FEATURES)
    assert calls == []
    for feature, path in twin[9].items():
        assert path != paths[1][feature] and path.read_bytes() == paths[1][feature].read_bytes()


def test_cache_miss_for_other_units_and_settings(rendered, small_truth, tmp_path):
    out, paths, pair, _ = rendered
    others = [u for u in small_truth.analyzer.unit_ids if u not in pair][:2]
    other = render_groups(small_truth.analyzer, {1: others}, out, DEFAULT_FEATURES)
    for feature in DEFAULT_FEATURES:
        assert other[1][feature] != paths[1][feature]
        assert other[1][feature].read_bytes() != paths[1][feature].read_bytes()
    finer = render_groups(small_truth.analyzer, {1: pair}, out, ["crosscorrelograms"],
                          settings=RenderSettings(ccg_bin_ms=0.25))
    assert finer[1]["crosscorrelograms"] != paths[1]["crosscorrelograms"]


def test_unknown_feature_is_a_one_line_error(small_truth, tmp_path):
    with pytest.raises(SpikemergeError) as info:
        render_group(small_truth.analyzer, 0, list(small_truth.analyzer.unit_ids[:2]), tmp_path, ["isi", "pca"])
    message = str(info.value)
    assert "\n" not in message and "'isi'" in message
    assert all(name in message for name in ALL_FEATURES)
    assert not list(tmp_path.iterdir())


def test_unknown_unit_is_an_error(small_truth, tmp_path):
    with pytest.raises(SpikemergeError, match="not in the analyzer"):
        render_group(small_truth.analyzer, 0, [small_truth.analyzer.unit_ids[0], 99999], tmp_path)


@pytest.mark.slow
def test_units_with_few_spikes_render(small_truth, tmp_path):
    pair, _ = _pair_and_triple(small_truth)
    analyzer = _tiny_analyzer(small_truth, {0: (pair[0], 10_000), 1: (pair[1], 3), 2: (pair[1], 1)}, {})
    paths = render_groups(analyzer, {1: [0, 1], 2: [0, 1, 2]}, tmp_path, DEFAULT_FEATURES + ("spike_locations",))
    for group in paths.values():
        for path in group.values():
            _check_png(path)


@pytest.mark.slow
def test_sparse_units_sharing_few_channels(small_truth, tmp_path):
    """Units far apart with a tight sparsity: PCA uses only shared channels, or says there are none."""
    analyzer = small_truth.analyzer
    locations = analyzer.get_extension("unit_locations").get_data()[:, 1]
    order = np.argsort(locations)
    low, high = analyzer.unit_ids[order[0]], analyzer.unit_ids[order[-1]]
    early = int(10 * analyzer.sampling_frequency)
    near = next(analyzer.unit_ids[i] for i in order[1:]  # a neighbour active in the first seconds
                if np.sum(analyzer.sorting.get_unit_spike_train(analyzer.unit_ids[i]) < early) > 20)
    tiny = _tiny_analyzer(small_truth, {0: (low, 400), 1: (high, 400), 2: (near, 400)},
                          {"method": "radius", "radius_um": 50.0})
    paths = render_groups(tiny, {1: [0, 1], 2: [0, 2]}, tmp_path, ("waveforms", "pca", "waveforms_multi"))
    for group in paths.values():
        for path in group.values():
            _check_png(path)
    view = render.as_view(tiny)
    apart = render._payload_pca(view, [0, 1], render.DEFAULT_SETTINGS)
    assert apart["waveforms"] is None and "share no channels" in apart["note"]
    close = render._payload_pca(view, [0, 2], render.DEFAULT_SETTINGS)
    shared = np.flatnonzero(tiny.sparsity.mask[0] & tiny.sparsity.mask[2])
    assert 0 < shared.size < tiny.sparsity.mask[0].sum() + tiny.sparsity.mask[2].sum()
    assert list(close["shared_channels"]) == list(shared)
    assert close["waveforms"].shape[-1] == shared.size  # no zero-filled channels
    assert close["waveforms"].shape[0] == 2  # one block per unit, equal spike counts


def test_correlogram_counts_lags_and_skips_self_pairs():
    fs = 30_000.0
    settings = RenderSettings(ccg_window_ms=10.0, ccg_bin_ms=0.5)
    a = np.array([0, 3_000, 6_000])
    counts, edges = lag_histogram(a, a + 30, fs, settings, auto=False)  # +1 ms
    centres = 0.5 * (edges[:-1] + edges[1:])
    assert counts.sum() == 3 and counts[np.argmin(np.abs(centres - 1.0))] == 3
    acg, _ = lag_histogram(a, a, fs, settings, auto=True)
    assert acg.sum() == 0  # spikes 100 ms apart: nothing within 10 ms, and no self pairs
    assert np.allclose(np.diff(edges), 0.5)


@pytest.mark.slow
def test_parallel_workers_match_serial(rendered, small_truth, tmp_path):
    _, paths, pair, triple = rendered
    parallel = render_groups(small_truth.analyzer, {1: pair, 2: triple}, tmp_path, DEFAULT_FEATURES, n_workers=2)
    for group_id in (1, 2):
        for feature in DEFAULT_FEATURES:
            assert parallel[group_id][feature].read_bytes() == paths[group_id][feature].read_bytes()


def test_progress_is_reported_per_group(rendered, small_truth):
    out, _, pair, triple = rendered
    seen = []
    render_groups(small_truth.analyzer, {1: pair, 2: triple}, out, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 2), (2, 2)]


def test_damaged_cached_image_is_drawn_again(rendered, small_truth):
    out, paths, pair, _ = rendered
    path = paths[1]["amplitudes"]
    original = path.read_bytes()
    path.write_bytes(original[: len(original) // 2])  # cut short, as by a full disk or a killed copy
    assert not render.is_complete_png(path)
    again = render_groups(small_truth.analyzer, {1: pair}, out, ["amplitudes"])
    assert again[1]["amplitudes"] == path and path.read_bytes() == original


def test_reused_figure_draws_the_same_bytes_as_a_fresh_one(rendered, small_truth):
    """A figure laid out once and redrawn for group B, then A, gives A's fresh bytes."""
    from spikemerge.tools.render import draw as render_draw

    _, _, pair, triple = rendered
    others = [u for u in small_truth.analyzer.unit_ids if u not in pair][:2]
    view = render.as_view(small_truth.analyzer)

    def payload(feature, units):
        return {"unit_ids": [str(u) for u in units],
                **render._PAYLOADS[feature](view, units, render.DEFAULT_SETTINGS)}

    for feature in DEFAULT_FEATURES:
        render_draw._BUILT.clear()
        fresh = render_draw.draw_png(feature, payload(feature, pair), render.DEFAULT_SETTINGS)
        built = render_draw._BUILT[(feature, 2, render.DEFAULT_SETTINGS)]
        other = render_draw.draw_png(feature, payload(feature, others), render.DEFAULT_SETTINGS)
        render_draw.draw_png(feature, payload(feature, triple), render.DEFAULT_SETTINGS)  # another layout
        again = render_draw.draw_png(feature, payload(feature, pair), render.DEFAULT_SETTINGS)
        assert render_draw._BUILT[(feature, 2, render.DEFAULT_SETTINGS)] is built  # laid out once
        assert again == fresh and other != fresh


def test_workers_that_cannot_start_fall_back_to_this_process(rendered, small_truth, tmp_path, monkeypatch):
    _, paths, pair, triple = rendered

    def no_processes(*args, **kwargs):
        raise OSError("process creation is not allowed here")

    monkeypatch.setattr(render, "ProcessPoolExecutor", no_processes)
    with pytest.warns(RuntimeWarning, match="worker processes failed"):
        drawn = render_groups(small_truth.analyzer, {1: pair, 2: triple}, tmp_path, ["crosscorrelograms"], n_workers=2)
    for group_id in (1, 2):
        assert drawn[group_id]["crosscorrelograms"].read_bytes() == paths[group_id]["crosscorrelograms"].read_bytes()


def test_auto_workers_draw_few_groups_here_and_bad_counts_are_refused(rendered, small_truth, tmp_path, monkeypatch):
    _, paths, pair, _ = rendered

    def no_pool(*args, **kwargs):
        raise AssertionError("a handful of groups is drawn in this process")

    monkeypatch.setattr(render, "ProcessPoolExecutor", no_pool)
    drawn = render_groups(small_truth.analyzer, {1: pair}, tmp_path, ["pca"], n_workers="auto")
    assert drawn[1]["pca"].read_bytes() == paths[1]["pca"].read_bytes()
    for bad in (0, "many"):
        with pytest.raises(SpikemergeError, match="n_workers"):
            render_groups(small_truth.analyzer, {1: pair}, tmp_path / "bad", ["pca"], n_workers=bad)
        assert not (tmp_path / "bad").exists()


def test_stamped_text_matches_matplotlib_at_whole_pixels():
    """The renderer that reuses rasterised strings draws what matplotlib draws at that position."""
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    from spikemerge.tools.render import style

    def pixels(renderer_class, x: int) -> np.ndarray:
        renderer = renderer_class(200, 100, 100)
        gc = renderer.new_gc()
        gc.set_foreground("#d62728")
        for angle, y in ((0, 30), (90, 90), (30, 60)):
            renderer.draw_text(gc, x, y, "unit 12 (n=345) ±1.5 ms; Qjy", FontProperties(size=7), angle)
        return np.asarray(renderer.buffer_rgba()).copy()

    style._TEXT_MASKS.clear()
    for x in (20, 20, 60):  # the second and third draws stamp the cached masks
        drawn = pixels(style._TextMaskRenderer, x)
        assert np.array_equal(drawn, pixels(RendererAgg, x))
        assert (drawn[:, :, :3] != 255).any(axis=2).sum() > 300
    assert len(style._TEXT_MASKS) == 3


def test_waveform_traces_cover_the_pixels_they_cross_and_stop_at_gaps():
    from spikemerge.tools.render.figures import _line_pixels

    shape = (6, 8)
    xs = np.array([0.5, 5.5, np.nan, 7.5, 7.5, 20.0])
    ys = np.array([2.5, 2.5, np.nan, 0.2, 4.9, 4.9])
    hit = set(_line_pixels(xs, ys, shape).tolist())
    row = {2 * 8 + c for c in range(6)}  # the horizontal stroke, columns 0..5 of row 2
    column = {r * 8 + 7 for r in range(5)}  # the vertical one, rows 0..4 of column 7 (the rest is off the image)
    assert hit == row | column  # nothing drawn across the NaN gap
