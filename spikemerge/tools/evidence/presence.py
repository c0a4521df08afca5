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

    ``spans_a``/``spans_b`` are (start, stop) seconds per unit: for hand-overs, the stretch of
    ``handover_fraction`` of the recording on each side of every moment one unit takes over from
    the other (``handovers``).
    """

    kind: str
    spans_a: tuple[tuple[float, float], ...]
    spans_b: tuple[tuple[float, float], ...]
    handovers: tuple[float, ...] = ()

    def mask(self, times_s: np.ndarray, which: str) -> np.ndarray:
        spans = self.spans_a if which == "a" else self.spans_b
        keep = np.zeros(times_s.shape, dtype=bool)
        for start, stop in spans:
            keep |= (times_s >= start) & (times_s < stop)
        return keep

    def nearest(self, times_s: np.ndarray, count: int) -> np.ndarray:
        """Mask of the ``count`` spikes closest in time to a hand-over: the unit as it was when the
        other took over from it (or it from the other)."""
        keep = np.zeros(times_s.shape, dtype=bool)
        if times_s.size and self.handovers:
            distance = np.min(np.abs(times_s[:, None] - np.asarray(self.handovers)[None, :]), axis=1)
            keep[np.argsort(distance, kind="stable")[:count]] = True
        return keep

    def gap_s(self, times_a: np.ndarray, times_b: np.ndarray) -> float:
        """The silence between the two units at their closest hand-over (``inf`` without spikes)."""
        if times_a.size == 0 or times_b.size == 0 or not self.handovers:
            return float("inf")
        return min(float(np.min(np.abs(times_a - t)) + np.min(np.abs(times_b - t))) for t in self.handovers)


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


def handover_times(times_a: np.ndarray, times_b: np.ndarray, duration_s: float,
                   params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> tuple[float, ...]:
    """The moments one unit takes over from the other, in seconds.

    Each time bin where either unit is active belongs to the unit holding the larger share of its
    own spikes there; a hand-over lies between consecutive stretches of such bins of different
    units, each holding at least ``handover_min_share`` of its unit's spikes, and is placed within
    ``handover_search_bins`` of there at the spike that best splits the two. A neuron
    that drifts back and forth leaves one unit on either side of another (its spikes before and
    after), so two units may hand over more than once: comparing the first unit's last spikes with
    the second's first ones, as a single hand-over would, compares the neuron at both ends of the
    recording instead.
    """
    edges = np.linspace(0.0, duration_s, params.time_bins + 1)
    ca, active_a = _activity(times_a, edges, params)
    cb, active_b = _activity(times_b, edges, params)
    share_a, share_b = ca / max(1, ca.sum()), cb / max(1, cb.sum())
    owned = np.flatnonzero((active_a | active_b) & (share_a != share_b))
    owner = np.sign(share_a[owned] - share_b[owned])
    # stretches of bins held by one unit; a stretch with a small share of its unit's spikes (a few
    # strays before the unit's life begins) is no side of a hand-over
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    runs = [(owner[i], owned[i:j]) for i, j in zip(starts, np.r_[starts[1:], owner.size])]
    runs = [(o, bins) for o, bins in runs if (share_a if o > 0 else share_b)[bins].sum() >= params.handover_min_share]
    reach = params.handover_search_bins * duration_s / params.time_bins
    moments = []
    for (o1, bins1), (o2, bins2) in zip(runs, runs[1:]):
        if o1 == o2:
            continue
        coarse = 0.5 * (float(edges[bins1[-1] + 1]) + float(edges[bins2[0]]))
        leaving, arriving = (times_a, times_b) if o1 > 0 else (times_b, times_a)
        moments.append(_change_point(coarse, leaving, arriving, reach))
    return tuple(moments)


def _change_point(coarse: float, leaving: np.ndarray, arriving: np.ndarray, reach: float) -> float:
    """The moment within ``reach`` of ``coarse`` that best puts one unit's spikes before it and the
    other's after it (each unit's share, so that their rates do not matter): time bins alone place
    a hand-over only to within a bin, where drift moves the neuron's amplitude visibly."""
    a = np.sort(leaving[np.abs(leaving - coarse) < reach])
    b = np.sort(arriving[np.abs(arriving - coarse) < reach])
    if a.size == 0 or b.size == 0:
        return coarse
    moments = np.concatenate([a, b])
    split = np.searchsorted(a, moments, side="right") / a.size - np.searchsorted(b, moments, side="right") / b.size
    return float(moments[int(np.argmax(split))])


