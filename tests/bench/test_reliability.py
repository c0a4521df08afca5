"""scripts/reliability.py on arrays: binning, Brier, ECE, the (scale, offset) refit, truth of pairs and verdicts."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tests.helpers import load_script


@pytest.fixture(scope="module")
def rel():
    return load_script("reliability")


def test_reliability_table_bins_counts_and_edges(rel):
    p = [0.0, 0.05, 0.1, 0.55, 0.99, 1.0]
    y = [0, 0, 1, 1, 1, 0]
    rows = rel.reliability_table(p, y, bins=10)
    assert len(rows) == 10 and [r["n"] for r in rows] == [2, 1, 0, 0, 0, 1, 0, 0, 0, 2]
    assert rows[9]["right"] == 0.5 and rows[9]["mean_p"] == pytest.approx(0.995)  # P = 1 falls in the last bin
    assert np.isnan(rows[2]["right"])


def test_ece_zero_when_calibrated_and_the_gap_when_overconfident(rel):
    # 10 pairs at P 0.8 of which 8 right, 10 at P 0.2 of which 2 right: calibrated
    p = [0.8] * 10 + [0.2] * 10
    y = [1] * 8 + [0] * 2 + [1] * 2 + [0] * 8
    assert rel.expected_calibration_error(p, y) == pytest.approx(0.0)
    # 5 of 10 right at P 0.8 (off by 0.3) beside 30 calibrated pairs at 0.2: weighted by count, 0.3 · 10/40
    p2 = [0.8] * 10 + [0.2] * 30
    y2 = [1] * 5 + [0] * 5 + [1] * 6 + [0] * 24
    assert rel.expected_calibration_error(p2, y2) == pytest.approx(0.075)
    assert np.isnan(rel.expected_calibration_error([], []))


def test_brier(rel):
    assert rel.brier([1.0, 0.0, 0.5], [1, 0, 1]) == pytest.approx(0.25 / 3)


def test_fit_recovers_scale_and_offset(rel):
    rng = np.random.default_rng(0)
    L = rng.normal(0.0, 2.0, 20000)
    y = rng.random(L.size) < 1 / (1 + np.exp(-(0.5 * L - 1.0)))
    scale, offset = rel.fit_scale_offset(L, y)
    assert scale == pytest.approx(0.5, abs=0.05) and offset == pytest.approx(-1.0, abs=0.08)
    # refitting improves calibration of the built-in (scale 1, offset 0) reading of the same data
    before = rel.expected_calibration_error(rel.sigmoid(L), y)
    after = rel.expected_calibration_error(rel.sigmoid(scale * L + offset), y)
    assert after < 0.02 < before


def test_fit_stays_finite_on_separable_data(rel):
    L = np.array([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0])
    scale, offset = rel.fit_scale_offset(L, [0, 0, 0, 1, 1, 1])
    assert np.isfinite(scale) and np.isfinite(offset) and scale > 1.0


def test_pair_counts_blocks_vetoed_pairs(rel):
    p = [0.9, 0.9, 0.6, 0.4, 0.1]
    y = [1, 0, 0, 1, 0]
    plain = rel.pair_counts(p, y)
    assert (plain["tp"], plain["wrong"], plain["fn"]) == (1, 2, 1)
    vetoed = rel.pair_counts(p, y, blocked=[False, True, False, False, False])
    assert (vetoed["tp"], vetoed["wrong"], vetoed["fn"]) == (1, 1, 1)
    assert vetoed["f1"] == pytest.approx(2 / 4)


def test_truth_of_pairs_and_verdicts(rel):
    u2n = {"1": "#a", "2": "#a", "3": "#b", "4": None}
    assert rel.pair_truth(1, 2, u2n) == 1 and rel.pair_truth(1, 3, u2n) == 0
    assert rel.pair_truth(1, 4, u2n) is None and rel.pair_truth(1, 99, u2n) is None  # impure, unmatched
    verdicts = [
        SimpleNamespace(decision="merge", group_id=1, unit_ids=[1, 2, 3, 4], merge_groups=[[1, 2], [3, 4]],
                        confidence=0.7),
        SimpleNamespace(decision="merge", group_id=2, unit_ids=[1, 3], merge_groups=[[1, 3]], confidence=0.6),
        SimpleNamespace(decision="not merge", group_id=3, unit_ids=[1, 2, 4], merge_groups=[], confidence=0.9),
        SimpleNamespace(decision="abstain", group_id=4, unit_ids=[1, 2], merge_groups=[], confidence=0.5),
    ]
    rows = rel.verdict_rows(verdicts, u2n)
    assert [(r["kind"], r["truth"], r["p"]) for r in rows] == [
        ("merge", 1, 0.7), ("merge", 0, 0.6), ("not merge", 0, 0.9)]
    impure_only = SimpleNamespace(decision="merge", group_id=5, unit_ids=[3, 4], merge_groups=[[3, 4]],
                                  confidence=0.8)
    assert rel.verdict_rows([impure_only], u2n)[0]["truth"] is None
    # a keep-apart verdict is right when no two of its pure units are one neuron; with fewer than two
    # pure units the truth has nothing to say
    assert rel.apart_truth([1, 3, 4], u2n) == 1 and rel.apart_truth([1, 2], u2n) == 0
    assert rel.apart_truth([1, 4], u2n) is None
    alone = SimpleNamespace(decision="not merge", group_id=6, unit_ids=[3, 4], merge_groups=[], confidence=0.9)
    assert rel.verdict_rows([alone], u2n)[0]["truth"] is None


def test_the_keep_apart_refit_is_scored_on_sets_it_was_not_fitted_on(rel):
    # groups kept apart that hold one neuron's units about half the time whatever their strongest
    # pair reads below 0: the refit reads them less sure than 1 - P(strongest pair)
    rng = np.random.default_rng(0)
    verdicts = [{"set": f"s{i % 4}", "strongest": float(L), "truth": int(rng.random() < 0.5)}
                for i, L in enumerate(np.linspace(-8.0, -1.0, 80))]
    (scale, offset), held = rel.keep_apart_refit(verdicts)
    assert len(held) == 80 and all(0 < p < 1 for p, _ in held)
    assert scale < 0.5  # flatter than the strongest pair's own P
    plain = rel.keep_apart_refit(verdicts, precision=1e6)[0]
    assert plain == pytest.approx((1.0, 0.0), abs=1e-3)


def test_the_merge_confidence_refit_is_scored_on_sets_it_was_not_fitted_on(rel):
    # parts right whatever their weakest pair reads (as on sorter-made sets): the refit reads them surer
    verdicts = [{"set": f"s{i % 3}", "parts": [(w, 1)]} for i, w in enumerate(np.linspace(-0.5, 4.0, 60))]
    verdicts += [{"set": "s0", "parts": [(0.2, 0), (3.0, 1)]}, {"set": "s1", "parts": [(1.0, None)]}]
    (scale, offset), held = rel.merge_confidence_refit(verdicts)
    assert offset > 0.5 and 0 < scale
    assert len(held) == 61  # the verdict with no truth is not scored
    assert all(0 < p < 1 for p, _ in held) and [y for _, y in held].count(0) == 1
    plain = rel.merge_confidence_refit(verdicts, precision=1e6)[0]
    assert plain == pytest.approx((1.0, 0.0), abs=1e-3)  # a rigid prior keeps the weakest pair's P
