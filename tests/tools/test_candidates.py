import pytest

from spikemerge.bench.scoring import merged_pairs
from spikemerge.errors import SpikemergeError
from spikemerge.tools import candidates as candidates_module
from spikemerge.tools.analyzer.view import pairwise_distances
from spikemerge.tools.candidates import find_candidates
from spikemerge.tools.evidence.pairs import EvidenceContext


@pytest.fixture(scope="module")
def ctx(small_truth):
    return EvidenceContext(small_truth.analyzer)


def test_every_true_pair_is_a_candidate(ctx, small_truth):
    search = find_candidates(ctx, min_similarity=0.8)
    candidate_pairs = merged_pairs(g.unit_ids for g in search.groups)
    assert merged_pairs(small_truth.true_groups) <= candidate_pairs
    assert [g.group_id for g in search.groups] == list(range(1, len(search.groups) + 1))
    for group in search.groups:
        assert group.pairs or group.chains
        assert all(max(p["template_similarity"], p.get("template_similarity_denoised", 0)) >= 0.8
                   for p in group.pairs if p["link"] == "similarity")


def test_numbering_is_stable(ctx):
    first = find_candidates(ctx, min_similarity=0.8)
    second = find_candidates(ctx, min_similarity=0.8)
    assert [g.unit_ids for g in first.groups] == [g.unit_ids for g in second.groups]


def test_relax_walks_down_the_ladder_and_reports_every_level(ctx, monkeypatch):
    real = candidates_module.similarity_pairs

    def only_below_070(ctx, threshold, max_distance_um=50.0):
        return real(ctx, threshold, max_distance_um) if threshold <= 0.7 + 1e-9 else []

    monkeypatch.setattr(candidates_module, "similarity_pairs", only_below_070)
    monkeypatch.setattr(candidates_module, "handover_links", lambda *a, **k: [])
    monkeypatch.setattr(candidates_module, "duplicate_pairs", lambda *a, **k: [])
    monkeypatch.setattr(candidates_module, "refractory_pairs", lambda *a, **k: [])
    search = find_candidates(ctx, min_similarity=0.9, relax=True)
    assert [lv["min_similarity"] for lv in search.levels] == [0.9, 0.85, 0.8, 0.75, 0.7]
    assert search.min_similarity == pytest.approx(0.7)
    assert search.groups
    assert "0.70" in search.summary()


def test_relax_stops_at_the_floor(ctx, monkeypatch):
    monkeypatch.setattr(candidates_module, "similarity_pairs", lambda *a, **k: [])
    monkeypatch.setattr(candidates_module, "handover_links", lambda *a, **k: [])
    monkeypatch.setattr(candidates_module, "duplicate_pairs", lambda *a, **k: [])
    monkeypatch.setattr(candidates_module, "refractory_pairs", lambda *a, **k: [])
    search = find_candidates(ctx, min_similarity=0.6, relax=True, floor=0.5)
    assert [lv["min_similarity"] for lv in search.levels] == [0.6, 0.55, 0.5]
    assert search.groups == []


def test_without_relax_one_level_only(ctx, monkeypatch):
    monkeypatch.setattr(candidates_module, "similarity_pairs", lambda *a, **k: [])
    monkeypatch.setattr(candidates_module, "handover_links", lambda *a, **k: [])
    monkeypatch.setattr(candidates_module, "duplicate_pairs", lambda *a, **k: [])
    monkeypatch.setattr(candidates_module, "refractory_pairs", lambda *a, **k: [])
    search = find_candidates(ctx, min_similarity=0.9, relax=False)
    assert len(search.levels) == 1 and search.groups == []


def test_preset_gets_template_diff_thresh_as_one_minus_similarity(ctx, monkeypatch):
    seen = {}

    def fake(analyzer, preset, resolve_graph, steps_params, **kwargs):
        seen.update(preset=preset, params=steps_params, resolve=resolve_graph)
        return [(ctx.unit_ids[0], ctx.unit_ids[1])]

    import spikeinterface.curation

    monkeypatch.setattr(spikeinterface.curation, "compute_merge_unit_groups", fake)
    search = find_candidates(ctx, min_similarity=0.7, preset="x_contaminations")
    assert seen["params"]["template_similarity"]["template_diff_thresh"] == pytest.approx(0.3)
    assert seen["resolve"] is False
    assert search.groups[0].unit_ids == [ctx.unit_ids[0], ctx.unit_ids[1]]


