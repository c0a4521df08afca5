"""One pair's evidence as log-likelihood ratios (one neuron vs two), one term per kind of evidence.

Shared by the metrics judge (which sums and partitions them), the calibration on the user's
recording and the learning from examples (which reweight them). Every number comes from
``JudgeParams``; the reasons quote the evidence numbers so a person can check each term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple

from scipy.special import gammainc

from ..evidence.params import DEFAULT_EVIDENCE_PARAMS
from .handover_model import load_model
from .params import DEFAULT_JUDGE_PARAMS, JudgeParams

TERMS: tuple[str, ...] = ("crosscorrelograms", "duplicate", "waveforms", "continuity", "burst", "handover", "drift")
"""The log-odds terms, in the order of a learned weight vector (an offset follows them)."""


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _get(e: Mapping[str, Any], key: str, default: float) -> float:
    value = e.get(key, default)
    return float(value) if finite(value) else default


def _moved(e: Mapping[str, Any], flag: str, distance_um: float) -> bool:
    """The evidence's own verdict on whether the probe moved (``flag``); for a record made before
    it carried one, the distance against the evidence's default threshold (one number, one table)."""
    value = e.get(flag)
    if isinstance(value, bool):
        return value
    return distance_um >= DEFAULT_EVIDENCE_PARAMS.drift_min_displacement_um


def _clip(value: float, bounds: tuple[float, float]) -> float:
    return float(min(bounds[1], max(bounds[0], value)))


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, x))))


def logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


class RefractoryCount(NamedTuple):
    """Coincidences observed and expected in a pair's refractory window, one neuron's allowed share
    of them, and how far apart the two units sit."""

    observed: float
    expected: float
    allowed: float
    distance_um: float


@dataclass
class PairScore:
    """One pair's terms, their calibrated sum, and the flags the partition needs."""

    unit_a: Any
    unit_b: Any
    log_odds: float
    duplicate: bool = False
    terms: dict[str, float] = field(default_factory=dict)
    thin: bool = False
    """Too few coincidences expected for the CCG to decide, and no duplicate or hand-over to go on."""
    handover: bool = False
    """A clean hand-over: one unit takes over as the other fades, matching at that moment."""
    veto: bool = False
    """Decisive evidence of two neurons (a powered CCG without a dip, or a significant gap)."""
    on_trajectory: bool = False
    """Units that follow each other in time (or take turns with the probe's motion) and sit at one
    place once the motion is removed: fragments of one drifting neuron, whose templates may differ
    however far apart."""
    sequential: bool = False
    """The units follow each other in time (presence overlap below ``handover_presence``)."""
    duplicate_log_odds: float = 0.0
    """The part of ``log_odds`` that the duplicate peak carries (calibrated). The partition orders
    its joins without it (see ``metrics.partition``)."""
    starved: bool = False
    """A unit has fewer than ``min_unit_spikes`` spikes: no evidence can speak for the pair, which
    never merges and blocks any join it lies across."""
    unlike_shapes: bool = False
    """Units that follow each other whose shapes clearly disagree (waveforms term under
    ``thin_min_waveforms_log_odds``), or lean apart while their corrected positions only partly agree
    or no clean hand-over joins them (``thin_leaning_waveforms_log_odds``, ``thin_min_drift_log_odds``,
    ``thin_leaning_min_handover_log_odds``): while the pair is ``thin``,
    its place on one trajectory and a hand-over do not make them one neuron alone, so it never
    carries a join (``usable``), though as a drifting neuron's far ends it need not block one. Whatever lifts ``thin`` (a pooled dip, a
    good example) lifts this with it."""
    copy: Any = None
    """The copy of a duplicate pair: its smaller unit, when at least ``copy_restates_min_fraction``
    of its spikes are shared (the pair's ``duplicate_fraction``); else None."""
    refractory: RefractoryCount | None = None
    """The pair's refractory count, for pooling over the pairs of a join (``pool_refractory``); None
    for a duplicate."""
    mixed: frozenset = frozenset()
    """The pair's units whose own spike train breaks the refractory period
    (``JudgeParams.mixed_unit_min_contamination``): likely spikes of two neurons, so what is alike
    between such a unit and another need not hold for all of its spikes."""
    mixture: frozenset = frozenset()
    """The pair's units that duplicate units of distinct neurons (``metrics.mark_mixtures``, read from
    the whole group): the spikes they share with one partner are not the spikes they share with
    another, so none of their links speaks for their leftover spikes."""
    fitted_two: bool = False
    """The hand-over model reads the pair as two neurons beyond doubt (P(two) above
    ``JudgeParams.handover_model_blocks_above``; ``cap_thin_handover``): like places off one
    trajectory, evidence of two neurons that a join does not pass over, unless units of the join lead
    from one unit to the other step by step (``metrics._chained``). Not a veto."""
    reasons: dict[str, str] = field(default_factory=dict)

    @property
    def probability(self) -> float:
        return sigmoid(self.log_odds)

    @property
    def plain_log_odds(self) -> float:
        """``log_odds`` without what the duplicate peak carries: how the partition weighs the pair
        (a copy is sure to share its partner's spikes and says nothing of the rest)."""
        return self.log_odds - self.duplicate_log_odds

    @property
    def most_against(self) -> float:
        """The lowest term (0 without terms): how far the single strongest piece of evidence speaks
        against one neuron, whatever the others sum to."""
        return min(self.terms.values(), default=0.0)


