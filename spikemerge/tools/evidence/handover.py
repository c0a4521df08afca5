"""Hand-over links: nearby units that follow one another in time, alike where one takes over.

A neuron cut by drift leaves units that take turns: one fades as the next appears, and the last
spikes of the one look like the first spikes of the next even when their templates (averages
over lives spent at different depths) do not. The candidate search joins such links into
chains for the judge; the motion's registration reads its size off them
(``motion.handover_gain``). They live in the evidence package because both need them and the
evidence must not import the candidate search.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from ..analyzer.view import pairwise_distances
from .params import DEFAULT_EVIDENCE_PARAMS, EvidenceParams
from .waveforms import template_lag


def unit_distances(ctx, params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> np.ndarray:
    """(units, units): distances between the view's units in µm, each pair placed by one localizer
    (``EvidenceParams.one_localizer``)."""
    return ctx.pair_distances if params.one_localizer else pairwise_distances(ctx.locations)


def presence_shares(ctx, bins: int) -> dict[Any, np.ndarray]:
    """Each unit's share of its spikes in each of ``bins`` equal stretches of the recording."""
    edges = np.linspace(0.0, ctx.duration_s, bins + 1)
    out = {}
    for u in ctx.unit_ids:
        counts, _ = np.histogram(ctx.unit(u).times_s, edges)
        out[u] = counts / max(1, counts.sum())
    return out


def following_pairs(ctx, reach_um: float, max_overlap: float, max_gap_fraction: float,
                    bins: int) -> Iterator[tuple[Any, Any, float]]:
    """Yield (earlier unit, later unit, distance in µm) for units within ``reach_um`` that follow one
    another: their presence shares overlap by less than ``max_overlap``, and the later one starts
    (5th percentile of its spike times) no more than ``max_gap_fraction`` of the recording after the
    earlier one ends (95th percentile)."""
    distances = unit_distances(ctx)
    presence = presence_shares(ctx, bins)
    spans = {u: (np.quantile(ctx.unit(u).times_s, [0.05, 0.5, 0.95]) if ctx.unit(u).times_s.size else None)
             for u in ctx.unit_ids}
    for i, j in zip(*np.nonzero(np.triu(distances <= reach_um, k=1))):
        a, b = ctx.unit_ids[i], ctx.unit_ids[j]
        if spans[a] is None or spans[b] is None:
            continue
        if float(np.minimum(presence[a], presence[b]).sum()) >= max_overlap:
            continue
        first, second = (a, b) if spans[a][1] <= spans[b][1] else (b, a)
        if spans[second][0] - spans[first][2] > max_gap_fraction * ctx.duration_s:
            continue
        yield first, second, float(distances[i, j])


def edge_mean(unit, count: int, last: bool) -> np.ndarray | None:
    """Mean sampled waveform (samples, unit channels) of a unit's last or first ``count`` spikes in time."""
    if unit.waveform_times_s is None or len(unit.waveforms) == 0:
        return None
    order = np.argsort(unit.waveform_times_s, kind="stable")
    pick = order[-count:] if last else order[:count]
    return unit.waveforms[pick].mean(axis=0)


def handover_similarity(ctx, first, second, count: int) -> float:
    """Cosine of the first unit's last ``count`` waveforms' mean and the second's first ones', at the
    best lag (within the evidence's ``max_lag_ms``), on the union of their channels."""
    ua, ub = ctx.unit(first), ctx.unit(second)
    ma, mb = edge_mean(ua, count, last=True), edge_mean(ub, count, last=False)
    if ma is None or mb is None:
        return float("nan")
    channels = np.union1d(ua.channels, ub.channels)
    full_a = np.zeros((ma.shape[0], channels.size))
    full_b = np.zeros((mb.shape[0], channels.size))
    full_a[:, np.searchsorted(channels, ua.channels)] = ma
    full_b[:, np.searchsorted(channels, ub.channels)] = mb
    max_shift = int(round(DEFAULT_EVIDENCE_PARAMS.max_lag_ms * ctx.fs / 1000.0))
    return template_lag(full_a, full_b, max_shift)[1]


def handover_links(ctx, min_similarity: float, reach_um: float, max_overlap: float, max_gap_fraction: float,
                   bins: int, count: int) -> list[dict[str, Any]]:
    """:func:`following_pairs` whose :func:`handover_similarity` reaches ``min_similarity``, as
    ``unit_a`` (the earlier unit), ``unit_b`` (the later one), ``handover_similarity`` and ``distance_um``."""
    # computed once per pair on a view: the motion's sizing and each level of a relaxed search ask again
    known = ctx.__dict__.setdefault("_handover_similarities", {})
    links = []
    for first, second, distance in following_pairs(ctx, reach_um, max_overlap, max_gap_fraction, bins):
        key = (first, second, count)
        if key not in known:
            known[key] = handover_similarity(ctx, first, second, count)
        similarity = known[key]
        if np.isfinite(similarity) and similarity >= min_similarity:
            links.append({"unit_a": first, "unit_b": second, "handover_similarity": float(similarity),
                          "distance_um": distance})
    return links


def chains_from_links(links: list[dict[str, Any]]) -> list[list[Any]]:
    """Time-ordered chains: each unit keeps its best successor and predecessor (most alike at the hand-over)."""
    successor: dict[Any, Any] = {}
    predecessor: dict[Any, Any] = {}
    for link in sorted(links, key=lambda x: -x["handover_similarity"]):
        a, b = link["unit_a"], link["unit_b"]
        if a in successor or b in predecessor:
            continue
        successor[a], predecessor[b] = b, a
    chains = []
    for start in successor:
        if start in predecessor:
            continue
        chain = [start]
        while chain[-1] in successor and successor[chain[-1]] not in chain:
            chain.append(successor[chain[-1]])
        chains.append(chain)
    return chains
