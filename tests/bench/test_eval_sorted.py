"""scripts/eval_sorted.py: the pooled line (pair counts summed over the sets, then P, R and F1 of the
sums), and a preset that cannot run refused before any set is scored."""

from __future__ import annotations

import json

import pytest

from spikemerge.bench.scoring import pool_scores
from tests.helpers import load_script


def test_pooled_sums_counts_before_the_ratios():
    pooled = pool_scores([
        {"tp": 9, "fp": 1, "fn": 0, "wrong_merges": 1},   # a big set, precise and complete but for one wrong pair
        {"tp": 1, "fp": 0, "fn": 9, "wrong_merges": 0},   # a small set where most pairs are missed
    ])
    assert (pooled["sets"], pooled["tp"], pooled["fp"], pooled["fn"], pooled["wrong_merges"]) == (2, 10, 1, 9, 1)
    assert pooled["precision"] == pytest.approx(10 / 11) and pooled["recall"] == pytest.approx(10 / 19)
    # F1 of the sums, not the mean of the sets' F1 (which would be (0.947 + 0.182) / 2)
    p, r = 10 / 11, 10 / 19
    assert pooled["f1"] == pytest.approx(2 * p * r / (p + r))


def test_pooled_sums_impure_merges_only_when_every_set_counted_them():
    sets = [{"tp": 1, "fp": 0, "fn": 0, "wrong_merges": 0, "impure_own": 2, "impure_foreign": 1},
            {"tp": 1, "fp": 0, "fn": 0, "wrong_merges": 0, "impure_own": 0, "impure_foreign": 3}]
    pooled = pool_scores(sets)
    assert (pooled["impure_own"], pooled["impure_foreign"]) == (2, 4)
    # a preset's line or an older score file without the counts: no made-up zero
    assert "impure_foreign" not in pool_scores([*sets, {"tp": 0, "fp": 0, "fn": 0, "wrong_merges": 0}])


def test_pooled_of_sets_without_true_pairs_is_perfect_not_a_division_by_zero():
    pooled = pool_scores([{"tp": 0, "fp": 0, "fn": 0, "wrong_merges": 0}])
    assert pooled["precision"] == pooled["recall"] == 1.0 and pooled["f1"] == 1.0


def test_feature_neighbors_without_locations_or_recording_is_refused_before_scoring(tmp_path, capsys):
    """A set whose recording was deleted after its build cannot give spike locations: one line, exit 2."""
    kept, bare = tmp_path / "kept", tmp_path / "bare"
    (kept / "analyzer" / "extensions" / "spike_locations").mkdir(parents=True)
    bare.mkdir()
    with pytest.raises(SystemExit) as stop:
        load_script("eval_sorted").main([str(kept), str(bare), "--presets", "x_contaminations,feature_neighbors",
                                         "--no-spikemerge"])
    assert stop.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "feature_neighbors" in message and "bare" in message and "kept" not in message


def test_the_recording_named_in_truth_json_counts_whatever_its_name(tmp_path):
    """MEArec sets keep ``recording.h5``, SpikeInterface-made ones a ``recording`` folder: truth.json says which."""
    mearec, generated, gone = tmp_path / "mearec", tmp_path / "generated", tmp_path / "gone"
    for folder, name in ((mearec, "recording.h5"), (generated, "recording"), (gone, "recording")):
        folder.mkdir()
        (folder / "truth.json").write_text(json.dumps({"recording": name}))
    (mearec / "recording.h5").write_bytes(b"")
    (generated / "recording").mkdir()
    locatable = load_script("eval_sorted")._locatable
    assert locatable(mearec) and locatable(generated) and not locatable(gone)
