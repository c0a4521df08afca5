"""The metrics judge learns from examples locally: a correction moves the cases it speaks to, and nothing unlike them."""


import numpy as np
import pytest

from spikemerge.errors import SpikemergeError
from spikemerge.tools.judges.base import Example, JudgeRequest
from spikemerge.tools.judges.learning import fit_local_correction, kernel
from spikemerge.tools.judges.metrics import MetricsJudge, keep_apart_confidence
from spikemerge.tools.judges.params import JudgeParams
from spikemerge.tools.judges.terms import score_pair

# one neuron's split: a refractory dip where 30 coincidences were expected, templates 97 % alike
CLEAR = {"template_similarity": 0.97, "template_similarity_denoised": 0.97, "ccg_expected_refractory": 30.0,
         "ccg_refractory_count": 0, "presence_overlap": 0.9, "comparison_window": "concurrent"}
# two neurons alike in shape: a powered CCG without a dip
TWINS = {**CLEAR, "ccg_refractory_count": 28}
# the same spikes detected twice
DUPLICATE = {**CLEAR, "duplicate_fraction": 0.9, "duplicate_excess": 40.0, "ccg_refractory_count": 27}
# near the balanced threshold on the "not merge" side: a dip too thin to count much, shapes 81 % alike
BORDERLINE = {**CLEAR, "template_similarity": 0.81, "template_similarity_denoised": 0.81,
              "ccg_expected_refractory": 0.8}


def _pair(evidence, a, b):
    return {**evidence, "unit_a": a, "unit_b": b}


def _request(group_id, evidence, units=(1, 2)):
    return JudgeRequest(group_id=group_id, unit_ids=tuple(units), evidence={"pairs": [_pair(evidence, *units)]})


def _example(label, evidence, units=(91, 92), name=None):
    return Example(name=name or f"{label} {units}", label=label, unit_ids=tuple(units),
                   evidence={"pairs": [_pair(evidence, *units)]})


def _judge(requests, examples=(), policy="balanced", judge=None):
    return (judge or MetricsJudge()).judge_many(requests, examples=examples, policy=policy)


def test_the_fixtures_sit_where_the_tests_need_them():
    assert score_pair(_pair(CLEAR, 1, 2)).probability > 0.99
    assert score_pair(_pair(TWINS, 1, 2)).veto
    assert score_pair(_pair(DUPLICATE, 1, 2)).duplicate
    assert 0.2 < score_pair(_pair(BORDERLINE, 1, 2)).probability < 0.5


def test_the_kernel_is_one_at_an_example_and_exactly_zero_beyond_the_cutoff():
    p = JudgeParams()
    d = np.array([0.0, 0.5, 1.0, 2.0, p.learning_cutoff * p.learning_bandwidth, 10.0])
    k = kernel(d, p)
    assert k[0] == 1.0 and k[-2] == 0.0 and k[-1] == 0.0
    assert np.all(np.diff(k) <= 0) and 0 < k[3] < k[2] < k[1] < 1


def test_one_bad_example_flips_its_own_pair_and_leaves_a_dissimilar_pair_exactly():
    requests = [_request(1, CLEAR), _request(2, DUPLICATE, (3, 4))]
    before = _judge(requests)
    after = _judge(requests, [_example("bad", CLEAR)])
    assert [v.decision for v in before] == ["merge", "merge"]
    assert after[0].decision == "not merge", after[0].reasoning
    # it lands past the threshold by the margin (its log-odds -margin), not at some arbitrary depth
    assert after[0].confidence == pytest.approx(keep_apart_confidence(-JudgeParams().learning_margin), abs=1e-9)
    assert "example" in after[0].reasoning
    assert after[1].decision == "merge"
    assert after[1].confidence == pytest.approx(before[1].confidence, abs=1e-9)
    assert after[1].reasoning == before[1].reasoning


def test_a_good_example_flips_a_near_threshold_not_merge_of_the_same_evidence():
    request = _request(1, BORDERLINE)
    assert _judge([request])[0].decision == "not merge"
    verdict = _judge([request], [_example("good", BORDERLINE)])[0]
    assert verdict.decision == "merge", verdict.reasoning
    assert verdict.merge_groups == [[1, 2]]