def comparison_window(times_a: np.ndarray, times_b: np.ndarray, duration_s: float,
                      params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> Window:
    """The time in which to compare two units: while both fire, else around their hand-overs.

    Units that fire together (presence overlap at least ``sequential_overlap``) are compared
    in the bins where both are active, when those hold ``min_continuity_spikes`` of each: a
    ``"concurrent"`` window. Units that follow each other are compared at the hand-overs
    (``handover_times``): ``handover_fraction`` of the recording on each side of each.
    """
    edges = np.linspace(0.0, duration_s, params.time_bins + 1)
    ca, active_a = _activity(times_a, edges, params)
    cb, active_b = _activity(times_b, edges, params)
    both = active_a & active_b
    overlap = float(np.minimum(ca / max(1, ca.sum()), cb / max(1, cb.sum())).sum())
    if (overlap >= params.sequential_overlap and ca[both].sum() >= params.min_continuity_spikes
            and cb[both].sum() >= params.min_continuity_spikes):
        spans = tuple((float(edges[i]), float(edges[i + 1])) for i in np.flatnonzero(both))
        return Window("concurrent", spans, spans)
    moments = handover_times(times_a, times_b, duration_s, params) if times_a.size and times_b.size else ()
    if not moments:
        return Window("all", ((0.0, np.inf),), ((0.0, np.inf),))
    reach = params.handover_fraction * duration_s
    spans = tuple((t - reach, t + reach) for t in moments)
    return Window("handover", spans, spans, handovers=moments)


def presence_evidence(times_a: np.ndarray, amplitudes_a: np.ndarray, times_b: np.ndarray, amplitudes_b: np.ndarray,
                      duration_s: float, params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS,
                      window: Window | None = None) -> dict[str, float]:
    """Do the two units fire at the same times, and with the same amplitudes when they meet?

    ``presence_overlap`` is the share of time bins (weighted by spikes) where both units fire
    (1 = together throughout, 0 = one takes over as the other fades, as in a drift split).
    ``amplitude_overlap`` compares the whole amplitude distributions,
    ``amplitude_overlap_concurrent`` only the bins where both fire; ``amplitude_handover`` each
    unit's spikes nearest their hand-overs (``handover_times``); ``handover_gap_s`` is the silence
    from the first unit's 95th percentile in time to the second's 5th (negative when they
    overlap, or take turns). ``window``: the pair's :func:`comparison_window` when the caller has it.
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
        first, second = (times_a, times_b) if np.median(times_a) <= np.median(times_b) else (times_b, times_a)
        gap = float(np.quantile(second, 0.05) - np.quantile(first, 0.95))
        window = window or comparison_window(times_a, times_b, duration_s, params)
        if window.kind == "handover":
            near_a = window.nearest(times_a, params.handover_amplitudes)
            near_b = window.nearest(times_b, params.handover_amplitudes)
            handover = distribution_overlap(amplitudes_a[near_a], amplitudes_b[near_b])
    return {
        "presence_overlap": overlap,
        "amplitude_overlap": distribution_overlap(amplitudes_a, amplitudes_b),
        "amplitude_overlap_concurrent": concurrent,
        "amplitude_handover": handover,
        "handover_gap_s": gap,
        "handover_gap_fraction": gap / duration_s if duration_s > 0 and np.isfinite(gap) else float("nan"),
    }
