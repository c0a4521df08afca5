import pytest

from spikemerge.bench.scoring import merged_pairs
from spikemerge.errors import SpikemergeError
from spikemerge.tools import candidates as candidates_module
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
        assert group.pairs and all(p["template_similarity"] >= 0.8 for p in group.pairs)


def test_numbering_is_stable(ctx):
    first = find_candidates(ctx, min_similarity=0.8)
    second = find_candidates(ctx, min_similarity=0.8)
    assert [g.unit_ids for g in first.groups] == [g.unit_ids for g in second.groups]


def test_relax_walks_down_the_ladder_and_reports_every_level(ctx, monkeypatch):
    real = candidates_module.similarity_pairs

    def only_below_070(ctx, threshold, max_distance_um=50.0):
        return real(ctx, threshold, max_distance_um) if threshold <= 0.7 + 1e-9 else []

    monkeypatch.setattr(candidates_module, "similarity_pairs", only_below_070)
    search = find_candidates(ctx, min_similarity=0.9, relax=True)
    assert [lv["min_similarity"] for lv in search.levels] == [0.9, 0.85, 0.8, 0.75, 0.7]
    assert search.min_similarity == pytest.approx(0.7)
    assert search.groups
    assert "0.70" in search.summary()


def test_relax_stops_at_the_floor(ctx, monkeypatch):
    monkeypatch.setattr(candidates_module, "similarity_pairs", lambda *a, **k: [])
    search = find_candidates(ctx, min_similarity=0.6, relax=True, floor=0.5)
    assert [lv["min_similarity"] for lv in search.levels] == [0.6, 0.55, 0.5]
    assert search.groups == []


def test_without_relax_one_level_only(ctx, monkeypatch):
    monkeypatch.setattr(candidates_module, "similarity_pairs", lambda *a, **k: [])
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