def test_a_similar_pair_moves_the_right_way_and_less_than_the_example_itself():
    similar = {**CLEAR, "ccg_expected_refractory": 30.0, "template_similarity_denoised": 0.93}  # waveforms 2 -> 1.6
    identical, near, far = _request(1, CLEAR), _request(2, similar, (3, 4)), _request(3, TWINS, (5, 6))
    judge = MetricsJudge()
    before = {v.group_id: judge.scores(r)[frozenset(r.unit_ids)].log_odds
              for v, r in zip(_judge([identical, near, far]), (identical, near, far))}
    correction = fit_local_correction([_example("bad", CLEAR)], 0.5)
    after = {r.group_id: judge.scores(r, correction=correction)[frozenset(r.unit_ids)].log_odds
             for r in (identical, near, far)}
    shift = {g: after[g] - before[g] for g in before}
    assert shift[1] < shift[2] < 0, shift  # the example gets it all, a similar pair part of it
    assert shift[3] == 0.0
    # a pair a little elsewhere on the probe (its raw numbers differ, not its terms) moves part of the way too
    nearby = _request(4, {**CLEAR, "distance_um": 8.0}, (7, 8))
    moved = judge.scores(nearby, correction=correction)[frozenset((7, 8))].log_odds - before[1]
    assert shift[1] < moved < 0, (moved, shift)
    good = fit_local_correction([_example("good", BORDERLINE)], 0.5)
    nearby = {**BORDERLINE, "ccg_expected_refractory": 1.2}
    moved = judge.scores(_request(4, nearby), correction=good)[frozenset((1, 2))].log_odds
    assert moved > score_pair(_pair(nearby, 1, 2)).log_odds


def test_an_example_that_is_the_judged_group_flips_it_even_against_a_veto():
    request = _request(1, TWINS, (7, 8))
    assert _judge([request])[0].decision == "not merge"
    same = Example(name="curator merged 7 and 8", label="good", unit_ids=(7, 8), evidence=request.evidence)
    verdict = _judge([request], [same])[0]
    assert verdict.decision == "merge", verdict.reasoning
    assert "lifts a veto" in verdict.reasoning
    thin = _request(2, {**CLEAR, "ccg_expected_refractory": 0.5, "template_similarity_denoised": 0.95})
    assert _judge([thin], policy="conservative")[0].decision == "abstain"
    assert _judge([thin], [_example("good", thin.evidence["pairs"][0])], policy="conservative")[0].decision == "merge"


def test_a_bad_example_of_a_whole_group_keeps_every_part_of_it_apart():
    units = (1, 2, 3)
    evidence = {"pairs": [_pair(CLEAR, a, b) for a, b in ((1, 2), (1, 3), (2, 3))]}
    request = JudgeRequest(group_id=1, unit_ids=units, evidence=evidence)
    assert _judge([request])[0].merge_groups == [[1, 2, 3]] or len(_judge([request])[0].merge_unit_ids) == 3
    verdict = _judge([request], [Example(name="rejected", label="bad", unit_ids=units, evidence=evidence)])[0]
    assert verdict.decision == "not merge", verdict.reasoning


def test_contradicting_examples_meet_halfway_and_near_ones_do_not_blow_up():
    request = _request(1, BORDERLINE)
    both = [_example("good", BORDERLINE, name="a"), _example("bad", BORDERLINE, name="b")]
    correction = fit_local_correction(both, 0.5)
    score = MetricsJudge().scores(request, correction=correction)[frozenset((1, 2))]
    assert score.log_odds == pytest.approx(0.0, abs=1e-9)  # neither label wins: the pair sits at the threshold
    nearly = [_example("good", BORDERLINE, name="a"),
              _example("bad", {**BORDERLINE, "template_similarity_denoised": 0.815}, name="b")]
    correction = fit_local_correction(nearly, 0.5)
    for sim in np.linspace(0.70, 0.99, 30):
        score = MetricsJudge().scores(_request(2, {**BORDERLINE, "template_similarity_denoised": sim}),
                                      correction=correction)[frozenset((1, 2))]
        built_in = score_pair(_pair({**BORDERLINE, "template_similarity_denoised": sim}, 1, 2)).log_odds
        assert correction.bounds[0] - 1e-9 <= score.log_odds - built_in <= correction.bounds[1] + 1e-9


def test_an_example_already_on_its_side_changes_nothing():
    request = _request(1, BORDERLINE)
    before = _judge([request])[0]
    judge = MetricsJudge()
    after = _judge([request], [_example("good", CLEAR)], judge=judge)[0]
    assert after.confidence == pytest.approx(before.confidence, abs=1e-12)
    assert judge.learned["moved"] == 0


