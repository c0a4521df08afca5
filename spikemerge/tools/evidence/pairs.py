"""The numbers behind each picture a curator looks at, per pair of units.

Everything here reads a prepared analyzer (see ``analyzer.REQUIRED_EXTENSIONS``) through an
``EvidenceContext`` that extracts each unit's arrays once. Every number is named for what it
measures, so the metrics judge, the VLM prompts, the report and a person read the same thing.

Crosscorrelogram (CCG) numbers use the refractory logic of DESIGN.md: two units of one neuron
share its refractory period, so their CCG is depleted near zero lag; a flat CCG means two
neurons; a sharp peak at (almost) zero lag means the same spikes were detected twice.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any, Sequence

import numpy as np
from scipy.stats import poisson
from threadpoolctl import threadpool_limits

from ..analyzer.view import AnalyzerView, UnitArrays
from ..judges.base import UnitId

REFRACTORY_MS = 1.5
"""Half-width of the window where one neuron cannot fire twice (DESIGN: about ±1–2 ms)."""
CENSOR_MS = 0.25
"""Lags this close to zero belong to the duplicate detector, not to the refractory count."""
SHOULDER_MS = (10.0, 50.0)
"""Lags that estimate the CCG baseline when the two trains are independent."""
SHIFT_MS = 0.3
"""Largest template misalignment tried when comparing shapes."""
TIME_BINS = 20
"""Bins across the recording for presence and amplitude-over-time comparisons."""


def _unit_key(unit_id: Any) -> UnitId:
    return unit_id.item() if hasattr(unit_id, "item") else unit_id


class EvidenceContext(AnalyzerView):
    """Per-unit arrays extracted once from an analyzer, shared by every pair computation.

    The analyzer's one view (:class:`~spikemerge.tools.analyzer.view.AnalyzerView`): render reads
    the same trains, so a CCG panel and these numbers count the same spikes.
    """


# ---------------------------------------------------------------- crosscorrelograms


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


def ccg_evidence(times_a: np.ndarray, times_b: np.ndarray) -> dict[str, float]:
    """Refractory depletion, duplicate peak and cross-contamination numbers of one pair.

    ``ccg_expected_refractory`` is how many coincidences two independent trains would put in
    the refractory window (from the CCG shoulders); ``ccg_refractory_ratio`` is observed over
    that (about 0 for one neuron, about 1 for two); ``ccg_depletion_p`` is the Poisson chance
    of seeing so few by accident. ``duplicate_fraction`` is the share of the smaller unit's
    spikes with a partner within ``±CENSOR_MS`` (near 1 for a duplicate).
    """
    window_s = SHOULDER_MS[1] / 1000.0
    diffs = np.abs(time_differences(times_a, times_b, window_s)) * 1000.0
    lo, hi = SHOULDER_MS
    shoulder = np.count_nonzero((diffs >= lo) & (diffs < hi))
    rate_per_ms = shoulder / (2.0 * (hi - lo))
    refractory_width = 2.0 * (REFRACTORY_MS - CENSOR_MS)
    expected = rate_per_ms * refractory_width
    observed = int(np.count_nonzero((diffs > CENSOR_MS) & (diffs <= REFRACTORY_MS)))
    close = np.count_nonzero(diffs <= CENSOR_MS)
    expected_close = rate_per_ms * 2.0 * CENSOR_MS
    smaller = max(1, min(times_a.size, times_b.size))
    return {
        "ccg_refractory_count": observed,
        "ccg_expected_refractory": float(expected),
        "ccg_refractory_ratio": float(observed / expected) if expected > 0 else float("nan"),
        "ccg_depletion_p": float(poisson.cdf(observed, expected)) if expected > 0 else 1.0,
        "duplicate_count": int(close),
        "duplicate_fraction": float(close / smaller),
        "duplicate_excess": float(close / expected_close) if expected_close > 0 else float("inf") if close else 0.0,
    }


def refractory_violation_rate(times_s: np.ndarray) -> float:
    """Fraction of inter-spike intervals within ``CENSOR_MS..REFRACTORY_MS`` (a unit's own ACG dip)."""
    if times_s.size < 2:
        return 0.0
    isi_ms = np.diff(times_s) * 1000.0
    return float(np.count_nonzero((isi_ms > CENSOR_MS) & (isi_ms <= REFRACTORY_MS)) / isi_ms.size)


# ---------------------------------------------------------------- templates and features


def _shifted_cosine(template_a: np.ndarray, template_b: np.ndarray, max_shift: int) -> tuple[float, int]:
    """Best cosine similarity of two (samples, channels) templates over integer shifts."""
    n = template_a.shape[0]
    best, best_shift = -1.0, 0
    for shift in range(-max_shift, max_shift + 1):
        a = template_a[max(0, shift): n + min(0, shift)]
        b = template_b[max(0, -shift): n + min(0, -shift)]
        denom = np.linalg.norm(a) * np.linalg.norm(b)
        value = float(np.sum(a * b) / denom) if denom > 0 else 0.0
        if value > best:
            best, best_shift = value, shift
    return best, best_shift


def template_similarity(ctx: EvidenceContext, unit_a: UnitId, unit_b: UnitId) -> tuple[float, int]:
    """Cosine similarity of two templates on the union of their channels, best shift (samples)."""
    ia, ib = ctx.index(unit_a), ctx.index(unit_b)
    channels = ctx.sparsity_mask[ia] | ctx.sparsity_mask[ib]
    max_shift = int(round(SHIFT_MS * ctx.fs / 1000.0))
    return _shifted_cosine(ctx.templates[ia][:, channels], ctx.templates[ib][:, channels], max_shift)


def amplitude_ratio(ctx: EvidenceContext, unit_a: UnitId, unit_b: UnitId) -> float:
    """Peak-to-peak amplitude of the smaller template over the larger one (1 = same size)."""
    pa = np.ptp(ctx.templates[ctx.index(unit_a)], axis=0).max()
    pb = np.ptp(ctx.templates[ctx.index(unit_b)], axis=0).max()
    return float(min(pa, pb) / max(pa, pb)) if max(pa, pb) > 0 else 1.0


def _on_channels(unit: UnitArrays, channels: np.ndarray) -> np.ndarray:
    positions = np.searchsorted(unit.channels, channels)
    return unit.waveforms[:, :, positions]


def feature_separation(
    ctx: EvidenceContext, unit_a: UnitId, unit_b: UnitId, shift: int = 0, n_components: int = 5
) -> dict[str, float]:
    """How far apart two units' spikes lie in PCA space on the channels both units have.

    Waveforms are aligned by the template shift, projected on the top principal components of
    the pooled spikes, and compared with a discriminant fitted on one half and scored on the
    other: ``pca_dprime`` near 0 means one cloud, above about 3 two clusters.
    """
    a, b = ctx.unit(unit_a), ctx.unit(unit_b)
    shared = np.intersect1d(a.channels, b.channels)
    if shared.size == 0 or len(a.waveforms) < 10 or len(b.waveforms) < 10:
        return {"pca_dprime": float("nan"), "shared_channels": int(shared.size)}
    # keep the channels where either template is large, at most 8, so noise channels do not dilute
    power = np.ptp(a.template[:, shared], axis=0) + np.ptp(b.template[:, shared], axis=0)
    shared = shared[np.argsort(power)[::-1][:8]]
    wa, wb = _on_channels(a, shared), _on_channels(b, shared)
    n = wa.shape[1]
    wa = wa[:, max(0, shift): n + min(0, shift)]
    wb = wb[:, max(0, -shift): n + min(0, -shift)]
    count = min(len(wa), len(wb))
    rng = np.random.default_rng(0)
    wa = wa[rng.permutation(len(wa))[:count]].reshape(count, -1)
    wb = wb[rng.permutation(len(wb))[:count]].reshape(count, -1)
    pooled = np.vstack([wa, wb]).astype(np.float64)
    pooled -= pooled.mean(axis=0)
    # principal axes from the covariance: one small eigh instead of an SVD of all spikes
    _, vectors = np.linalg.eigh(pooled.T @ pooled)
    k = min(n_components, vectors.shape[1])
    axes = vectors[:, ::-1][:, :k]
    pa, pb = wa @ axes, wb @ axes
    half = count // 2
    dprimes = []
    for fit, score in ((slice(0, half), slice(half, count)), (slice(half, count), slice(0, half))):
        mean_diff = pa[fit].mean(axis=0) - pb[fit].mean(axis=0)
        cov = 0.5 * (np.cov(pa[fit], rowvar=False) + np.cov(pb[fit], rowvar=False)) + 1e-6 * np.eye(k)
        direction = np.linalg.solve(cov, mean_diff)
        xa, xb = pa[score] @ direction, pb[score] @ direction
        spread = np.sqrt(0.5 * (xa.var() + xb.var()))
        dprimes.append(abs(xa.mean() - xb.mean()) / spread if spread > 0 else 0.0)
    return {"pca_dprime": float(np.mean(dprimes)), "shared_channels": int(shared.size)}


# ---------------------------------------------------------------- amplitudes and presence over time


def presence_evidence(ctx: EvidenceContext, unit_a: UnitId, unit_b: UnitId) -> dict[str, float]:
    """Do the two units fire at the same times, and with the same amplitudes when they do?

    ``presence_overlap`` is the share of time bins (weighted by spikes) where both units fire
    (1 = together throughout, 0 = one takes over as the other fades, as in a drift split).
    ``amplitude_overlap`` is the overlap of the two amplitude distributions (1 = identical);
    ``amplitude_overlap_concurrent`` uses only bins where both fire.
    """
    a, b = ctx.unit(unit_a), ctx.unit(unit_b)
    edges = np.linspace(0.0, ctx.duration_s, TIME_BINS + 1)
    ca, _ = np.histogram(a.times_s, edges)
    cb, _ = np.histogram(b.times_s, edges)
    ra, rb = ca / max(1, ca.sum()), cb / max(1, cb.sum())
    overlap = float(np.minimum(ra, rb).sum())
    both = (ca > 0.1 * ca.mean()) & (cb > 0.1 * cb.mean())
    # where one unit ends and the other begins, do their amplitudes meet?
    handover = float("nan")
    if overlap < 0.5:
        ta, tb = np.median(a.times_s), np.median(b.times_s)
        first, second = (a, b) if ta < tb else (b, a)
        boundary = 0.5 * (np.quantile(first.times_s, 0.95) + np.quantile(second.times_s, 0.05))
        tail = first.amplitudes[first.times_s > boundary - 0.1 * ctx.duration_s]
        tail = tail[-200:] if tail.size else first.amplitudes[-200:]
        head = second.amplitudes[second.times_s < boundary + 0.1 * ctx.duration_s][:200]
        if head.size == 0:
            head = second.amplitudes[:200]
        handover = _distribution_overlap(tail, head)
    concurrent = float("nan")
    if both.any():
        sel_a = np.isin(np.digitize(a.times_s, edges) - 1, np.flatnonzero(both))
        sel_b = np.isin(np.digitize(b.times_s, edges) - 1, np.flatnonzero(both))
        concurrent = _distribution_overlap(a.amplitudes[sel_a], b.amplitudes[sel_b])
    return {
        "presence_overlap": overlap,
        "amplitude_overlap": _distribution_overlap(a.amplitudes, b.amplitudes),
        "amplitude_overlap_concurrent": concurrent,
        "amplitude_handover": handover,
    }


def _distribution_overlap(x: np.ndarray, y: np.ndarray, bins: int = 30) -> float:
    """Overlap coefficient of two samples' histograms on a shared range (0 disjoint, 1 identical)."""
    if x.size < 5 or y.size < 5:
        return float("nan")
    lo = min(np.quantile(x, 0.01), np.quantile(y, 0.01))
    hi = max(np.quantile(x, 0.99), np.quantile(y, 0.99))
    if hi <= lo:
        return 1.0
    hx, _ = np.histogram(x, bins=bins, range=(lo, hi))
    hy, _ = np.histogram(y, bins=bins, range=(lo, hi))
    return float(np.minimum(hx / max(1, hx.sum()), hy / max(1, hy.sum())).sum())


# ---------------------------------------------------------------- per pair and per group


def pair_evidence(ctx: EvidenceContext, unit_a: UnitId, unit_b: UnitId) -> dict[str, Any]:
    """Every number for one pair of units, in one flat dict."""
    a, b = ctx.unit(unit_a), ctx.unit(unit_b)
    similarity, shift = template_similarity(ctx, unit_a, unit_b)
    record: dict[str, Any] = {
        "unit_a": unit_a,
        "unit_b": unit_b,
        "num_spikes_a": int(a.times_s.size),
        "num_spikes_b": int(b.times_s.size),
        "template_similarity": similarity,
        "template_shift_ms": shift * 1000.0 / ctx.fs,
        "template_amplitude_ratio": amplitude_ratio(ctx, unit_a, unit_b),
        "distance_um": float(np.linalg.norm(a.location - b.location)),
    }
    record.update(ccg_evidence(a.times_s, b.times_s))
    merged = np.sort(np.concatenate([a.times_s, b.times_s]))
    record["refractory_violations_a"] = refractory_violation_rate(a.times_s)
    record["refractory_violations_b"] = refractory_violation_rate(b.times_s)
    record["refractory_violations_merged"] = refractory_violation_rate(merged)
    record.update(presence_evidence(ctx, unit_a, unit_b))
    record.update(feature_separation(ctx, unit_a, unit_b, shift=shift))
    return record


def group_evidence(ctx: EvidenceContext, unit_ids: Sequence[UnitId]) -> dict[str, Any]:
    """Evidence of a group: one record per pair, under ``"pairs"``.

    BLAS runs single-threaded here: the matrices are small, and on a busy machine a
    multi-threaded BLAS is up to 20 times slower for them (measured: 12 s vs 0.6 s).
    """
    with threadpool_limits(1):
        return {"pairs": [pair_evidence(ctx, a, b) for a, b in combinations(unit_ids, 2)]}