def _poisson_log_pmf(count: float, rate: float) -> float:
    rate = max(rate, 1e-12)
    return count * math.log(rate) - rate - math.lgamma(count + 1.0)


def _poisson_log_mixture(count: float, expected: float, lo: float, hi: float) -> float:
    """Log-probability of ``count`` coincidences when their rate is ``q·expected``, ``q`` uniform on [lo, hi]."""
    if hi - lo < 1e-9 or expected <= 0:
        return _poisson_log_pmf(count, expected * hi)
    mass = float(gammainc(count + 1.0, hi * expected) - gammainc(count + 1.0, lo * expected))
    if mass <= 1e-300:  # both ends deep in one tail: the nearer end stands for the interval
        return _poisson_log_pmf(count, (lo if count < lo * expected else hi) * expected)
    return math.log(mass) - math.log(expected * (hi - lo))


def refractory_log_odds(observed: float, expected: float, allowed: float, p: JudgeParams) -> float:
    """The CCG term: Poisson log-likelihood ratio of a refractory count, one neuron against two.

    One neuron's count is between ``contamination_floor`` and its units' ``allowed`` share of what
    independent firing predicts (an autocorrelogram's contamination overstates the foreign share
    when a unit holds double detections); two neurons' count between
    ``distinct_min_refractory_ratio`` and all of it (a sorter loses or misplaces one of two
    overlapping spikes of neighbours). Clipped to ``ccg_bounds``.
    """
    ratio = _poisson_log_mixture(observed, expected, min(p.contamination_floor, allowed), allowed) - \
        _poisson_log_mixture(observed, expected, min(p.distinct_min_refractory_ratio, 1.0), 1.0)
    return _clip(ratio, p.ccg_bounds)


def pool_refractory(links: list[PairScore], p: JudgeParams) -> tuple[float, float, float] | None:
    """The CCG term of a join's pairs pooled: their refractory counts summed, so that pairs each too
    thin to decide speak together (a bursting cell cut into six slices left pairs with 0.3-3
    coincidences expected and none seen, 13 across one join). Only for units at one place (every
    pair across within ``pool_max_distance_um``). Returns the term with the summed observed and
    expected counts; None otherwise, below two counted pairs or without
    ``min_expected_coincidences`` in the pool."""
    counted = [s.refractory for s in links if s.refractory is not None]
    if any(c.distance_um > p.pool_max_distance_um for c in counted):
        return None  # units at other places: neighbours, whose collision dips a pool would add up
    if len(counted) < 2:
        return None
    observed, expected = sum(c.observed for c in counted), sum(c.expected for c in counted)
    if expected < p.min_expected_coincidences:
        return None
    return refractory_log_odds(observed, expected, max(c.allowed for c in counted), p), observed, expected


def _gap_term(ratio: float, gap_p: float, expected: float, p: JudgeParams) -> float:
    if not finite(ratio) or expected < p.gap_min_expected:
        return 0.0
    if gap_p < p.gap_p and ratio < p.gap_max_ratio:
        return _clip(-p.gap_log_odds_per_decade * math.log10(1.0 / max(gap_p, 1e-300)), p.gap_bounds)
    return p.continuous_log_odds if ratio >= p.continuous_ratio else 0.0


