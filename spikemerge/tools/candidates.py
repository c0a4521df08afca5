"""find_candidates: groups of units that might be one neuron, for the judge to decide.

Candidates are for recall, the judge is for precision (DESIGN.md). The default gate keeps
pairs whose templates are at least ``min_similarity`` alike (cosine at the best lag within
±2 ms, on the union of the two units' channels, raw or with the noise their spike counts
imply removed, so a low-amplitude split's noisy template is not lost) and whose estimated
positions are close, or whose spike trains hold one sharp CCG peak within ±2 ms (the same
spikes twice, however misaligned the templates). Units that follow one another in time under drift are linked into
chains: each link a hand-over (one unit ends as the next begins) whose waveforms match *at
that moment* (the last spikes of one against the first of the next), since the first and the
last fragment of a drifting neuron need not look alike. Groups are the connected components,
of any size; the judge partitions them. A SpikeInterface preset can be used instead of the
gate; its ``template_diff_thresh`` is a *difference*, set to ``1 - min_similarity``.
With ``relax``, an empty result (or groups holding no more than ``more_than`` units) lowers
``min_similarity`` step by step to a floor.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import SpikemergeError
from .evidence.handover import chains_from_links, following_pairs, unit_distances
from .evidence.handover import handover_links as evidence_handover_links
from .evidence.pairs import EvidenceContext, denoised_similarity
from .evidence.params import DEFAULT_EVIDENCE_PARAMS
from .judges.base import UnitId

SI_PRESETS = ("similarity_correlograms", "temporal_splits", "x_contaminations", "feature_neighbors", "slay")


@dataclass(frozen=True)
class CandidateParams:
    """Every number of the candidate search (the similarity itself is the caller's knob)."""

    relax_step: float = 0.05
    relax_floor: float = 0.5
    max_distance_um: float = 50.0
    chain_max_presence_overlap: float = 0.3
    """Units whose firing overlaps less than this in time may hand over to each other."""
    chain_max_gap_fraction: float = 0.1
    """Largest silence between one unit's end and the next one's start, as a share of the recording."""
    chain_distance_factor: float = 1.5
    """Chain links may span this many times ``max_distance_um`` (positions are averages over a drift)."""
    handover_spikes: int = 60
    """Sampled waveforms of each unit compared at a hand-over."""
    time_bins: int = 20
    duplicate_fraction: float = 0.3
    """Share of the smaller unit's spikes in one CCG peak within ±2 ms that makes a pair a
    duplicate candidate whatever its templates (a misaligned duplicate's template can fall
    outside the window)."""
    duplicate_excess: float = 10.0
    """... and that peak at least this many times what independent firing puts in it."""

    dip_min_expected: float = 3.0
    """Coincidences independent firing must put in the refractory window before a missing
    refractory count links two units (below it the CCG has no power)."""
    dip_p: float = 1e-3
    """Poisson chance of so few refractory coincidences under independent firing that links two units."""

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


DEFAULT_CANDIDATE_PARAMS = CandidateParams()
RELAX_STEP = DEFAULT_CANDIDATE_PARAMS.relax_step
RELAX_FLOOR = DEFAULT_CANDIDATE_PARAMS.relax_floor
MAX_DISTANCE_UM = DEFAULT_CANDIDATE_PARAMS.max_distance_um


@dataclass
class CandidateGroup:
    group_id: int
    unit_ids: list[UnitId]
    found_by: str
    pairs: list[dict[str, Any]] = field(default_factory=list)
    """The pairs that put the group together: unit_a, unit_b, template_similarity, distance_um (and ``link``)."""
    chains: list[list[UnitId]] = field(default_factory=list)
    """Drift chains inside the group, in time order: each consecutive pair a hand-over."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CandidateSearch:
    """What ``find_candidates`` found, and every threshold it tried on the way."""

    groups: list[CandidateGroup]
    preset: str | None
    min_similarity: float
    levels: list[dict[str, Any]]

    def summary(self) -> str:
        tried = "; ".join(f"min_similarity {lv['min_similarity']:.2f}: {lv['num_groups']} groups" for lv in self.levels)
        source = f"preset {self.preset}" if self.preset else "similarity gate"
        chains = sum(len(g.chains) for g in self.groups)
        extra = f", {chains} drift chain{'s' if chains != 1 else ''}" if chains else ""
        return f"{len(self.groups)} candidate groups ({source}{extra}; tried {tried})"


def similarity_pairs(
    ctx: EvidenceContext, min_similarity: float, max_distance_um: float = MAX_DISTANCE_UM
) -> list[dict[str, Any]]:
    """Pairs whose templates are at least ``min_similarity`` alike (raw or denoised) within ``max_distance_um``."""
    distances = unit_distances(ctx)
    pairs = []
    for i, j in zip(*np.nonzero(np.triu(distances <= max_distance_um, k=1))):
        a, b = ctx.unit_ids[i], ctx.unit_ids[j]
        shape = denoised_similarity(ctx, a, b)
        best = max(shape["template_similarity"], shape["template_similarity_denoised"],
                   shape.get("template_similarity_stretch", 0.0))  # burst splits: the smaller unit is wider
        if best >= min_similarity:
            pairs.append({"unit_a": a, "unit_b": b, "template_similarity": shape["template_similarity"],
                          "template_similarity_denoised": shape["template_similarity_denoised"],
                          "distance_um": float(distances[i, j]), "link": "similarity"})
    return pairs


def _nearby_ccgs(ctx: EvidenceContext, max_distance_um: float) -> list[tuple[UnitId, UnitId, float, dict[str, Any]]]:
    """``(a, b, distance, ccg numbers around zero lag)`` of every pair within ``max_distance_um``.

    Computed once per view and reach: the duplicate and the refractory-dip links read the same
    crosscorrelograms.
    """
    from .evidence.ccg import ccg_evidence

    cache = ctx.__dict__.setdefault("_nearby_ccgs", {})
    if max_distance_um not in cache:
        distances = unit_distances(ctx)
        rows = []
        for i, j in zip(*np.nonzero(np.triu(distances <= max_distance_um, k=1))):
            a, b = ctx.unit_ids[i], ctx.unit_ids[j]
            rows.append((a, b, float(distances[i, j]), ccg_evidence(ctx.unit(a).times_s, ctx.unit(b).times_s, 0.0)))
        cache[max_distance_um] = rows
    return cache[max_distance_um]


def duplicate_pairs(ctx: EvidenceContext, max_distance_um: float = MAX_DISTANCE_UM,
                    params: CandidateParams = DEFAULT_CANDIDATE_PARAMS) -> list[dict[str, Any]]:
    """Nearby pairs whose spike trains hold one sharp CCG peak within ±2 ms: the same spikes twice."""
    pairs = []
    for a, b, distance, e in _nearby_ccgs(ctx, max_distance_um):
        if e["duplicate_fraction"] >= params.duplicate_fraction and e["duplicate_excess"] >= params.duplicate_excess:
            shape = denoised_similarity(ctx, a, b)
            pairs.append({"unit_a": a, "unit_b": b, "template_similarity": shape["template_similarity"],
                          "duplicate_fraction": e["duplicate_fraction"], "duplicate_lag_ms": e["duplicate_lag_ms"],
                          "distance_um": distance, "link": "duplicate"})
    return pairs


# ---------------------------------------------------------------- refractory-dip links (burst / amplitude splits)


def refractory_pairs(ctx: EvidenceContext, max_distance_um: float = MAX_DISTANCE_UM,
                     params: CandidateParams = DEFAULT_CANDIDATE_PARAMS) -> list[dict[str, Any]]:
    """Nearby pairs whose CCG is depleted around zero lag, where one neuron cannot fire twice.

    A sorter that cuts a bursting cell by amplitude leaves two units whose templates differ
    by more than the similarity gate allows (the later, smaller spikes are also wider), yet
    the two trains still share the neuron's refractory period: too few coincidences within
    ±``refractory_ms`` against what independent firing at the CCG's baseline predicts (a
    Poisson test with at least ``dip_min_expected`` expected, so that the test has power).
    The judge decides; this only brings the pair before it.
    """
    pairs = []
    for a, b, distance, e in _nearby_ccgs(ctx, max_distance_um):
        if e["ccg_expected_refractory"] >= params.dip_min_expected and e["ccg_depletion_p"] < params.dip_p:
            shape = denoised_similarity(ctx, a, b)
            pairs.append({"unit_a": a, "unit_b": b, "template_similarity": shape["template_similarity"],
                          "ccg_refractory_count": e["ccg_refractory_count"],
                          "ccg_expected_refractory": e["ccg_expected_refractory"],
                          "distance_um": distance, "link": "refractory"})
    return pairs


def handover_links(ctx: EvidenceContext, min_similarity: float, max_distance_um: float = MAX_DISTANCE_UM,
                   params: CandidateParams = DEFAULT_CANDIDATE_PARAMS) -> list[dict[str, Any]]:
    """Pairs where one unit takes over as the other ends, with waveforms alike at the hand-over
    (``evidence.handover``), within the chain reach.

    Returned as ``unit_a`` (the earlier unit), ``unit_b`` (the later one), ``handover_similarity``.
    """
    links = evidence_handover_links(ctx, min_similarity, params.chain_distance_factor * max_distance_um,
                                    params.chain_max_presence_overlap, params.chain_max_gap_fraction,
                                    params.time_bins, params.handover_spikes)
    return [{**link, "template_similarity": link["handover_similarity"], "link": "handover"} for link in links]


def _following_pairs(ctx: EvidenceContext, max_distance_um: float, params: CandidateParams):
    """Nearby units that follow one another (``evidence.handover.following_pairs``) under the
    candidate search's chain numbers. Shared by the hand-over and the motion-carried links."""
    return following_pairs(ctx, params.chain_distance_factor * max_distance_um, params.chain_max_presence_overlap,
                           params.chain_max_gap_fraction, params.time_bins)