def test_real_preset_runs(ctx):
    search = find_candidates(ctx, min_similarity=0.75, preset="x_contaminations", relax=False)
    assert search.preset == "x_contaminations"


@pytest.mark.parametrize("bad", [0.0, 1.5, -0.2])
def test_bad_similarity(ctx, bad):
    with pytest.raises(SpikemergeError, match="min_similarity"):
        find_candidates(ctx, min_similarity=bad)


def test_unknown_preset(ctx):
    with pytest.raises(SpikemergeError, match="unknown preset"):
        find_candidates(ctx, preset="magic")


def test_relax_also_walks_down_when_more_candidates_are_asked_for(ctx):
    first = find_candidates(ctx, min_similarity=0.95, relax=False)
    held = sum(len(g.unit_ids) for g in first.groups)
    more = find_candidates(ctx, min_similarity=0.95, relax=True, more_than=held)
    assert sum(len(g.unit_ids) for g in more.groups) > held or more.min_similarity < 0.5 + 0.05
    assert len(more.levels) >= 2


def test_chains_keep_each_units_best_successor_and_predecessor():
    links = [{"unit_a": 1, "unit_b": 2, "handover_similarity": 0.95},
             {"unit_a": 2, "unit_b": 3, "handover_similarity": 0.93},
             {"unit_a": 3, "unit_b": 4, "handover_similarity": 0.91},
             {"unit_a": 1, "unit_b": 3, "handover_similarity": 0.85},  # a skip: 3 already has its predecessor
             {"unit_a": 7, "unit_b": 8, "handover_similarity": 0.9}]
    assert sorted(candidates_module.chains_from_links(links)) == [[1, 2, 3, 4], [7, 8]]


def test_groups_of_any_size_are_kept_whole(ctx):
    units = ctx.unit_ids[:7]
    pairs = [{"unit_a": a, "unit_b": b, "template_similarity": 0.9, "distance_um": 1.0}
             for a, b in zip(units, units[1:])]
    groups = candidates_module.group_pairs(ctx, pairs, "test", chains=[])
    assert [g.unit_ids for g in groups] == [sorted(units, key=ctx.index)]


class _ArraysContext:
    """The part of EvidenceContext that candidates read, over numpy-made units."""

    def __init__(self, units, duration_s=300.0):
        import numpy as np

        self.unit_ids = list(units)
        self._units = units
        self.fs = 30000.0
        self.duration_s = duration_s
        self.locations = np.array([units[u].location for u in self.unit_ids])
        self.pair_distances = pairwise_distances(self.locations)  # one localizer
        self.templates = np.stack([units[u].template for u in self.unit_ids])
        self.sparsity_mask = np.ones((len(units), self.templates.shape[2]), bool)
        self.noise_levels = np.full(self.templates.shape[2], 8.0)

    def unit(self, u):
        return self._units[u]

    def index(self, u):
        return self.unit_ids.index(u)

    def places(self, a, b, params=None):
        return self._units[a].location, self._units[b].location

    probe = None  # no geometry: templates are not moved by the motion

    def motion_for(self, params):
        from spikemerge.tools.evidence.motion import estimate_motion

        return estimate_motion([self._units[u].times_s for u in self.unit_ids], self.locations, self.duration_s, params)


def test_a_drift_chain_of_four_is_one_group_with_its_chain():
    import numpy as np

    from tests.tools.judges.test_metrics import _drift_chain

    units = _drift_chain(np.random.default_rng(3))
    ctx = _ArraysContext(units)
    assert candidates_module.similarity_pairs(ctx, 0.9) == []  # no two fragments alike over their whole time
    search = find_candidates(ctx, min_similarity=0.9, relax=False)
    assert [g.unit_ids for g in search.groups] == [[1, 2, 3, 4]]
    assert search.groups[0].chains == [[1, 2, 3, 4]]
    assert "drift chain" in search.summary()


