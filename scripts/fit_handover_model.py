"""Fit the metrics judge's thin hand-over model from the kept sorter-made records, and say how it scores out of sample.

    python scripts/fit_handover_model.py                     # fit on scripts/dev_evidence/drift_*.json.xz, write the model
    python scripts/fit_handover_model.py --dry-run           # ... only print the cross-validated figures
    python scripts/fit_handover_model.py --judge-out-of-fold [--set FIELD=VALUE ...]
                     # ... judge every kept set of those seeds with the fold's model that never saw it

Which pairs: in every kept drifting record, the judged pairs of two pure units (the ground truth's
80 % rule) that the judge reads as thin, following each other and on one motion-corrected trajectory,
not vetoed (``terms.thin_handover``: the pairs the judge caps), scored with the cap off. The label: two
neurons. Features: ``FEATURES`` and the pair's summed log-odds. Out of sample: five folds by seed
batch (both sorters' sets of one recording, and a batch's two seeds, fall in one fold), pair-level
AUC and, among the pairs the judge merged, how many a P(two neurons) over 0.5 flags. With
``--judge-out-of-fold``, the end-to-end effect: every kept set of the records' seeds (drifting and
bursting) judged through the product code path by the model fitted without its fold, pooled and
batch by batch, optionally with ``JudgeParams`` changes (``--set``, as ``explain_sorted.py`` takes
them); how v45's cap and v46's block were chosen (``docs/sorted_bench_history.md``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from explain_sorted import (  # noqa: E402
    HELD_OUT_REGISTRY, KEPT, KEPT_SUFFIX, batch_lines, judge_dataset, judge_params, judged_groups, kept_name,
    read_kept,
)

from spikemerge.bench.sorted import parse_dataset_name  # noqa: E402
from spikemerge.tools.judges.handover_model import (  # noqa: E402
    LOG_ODDS_FEATURE, MODELS, feature_vector, from_sklearn, write_model,
)
from spikemerge.tools.judges.metrics import MetricsJudge  # noqa: E402
from spikemerge.tools.judges.params import DEFAULT_JUDGE_PARAMS  # noqa: E402
from spikemerge.tools.judges.terms import thin_handover  # noqa: E402

FEATURES = (
    "drift_template_similarity", "template_footprint_similarity", "template_similarity_denoised",
    "handover_similarity", "amplitude_continuity_ratio", "drift_gain_separation_um", "drift_separation_um",
    "drift_z", "drift_log_ratio", "drift_gain_log_ratio", "template_amplitude_ratio", "amplitude_handover",
    "amplitude_overlap", "distance_um", "pca_dprime",
)
"""Evidence numbers the model reads (``evidence/``), besides the pair's log-odds."""
FIT = {"max_iter": 400, "learning_rate": 0.05, "max_leaf_nodes": 31, "early_stopping": True, "random_state": 0}
"""The ensemble's size and rate (scikit-learn's HistGradientBoostingClassifier). It stops early if its
score on a tenth of the pairs, held back at ``random_state``, stops improving (deterministic); every
model up to metrics-v47 was fitted so too (scikit-learn's 'auto' turns it on above 10000 pairs),
though this note said otherwise; the shipped v48 fit ran to its 400th tree. Out of fold on the 856
kept records of seeds 185-410 (folds by batch; balanced; same-neuron pairs merged / distinct /
missed; batches meeting the bar of 113): 100 trees of 8 leaves at rate 0.1
(metrics-v46/v47) 29575 / 59 / 2049, 80; 200 of 16 at 0.05 29595 / 51 / 2029, 82; 400 of 31 at 0.05
(metrics-v48) 29526 / 40 / 2098, 88; 800 of 31 at 0.05 29511 / 40 / 2113, 88; 400 of 31 with at least 50
pairs a leaf 29532 / 42 / 2092, 87."""
FOLDS = 5


