"""Fitting the metrics judge to labelled data: examples a person gives, and the user's own recording.

``fit_weights`` turns good/bad examples (their pair evidence) into per-term weights by logistic
regression with the built-in weights as a Gaussian prior (MAP), so a handful of examples nudges
the judge where they speak and the built-in physics holds everywhere else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
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
    theta = map_logistic(params.log_odds_scale * features, labels, theta0, params.prior_precision,
                         base=params.log_odds_offset, iterations=iterations)
    weights = {k: float(v) for k, v in zip(WEIGHT_KEYS, theta)}
    return weights, {"pairs": len(data), "examples": len(examples), "good": int(labels.sum()),
                     "bad": int(len(labels) - labels.sum()), "weights": weights}


def map_logistic(x: np.ndarray, labels: np.ndarray, theta0: np.ndarray, precision: float, base: float = 0.0,
                 iterations: int = 50, tolerance: float = 1e-8) -> np.ndarray:
    """Coefficients maximising the logistic log-likelihood of ``labels`` given ``x`` (P = sigmoid(x·θ + base))
    under a Gaussian prior of ``precision`` around ``theta0`` (MAP).

    Newton's method on this convex objective, halving a step until the objective falls: a full
    step from a saturated sigmoid overshoots and can cycle between two points. The prior keeps
    the fit finite when the data are separable.
    """
    labels = np.asarray(labels, dtype=float)

    def objective(t: np.ndarray) -> float:
        z = x @ t + base
        return float(np.sum(np.logaddexp(0.0, z) - labels * z) + 0.5 * precision * np.sum((t - theta0) ** 2))

    theta = np.array(theta0, dtype=float)
    for _ in range(iterations):
        z = np.clip(x @ theta + base, -50, 50)
        prob = 1.0 / (1.0 + np.exp(-z))
        gradient = x.T @ (prob - labels) + precision * (theta - theta0)
        hessian = (x * (prob * (1 - prob))[:, None]).T @ x + precision * np.eye(theta.size)
        step = np.linalg.solve(hessian, gradient)
        current = objective(theta)
        while objective(theta - step) > current and np.max(np.abs(step)) > 1e-12:
            step = step / 2.0
        theta -= step
        if np.max(np.abs(step)) < tolerance:
            break
    return theta


__all__ = ["CalibrationParams", "DEFAULT_CALIBRATION_PARAMS", "WEIGHT_KEYS", "calibrate_recording",
           "calibration_figures", "fit_weights", "labelled_pairs", "map_logistic"]


# ---------------------------------------------------------------- calibration on the user's recording


@dataclass(frozen=True)
class CalibrationParams:
    """Every tunable number of the calibration on the user's recording, in one table."""

    max_units: int = 12
    """Best-isolated units split on purpose (the most spikes first)."""
    min_spikes: int = 300
    """A unit with fewer spikes is too small to split in two usable halves."""
    max_contamination: float = 0.1
    """Refractory contamination above which a unit may itself be two neurons: not split."""
    burst_isi_s: float = 0.015
    """A spike this soon after the previous one is a burst's later spike (the burst split)."""
    min_burst_spikes: int = 50
    """The burst split needs at least this many spikes on each side."""
    min_part_waveforms: int = 10
    """Each part needs this many sampled waveforms for shape evidence."""
    max_negatives: int = 30
    """Distinct neighbouring pairs judged at most."""
    max_distance_um: float = 50.0
    """Neighbours: unit locations at most this far apart."""
    negative_min_expected: float = 10.0
    """A negative needs this many coincidences expected in the refractory window (a powered CCG) ..."""
    negative_min_refractory_ratio: float = 0.5
    """... at least this share of them observed (no refractory dip) ..."""
    negative_max_duplicate: float = 0.05
    """... at most this share of shared spikes (not a duplicate) ..."""
    negative_max_contamination: float = 0.5
    """... and units whose own refractory contamination is at most this (the judge's
    ``contamination_cap``): then it is surely two neurons. A unit that breaks its own refractory period
    fills the pair's window by itself, which the judge excuses up to that share, so its filled window
    does not show two neurons. On 29 sorter-made sets (seeds 510-522, three sorters), of the 1745
    pairs drawable without this check, 3 were one neuron's and 385 touched a unit of no neuron; the two
    that balanced or aggressive merged each held a unit at 0.6 or 2.4. With it: 1150 pairs, 1 one
    neuron's, 66 touching an impure unit, none merged by any policy; at least 10 per set, as before."""


DEFAULT_CALIBRATION_PARAMS = CalibrationParams()