def test_what_was_learned_is_recorded_and_every_setting_is_fingerprinted():
    judge = MetricsJudge()
    _judge([_request(1, CLEAR)], [_example("bad", CLEAR, name="rejected in review")], judge=judge)
    assert judge.learned["method"] == "local" and judge.learned["bad"] == 1 and judge.learned["moved"] == 1
    (row,) = judge.learned["corrections"]
    assert row["example"] == "rejected in review" and row["shift_log_odds"] < 0
    _judge([_request(1, CLEAR)], judge=judge)
    assert judge.learned is None, "a run without examples learned nothing"
    base = MetricsJudge().fingerprint()
    for change in ({"learning_bandwidth": 2.0}, {"learning_margin": 2.0}, {"learning_cutoff": 4.0},
                   {"learning_override_kernel": 0.5}, {"learning_rcond": 1e-6}, {"min_pairs_for_refit": 5},
                   {"learning_signature": (("template_similarity", "linear", 0.1),)},
                   {"learning_term_scales": (("crosscorrelograms", 2.0), ("duplicate", 1.0), ("waveforms", 1.0),
                                             ("continuity", 1.0), ("burst", 1.0), ("handover", 1.0))}):
        assert MetricsJudge(JudgeParams(**change)).fingerprint() != base, change


def test_a_scale_table_that_misses_a_term_fails_in_one_line():
    params = JudgeParams(learning_term_scales=(("crosscorrelograms", 1.0),))
    with pytest.raises(SpikemergeError, match="learning_term_scales lacks duplicate"):
        fit_local_correction([_example("bad", CLEAR)], 0.5, params)


def test_one_rejected_clear_split_does_not_speak_for_every_clear_split():
    # both read the same to the judge (saturated terms) but are different pairs: other counts, elsewhere
    other = {**CLEAR, "ccg_expected_refractory": 80.0, "distance_um": 40.0, "num_spikes_a": 5000, "num_spikes_b": 3000}
    assert score_pair(_pair(other, 1, 2)).terms == score_pair(_pair(CLEAR, 1, 2)).terms
    requests = [_request(1, CLEAR), _request(2, other, (3, 4))]
    before = _judge(requests)
    after = _judge(requests, [_example("bad", CLEAR)])
    assert [v.decision for v in after] == ["not merge", "merge"]
    assert after[1].confidence == before[1].confidence


def test_many_labelled_pairs_also_refit_the_weights_globally():
    few = MetricsJudge(JudgeParams(min_pairs_for_refit=3))
    _judge([_request(1, CLEAR)], [_example("bad", CLEAR, (i, i + 1)) for i in (10, 20)], judge=few)
    assert few.learned["refit"] is False
    _judge([_request(1, CLEAR)], [_example("bad", CLEAR, (i, i + 1)) for i in (10, 20, 30)], judge=few)
    assert few.learned["refit"] is True and few.learned["weights"]["offset"] < 0


def test_calibration_keeps_the_chosen_policy_unless_a_neighbour_merges_or_a_safe_one_recovers_more():
    from spikemerge.tools.judges.calibrate import _recommend

    def tally(merged: dict[str, int], recovered: dict[str, int]) -> dict[str, dict[str, int]]:
        return {name: {"negatives_merged": merged[name], "recovered": recovered[name]} for name in merged}

    none_merged = {"conservative": 0, "balanced": 0, "aggressive": 0}
    alike = {"conservative": 40, "balanced": 40, "aggressive": 40}
    # every policy safe and recovering alike: easy artificial splits are no reason to tighten or loosen
    for policy in ("conservative", "balanced", "aggressive"):
        assert _recommend(tally(none_merged, alike), policy) == policy
    # a looser policy recovers more and stays safe: suggested, the nearest such one
    assert _recommend(tally(none_merged, {"conservative": 30, "balanced": 40, "aggressive": 40}),
                      "conservative") == "balanced"
    # the chosen policy merges a distinct neighbour: the nearest safe one that recovers most
    assert _recommend(tally({"conservative": 0, "balanced": 0, "aggressive": 2},
                            {"conservative": 30, "balanced": 35, "aggressive": 44}), "aggressive") == "balanced"
    assert _recommend(tally({"conservative": 0, "balanced": 1, "aggressive": 2}, alike), "balanced") \
        == "conservative"
    # two safe policies as near and as good: the more demanding
    assert _recommend(tally({"conservative": 0, "balanced": 1, "aggressive": 0}, alike), "balanced") \
        == "conservative"
    # every policy merges a distinct neighbour: none suggested (review by eye)
    assert _recommend(tally({"conservative": 1, "balanced": 1, "aggressive": 3},
                            {"conservative": 30, "balanced": 35, "aggressive": 44}), "balanced") is None
