"""apply_merges: planning without chains, curation.json through SpikeInterface, the merged folder, undo."""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pytest
from spikeinterface.core import load_sorting_analyzer
from spikeinterface.curation import apply_curation, load_curation

from spikemerge.errors import SpikemergeError
from spikemerge.tools.outputs import to_jsonable
from spikemerge.tools import curation as M
from spikemerge.tools.curation import (
    MODE_HARD,
    MODE_SOFT,
    MODE_SOFT_IGNORED,
    MergePlan,
    apply_merges,
    build_curation,
    new_unit_ids_for,
    plan_merges,
    undo_last_apply,
    write_curation,
)
from spikemerge.tools.judges.base import Verdict

PROVENANCE = {"tool": "spikemerge", "version": "test", "judge": "metrics", "policy": "balanced"}


def verdict(group_id, unit_ids, decision="merge", merge=None):
    merge_ids = list(unit_ids) if merge is None and decision == "merge" else list(merge or [])
    return Verdict(
        group_id=group_id, unit_ids=list(unit_ids), decision=decision, confidence=0.9,
        merge_unit_ids=merge_ids, reasoning="test", judge="hand",
    )


UNITS = [0, 1, 2, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14]


# ---------------------------------------------------------------------------------- planning


def test_plan_merges_exactly_what_was_judged():
    plan = plan_merges(
        [
            verdict(3, [11, 12, 13], merge=[13, 11]),  # a subset, given out of order
            verdict(1, [8, 2]),
            verdict(2, [4, 7], decision="not merge"),
            verdict(4, [9, 10], decision="error"),
        ],
        UNITS,
        duplicates={1: True},
    )
    assert plan.groups == [[2, 8], [11, 13]]  # analyzer order inside, group-id order outside
    assert plan.source_group_ids == [1, 3]
    assert plan.duplicate_flags == [True, False]
    assert plan.skipped == []


def test_overlapping_merges_are_skipped_not_chained():
    plan = plan_merges(
        [verdict(1, [2, 8]), verdict(2, [8, 9]), verdict(5, [11, 12])], UNITS
    )
    assert plan.groups == [[11, 12]]
    assert [gid for gid, _ in plan.skipped] == [1, 2]
    for _, reason in plan.skipped:
        assert "not chained" in reason and "2-8-9" in reason
    assert all(sorted(set(g)) != [2, 8, 9] for g in plan.groups)


def test_a_group_judged_whole_covers_its_parts_unless_a_unit_was_left_out():
    plan = plan_merges([verdict(1, [11, 12]), verdict(2, [11, 12, 13])], UNITS, duplicates={1: True})
    assert plan.groups == [[11, 12, 13]] and plan.source_group_ids == [2]
    assert plan.duplicate_flags == [True]
    assert plan.skipped[0][0] == 1 and "inside group 2" in plan.skipped[0][1]

    # group 1 saw 13 and left it out: "11-12-13 is one neuron" is contradicted, nothing merges
    plan = plan_merges([verdict(1, [11, 12, 13], merge=[11, 12]), verdict(2, [11, 12, 13])], UNITS)
    assert plan.groups == [] and [g for g, _ in plan.skipped] == [1, 2]

    # the same merge judged twice is applied once
    plan = plan_merges([verdict(1, [2, 8]), verdict(7, [8, 2])], UNITS)
    assert plan.groups == [[2, 8]] and plan.source_group_ids == [1] and plan.skipped[0][0] == 7


def test_a_not_merge_judgement_blocks_a_contradicting_merge():
    plan = plan_merges([verdict(1, [9, 10, 11]), verdict(2, [9, 10], decision="not merge")], UNITS)
    assert plan.groups == []
    assert plan.skipped[0][0] == 1 and "group 2" in plan.skipped[0][1]


def test_unknown_units_are_refused_and_text_ids_match():
    with pytest.raises(SpikemergeError, match="99"):
        plan_merges([verdict(1, [2, 99])], UNITS)
    assert plan_merges([verdict(1, ["2", "8"])], UNITS).groups == [[2, 8]]
    assert plan_merges([verdict(1, ["b", "a"])], ["a", "b", "c"]).groups == [["a", "b"]]


