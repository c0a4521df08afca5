"""Scoring merges against ground truth: pair-level and SpikeInterface's unit-level counts."""

from __future__ import annotations

from itertools import combinations
from typing import Any, Iterable, Mapping, Sequence

WELL_DETECTED_SCORE = 0.8
REDUNDANT_SCORE = 0.2
OVERMERGED_SCORE = 0.2
MATCH_SCORE = 0.5
"""Agreement thresholds: SpikeInterface's ``GroundTruthComparison`` defaults, as its merge benchmark uses them."""


def merged_pairs(groups: Iterable[Sequence[Any]]) -> set[frozenset]:
    """Every unordered pair of units that ends up in one merged unit.

    Parameters
    ----------
    groups : iterable of sequences of unit ids
        Merge groups.

    Returns
    -------
    set of frozenset
        One two-element frozenset per pair of units in a common group.
    """
    return {frozenset(p) for g in groups for p in combinations(g, 2)}


def score_merges(predicted: Iterable[Sequence[Any]], neuron_of_unit: Mapping[Any, Any]) -> dict[str, float]:
    """Pair-level precision, recall and F1 of ``predicted`` merge groups.

    A true pair is two sorted units of one neuron; ``distinct_merges`` counts predicted pairs
    of two different neurons (the error a curator must not make). With nothing to find and
    nothing predicted, precision, recall and F1 are 1; with nothing to find and something
    predicted, precision and F1 are 0 (recall stays 1: nothing was missed).

    Parameters
    ----------
    predicted : iterable of sequences of unit ids
        The merge groups a method proposes (groups of one unit are ignored).
    neuron_of_unit : mapping
        Sorted unit id -> true neuron id.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1``, ``tp``, ``fp``, ``fn``, ``distinct_merges``.
    """
    by_neuron: dict[Any, list] = {}
    for unit, neuron in neuron_of_unit.items():
        by_neuron.setdefault(neuron, []).append(unit)
    truth = merged_pairs(by_neuron.values())
    guessed = merged_pairs(predicted)
    tp = len(truth & guessed)
    fp = len(guessed - truth)
    fn = len(truth - guessed)
    precision = tp / (tp + fp) if guessed else 1.0
    recall = tp / (tp + fn) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn,
            "distinct_merges": fp}


def pool_scores(scores: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Several sets' scores as one: pair counts and wrong merges summed, then precision, recall and F1 of the sums.

    A few small sets' mean F1 weighs a set of 4 pairs like one of 100; the sums do not.

    Parameters
    ----------
    scores : iterable of mappings
        Per-set scores with ``tp``, ``fp``, ``fn`` and ``wrong_merges`` (as ``score_sorted`` gives).

    Returns
    -------
    dict
        ``sets``, ``tp``, ``fp``, ``fn``, ``precision``, ``recall``, ``f1``, ``wrong_merges``, and
        ``impure_own`` / ``impure_foreign`` summed when every set has them; precision and recall
        are 1 when nothing was merged or nothing was to be found.
    """
    scores = list(scores)
    tp, fp, fn = (sum(s[k] for s in scores) for k in ("tp", "fp", "fn"))
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    impure = {k: sum(s[k] for s in scores) for k in ("impure_own", "impure_foreign")
              if scores and all(k in s for s in scores)}
    return {"sets": len(scores), "tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1,
            "wrong_merges": sum(s["wrong_merges"] for s in scores), **impure}


def unit_counts(gt_sorting, sorting, match_score: float = MATCH_SCORE) -> dict[str, int]:
    """SpikeInterface's benchmark unit counts of ``sorting`` against ``gt_sorting``.

    The comparison is ``compare_sorter_to_ground_truth(gt_sorting, sorting, exhaustive_gt=True)``,
    as in SpikeInterface's ``MergingBenchmark``; the counts are those of its
    ``get_count_units``. A split neuron left unmerged shows as ``redundant`` units (each part
    agrees with the neuron, only one is its best match); a wrong merge of two neurons as an
    ``overmerged`` unit (agreement above 0.2 with more than one neuron).

    Parameters
    ----------
    gt_sorting : BaseSorting
        One unit per true neuron.
    sorting : BaseSorting
        The curated sorting.
    match_score : float
        Minimum agreement for a match (0.5, SpikeInterface's default).

    Returns
    -------
    dict
        ``num_gt``, ``num_sorter``, ``num_well_detected``, ``num_redundant``, ``num_overmerged``,
        ``num_false_positive``, ``num_bad``.
    """
    import warnings

    from spikeinterface.comparison import compare_sorter_to_ground_truth

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        comp = compare_sorter_to_ground_truth(
            gt_sorting, sorting, exhaustive_gt=True, match_score=match_score,
            well_detected_score=WELL_DETECTED_SCORE, redundant_score=REDUNDANT_SCORE,
            overmerged_score=OVERMERGED_SCORE,
        )
        return {
            "num_gt": len(gt_sorting.unit_ids),
            "num_sorter": len(sorting.unit_ids),
            "num_well_detected": comp.count_well_detected_units(WELL_DETECTED_SCORE),
            "num_redundant": comp.count_redundant_units(REDUNDANT_SCORE),
            "num_overmerged": comp.count_overmerged_units(OVERMERGED_SCORE),
            "num_false_positive": comp.count_false_positive_units(REDUNDANT_SCORE),
            "num_bad": comp.count_bad_units(),
        }
