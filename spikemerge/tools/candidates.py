"""find_candidates: groups of units that might be one neuron, for the judge to decide.

Candidates are for recall, the judge is for precision (DESIGN.md). The default gate keeps
pairs whose templates are at least ``min_similarity`` alike (cosine, best shift, union of the
two units' channels) and whose estimated positions are close. A SpikeInterface preset can be
used instead; its ``template_diff_thresh`` is a *difference*, set to ``1 - min_similarity``.
With ``relax``, an empty result lowers ``min_similarity`` step by step to a floor.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import SpikemergeError
from .evidence.pairs import EvidenceContext, template_similarity
from .judges.base import UnitId

SI_PRESETS = ("similarity_correlograms", "temporal_splits", "x_contaminations", "feature_neighbors", "slay")
RELAX_STEP = 0.05
RELAX_FLOOR = 0.5
MAX_DISTANCE_UM = 50.0
MAX_GROUP_SIZE = 4


@dataclass
class CandidateGroup:
    group_id: int
    unit_ids: list[UnitId]
    found_by: str
    pairs: list[dict[str, Any]] = field(default_factory=list)
    """The pairs that put the group together: unit_a, unit_b, template_similarity, distance_um."""

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
        return f"{len(self.groups)} candidate groups ({source}; tried {tried})"


def similarity_pairs(
    ctx: EvidenceContext, min_similarity: float, max_distance_um: float = MAX_DISTANCE_UM
) -> list[dict[str, Any]]:
    """Pairs whose templates are at least ``min_similarity`` alike and within ``max_distance_um``."""
    locations = ctx.locations
    distances = np.linalg.norm(locations[:, None, :] - locations[None, :, :], axis=2)
    pairs = []
    for i, j in zip(*np.nonzero(np.triu(distances <= max_distance_um, k=1))):
        a, b = ctx.unit_ids[i], ctx.unit_ids[j]
        similarity, _ = template_similarity(ctx, a, b)
        if similarity >= min_similarity:
            pairs.append({"unit_a": a, "unit_b": b, "template_similarity": similarity,
                          "distance_um": float(distances[i, j])})
    return pairs


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
        similarity, _ = template_similarity(ctx, a, b)
        distance = float(np.linalg.norm(ctx.locations[ctx.index(a)] - ctx.locations[ctx.index(b)]))
        pairs.append({"unit_a": a, "unit_b": b, "template_similarity": similarity, "distance_um": distance})
    return pairs


def group_pairs(ctx: EvidenceContext, pairs: list[dict[str, Any]], found_by: str) -> list[CandidateGroup]:
    """Connected components of the pair graph, numbered from 1 in unit order.

    A component larger than ``MAX_GROUP_SIZE`` is cut by complete linkage on similarity, so no
    group chains units that were never close to each other.
    """
    parent = {u: u for u in ctx.unit_ids}

    def root(u):
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u

    for pair in pairs:
        parent[root(pair["unit_a"])] = root(pair["unit_b"])
    components: dict[UnitId, list[UnitId]] = {}
    for u in ctx.unit_ids:
        components.setdefault(root(u), []).append(u)
    unit_sets = []
    for members in components.values():
        if len(members) < 2:
            continue
        unit_sets.extend(_split_large(members, pairs) if len(members) > MAX_GROUP_SIZE else [members])
    unit_sets = [sorted(s, key=ctx.index) for s in unit_sets if len(s) >= 2]
    unit_sets.sort(key=lambda s: ctx.index(s[0]))
    groups = []
    for number, units in enumerate(unit_sets, start=1):
        members = set(units)
        inside = [p for p in pairs if p["unit_a"] in members and p["unit_b"] in members]
        groups.append(CandidateGroup(group_id=number, unit_ids=units, found_by=found_by, pairs=inside))
    return groups


def _split_large(members: list[UnitId], pairs: list[dict[str, Any]]) -> list[list[UnitId]]:
    """Complete-linkage clusters of at most ``MAX_GROUP_SIZE`` units, most similar pairs first."""
    similarity = {frozenset((p["unit_a"], p["unit_b"])): p["template_similarity"] for p in pairs}
    clusters = [[u] for u in members]
    while True:
        best, best_pair = -1.0, None
        for i in range(len(clusters)):
            for j in range(i + 1, len(clusters)):
                if len(clusters[i]) + len(clusters[j]) > MAX_GROUP_SIZE:
                    continue
                links = [similarity.get(frozenset((a, b))) for a in clusters[i] for b in clusters[j]]
                if any(v is None for v in links):
                    continue
                if min(links) > best:
                    best, best_pair = min(links), (i, j)
        if best_pair is None:
            return clusters
        i, j = best_pair
        clusters[i] = clusters[i] + clusters.pop(j)


def find_candidates(
    ctx: EvidenceContext,
    min_similarity: float = 0.8,
    preset: str | None = None,
    relax: bool = True,
    floor: float = RELAX_FLOOR,
    step: float = RELAX_STEP,
    max_distance_um: float = MAX_DISTANCE_UM,
) -> CandidateSearch:
    """Find candidate groups; with ``relax``, lower ``min_similarity`` until something is found.

    Parameters
    ----------
    ctx : EvidenceContext
        The prepared analyzer's arrays.
    min_similarity : float, default: 0.8
        Templates at least this alike (0.9 = 90 %). For a preset, ``template_diff_thresh`` is
        set to ``1 - min_similarity``.
    preset : str or None, default: None
        None for spikemerge's similarity-and-distance gate, or a SpikeInterface preset name.
    relax : bool, default: True
        When nothing is found, try ``min_similarity - step`` and so on down to ``floor``.

    Returns
    -------
    CandidateSearch
        Groups numbered from 1, the threshold that found them, and every level tried.
    """
    if not 0.0 < min_similarity <= 1.0:
        raise SpikemergeError(f"min_similarity must be in (0, 1], not {min_similarity}: 0.9 means templates 90 % alike")
    levels, threshold = [], float(min_similarity)
    while True:
        if preset:
            pairs = preset_pairs(ctx, preset, threshold)
            found_by = f"preset {preset}, template_diff_thresh {1 - threshold:.2f}"
        else:
            pairs = similarity_pairs(ctx, threshold, max_distance_um)
            found_by = f"template similarity >= {threshold:.2f} within {max_distance_um:g} um"
        groups = group_pairs(ctx, pairs, found_by)
        levels.append({"min_similarity": round(threshold, 4), "num_pairs": len(pairs), "num_groups": len(groups)})
        next_threshold = round(threshold - step, 4)
        if groups or not relax or next_threshold < floor - 1e-9:
            return CandidateSearch(groups=groups, preset=preset, min_similarity=threshold, levels=levels)
        threshold = next_threshold