def test_new_unit_ids_never_collide():
    assert new_unit_ids_for(np.array([3, 9, 4]), 2) == [10, 11]
    assert new_unit_ids_for(["3", "12"], 1) == ["13"]
    assert new_unit_ids_for(["a", "merge0", "b"], 2) == ["merge1", "merge2"]


# ---------------------------------------------------------------------------------- curation file


def test_curation_file_round_trips_through_spikeinterface(small_truth, tmp_path):
    sorting = small_truth.analyzer.sorting
    plan = plan_merges([verdict(1, [2, 8]), verdict(2, [11, 12, 13])], sorting.unit_ids)
    new_ids = new_unit_ids_for(sorting.unit_ids, len(plan))
    provenance = {**PROVENANCE, "thresholds": {"min_similarity": 0.8}}
    curation = build_curation(sorting.unit_ids, plan, new_ids, provenance)
    assert curation["format_version"] == "2"
    assert curation["merges"] == [
        {"unit_ids": [2, 8], "new_unit_id": 15},
        {"unit_ids": [11, 12, 13], "new_unit_id": 16},
    ]
    path = write_curation(tmp_path / "curation.json", curation)
    assert json.loads(path.read_text())["provenance"]["thresholds"] == {"min_similarity": 0.8}
    model = load_curation(path)  # the extra "provenance" key is accepted (ignored) by the model
    curated = apply_curation(sorting, model)
    assert len(curated.unit_ids) == len(sorting.unit_ids) - 3
    assert {15, 16} <= set(int(u) for u in curated.unit_ids)

    with pytest.raises(SpikemergeError, match="already in the unit list"):
        build_curation(sorting.unit_ids, plan, [4, 15], PROVENANCE)
    with pytest.raises(SpikemergeError, match="one per group"):
        build_curation(sorting.unit_ids, plan, [15], PROVENANCE)


# ---------------------------------------------------------------------------------- applying


def _snapshot(analyzer):
    return {
        "unit_ids": list(analyzer.unit_ids),
        "spikes": analyzer.sorting.count_num_spikes_per_unit(),
        "templates": analyzer.get_extension("templates").get_data().copy(),
        "mask": analyzer.sparsity.mask.copy(),
        "extensions": sorted(analyzer.get_loaded_extension_names()),
    }


def _same(a, b):
    return (
        a["unit_ids"] == b["unit_ids"] and a["spikes"] == b["spikes"] and a["extensions"] == b["extensions"]
        and np.array_equal(a["templates"], b["templates"]) and np.array_equal(a["mask"], b["mask"])
    )


def _pairs_by_overlap(analyzer):
    """(pair, overlap, shared channels) for every unit pair."""
    out = []
    for a, b in combinations(analyzer.unit_ids, 2):
        overlap, shared = M.apply._overlap(analyzer, [a, b])
        out.append(((int(a), int(b)), overlap, shared))
    return out


