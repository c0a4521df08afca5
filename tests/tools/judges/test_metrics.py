import math

import pytest

from spikemerge.policies import POLICIES
from spikemerge.tools.evidence.pairs import EvidenceContext, group_evidence
from spikemerge.tools.judges import Judge
from spikemerge.tools.judges.metrics import MetricsJudge, PairScore, merge_subset, score_pair
from spikemerge.tools.judges.base import JudgeRequest


def _request(ctx, group_id, units):
    return JudgeRequest(group_id=group_id, unit_ids=tuple(units), evidence=group_evidence(ctx, units))


@pytest.fixture(scope="module")
def ctx(small_truth):
    return EvidenceContext(small_truth.analyzer)


def test_metrics_judge_follows_the_protocol():
    assert isinstance(MetricsJudge(), Judge)


def test_true_groups_merge_and_twins_do_not(ctx, small_truth):
    judge = MetricsJudge()
    for i, group in enumerate(small_truth.true_groups):
        verdict = judge.judge(_request(ctx, i, group))
        assert verdict.decision == "merge", verdict.reasoning
        assert sorted(verdict.merge_unit_ids) == sorted(group)
        assert verdict.confidence > 0.9
    for a, b in small_truth.twin_pairs:
        verdict = judge.judge(_request(ctx, 99, [a, b]))
        assert verdict.decision == "not merge", verdict.reasoning
        assert "coincidences within ±1.5 ms" in verdict.reasoning


def test_reasoning_cites_the_numbers_per_modality(ctx, small_truth):
    group = small_truth.true_groups[0]
    verdict = MetricsJudge().judge(_request(ctx, 1, group))
    assert set(verdict.reports) == {"crosscorrelograms", "waveforms", "pca", "amplitudes"}
    assert "%" in verdict.reports["waveforms"] and "d′" in verdict.reports["pca"]


def test_a_group_with_an_outsider_merges_only_the_subset(ctx, small_truth):
    group = list(small_truth.true_groups[0])
    outsider = next(u for u in small_truth.neuron_of_unit if u not in group)
    verdict = MetricsJudge().judge(_request(ctx, 1, group + [outsider]))
    assert verdict.decision == "merge"
    assert sorted(verdict.merge_unit_ids) == sorted(group)
    assert str(outsider) in verdict.reasoning


def test_missing_pair_evidence_is_an_error_not_a_no(ctx, small_truth):
    group = small_truth.true_groups[-1]
    request = JudgeRequest(group_id=3, unit_ids=tuple(group), evidence={"pairs": []})
    verdict = MetricsJudge().judge(request)
    assert verdict.decision == "error"


def _score(a, b, log_odds):
    return PairScore(unit_a=a, unit_b=b, log_odds=log_odds, duplicate=False)


def test_merge_subset_never_chains_unjudged_links():
    scores = {frozenset("ab"): _score("a", "b", 5.0), frozenset("bc"): _score("b", "c", 5.0),
              frozenset("ac"): _score("a", "c", -5.0)}
    assert sorted(merge_subset(["a", "b", "c"], scores, 0.5)) in (["a", "b"], ["b", "c"])


def test_policies_move_the_decision_on_ambiguous_evidence():
    e = {"unit_a": 1, "unit_b": 2, "template_similarity": 0.9, "ccg_expected_refractory": 1.0,
         "ccg_refractory_count": 0, "duplicate_fraction": 0.0, "duplicate_excess": 0.0,
         "presence_overlap": 0.9, "pca_dprime": 0.7, "amplitude_overlap_concurrent": 0.8}
    p = score_pair(e).probability
    assert POLICIES["aggressive"].merge_threshold < p < POLICIES["conservative"].merge_threshold
    scores = {frozenset((1, 2)): score_pair(e)}
    assert merge_subset([1, 2], scores, POLICIES["aggressive"].merge_threshold) == [1, 2]
    assert merge_subset([1, 2], scores, POLICIES["conservative"].merge_threshold) == []


def test_a_powered_flat_ccg_outweighs_alike_templates():
    e = {"unit_a": 1, "unit_b": 2, "template_similarity": 0.99, "ccg_expected_refractory": 20.0,
         "ccg_refractory_count": 19, "duplicate_fraction": 0.0, "duplicate_excess": 1.0,
         "presence_overlap": 0.9, "pca_dprime": 0.2, "amplitude_overlap_concurrent": 0.9}
    assert score_pair(e).probability < 0.01
    assert not math.isnan(score_pair(e).log_odds)
