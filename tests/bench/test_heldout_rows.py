"""scripts/heldout_rows.py: a held-out batch's README rows, ours beside the best preset of each set and of the pool."""

from __future__ import annotations

import json

from spikemerge.bench.scoring import pool_scores
from tests.helpers import load_script


def _line(dataset, method, tp, fp, fn):
    """One set's line as eval_sorted.py prints it (every wrong pair between two pure units)."""
    score = pool_scores([{"tp": tp, "fp": fp, "fn": fn, "wrong_merges": fp}])
    return json.dumps({"dataset": dataset, "method": method, "true_pairs": tp + fn, **score})


def test_rows_sorted_by_sorter_then_seed_with_each_sets_best_preset_and_the_pooled_best(tmp_path, capsys):
    ours = tmp_path / "ours.jsonl"
    ours.write_text("\n".join([
        "a warning line that is not JSON",
        _line("drift_tdc2_s139", "spikemerge (balanced)", 9, 0, 1),
        _line("drift_sc2_s140", "spikemerge (balanced)", 4, 1, 0),
        _line("pooled", "spikemerge (balanced)", 13, 1, 1),
    ]))
    presets = tmp_path / "presets.jsonl"
    presets.write_text("\n".join([
        _line("drift_sc2_s140", "SI x_contaminations", 2, 3, 2),
        _line("drift_sc2_s140", "SI slay", 1, 0, 3),
        _line("drift_tdc2_s139", "SI x_contaminations", 0, 2, 10),  # every preset at F1 0 on this set
        _line("drift_tdc2_s139", "SI slay", 0, 1, 10),
        _line("drift_sc2_s999", "SI slay", 50, 0, 0),  # a set ours was not scored on stays out of the pool
    ]))
    assert load_script("heldout_rows").main([str(ours), str(presets), "--label", "MEArec drift", "--judge", "v9"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| held-out dataset (sorter, seed) | true pairs | v9 F1 (wrong) |")
    assert out[2] == "| MEArec drift (sc2, 140) | 4 | **0.89** (1) | 0.44 (3) `x_contaminations` |"
    assert out[3] == "| MEArec drift (tdc2, 139) | 10 | **0.95** (0) | 0.00 (1) |"
    # pooled from the per-set counts: tp 13, fp 1, fn 1; x_contaminations tp 2 fp 5 fn 12 beats slay tp 1 fp 1 fn 13
    assert out[-1] == "Pooled: F1 0.929 (P 0.93, R 0.93, 1 wrong; `x_contaminations` 0.19 with 5)"