def _policy_order() -> tuple[str, ...]:
    """Every policy, from the most demanding (highest merge threshold) to the least."""
    from ...policies import POLICIES

    return tuple(sorted(POLICIES, key=lambda name: -POLICIES[name].merge_threshold))


def _split_masks(times_s: np.ndarray, amplitudes: np.ndarray, rng: np.random.Generator,
                 params: CalibrationParams) -> dict[str, np.ndarray]:
    """Masks of the first part of each artificial split of one unit (the rest is the second part)."""
    masks = {
        "random": rng.random(times_s.size) < 0.5,
        "time": times_s < np.median(times_s),
        "amplitude": np.abs(amplitudes) < np.median(np.abs(amplitudes)),
    }
    isi_before = np.diff(times_s, prepend=-np.inf)
    later = isi_before < params.burst_isi_s
    if params.min_burst_spikes <= later.sum() <= times_s.size - params.min_burst_spikes:
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


def _merges_by_policy(evidence: Mapping[str, Any], judge) -> dict[str, bool]:
    """Whether each policy would merge this pair on its own (one scoring, every policy's rule)."""
    from ...policies import get_policy
    from .terms import logit, score_pair, usable

    score = score_pair(evidence, judge.params, judge.weights)
    rules = {name: get_policy(name) for name in _policy_order()}
    return {name: usable(score, logit(rule.merge_threshold), rule.abstain_on_thin) for name, rule in rules.items()}


def _recommend(per_policy: Mapping[str, Mapping[str, int]], policy: str) -> str | None:
    """The policy this recording's checks support: ``policy`` itself unless they show a reason to move,
    or None when every policy merged a distinct neighbour.

    A merged distinct neighbour is a reason to move to a more demanding policy, and a safe policy that
    recovers more artificial splits a reason to move to a looser one. Recovering as many splits is no
    reason to tighten: halves of a clean unit are far easier than a sorter's own splits, so they cannot
    show what a demanding policy costs there. On 29 sorter-made sets (seeds 510-522, three sorters)
    conservative was suggested on 12 until 2026-12-07, on 11 only because every policy recovered
    every split: following the suggestions, pair F1 pooled 0.919; with this rule (from balanced)
    0.941, and 0.946 with ``negative_max_contamination`` too, as balanced throughout; no distinct
    pair merged in any. Among the safe policies that
    recover most, the one nearest ``policy`` is suggested; between two as near, the more demanding.
    """
    order = [name for name in _policy_order() if name in per_policy]
    safe = [name for name in order if per_policy[name]["negatives_merged"] == 0]
    if not safe:
        return None
    best = max(per_policy[name]["recovered"] for name in safe)
    candidates = [name for name in safe if per_policy[name]["recovered"] == best]
    here = order.index(policy) if policy in order else 0
    return min(candidates, key=lambda name: (abs(order.index(name) - here), order.index(name)))


