"""scripts/eval_sorted.py's pooled line: pair counts summed over the sets, then P, R and F1 of the sums."""

from __future__ import annotations

import pytest

from tests.helpers import load_script


def test_pooled_sums_counts_before_the_ratios():
    pooled = load_script("eval_sorted")._pooled([
        {"tp": 9, "fp": 1, "fn": 0, "wrong_merges": 1},   # a big set, precise and complete but for one wrong pair
        {"tp": 1, "fp": 0, "fn": 9, "wrong_merges": 0},   # a small set where most pairs are missed
    ])
    assert (pooled["sets"], pooled["tp"], pooled["fp"], pooled["fn"], pooled["wrong_merges"]) == (2, 10, 1, 9, 1)
    assert pooled["precision"] == pytest.approx(10 / 11) and pooled["recall"] == pytest.approx(10 / 19)
    # F1 of the sums, not the mean of the sets' F1 (which would be (0.947 + 0.182) / 2)
    p, r = 10 / 11, 10 / 19
    assert pooled["f1"] == pytest.approx(2 * p * r / (p + r))


def test_pooled_of_sets_without_true_pairs_is_perfect_not_a_division_by_zero():
    pooled = load_script("eval_sorted")._pooled([{"tp": 0, "fp": 0, "fn": 0, "wrong_merges": 0}])
    assert pooled["precision"] == pooled["recall"] == 1.0 and pooled["f1"] == 1.0
