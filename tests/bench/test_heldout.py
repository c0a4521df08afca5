"""spikemerge.bench.heldout and scripts/heldout_rows.py: a held-out batch's rows, pooled lines, summary row and bar."""

from __future__ import annotations

import json

import pytest

from spikemerge.bench.heldout import ScenarioScores, bar_misses, batch_row, pooled_line, read_scenario
from spikemerge.bench.scoring import pool_scores
from tests.helpers import load_script


def _row(dataset, method, tp, fp, fn):
    """One set's scores as eval_sorted.py prints them (every wrong pair between two pure units)."""
    score = pool_scores([{"tp": tp, "fp": fp, "fn": fn, "wrong_merges": fp}])
    return {"dataset": dataset, "method": method, "true_pairs": tp + fn, **score}


def _write(path, rows, extra=()):
    path.write_text("\n".join([*extra, *(json.dumps(r) for r in rows)]))
    return path


def test_rows_sorted_by_sorter_then_seed_with_each_sets_best_preset_and_the_pooled_best(tmp_path, capsys):
    ours = _write(tmp_path / "ours.jsonl", [
        _row("drift_tdc2_s139", "spikemerge (balanced)", 9, 0, 1),
        _row("drift_sc2_s140", "spikemerge (balanced)", 4, 1, 0),
        _row("pooled", "spikemerge (balanced)", 13, 1, 1),
    ], extra=["a warning line that is not JSON"])
    presets = _write(tmp_path / "presets.jsonl", [
        _row("drift_sc2_s140", "SI x_contaminations", 2, 3, 2),
        _row("drift_sc2_s140", "SI slay", 1, 0, 3),
        _row("drift_tdc2_s139", "SI x_contaminations", 0, 2, 10),  # every preset at F1 0 on this set
        _row("drift_tdc2_s139", "SI slay", 0, 1, 10),
        _row("drift_sc2_s999", "SI slay", 50, 0, 0),  # a set ours was not scored on stays out of the pool
    ])
    assert load_script("heldout_rows").main([str(ours), str(presets), "--label", "MEArec drift", "--judge", "v9"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| held-out dataset (sorter, seed) | true pairs | v9 F1 (wrong) |")
    assert out[2] == "| MEArec drift (sc2, 140) | 4 | **0.89** (1) | 0.44 (3) `x_contaminations` |"
    assert out[3] == "| MEArec drift (tdc2, 139) | 10 | **0.95** (0) | 0.00 (1) |"
    # pooled from the per-set counts: tp 13, fp 1, fn 1; x_contaminations tp 2 fp 5 fn 12 beats slay tp 1 fp 1 fn 13
    assert out[-1] == "Pooled: F1 0.929 (P 0.93, R 0.93, 1 wrong; `x_contaminations` 0.19 with 5)"


def test_the_pooled_line_shows_where_impure_units_went_when_the_scores_counted_them():
    mine = [{**_row(f"drift_sc2_s{seed}", "spikemerge (balanced)", 4, 0, 0), "impure_own": own, "impure_foreign": other}
            for seed, own, other in ((1, 2, 0), (2, 1, 3))]
    line = pooled_line(ScenarioScores("drift", "MEArec drift", mine, [_row("drift_sc2_s1", "SI slay", 1, 0, 3)]))
    assert line == ("F1 1.000 (P 1.00, R 1.00, none; impure units merged: 3 to their neuron, 3 to another; "
                    "`slay` 0.40 with 0)")


def test_a_file_without_spikemerge_lines_is_refused_in_one_line(tmp_path):
    presets = _write(tmp_path / "presets.jsonl", [_row("drift_sc2_s1", "SI slay", 1, 0, 3)])
    with pytest.raises(ValueError, match="no spikemerge line"):
        read_scenario("drift", "d", presets, presets)


def _scenario(name, ours, presets):
    return ScenarioScores(name, f"MEArec {name}", ours, presets)


def test_a_batch_meets_the_bar_only_with_f1_no_wrong_pair_and_every_set_above_the_presets():
    drift = _scenario("drift",
                      [_row("drift_sc2_s1", "spikemerge", 19, 0, 1), _row("drift_tdc2_s1", "spikemerge", 10, 0, 0)],
                      [_row("drift_sc2_s1", "SI slay", 10, 0, 10), _row("drift_tdc2_s1", "SI slay", 5, 2, 5)])
    burst = _scenario("burst", [_row("burst_sc2_s1", "spikemerge", 9, 0, 1)],
                      [_row("burst_sc2_s1", "SI slay", 2, 0, 8)])
    assert bar_misses([drift, burst]) == []
    # pooled drifting: tp 29 fp 0 fn 1 (F1 0.983); slay tp 15 fp 2 fn 15; bursting tp 9 fn 1, slay tp 2 fn 8
    assert batch_row("147-148", [drift, burst], "v28") == \
        "| 147–148 | MEArec drift | MEArec burst | v28 | 0.983 (0) | 0.947 (0) | 0.64 / 0.33 | met |"

    thin = _scenario("burst", [_row("burst_sc2_s1", "spikemerge", 7, 1, 3)], [_row("burst_sc2_s1", "SI slay", 8, 0, 2)])
    assert bar_misses([drift, thin]) == [
        "burst F1 0.778 (recall 0.70)", "burst: 1 distinct pairs merged", "burst_sc2_s1: `slay` 0.89 against 0.78"]
    assert batch_row("1-2", [drift, thin], "v0").endswith("| missed: burst F1 0.778 (recall 0.70); "
                                                           "burst: 1 distinct pairs merged; "
                                                           "burst_sc2_s1: `slay` 0.89 against 0.78 |")