def calibration_figures(calibration: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The calibration's figures without free text, for ``--json`` and the batch table (None when it
    did not run): the policy read, the recovered share of artificial splits, the distinct neighbours
    judged and merged, and the suggested policy (None when every policy merged a neighbour)."""
    if not calibration:
        return None
    negatives = calibration["negatives"]
    return {"policy": calibration["policy"], "recovered_fraction": calibration["recovered_fraction"],
            "negatives": negatives["n"], "negatives_merged": negatives["merged"],
            "recommended_policy": calibration.get("recommended_policy")}


def calibrate_recording(ctx, judge, policy: str = "balanced", seed: int = 0,
                        params: CalibrationParams = DEFAULT_CALIBRATION_PARAMS) -> dict[str, Any]:
    """How the metrics judge does on this recording's own units, split on purpose and set side by side.

    Positives: the best-isolated units (most spikes among those with refractory contamination
    below ``params.max_contamination``) split at random, in time, by amplitude and (when they
    burst) into first and later burst spikes; a judge that does not merge them back would miss
    such splits here. Negatives: pairs of distinct neighbouring units (within
    ``params.max_distance_um``, with a powered crosscorrelogram and no refractory dip, so surely
    two neurons); they are judged as they are and with the crosscorrelogram made uninformative,
    which shows whether shape and continuity alone would merge them (the thin-evidence case).
    Every pair is scored once and read under every policy, so the record also says which policy
    suits this recording (``_recommend``): ``policy`` unless it merged a distinct neighbour or a safe
    one recovers more splits.

    Artificial splits of a clean unit are easier than a sorter's own splits (identical templates
    on both sides, no drift between them), so the recovered share is an upper bound on recall;
    a merged distinct neighbour, on the other hand, is a real warning.

    Returns
    -------
    dict
        ``policy``, ``units_split``, per split kind ``{"n", "recovered"}``, the negative counts,
        ``per_policy`` (the same counts under every policy), ``recommended_policy`` and a
        one-line ``summary``.
    """
    from itertools import combinations

    from ..evidence.ccg import contamination
    from ..evidence.pairs import unit_pair_evidence

    rng = np.random.default_rng(seed)
    n_channels = ctx.templates.shape[2]
    clean = []
    for u in ctx.unit_ids:
        unit = ctx.unit(u)
        if unit.times_s.size >= params.min_spikes and \
                contamination(unit.times_s, ctx.duration_s) <= params.max_contamination:
            clean.append((unit.times_s.size, u))
    chosen = [u for _, u in sorted(clean, key=lambda x: -x[0])[:params.max_units]]
    tallies = {name: {"splits": 0, "recovered": 0, "negatives": 0, "negatives_merged": 0,
                      "negatives_merged_without_ccg": 0} for name in _policy_order()}
    positives: dict[str, dict[str, int]] = {}
    for u in chosen:
        unit = ctx.unit(u)
        for kind, mask in _split_masks(unit.times_s, unit.amplitudes, rng, params).items():
            a, b = _part(unit, mask, n_channels), _part(unit, ~mask, n_channels)
            if len(a.waveforms) < params.min_part_waveforms or len(b.waveforms) < params.min_part_waveforms:
                continue
            e = unit_pair_evidence(f"{u}a", f"{u}b", a, b, ctx.fs, ctx.duration_s, ctx.noise_levels)
            merged = _merges_by_policy(e, judge)
            row = positives.setdefault(kind, {"n": 0, "recovered": 0})
            row["n"] += 1
            row["recovered"] += int(merged[policy])
            for name in _policy_order():
                tallies[name]["splits"] += 1
                tallies[name]["recovered"] += int(merged[name])
    locations = ctx.locations
    negatives = {"n": 0, "merged": 0, "merged_without_ccg": 0}
    near = [(a, b) for a, b in combinations(ctx.unit_ids, 2)
            if np.linalg.norm(locations[ctx.index(a)] - locations[ctx.index(b)]) <= params.max_distance_um]
    rng.shuffle(near)
    for a, b in near:
        if negatives["n"] >= params.max_negatives:
            break
        e = unit_pair_evidence(a, b, ctx.unit(a), ctx.unit(b), ctx.fs, ctx.duration_s, ctx.noise_levels)
        if e["ccg_expected_refractory"] < params.negative_min_expected or \
                e["ccg_refractory_ratio"] < params.negative_min_refractory_ratio or \
                e["duplicate_fraction"] > params.negative_max_duplicate or \
                max(e["contamination_a"], e["contamination_b"]) > params.negative_max_contamination:
            continue  # not surely two neurons
        merged = _merges_by_policy(e, judge)
        blind = _merges_by_policy({**e, "ccg_expected_refractory": 0.0, "ccg_refractory_count": 0}, judge)
        negatives["n"] += 1
        negatives["merged"] += int(merged[policy])
        negatives["merged_without_ccg"] += int(blind[policy])
        for name in _policy_order():
            tallies[name]["negatives"] += 1
            tallies[name]["negatives_merged"] += int(merged[name])
            tallies[name]["negatives_merged_without_ccg"] += int(blind[name])
    total = sum(r["n"] for r in positives.values())
    recovered = sum(r["recovered"] for r in positives.values())
    share = 100.0 * recovered / total if total else float("nan")
    kinds = ", ".join(f"{k} {r['recovered']}/{r['n']}" for k, r in positives.items())
    recommended = _recommend(tallies, policy) if negatives["n"] else None
    summary = (f"On your recording the offline judge ({policy}) recovers {share:.0f} % of artificial splits ({kinds}) and "
               f"merges {negatives['merged']} of {negatives['n']} distinct neighbours "
               f"({negatives['merged_without_ccg']} if their crosscorrelograms were uninformative)")
    if not negatives["n"]:
        summary += "; no surely distinct neighbours to check the merge rate against"
    elif recommended is None:
        summary += "; every policy merges some distinct neighbours here: review merges by eye"
    elif recommended != policy:
        summary += f"; suggested policy for this recording: {recommended}"
    return {"policy": policy, "units_split": len(chosen), "positives": positives,
            "recovered_fraction": recovered / total if total else None, "negatives": negatives,
            "per_policy": tallies, "recommended_policy": recommended, "params": asdict(params),
            "summary": summary}
