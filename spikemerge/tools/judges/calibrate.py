"""Fitting the metrics judge to labelled data: examples a person gives, and the user's own recording.

``fit_weights`` turns good/bad examples (their pair evidence) into per-term weights by logistic
regression with the built-in weights as a Gaussian prior (MAP), so a handful of examples nudges
the judge where they speak and the built-in physics holds everywhere else.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .base import Example
from .params import DEFAULT_JUDGE_PARAMS, JudgeParams
from .terms import TERMS, pair_terms

WEIGHT_KEYS: tuple[str, ...] = TERMS + ("offset",)


def labelled_pairs(examples: Sequence[Example]) -> list[tuple[Mapping[str, Any], int]]:
    """(pair evidence, 1 for one neuron / 0 for two) from examples.

    A good example says its units are one neuron: every pair is a 1. A bad example says they
    should not merge: every pair is a 0.
    """
    out = []
    for example in examples:
        label = 1 if example.label == "good" else 0
        for pair in example.evidence.get("pairs", []) if example.evidence else []:
            out.append((pair, label))
    return out


def fit_weights(
    examples: Sequence[Example],
    params: JudgeParams = DEFAULT_JUDGE_PARAMS,
    prior: Mapping[str, float] | None = None,
    policy: str = "balanced",
    iterations: int = 50,
) -> tuple[dict[str, float], dict[str, Any]]:
    """MAP weights of the log-odds terms given labelled examples.

    The model is ``P(one neuron) = sigmoid(scale · (Σ_k w_k·term_k + offset) + base_offset)``
    with a Gaussian prior of precision ``params.prior_precision`` centred on the built-in
    weights (1 per term, offset 0, or ``prior``). Newton's method on this convex objective
    converges in a few steps. With no labelled pair the prior comes back unchanged.

    Returns
    -------
    weights : dict
        ``{term: weight, "offset": value}``.
    record : dict
        Counts and the moved weights, for the run record.
    """
    prior = {k: float((prior or {}).get(k, 0.0 if k == "offset" else 1.0)) for k in WEIGHT_KEYS}
    data = labelled_pairs(examples)
    theta0 = np.array([prior[k] for k in WEIGHT_KEYS])
    if not data:
        return dict(prior), {"pairs": 0, "examples": len(examples), "weights": dict(prior)}
    features = np.array([[pair_terms(e, params).terms[k] for k in TERMS] + [1.0] for e, _ in data])
    labels = np.array([y for _, y in data], dtype=float)
    x = params.log_odds_scale * features
    base = params.log_odds_offset
    precision = params.prior_precision
    def objective(t: np.ndarray) -> float:
        z = x @ t + base
        return float(np.sum(np.logaddexp(0.0, z) - labels * z) + 0.5 * precision * np.sum((t - theta0) ** 2))

    theta = theta0.copy()
    for _ in range(iterations):
        z = np.clip(x @ theta + base, -50, 50)
        prob = 1.0 / (1.0 + np.exp(-z))
        gradient = x.T @ (prob - labels) + precision * (theta - theta0)
        hessian = (x * (prob * (1 - prob))[:, None]).T @ x + precision * np.eye(theta.size)
        step = np.linalg.solve(hessian, gradient)
        # halve the Newton step until the objective falls: a full step from a saturated
        # sigmoid overshoots and can cycle between two points
        current = objective(theta)
        while objective(theta - step) > current and np.max(np.abs(step)) > 1e-12:
            step = step / 2.0
        theta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    weights = {k: float(v) for k, v in zip(WEIGHT_KEYS, theta)}
    return weights, {"pairs": len(data), "examples": len(examples), "good": int(labels.sum()),
                     "bad": int(len(labels) - labels.sum()), "weights": weights}


__all__ = ["WEIGHT_KEYS", "calibrate_recording", "fit_weights", "labelled_pairs"]


# ---------------------------------------------------------------- calibration on the user's recording


def _split_masks(times_s: np.ndarray, amplitudes: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Masks of the first part of each artificial split of one unit (the rest is the second part)."""
    masks = {
        "random": rng.random(times_s.size) < 0.5,
        "time": times_s < np.median(times_s),
        "amplitude": np.abs(amplitudes) < np.median(np.abs(amplitudes)),
    }
    isi_before = np.diff(times_s, prepend=-np.inf)
    later = isi_before < 0.015  # a spike within 15 ms of the previous one: inside a burst
    if 50 <= later.sum() <= times_s.size - 50:
        masks["burst"] = ~later
    return masks