def test_a_duplicate_misaligned_beyond_the_template_window_is_still_a_candidate():
    import numpy as np

    from tests.tools.evidence.spikes import neuron_train, unit_arrays

    rng = np.random.default_rng(8)
    times = neuron_train(rng, rate_hz=10)
    scales = rng.normal(1.0, 0.1, times.size)
    far = unit_arrays(rng, times, scales, centre=3.0)
    lagged = unit_arrays(rng, times + 0.0019, scales, centre=3.0, shift=57)  # 1.9 ms: trough near the window's edge
    other = neuron_train(rng, rate_hz=10)
    units = {1: far, 2: lagged, 3: unit_arrays(rng, other, rng.normal(1.0, 0.1, other.size), centre=3.5)}
    ctx = _ArraysContext(units)
    found = candidates_module.duplicate_pairs(ctx)
    assert [(p["unit_a"], p["unit_b"]) for p in found] == [(1, 2)]
    assert found[0]["duplicate_lag_ms"] == pytest.approx(1.9, abs=0.1)


def test_a_powered_refractory_dip_links_a_bursting_cells_slices_whose_templates_differ():
    import numpy as np

    from tests.tools.evidence.spikes import neuron_train, unit_arrays

    rng = np.random.default_rng(9)
    times = neuron_train(rng, rate_hz=12)
    late = rng.random(times.size) < 0.4  # the later, smaller and wider spikes of a burst
    scales = np.where(late, 0.45, 1.0) * rng.normal(1.0, 0.05, times.size)
    other = neuron_train(rng, rate_hz=12)
    units = {1: unit_arrays(rng, times[~late], scales[~late]),
             2: unit_arrays(rng, times[late], scales[late], width=1.8, centre=4.8),
             3: unit_arrays(rng, other, rng.normal(1.0, 0.05, other.size), centre=3.3)}
    ctx = _ArraysContext(units)
    assert all(p["unit_b"] != 2 for p in candidates_module.similarity_pairs(ctx, 0.9))  # shapes too different
    found = candidates_module.refractory_pairs(ctx)
    assert [(p["unit_a"], p["unit_b"]) for p in found] == [(1, 2)]
    assert found[0]["ccg_refractory_count"] == 0 and found[0]["ccg_expected_refractory"] > 10
    groups = find_candidates(ctx, min_similarity=0.9, relax=False).groups
    assert any({1, 2} <= set(g.unit_ids) for g in groups)


def test_fragments_alike_once_moved_by_the_probe_motion_are_linked_and_a_neighbour_is_not():
    """Fast drift: a neuron's early fragment (channel 3) and late one (channel 5.5, the probe moved
    50 µm) look different as they are and at the hand-over; carried by the registered motion the
    early template lands on the late one. A neighbour that later sits where the neuron was is
    not linked to it."""
    import numpy as np

    from spikemerge.tools.candidates import handover_links, moved_links
    from spikemerge.tools.evidence.motion import Motion
    from tests.tools.evidence.spikes import FS, neuron_train, unit_arrays

    rng = np.random.default_rng(5)
    early, late = neuron_train(rng, duration_s=150.0), 150.0 + neuron_train(rng, duration_s=150.0)
    other = 150.0 + neuron_train(rng, duration_s=150.0)
    units = {"a": unit_arrays(rng, early, np.ones(early.size), centre=3.0, channels=12),
             "b": unit_arrays(rng, late, np.ones(late.size), centre=5.5, channels=12),
             "c": unit_arrays(rng, other, np.ones(other.size), centre=3.2, channels=12)}
    contacts = np.c_[np.zeros(12), 20.0 * np.arange(12)]
    motion = Motion(np.linspace(0.0, 300.0, 21), np.r_[np.full(10, -25.0), np.full(10, 25.0)])
    ctx = _ArraysContext(units)
    ctx.fs, ctx.contact_positions, ctx.motion_for = FS, contacts, lambda params: motion
    pairs = {frozenset((p["unit_a"], p["unit_b"])) for p in moved_links(ctx, 0.8)}
    assert frozenset("ab") in pairs and frozenset("ac") not in pairs
    # the gate and the hand-over link alone miss the pair
    assert frozenset("ab") not in {frozenset((p["unit_a"], p["unit_b"])) for p in handover_links(ctx, 0.8)}
    # without motion there is nothing to carry
    ctx.motion_for = lambda params: Motion(np.linspace(0.0, 300.0, 21), np.zeros(20))
    assert moved_links(ctx, 0.8) == []