def test_apply_writes_new_analyzer_censors_duplicates_and_undo(small_truth, tmp_path):
    analyzer = small_truth.analyzer
    before = _snapshot(analyzer)
    truth = [g for g in small_truth.true_groups]
    duplicate_neuron = next(n for n, kind in small_truth.kinds.items() if kind == "duplicate")
    duplicate_group = sorted(u for u, n in small_truth.neuron_of_unit.items() if n == duplicate_neuron)
    verdicts = [verdict(i, g) for i, g in enumerate(truth)]
    flags = {i: g == duplicate_group for i, g in enumerate(truth)}
    plan = plan_merges(verdicts, analyzer.unit_ids, duplicates=flags)
    out = tmp_path / "out"
    (out).mkdir()
    (out / "curation.json").write_text("{}")  # an earlier curation, restored by undo

    result = apply_merges(analyzer, plan, out, PROVENANCE)

    expected_units = analyzer.get_num_units() - sum(len(g) - 1 for g in truth)
    assert result.analyzer_folder == out / "merged_analyzer"
    assert result.units_before == analyzer.get_num_units() and result.units_after == expected_units
    assert result.skipped == [] and len(result.merges) == len(truth)
    assert all(m["censored"] for m in result.merges)
    assert _same(before, _snapshot(analyzer)), "the input analyzer changed"

    merged = load_sorting_analyzer(result.analyzer_folder)
    assert merged.get_num_units() == expected_units
    assert merged.has_extension("templates") and merged.has_extension("spike_amplitudes")
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]

    # the duplicate merged back to about one neuron's spikes, not twice as many
    dup = next(m for m in result.merges if m["duplicate"])
    original = before["spikes"][duplicate_group[0]]
    merged_count = merged.sorting.count_num_spikes_per_unit()[dup["new_unit_id"]]
    assert merged_count < 1.1 * original and dup["spikes_removed"] > 0.9 * original
    # a clean split loses (almost) nothing to censoring
    split = next(m for m in result.merges if not m["duplicate"])
    assert split["spikes_removed"] <= 0.01 * sum(before["spikes"][u] for u in split["unit_ids"])

    # curation.json reproduces the merged analyzer through SpikeInterface
    curation = json.loads(result.curation_path.read_text())
    assert curation["provenance"]["judge"] == "metrics"
    assert curation["provenance"]["apply"]["new_id_strategy"] == "append"
    curated = apply_curation(analyzer.sorting, load_curation(result.curation_path), censor_ms=0.3)
    assert sorted(map(int, curated.unit_ids)) == sorted(map(int, merged.unit_ids))
    assert curated.count_num_spikes_per_unit() == merged.sorting.count_num_spikes_per_unit()

    # a second apply replaces the merged analyzer this folder already holds (no merged_analyzer_2)
    second = apply_merges(analyzer, plan_merges([verdict(9, truth[0])], analyzer.unit_ids), out, PROVENANCE)
    assert second.analyzer_folder == out / "merged_analyzer" and second.replaced == "merged_analyzer"
    assert not (out / "merged_analyzer_2").exists()
    assert load_sorting_analyzer(second.analyzer_folder).get_num_units() == analyzer.get_num_units() - len(truth[0]) + 1
    assert load_curation(second.curation_path).merges[0].unit_ids == truth[0]
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]

    message = undo_last_apply(out)
    assert "removed merged_analyzer" in message and "not kept" in message
    assert not (out / "merged_analyzer").exists()
    assert len(load_curation(out / "curation.json").merges) == len(truth)  # the first apply's file is back
    message = undo_last_apply(out)
    assert "merged_analyzer was already gone" in message
    assert (out / "curation.json").read_text() == "{}"
    with pytest.raises(SpikemergeError, match="nothing to undo"):
        undo_last_apply(out)


def test_a_folder_spikemerge_did_not_write_is_never_replaced(small_truth, tmp_path):
    analyzer = small_truth.analyzer
    out = tmp_path / "out"
    (out / "merged_analyzer").mkdir(parents=True)
    (out / "merged_analyzer" / "mine.txt").write_text("a user's file")
    result = apply_merges(analyzer, plan_merges([verdict(1, small_truth.true_groups[0])], analyzer.unit_ids),
                          out, PROVENANCE)
    assert result.analyzer_folder == out / "merged_analyzer_2" and result.replaced is None
    assert (out / "merged_analyzer" / "mine.txt").read_text() == "a user's file"
    undo_last_apply(out)
    assert (out / "merged_analyzer" / "mine.txt").exists() and not (out / "merged_analyzer_2").exists()


