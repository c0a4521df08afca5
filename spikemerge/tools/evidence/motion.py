"""Drift: the probe's motion estimated from every unit, and each pair's position once it is removed.

Why: a sorter run without motion correction cuts a drifting neuron by depth. Its fragments sit
at fixed depths (about one channel row apart) and take turns in time as the probe moves back
and forth, so two fragments of one neuron are seen at *different* depths at different times,
while two distinct neurons can be seen at the *same* depth at different times. Neither template
similarity nor the time pattern tells these apart; the motion does. All units on a rigidly
drifting probe share it, so it is estimated from all of them at once: the depth profile of
firing (spikes per unit, at the unit's position) in each time bin is registered against the
others (the decentralized registration idea of Varol et al. 2021, on units instead of peaks, so
no recording is needed), giving one displacement per time bin.

With the motion ``m(t)`` each unit has a drift-corrected depth (its depth minus the mean
motion over its spikes). Fragments of one neuron share it up to a localization error; distinct
neurons differ by their separation. The test is a likelihood ratio with a null model: the
corrected separation of one neuron's fragments is Gaussian with the spread set by the error
floor and by how far the probe moved during each unit's life; that of two neurons is uniform
over the reach within which candidates are looked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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

    def at(self, times_s: np.ndarray) -> np.ndarray:
        """Displacement at each time (linear between bin centres, flat beyond the first and last)."""
        centres = 0.5 * (self.edges_s[1:] + self.edges_s[:-1])
        return np.interp(times_s, centres, self.displacement_um)

    @property
    def range_um(self) -> float:
        return float(np.ptp(self.displacement_um)) if self.displacement_um.size else 0.0


def _profiles(trains: Sequence[np.ndarray], depths: np.ndarray, edges_s: np.ndarray, grid: np.ndarray,
              sigma_um: float) -> np.ndarray:
    """(time bins, depth grid): each unit's spike count in the bin (log-compressed), spread at its depth.

    Each unit is weighted by how much its firing changes over time (the coefficient of
    variation of its counts across the bins, at most 1). A unit sits at one position here, so
    one that fires steadily through the drift (the sorter kept the neuron whole) adds the same
    profile to every bin and pulls every shift toward zero (on one dev set the motion came out
    a quarter of its size unweighted); fragments, which come and go as the probe moves, carry
    it. Removing each unit's mean firing instead registered noise on a generator-made zigzag
    drift (the profiles then alternate in sign).
    """
    counts = np.stack([np.histogram(t, edges_s)[0] for t in trains]) if len(trains) else \
        np.zeros((0, edges_s.size - 1))
    mean = counts.mean(axis=1, keepdims=True)
    change = np.minimum(counts.std(axis=1, keepdims=True) / np.maximum(mean, 1e-12), 1.0)
    activity = np.log1p(counts) * change
    kernels = np.exp(-0.5 * ((grid[None, :] - depths[:, None]) / sigma_um) ** 2)
    return activity.T @ kernels


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
        denom = corr[i - 1] - 2 * corr[i] + corr[i + 1]
        if denom < 0:
            shift += 0.5 * (corr[i - 1] - corr[i + 1]) / denom
    return shift, float(corr[i])


def estimate_motion(trains: Sequence[np.ndarray], positions: np.ndarray, duration_s: float,
                    params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> Motion:
    """Rigid motion of the probe from every unit's spike times and position.

    Each pair of time bins is registered (the shift of the depth profile that correlates best,
    within ``motion_max_um``); the displacements are the weighted least-squares solution of all
    those pairwise shifts (weights: the correlations), mean zero. Bins without spikes, and a
    recording with too few units to register, get zero motion.
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
    depths = positions[placed, 1]
    step = params.motion_grid_um
    margin = params.motion_max_um + 3 * params.motion_sigma_um
    grid = np.arange(depths.min() - margin, depths.max() + margin + step, step)
    profiles = _profiles(trains, depths, edges, grid, params.motion_sigma_um)
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
    # a probe drifts slowly: neighbouring bins are tied (weight ``motion_smoothness`` per tie)
    ties = np.zeros((active.size - 1, bins))
    ties[np.arange(active.size - 1), active[:-1]] = -params.motion_smoothness
    ties[np.arange(active.size - 1), active[1:]] = params.motion_smoothness
    a = np.vstack([a, ties, mean_row])  # the last row pins the mean displacement of the active bins at zero
    b = np.concatenate([b, np.zeros(active.size - 1), [0.0]])
    solution = np.linalg.lstsq(a, b, rcond=None)[0]
    displacement = np.zeros(bins)
    displacement[active] = solution[active]
    if active.size < bins:  # empty bins take their nearest neighbour's value
        centres = 0.5 * (edges[1:] + edges[:-1])
        displacement = np.interp(centres, centres[active], solution[active])
    return Motion(edges, displacement)


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


def moved_template_similarity(template_a: np.ndarray, template_b: np.ndarray, channels: np.ndarray,
                              displacement_um: float, probe, max_shift: int) -> float:
    """Cosine (best lag) of A's template carried by the probe's motion to B's time, against B's.

    Under one neuron, B's template is A's seen after the probe moved by ``displacement_um``;
    the comparison is made where that moved template lands, on ``channels`` (both units').
    A's template is moved by cubic interpolation over the probe's contacts, the interpolation
    SpikeInterface's ``move_dense_templates`` uses (same values), in one call for all samples
    instead of one per sample (1/100th of the time, measured); along the depth for a
    one-column probe. NaN without a probe.
    """
    from scipy.interpolate import CloughTocher2DInterpolator

    from .waveforms import template_lag

    template_a = np.asarray(template_a, dtype=float)
    if probe is None:
        return float("nan")
    positions = np.asarray(probe.contact_positions, dtype=float)[:, :2]
    if np.ptp(positions[:, 0]) == 0:  # one column: the 2-D interpolation has no area to work on
        depth = positions[:, 1]
        order = np.argsort(depth)
        moved = np.stack([np.interp(depth - displacement_um, depth[order], row[order], left=0.0, right=0.0)
                          for row in template_a])
    else:
        try:
            carry = CloughTocher2DInterpolator(positions, template_a.T, fill_value=0.0)
            moved = carry(positions - np.array([0.0, float(displacement_um)])).T
        except Exception:  # a geometry the interpolation refuses (contacts all on one line): no comparison
            return float("nan")
    moved = np.nan_to_num(moved)
    return float(template_lag(moved[:, channels], np.asarray(template_b)[:, channels], max_shift)[1])
