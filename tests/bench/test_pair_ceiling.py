"""scripts/pair_ceiling.py: how far the pair numbers of kept records could separate wrong merges from right ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import load_script

KEPT = Path(__file__).parents[2] / "scripts" / "dev_evidence"
RECORDS = ("drift_sc2_s191", "drift_sc2_s244", "drift_tdc2_s232", "drift_tdc2_s258")
"""Four drifting sets of four batches, each with thin sequential pairs of two neurons merged (v39 and v40, balanced;
v45 with its thin hand-over model off, ``NO_MODEL``)."""
NO_MODEL = ["--set", 'handover_model=""']


@pytest.mark.slow
def test_counts_the_merged_pairs_explain_sorted_calls_wrong_and_ranks_them(capsys):
    script = load_script("pair_ceiling")
    explain = load_script("explain_sorted")
    paths = [str(KEPT / f"{name}.json.xz") for name in RECORDS]
    assert script.main(paths + ["--folds", "4"] + NO_MODEL) == 0
    lines = capsys.readouterr().out.splitlines()
    head = lines[0]
    assert head.startswith("thin-sequential pairs merged (balanced): ") and "from 4 seeds" in head
    distinct = int(head.split("of two neurons ")[1].split(",")[0])

    # the same judge's wrong merges, as explain_sorted lists them, include every one counted here
    assert explain.main(paths + ["-v"] + NO_MODEL) == 0
    wrong = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  WRONG")]
    wrong_thin_sequential = [line for line in wrong if "thin" in line and "sequential" in line]
    assert distinct == len(wrong_thin_sequential) >= 4

    # catching more suspects never flags fewer same-neuron pairs
    flagged = [int(line.split(" flags ")[1].split(" of ")[0]) for line in lines[1:]]
    assert len(flagged) == sum(k <= distinct for k in script.CATCHES) and flagged == sorted(flagged)


def test_refuses_a_dataset_folder(tmp_path):
    script = load_script("pair_ceiling")
    with pytest.raises(SystemExit):
        script.main([str(tmp_path / "drift_sc2_s1")])