def test_low_sparsity_overlap_falls_back_per_group(small_truth, tmp_path, monkeypatch):
    analyzer = small_truth.analyzer
    pairs = _pairs_by_overlap(analyzer)
    partial = next((p for p, ov, shared in pairs if 0 < shared and ov < M.SPARSITY_OVERLAP), None)
    disjoint = next((p for p, ov, shared in pairs if shared == 0 and not set(p) & set(partial or ())), None)
    assert partial and disjoint, "the small analyzer should hold partly and fully separate units"
    plan = plan_merges([verdict(1, partial), verdict(2, disjoint)], analyzer.unit_ids)

    # no recording: the partial pair merges soft on its shared channels, the disjoint one is reported
    monkeypatch.setattr(M.apply, "_has_recording", lambda a: False)
    result = apply_merges(analyzer, plan, tmp_path / "no_rec", PROVENANCE)
    assert [m["mode"] for m in result.merges] == [MODE_SOFT_IGNORED]
    assert result.skipped[0][0] == 2 and "share no channel" in result.skipped[0][1]
    merged = load_sorting_analyzer(result.analyzer_folder)
    assert merged.get_num_units() == analyzer.get_num_units() - 1
    new_index = merged.sorting.id_to_index(result.merges[0]["new_unit_id"])
    assert merged.sparsity.mask[new_index].sum() > 0
    monkeypatch.undo()

    # with the recording too: never a hard merge of the whole analyzer for one group's sake
    assert small_truth.analyzer.has_recording()
    result = apply_merges(analyzer, plan, tmp_path / "rec", PROVENANCE, write_analyzer=False)
    assert [m["mode"] for m in result.merges] == [MODE_SOFT_IGNORED] and result.skipped[0][0] == 2
    assert result.analyzer_folder is None and result.units_after == analyzer.get_num_units() - 1
    assert len(load_curation(result.curation_path).merges) == 1


def test_a_group_sharing_no_channel_alone_writes_no_analyzer(small_truth, tmp_path):
    disjoint = next(p for p, ov, shared in _pairs_by_overlap(small_truth.analyzer) if shared == 0)
    result = apply_merges(small_truth.analyzer, plan_merges([verdict(1, disjoint)], small_truth.analyzer.unit_ids),
                          tmp_path, PROVENANCE)
    assert result.merges == [] and result.analyzer_folder is None and "share no channel" in result.skipped[0][1]
    assert not any(p.name.startswith(".merged_analyzer") for p in tmp_path.iterdir())
    assert json.dumps(to_jsonable(result.__dict__))  # the session stores it in run.json


def test_one_failing_group_does_not_lose_the_others(small_truth, tmp_path, monkeypatch):
    analyzer = small_truth.analyzer
    good = [g for g in small_truth.true_groups if M.apply._overlap(analyzer, g)[0] >= M.SPARSITY_OVERLAP]
    assert len(good) >= 2
    bad_unit = good[0][0]
    real_merge = M.apply._merge

    calls = []

    def flaky(an, groups, censor_ms, n_jobs, folder=None):
        calls.append((an.get_num_units(), folder is not None))
        if any(bad_unit in g for g in groups):
            raise RuntimeError("simulated SpikeInterface failure")
        return real_merge(an, groups, censor_ms, n_jobs, folder=folder)

    monkeypatch.setattr(M.apply, "_merge", flaky)
    plan = plan_merges([verdict(i, g) for i, g in enumerate(good)], analyzer.unit_ids)
    result = apply_merges(analyzer, plan, tmp_path, PROVENANCE)
    assert [m["unit_ids"] for m in result.merges] == good[1:]
    assert all(m["mode"] == MODE_SOFT for m in result.merges)
    assert result.skipped == [(0, result.skipped[0][1])] and "simulated" in result.skipped[0][1]
    assert len(load_curation(result.curation_path).merges) == len(good) - 1
    # the failing group was found by merging each group alone on a copy of its own units
    assert all(n <= max(len(g) for g in good) for n, to_folder in calls if not to_folder)
    assert sum(to_folder for _, to_folder in calls) == 2  # the whole merge, then without the culprit