def moved_links(ctx: EvidenceContext, min_similarity: float, max_distance_um: float = MAX_DISTANCE_UM,
                params: CandidateParams = DEFAULT_CANDIDATE_PARAMS) -> list[dict[str, Any]]:
    """Units that follow one another while the probe moved, alike once the earlier template is
    carried by the motion (``evidence.motion``).

    Under fast drift a neuron's fragment after the probe moved looks like its earlier one seen
    from another place: the templates as they are, and even the last and first spikes at the
    hand-over (sampled spikes of a unit that lives while the probe moves are a blur of places),
    fall under the gate. Carrying the earlier template by the registered displacement between
    the two units' lives compares them where the neuron was. The judge decides.
    """
    from .evidence.motion import moved_template_similarity, trajectory_evidence

    motion = ctx.motion_for(DEFAULT_EVIDENCE_PARAMS)
    if motion.range_um < DEFAULT_EVIDENCE_PARAMS.drift_min_displacement_um:
        return []
    contacts = getattr(ctx, "contact_positions", None)
    max_shift = int(round(DEFAULT_EVIDENCE_PARAMS.max_lag_ms * ctx.fs / 1000.0))
    links = []
    for first, second, distance in _following_pairs(ctx, max_distance_um, params):
        ua, ub = ctx.unit(first), ctx.unit(second)
        place_a, place_b = ctx.places(first, second)
        drift = trajectory_evidence(ua.times_s, place_a, ub.times_s, place_b, motion)
        if not drift["drift_moved"]:
            continue
        channels = np.union1d(ua.channels, ub.channels)
        similarity = moved_template_similarity(ua.template, ub.template, channels, drift["drift_displacement_um"],
                                               contacts, max_shift)
        if np.isfinite(similarity) and similarity >= min_similarity:
            links.append({"unit_a": first, "unit_b": second, "template_similarity": float(similarity),
                          "distance_um": distance, "link": "moved"})
    return links