def mixed_placing(e: Mapping[str, Any], p: JudgeParams = DEFAULT_JUDGE_PARAMS) -> bool:
    """Whether the record's ``distance_um`` sets one unit's fitted place beside the other's centre of mass.

    ``distance_um`` keeps each unit's own place; the drift numbers place both by one localizer
    (both fits, or both centres of mass where the view replaced either fit). Their raw distance
    follows from those numbers: the motion correction moves depth alone, so the corrected
    separation keeps the distance across depth, and the raw depth difference is
    ``drift_raw_shift_um``. Where ``distance_um`` differs from it by more than
    ``p.mixed_placing_tolerance_um``, the two placings are of different localizers.
    """
    raw_shift = _get(e, "drift_raw_shift_um", float("nan"))
    separation = _get(e, "drift_separation_um", float("nan"))
    displacement = _get(e, "drift_displacement_um", float("nan"))
    own = _get(e, "distance_um", float("nan"))
    if not all(finite(x) for x in (raw_shift, separation, displacement, own)):
        return False
    across = max(separation ** 2 - (raw_shift - displacement) ** 2, 0.0)
    return abs(own - math.sqrt(raw_shift ** 2 + across)) > p.mixed_placing_tolerance_um


def pair_terms(e: Mapping[str, Any], p: JudgeParams = DEFAULT_JUDGE_PARAMS) -> PairScore:
    """The uncalibrated terms of one pair (``log_odds`` is their plain sum)."""
    reasons: dict[str, str] = {}
    terms = dict.fromkeys(TERMS, 0.0)
    expected = _get(e, "ccg_expected_refractory", 0.0)
    observed = _get(e, "ccg_refractory_count", 0.0)
    lag = _get(e, "duplicate_lag_ms", _get(e, "template_shift_ms", 0.0))
    copy_peak = _get(e, "duplicate_fraction", 0.0) >= p.duplicate_fraction and \
        _get(e, "duplicate_excess", 0.0) >= p.duplicate_excess
    # a unit whose share f of spikes is foreign has contamination c = 1 - (1 - f)² (pairs holding a
    # foreign spike violate at chance); one neuron's two units then coincide at chance wherever either
    # spike is foreign: a share 1 - (1 - f_a)(1 - f_b) = 1 - sqrt((1 - c_a)(1 - c_b))
    clean = [1.0 - min(max(_get(e, key, 0.0), 0.0), 1.0) for key in ("contamination_a", "contamination_b")]
    own = 1.0 - math.sqrt(clean[0] * clean[1])
    allowed = min(p.contamination_cap, max(p.contamination_floor, own))
    overlap = _get(e, "presence_overlap", 1.0)
    sequential = overlap < p.handover_presence and e.get("comparison_window", "handover") == "handover"
    powered = expected >= p.min_expected_coincidences
    refractory = refractory_log_odds(observed, expected, allowed, p)
    one_neuron_dip = powered and observed <= p.one_neuron_dip_factor * allowed * expected
    # a copy peak speaks for the spikes it holds; when they are under half the smaller unit's, the
    # rest must be one neuron too, and the refractory window beside the peak tests them: filled as by
    # independent trains, one unit holds copies of the other's spikes beside its own neuron's
    copies_alone = copy_peak and powered and _get(e, "duplicate_fraction", 0.0) < p.partial_copy_max_fraction \
        and refractory <= p.veto_log_odds
    duplicate = copy_peak and not copies_alone
    if duplicate:
        terms["duplicate"] = p.duplicate_log_odds
        reasons["crosscorrelograms"] = (
            f"{100 * _get(e, 'duplicate_fraction', 0):.0f}% of spikes coincide within ±0.25 ms of the "
            f"{lag:+.2f} ms template lag ({_get(e, 'duplicate_excess', 0):.0f}x chance): the same spikes detected twice")
    else:
        terms["crosscorrelograms"] = refractory
        if not powered:
            verdict = "too few coincidences expected to tell"
        elif one_neuron_dip:
            verdict = "a refractory dip, as in one neuron"
        elif observed < p.distinct_min_refractory_ratio * expected:
            verdict = ("a partial dip, which a sorter also leaves between neighbours when it resolves one of "
                       "two overlapping spikes")
        else:
            verdict = "no refractory dip, as for two neurons"
        reasons["crosscorrelograms"] = (
            f"{observed:.0f} coincidences within ±1.5 ms of the {lag:+.2f} ms template lag where independent "
            f"firing predicts {expected:.1f}: {verdict}; merged contamination "
            f"{_get(e, 'contamination_merged', float('nan')):.2f}")
        if copies_alone:
            reasons["crosscorrelograms"] += (
                f"; {100 * _get(e, 'duplicate_fraction', 0):.0f}% of the smaller unit's spikes coincide at "
                f"{lag:+.2f} ms, but the rest fire independently: copies of one unit's spikes in the other, not one "
                "neuron seen twice")
    forward, backward = _get(e, "burst_forward", 0.0), _get(e, "burst_backward", 0.0)
    dip = (not powered) or observed <= 2.0 * allowed * expected
    if (_get(e, "burst_asymmetry_p", 1.0) < p.burst_p and max(forward, backward) >= p.burst_min_ratio *
            max(1.0, min(forward, backward)) and dip and not duplicate):
        terms["burst"] = p.burst_log_odds
        reasons["crosscorrelograms"] += (f"; a one-sided burst peak ({forward:.0f} vs {backward:.0f} pairs "
                                         f"just after vs before), as in one bursting neuron")
    similarity = _get(e, "template_similarity_denoised", _get(e, "template_similarity", 0.0))
    # a bursting cell's smaller spikes are wider: its amplitude split matches once the larger template
    # is widened, and keeps its spatial footprint (a widening alone also lifts distinct neighbours)
    stretch = _get(e, "template_similarity_stretch", float("nan"))
    factor = _get(e, "template_stretch", 1.0)
    footprint = _get(e, "template_footprint_similarity", 0.0)
    widened = finite(stretch) and stretch > similarity and factor > 1.0 and footprint >= p.burst_footprint_min
    shape_similarity = similarity
    # the smaller unit is a wider copy of the larger one when the widening explains a real share
    # of what plain scaling leaves unexplained (1 - cos², both cosines noise-corrected)
    unexplained = max(1.0 - min(similarity, 1.0) ** 2, 1e-9)
    decrement = _get(e, "template_amplitude_ratio", 1.0) <= p.burst_max_amplitude_ratio
    burst_shape = widened and ((stretch ** 2 - similarity ** 2) / unexplained >= p.stretch_min_explained
                               or (factor >= p.burst_min_widening and decrement))
    feature = _gap_term(_get(e, "continuity_ratio", float("nan")), _get(e, "continuity_gap_p", 1.0),
                        _get(e, "continuity_expected", 0.0), p)
    amplitude = 0.0
    if e.get("same_main_channel", False) and not duplicate:  # a duplicate's amplitudes are read at another lag
        amplitude = _gap_term(_get(e, "amplitude_continuity_ratio", float("nan")),
                              _get(e, "amplitude_continuity_gap_p", 1.0),
                              _get(e, "amplitude_continuity_expected", 0.0), p)
    terms["continuity"] = min(feature, amplitude) if min(feature, amplitude) < 0 else max(feature, amplitude)
    if powered and not duplicate and widened and terms["crosscorrelograms"] >= p.dip_excuses_gap_log_odds:
        # a decisive refractory dip is the physics of one neuron; a feature-space gap beside it is
        # how real sorters split bursting cells (amplitude decrement, measured on tridesclous2's
        # burst splits), so it does not count against. A weak dip does not excuse it: a sorter that
        # resolves one of two overlapping spikes carves one between neighbours. Nor does any dip
        # beside a gap between units that are not a burst's slices (the smaller a widened copy of
        # the larger, on the same channels): that is the collision dip of alike neighbours (see
        # ``JudgeParams.plain_gap_log_odds``)
        terms["continuity"] = max(terms["continuity"], 0.0)
    # units that take turns with the probe's motion: slices cut by depth as a neuron drifts back and
    # forth, which fire in the same stretches of the recording but at different phases of the
    # motion. Like units that follow each other, they are one neuron only when they lie on one
    # trajectory (the drift term below)
    moving = _moved(e, "drift_motion_registered", _get(e, "drift_motion_range_um", 0.0))
    turns = not sequential and not duplicate and moving and _get(e, "drift_turns", 0.5) >= p.motion_turns_min
    if sequential or turns:
        # at a hand-over the waveforms drift: a real sorter's drift fragments of one neuron show
        # d′ 2-11 there (measured on spykingcircus2 output), so a gap is no evidence of two neurons
        terms["continuity"] = max(terms["continuity"], 0.0)
    if burst_shape and not duplicate and not sequential \
            and terms["crosscorrelograms"] >= p.burst_shape_min_ccg_log_odds:
        # the smaller unit's spikes are wider copies of the larger one's, seen on the same channels:
        # the amplitude decrement and broadening of a bursting cell's later spikes, which puts a gap
        # between a sorter's amplitude slices of it. Only while the refractory count shows no more
        # than a weak excess: a contaminated unit's flat CCG caps the CCG term, not the gap's.
        terms["continuity"] = max(terms["continuity"], 0.0)
    if terms["burst"] > 0:
        # a burst's amplitude decrement separates its first spikes from the later ones: the gap is
        # explained by one neuron's own dynamics, so it is not evidence of two
        terms["continuity"] = max(terms["continuity"], 0.0)
    # one place on a probe that stayed still: a gap between two clouds that abut is a cut along one
    # neuron's amplitudes, unless a powered CCG shows the partial dip of alike neighbours' collisions
    # (see ``JudgeParams.still_slice_footprint`` and ``still_slice_max_dprime``)
    still_cut = (terms["continuity"] < 0 and not moving and not duplicate and footprint >= p.still_slice_footprint
                 and _get(e, "pca_dprime", math.inf) <= p.still_slice_max_dprime
                 and (not powered or one_neuron_dip))
    if still_cut:
        terms["continuity"] = 0.0
    if not (duplicate or widened) and terms["continuity"] < 0:
        # a gap left between units firing at the same time (the excuses above cleared it for units
        # that follow each other, take turns with the motion or show a burst peak) that no widening
        # explains: one neuron's spikes form one cloud
        terms["continuity"] = min(terms["continuity"], p.plain_gap_log_odds)
    # a burst's later spikes, smaller and wider, on about the same channels as its first ones and with
    # no gap left between the clouds: firing together, they are one cell's slices even where the
    # localization puts them apart (see ``JudgeParams.concurrent_widened_footprint``)
    burst_slice = (not sequential and not duplicate and finite(stretch) and factor > 1.0
                   and stretch - similarity >= p.concurrent_widened_min_gain
                   and footprint >= p.concurrent_widened_footprint and terms["continuity"] >= 0.0)
    widened_shape = widened or (burst_slice and p.burst_slice_widened_shape)
    if widened_shape:
        similarity = stretch
    if duplicate:
        # the same spikes cut at another lag: compare the part both windows hold
        similarity = max(similarity, _get(e, "template_similarity_overlap", similarity))
    at_handover = _get(e, "handover_similarity", float("nan"))
    shown = similarity
    if sequential and finite(e.get("handover_similarity")):
        shown = max(similarity, at_handover)
    moved_similarity = _get(e, "drift_template_similarity", float("nan"))
    # how far the probe moved between the two units' lives (evidence/motion.py), and whether that counts
    displacement = _get(e, "drift_displacement_um", 0.0)
    moved = _moved(e, "drift_moved", abs(displacement))
    carried = sequential and finite(moved_similarity) and moved
    if carried:
        # the probe moved between the two units' lives: one neuron's later template is its earlier one
        # carried by the motion, or its last spikes before the hand-over; the templates as they are
        # compare the same raw place at other times, which a neighbour also occupies
        shown = max(moved_similarity, at_handover) if finite(at_handover) else moved_similarity
    centre = p.moved_similarity_centre if carried else p.similarity_centre
    terms["waveforms"] = _clip(p.similarity_slope * (shown - centre), p.similarity_bounds)
    # widened as far as the evidence tries and still short of a match, on the same channels and near:
    # a burst's later spikes broaden beyond the search, so the shape left over says nothing of two cells
    edge = DEFAULT_EVIDENCE_PARAMS.max_stretch - DEFAULT_EVIDENCE_PARAMS.stretch_step / 2
    # how near: where the own places set a fit beside a centre of mass, by one localizer
    mixed = mixed_placing(e, p)
    near = _get(e, "distance_um", math.inf)
    one_localizer = p.widest_stretch_one_localizer and mixed
    if one_localizer:
        near = _get(e, "drift_separation_um", near)
    widest = (terms["waveforms"] < 0 and not sequential and not duplicate and finite(stretch) and factor >= edge
              and footprint >= p.concurrent_widened_footprint
              and near <= p.widest_stretch_max_distance_um)
    if widest:
        terms["waveforms"] = 0.0
    reasons["waveforms"] = (
        f"templates {100 * _get(e, 'template_similarity', 0):.0f}% alike ({100 * shape_similarity:.0f}% with noise "
        f"removed{f', {100 * stretch:.0f}% with the larger widened {factor:.2f}x' if widened_shape else ''}"
        f"{f', {100 * at_handover:.0f}% at the hand-over' if sequential and finite(at_handover) else ''}"
        f"{f', {100 * moved_similarity:.0f}% once moved by the probe motion' if carried else ''}), "
        f"amplitude ratio {_get(e, 'template_amplitude_ratio', float('nan')):.2f}, "
        f"{_get(e, 'distance_um', float('nan')):.0f} µm apart"
        + (f" ({near:.0f} µm by one localizer)" if widest and one_localizer else "")
        + ("; the smaller is the larger widened as far as compared, on the same channels: a burst's later "
           "spikes broaden further, so the shape left over is not held against one cell" if widest else ""))
    reasons["pca"] = (
        f"PCA on {int(_get(e, 'shared_channels', 0))} shared channels ({e.get('comparison_window', 'all')} spikes): "
        f"d′ {_get(e, 'pca_dprime', float('nan')):.2f}, valley/peak {_get(e, 'continuity_ratio', float('nan')):.2f} "
        f"(p {_get(e, 'continuity_gap_p', 1.0):.1g}); amplitudes valley/peak "
        f"{_get(e, 'amplitude_continuity_ratio', float('nan')):.2f}: "
        + ("a gap between two clouds" if terms["continuity"] < 0 else
           "one continuous cloud" if terms["continuity"] > 0 else "no clear answer")
        + (f"; the units take turns with the probe's motion (ROC area {_get(e, 'drift_turns', 0.5):.2f}), "
           "so a gap is the sorter's cut along the drift" if turns else "")
        + (f"; seen alike on every channel (footprint {footprint:.3f}) on a probe that did not move, they sit "
           "at one place, so the gap is the sorter's cut along one neuron's amplitudes" if still_cut else ""))
    handover = False
    if sequential:
        amp = _get(e, "amplitude_handover", float("nan"))
        mismatch = finite(amp) and amp < p.handover_amplitude_bad
        # amplitudes read on two channels (each unit's own largest) differ whatever the neuron
        two_channels = mismatch and not e.get("same_main_channel", False)
        if finite(amp) and amp >= p.handover_amplitude_good:
            terms["handover"] = p.handover_log_odds
        elif mismatch and not two_channels:
            terms["handover"] = p.handover_mismatch_log_odds
        handover = terms["handover"] > 0 and shown >= p.handover_similarity
        reasons["amplitudes"] = (
            f"one unit takes over as the other fades (presence overlap {overlap:.2f}, gap "
            f"{_get(e, 'handover_gap_s', float('nan')):.0f} s); amplitudes at the hand-over overlap {amp:.2f}"
            + (" (read on two channels, each unit's largest: not held against one neuron)" if two_channels else ""))
    else:
        reasons["amplitudes"] = (
            f"both units fire together (presence overlap {overlap:.2f}); amplitude distributions overlap "
            f"{_get(e, 'amplitude_overlap_concurrent', float('nan')):.2f} while both fire")
    on_trajectory = False
    if (sequential or turns) and finite(e.get("drift_log_ratio")):
        # drift: where the two units are once the probe's motion is removed (evidence/motion.py)
        drift = _clip(_get(e, "drift_log_ratio", 0.0), p.drift_bounds)
        on_trajectory = moved and _get(e, "drift_z", math.inf) <= p.drift_max_z
        # for one neuron only on the trajectory (the probe moved and the corrected positions agree
        # within ``drift_max_z`` tolerances): agreement without motion is what any two neighbours
        # show; a separation counts against whatever the motion, and vetoes when decisive, once a
        # neuron's own drift (up to ``drift_max_gain`` times the registered one) cannot explain it
        separated = _clip(_get(e, "drift_gain_log_ratio", _get(e, "drift_log_ratio", 0.0)), p.drift_bounds)
        terms["drift"] = drift if on_trajectory else min(separated, 0.0)
        # the later unit sits on the side the motion came from: a neuron does not move against the probe
        against = moved and _get(e, "drift_raw_shift_um", 0.0) * math.copysign(1.0, displacement) <= \
            -p.drift_against_um
        if against:
            on_trajectory = False
            terms["drift"] = min(terms["drift"], p.drift_against_log_odds)
        reasons["drift"] = (
            f"the probe moved {displacement:+.0f} µm between the two units' lives and they "
            f"sit {_get(e, 'drift_raw_shift_um', 0):+.0f} µm apart; with the motion removed "
            f"{_get(e, 'drift_separation_um', float('nan')):.0f} µm apart (tolerance "
            f"{_get(e, 'drift_tolerance_um', float('nan')):.0f} µm): "
            + ("the later unit lies against the motion, as for two neurons" if against else
               "one trajectory, as for one drifting neuron" if on_trajectory else
               "two places, as for two neurons" if terms["drift"] < 0 else "no clear answer"))
    veto = not duplicate and powered and terms["crosscorrelograms"] <= p.veto_log_odds
    # a separation vetoes only where a motion was registered (``moving``): with none (a static probe,
    # too few units, a registration that failed) a drift hand-over cannot be placed on its trajectory
    veto = veto or (not duplicate and moving and terms["drift"] <= p.veto_log_odds)
    apart = _get(e, "drift_separation_um", float("nan"))
    own_places = _get(e, "distance_um", apart)
    placing = "with the probe's motion removed"
    # the units' own places set beside a fit's and a centre of mass's: no second localizer, and one
    # neuron's units come out tens of µm apart that way; the footprints must differ too
    mixed_aside = p.concurrent_either_localizer and mixed and \
        footprint >= p.mixed_placing_same_footprint
    if p.concurrent_either_localizer and finite(apart) and own_places > apart and not mixed_aside:
        apart, placing = own_places, "as each unit is localized"  # either placing apart: two places
    if not sequential and finite(apart) and apart >= p.concurrent_max_separation_um:
        # units firing at the same time in two places: motion or none, one neuron is in one place;
        # the same footprint across channels says one place whatever the localization estimated
        if footprint >= p.concurrent_same_footprint:
            reasons["drift"] = (f"the units fire at the same time, localized {apart:.0f} µm apart but seen in the "
                                f"same proportions on every channel (footprint {footprint:.3f}): one place, "
                                f"as one neuron's spikes are; the localization is what differs")
        elif burst_slice:
            reasons["drift"] = (f"the units fire at the same time, localized {apart:.0f} µm apart, but the smaller "
                                f"is a wider copy of the larger on about the same channels (footprint "
                                f"{footprint:.3f}) with no gap between them: a burst's later spikes, which the "
                                f"localization misplaces")
        else:
            terms["drift"] = min(terms["drift"], p.concurrent_separation_log_odds)
            reasons["drift"] = (f"the units fire at the same time {apart:.0f} µm apart {placing} (one "
                                f"neuron's spikes come from one place): two neurons")
            veto = veto or (not duplicate and terms["drift"] <= p.veto_log_odds)
    elif not sequential and mixed_aside and own_places >= p.concurrent_max_separation_um:
        reasons["drift"] = (f"the units fire at the same time, {own_places:.0f} µm apart as each unit is localized, "
                            f"but that sets one unit's fitted place beside the other's centre of mass; by one "
                            f"localizer {apart:.0f} µm apart, and seen in about the same proportions on every "
                            f"channel (footprint {footprint:.3f}): not two places")
    # without CCG power only a hand-over in which the units really follow one another is more
    # than shape: units that take turns back and forth are thin evidence (conservative abstains)
    follows = _get(e, "handover_gap_fraction", 0.0) >= -p.handover_max_interleave
    thin = not duplicate and not powered and not (handover and follows)
    starved = min(_get(e, "num_spikes_a", math.inf), _get(e, "num_spikes_b", math.inf)) < p.min_unit_spikes
    if starved:
        reasons["crosscorrelograms"] += f"; a unit has under {p.min_unit_spikes} spikes: too few to merge on"
    unlike = sequential and terms["waveforms"] < p.thin_min_waveforms_log_odds
    # shapes leaning apart with corrected positions only partly agreeing, or without a clean
    # hand-over: more often two drifting neighbours' fragments, one taking over where the other
    # ends, than one neuron's
    leaning = sequential and terms["waveforms"] < p.thin_leaning_waveforms_log_odds and \
        (terms["drift"] < p.thin_min_drift_log_odds or terms["handover"] < p.thin_leaning_min_handover_log_odds)
    if unlike and thin:
        reasons["waveforms"] += ("; with too few coincidences to tell, a hand-over and one place do not make "
                                 "shapes this unlike one neuron")
    elif leaning and thin:
        reasons["waveforms"] += ("; with too few coincidences to tell, shapes leaning apart do not make one neuron "
                                 "on their own without places that agree closely and a clean hand-over")
    unlike = unlike or leaning
    mixed = frozenset(e[f"unit_{side}"] for side in "ab"
                      if _get(e, f"contamination_{side}", 0.0) >= p.mixed_unit_min_contamination)
    copy = None
    if duplicate and _get(e, "duplicate_fraction", 0.0) >= p.copy_restates_min_fraction:
        copy = e["unit_a"] if _get(e, "num_spikes_a", 0.0) <= _get(e, "num_spikes_b", 0.0) else e["unit_b"]
    return PairScore(unit_a=e["unit_a"], unit_b=e["unit_b"], log_odds=float(sum(terms.values())),
                     duplicate=duplicate, terms=terms, thin=thin, handover=handover and not veto and not starved,
                     veto=veto, reasons=reasons, on_trajectory=on_trajectory and not veto and not starved,
                     sequential=sequential, starved=starved,
                     unlike_shapes=unlike, copy=copy, mixed=mixed,
                     refractory=None if duplicate else RefractoryCount(observed, expected, allowed,
                                                                       _get(e, "distance_um", math.inf)))


