import numpy as np
import pytest

from spikemerge.tools.evidence.pairs import (
    EvidenceContext,
    ccg_evidence,
    correlogram,
    pair_evidence,
    time_differences,
)


def test_time_differences_match_brute_force():
    rng = np.random.default_rng(0)
    a, b = np.sort(rng.uniform(0, 10, 300)), np.sort(rng.uniform(0, 10, 200))
    window = 0.05
    brute = np.sort([tb - ta for ta in a for tb in b if abs(tb - ta) <= window])
    assert np.allclose(np.sort(time_differences(a, b, window)), brute)


def test_autocorrelogram_drops_self_pairs_and_bins_are_half_ms():
    train = np.arange(0, 10, 0.1)
    counts, edges = correlogram(train, train, window_ms=50, bin_ms=0.5)
    assert np.diff(edges) == pytest.approx(np.full(200, 0.5))
    assert counts.sum() == 0  # spikes 100 ms apart: nothing within ±50 ms but themselves


def test_ccg_of_one_refractory_neuron_split_is_depleted_and_two_neurons_are_not():
    rng = np.random.default_rng(1)
    isi = 0.004 + rng.exponential(0.05, 20000)  # 4 ms refractory, about 18 Hz
    neuron = np.cumsum(isi)
    side = rng.integers(0, 2, neuron.size).astype(bool)
    split = ccg_evidence(neuron[side], neuron[~side])
    other = np.sort(rng.uniform(0, neuron[-1], neuron.size // 2))
    distinct = ccg_evidence(neuron[side], other)
    assert split["ccg_refractory_count"] == 0 and split["ccg_expected_refractory"] > 20
    assert split["ccg_depletion_p"] < 1e-6
    assert distinct["ccg_refractory_ratio"] == pytest.approx(1.0, abs=0.35)
    assert split["duplicate_fraction"] == 0


def test_duplicate_detector_sees_a_shifted_copy():
    rng = np.random.default_rng(2)
    train = np.cumsum(0.004 + rng.exponential(0.1, 3000))
    evidence = ccg_evidence(train, train + 0.0001)
    assert evidence["duplicate_fraction"] > 0.99
    assert evidence["duplicate_excess"] > 100


@pytest.mark.slow
def test_pair_evidence_separates_the_truth(small_truth):
    ctx = EvidenceContext(small_truth.analyzer)
    for group in small_truth.true_groups:
        kind = small_truth.kinds[small_truth.neuron_of_unit[group[0]]]
        e = pair_evidence(ctx, group[0], group[1])
        assert e["template_similarity"] > 0.9, (kind, e)
        if kind == "duplicate":
            assert e["duplicate_fraction"] > 0.5
        else:
            assert e["ccg_refractory_count"] <= 1
            assert e["pca_dprime"] < 1.0
    for a, b in small_truth.twin_pairs:
        e = pair_evidence(ctx, a, b)
        assert e["ccg_refractory_ratio"] > 0.5, e
        assert e["duplicate_fraction"] < 0.05


def test_templates_are_carried_over_the_channels_in_template_column_order(small_truth):
    """Template columns follow the analyzer's channels; the probe's contact list need not."""
    ctx = EvidenceContext(small_truth.analyzer)
    assert ctx.probe is not None
    np.testing.assert_array_equal(ctx.contact_positions, small_truth.analyzer.get_channel_locations())


def _same(a, b) -> bool:
    """Equal records, NaN equal to NaN."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return a == b


def test_evidence_in_worker_processes_is_the_evidence_computed_here(analyzer_folder, small_truth):
    from spikemerge.tools.analyzer.load import open_analyzer
    from spikemerge.tools.evidence.params import EvidenceWorkers
    from spikemerge.tools.evidence.pairs import group_evidence, groups_evidence

    ctx = EvidenceContext(open_analyzer(analyzer_folder))  # waveforms in a file: workers read them themselves
    assert ctx.waveform_reader(ctx.unit_ids[0]) is not None
    units = ctx.unit_ids
    groups = {"split": (small_truth.true_groups[0], []), "five": (units[:5], [units[:2]]), "pair": (units[5:7], []),
              "alone": (units[7:8], [])}
    here = {key: group_evidence(ctx, u, c) for key, (u, c) in groups.items()}
    # two pairs a job: the five units' ten pairs go out in five chunks, put back in order
    there = dict(groups_evidence(ctx, groups, n_workers=2, settings=EvidenceWorkers(pairs_per_job=2)))
    assert there.keys() == here.keys()
    for key in groups:
        assert _same(there[key], here[key]), key
    assert len(there["five"]["pairs"]) == 10 and there["five"]["chains"] == [list(units[:2])]
    assert there["alone"]["pairs"] == []


def test_a_file_reader_reads_the_views_waveforms_in_another_process(analyzer_folder):
    import pickle

    from spikemerge.tools.analyzer.load import open_analyzer

    ctx = EvidenceContext(open_analyzer(analyzer_folder))
    for unit in ctx.unit_ids[:3]:
        reader = pickle.loads(pickle.dumps(ctx.waveform_reader(unit)))  # as a worker receives it
        assert len(pickle.dumps(reader)) < 10_000  # rows and a path, not the waveforms
        expected = ctx.sampled_waveforms(unit)
        got = reader()
        assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_evidence_workers_auto_and_refused_counts():
    from spikemerge.errors import SpikemergeError
    from spikemerge.tools.evidence.params import EvidenceWorkers
    from spikemerge.tools.evidence.pairs import _evidence_workers

    settings = EvidenceWorkers(max_workers=3, parallel_min_pairs=40)
    assert _evidence_workers("auto", 39, settings) == 1  # too few pairs to pay for starting workers
    assert 1 <= _evidence_workers("auto", 40, settings) <= 3  # the idle CPUs, at most 3
    assert _evidence_workers(2, 1, settings) == 2
    for bad in (0, -1, "many", 1.5, True):
        with pytest.raises(SpikemergeError):
            _evidence_workers(bad, 100, settings)


def test_auto_asks_only_for_the_cpus_the_load_leaves_idle(monkeypatch):
    from spikemerge.tools import workers

    monkeypatch.setattr(workers, "usable_cpus", lambda: 4)
    for load, idle in ((0.3, 4), (1.0, 4), (2.0, 3), (3.6, 1), (9.0, 1)):  # this process counts as free
        monkeypatch.setattr(workers.os, "getloadavg", lambda load=load: (load, load, load))
        assert workers.idle_cpus() == idle, load


def test_template_numbers_found_by_candidate_search_are_reused_not_recomputed(analyzer_folder, small_truth, monkeypatch):
    """Candidate search computes each nearby pair's template numbers; evidence (here and in worker
    processes) takes them from the view instead of computing them again, and they are the same."""
    from spikemerge.tools.analyzer.load import open_analyzer
    from spikemerge.tools.evidence import pairs as P

    units = small_truth.true_groups[0]
    fresh = P.group_evidence(EvidenceContext(open_analyzer(analyzer_folder)), units)
    ctx = EvidenceContext(open_analyzer(analyzer_folder))
    first = P.denoised_similarity(ctx, units[0], units[1])
    calls = []
    real = P.unit_similarity
    monkeypatch.setattr(P, "unit_similarity", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert P.denoised_similarity(ctx, units[0], units[1]) == first and calls == []  # asked again: cached
    assert P.known_similarity(ctx, units[1], units[0]) is None  # the other order is another computation
    reused = P.group_evidence(ctx, units)
    pairs = len(units) * (len(units) - 1) // 2
    assert len(calls) == pairs - 1  # every pair but the one candidate search scored
    assert _same(reused, fresh)
    there = dict(P.groups_evidence(ctx, {"g": (units, [])}, n_workers=2))
    assert _same(there["g"], fresh)