def test_nothing_half_written_when_saving_fails(small_truth, tmp_path, monkeypatch):
    analyzer = small_truth.analyzer
    before = _snapshot(analyzer)
    out = tmp_path / "out"
    out.mkdir()
    (out / "curation.json").write_text('{"earlier": true}')
    real_merge = M.apply._merge

    def crash_after_writing(an, groups, censor_ms, n_jobs, folder=None):
        result = real_merge(an, groups, censor_ms, n_jobs, folder=folder)
        if folder is not None:  # the folder is fully written, then the disk "fills up"
            raise OSError("disk full")
        return result

    monkeypatch.setattr(M.apply, "_merge", crash_after_writing)
    plan = plan_merges([verdict(1, small_truth.true_groups[0])], analyzer.unit_ids)
    with pytest.raises(SpikemergeError, match="nothing was written"):
        apply_merges(analyzer, plan, out, PROVENANCE)
    assert sorted(p.name for p in out.iterdir()) == ["curation.json"]
    assert (out / "curation.json").read_text() == '{"earlier": true}'
    assert _same(before, _snapshot(analyzer))
    with pytest.raises(SpikemergeError, match="nothing to undo"):
        undo_last_apply(out)


def test_apply_refuses_units_not_in_the_analyzer(small_truth, tmp_path):
    plan = MergePlan(groups=[[2, 99]], source_group_ids=[1], duplicate_flags=[False])
    with pytest.raises(SpikemergeError, match="99"):
        apply_merges(small_truth.analyzer, plan, tmp_path, PROVENANCE)
    assert not any(tmp_path.iterdir())


def test_an_empty_plan_writes_a_curation_without_merges(small_truth, tmp_path):
    analyzer = small_truth.analyzer
    plan = plan_merges([verdict(1, [2, 8], decision="not merge")], analyzer.unit_ids)
    result = apply_merges(analyzer, plan, tmp_path, PROVENANCE)
    assert result.analyzer_folder is None and result.merges == []
    assert result.units_after == result.units_before == analyzer.get_num_units()
    curated = apply_curation(analyzer.sorting, load_curation(result.curation_path))
    assert len(curated.unit_ids) == analyzer.get_num_units()
    assert "removed curation.json" in undo_last_apply(tmp_path)
    assert not (tmp_path / "curation.json").exists()


def test_one_group_can_hold_two_merges():
    v = Verdict(group_id=1, unit_ids=[13, 15, 68, 69], decision="merge", confidence=0.9,
                merge_groups=[[13, 15], [68, 69]], reasoning="two neurons' splits", judge="hand")
    assert v.merge_unit_ids == [13, 15, 68, 69]
    plan = plan_merges([v], [13, 15, 68, 69, 70])
    assert plan.groups == [[13, 15], [68, 69]] and plan.source_group_ids == [1, 1] and not plan.skipped


def test_parts_of_one_verdict_keep_their_units_apart_from_another_merge():
    split = Verdict(group_id=1, unit_ids=[1, 2, 3, 4], decision="merge", confidence=0.9,
                    merge_groups=[[1, 2], [3, 4]], reasoning="", judge="hand")
    chained = verdict(2, [2, 3])
    plan = plan_merges([split, chained], [1, 2, 3, 4])
    assert [2, 3] not in plan.groups and 2 in {g for g, _ in plan.skipped}


def test_abstain_neither_merges_nor_blocks():
    thin = Verdict(group_id=1, unit_ids=[1, 2], decision="abstain", confidence=0.5, reasoning="thin", judge="hand")
    assert thin.merge_groups == [] and thin.merge_unit_ids == []
    plan = plan_merges([thin, verdict(2, [1, 2, 3])], [1, 2, 3])
    assert plan.groups == [[1, 2, 3]]


def test_overlapping_parts_are_refused():
    with pytest.raises(ValueError, match="disjoint"):
        Verdict(group_id=1, unit_ids=[1, 2, 3], decision="merge", confidence=0.9,
                merge_groups=[[1, 2], [2, 3]], reasoning="", judge="hand")


# ---------------------------------------------------------------------------------- offset duplicates