def usable(score: PairScore, cut: float, block_thin: bool) -> bool:
    """Whether a pair may merge under a policy: clears the logit ``cut``, is not vetoed nor starved
    (a unit with too few spikes), does not rest on place and hand-over against its shapes
    (``unlike_shapes``), and is not thin where the policy (``block_thin``) does not merge on thin
    evidence."""
    return (score.log_odds >= cut and not (block_thin and score.thin) and not score.veto and not score.starved
            and not (score.thin and score.unlike_shapes))


def score_pair(e: Mapping[str, Any], params: JudgeParams = DEFAULT_JUDGE_PARAMS,
               weights: Mapping[str, float] | None = None) -> PairScore:
    """The pair's calibrated log-odds: ``scale · Σ w_k·term_k + offset`` (weights 1 unless learned)."""
    score = pair_terms(e, params)
    w = dict(weights or {})
    total = sum(w.get(k, 1.0) * v for k, v in score.terms.items()) + w.get("offset", 0.0)
    score.log_odds = float(params.log_odds_scale * total + params.log_odds_offset)
    score.duplicate_log_odds = float(params.log_odds_scale * w.get("duplicate", 1.0) * score.terms["duplicate"])
    return cap_thin_handover(score, e, params)


def thin_handover(score: PairScore) -> bool:
    """A thin pair that follows another on one motion-corrected trajectory, not vetoed: the pairs the
    hand-over model caps (``cap_thin_handover``) and is fitted on (``scripts/fit_handover_model.py``)."""
    return score.thin and score.sequential and score.on_trajectory and not score.veto


