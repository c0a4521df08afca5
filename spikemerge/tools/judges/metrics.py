"""The offline metrics judge: decides from the evidence numbers alone (no network, no key).

Each pair's evidence becomes log-likelihood ratios (``terms.py``), summed and calibrated into
P(one neuron). A group's verdict is a partition: every part merges only if each of its pairs
clears the policy's threshold (complete linkage, never a chain A–B–C on A–B and B–C alone),
except along a drift chain proposed as such by ``find_candidates``, whose clean hand-overs join
fragments with unlike far ends unless a pair shows decisive evidence of two neurons, and a join
over pairs that carry no evidence either way (far ends of a drift, see ``partition``). Thin evidence (too few
coincidences expected for the CCG to decide) cannot merge under a policy that asks for power
(``conservative``): the group is an abstain, not a merge on shape alone. A unit that two neurons'
parts claim about equally well stays out of both.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from itertools import combinations
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

from ...policies import Policy, get_policy
from .base import Example, JudgeRequest, Verdict, VerdictCallback
from .handover_model import load_model
from .learning import LocalCorrection, fit_local_correction
from .params import DEFAULT_JUDGE_PARAMS, JudgeParams
from .terms import PairScore, logit, pool_refractory, score_pair, sigmoid
from .terms import usable as _usable

__all__ = [
    "MetricsJudge", "PairScore", "mark_mixtures", "merge_confidence", "partition", "score_pair", "weakest_carrying",
]


def _on_trajectory(score: PairScore) -> bool:
    """Fragments of one drifting neuron by their motion-corrected positions (see ``terms.pair_terms``)."""
    return score.on_trajectory and not score.veto


def _off_trajectory(score: PairScore, params: JudgeParams) -> bool:
    """Units that follow each other whose corrected places lie off one trajectory
    (``params.off_trajectory_log_odds``), or that the hand-over model reads as two neurons
    (``PairScore.fitted_two``): evidence of two neurons that no join passes over as uninformative or
    mediated (a fitted pair only along slices of the join that lead from one unit to the other, ``_chained``)."""
    return score.sequential and (score.terms.get("drift", 0.0) < params.off_trajectory_log_odds or score.fitted_two)


def _uninformative(score: PairScore, params: JudgeParams = DEFAULT_JUDGE_PARAMS) -> bool:
    """No evidence either way: far ends of a drift or a burst, which differ in shape but say nothing of two neurons.

    Units that follow each other in time, with too few coincidences expected for the CCG to
    decide, and neither a refractory excess nor a feature-space gap: their waveforms, the
    amplitudes at their hand-over and their corrected positions may disagree, as the ends of one
    drifting neuron's chain do (measured on the dev sets' true joins: a drift term down to -2.5
    and hand-over mismatches of -2), so those terms alone do not block a join; but places off one
    trajectory (a drift term below ``params.off_trajectory_log_odds``) are evidence, of two neurons
    far more often than of one (metrics-v36). Likewise units
    that fire together at one place (``params.same_place_max_um``) with too few coincidences
    expected and no more than a weak refractory excess: a bursting cell's first and last
    amplitude slices differ in shape and leave a gap between their clouds, and only the CCG,
    which cannot speak here, would tell them from two cells.
    """
    if score.veto or score.starved or not score.thin:
        return False
    if score.sequential:
        return score.terms.get("crosscorrelograms", 0.0) >= 0.0 and score.terms.get("continuity", 0.0) >= 0.0 \
            and not _off_trajectory(score, params)
    return (score.refractory is not None and score.refractory.distance_um <= params.same_place_max_um
            and score.terms.get("crosscorrelograms", 0.0) >= params.same_place_min_ccg_log_odds)


def _carries(score: PairScore, params: JudgeParams) -> bool:
    """A confident pair with no term beyond ``params.bridge_max_against_log_odds`` against one neuron
    and no mixed unit (``PairScore.mixed``) or mixture (``PairScore.mixture``): enough to carry a
    join over uninformative pairs."""
    return (score.probability >= params.bridge_min_probability and not score.mixed and not score.mixture
            and score.most_against >= params.bridge_max_against_log_odds)


def _copy_excused(score: PairScore, unit: Any, other: Any, cluster: Sequence[Any],
                  scores: Mapping[frozenset, PairScore], cut: float, block_thin: bool, params: JudgeParams) -> bool:
    """Whether ``unit``'s pair with ``other`` only restates its copy's: not evidence of two neurons.

    A duplicate (the same spikes detected twice) holds a share of its partner's spikes, so its
    pair with a third unit repeats the partner's pair with that unit on fewer spikes, and often
    at a lag the copy's misaligned template shifts. When ``unit`` has a duplicate partner in its
    own ``cluster`` whose pair with ``other`` clears the threshold, ``unit``'s own pair does not
    block the join unless it carries evidence of two neurons itself (a veto, a term below
    ``params.bridge_max_against_log_odds``, or the hand-over model's ``fitted_two``). Seen
    on a tridesclous2 burst split: a copy with 58 % of its partner's spikes, whose thin pair with
    the partner's burst slice (P 0.40, no term against) kept that slice (P 0.87 with the partner) out.
    """
    if score.veto or score.duplicate or score.fitted_two \
            or score.most_against < params.bridge_max_against_log_odds:
        return False
    return _copied(unit, other, cluster, scores, cut, block_thin)


def _copied(unit: Any, other: Any, members: Sequence[Any], scores: Mapping[frozenset, PairScore], cut: float,
            block_thin: bool, copy_only: bool = False) -> bool:
    """Whether ``unit`` duplicates a member of the join whose own pair with ``other`` clears the cut
    (with ``copy_only``, is that member's copy: ``PairScore.copy``). Not through a mixture
    (``mark_mixtures``), on either side: its shared spikes are a different neuron's per partner."""
    for partner in members:
        if partner in (unit, other):
            continue
        link, across = scores.get(frozenset((unit, partner))), scores.get(frozenset((partner, other)))
        if link is None or link.mixture:  # either of the two is a mixture
            continue
        if (link.copy == unit if copy_only else link.duplicate) and across is not None \
                and _usable(across, cut, block_thin):
            return True
    return False


def _place_veto_only(score: PairScore, params: JudgeParams) -> bool:
    """A veto that rests on places alone: units firing together localized apart (the drift term), a
    CCG term above the veto level (a thin pair's excess that deep counts against too, though too thin
    to veto on its own), shapes not wholly unlike (``params.copy_place_veto_min_waveforms_log_odds``)."""
    return (score.veto and not score.sequential
            and score.terms.get("drift", 0.0) <= params.veto_log_odds
            and score.terms.get("crosscorrelograms", 0.0) > params.veto_log_odds
            and score.terms.get("waveforms", 0.0) >= params.copy_place_veto_min_waveforms_log_odds)


def _restates_partner(score: PairScore, members: Sequence[Any], scores: Mapping[frozenset, PairScore], cut: float,
                      block_thin: bool, params: JudgeParams = DEFAULT_JUDGE_PARAMS) -> bool:
    """Whether a unit of the pair is the copy of a member of the join that links the other unit.

    A copy (``PairScore.copy``: the smaller unit of a duplicate pair, most of its spikes the
    partner's, detected again at a misaligned lag) compares with a third unit what its partner
    does, but read at that lag: a refractory dip shifted out of its window, waveforms cut
    off-centre. When the partner's own pair with the third unit clears the cut, the copy's pair
    blocks nothing short of a veto (``JudgeParams.copy_restates_min_fraction``), and a veto on
    places alone is not one (``_place_veto_only``): the copy's template, averaged over misaligned
    re-detections, is what the localization misplaces. Unlike ``_copy_excused``, the partner may sit
    on either side of the join and the copy's pair may hold terms against one neuron.
    """
    if score.starved:
        return False
    if score.veto and not _place_veto_only(score, params):
        return False
    return any(_copied(u, o, members, scores, cut, block_thin, copy_only=True)
               for u, o in ((score.unit_a, score.unit_b), (score.unit_b, score.unit_a)))


def _restated_both_ways(score: PairScore, members: Sequence[Any], scores: Mapping[frozenset, PairScore],
                        cut: float, block_thin: bool) -> bool:
    """Whether both units of a pair are copies of members that link the other one: the pair says nothing new.

    A sorter that detects a bursting cell's spikes twice leaves a web of duplicates between its
    burst slices (spykingcircus2: units 1 and 33 each copying two of 32, 34 and 35). A pair of two
    such copies compares their leftover spikes, which differ in shape as the slices do; when each
    unit's duplicate partner in the join links the other unit at the threshold, the same spikes
    already say one neuron both ways, so the pair does not block the join (unless it is vetoed or
    a unit is starved). Unlike ``_copy_excused`` (one way), the pair's own shapes, gap and places do
    not matter here. On 44 sorter-made sets: 14 more same-neuron pairs (11 in bursting sets), 1 more
    distinct pair (drifting).

    Copies explain leftover spikes that differ in shape, never a refractory excess: as for
    ``_mediated``, a pair whose CCG can speak (not thin) and shows an excess (its term below 0) is
    not excused (metrics-v29). Seen on held-out drift_sc2_s159: an impure unit copying fragments of
    two neurons (purity 0.31) restated their pairs both ways, among them 42+51 and 41+101, which
    fire together with 2 and 1.2 nats of refractory excess; a part of three neurons merged (11
    distinct pairs). On the 24 sets of seeds 155-160: 8 fewer distinct pairs, no same-neuron pair lost.
    """
    if score.veto or score.starved:
        return False
    if not score.thin and score.terms.get("crosscorrelograms", 0.0) < 0.0:
        return False  # the CCG can speak and shows an excess: copies' leftovers do not explain it
    return all(_copied(u, o, members, scores, cut, block_thin)
               for u, o in ((score.unit_a, score.unit_b), (score.unit_b, score.unit_a)))


def _mediated(score: PairScore, members: Sequence[Any], scores: Mapping[frozenset, PairScore], cut: float,
              block_thin: bool, params: JudgeParams) -> bool:
    """Whether a third unit of the joining parts stands between the pair: both its links clear the cut.

    A sorter that cuts one neuron's cloud in several slices (by amplitude along a burst, by
    position along a drift) leaves its outer slices with shapes as far apart as the cloud is long
    and the middle slice's spikes between them; pairwise, they read as two neurons. When a unit of
    the join links both at the policy's threshold, and the pair's evidence against is what a
    missing middle explains (shapes, hand-over amplitudes, places), with no veto, the difference
    is that unit's. A missing middle never explains a refractory excess: a pair
    whose CCG can speak (not thin) must show a dip that favours one neuron
    (``params.mediated_powered_min_ccg_log_odds``; a partial dip reading near even is what alike
    neighbours' collisions leave), a thin pair at most a weak excess (one or two coincidences,
    ``params.mediated_min_ccg_log_odds``). Seen on
    sorter-made drifting sets: two near-twin neighbours firing together (similarity 0.96, 9 µm,
    2 coincidences where independent firing predicts 3.8, a gap between their clouds) joined
    through a unit alike to both; on 76 sets, 4 distinct pairs fewer and 2 same-neuron pairs more.
    A thin pair's gap is filled too (``params.mediated_thin_gap``, from metrics-v50): a sorter's
    slices of one cloud are separated by construction, and a third unit linking both stands for
    the missing middle as it does for shapes (on the 1193 kept records, 146 more same-neuron pairs
    and no distinct pair more). Not for a pair whose CCG can speak and still shows a gap
    (unless ``params.mediated_powered_gap``): a decisive dip has already excused one neuron's gap
    (``terms.pair_terms``), so what is left is a weak dip beside a gap, the collision dip of two
    neighbours firing together.
    Nor, for units that follow each other, for a pair whose corrected places lie off one trajectory
    (its drift term below ``params.off_trajectory_log_odds``): a middle fragment explains a
    drifting neuron's far ends differing in shape, not in place once the motion is removed. And for
    such units, a third unit linked to either by shape alone must stand between them (``_between``):
    a fragment alike to both at one end is what near-twin neighbours drifting together leave.
    A mixed unit (``PairScore.mixed``: it breaks its own refractory period) stands between nothing:
    what it shares with each unit may be another neuron's spikes each time; nor does a mixture
    (``PairScore.mixture``: it duplicates distinct neurons, ``mark_mixtures``).
    """
    if score.veto or score.starved or score.log_odds < params.mediated_min_log_odds \
            or score.terms.get("crosscorrelograms", 0.0) < params.mediated_min_ccg_log_odds:
        return False
    if not score.thin and score.terms.get("crosscorrelograms", 0.0) < params.mediated_powered_min_ccg_log_odds:
        return False  # enough coincidences expected for a dip, and none clear: no missing slice's doing
    gap = score.terms.get("continuity", 0.0) < 0.0
    if _off_trajectory(score, params):
        return False  # places off one trajectory: no middle fragment puts them back on it
    if score.thin and gap and not params.mediated_thin_gap:
        return False  # a gap with no refractory evidence beside it: nothing says one neuron but shape
    if not score.thin and gap and not params.mediated_powered_gap:
        return False  # a gap beside a dip too weak to excuse it: neighbours' collision dip
    for m in members:
        if m in (score.unit_a, score.unit_b):
            continue
        left, right = scores.get(frozenset((score.unit_a, m))), scores.get(frozenset((m, score.unit_b)))
        if left is not None and right is not None and m not in left.mixed | left.mixture \
                and _usable(left, cut, block_thin) \
                and _usable(right, cut, block_thin) and _between(score, left, right, params):
            return True
    return False


def mark_mixtures(scores: Mapping[frozenset, PairScore], params: JudgeParams = DEFAULT_JUDGE_PARAMS
                  ) -> dict[frozenset, PairScore]:
    """``scores`` with ``PairScore.mixture`` set on every pair of a unit that duplicates distinct neurons.

    A duplicate pair says the two units share spikes. When a unit shares spikes with units that are
    vetoed against each other (two neurons), at least ``params.mixture_min_vetoed_partner_pairs``
    times, it re-detects several cells: what it shares with each is another neuron's spikes, so its
    links may not stand in for its partners' (see ``JudgeParams.mixture_min_vetoed_partner_pairs``).
    """
    need = params.mixture_min_vetoed_partner_pairs
    if need <= 0:
        return dict(scores)
    partners: dict[Any, list[Any]] = {}
    for key, score in scores.items():
        if score.duplicate:
            a, b = tuple(key)
            partners.setdefault(a, []).append(b)
            partners.setdefault(b, []).append(a)
    mixtures = {u for u, shared in partners.items()
                if sum(1 for x, y in combinations(shared, 2)
                       if (pair := scores.get(frozenset((x, y)))) is not None and pair.veto) >= need}
    return {key: replace(score, mixture=frozenset(key & mixtures)) if key & mixtures else score
            for key, score in scores.items()}


def _between(score: PairScore, left: PairScore, right: PairScore, params: JudgeParams) -> bool:
    """Whether a unit linked to both units of a pair that follow each other, by ``left`` and ``right``,
    may stand for their missing middle: no farther from each than they are from each other (times
    ``params.mediated_shape_link_max_distance_ratio``) when a link rests on shape alone. Places
    unknown: no objection."""
    if not score.sequential or not (left.thin or right.thin):
        return True
    if score.refractory is None or left.refractory is None or right.refractory is None:
        return True
    ratio = params.mediated_shape_link_max_distance_ratio
    farthest = max(left.refractory.distance_um, right.refractory.distance_um)
    return ratio == float("inf") or farthest <= ratio * score.refractory.distance_um


def _chained(score: PairScore, members: Sequence[Any], scores: Mapping[frozenset, PairScore], cut: float,
             block_thin: bool, params: JudgeParams) -> bool:
    """Whether units of the join lead from one unit of a pair the hand-over model reads as two to the other.

    A sorter that cuts a drifting neuron by place leaves slices whose far ends differ as much as the
    neuron moved; the hand-over model, fitted on pairs of fragments, reads such far ends as two
    neurons (``PairScore.fitted_two``), and no single slice may link both (``_mediated``). When the
    joining units make a path from one unit of the pair to the other, each step a pair read as one
    neuron (clearing the cut, or on one trajectory) and each farther from the first unit and nearer
    the second, the difference is the path's, step by step. Only where the model's log-odds are at
    least ``params.chained_min_log_odds`` (surer readings were two drifting neighbours' on the kept
    records), the CCG shows no more than a weak excess (``params.mediated_min_ccg_log_odds``), and no
    step passes through a mixed unit or a mixture. Places unknown: no path.
    """
    if not score.fitted_two or score.veto or score.starved or score.log_odds < params.chained_min_log_odds \
            or score.terms.get("crosscorrelograms", 0.0) < params.mediated_min_ccg_log_odds:
        return False
    start, end = score.unit_a, score.unit_b

    def distance(x: Any, y: Any) -> float | None:
        pair = scores.get(frozenset((x, y)))
        return None if pair is None or pair.refractory is None else pair.refractory.distance_um

    def step(x: Any, y: Any) -> bool:
        pair = scores.get(frozenset((x, y)))
        return pair is not None and not (pair.mixed or pair.mixture) \
            and (_usable(pair, cut, block_thin) or _on_trajectory(pair))

    whole = distance(start, end)
    if whole is None:
        return False
    # each unit reached with its distances from the start and to the end, entered once
    frontier, seen = [(start, 0.0, whole)], {start}
    while frontier:
        unit, here_from, here_to = frontier.pop()
        for nxt in members:
            if nxt in seen:
                continue
            if nxt == end:
                if unit != start and step(unit, end):
                    return True
                continue
            there_from, there_to = distance(start, nxt), distance(nxt, end)
            if there_from is not None and there_to is not None and there_from > here_from \
                    and there_to < here_to and step(unit, nxt):
                seen.add(nxt)
                frontier.append((nxt, there_from, there_to))
    return False


def pooled_links(links: list[PairScore], params: JudgeParams,
                 weights: Mapping[str, float] | None = None) -> list[PairScore]:
    """The pairs across a join, each read with the join's pooled refractory count where that decides.

    When the pairs' summed refractory counts (``terms.pool_refractory``) make a decisive dip (at
    least ``params.dip_excuses_gap_log_odds``), a pair across whose own count shows no excess takes
    the pooled CCG term instead of its own: it is no longer thin, and its feature-space gap is
    excused as a decisive dip excuses it for one pair. A pair with an excess, a veto or a starved
    unit keeps its own evidence (its count is in the pool all the same).
    """
    pooled = pool_refractory(links, params)
    if pooled is None or pooled[0] < params.dip_excuses_gap_log_odds:
        return links
    term, observed, expected = pooled
    note = (f"; with the other pairs across the join, {observed:.0f} coincidences where independent firing "
            f"predicts {expected:.1f}: a refractory dip for all of them together")
    w = dict(weights or {})
    read = []
    for s in links:
        own = s.terms.get("crosscorrelograms", 0.0)
        if s.refractory is None or s.veto or s.starved or own < 0.0 or own >= term:
            read.append(s)
            continue
        gap = min(s.terms.get("continuity", 0.0), 0.0)
        shift = w.get("crosscorrelograms", 1.0) * (term - own) - w.get("continuity", 1.0) * gap
        terms = {**s.terms, "crosscorrelograms": term, "continuity": max(s.terms.get("continuity", 0.0), 0.0)}
        reasons = {**s.reasons, "crosscorrelograms": s.reasons.get("crosscorrelograms", "") + note}
        read.append(replace(s, log_odds=s.log_odds + params.log_odds_scale * shift, thin=False, terms=terms,
                            reasons=reasons))
    return read


def _chain_links(chains: Sequence[Sequence[Any]], unit_ids: Sequence[Any], scores: Mapping[frozenset, PairScore],
                 cut: float, block_thin: bool) -> dict[frozenset, frozenset]:
    """The links of the proposed drift chains that are clean, usable hand-overs (or duplicates),
    each with its chain's units."""
    links = {}
    for chain in chains:
        members = [u for u in chain if u in unit_ids]
        for prev, unit in zip(members, members[1:]):
            link = scores.get(frozenset((prev, unit)))
            if link is not None and (link.handover or link.duplicate) and _usable(link, cut, block_thin):
                key = frozenset((prev, unit))
                links[key] = links.get(key, frozenset()) | frozenset(members)
    return links


def _kept_apart(left: Sequence[Any], right: Sequence[Any], scores: Mapping[frozenset, PairScore],
                params: JudgeParams) -> bool:
    """Whether decisive evidence keeps two parts apart, as ``_contested`` reads it: a veto between them.

    With ``params.contest_veto_beyond_one_unit``, vetoes that all involve one unit of a part that
    holds others say that unit and the other part are two neurons, not the whole part: that unit
    may hold another neuron's spikes as well (an impure unit, seen refractory-excessive with its own
    neuron's fragments), and the rest of its part may still be the other part's neuron.
    """
    vetoes = [(a, b) for a in left for b in right if scores[frozenset((a, b))].veto]
    if not vetoes or not params.contest_veto_beyond_one_unit:
        return bool(vetoes)
    return not any(len(side) > 1 and any(all(u in pair for pair in vetoes) for u in side)
                   for side in (left, right))


def _copies(copy: Sequence[Any], part: Sequence[Any], scores: Mapping[frozenset, PairScore]) -> bool:
    """Whether every unit of ``copy`` is the copy (``PairScore.copy``) of a duplicate pair with a unit of ``part``."""
    return all(any((s := scores[frozenset((u, w))]).duplicate and s.copy == u for w in part) for u in copy)


def _contested(i: int, j: int, claims: Mapping[int, Mapping[int, float]], vetoed: Callable[[int, int], bool],
               margin: float, copied: Callable[[int, int], bool] = lambda k, x: False) -> bool:
    """Whether joining parts ``i`` and ``j`` takes one of them from a rival claim as good as this one.

    ``claims[a][b]`` is how strongly part ``b`` claims part ``a``, for the joins allowed: each unit
    of ``a`` has its strongest pair with ``b`` (log-odds without a duplicate peak), and the weakest of
    those is the claim. A part (``x``, one of ``i`` and ``j``) that may also
    join a third part ``k`` which its partner here (``y``) can never join, for decisive evidence of
    two neurons between them (a veto), is claimed by two neurons. Unless this claim beats the
    rival's by ``margin`` nats, which neuron it belongs to is a guess: the join waits, and the part
    stays out if nothing else settles it. Seen on a held-out tridesclous2 drifting set: a fragment
    on the trajectories of two neurons 25-35 µm apart, with clean, thin hand-overs to both (+4.1
    and +4.6), joined the wrong one. A unit's best pair, not its mean, is its claim: a drifting
    neuron's far fragments add weak pairs that say little (see ``_uninformative``). A part is
    claimed only as far as each of its units is: a rival with one strong hand-over to one unit of
    a two-unit part, and nothing for the other, does not contest the part (seen on a drifting set:
    a neuron's eight fragments linked both units of a part at +3.3 to +4.2, another neuron's fragment
    only one of them, at +3.6, and -0.1 the other; the part stayed out, 16 true pairs).

    Copies settle a contest (``copied(a, b)``: every unit of part ``a`` is the copy of a duplicate
    pair with a member of part ``b``, ``_copies`` under ``params.contest_settled_by_copies``): a
    rival made of copies of the part's members claims it with the part's own spikes and contests
    nothing, and a part made of copies of its partner's members goes with that partner, whatever
    else claims it.
    """
    for x, y in ((i, j), (j, i)):
        if copied(x, y):  # x's spikes are y's: whatever else claims x, it goes with y
            continue
        rivals = claims[x].keys() - claims[y].keys() - {i, j}
        if any(claims[x][y] - claims[x][k] < margin and vetoed(y, k) and not copied(k, x) for k in rivals):
            return True
    return False


def _copies_both(unit: Any, left: Sequence[Any], right: Sequence[Any],
                 scores: Mapping[frozenset, PairScore]) -> bool:
    """Whether ``unit`` duplicates a member of each part."""
    return any(scores[frozenset((unit, w))].duplicate for w in left) and \
        any(scores[frozenset((unit, w))].duplicate for w in right)


def _mixed_between(unit: Any, left: Sequence[Any], right: Sequence[Any],
                   scores: Mapping[frozenset, PairScore]) -> bool:
    """Whether ``unit`` breaks its own refractory period (``PairScore.mixed``) and stands between two
    parts of at least two units each that fire together (no pair across of units that follow each
    other)."""
    return (min(len(left), len(right)) >= 2
            and any(unit in scores[frozenset((unit, w))].mixed for w in (*left, *right))
            and not any(scores[frozenset((a, b))].sequential for a in left for b in right))


def _torn_unit(clusters: Sequence[list[Any]], scores: Mapping[frozenset, PairScore],
               strength: Callable[[list[Any], list[Any]], tuple[float, float, float] | None],
               ejected: set[Any], params: JudgeParams) -> tuple[int, int, Any] | None:
    """Two parts that could join without one unit whose pairs cannot tell, and that unit.

    A unit whose spikes duplicate members of two parts (``params.eject_torn_copies``) holds spikes
    of both, and often others (an impure unit): its own pairs mix what its copies already say with
    its leftovers, which read alike whether the two parts are one neuron or two (its share of either
    part shows the refractory dip, its leftovers chance coincidences). A mixed unit
    (``params.eject_mixed_units``) holds spikes its own refractory period rules out, often another
    neuron's: its excess or place against one part says that some of its spikes are not that
    part's neuron, not that the two parts are two neurons. Only between two parts of at least two
    units each that fire together (``_mixed_between``): fragments that follow each other meet through
    pairs too thin to speak, where a mixed unit's pairs may be all that tells two drifting neighbours
    apart, and a single unit's link to a part is one pair's word against the mixed unit's. When its
    pairs are all that keeps the two parts apart (they join by complete linkage without it), the
    parts join and it is left out of their join. The best supported such join (mean log-odds of its
    carrying pairs, as ``partition`` orders joins); None if there is none.
    """
    best = None
    for i, j in combinations(range(len(clusters)), 2):
        for u in clusters[i] + clusters[j]:
            if u in ejected:
                continue
            left, right = [w for w in clusters[i] if w != u], [w for w in clusters[j] if w != u]
            if not (left and right):
                continue
            if not ((params.eject_torn_copies and _copies_both(u, left, right, scores))
                    or (params.eject_mixed_units and _mixed_between(u, left, right, scores))):
                continue
            value = strength(left, right)
            if value is not None and (best is None or value[0] > best[0]):
                best = (value[0], i, j, u)
    return None if best is None else best[1:]


def _majority_join(left: Sequence[Any], right: Sequence[Any], links: Sequence[PairScore],
                   usable: Sequence[PairScore], blocking: Sequence[PairScore], block_thin: bool,
                   params: JudgeParams) -> bool:
    """Whether most pairs across two parts of several units carry their join and none speaks
    decisively against it (``JudgeParams.majority_join_*``), so a few weak pairs do not refuse it.
    Not under ``block_thin``, whose policy does not merge past thin evidence."""
    return (not block_thin and min(len(left), len(right)) >= params.majority_join_min_units
            and len(usable) >= params.majority_join_min_fraction * len(links)
            and not any(s.veto for s in links)
            and all(s.log_odds >= params.majority_join_min_log_odds
                    and s.most_against > params.majority_join_term_floor for s in blocking))


def _support(unit: Any, part: Sequence[Any], scores: Mapping[frozenset, PairScore]) -> float:
    """How strongly a part holds a unit: the sum of the unit's pairs with the part's other units, read
    without a duplicate peak, where a pair of units that follow each other or share a motion-corrected
    trajectory counts only for it (a drifting neuron's far fragments differ by how far it moved)."""
    total = 0.0
    for w in part:
        if w != unit:
            s = scores[frozenset((unit, w))]
            value = s.plain_log_odds
            total += max(value, 0.0) if s.sequential or s.on_trajectory else value
    return total


def _stronger_part(clusters: Sequence[list[Any]], scores: Mapping[frozenset, PairScore],
                   strength: Callable[[list[Any], list[Any]], tuple[float, float, float] | None],
                   whole: Callable[[list[Any]], bool], moved: set[Any], params: JudgeParams
                   ) -> tuple[int, int, Any] | None:
    """The best move of a merged unit to another merged part that holds it more strongly than its own
    (``_support``, by more than ``params.move_margin_log_odds``), as (its part, the other, the unit);
    None if there is none.

    Joins go by the mean of the pairs across, so a unit may join a small part early, on one pair as
    good as its best with a larger part of its neuron that it then can no longer join (the small part
    holds a pair that blocks). The other part must take the unit in as a join would (``strength``)
    and its own part must stay one part without it (``whole``); units in ``moved`` stay where they are.
    """
    best = None
    for i, part in enumerate(clusters):
        if len(part) < 2:
            continue
        for u in part:
            if u in moved:
                continue
            rest = [w for w in part if w != u]
            stay = _support(u, rest, scores)
            for j, other in enumerate(clusters):
                if j == i or len(other) < 2:
                    continue
                gain = _support(u, other, scores) - stay
                # the cheap test first: a join's checks and a partition of the rest only for a better move
                if gain > params.move_margin_log_odds and (best is None or gain > best[0]) \
                        and strength([u], other) is not None and (len(rest) < 2 or whole(rest)):
                    best = (gain, i, j, u)
    return None if best is None else best[1:]


def _left_out(unit: Any, parts: Sequence[Sequence[Any]], scores: Mapping[frozenset, PairScore]) -> str:
    """A unit left out of a merge, named, and said to be a copy when it duplicates two or more
    units of one merged part (``_torn_unit``: its spikes are in the part already)."""
    for part in parts:
        copied = [w for w in part if (s := scores.get(frozenset((unit, w)))) is not None and s.duplicate]
        if len(copied) >= 2:
            return f"{unit}, a copy of units {', '.join(map(str, copied))} whose spikes are merged already"
    return str(unit)


def weakest_carrying(part: Sequence[Any], scores: Mapping[frozenset, PairScore], params: JudgeParams, cut: float,
                     block_thin: bool, weights: Mapping[str, float] | None = None) -> PairScore:
    """The weakest pair that carries a merged part: every pair of it clears the threshold, or (a drift
    trajectory or chain, whose far ends differ) the pairs that do; read with the part's pooled
    refractory count (``pooled_links``), as the partition read them."""
    pairs = pooled_links([scores[frozenset(pair)] for pair in combinations(part, 2)], params, weights)
    carried = [x for x in pairs if _usable(x, cut, block_thin)]
    return min(carried or pairs, key=lambda x: x.log_odds)


def merge_confidence(weakest_log_odds: Sequence[float], params: JudgeParams = DEFAULT_JUDGE_PARAMS) -> float:
    """P(every part of a verdict is one neuron), from each part's weakest carrying pair (log-odds).

    A part has passed every check of ``partition`` besides its weakest pair's threshold, so it is
    surer than that pair's P: each part reads ``sigmoid(merge_confidence_scale · L + offset)``
    (fitted on sorter-made merges, see ``JudgeParams.merge_confidence_scale``), and the parts of
    one verdict count as independent (their product).
    """
    confidence = 1.0
    for log_odds in weakest_log_odds:
        confidence *= sigmoid(params.merge_confidence_scale * log_odds + params.merge_confidence_offset)
    return confidence


def keep_apart_confidence(strongest_log_odds: float, params: JudgeParams = DEFAULT_JUDGE_PARAMS) -> float:
    """P(no two units of a kept-apart group are one neuron), from its strongest pair (log-odds).

    A group kept apart may still hold one neuron's units that the partition left out (contests,
    impure units, thin gaps), so one minus its strongest pair's P overstates that chance:
    ``1 - sigmoid(keep_apart_confidence_scale · L + offset)``, fitted on sorter-made verdicts (see
    ``JudgeParams.keep_apart_confidence_scale``).
    """
    return 1.0 - sigmoid(params.keep_apart_confidence_scale * strongest_log_odds
                         + params.keep_apart_confidence_offset)


def partition(unit_ids: Sequence[Any], scores: Mapping[frozenset, PairScore], threshold: float,
              chains: Sequence[Sequence[Any]] = (), block_thin: bool = False,
              params: JudgeParams = DEFAULT_JUDGE_PARAMS,
              pool: Callable[[list[PairScore]], list[PairScore]] | None = None) -> list[list[Any]]:
    """The parts of a group to merge (each at least two units, disjoint).

    Units are joined by complete linkage: two parts join only when every pair across
    them clears ``threshold`` (and is neither thin under ``block_thin`` nor vetoed), the join
    whose carrying pairs have the highest mean log-odds first, counted without a duplicate peak
    (ordering by the weakest pair let a unit's single strong link take it before the parts of
    its neuron met; a copy's join is sure but says nothing of its leftover spikes); a pair of
    units that follow each other and sit on one motion-corrected trajectory
    (``PairScore.on_trajectory``) need not clear it, as long as another pair across does, nor
    need a duplicate's pair whose partner's pair clears it (``_copy_excused``, or
    ``_restated_both_ways`` when both units are copies of members linking the other, or
    ``_restates_partner`` when one is most of its spikes a copy of such a member), nor a pair whose
    difference a third unit of the join stands between (``_mediated``: the outer slices of one
    split cloud), nor far ends the hand-over model reads as two neurons that units of the join lead
    between step by step (``_chained``: a drifting neuron's slices by place).

    A drift chain proposed by ``find_candidates`` permits a join across one of its clean, usable
    hand-overs (``_chain_links``) whatever the pairs across between the chain's units, unless one
    vetoes it (a drifting neuron's far fragments differ in shape); a unit outside the chain joins
    on its own pairs. Such a join waits its turn by strength like any other.
    Taking the chains first, as before, let a weak hand-over between two neurons' fragments take a
    unit before the parts of its own neuron met it (on 40 sorter-made drifting sets, in turn: 17
    more same-neuron pairs merged and 1 fewer distinct).

    Joins are ordered by the evidence other than a duplicate peak (``PairScore.duplicate_log_odds``):
    a duplicate (the same spikes detected twice, often by a unit that also holds other spikes) is
    sure to share its partner's spikes but says nothing of the rest, and joined first at +8 nats it
    let its own pairs keep its partner's burst slices or drift fragments out (on the dev sets,
    ordering without the peak recovered 10 true pairs and dropped 2 wrong merges, changing no
    other outcome).

    Complete linkage also refuses a drifting neuron's fragments A–B–C when A and C, its far ends,
    have too little evidence to clear the threshold. Absence of evidence for one neuron is not
    evidence of two: a pair across that is uninformative (``_uninformative``: thin, sequential,
    no refractory excess and no feature-space gap; or thin, concurrent and at one place, as a
    bursting cell's far amplitude slices are) does not block the join either, provided a
    pair across carries it (``_carries``: at least ``params.bridge_min_probability`` with no term
    against one neuron). Not under ``block_thin``, whose policy does not merge on thin evidence.
    Plain average linkage, which lets strong pairs outvote weak ones, merged distinct neurons
    (10 wrong pairs on the dev sets, against 2 with complete linkage and with this rule).

    A part that two parts both claim, where a veto keeps those two apart (two neurons), joins the
    stronger claim only when it is stronger by ``params.contest_margin_log_odds``; otherwise it
    waits, and stays out if no other join settles it (``_contested``): a fragment on two drifting
    neighbours' trajectories, with clean hand-overs to both, is not given to one on a guess. Vetoes
    that all rest on one unit of a part holding others do not make its part a rival (``_kept_apart``),
    and copies settle a contest (``_copies``): a copy of the part's own members is no rival, and a
    part made of copies of its partner's members goes with it.

    When no join is left, two parts that only a copy of members of both keeps apart join without
    it, and it is left out of their join, as is a mixed unit between two parts firing together
    (``_torn_unit``, under ``params.eject_torn_copies`` and ``params.eject_mixed_units``; each unit at
    most once).
    Then, when no join is left at all, two parts of several units each may join on the majority of
    the pairs across (``_majority_join``, ``params.majority_join_*``): most of them carry the join and
    none is vetoed or strongly against; the rounds go on as before with such joins allowed.
    Then a unit that another part holds more strongly than its own moves there (``_stronger_part``,
    under ``params.move_to_stronger_part``; each unit at most once, no join after).

    With ``pool`` (``pooled_links``, as the metrics judge calls it), the pairs across a join are
    first read with their summed refractory count where that decides and every pair across lies
    within ``params.pool_max_distance_um``: slices of one cell, each pair too thin to tell, speak
    together (see ``JudgeParams.pool_max_distance_um`` for what it did on sorter-made sets).
    """
    cut = logit(threshold)
    chain_links = _chain_links(chains, unit_ids, scores, cut, block_thin)

    def strength(left: list[Any], right: list[Any]) -> tuple[float, float, float] | None:
        """How well the pairs across two parts support joining them: on average, which orders the
        joins, and the claim of ``right`` on ``left`` and of ``left`` on ``right`` (``_contested``);
        None when the join is not allowed."""
        links = [scores[frozenset((a, b))] for a in left for b in right]
        if pool is not None:
            links = pool(links)  # pairs each too thin to decide may decide together (``pooled_links``)
        usable = [s for s in links if _usable(s, cut, block_thin)]
        # drift: a pair on one motion-corrected trajectory does not block the join (its templates
        # may differ as far as the neuron moved), but some pair across must carry it
        if not usable:
            return None
        blocking = [s for s in links if not (_usable(s, cut, block_thin) or _on_trajectory(s))]
        # a duplicate's pair restates its partner's (see ``_copy_excused``)
        blocking = [s for s in blocking if not any(
            _copy_excused(s, u, o, left if u in left else right, scores, cut, block_thin, params)
            for u, o in ((s.unit_a, s.unit_b), (s.unit_b, s.unit_a)))]
        joined = left + right
        blocking = [s for s in blocking if not _restated_both_ways(s, joined, scores, cut, block_thin)]
        blocking = [s for s in blocking if not _restates_partner(s, joined, scores, cut, block_thin, params)]
        blocking = [s for s in blocking if not _mediated(s, joined, scores, cut, block_thin, params)]
        blocking = [s for s in blocking if not _chained(s, joined, scores, cut, block_thin, params)]
        # a proposed drift chain's clean hand-over across: the chain's far ends may differ (not veto)
        chained = [chain_links[k] for s in usable if (k := frozenset((s.unit_a, s.unit_b))) in chain_links]
        blocking = [s for s in blocking if s.veto or not any(s.unit_a in m and s.unit_b in m for m in chained)]
        bridged = not block_thin and all(_uninformative(s, params) for s in blocking) and \
            any(_carries(s, params) for s in usable)
        if blocking and not bridged and not (
                by_majority and _majority_join(left, right, links, usable, blocking, block_thin, params)):
            return None
        # the join best supported on average goes first, on the evidence other than a duplicate
        # peak: a unit taken by its one strong link (weak elsewhere), or a copy taken by its
        # duplicate peak, would later stand between two parts of its neuron
        plain = [s.plain_log_odds for s in usable]
        read = {frozenset((s.unit_a, s.unit_b)): s.plain_log_odds for s in links}

        def claim(part: list[Any], claimant: list[Any]) -> float:
            # every unit of the part must be claimed: its strongest pair with the claimant, the weakest of those
            return min(max(read[frozenset((u, w))] for w in claimant) for u in part)

        return sum(plain) / len(plain), claim(left, right), claim(right, left)

    by_majority = False  # joins by the majority of pairs across, once complete linkage has none left
    clusters: list[list[Any]] = [[u] for u in unit_ids]
    ejected: set[Any] = set()  # each unit is left out of a join at most once: no cycles
    # a join's strength depends on its two parts alone: computed once per pair of parts, so each
    # round only reads the pairs that involve the part just joined (groups of tens of units)
    known: dict[tuple[tuple[Any, ...], tuple[Any, ...]], tuple[float, float, float] | None] = {}
    while True:
        mean: dict[tuple[int, int], float] = {}
        claims: dict[int, dict[int, float]] = {i: {} for i in range(len(clusters))}
        for i, j in combinations(range(len(clusters)), 2):
            key = (tuple(clusters[i]), tuple(clusters[j]))
            if key not in known:
                known[key] = strength(clusters[i], clusters[j])
            if (value := known[key]) is not None:
                mean[i, j] = value[0]
                claims[i][j], claims[j][i] = value[1], value[2]
        best_pair = None
        for i, j in sorted(mean, key=lambda k: -mean[k]):
            # a part claimed about as well by another part that decisive evidence keeps from this
            # one's partner (``_contested``) waits; if no other join resolves it, it stays out
            if not _contested(i, j, claims, lambda y, k: _kept_apart(clusters[y], clusters[k], scores, params),
                              params.contest_margin_log_odds, lambda a, b: params.contest_settled_by_copies
                              and _copies(clusters[a], clusters[b], scores)):
                best_pair = (i, j)
                break
        if best_pair is None and (params.eject_torn_copies or params.eject_mixed_units):
            # no join left: a copy or a mixed unit between two parts may be what keeps them apart
            torn = _torn_unit(clusters, scores, strength, ejected, params)
            if torn is not None:
                i, j, u = torn
                ejected.add(u)
                joined = [w for w in clusters[i] + clusters[j] if w != u]
                clusters = [c for k, c in enumerate(clusters) if k not in (i, j)] + [joined, [u]]
                continue
        if best_pair is None and not by_majority and params.majority_join_min_fraction <= 1.0:
            by_majority = True
            known.clear()  # the joins allowed have changed
            continue
        if best_pair is None:
            break
        i, j = best_pair
        clusters[i] = clusters[i] + clusters.pop(j)

    def whole(units: list[Any]) -> bool:  # the units still make one part on their own
        alone = partition(units, scores, threshold, chains, block_thin,
                          replace(params, move_to_stronger_part=False), pool)
        return [len(part) for part in alone] == [len(units)]

    moved: set[Any] = set()  # each unit moves at most once: no cycles
    while params.move_to_stronger_part and (
            move := _stronger_part(clusters, scores, strength, whole, moved, params)) is not None:
        i, j, u = move
        moved.add(u)
        clusters[i] = [w for w in clusters[i] if w != u]
        clusters[j] = clusters[j] + [u]
    return [c for c in clusters if len(c) >= 2]


class MetricsJudge:
    """Decides from the evidence numbers alone: offline, free, and the baseline for other judges.

    Parameters
    ----------
    params : JudgeParams
        Every weight and threshold; hashed into :meth:`fingerprint`.
    weights : mapping, optional
        Per-term weights and an ``offset`` (learned from examples); 1 and 0 by default.
    """

    name = "metrics"
    model: str | None = None
    params: JudgeParams = DEFAULT_JUDGE_PARAMS
    weights: Mapping[str, float] = MappingProxyType({})
    learned: dict[str, Any] | None = None

    def __init__(self, params: JudgeParams = DEFAULT_JUDGE_PARAMS, weights: Mapping[str, float] | None = None):
        self.params = params
        self.weights = dict(weights or {})
        self.learned: dict[str, Any] | None = None
        """What the last ``judge_many`` learned from its examples (weights, counts), for the record."""

    def fingerprint(self) -> str:
        """Changes with the parameters, the weights, and the decision rule's version (bump it when
        the code decides differently on the same numbers, so journalled verdicts are not reused)."""
        model = load_model(self.params.handover_model)
        source = json.dumps({"judge": "metrics-v58", "params": self.params.fingerprint(),
                             "handover_model": model.digest if model else None,
                             "weights": sorted(self.weights.items())}, sort_keys=True)
        return hashlib.sha256(source.encode()).hexdigest()[:16]

    def scores(self, request: JudgeRequest, weights: Mapping[str, float] | None = None,
               correction: LocalCorrection | None = None) -> dict[frozenset, PairScore]:
        w = self.weights if weights is None else weights
        scores = {}
        for p in request.evidence.get("pairs", []):
            score = score_pair(p, self.params, w)
            scores[frozenset((p["unit_a"], p["unit_b"]))] = correction.apply(score, p) if correction else score
        return mark_mixtures(scores, self.params)

    def judge(self, request: JudgeRequest, policy: str = "balanced",
              weights: Mapping[str, float] | None = None, correction: LocalCorrection | None = None) -> Verdict:
        rule = get_policy(policy)
        units = list(request.unit_ids)
        scores = self.scores(request, weights, correction)
        if len(units) < 2 or any(frozenset((a, b)) not in scores for a, b in combinations(units, 2)):
            return Verdict.failed(request, "evidence is missing for some pairs of this group", self.name, None, policy)
        chains = request.evidence.get("chains", []) or []
        w = self.weights if weights is None else weights
        parts = self._parts(units, scores, rule, chains, w)
        cut = logit(rule.merge_threshold)
        if parts:
            weakest = [weakest_carrying(part, scores, self.params, cut, rule.abstain_on_thin, w) for part in parts]
            shown = min(weakest, key=lambda x: x.log_odds)
            decision, confidence = "merge", merge_confidence([x.log_odds for x in weakest], self.params)
        else:
            strongest = max(scores.values(), key=lambda s: s.log_odds)
            thin = [s for s in scores.values() if s.thin and s.log_odds >= cut and not s.veto]
            if thin and rule.abstain_on_thin:
                decision, shown = "abstain", max(thin, key=lambda s: s.log_odds)
                confidence = 0.5
            else:
                decision, shown = "not merge", strongest
                confidence = keep_apart_confidence(strongest.log_odds, self.params)
        return Verdict(
            group_id=request.group_id, unit_ids=units, decision=decision, confidence=confidence,
            merge_groups=parts, reasoning=self._reasoning(units, parts, shown, rule, decision, scores),
            judge=self.name, model=None, policy=rule.name, reports=dict(shown.reasons),
        )

    def _parts(self, units: list, scores: Mapping[frozenset, PairScore], rule: Policy,
               chains: Sequence[Sequence[Any]], weights: Mapping[str, float]) -> list[list[Any]]:
        """The policy's partition, nested in the parts of the policy it sits ``within`` (see ``Policy``)."""
        outer = self._parts(units, scores, get_policy(rule.within), chains, weights) if rule.within else [units]
        return [part for group in outer for part in partition(
            group, scores, rule.merge_threshold, chains, block_thin=rule.abstain_on_thin, params=self.params,
            pool=lambda links: pooled_links(links, self.params, weights))]

    @staticmethod
    def _reasoning(units: list, parts: list[list], shown: PairScore, rule: Policy, decision: str,
                   scores: Mapping[frozenset, PairScore]) -> str:
        pair = f"units {shown.unit_a} and {shown.unit_b}"
        shown_keys = ("crosscorrelograms", "waveforms", "pca", "amplitudes", "drift", "handover_model", "examples")
        evidence = "; ".join(shown.reasons[k] for k in shown_keys if k in shown.reasons)
        if decision == "merge":
            merged = {u for part in parts for u in part}
            lead = "Merge " + " and ".join("units " + ", ".join(map(str, part)) for part in parts)
            rest = [_left_out(u, parts, scores) for u in units if u not in merged]
            if rest:
                lead += f" (not {'; '.join(rest)})"
            return (f"{lead}: P(one neuron) {shown.probability:.2f} for the weakest pair, {pair} "
                    f"({rule.name} policy). {evidence}.")
        if decision == "abstain":
            return (f"Abstain: too few coincidences expected for the crosscorrelogram to decide for {pair}, and the "
                    f"{rule.name} policy does not merge on shape alone (P(one neuron) {shown.probability:.2f}). "
                    f"{evidence}.")
        return f"Keep separate: P(one neuron) at most {shown.probability:.2f}, for {pair} ({rule.name} policy). {evidence}."

    def judge_many(
        self,
        requests: Sequence[JudgeRequest],
        examples: Sequence[Example] = (),
        policy: str = "balanced",
        on_verdict: VerdictCallback | None = None,
    ) -> list[Verdict]:
        """Judge each request in turn; labelled examples correct the built-in model where they speak.

        Good and bad examples (their pair evidence) add a local correction to the log-odds of
        pairs whose terms and evidence numbers resemble theirs (:func:`~.learning.fit_local_correction`): an example's
        own case lands on its label's side of the policy's threshold, a case unlike every
        example keeps its built-in verdict and confidence exactly. With ``min_pairs_for_refit``
        labelled pairs or more, the term weights are first refit globally as well
        (:func:`~.calibrate.fit_weights`, the built-in weights as the prior): a global refit
        from a few examples moved unrelated groups as much as the corrected one, so it waits
        for many. What was learned is kept in ``learned`` for the run record.
        """
        weights, correction = None, None
        self.learned = None
        if examples:
            from .calibrate import fit_weights, labelled_pairs

            refit = len(labelled_pairs(examples)) >= self.params.min_pairs_for_refit
            if refit:
                weights, record = fit_weights(examples, self.params, self.weights, policy=policy)
            correction = fit_local_correction(examples, get_policy(policy).merge_threshold, self.params,
                                              weights if refit else self.weights)
            self.learned = {**correction.record, "refit": refit}
            if refit:
                self.learned["weights"] = record["weights"]
        verdicts = []
        for request in requests:
            verdict = self.judge(request, policy, weights, correction)
            if on_verdict is not None:
                on_verdict(verdict)
            verdicts.append(verdict)
        return verdicts