def preset_pairs(ctx: EvidenceContext, preset: str, min_similarity: float) -> list[dict[str, Any]]:
    """Pairs proposed by a SpikeInterface preset, on a copy of the analyzer (it computes extensions)."""
    from spikeinterface.curation import compute_merge_unit_groups

    if preset not in SI_PRESETS:
        raise SpikemergeError(f"unknown preset {preset!r}: use one of {', '.join(SI_PRESETS)} or none")
    if preset in ("feature_neighbors",) and not ctx.analyzer.has_recording():
        raise SpikemergeError(f"preset {preset} needs spike locations, which need the recording: use another preset")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = compute_merge_unit_groups(
            ctx.analyzer,
            preset=preset,
            resolve_graph=False,
            steps_params={"template_similarity": {"template_diff_thresh": 1.0 - min_similarity}},
            compute_needed_extensions=True,
            force_copy=True,
        )
    pairs = []
    for a, b in found:
        a, b = (x.item() if hasattr(x, "item") else x for x in (a, b))
        shape = denoised_similarity(ctx, a, b)
        distance = float(np.linalg.norm(ctx.locations[ctx.index(a)] - ctx.locations[ctx.index(b)]))
        pairs.append({"unit_a": a, "unit_b": b, "template_similarity": shape["template_similarity"],
                      "distance_um": distance, "link": "preset"})
    return pairs


