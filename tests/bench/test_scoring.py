"""Pair-level scores and SpikeInterface's unit-level counts on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
from spikeinterface.core import NumpySorting

from spikemerge.bench.run import curated_sorting
from spikemerge.bench.scoring import merged_pairs, score_merges, unit_counts

# neuron "A" split in three (0, 1, 2), neuron "B" in two (3, 4), neurons "C", "D" whole (5, 6)
TRUTH = {0: "A", 1: "A", 2: "A", 3: "B", 4: "B", 5: "C", 6: "D"}


def test_merged_pairs_counts_every_pair_once():
    assert merged_pairs([[1, 2, 3], [4]]) == {frozenset({1, 2}), frozenset({1, 3}), frozenset({2, 3})}


def test_perfect_merges():
    s = score_merges([[0, 1, 2], [4, 3]], TRUTH)
    assert (s["precision"], s["recall"], s["f1"], s["tp"], s["fp"], s["fn"]) == (1.0, 1.0, 1.0, 4, 0, 0)


def test_nothing_to_find_and_nothing_predicted_is_perfect():
    s = score_merges([], {0: 0, 1: 1, 2: 2})
    assert (s["precision"], s["recall"], s["f1"], s["distinct_merges"]) == (1.0, 1.0, 1.0, 0)


def test_nothing_to_find_but_a_merge_predicted():
    s = score_merges([[0, 1]], {0: 0, 1: 1, 2: 2})
    assert (s["precision"], s["recall"], s["f1"], s["distinct_merges"]) == (0.0, 1.0, 0.0, 1)


def test_nothing_predicted_misses_every_pair():
    s = score_merges([], TRUTH)
    assert (s["precision"], s["recall"], s["f1"], s["fn"]) == (1.0, 0.0, 0.0, 4)


def test_all_wrong():
    s = score_merges([[0, 3], [1, 5], [2, 6]], TRUTH)
    assert (s["precision"], s["recall"], s["f1"], s["tp"], s["distinct_merges"]) == (0.0, 0.0, 0.0, 0, 3)


def test_partial_group_of_a_three_way_split():
    s = score_merges([[0, 1]], TRUTH)  # one of A's three pairs, nothing of B
    assert s["precision"] == 1.0
    assert s["recall"] == pytest.approx(1 / 4)
    assert s["f1"] == pytest.approx(2 * 0.25 / 1.25)


def test_overmerged_group_counts_its_wrong_pairs():
    s = score_merges([[0, 1, 2, 5]], TRUTH)  # A complete, plus C: 3 right pairs, 3 wrong
    assert (s["tp"], s["fp"], s["fn"], s["distinct_merges"]) == (3, 3, 1, 3)
    assert s["precision"] == pytest.approx(0.5)
    assert s["recall"] == pytest.approx(0.75)


def test_string_unit_ids():
    s = score_merges([["a", "b"]], {"a": 1, "b": 1, "c": 2})
    assert s["f1"] == 1.0


# -- unit-level counts -------------------------------------------------------------------------

FS = 30_000.0


def _trains(seed: int = 0) -> dict[int, np.ndarray]:
    """Three neurons with 400 spikes each, at least 5 ms apart within a neuron."""
    rng = np.random.default_rng(seed)
    return {n: np.cumsum(rng.integers(150, 1500, 400)).astype(np.int64) + 1000 * n for n in range(3)}


@pytest.fixture
def hand_made():
    """Neuron 0 split 70/30 into units 10 and 11; neuron 1 whole (unit 1) plus a duplicate copy
    shifted by 3 samples (unit 12); neuron 2 whole (unit 2)."""
    trains = _trains()
    gt = NumpySorting.from_unit_dict([trains], FS)
    rng = np.random.default_rng(1)
    part = rng.random(len(trains[0])) < 0.7
    damaged = NumpySorting.from_unit_dict(
        [{1: trains[1], 2: trains[2], 10: trains[0][part], 11: trains[0][~part], 12: trains[1] + 3}], FS
    )
    return gt, damaged


def test_unit_counts_before_curation(hand_made):
    gt, damaged = hand_made
    counts = unit_counts(gt, damaged)
    assert counts["num_gt"] == 3 and counts["num_sorter"] == 5
    # neuron 2 whole and neuron 1 (one of its two copies) are well detected; 10 holds 70 % of neuron 0
    assert counts["num_well_detected"] == 2
    # the duplicate (12) and the 30 % part (11) are redundant detections, nothing is overmerged
    assert counts["num_redundant"] == 2
    assert counts["num_overmerged"] == 0
    assert counts["num_false_positive"] == 0
    assert counts["num_bad"] == 2


def test_unit_counts_after_the_right_merges(hand_made):
    gt, damaged = hand_made
    curated = curated_sorting(damaged, [[10, 11], [1, 12]])  # the duplicate copies are censored
    assert len(curated.get_unit_spike_train(1)) == 400
    counts = unit_counts(gt, curated)
    assert (counts["num_sorter"], counts["num_well_detected"], counts["num_redundant"], counts["num_overmerged"]) \
        == (3, 3, 0, 0)


def test_unit_counts_after_a_wrong_merge(hand_made):
    gt, damaged = hand_made
    curated = curated_sorting(damaged, [[10, 11], [2, 1]])  # right for neuron 0, wrong for 2 + 1
    counts = unit_counts(gt, curated)
    assert counts["num_overmerged"] == 1  # unit 2 now agrees 0.5 with neurons 1 and 2
    # neuron 0 merged back, neuron 1 through its duplicate copy (12); neuron 2 only in the overmerged unit
    assert counts["num_well_detected"] == 2
