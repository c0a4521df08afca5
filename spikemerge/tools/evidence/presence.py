"""Presence and amplitudes over time: do two units fire together, or does one take over from the other?

A neuron cut by drift shows one unit fading as the next takes over, with matching amplitudes
(and waveforms) at the hand-over. These functions also pick the time window in which the
other evidence compares the two units: the time both are active, or the hand-over.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .params import DEFAULT_EVIDENCE_PARAMS, EvidenceParams


@dataclass(frozen=True)
class Window:
    """Where two units are compared: ``kind`` is ``"concurrent"``, ``"handover"`` or ``"all"``.

    ``spans_a``/``spans_b`` are (start, stop) seconds per unit: for a hand-over, the end of
    the first unit and the start of the second.
    """

    kind: str
    spans_a: tuple[tuple[float, float], ...]
    spans_b: tuple[tuple[float, float], ...]
    boundary_s: float = float("nan")

    def mask(self, times_s: np.ndarray, which: str) -> np.ndarray:
        spans = self.spans_a if which == "a" else self.spans_b
        keep = np.zeros(times_s.shape, dtype=bool)
        for start, stop in spans:
            keep |= (times_s >= start) & (times_s < stop)
        return keep


def distribution_overlap(x: np.ndarray, y: np.ndarray, bins: int = 30) -> float:
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


def _activity(times_s: np.ndarray, edges: np.ndarray, params: EvidenceParams) -> tuple[np.ndarray, np.ndarray]:
    counts, _ = np.histogram(times_s, edges)
    return counts, counts > params.active_fraction * max(counts.mean(), 1e-12)


def comparison_window(times_a: np.ndarray, times_b: np.ndarray, duration_s: float,
                      params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> Window:
    """The time in which to compare two units: while both fire, else around the hand-over.

    Both-active bins holding at least ``min_continuity_spikes`` of each unit make a
    ``"concurrent"`` window. Units that follow each other are compared on the last
    ``handover_fraction`` of the first and the first ``handover_fraction`` of the second.
    """
    edges = np.linspace(0.0, duration_s, params.time_bins + 1)
    ca, active_a = _activity(times_a, edges, params)
    cb, active_b = _activity(times_b, edges, params)
    both = active_a & active_b
    if both.any() and ca[both].sum() >= params.min_continuity_spikes and cb[both].sum() >= params.min_continuity_spikes:
        spans = tuple((float(edges[i]), float(edges[i + 1])) for i in np.flatnonzero(both))
        return Window("concurrent", spans, spans)
    if times_a.size == 0 or times_b.size == 0:
        return Window("all", ((0.0, np.inf),), ((0.0, np.inf),))
    a_first = np.median(times_a) <= np.median(times_b)
    first, second = (times_a, times_b) if a_first else (times_b, times_a)
    boundary = 0.5 * (float(np.quantile(first, 0.95)) + float(np.quantile(second, 0.05)))
    reach = params.handover_fraction * duration_s
    late = (boundary - reach, np.inf)
    early = (-np.inf, boundary + reach)
    spans_first, spans_second = (late,), (early,)
    return Window("handover", spans_first if a_first else spans_second, spans_second if a_first else spans_first,
                  boundary_s=boundary)


def presence_evidence(times_a: np.ndarray, amplitudes_a: np.ndarray, times_b: np.ndarray, amplitudes_b: np.ndarray,
                      duration_s: float, params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> dict[str, float]:
    """Do the two units fire at the same times, and with the same amplitudes when they meet?

    ``presence_overlap`` is the share of time bins (weighted by spikes) where both units fire
    (1 = together throughout, 0 = one takes over as the other fades, as in a drift split).
    ``amplitude_overlap`` compares the whole amplitude distributions,
    ``amplitude_overlap_concurrent`` only the bins where both fire; ``amplitude_handover`` the
    end of the first unit with the start of the second; ``handover_gap_s`` is the silence
    between them (negative when they overlap).
    """
    edges = np.linspace(0.0, duration_s, params.time_bins + 1)
    ca, active_a = _activity(times_a, edges, params)
    cb, active_b = _activity(times_b, edges, params)
    ra, rb = ca / max(1, ca.sum()), cb / max(1, cb.sum())
    overlap = float(np.minimum(ra, rb).sum())
    both = active_a & active_b
    concurrent = float("nan")
    if both.any():
        bins_a = np.clip(np.digitize(times_a, edges) - 1, 0, params.time_bins - 1)
        bins_b = np.clip(np.digitize(times_b, edges) - 1, 0, params.time_bins - 1)
        concurrent = distribution_overlap(amplitudes_a[both[bins_a]], amplitudes_b[both[bins_b]])
    handover, gap = float("nan"), float("nan")
    if times_a.size >= 5 and times_b.size >= 5:
        a_first = np.median(times_a) <= np.median(times_b)
        (t1, amp1), (t2, amp2) = ((times_a, amplitudes_a), (times_b, amplitudes_b)) if a_first else \
            ((times_b, amplitudes_b), (times_a, amplitudes_a))
        gap = float(np.quantile(t2, 0.05) - np.quantile(t1, 0.95))
        window = comparison_window(times_a, times_b, duration_s, params)
        if window.kind == "handover":
            boundary, reach = window.boundary_s, params.handover_fraction * duration_s
            tail = amp1[t1 > boundary - reach][-200:]
            head = amp2[t2 < boundary + reach][:200]
            handover = distribution_overlap(tail if tail.size else amp1[-200:], head if head.size else amp2[:200])
    return {
        "presence_overlap": overlap,
        "amplitude_overlap": distribution_overlap(amplitudes_a, amplitudes_b),
        "amplitude_overlap_concurrent": concurrent,
        "amplitude_handover": handover,
        "handover_gap_s": gap,
    }
