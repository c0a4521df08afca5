"""The hand-over model's fitting script: folds by batch, and judging every kept set out of fold."""

from __future__ import annotations

import re

from tests.helpers import load_script


def test_a_batchs_two_seeds_and_both_sorters_share_a_fold_and_neighbouring_batches_do_not():
    fit = load_script("fit_handover_model")
    assert fit.fold_of("drift_sc2_s385") == fit.fold_of("drift_tdc2_s386") == fit.fold_of("burst_sc2_s386")
    assert fit.fold_of("drift_sc2_s386") != fit.fold_of("drift_sc2_s387")
    assert len({fit.fold_of(f"drift_sc2_s{seed}") for seed in range(185, 195)}) == fit.FOLDS


def test_judging_out_of_fold_scores_every_kept_set_of_the_records_seeds(capsys):
    """Three batches of kept drifting records (seeds 185-190), one fold each: every set of those seeds
    (drifting and bursting) judged by the model fitted on the other batches."""
    fit = load_script("fit_handover_model")

    def early(path):
        return 185 <= fit.parse_dataset_name(fit.kept_name(path).name).seed <= 190

    records = [p for p in sorted(fit.KEPT.glob(f"drift_*{fit.KEPT_SUFFIX}")) if early(p)]
    sets = [p for p in fit.KEPT.glob(f"*{fit.KEPT_SUFFIX}") if early(p)]
    assert len(records) >= 6 and len(sets) > len(records)
    assert fit.main(["--judge-out-of-fold", *map(str, records)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    pooled = next(i for i, line in enumerate(lines) if line.startswith("judged out of fold"))
    found = re.search(r"judged out of fold \(balanced\): (\d+) sets, (\d+) same-neuron pairs merged", lines[pooled])
    assert found and int(found.group(1)) == len(sets) and int(found.group(2)) > 0
    # then one line per batch, as explain_sorted.py --batches prints them
    assert [line.split(":")[0] for line in lines[pooled + 1:]] == ["185-186", "187-188", "189-190"]