def fold_of(name: str) -> int:
    """A set's fold: by its batch (registered as an odd seed and the next), so a recording's sets (both
    sorters) and a batch's two seeds share one. Until metrics-v46 the folds paired seeds as (2k, 2k + 1),
    which put a batch's two seeds in different folds; v45's and v46's out-of-fold figures were measured so."""
    return ((parse_dataset_name(name).seed - 1) // 2) % FOLDS


def collect(paths: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Features, labels (two neurons), fold, merged-by-the-judge flags and set names of the eligible pairs."""
    judge = MetricsJudge(replace(DEFAULT_JUDGE_PARAMS, handover_model=""))
    xs, ys, folds, merged, names = [], [], [], [], []
    for path in paths:
        record = read_kept(path)
        neuron = record["truth"]["unit_to_neuron"]
        impure = {str(u) for u in record["truth"].get("impure_units", [])}
        fold = fold_of(record["name"])
        for g, _, verdict, scores in judged_groups(record, judge, "balanced"):
            part = {u: i for i, p in enumerate(verdict.merge_groups) for u in p}
            evidence = {frozenset((p["unit_a"], p["unit_b"])): p for p in record["evidence"][g]["pairs"]}
            for key, s in scores.items():
                a, b = (str(u) for u in (s.unit_a, s.unit_b))
                if not thin_handover(s):
                    continue
                if neuron.get(a) is None or neuron.get(b) is None or a in impure or b in impure:
                    continue
                xs.append(feature_vector((*FEATURES, LOG_ODDS_FEATURE), evidence[key], s.log_odds))
                ys.append(neuron[a] != neuron[b])
                folds.append(fold)
                merged.append(s.unit_a in part and part.get(s.unit_a) == part.get(s.unit_b))
                names.append(record["name"])
    return np.asarray(xs, float), np.asarray(ys, bool), np.asarray(folds), np.asarray(merged, bool), names


def fold_models(x: np.ndarray, y: np.ndarray, folds: np.ndarray, wanted: set[int]) -> dict[int, Any]:
    """The ensemble fitted without each wanted fold's pairs: one fit per fold (the fit is deterministic)
    serves both the pair-level figures and the judging."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return {fold: HistGradientBoostingClassifier(**FIT).fit(x[folds != fold], y[folds != fold])
            for fold in sorted(wanted)}


def kept_sets(paths: list[Path]) -> list[Path]:
    """Every kept record (drifting and bursting) of the seeds of ``paths``."""
    seeds = {parse_dataset_name(kept_name(p).name).seed for p in paths}
    return [p for p in sorted(KEPT.glob(f"*{KEPT_SUFFIX}")) if parse_dataset_name(kept_name(p).name).seed in seeds]


def judge_out_of_fold(sets: list[Path], fitted: Mapping[int, Any], overrides: list[str], policy: str) -> None:
    """Print how the judge scores the kept ``sets``, each judged with ``fitted[its fold]`` (the model
    fitted without its fold's pairs, written to a temporary file that ``JudgeParams.handover_model`` names)."""
    import tempfile

    from spikemerge.bench.scoring import pool_scores

    base = judge_params(overrides)
    with tempfile.TemporaryDirectory() as tmp:
        judges = {}
        for fold, model in fitted.items():
            path = write_model(from_sklearn(model, (*FEATURES, LOG_ODDS_FEATURE)), Path(tmp) / f"fold{fold}.json")
            judges[fold] = MetricsJudge(replace(base, handover_model=str(path)))
        results = []
        for path in sets:
            record = read_kept(path)
            results.append((record["name"], judge_dataset(record, judges[fold_of(record["name"])], policy, False)))
    pooled = pool_scores([result for _, result in results])
    lines = batch_lines(results, HELD_OUT_REGISTRY)
    print(f"judged out of fold ({policy}{'; ' + ', '.join(overrides) if overrides else ''}): {pooled['sets']} sets, "
          f"{pooled['tp']} same-neuron pairs merged / {pooled['wrong_merges']} distinct / {pooled['fn']} missed "
          f"(F1 {pooled['f1']:.4f}); batches meeting the bar {sum(line.endswith(': met') for line in lines)} of "
          f"{len(lines)}", flush=True)
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> int:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", type=Path, nargs="*", help=f"kept records (default {KEPT}/drift_*{KEPT_SUFFIX})")
    parser.add_argument("--out", type=Path, default=MODELS / f"{DEFAULT_JUDGE_PARAMS.handover_model}.json")
    parser.add_argument("--dry-run", action="store_true", help="print the cross-validated figures, write nothing")
    parser.add_argument("--judge-out-of-fold", action="store_true",
                        help="also judge every kept set of these seeds with its fold's model (implies --dry-run)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", dest="overrides",
                        help="with --judge-out-of-fold: a JudgeParams field for the judging (repeatable; JSON value)")
    parser.add_argument("--policy", default="balanced", help="with --judge-out-of-fold: the judge's policy")
    args = parser.parse_args(argv)
    paths = sorted(args.records or KEPT.glob(f"drift_*{KEPT_SUFFIX}"))
    if not paths:
        parser.error("no kept drifting records: pass them, or keep some with explain_sorted.py --keep")
    x, y, folds, merged, names = collect(paths)
    pair_folds = set(folds.tolist())
    if len(pair_folds) < 2:
        parser.error("the records fall in one fold: pass records of at least two batches")
    print(f"{len(paths)} records, {len(y)} pairs ({int(y.sum())} of two neurons), {int(merged.sum())} merged by the "
          f"judge without the cap ({int((merged & y).sum())} of two neurons)", flush=True)
    sets = kept_sets(paths) if args.judge_out_of_fold else []
    fitted = fold_models(x, y, folds, pair_folds | {fold_of(kept_name(path).name) for path in sets})
    p = np.zeros(len(y))
    for fold in pair_folds:
        p[folds == fold] = fitted[fold].predict_proba(x[folds == fold])[:, 1]
    flagged = p > 0.5
    cv = {"folds": FOLDS, "auc": round(float(roc_auc_score(y, p)), 4),
          "auc_merged": round(float(roc_auc_score(y[merged], p[merged])), 4),
          "merged_two_flagged": int((merged & y & flagged).sum()), "merged_two": int((merged & y).sum()),
          "merged_one_flagged": int((merged & ~y & flagged).sum()), "merged_one": int((merged & ~y).sum())}
    print(f"out of fold: AUC {cv['auc']} (merged pairs {cv['auc_merged']}); P(two) > 0.5 flags "
          f"{cv['merged_two_flagged']} of {cv['merged_two']} merged pairs of two neurons and "
          f"{cv['merged_one_flagged']} of {cv['merged_one']} of one")
    if args.judge_out_of_fold:
        judge_out_of_fold(sets, fitted, args.overrides, args.policy)
    if args.dry_run or args.judge_out_of_fold:
        return 0
    import sklearn

    model = HistGradientBoostingClassifier(**FIT).fit(x, y)
    payload = from_sklearn(model, (*FEATURES, LOG_ODDS_FEATURE))
    payload["record"] = {"fitted_on": {"records": len(paths), "first": names[0] if names else None,
                                       "last": names[-1] if names else None, "pairs": int(len(y)),
                                       "two_neurons": int(y.sum())},
                         "fit": FIT, "scikit_learn": sklearn.__version__, "cross_validated": cv}
    print(write_model(payload, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
