"""Which sorted unit is which neuron, and pair-level scores against that truth (numpy only, no MEArec)."""

from __future__ import annotations

import json
import warnings
from itertools import combinations
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..scoring import score_merges

MIN_PURITY = 0.8
"""A sorted unit is a neuron's when at least this fraction of its spikes match that neuron."""
DELTA_TIME_MS = 0.4
"""Matching window of the ground-truth comparison (SpikeInterface's default)."""
MAX_LAG_MS = 2.0
"""Largest constant offset between a sorted unit's spike times and its neuron's that is corrected."""


def best_lags(gt_trains: Mapping[Any, np.ndarray], unit_trains: Mapping[Any, np.ndarray], fs: float,
              max_lag_ms: float = MAX_LAG_MS, bin_ms: float = 0.1) -> dict[Any, tuple[Any, float, float]]:
    """Per sorted unit, the neuron and constant offset that line up most of its spikes.

    For every spike of the unit, the differences to every neuron spike within ``max_lag_ms``
    are binned (``bin_ms``); the (neuron, lag) bin with most spikes, together with its two
    neighbours, gives the lag (their weighted mean) and the fraction of the unit's spikes within it.

    Parameters
    ----------
    gt_trains, unit_trains : mapping of id -> sorted sample indices
    fs : float
        Sampling frequency (Hz).

    Returns
    -------
    dict
        unit id -> (neuron id or None, lag in ms (unit time minus neuron time), fraction of the
        unit's spikes within ±1 bin of that lag).
    """
    neurons = list(gt_trains)
    if not neurons:
        return {u: (None, 0.0, 0.0) for u in unit_trains}
    times = np.concatenate([np.asarray(gt_trains[n], dtype=np.int64) for n in neurons])
    labels = np.concatenate([np.full(len(gt_trains[n]), i) for i, n in enumerate(neurons)])
    order = np.argsort(times, kind="stable")
    times, labels = times[order], labels[order]
    max_lag = int(round(max_lag_ms * fs / 1000.0))
    bin_samples = max(1, int(round(bin_ms * fs / 1000.0)))
    n_bins = 2 * (max_lag // bin_samples) + 1
    out: dict[Any, tuple[Any, float, float]] = {}
    for unit, train in unit_trains.items():
        train = np.asarray(train, dtype=np.int64)
        if train.size == 0:
            out[unit] = (None, 0.0, 0.0)
            continue
        lo = np.searchsorted(times, train - max_lag, side="left")
        hi = np.searchsorted(times, train + max_lag, side="right")
        counts = hi - lo
        if counts.sum() == 0:
            out[unit] = (None, 0.0, 0.0)
            continue
        spike = np.repeat(np.arange(train.size), counts)
        idx = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi) if b > a])
        diff = train[spike] - times[idx]
        lab = labels[idx]
        bins = np.clip(np.round(diff / bin_samples).astype(np.int64) + n_bins // 2, 0, n_bins - 1)
        hist = np.zeros((len(neurons), n_bins))
        np.add.at(hist, (lab, bins), 1.0)
        smooth = hist.copy()
        smooth[:, 1:] += hist[:, :-1]
        smooth[:, :-1] += hist[:, 1:]
        i, b = np.unravel_index(np.argmax(smooth), smooth.shape)
        window = np.arange(max(0, b - 1), min(n_bins, b + 2))
        weights = hist[i, window]
        lag_bins = float(np.sum(weights * (window - n_bins // 2)) / max(weights.sum(), 1.0))
        out[unit] = (neurons[i], lag_bins * bin_samples * 1000.0 / fs, float(smooth[i, b] / train.size))
    return out


def assign_units(match_counts: np.ndarray, unit_spike_counts: Sequence[int], neuron_ids: Sequence,
                 unit_ids: Sequence, min_purity: float = MIN_PURITY) -> tuple[dict, dict]:
    """Which neuron each sorted unit belongs to, from the comparison's matched-spike counts.

    Parameters
    ----------
    match_counts : array (num_neurons, num_units)
        Spikes of each sorted unit matched to each neuron (``GroundTruthComparison.match_event_count``).
    unit_spike_counts : sequence of int
        Spikes per sorted unit.
    min_purity : float
        A unit is a neuron's when at least this fraction of its spikes match it; otherwise it is impure.

    Returns
    -------
    (unit_to_neuron, purity)
        unit id -> neuron id or None; unit id -> (best neuron, fraction of the unit's spikes it matches).
    """
    match_counts = np.asarray(match_counts, dtype=float).reshape(len(neuron_ids), len(unit_ids))
    unit_to_neuron: dict = {}
    purity: dict = {}
    for j, unit in enumerate(unit_ids):
        n = int(unit_spike_counts[j])
        if n == 0 or len(neuron_ids) == 0:
            unit_to_neuron[unit] = None
            purity[unit] = (None, 0.0)
            continue
        i = int(np.argmax(match_counts[:, j]))
        frac = float(match_counts[i, j] / n)
        purity[unit] = (neuron_ids[i], frac)
        unit_to_neuron[unit] = neuron_ids[i] if frac >= min_purity else None
    return unit_to_neuron, purity


def true_pairs(unit_to_neuron: Mapping[Any, Any]) -> list[list]:
    """Every pair of (pure) units of one neuron, sorted."""
    by_neuron = split_neurons(unit_to_neuron, min_units=2)
    return sorted([list(p) for units in by_neuron.values() for p in combinations(sorted(units), 2)])


def split_neurons(unit_to_neuron: Mapping[Any, Any], min_units: int = 2) -> dict[Any, list]:
    """Neuron -> its pure units, for neurons with at least ``min_units`` of them."""
    by_neuron: dict[Any, list] = {}
    for unit, neuron in unit_to_neuron.items():
        if neuron is not None:
            by_neuron.setdefault(neuron, []).append(unit)
    return {n: sorted(us) for n, us in by_neuron.items() if len(us) >= min_units}


def unit_facts(train: np.ndarray, fs: float) -> dict[str, float]:
    """Spike count and when the unit fires (first, 10th, 50th, 90th percentile, last spike; s)."""
    if len(train) == 0:
        return {"n_spikes": 0}
    t = np.asarray(train) / fs
    q10, q50, q90 = np.percentile(t, [10, 50, 90])
    return {"n_spikes": int(len(t)), "first_s": round(float(t[0]), 2), "p10_s": round(float(q10), 2),
            "median_s": round(float(q50), 2), "p90_s": round(float(q90), 2), "last_s": round(float(t[-1]), 2)}


def pair_facts(a: np.ndarray, b: np.ndarray, fs: float, lag_a_ms: float = 0.0, lag_b_ms: float = 0.0,
               window_s: float = 10.0) -> dict[str, float]:
    """How two units of one neuron relate: time overlap, shared spikes, lag between them.

    ``overlap``: fraction of ``window_s`` bins where both fire, over bins where either fires
    (0 for time fragments that hand over, near 1 for duplicates or amplitude/burst splits);
    ``shared``: fraction of the smaller unit's spikes within 0.4 ms of the other's once both are
    lined up on the neuron (a duplicate detects the same spikes twice); ``lag_ms``: offset of
    b's spike times from a's (from their offsets to the neuron).
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if len(a) == 0 or len(b) == 0:
        return {"overlap": 0.0, "shared": 0.0, "lag_ms": 0.0}
    edges = np.arange(0, max(a[-1], b[-1]) + window_s * fs + 1, window_s * fs)
    ha, _ = np.histogram(a, edges)
    hb, _ = np.histogram(b, edges)
    either = np.sum((ha > 0) | (hb > 0))
    both = np.sum((ha > 0) & (hb > 0))
    a0 = a - int(round(lag_a_ms * fs / 1000.0))
    b0 = np.sort(b - int(round(lag_b_ms * fs / 1000.0)))
    small, large = (a0, b0) if len(a0) <= len(b0) else (b0, np.sort(a0))
    idx = np.clip(np.searchsorted(large, small), 1, len(large) - 1)
    nearest = np.minimum(np.abs(large[idx] - small), np.abs(large[idx - 1] - small))
    shared = float(np.mean(nearest <= 0.0004 * fs)) if len(large) > 1 else 0.0
    return {"overlap": round(float(both / max(either, 1)), 3), "shared": round(shared, 3),
            "lag_ms": round(lag_b_ms - lag_a_ms, 3)}


def _trains(sorting) -> dict:
    return {u: sorting.get_unit_spike_train(u, segment_index=0) for u in sorting.unit_ids}


def shift_sorting(sorting, lags_samples: Mapping[Any, int]):
    """``sorting`` with each unit's spike times moved by ``-lags_samples[unit]`` (clipped to the recording)."""
    from spikeinterface.core import NumpySorting

    trains = _trains(sorting)
    shifted = {u: np.sort(t - int(lags_samples.get(u, 0))) for u, t in trains.items()}
    shifted = {u: t[t >= 0] for u, t in shifted.items()}
    return NumpySorting.from_unit_dict([shifted], sampling_frequency=sorting.sampling_frequency)


def build_truth(gt_sorting, sorting, min_purity: float = MIN_PURITY, delta_time_ms: float = DELTA_TIME_MS,
                max_lag_ms: float = MAX_LAG_MS) -> dict[str, Any]:
    """Which sorted unit is which neuron, by ``compare_sorter_to_ground_truth``.

    Each unit's spike times are first lined up with its best neuron (a constant offset of up to
    ``max_lag_ms``: sorters misalign some templates, and an offset duplicate would otherwise
    match nothing within the comparison's ``delta_time_ms``); the comparison then counts the
    matched spikes, and a unit belongs to a neuron when ``min_purity`` of its spikes match it.

    Returns
    -------
    dict
        ``unit_to_neuron`` (unit -> neuron or None), ``impure_units``, ``true_pairs``,
        ``split_neurons``, ``purity`` (unit -> [best neuron, fraction]), ``lag_ms`` (unit -> offset of
        its spike times from its neuron's, ms), ``neuron_units`` (every neuron -> its pure units),
        ``undetected_neurons`` and the comparison's settings.
    """
    from spikeinterface.comparison import compare_sorter_to_ground_truth

    fs = sorting.sampling_frequency
    lags = best_lags(_trains(gt_sorting), _trains(sorting), fs, max_lag_ms=max_lag_ms)
    lag_samples = {u: int(round(lag * fs / 1000.0)) for u, (_, lag, _) in lags.items()}
    aligned = shift_sorting(sorting, lag_samples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        comp = compare_sorter_to_ground_truth(gt_sorting, aligned, delta_time=delta_time_ms, exhaustive_gt=True)
    counts = comp.match_event_count.loc[list(gt_sorting.unit_ids), list(aligned.unit_ids)].to_numpy()
    n_spikes = [len(aligned.get_unit_spike_train(u, segment_index=0)) for u in aligned.unit_ids]
    unit_to_neuron, purity = assign_units(counts, n_spikes, list(gt_sorting.unit_ids), list(aligned.unit_ids),
                                          min_purity)
    all_units = split_neurons(unit_to_neuron, min_units=1)
    trains = _trains(sorting)
    return {
        "unit_to_neuron": {str(to_python(u)): (None if n is None else str(to_python(n))) for u, n in unit_to_neuron.items()},
        "impure_units": [to_python(u) for u, n in unit_to_neuron.items() if n is None],
        "true_pairs": [[to_python(a), to_python(b)] for a, b in true_pairs(unit_to_neuron)],
        "split_neurons": {str(to_python(n)): [to_python(u) for u in us] for n, us in split_neurons(unit_to_neuron).items()},
        "neuron_units": {str(to_python(n)): [to_python(u) for u in all_units.get(n, [])] for n in gt_sorting.unit_ids},
        "undetected_neurons": [str(to_python(n)) for n in gt_sorting.unit_ids if n not in all_units],
        "purity": {str(to_python(u)): [None if b is None else str(to_python(b)), round(f, 4)] for u, (b, f) in purity.items()},
        "lag_ms": {str(to_python(u)): round(lag, 3) for u, (_, lag, _) in lags.items()},
        "units": {str(to_python(u)): unit_facts(t, fs) for u, t in trains.items()},
        "pairs": {f"{a}-{b}": pair_facts(trains[a], trains[b], fs, lags[a][1], lags[b][1])
                  for a, b in true_pairs(unit_to_neuron)},
        "min_purity": min_purity,
        "delta_time_ms": delta_time_ms,
        "max_lag_ms": max_lag_ms,
    }


def to_python(value):
    """A numpy scalar as the plain Python value JSON writes (ids, counts); anything else as it is."""
    return value.item() if hasattr(value, "item") else value


def load_truth(path: Path) -> dict[str, Any]:
    """``truth.json`` of a dataset folder (or the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / "truth.json"
    return json.loads(path.read_text())


def _unit_key(truth: Mapping) -> Callable[[Any], str]:
    return lambda u: str(to_python(u))


def score_sorted(merges: Iterable[Sequence[Any]], truth: Mapping[str, Any]) -> dict[str, Any]:
    """Pair-level score of ``merges`` against a sorted-bench truth; pairs touching an impure unit are left out.

    Parameters
    ----------
    merges : iterable of sequences of unit ids
        Merge groups (ids as in the analyzer; compared as strings).
    truth : mapping
        A ``truth.json`` record (``unit_to_neuron`` with ``None`` for impure units).

    Returns
    -------
    dict
        ``true_pairs``, ``pairs_found`` (merged pairs between pure units), ``tp``, ``fp``, ``fn``,
        ``precision``, ``recall``, ``f1``, ``wrong_merges`` (merged pairs of two distinct neurons;
        equal to ``fp`` since impure units are left out), ``excluded_pairs`` (merged pairs
        that touch an impure unit) and ``impure_own`` / ``impure_foreign`` (``impure_merges``).
    """
    key = _unit_key(truth)
    pure = {u: n for u, n in truth["unit_to_neuron"].items() if n is not None}
    groups = [[key(u) for u in g] for g in merges]
    kept = [[u for u in g if u in pure] for g in groups]
    excluded = sum(1 for g in groups for a, b in combinations(g, 2) if a not in pure or b not in pure)
    scores = score_merges([g for g in kept if len(g) > 1], pure)
    found = {frozenset(p) for g in kept for p in combinations(g, 2)}
    n_true = sum(len(us) * (len(us) - 1) // 2 for us in split_neurons(pure, 2).values())
    return {"true_pairs": n_true, "pairs_found": len(found), "tp": scores["tp"], "fp": scores["fp"],
            "fn": scores["fn"], "precision": scores["precision"], "recall": scores["recall"], "f1": scores["f1"],
            "wrong_merges": scores["distinct_merges"], "excluded_pairs": excluded,
            **impure_merges(groups, pure, truth.get("purity") or {})}


def impure_merges(groups: Sequence[Sequence[str]], pure: Mapping[str, Any],
                  purity: Mapping[str, Sequence[Any]]) -> dict[str, int]:
    """Impure units merged with pure ones, by whether they went to the neuron most of their spikes are.

    The pair score leaves impure units out, so an impure unit merged into another neuron's units
    costs nothing there, though a curator would call it a wrong merge. ``impure_own`` counts the
    placements (:func:`impure_placements`) into the unit's best-matching neuron, ``impure_foreign``
    the others: then at most half of the unit's spikes are the group's neuron's (under the purity
    threshold, its best neuron holds the most).

    Returns
    -------
    dict
        ``impure_own`` and ``impure_foreign`` counts.
    """
    placed = impure_placements(groups, pure, purity)
    own = sum(str(best) == str(owner) for _, best, _, owner in placed)
    return {"impure_own": own, "impure_foreign": len(placed) - own}


def impure_placements(groups: Sequence[Sequence[str]], pure: Mapping[str, Any],
                      purity: Mapping[str, Sequence[Any]]) -> list[tuple[str, Any, float, Any]]:
    """Each impure unit merged with pure ones: (unit, its best-matching neuron, that neuron's share of its
    spikes, the group's neuron). A group's neuron is the one most of its pure units belong to (ties by
    id); units without a purity record, and groups with no pure unit, are left out.

    Parameters
    ----------
    groups : sequence of sequences of unit ids (as strings)
    pure : mapping
        Pure unit id -> neuron id.
    purity : mapping
        Unit id -> (best neuron id or None, fraction of the unit's spikes it matches), as ``truth.json``.
    """
    placed = []
    for group in groups:
        neurons = [pure[u] for u in group if u in pure]
        if not neurons:
            continue
        owner = max(set(neurons), key=lambda n: (neurons.count(n), str(n)))
        for unit in group:
            if unit in pure or unit not in purity or purity[unit][0] is None:
                continue
            placed.append((unit, purity[unit][0], float(purity[unit][1]), owner))
    return placed


def pair_kinds(truth: Mapping[str, Any], overlap_max: float = 0.3, shared_min: float = 0.5) -> dict[str, Any]:
    """True pairs by how the sorter split them, from ``truth['pairs']``.

    ``duplicate``: at least ``shared_min`` of the smaller unit's spikes are the other's, lined up
    (the same spikes detected twice, possibly offset); ``fragments``: the units fire in different
    periods (time overlap under ``overlap_max``; drift hand-overs); ``concurrent``: both fire at
    the same time on different spikes (amplitude or burst splits). Also the absolute lags of the
    duplicates (ms).
    """
    kinds = {"duplicate": 0, "fragments": 0, "concurrent": 0}
    lags = []
    for facts in (truth.get("pairs") or {}).values():
        if facts["shared"] >= shared_min:
            kinds["duplicate"] += 1
            lags.append(abs(facts["lag_ms"]))
        elif facts["overlap"] < overlap_max:
            kinds["fragments"] += 1
        else:
            kinds["concurrent"] += 1
    return {**kinds, "duplicate_lags_ms": sorted(round(x, 2) for x in lags)}


def summarise_truth(truth: Mapping[str, Any]) -> dict[str, Any]:
    """Units, pure/impure, true pairs, neurons split and into how many units."""
    split = truth["split_neurons"]
    return {
        "sorter": truth.get("sorter"),
        "units": len(truth["unit_to_neuron"]),
        "neurons": truth.get("num_neurons"),
        "impure_units": len(truth["impure_units"]),
        "true_pairs": len(truth["true_pairs"]),
        "split_neurons": len(split),
        "split_sizes": {n: len(us) for n, us in split.items()},
        "undetected_neurons": len(truth.get("undetected_neurons", [])),
        "pair_kinds": pair_kinds(truth),
    }