def _part(unit, keep: np.ndarray, channels_total: int):
    """UnitArrays of the spikes of ``unit`` selected by ``keep`` (its sampled waveforms follow them)."""
    from ..evidence.pairs import UnitArrays

    times = unit.times_s[keep]
    if unit.waveform_times_s is not None and len(unit.waveforms):
        chosen = np.isin(unit.waveform_times_s, times)
        waveforms = unit.waveforms[chosen]
        waveform_times = unit.waveform_times_s[chosen]
    else:
        waveforms, waveform_times = unit.waveforms, None
    template = np.zeros((unit.template.shape[0], channels_total))
    if len(waveforms):
        template[:, unit.channels] = waveforms.mean(axis=0)
    return UnitArrays(times_s=times, amplitudes=unit.amplitudes[keep], waveforms=waveforms, channels=unit.channels,
                      template=template, location=unit.location, main_channel=unit.main_channel,
                      waveform_times_s=waveform_times)


def _merges(evidence: Mapping[str, Any], judge, policy: str) -> tuple[bool, float]:
    from ...policies import get_policy
    from .terms import logit, score_pair

    rule = get_policy(policy)
    score = score_pair(evidence, judge.params, judge.weights)
    usable = score.log_odds >= logit(rule.merge_threshold) and not score.veto and \
        not (rule.abstain_on_thin and score.thin)
    return usable, score.probability


def calibrate_recording(ctx, judge, policy: str = "balanced", seed: int = 0, max_units: int = 12,
                        max_negatives: int = 30, min_spikes: int = 300, max_contamination: float = 0.1,
                        max_distance_um: float = 50.0) -> dict[str, Any]:
    """How the metrics judge does on this recording's own units, split on purpose and set side by side.

    Positives: the best-isolated units (most spikes among those with refractory contamination
    below ``max_contamination``) split at random, in time, by amplitude and (when they burst)
    into first and later burst spikes; a judge that does not merge them back would miss such
    splits here. Negatives: pairs of distinct neighbouring units (within ``max_distance_um``,
    with a powered crosscorrelogram and no refractory dip, so surely two neurons); they are
    judged as they are and with the crosscorrelogram made uninformative, which shows whether
    shape and continuity alone would merge them (the thin-evidence case).

    Returns
    -------
    dict
        Per split kind ``{"n", "recovered"}``, the negative counts and a one-line ``summary``.
    """
    from itertools import combinations

    from ..evidence.ccg import contamination
    from ..evidence.pairs import unit_pair_evidence

    rng = np.random.default_rng(seed)
    n_channels = ctx.templates.shape[2]
    clean = []
    for u in ctx.unit_ids:
        unit = ctx.unit(u)
        if unit.times_s.size >= min_spikes and contamination(unit.times_s, ctx.duration_s) <= max_contamination:
            clean.append((unit.times_s.size, u))
    chosen = [u for _, u in sorted(clean, key=lambda x: -x[0])[:max_units]]
    positives: dict[str, dict[str, int]] = {}
    for u in chosen:
        unit = ctx.unit(u)
        for kind, mask in _split_masks(unit.times_s, unit.amplitudes, rng).items():
            a, b = _part(unit, mask, n_channels), _part(unit, ~mask, n_channels)
            if len(a.waveforms) < 10 or len(b.waveforms) < 10:
                continue
            e = unit_pair_evidence(f"{u}a", f"{u}b", a, b, ctx.fs, ctx.duration_s, ctx.noise_levels)
            merged, _ = _merges(e, judge, policy)
            row = positives.setdefault(kind, {"n": 0, "recovered": 0})
            row["n"] += 1
            row["recovered"] += int(merged)
    locations = ctx.locations
    negatives = {"n": 0, "merged": 0, "merged_without_ccg": 0}
    near = [(a, b) for a, b in combinations(ctx.unit_ids, 2)
            if np.linalg.norm(locations[ctx.index(a)] - locations[ctx.index(b)]) <= max_distance_um]
    rng.shuffle(near)
    for a, b in near:
        if negatives["n"] >= max_negatives:
            break
        e = unit_pair_evidence(a, b, ctx.unit(a), ctx.unit(b), ctx.fs, ctx.duration_s, ctx.noise_levels)
        if e["ccg_expected_refractory"] < 10 or e["ccg_refractory_ratio"] < 0.5 or e["duplicate_fraction"] > 0.05:
            continue  # not surely two neurons
        negatives["n"] += 1
        negatives["merged"] += int(_merges(e, judge, policy)[0])
        blind = {**e, "ccg_expected_refractory": 0.0, "ccg_refractory_count": 0}
        negatives["merged_without_ccg"] += int(_merges(blind, judge, policy)[0])
    total = sum(r["n"] for r in positives.values())
    recovered = sum(r["recovered"] for r in positives.values())
    share = 100.0 * recovered / total if total else float("nan")
    kinds = ", ".join(f"{k} {r['recovered']}/{r['n']}" for k, r in positives.items())
    summary = (f"On your recording the judge ({policy}) recovers {share:.0f} % of artificial splits ({kinds}) and "
               f"merges {negatives['merged']} of {negatives['n']} distinct neighbours "
               f"({negatives['merged_without_ccg']} if their crosscorrelograms were uninformative)")
    return {"policy": policy, "units_split": len(chosen), "positives": positives,
            "recovered_fraction": recovered / total if total else None, "negatives": negatives, "summary": summary}
