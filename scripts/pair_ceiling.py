"""How far any rule on a pair's own numbers could go in telling the judge's wrong merges from its right ones.

    python scripts/pair_ceiling.py scripts/dev_evidence/*.json.xz                       # thin, sequential merged pairs
    python scripts/pair_ceiling.py scripts/dev_evidence/*.json.xz --kind merged         # every merged pair
    python scripts/pair_ceiling.py scripts/dev_evidence/*.json.xz --set FIELD=VALUE     # under another JudgeParams

Before writing one more rule for a kind of wrong merge, ask whether the numbers a kept record
holds for each pair can separate that kind at all. This judges the kept records as
``explain_sorted.py`` does, takes the merged pairs of one kind with a truth (same neuron or two),
and trains a flexible classifier (gradient-boosted trees, balanced classes) on the pair's evidence
numbers, its terms and log-odds, scored out of fold with the folds split by held-out batch (a batch's
sets are never both trained and tested on). It prints, for catching the k
most suspect distinct pairs, how many same-neuron pairs the same cut would flag. A hand-written
rule on these numbers is unlikely to do better than this out-of-fold ceiling; a short ceiling says
the evidence itself must change (new numbers from the recording), not the judge. A development
tool for kept records only (they carry the truth); scikit-learn comes with spikemerge.

Its ceiling is that of a classifier that sees the merged pairs only (29 of two neurons among 9028 at
v40). Trained on every thin drift hand-over the judge reads, merged or not (thousands of two
neurons), the same kind of numbers told the wrong merges far better out of fold: that is the judge's
thin hand-over model (``scripts/fit_handover_model.py``, metrics-v45).
"""

from __future__ import annotations

import argparse
import sys
from itertools import combinations
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from explain_sorted import (  # noqa: E402
    HELD_OUT_REGISTRY, KEPT_SUFFIX, judge_params, judged_groups, kept_name, read_kept,
)

from spikemerge.bench.heldout import held_out_error, load_batches  # noqa: E402
from spikemerge.bench.sorted import parse_dataset_name  # noqa: E402

EVIDENCE_FIELDS = ("template_similarity", "template_similarity_denoised", "distance_um", "presence_overlap",
                   "amplitude_handover", "handover_similarity", "handover_gap_fraction", "drift_z",
                   "drift_separation_um", "drift_tolerance_um", "drift_template_similarity", "drift_turns",
                   "ccg_expected_refractory", "ccg_refractory_count", "template_footprint_similarity",
                   "template_amplitude_ratio", "continuity_ratio", "amplitude_continuity_ratio")
"""The pair numbers given to the classifier, beside the judge's terms, log-odds and the smaller unit's size."""
KINDS = {
    "thin-sequential": lambda s: s.thin and s.sequential,
    "powered-concurrent": lambda s: not s.thin and not s.sequential and not s.duplicate,
    "merged": lambda s: True,
}
CATCHES = (1, 2, 3, 5, 10, 15, 20)


def merged_pairs(paths: list[Path], judge, policy: str, kind) -> tuple[list[list[float]], list[bool], list[int]]:
    """Features, truth (two neurons?) and seed of every merged pair of ``kind`` with a truth."""
    from spikemerge.tools.judges.terms import TERMS

    features, distinct, seeds = [], [], []
    for path in paths:
        record = read_kept(path)
        neuron = record["truth"]["unit_to_neuron"]
        seed = parse_dataset_name(record["name"]).seed
        for g, _, verdict, scores in judged_groups(record, judge, policy):
            merged = {frozenset(p) for part in verdict.merge_groups for p in combinations(part, 2)}
            for e in record["evidence"][g]["pairs"]:
                key = frozenset((e["unit_a"], e["unit_b"]))
                na, nb = neuron.get(str(e["unit_a"])), neuron.get(str(e["unit_b"]))
                score = scores[key]
                if key not in merged or na is None or nb is None or not kind(score):
                    continue
                row = [np.nan if e.get(f) is None else float(e[f]) for f in EVIDENCE_FIELDS]
                row += [score.terms.get(t, 0.0) for t in TERMS] + [score.log_odds]
                row.append(np.log(max(1.0, min(e.get("num_spikes_a") or 1, e.get("num_spikes_b") or 1))))
                features.append(row)
                distinct.append(na != nb)
                seeds.append(seed)
    return features, distinct, seeds


def batches_of(seeds: np.ndarray) -> np.ndarray:
    """The held-out batch of each seed, as the registry groups them (a seed outside it is its own batch)."""
    batch_of = {seed: batch.name for batch in load_batches(HELD_OUT_REGISTRY).values() for seed in batch.seeds}
    return np.array([batch_of.get(int(seed), str(seed)) for seed in seeds])


def out_of_fold(features: np.ndarray, distinct: np.ndarray, batch: np.ndarray, folds: int) -> np.ndarray:
    """Each pair's out-of-fold probability of being two neurons (folds split by batch)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import GroupKFold

    suspect = np.zeros(len(distinct))
    for train, test in GroupKFold(n_splits=folds).split(features, distinct, batch):
        model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_depth=3,
                                               class_weight="balanced", random_state=0)
        model.fit(features[train], distinct[train])
        suspect[test] = model.predict_proba(features[test])[:, 1]
    return suspect


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", type=Path, nargs="+", help=f"kept records (*{KEPT_SUFFIX})")
    parser.add_argument("--kind", choices=sorted(KINDS), default="thin-sequential")
    parser.add_argument("--policy", default="balanced")
    parser.add_argument("--folds", type=int, default=8)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", dest="overrides",
                        help="a JudgeParams field for this call (repeatable; the value is JSON)")
    parser.add_argument("--peek-held-out", action="store_true",
                        help="read records of a held-out batch that spikemerge has not scored yet")
    args = parser.parse_args(argv)
    if any(not p.name.endswith(KEPT_SUFFIX) for p in args.records):
        parser.error(f"kept records only (*{KEPT_SUFFIX}): they carry the truth the classifier learns from")
    refused = held_out_error([kept_name(p) for p in args.records], HELD_OUT_REGISTRY)
    if refused and not args.peek_held_out:
        parser.error(refused)

    from spikemerge.tools.judges.metrics import MetricsJudge

    rows, distinct, seeds = merged_pairs(args.records, MetricsJudge(judge_params(args.overrides)), args.policy,
                                         KINDS[args.kind])
    features, distinct, seeds = np.array(rows, float), np.array(distinct, bool), np.array(seeds)
    if len(features):
        # a number no pair of this kind has (a hand-over's, for units firing together) teaches nothing
        features = features[:, ~np.all(np.isnan(features), axis=0)]
    print(f"{args.kind} pairs merged ({args.policy}): {len(distinct)}, of two neurons {int(distinct.sum())}, "
          f"from {len(set(seeds))} seeds")
    if distinct.sum() < 2 or (~distinct).sum() < 2:
        print("too few pairs of one kind to train on")
        return 0
    batch = batches_of(seeds)
    suspect = out_of_fold(features, distinct, batch, min(args.folds, len(set(batch))))
    ranked = np.sort(suspect[distinct])[::-1]
    for k in (k for k in CATCHES if k <= distinct.sum()):
        flagged = int(((suspect >= ranked[k - 1]) & ~distinct).sum())
        print(f"catching the {k:>2} most suspect distinct pairs flags {flagged} of {int((~distinct).sum())} "
              "same-neuron pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
