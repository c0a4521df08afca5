"""Crosscorrelogram evidence of a pair: refractory dip, duplicate peak, bursts, merged contamination.

All functions take sorted spike times in seconds (plain numpy arrays), so they are tested
without any recording. The refractory logic of DESIGN.md: two units of one neuron share its
refractory period, so their CCG is depleted near the lag at which their spike times are
aligned; a flat CCG means two neurons; a sharp peak at that lag is the same spikes detected
twice. Real sorters misalign one neuron's units by up to ~2 ms, so the window is centred on
the template lag, not on zero: an offset duplicate must not read as refractory violations.
"""

from __future__ import annotations


import numpy as np
from scipy.stats import binom, poisson

from .params import DEFAULT_EVIDENCE_PARAMS, EvidenceParams


def time_differences(times_a: np.ndarray, times_b: np.ndarray, window_s: float) -> np.ndarray:
    """All ``t_b - t_a`` within ``±window_s`` (both trains sorted, in seconds)."""
    if times_a.size == 0 or times_b.size == 0:
        return np.empty(0)
    lo = np.searchsorted(times_b, times_a - window_s, side="left")
    hi = np.searchsorted(times_b, times_a + window_s, side="right")
    counts = hi - lo
    total = int(counts.sum())
    if total == 0:
        return np.empty(0)
    starts = np.repeat(lo - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    b_index = starts + np.arange(total)
    return times_b[b_index] - np.repeat(times_a, counts)


def correlogram(
    times_a: np.ndarray, times_b: np.ndarray, window_ms: float = 50.0, bin_ms: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Counts of ``t_b - t_a`` per bin over ``±window_ms``; for an ACG pass the same train twice.

    Returns ``(counts, edges_ms)``; for an autocorrelogram the zero-lag self pairs are removed.
    """
    diffs_ms = time_differences(times_a, times_b, window_ms / 1000.0) * 1000.0
    if times_a is times_b:
        diffs_ms = diffs_ms[diffs_ms != 0]
    n_bins = int(round(2 * window_ms / bin_ms))
    edges = np.linspace(-window_ms, window_ms, n_bins + 1)
    counts, _ = np.histogram(diffs_ms, bins=edges)
    return counts, edges


def _densest_window(diffs_ms: np.ndarray, centres: np.ndarray, half_width: float) -> tuple[float, int]:
    """The centre among ``centres`` whose ``±half_width`` window holds the most differences."""
    ordered = np.sort(diffs_ms)
    counts = np.searchsorted(ordered, centres + half_width, side="right") - np.searchsorted(
        ordered, centres - half_width, side="left")
    if not counts.size:
        return 0.0, 0
    ties = np.flatnonzero(counts == counts.max())
    best = int(ties[len(ties) // 2])  # the middle of a plateau of equal counts
    return float(centres[best]), int(counts[best])


def _duplicate_lag(raw_ms: np.ndarray, lag_ms: float, p: EvidenceParams) -> float:
    """The template lag, unless the CCG holds a duplicate peak elsewhere within ``±max_lag_ms``.

    A sorter can misalign a duplicate's template so far that the spike cannot be matched
    within the template window; the CCG still shows the same spikes at one lag. A peak is
    taken when it is beyond chance after the search over every window (Bonferroni) and holds at
    least ``duplicate_min_count`` coincidences.
    """
    lo, hi = p.shoulder_ms
    absd = np.abs(raw_ms)
    rate = np.count_nonzero((absd >= lo) & (absd < hi)) / (2.0 * (hi - lo))
    expected = max(rate * 2.0 * p.duplicate_ms, 1e-9)
    near = raw_ms[np.abs(raw_ms - lag_ms) <= p.duplicate_search_ms + p.duplicate_ms]
    step = p.window_step_ms
    here = np.arange(lag_ms - p.duplicate_search_ms, lag_ms + p.duplicate_search_ms + step / 2, step)
    local = _densest_window(near, here, p.duplicate_ms)[1]
    local_peak = poisson.sf(local - 1, expected) < p.duplicate_p
    centres = np.arange(-p.max_lag_ms, p.max_lag_ms + step / 2, step)
    centre, count = _densest_window(raw_ms[absd <= p.max_lag_ms + p.duplicate_ms], centres, p.duplicate_ms)
    elsewhere = poisson.sf(count - 1, expected) < p.duplicate_p / centres.size and count >= p.duplicate_min_count
    if elsewhere and abs(centre - lag_ms) > p.duplicate_search_ms + p.duplicate_ms:
        # two peaks: the template lag's window may hold a few of a bursting cell's or a
        # synchronous partner's coincidences beside the real duplicate peak; the peak elsewhere
        # wins when it holds more coincidences than the template lag's window by more than
        # chance (the two counts split evenly under the null: one-sided binomial test)
        if not local_peak or binom.sf(count - 1, count + local, 0.5) < p.duplicate_p:
            return float(centre)
    return lag_ms


def _more_peaks(diffs: np.ndarray, centre: float, censor_ms: float, rate_per_ms: float,
                p: EvidenceParams) -> list[float]:
    """Where, beside the duplicate peak at ``centre``, the refractory window holds further copy peaks
    (``p.duplicate_more_peaks`` at most): the densest ``±duplicate_ms`` window left outside every censored
    one, while it beats chance after the search over the window's positions (Bonferroni) and holds
    at least ``p.duplicate_more_min_count`` coincidences."""
    step = p.window_step_ms
    centres = np.arange(-p.refractory_ms, p.refractory_ms + step / 2, step)
    expected = max(rate_per_ms * 2.0 * p.duplicate_ms, 1e-9)
    found: list[float] = []
    left = diffs[np.abs(diffs) <= p.refractory_ms + p.duplicate_ms]
    left = left[np.abs(left - centre) > censor_ms]
    while len(found) < p.duplicate_more_peaks and left.size:
        at, count = _densest_window(left, centres, p.duplicate_ms)
        if count < p.duplicate_more_min_count or poisson.sf(count - 1, expected) >= p.duplicate_p / centres.size:
            break
        found.append(at)
        left = left[np.abs(left - at) > censor_ms]
    return found


def _redetected(absd: np.ndarray, p: EvidenceParams) -> bool:
    """Whether the ring just outside the duplicate window (to ``refractory_inner_ms``) holds more
    coincidences than the rest of the refractory window by more than chance (one-sided binomial,
    the two parts' shares by width): a few spikes detected twice, too few for a duplicate peak."""
    if p.refractory_inner_ms <= p.duplicate_ms:
        return False
    inner = int(np.count_nonzero((absd > p.duplicate_ms) & (absd <= p.refractory_inner_ms)))
    outer = int(np.count_nonzero((absd > p.refractory_inner_ms) & (absd <= p.refractory_ms)))
    share = (p.refractory_inner_ms - p.duplicate_ms) / (p.refractory_ms - p.duplicate_ms)
    return inner > 0 and binom.sf(inner - 1, inner + outer, share) < p.redetection_p


def _covered_ms(centres: list[float], half_width: float, limit_ms: float) -> float:
    """How much of ``[-limit_ms, limit_ms]`` the windows ``centre ± half_width`` cover together."""
    spans = sorted((max(c - half_width, -limit_ms), min(c + half_width, limit_ms)) for c in centres)
    covered, reach = 0.0, -limit_ms
    for lo, hi in spans:
        lo = max(lo, reach)
        if hi > lo:
            covered += hi - lo
            reach = hi
    return covered


def ccg_evidence(
    times_a: np.ndarray, times_b: np.ndarray, lag_ms: float = 0.0, params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS
) -> dict[str, float]:
    """Refractory dip, duplicate peak and burst asymmetry of one pair, in the aligned frame.

    ``lag_ms`` is the offset of B's spike times against A's implied by the templates
    (``t_b ≈ t_a + lag`` for the same spike). Counts are taken around that lag.

    Returns
    -------
    dict
        ``ccg_expected_refractory``: coincidences two independent trains would put in the
        refractory window (from the CCG shoulders); ``ccg_refractory_count`` the observed ones
        (the duplicate window left out; ``duplicate_censor_ms`` around a significant duplicate
        peak, or ``refractory_inner_ms`` around the lag when that ring holds spikes detected twice
        without a peak); ``ccg_depletion_p`` the Poisson chance of so few by
        accident. ``duplicate_count``/``duplicate_fraction`` (of the smaller unit) and
        ``duplicate_excess`` (over chance) describe the peak at the lag;
        ``duplicate_lag_ms`` is where it sits; ``duplicate_more_peaks`` counts further copy peaks
        censored beside it (``EvidenceParams.duplicate_more_peaks``) and ``duplicate_reach_ms`` is
        the largest lag of a censored peak, which a merge's censor window must reach (0 without a
        peak). ``burst_forward``/``burst_backward`` count
        pairs just outside the refractory window on either side, ``burst_asymmetry_p`` the
        binomial chance of an imbalance this large between them.
    """
    p = params
    lo, hi = p.shoulder_ms
    raw = time_differences(times_a, times_b, (hi + p.max_lag_ms) / 1000.0) * 1000.0
    lag_ms = _duplicate_lag(raw, lag_ms, p)
    diffs = raw - lag_ms
    diffs = diffs[np.abs(diffs) <= hi]
    absd = np.abs(diffs)
    shoulder = np.count_nonzero((absd >= lo) & (absd < hi))
    rate_per_ms = shoulder / (2.0 * (hi - lo))
    # the duplicate window: centred on the template lag, free to move a little to the densest spot
    step = p.window_step_ms
    centres = np.arange(-p.duplicate_search_ms, p.duplicate_search_ms + step / 2, step)
    centre, close = _densest_window(diffs[absd <= p.duplicate_search_ms + p.duplicate_ms], centres, p.duplicate_ms)
    peak = poisson.sf(close - 1, max(rate_per_ms * 2.0 * p.duplicate_ms, 1e-9)) <= p.duplicate_p
    if not peak:
        # no significant peak: keep the window on the template lag, so picking the densest
        # of several windows does not bias the refractory count of two independent trains
        centre = 0.0
        close = int(np.count_nonzero(absd <= p.duplicate_ms))
    # copies of one spike jitter beyond the duplicate window, around a peak and, without one, in a
    # ring that holds a few spikes detected twice: those surroundings are not refractory evidence
    if peak:
        censor_ms = max(p.duplicate_censor_ms, p.duplicate_ms)
    else:
        censor_ms = p.refractory_inner_ms if _redetected(absd, p) else p.duplicate_ms
    censored_at = [centre] + (_more_peaks(diffs, centre, censor_ms, rate_per_ms, p) if peak else [])
    censored = np.zeros(diffs.shape, dtype=bool)
    for at in censored_at:
        censored |= np.abs(diffs - at) <= censor_ms
    dup_width = 2.0 * p.duplicate_ms
    refractory_width = 2.0 * p.refractory_ms - _covered_ms(censored_at, censor_ms, p.refractory_ms)
    observed = int(np.count_nonzero((absd <= p.refractory_ms) & ~censored))
    expected = rate_per_ms * refractory_width
    expected_close = rate_per_ms * dup_width
    smaller = max(1, min(times_a.size, times_b.size))
    forward = int(np.count_nonzero((diffs > p.refractory_ms) & (diffs <= p.burst_ms)))
    backward = int(np.count_nonzero((diffs < -p.refractory_ms) & (diffs >= -p.burst_ms)))
    burst_expected = rate_per_ms * (p.burst_ms - p.refractory_ms)
    n_side = forward + backward
    asym_p = float(2 * binom.cdf(min(forward, backward), n_side, 0.5)) if n_side else 1.0
    return {
        "ccg_lag_ms": float(lag_ms),
        "ccg_refractory_count": observed,
        "ccg_expected_refractory": float(expected),
        "ccg_refractory_ratio": float(observed / expected) if expected > 0 else float("nan"),
        "ccg_depletion_p": float(poisson.cdf(observed, expected)) if expected > 0 else 1.0,
        "duplicate_count": int(close),
        "duplicate_lag_ms": float(lag_ms + centre),
        "duplicate_fraction": float(close / smaller),
        "duplicate_excess": float(close / expected_close) if expected_close > 0 else float("inf") if close else 0.0,
        "duplicate_more_peaks": len(censored_at) - 1,
        "duplicate_reach_ms": float(max(abs(lag_ms + at) for at in censored_at)) if peak else 0.0,
        "burst_forward": forward,
        "burst_backward": backward,
        "burst_expected": float(burst_expected),
        "burst_asymmetry_p": min(1.0, asym_p),
    }


def refractory_violation_rate(times_s: np.ndarray, params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> float:
    """Fraction of inter-spike intervals within the refractory window (beyond the duplicate window)."""
    if times_s.size < 2:
        return 0.0
    isi_ms = np.diff(times_s) * 1000.0
    return float(np.count_nonzero((isi_ms > params.duplicate_ms) & (isi_ms <= params.refractory_ms)) / isi_ms.size)


def contamination(times_s: np.ndarray, duration_s: float, params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> float:
    """Refractory contamination: violations over what a Poisson train of the same rate would make.

    0 for a clean neuron, 1 for a train with no refractory period at all. It is the ratio of
    observed intervals inside the refractory window (beyond the duplicate window, which is
    censored) to the count ``N² · (τ_r − τ_c) / T`` a Poisson train of the same rate makes.
    """
    n = times_s.size
    if n < 2 or duration_s <= 0:
        return 0.0
    isi_ms = np.diff(times_s) * 1000.0
    violations = np.count_nonzero((isi_ms > params.duplicate_ms) & (isi_ms <= params.refractory_ms))
    expected = n * n * (params.refractory_ms - params.duplicate_ms) / 1000.0 / duration_s
    return float(violations / expected) if expected > 0 else 0.0


def merged_train(times_a: np.ndarray, times_b: np.ndarray, lag_ms: float = 0.0,
                 params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> np.ndarray:
    """B aligned on A by the lag and merged with it, duplicates within the duplicate window censored."""
    merged = np.sort(np.concatenate([times_a, times_b - lag_ms / 1000.0]))
    if merged.size < 2:
        return merged
    keep = np.concatenate([[True], np.diff(merged) * 1000.0 > params.duplicate_ms])
    return merged[keep]


def contamination_evidence(times_a: np.ndarray, times_b: np.ndarray, duration_s: float, lag_ms: float = 0.0,
                           params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> dict[str, float]:
    """Refractory contamination of each unit and of the merged spike train (duplicates censored)."""
    merged = merged_train(times_a, times_b, lag_ms, params)
    return {
        "contamination_a": contamination(times_a, duration_s, params),
        "contamination_b": contamination(times_b, duration_s, params),
        "contamination_merged": contamination(merged, duration_s, params),
        "refractory_violations_a": refractory_violation_rate(times_a, params),
        "refractory_violations_b": refractory_violation_rate(times_b, params),
        "refractory_violations_merged": refractory_violation_rate(merged, params),
    }
