"""Pair-level scoring of merges against ground truth."""

from __future__ import annotations

from itertools import combinations
from typing import Any, Iterable, Mapping, Sequence


def merged_pairs(groups: Iterable[Sequence[Any]]) -> set[frozenset]:
    """Every unordered pair of units that ends up in one merged unit."""
    return {frozenset(p) for g in groups for p in combinations(g, 2)}


def score_merges(predicted: Iterable[Sequence[Any]], neuron_of_unit: Mapping[Any, Any]) -> dict[str, float]:
    """Pair-level precision, recall and F1 of ``predicted`` merge groups.

    A true pair is two sorted units of one neuron; ``distinct_merges`` counts predicted pairs
    of two different neurons (the error a curator must not make). With nothing to find and
    nothing predicted, precision, recall and F1 are 1.
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