def test_censor_window_reaches_the_duplicates_lag():
    assert M.censor_window([]) == M.CENSOR_MS
    assert M.censor_window([0.05]) == M.CENSOR_MS  # a duplicate on the same sample: the plain window
    assert M.censor_window([1.2, -1.94], jitter_ms=0.25) == pytest.approx(2.19)


def test_an_offset_duplicate_at_1_9_ms_merges_and_the_merged_unit_keeps_one_copy():
    from spikeinterface.core import NumpySorting
    from spikeinterface.core.sorting_tools import apply_merges_to_sorting

    from spikemerge.tools.judges.base import JudgeRequest
    from spikemerge.tools.judges.metrics import MetricsJudge
    from spikemerge.tools.judges.params import DEFAULT_JUDGE_PARAMS
    from tests.tools.evidence.spikes import FS, group_record, neuron_train, unit_arrays

    rng = np.random.default_rng(9)
    times = neuron_train(rng, rate_hz=8)
    scales = rng.normal(1.0, 0.1, times.size)
    copy = rng.random(times.size) < 0.7
    lag_samples = 57  # 1.9 ms at 30 kHz: the copy's template sits earlier in its window
    units = {1: unit_arrays(rng, times, scales),
             2: unit_arrays(rng, times[copy] + lag_samples / FS, scales[copy], shift=lag_samples)}
    evidence = group_record(units)
    verdict_ = MetricsJudge().judge(JudgeRequest(group_id=1, unit_ids=(1, 2), evidence=evidence), "conservative")
    assert verdict_.decision == "merge" and verdict_.merge_groups == [[1, 2]], verdict_.reasoning
    lags = M.duplicate_lags(evidence["pairs"], {1, 2}, DEFAULT_JUDGE_PARAMS.duplicate_fraction,
                            DEFAULT_JUDGE_PARAMS.duplicate_excess)
    assert list(lags.values()) == [pytest.approx(1.9, abs=0.1)]
    plan = plan_merges([verdict_], [1, 2], {1: True}, duplicate_lags_ms=lags)
    assert plan.groups == [[1, 2]] and plan.censor_ms[0] == pytest.approx(2.15, abs=0.1)

    samples = {1: np.round(units[1].times_s * FS).astype(int), 2: np.round(units[2].times_s * FS).astype(int)}
    sorting = NumpySorting.from_unit_dict([samples], FS)
    merged = apply_merges_to_sorting(sorting, plan.groups, new_unit_ids=[3], censor_ms=plan.censor_ms[0])
    kept = merged.get_unit_spike_train(3).size
    # one copy of each spike; the window also drops the few intervals of this 2 ms-refractory
    # neuron that fall between its refractory period and the window (under 1 %)
    assert 0.99 * times.size <= kept <= times.size
    fixed = apply_merges_to_sorting(sorting, plan.groups, new_unit_ids=[3], censor_ms=M.CENSOR_MS)
    assert fixed.get_unit_spike_train(3).size > times.size + 0.99 * copy.sum()  # 0.3 ms kept both copies


def test_the_censor_window_reaches_copies_at_a_second_lag():
    from spikemerge.tools.curation.plan import MAX_REACH_MS

    pair = {"unit_a": 1, "unit_b": 2, "duplicate_fraction": 0.6, "duplicate_excess": 40.0,
            "duplicate_lag_ms": -0.4, "duplicate_reach_ms": 1.3}
    assert M.duplicate_lags([pair], {1, 2}, 0.3, 10.0) == {frozenset(("1", "2")): pytest.approx(1.3)}
    far = {**pair, "duplicate_reach_ms": 3.4}  # never so far that a burst's own spikes are censored
    assert M.duplicate_lags([far], {1, 2}, 0.3, 10.0)[frozenset(("1", "2"))] == MAX_REACH_MS
    assert M.duplicate_lags([{**pair, "duplicate_reach_ms": 0.0}], {1, 2}, 0.3, 10.0)[frozenset(("1", "2"))] == 0.4
