"""Drift: the probe's motion estimated from every unit, and each pair's position once it is removed.

Why: a sorter run without motion correction cuts a drifting neuron by depth. Its fragments sit
at fixed depths (about one channel row apart) and take turns in time as the probe moves back
and forth, so two fragments of one neuron are seen at *different* depths at different times,
while two distinct neurons can be seen at the *same* depth at different times. Neither template
similarity nor the time pattern tells these apart; the motion does. All units on a rigidly
drifting probe share it, so it is estimated from all of them at once, from the analyzer alone
(no recording needed), one displacement per time bin: each sampled spike is placed against its
unit's template carried over the probe (:func:`spike_offsets`); what all units' offsets share over
time is the motion's course, and its size is the one that lines up the units' depth profiles of
firing across time bins (the decentralized registration idea of Varol et al. 2021, on units
instead of peaks). Without waveforms or a probe, the profiles alone are registered pairwise.

With the motion ``m(t)`` each unit has a drift-corrected depth (its depth minus the mean
motion over its spikes). Fragments of one neuron share it up to a localization error; distinct
neurons differ by their separation. The test is a likelihood ratio with a null model: the
corrected separation of one neuron's fragments is Gaussian with the spread set by the error
floor and by how far the probe moved during each unit's life; that of two neurons is uniform
over the reach within which candidates are looked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from .params import DEFAULT_EVIDENCE_PARAMS, EvidenceParams


@dataclass(frozen=True)
class Motion:
    """Rigid probe motion: ``displacement_um[k]`` in time bin ``k`` (``edges_s``), mean zero.

    ``depth_axis`` is the column of the positions it applies to (1: y, the probe's long axis).
    """

    edges_s: np.ndarray
    displacement_um: np.ndarray
    depth_axis: int = 1
    source: str = "none"
    """What registered it: ``"spikes"`` (the sampled spikes' offsets), ``"units"`` (the units'
    firing at their fixed positions) or ``"none"`` (too little to register: zero motion)."""
    gain: float = 1.0
    """How many times the registered size the hand-overs set it to (:func:`handover_gain`; 1: as registered)."""
    profile_scale: float | None = None
    """The size the depth profiles chose, in times the offsets' course (:func:`_course_scale`);
    None when the motion was not registered from the spikes' offsets."""

    def record(self) -> dict[str, Any]:
        """What ``run.json`` keeps: the source, the range, the profiles' size and the hand-overs' gain
        (how it was sized) and the displacement per time bin."""
        scale = None if self.profile_scale is None else round(self.profile_scale, 2)
        return {"source": self.source, "range_um": round(self.range_um, 2), "profile_scale": scale,
                "gain": round(self.gain, 3),
                "bin_edges_s": [round(float(x), 3) for x in self.edges_s],
                "displacement_um": [round(float(x), 2) for x in self.displacement_um]}

    def scaled(self, factor: float) -> Motion:
        """The same course ``factor`` times as large (its gain multiplied by ``factor``)."""
        return replace(self, displacement_um=self.displacement_um * factor, gain=self.gain * factor)

    def at(self, times_s: np.ndarray) -> np.ndarray:
        """Displacement at each time (linear between bin centres, flat beyond the first and last)."""
        centres = 0.5 * (self.edges_s[1:] + self.edges_s[:-1])
        return np.interp(times_s, centres, self.displacement_um)

    @property
    def range_um(self) -> float:
        return float(np.ptp(self.displacement_um)) if self.displacement_um.size else 0.0


def _profiles(trains: Sequence[np.ndarray], depths: np.ndarray, edges_s: np.ndarray, grid: np.ndarray,
              sigma_um: float, offsets: Sequence[tuple[np.ndarray, np.ndarray]] | None = None) -> np.ndarray:
    """(time bins, depth grid): each unit's spike count in the bin (log-compressed), spread at its depth.

    Each unit is weighted by how much its firing changes over time (the coefficient of
    variation of its counts across the bins, at most 1). A unit placed at one position for its
    whole life, or one that fires steadily through the drift, adds the same profile to every bin
    and pulls every shift toward zero (on one dev set the motion came out a quarter of its size
    unweighted); fragments, which come and go as the probe moves, carry it. Removing each unit's
    mean firing instead registered noise on a generator-made zigzag drift (the profiles then
    alternate in sign).

    With ``offsets`` (per unit: sampled spike times and how far each spike sits from the unit's
    template along the depth, :func:`spike_offsets`), a unit's depth in a bin is its position
    plus its spikes' mean offset there, less their mean over its life: a unit is seen moving
    within its life, not only appearing and vanishing.
    """
    counts = np.stack([np.histogram(t, edges_s)[0] for t in trains]) if len(trains) else \
        np.zeros((0, edges_s.size - 1))
    mean = counts.mean(axis=1, keepdims=True)
    change = np.minimum(counts.std(axis=1, keepdims=True) / np.maximum(mean, 1e-12), 1.0)
    activity = np.log1p(counts) * change
    at = np.repeat(np.asarray(depths, dtype=float)[:, None], edges_s.size - 1, axis=1)
    if offsets is not None:
        for i, (times_s, offset_um) in enumerate(offsets):
            if len(offset_um) == 0:
                continue
            _, n, mean_there = _bin_means(times_s, offset_um, edges_s)
            at[i] += np.where(n > 0, mean_there - float(np.mean(offset_um)), 0.0)
    profiles = np.zeros((edges_s.size - 1, grid.size))
    for unit_activity, unit_at in zip(activity, at):  # one unit at a time, on the grid within 6 sigma of it
        near = slice(int(np.searchsorted(grid, unit_at.min() - 6 * sigma_um)),
                     int(np.searchsorted(grid, unit_at.max() + 6 * sigma_um)))
        profiles[:, near] += unit_activity[:, None] * np.exp(
            -0.5 * ((grid[None, near] - unit_at[:, None]) / sigma_um) ** 2)
    return profiles


def _best_shift(a: np.ndarray, b: np.ndarray, max_steps: int) -> tuple[float, float]:
    """Shift (grid steps, sub-step by a parabola) that best lays ``b`` on ``a``, and the correlation there."""
    a = a - a.mean()
    b = b - b.mean()
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    if norm == 0:
        return 0.0, 0.0
    n = a.size
    lags = np.arange(-max_steps, max_steps + 1)
    corr = np.array([float(a[max(0, k):n + min(0, k)] @ b[max(0, -k):n - max(0, k)]) for k in lags]) / norm
    i = int(np.argmax(corr))
    shift = float(lags[i])
    if 0 < i < corr.size - 1:
        shift += float(_vertex(corr[i - 1], corr[i], corr[i + 1]))
    return shift, float(corr[i])


def _vertex(low: np.ndarray, mid: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Where the parabola through three equally spaced values peaks, in steps from the middle
    one (the sub-step of a grid search); 0 where it does not curve down."""
    curve = low - 2 * mid + high
    return np.where(curve < 0, 0.5 * (low - high) / np.where(curve < 0, curve, -1.0), 0.0)


def estimate_motion(trains: Sequence[np.ndarray], positions: np.ndarray, duration_s: float,
                    params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS,
                    offsets: Sequence[tuple[np.ndarray, np.ndarray]] | None = None) -> Motion:
    """Rigid motion of the probe from every unit's spike times and position, and from how its
    sampled spikes move within its life (``offsets``, :func:`spike_offsets`) when given.

    With offsets: the motion's course over time is what every unit's offsets share
    (:func:`_offset_course`), its size the one that best lines the units' firing profiles up
    across time (:func:`_course_scale`). Without (or too few units with offsets): each pair of
    time bins is registered (the shift of the depth profile that correlates best, within
    ``motion_max_um``) and the displacements are the weighted least-squares solution of all those
    pairwise shifts (weights: the correlations), mean zero. Bins without spikes, and a recording
    with too few units to register, get zero motion.
    """
    positions = np.asarray(positions, dtype=float)
    bins = max(2, int(params.motion_bins))
    edges = np.linspace(0.0, duration_s, bins + 1)
    zero = Motion(edges, np.zeros(bins))
    # a unit without spikes has no location (NaN) and says nothing about the motion
    placed = [i for i in range(len(trains)) if len(trains[i]) and np.all(np.isfinite(positions[i]))] \
        if positions.size else []
    if len(placed) < params.motion_min_units:
        return zero
    trains = [trains[i] for i in placed]
    offsets = [offsets[i] for i in placed] if offsets is not None else None
    depths = positions[placed, 1]
    step = params.motion_grid_um
    margin = params.motion_max_um + 3 * params.motion_sigma_um
    grid = np.arange(depths.min() - margin, depths.max() + margin + step, step)
    profiles = _profiles(trains, depths, edges, grid, params.motion_sigma_um, offsets)
    course = _offset_course(offsets, edges, params) if offsets is not None else None
    if course is not None:
        if np.ptp(course) < params.motion_min_course_um:  # the units' spikes stay put: a static probe
            return Motion(edges, np.zeros(bins), source="spikes")
        scale = _course_scale(course, profiles, grid, params)
        return Motion(edges, scale * course, source="spikes", profile_scale=scale)
    active = np.flatnonzero(np.abs(profiles).sum(axis=1) > 0)
    if active.size < 2:
        return zero
    max_steps = int(round(params.motion_max_um / step))
    rows, shifts, weights = [], [], []
    for x, i in enumerate(active):
        for j in active[x + 1:]:
            shift, corr = _best_shift(profiles[i], profiles[j], max_steps)
            if corr < params.motion_min_correlation:
                continue
            row = np.zeros(bins)
            row[i], row[j] = -1.0, 1.0  # m_j - m_i: how far the profile moved from bin i to bin j
            rows.append(row)
            shifts.append(-shift * step)
            weights.append(corr)
    if not rows:
        return zero
    a = np.asarray(rows) * np.sqrt(weights)[:, None]
    b = np.asarray(shifts) * np.sqrt(weights)
    mean_row = np.zeros(bins)
    mean_row[active] = 1.0
    ties = _ties(active, bins, params.motion_smoothness)
    a = np.vstack([a, ties, mean_row])  # the last row pins the mean displacement of the active bins at zero
    b = np.concatenate([b, np.zeros(active.size - 1), [0.0]])
    solution = np.linalg.lstsq(a, b, rcond=None)[0]
    displacement = np.zeros(bins)
    displacement[active] = solution[active]
    if active.size < bins:  # empty bins take their nearest neighbour's value
        centres = 0.5 * (edges[1:] + edges[:-1])
        displacement = np.interp(centres, centres[active], solution[active])
    return Motion(edges, displacement, source="units")


def _offset_course(offsets: Sequence[tuple[np.ndarray, np.ndarray]], edges_s: np.ndarray,
                   params: EvidenceParams) -> np.ndarray | None:
    """The motion's course over the time bins (mean zero), up to its size, from the units' offsets.

    Every unit with spikes in several bins says how the motion changed over its life: its mean
    offset in a bin, less its mean over its bins, is the motion there less the motion's mean over
    its life. All units' statements are solved together (least squares, each bin's statement
    weighted by the root of its spike count over the unit's spread of offsets; neighbouring bins
    tied by ``motion_smoothness``). Why only the course: a sorter keeps in a unit the spikes
    that match its template, so a unit cut out of a drifting neuron sees only part of the
    neuron's path; on 12 drifting sorter-made dev sets this course came out 0.3-0.6 times
    MEArec's drift vector, with a correlation of 0.98-1.00 against it on every set. None with
    fewer than ``motion_min_units`` units in two bins or more.
    """
    bins = edges_s.size - 1
    rows, values, weights = [], [], []
    units = 0
    for times_s, offset_um in offsets:
        if len(offset_um) == 0:
            continue
        k, n, means = _bin_means(times_s, offset_um, edges_s)
        there = np.flatnonzero(n >= params.motion_min_bin_spikes)
        if there.size < 2:
            continue
        units += 1
        mean_there = means[there]
        share = n[there] / n[there].sum()
        spread = float(np.std(offset_um - means[k]))
        for x, b in enumerate(there):
            row = np.zeros(bins)
            row[there] -= share
            row[b] += 1.0
            rows.append(row)
            values.append(mean_there[x] - float(share @ mean_there))
            weights.append(math.sqrt(n[b]) / (spread + params.motion_offset_floor_um))
    if units < params.motion_min_units:
        return None
    w = np.asarray(weights)
    ties = _ties(np.arange(bins), bins, params.motion_smoothness)
    a = np.vstack([np.asarray(rows) * w[:, None], ties, np.ones(bins)])  # the last row: mean zero
    b = np.concatenate([np.asarray(values) * w, np.zeros(bins - 1), [0.0]])
    return np.linalg.lstsq(a, b, rcond=None)[0]


def _bin_means(times_s: np.ndarray, values: np.ndarray, edges_s: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each value's time bin, the number of values per bin and their mean there (0 where none)."""
    bins = edges_s.size - 1
    k = np.clip(np.searchsorted(edges_s, times_s, side="right") - 1, 0, bins - 1)
    n = np.bincount(k, minlength=bins)
    return k, n, np.bincount(k, values, minlength=bins) / np.maximum(n, 1)


def _ties(tied: np.ndarray, bins: int, weight: float) -> np.ndarray:
    """Rows tying each of the ``tied`` time bins' displacement to the next one's with ``weight``:
    a probe drifts slowly (``motion_smoothness``)."""
    ties = np.zeros((tied.size - 1, bins))
    ties[np.arange(tied.size - 1), tied[:-1]] = -weight
    ties[np.arange(tied.size - 1), tied[1:]] = weight
    return ties


def _course_scale(course: np.ndarray, profiles: np.ndarray, grid: np.ndarray, params: EvidenceParams) -> float:
    """How many times the offsets' course the motion is: the size (from 1 to ``motion_max_scale``,
    step ``motion_scale_step``) at which the units' depth profiles, each time bin moved back by the
    motion, agree best (the squared norm of the sum of the normalized profiles). It is the
    fragments of drifting neurons, each at its own depth, taking turns, that fix the size.
    """
    best_score, best_scale = -1.0, 1.0
    for scale in np.arange(1.0, params.motion_max_scale + 1e-9, params.motion_scale_step):
        moved = np.stack([np.interp(grid + scale * shift, grid, row, left=0.0, right=0.0)
                          for shift, row in zip(course, profiles)])
        moved -= moved.mean(axis=1, keepdims=True)
        moved /= np.maximum(np.linalg.norm(moved, axis=1, keepdims=True), 1e-12)
        total = moved.sum(axis=0)
        score = float(total @ total)
        if score > best_score + 1e-9:
            best_score, best_scale = score, float(scale)
    return best_scale


def drift_position(times_s: np.ndarray, position: np.ndarray, motion: Motion) -> tuple[np.ndarray, float, float]:
    """A unit's drift-corrected position, the mean motion over its spikes, and the motion's spread over them."""
    corrected = np.asarray(position, dtype=float).copy()
    if times_s.size == 0:
        return corrected, 0.0, 0.0
    moved = motion.at(times_s)
    mean = float(moved.mean())
    corrected[motion.depth_axis] -= mean
    return corrected, mean, float(moved.std())


def trajectory_evidence(times_a: np.ndarray, position_a: np.ndarray, times_b: np.ndarray, position_b: np.ndarray,
                        motion: Motion, params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> dict[str, Any]:
    """Are two units at one place once the probe's motion is removed?

    ``drift_separation_um`` is their distance after correction; ``drift_tolerance_um`` the
    spread one neuron's fragments would show (the localization floor and the motion's spread
    over each unit's spikes, in quadrature); ``drift_z`` their ratio. ``drift_displacement_um``
    is how far the probe moved between the two units' lives (mean motion of b minus a), and
    ``drift_raw_shift_um`` how far apart they are on the probe (depth of b minus a): for
    fragments of one drifting neuron the two agree. ``drift_log_ratio`` is the log-likelihood
    ratio of the separation, one neuron (Gaussian, ``drift_tolerance_um``) vs two (uniform over
    a disc of radius ``drift_reach_um``). ``drift_gain_separation_um`` and ``drift_gain_log_ratio``
    are the same once the neuron may have drifted by 1 to ``drift_max_gain`` times the
    registered displacement (:func:`gain_residual`): what a separation must exceed to speak
    against one neuron, since the registered motion is smaller than a neuron's own.
    ``drift_moved`` and ``drift_motion_registered`` say whether the displacement and the motion's
    whole range reach ``drift_min_displacement_um``.
    """
    ca, mean_a, spread_a = drift_position(times_a, position_a, motion)
    cb, mean_b, spread_b = drift_position(times_b, position_b, motion)
    separation = float(np.linalg.norm(ca - cb))
    tolerance = math.sqrt(params.drift_floor_um ** 2 + spread_a ** 2 + spread_b ** 2)
    z = separation / tolerance
    axis = motion.depth_axis
    raw_shift = float(np.asarray(position_b, float)[axis] - np.asarray(position_a, float)[axis])
    displacement = mean_b - mean_a
    across = math.sqrt(max(separation ** 2 - (raw_shift - displacement) ** 2, 0.0))  # off the depth axis
    gained = math.hypot(gain_residual(raw_shift, displacement, params.drift_max_gain), across)
    return {
        "drift_separation_um": separation,
        "drift_tolerance_um": tolerance,
        "drift_z": z,
        "drift_displacement_um": displacement,
        "drift_raw_shift_um": raw_shift,
        "drift_motion_range_um": motion.range_um,
        "drift_log_ratio": separation_log_ratio(z, tolerance, params),
        "drift_gain_separation_um": gained,
        "drift_gain_log_ratio": separation_log_ratio(gained / tolerance, tolerance, params),
        "drift_moved": bool(abs(displacement) >= params.drift_min_displacement_um),
        "drift_motion_registered": bool(motion.range_um >= params.drift_min_displacement_um),
    }


def handover_gain(handovers: Sequence[tuple[np.ndarray, float, np.ndarray, float]], motion: Motion,
                  params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> tuple[float, int]:
    """How many times the registered motion the hand-overs moved: the median, over the hand-overs
    between whose lives the probe moved at least ``motion_handover_min_displacement_um``, of the
    later unit's depth less the earlier one's over that displacement; and how many such hand-overs
    there were (NaN with fewer than ``motion_handover_min_links``).

    ``handovers`` holds (earlier unit's spike times, its depth, later unit's spike times, its
    depth). Why: a sorter's drift fragments of one neuron sit where the neuron was during each
    one's life, so their depths differ by the neuron's displacement; a registration that found the
    course but not the size (the offsets' course is a fraction of the drift, and the depth profiles
    need not fix its size) shows as hand-overs that moved several times the registered motion.
    Most hand-over links are one neuron's (70-95 % on sorter-made drifting sets), so the median
    reads the neuron's motion, not a neighbour's chance shift.
    """
    ratios = []
    for times_a, depth_a, times_b, depth_b in handovers:
        if not len(times_a) or not len(times_b):
            continue
        displacement = float(np.mean(motion.at(np.asarray(times_b, float))) -
                             np.mean(motion.at(np.asarray(times_a, float))))
        if abs(displacement) >= params.motion_handover_min_displacement_um:
            ratios.append((float(depth_b) - float(depth_a)) / displacement)
    if len(ratios) < params.motion_handover_min_links:
        return float("nan"), len(ratios)
    return float(np.median(ratios)), len(ratios)


def motion_turns(times_a: np.ndarray, times_b: np.ndarray, motion: Motion) -> float:
    """How cleanly two units take turns with the probe's motion: the area under the ROC curve of
    the registered displacement at A's spike times against B's, folded to 0.5-1.

    A sorter that cuts one neuron by depth while the probe drifts back and forth leaves two units
    that fire in the same stretches of the recording but at different phases of the motion (near
    1). Two units that each fire whatever the probe does give about 0.5; a slice at one end of the
    motion against such a unit, up to about 0.9. Whether the turns are one neuron's is the
    trajectory's call (:func:`trajectory_evidence`). NaN for a unit without spikes.
    """
    from scipy.stats import rankdata

    at_a, at_b = motion.at(np.asarray(times_a, float)), motion.at(np.asarray(times_b, float))
    if not at_a.size or not at_b.size:
        return float("nan")
    ranks = rankdata(np.concatenate([at_a, at_b]))  # ties (a flat motion) count half
    auc = (ranks[:at_a.size].sum() - at_a.size * (at_a.size + 1) / 2.0) / (at_a.size * at_b.size)
    return float(max(auc, 1.0 - auc))


def separation_log_ratio(z: float, tolerance_um: float, params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> float:
    """Log-likelihood ratio of a separation ``z`` tolerances long: one neuron (2-D Gaussian of width
    ``tolerance_um``) against two (uniform over the disc of radius ``drift_reach_um``)."""
    return math.log(params.drift_reach_um ** 2 / (2.0 * tolerance_um ** 2)) - 0.5 * z ** 2


def gain_residual(raw_shift_um: float, displacement_um: float, max_gain: float) -> float:
    """How far a raw depth shift lies from what the neuron's drift could make of the registered
    displacement: anything from the displacement itself to ``max_gain`` times it (same sign).

    Zero inside that range; a shift against the motion is as far as it lies from the displacement.
    """
    low, high = sorted((displacement_um, max_gain * displacement_um))
    if low <= raw_shift_um <= high:
        return 0.0
    return float(min(abs(raw_shift_um - low), abs(raw_shift_um - high)))


def carried_templates(template: np.ndarray, contact_positions: np.ndarray, displacements_um: np.ndarray,
                      channels: np.ndarray, params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> np.ndarray | None:
    """A template (samples, channels) as seen after the probe moved by each displacement, on
    ``channels``: (displacements, samples, len(channels)); None for a geometry that cannot carry it.

    Cubic interpolation over the probe's contacts, the interpolation SpikeInterface's
    ``move_dense_templates`` uses (same values: tests), taken as a weight matrix since it is
    linear in the values (:func:`carry_weights`), so one product carries every sample and
    displacement; linear along the depth for a one-column probe.
    """
    displacements_um = np.atleast_1d(np.asarray(displacements_um, dtype=float))
    weights = carry_weights(np.asarray(contact_positions, dtype=float)[:, :2], np.asarray(channels),
                            displacements_um, params)
    if weights is None:
        return None
    carried = weights @ np.asarray(template, dtype=float).T  # (displacements, channels, samples)
    return carried.transpose(0, 2, 1)


def carry_weights(positions: np.ndarray, channels: np.ndarray, displacements_um: np.ndarray,
                  params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> np.ndarray | None:
    """(displacements, channels, contacts): the weights that carry a template's values on every
    contact to ``channels`` after the probe moved by each displacement; None for a geometry the
    interpolation refuses. The channels are carried in blocks of ``carry_block_channels`` (by
    depth), each with the contacts within ``carry_margin_um`` of where it is carried: on a
    Neuropixels probe all 384 channels over 41 displacements take 0.1 s, against 0.5 s in one block
    (a single pair's channels with all 384 contacts took 0.1-0.3 s)."""
    from scipy.interpolate import CloughTocher2DInterpolator

    targets = positions[channels]
    moved_to = targets[None, :, :] - np.stack([np.zeros_like(displacements_um), displacements_um], axis=1)[:, None, :]
    weights = np.zeros((displacements_um.size, channels.size, positions.shape[0]))
    if np.ptp(positions[:, 0]) == 0:  # one column: the 2-D interpolation has no area to work on
        order = np.argsort(positions[:, 1])
        weights[:, :, order] = _linear_weights(positions[order, 1], moved_to[:, :, 1].ravel()).reshape(
            displacements_um.size, channels.size, -1)
        return weights
    reach = float(np.abs(displacements_um).max()) + params.carry_margin_um
    order = np.argsort(targets[:, 1], kind="stable")
    for start in range(0, channels.size, max(1, params.carry_block_channels)):
        block = order[start:start + max(1, params.carry_block_channels)]
        nearest = np.min(np.linalg.norm(positions[:, None, :] - targets[None, block, :], axis=2), axis=1)
        for local in (np.flatnonzero(nearest <= reach), np.arange(positions.shape[0])):
            try:
                carry = CloughTocher2DInterpolator(positions[local], np.eye(local.size), fill_value=0.0)
                values = np.nan_to_num(carry(moved_to[:, block].reshape(-1, 2)))
                break
            except Exception:  # too few contacts near, or a geometry the interpolation refuses (all on one line)
                continue
        else:
            return None
        weights[np.ix_(np.arange(displacements_um.size), block, local)] = values.reshape(
            displacements_um.size, block.size, local.size)
    return weights


@lru_cache(maxsize=4)
def _probe_carry_weights(positions_bytes: bytes, contacts: int, displacements: tuple[float, ...],
                         params: EvidenceParams) -> np.ndarray | None:
    """``carry_weights`` for every contact of a probe over one grid of displacements, computed once
    per probe: every unit's spikes are fitted on that grid."""
    positions = np.frombuffer(positions_bytes, dtype=float).reshape(contacts, 2)
    return carry_weights(positions, np.arange(contacts), np.asarray(displacements, dtype=float), params)


def _linear_weights(depths: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(points, contacts): linear interpolation between the sorted ``depths`` as a matrix (zero
    outside them, as ``np.interp`` with ``left=right=0``), so one product carries every sample."""
    weights = np.zeros((points.size, depths.size))
    inside = np.flatnonzero((points >= depths[0]) & (points <= depths[-1]))
    if depths.size == 1:
        weights[inside, 0] = 1.0
        return weights
    upper = np.clip(np.searchsorted(depths, points[inside], side="right"), 1, depths.size - 1)
    lower = upper - 1
    span = np.maximum(depths[upper] - depths[lower], 1e-12)
    frac = np.clip((points[inside] - depths[lower]) / span, 0.0, 1.0)
    np.add.at(weights, (inside, lower), 1.0 - frac)
    np.add.at(weights, (inside, upper), frac)
    return weights


def moved_template_similarity(template_a: np.ndarray, template_b: np.ndarray, channels: np.ndarray,
                              displacement_um: float, contact_positions: np.ndarray | None, max_shift: int) -> float:
    """Cosine (best lag) of A's template carried by the probe's motion to B's time, against B's.

    Under one neuron, B's template is A's seen after the probe moved by ``displacement_um``;
    the comparison is made where that moved template lands, on ``channels`` (both units'),
    with :func:`carried_templates` (``contact_positions`` in the order of the template columns).
    NaN without them (no single probe).
    """
    from .waveforms import template_lag

    if contact_positions is None:
        return float("nan")
    moved = carried_templates(template_a, contact_positions, np.array([displacement_um]), channels)
    if moved is None:
        return float("nan")
    return float(template_lag(moved[0], np.asarray(template_b)[:, channels], max_shift)[1])


def spike_offsets(template: np.ndarray, channels: np.ndarray, waveforms: np.ndarray, contact_positions: np.ndarray,
                  fs: float, params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> np.ndarray:
    """How far (µm, along the depth) each sampled spike sits from the unit's template.

    Each spike is fitted by the template carried over a grid of displacements (within
    ``motion_spike_reach_um``, step ``motion_spike_step_um``, sub-step by a parabola), with a free
    scale, on the unit's channels and ``motion_spike_window_ms`` around the template's peak. Why:
    a unit cut out of a drifting neuron keeps drifting within its life, and a unit the sorter kept
    whole drifts through all of it; the units' fixed positions show neither. On 12 drifting
    sorter-made dev sets the motion registered from the fixed positions alone came out 0.02-1.3
    times MEArec's drift vector (correlation 0.40-0.98), with these offsets 0.35-1.8 (0.98-1.00;
    MEArec moves each cell 1.05-1.9 times the vector). A centre of mass per spike moved a quarter
    as far as the drift. Spikes made at known offsets come back unshrunk (tests). Zeros when the
    geometry cannot carry a template.
    """
    template = np.asarray(template, dtype=float)
    if waveforms.shape[0] == 0 or waveforms.shape[1] != template.shape[0]:
        return np.zeros(waveforms.shape[0])  # no spikes, or waveforms cut on another window than the template
    grid = np.arange(-params.motion_spike_reach_um, params.motion_spike_reach_um + 1e-9, params.motion_spike_step_um)
    positions = np.ascontiguousarray(np.asarray(contact_positions, dtype=float)[:, :2])
    weights = _probe_carry_weights(positions.tobytes(), positions.shape[0], tuple(grid.tolist()), params)
    if weights is None:
        return np.zeros(waveforms.shape[0])
    peak = int(np.argmax(np.abs(template[:, channels]).max(axis=1)))
    half = max(1, int(round(params.motion_spike_window_ms * fs / 1000.0)))
    window = slice(max(0, peak - half), peak + half + 1)
    # only the window is carried and fitted (a quarter of the samples)
    models = (weights[:, channels, :] @ template[window].T).transpose(0, 2, 1).reshape(grid.size, -1)
    # in single precision, as the waveforms are stored: faster, offsets within 0.02 µm (two dev sets)
    spikes = np.asarray(waveforms[:, window, :], dtype=np.float32).reshape(waveforms.shape[0], -1)
    # the share of each spike's energy the scaled model explains, per displacement
    fit = (spikes @ models.T.astype(np.float32)).astype(float) ** 2 / \
        np.maximum((models * models).sum(axis=1), 1e-12)[None, :]
    best = np.argmax(fit, axis=1)
    offset = grid[best].astype(float)
    inner = np.flatnonzero((best > 0) & (best < grid.size - 1))
    offset[inner] += _vertex(fit[inner, best[inner] - 1], fit[inner, best[inner]], fit[inner, best[inner] + 1]) \
        * params.motion_spike_step_um
    return offset