def cap_thin_handover(score: PairScore, e: Mapping[str, Any], params: JudgeParams = DEFAULT_JUDGE_PARAMS) -> PairScore:
    """A thin pair that follows another on one trajectory, its P(one neuron) capped at one minus the
    fitted model's P(two neurons) (``JudgeParams.handover_model``): its terms each read one neuron for
    two drifting neighbours' fragments as well, and only together do they tell (``handover_model.py``).
    Above ``params.handover_model_blocks_above`` the pair no longer counts as on one trajectory nor as a
    hand-over (``PairScore.fitted_two``): it blocks a join across it, as two drifting neurons' pairs should,
    unless slices of the join lead from one unit to the other (``metrics._chained``)."""
    model = load_model(params.handover_model)
    if model is None or not thin_handover(score):
        return score
    two = model.log_odds_two(e, score.log_odds)
    cap, blocks = -two, sigmoid(two) > params.handover_model_blocks_above
    if cap >= score.log_odds and not blocks:
        return score
    reason = (f"fragments that hand over on one trajectory with too few coincidences to tell: a model fitted on "
              f"sorter-made drift fragments puts P(one neuron) at {sigmoid(cap):.2f} from these numbers together")
    if cap < score.log_odds:
        reason += f" (the terms alone said {sigmoid(score.log_odds):.2f})"
        score.log_odds = float(cap)
    if blocks:
        reason += ("; two neurons beyond doubt for this pair alone: a join passes over it only along units "
                   "that lead from one to the other")
        score.fitted_two, score.on_trajectory, score.handover = True, False, False
    score.reasons["handover_model"] = reason
    return score


def signature(e: Mapping[str, Any], p: JudgeParams = DEFAULT_JUDGE_PARAMS) -> list[float]:
    """A pair's evidence as a point where one unit of distance is one step (``p.learning_signature``) of every number."""
    out = []
    for key, kind, scale in p.learning_signature:
        value = _get(e, key, 0.0)
        if kind == "log":
            value = math.log1p(max(value, 0.0))
        out.append(value / scale)
    return out