def group_pairs(ctx: EvidenceContext, pairs: list[dict[str, Any]], found_by: str,
                chains: list[list[UnitId]] = ()) -> list[CandidateGroup]:
    """Connected components of the pair graph, numbered from 1 in unit order, of any size.

    The judge partitions each group (several merges, never an unjudged chain), so a large
    component is kept whole rather than cut at an arbitrary size.
    """
    parent = {u: u for u in ctx.unit_ids}

    def root(u):
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u

    for pair in pairs:
        parent[root(pair["unit_a"])] = root(pair["unit_b"])
    for chain in chains:
        for a, b in zip(chain, chain[1:]):
            parent[root(a)] = root(b)
    components: dict[UnitId, list[UnitId]] = {}
    for u in ctx.unit_ids:
        components.setdefault(root(u), []).append(u)
    unit_sets = [sorted(s, key=ctx.index) for s in components.values() if len(s) >= 2]
    unit_sets.sort(key=lambda s: ctx.index(s[0]))
    groups = []
    for number, units in enumerate(unit_sets, start=1):
        members = set(units)
        inside = [p for p in pairs if p["unit_a"] in members and p["unit_b"] in members]
        inner_chains = [list(c) for c in chains if len(c) >= 2 and set(c) <= members]
        groups.append(CandidateGroup(group_id=number, unit_ids=units, found_by=found_by, pairs=inside,
                                     chains=inner_chains))
    return groups


def find_candidates(
    ctx: EvidenceContext,
    min_similarity: float = 0.8,
    preset: str | None = None,
    relax: bool = True,
    floor: float = RELAX_FLOOR,
    step: float = RELAX_STEP,
    max_distance_um: float = MAX_DISTANCE_UM,
    more_than: int = 0,
    params: CandidateParams = DEFAULT_CANDIDATE_PARAMS,
) -> CandidateSearch:
    """Find candidate groups; with ``relax``, lower ``min_similarity`` until enough is found.

    Parameters
    ----------
    ctx : EvidenceContext
        The prepared analyzer's arrays.
    min_similarity : float, default: 0.8
        Templates at least this alike (0.9 = 90 %). For a preset, ``template_diff_thresh`` is
        set to ``1 - min_similarity``.
    preset : str or None, default: None
        None for spikemerge's similarity-and-distance gate with drift chains, or a
        SpikeInterface preset name.
    relax : bool, default: True
        When the groups hold no more than ``more_than`` units, try ``min_similarity - step``
        and so on down to ``floor``.
    more_than : int, default: 0
        The number of units in groups to beat: 0 relaxes only on an empty result; a planner
        asking for more candidates passes how many units its groups already hold (lowering
        the threshold can join groups, so their number is not what grows).

    Returns
    -------
    CandidateSearch
        Groups numbered from 1, the threshold that found them, and every level tried.
    """
    if not 0.0 < min_similarity <= 1.0:
        raise SpikemergeError(f"min_similarity must be in (0, 1], not {min_similarity}: 0.9 means templates 90 % alike")
    levels, threshold = [], float(min_similarity)
    duplicates: list[dict[str, Any]] = []
    while True:
        chains: list[list[UnitId]] = []
        if preset:
            pairs = preset_pairs(ctx, preset, threshold)
            found_by = f"preset {preset}, template_diff_thresh {1 - threshold:.2f}"
        else:
            pairs = similarity_pairs(ctx, threshold, max_distance_um)
            if not levels:  # the spike trains do not change with the threshold: look once
                duplicates = duplicate_pairs(ctx, max_distance_um, params)
                seen = {frozenset((p["unit_a"], p["unit_b"])) for p in duplicates}
                duplicates += [p for p in refractory_pairs(ctx, max_distance_um, params)
                               if frozenset((p["unit_a"], p["unit_b"])) not in seen]
            known = {frozenset((p["unit_a"], p["unit_b"])) for p in pairs}
            pairs += [p for p in duplicates if frozenset((p["unit_a"], p["unit_b"])) not in known]
            known = {frozenset((p["unit_a"], p["unit_b"])) for p in pairs}
            pairs += [p for p in moved_links(ctx, threshold, max_distance_um, params)
                      if frozenset((p["unit_a"], p["unit_b"])) not in known]
            chains = [c for c in chains_from_links(handover_links(ctx, threshold, max_distance_um, params))
                      if len(c) >= 2]
            found_by = (f"template similarity >= {threshold:.2f} within {max_distance_um:g} um, a hand-over, a "
                        f"template moved by the probe motion, a duplicate peak or a refractory dip")
        groups = group_pairs(ctx, pairs, found_by, chains)
        levels.append({"min_similarity": round(threshold, 4), "num_pairs": len(pairs), "num_groups": len(groups),
                       "num_chains": len(chains)})
        covered = sum(len(g.unit_ids) for g in groups)
        levels[-1]["num_units"] = covered
        next_threshold = round(threshold - step, 4)
        if covered > more_than or not relax or next_threshold < floor - 1e-9:
            return CandidateSearch(groups=groups, preset=preset, min_similarity=threshold, levels=levels)
        threshold = next_threshold
