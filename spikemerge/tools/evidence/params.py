"""Every tunable number of the evidence, in one frozen table (SpikeInterface-style defaults).

The table is hashed with the evidence it produces (see ``EvidenceParams.fingerprint``), so a
cached verdict never outlives a change of window or bin.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class EvidenceParams:
    """Windows, bins and sample sizes behind the evidence numbers.

    Times are in milliseconds unless the name says otherwise.
    """

    refractory_ms: float = 1.5
    """Half-width of the window where one neuron cannot fire twice (DESIGN: about ±1–2 ms)."""
    duplicate_ms: float = 0.25
    """Half-width of the duplicate window, centred on the lag by which the templates are shifted."""
    duplicate_censor_ms: float = 0.5
    """Half-width left out of the refractory count around a significant duplicate peak: copies of
    one spike detected twice jitter by more than the duplicate window (seen: a peak spread over
    -0.8 to -0.2 ms between two slices of a bursting cell), and those outside it must not read as
    refractory violations. 32 sorter-made sets, against the duplicate window alone (0.25 ms):
    901 -> 907 true pairs, 8 -> 8 wrong (+3 bursting, +3 drifting)."""
    refractory_inner_ms: float = 0.5
    """Half-width left out of the refractory count around the template lag when, without a duplicate
    peak, the ring from ``duplicate_ms`` to here holds more coincidences than the rest of the window
    (``redetection_p``; ``ccg._redetected``): a sorter that keeps several templates of one cell
    re-detects a few of its spikes with a second template 0.25-0.5 ms off, too few and too spread
    for a peak, and each such pair is one spike, not two. Seen (session 59, sortings and ground truth
    of seeds 445-499, candidate pairs of two pure units without a copy peak; coincidences over what
    independent trains put there, at 0.25-0.5 / 0.5-0.75 / 0.75-1 / 1-1.5 ms from the lag): one
    neuron's Kilosort 4 units 1.08 / 0.39 / 0.25 / 0.25, spykingcircus2's 0.32 / 0.20 / 0.09 /
    0.07, tridesclous2's 0.10 / 0.05 / 0.04 / 0.06; distinct neurons' units at chance in every bin
    (0.87-1.10 / 0.92-1.10 / 0.94-1.00 / 0.96-0.98). burst_ks4_s502 units 38 and 41 (one neuron): 8
    coincidences where 7.0 were expected, every one a true spike detected twice 0.25-0.47 ms apart
    (by the ground truth); 0 of 5.6 with the ring left out. Measured (the 211 sets of seeds 445-504,
    evidence recomputed, balanced; same-neuron pairs merged / distinct): 7693 / 1 -> 7694 / 1
    (burst_ks4_s502 +2, drift_sc2_s452 -1), no batch's bar changed. Leaving the ring out of every pair
    instead (every pair's expected count a fifth smaller): 162 of those sets, 5037 / 0 -> 5025 / 1.
    Set to ``duplicate_ms`` to turn it off."""
    redetection_p: float = 1e-3
    """Chance level under which the ring from ``duplicate_ms`` to ``refractory_inner_ms`` holds more
    coincidences than the rest of the refractory window (``ccg._redetected``)."""
    duplicate_search_ms: float = 0.3
    """The duplicate window may move this far from the template lag to the CCG's densest spot
    (the template lag is measured to a sample, spike times jitter by about one)."""
    window_step_ms: float = 0.05
    """Step between the positions tried for a duplicate window (within ``duplicate_search_ms`` of the
    template lag, across ``max_lag_ms``, and for further peaks across the refractory window)."""
    duplicate_min_count: int = 20
    """A duplicate peak found away from the template lag needs at least this many coincidences."""
    duplicate_more_peaks: int = 2
    """Beside a significant duplicate peak, up to this many further peaks within the refractory
    window are copies too, censored as the first is (``ccg._more_peaks``); 0: off. A sorter that
    keeps several templates of one cell re-detects its spikes at a lag that differs from template to
    template, so one pair's CCG can hold the same spikes at two lags, and the second peak read as
    refractory violations vetoes the pair. Seen on Kilosort 4's output with its merge off
    (burst_ks4_s485): unit 20 re-detects neuron #12's spikes in every one of its slices, at -0.3 to
    +1.3 ms depending on the slice; against unit 13, 17 coincidences beside the main peak where 4.2
    were expected (vetoed as copies beside independent spikes), 1 of 2.9 with the second peak
    censored. Measured on the kept records (session 56, evidence recomputed from the analyzers,
    balanced; same-neuron pairs merged / distinct): Kilosort 4 sets of 485-486 391 / 0 -> 419 / 0
    (drift_ks4_s486 -7: an impure unit holding copies of a unit at two lags now duplicates it;
    burst_ks4_s475 44 / 0, as in session 55); the internal sorters' 48 bursting sets of seeds
    460-484 519 / 1 -> 521 / 0, its 48 drifting sets 2193 / 0 either way. Looked for also where the
    template lag holds no peak (session 60): on the candidate pairs of the 215 kept sets of seeds
    445-506 whose sortings are on the machine, that changed the refractory count of 11 same-neuron
    pairs, 101 distinct and 221 touching impure units (a sharp peak beside no duplicate is mostly a
    neighbour's unit catching a spike it does not own): not adopted."""
    duplicate_more_min_count: int = 5
    """A further peak needs at least this many coincidences, and to beat chance after the search over
    every window of the refractory window (``duplicate_p``, Bonferroni)."""
    duplicate_p: float = 1e-3
    """Chance level under which a CCG peak is a duplicate peak (Poisson against the CCG's baseline),
    and under which one peak holds more coincidences than another (binomial, even split)."""
    max_lag_ms: float = 2.0
    """Largest template misalignment searched: real sorters offset one neuron's units by up to ~2 ms."""
    max_stretch: float = 1.5
    """Largest widening of the larger template searched when comparing it with a smaller one (a
    bursting cell's later, smaller spikes are wider; MEArec's burst model and recorded CA1
    complex spikes broaden by tens of percent)."""
    stretch_step: float = 0.05
    """Step of the widening factors tried between 1 and ``max_stretch``."""
    shoulder_ms: tuple[float, float] = (10.0, 50.0)
    """Lags that estimate the CCG baseline when the two trains are independent."""
    burst_ms: float = 15.0
    """Lags (beyond the refractory window) where a burst puts the later, smaller spikes."""
    time_bins: int = 20
    """Bins across the recording for presence and amplitude-over-time comparisons."""
    sequential_overlap: float = 0.3
    """Presence overlap below this: the units follow each other in time and are compared at the hand-over."""
    active_fraction: float = 0.1
    """A unit is active in a time bin with at least this share of its mean spikes per bin."""
    handover_fraction: float = 0.15
    """Share of the recording on each side of a hand-over whose spikes describe it."""
    handover_spikes: int = 60
    """Largest number of sampled waveforms per side compared at a hand-over."""
    handover_min_share: float = 0.1
    """Share of a unit's spikes that a stretch of time must hold to be one side of a hand-over: a
    few spikes before a unit's life begins (or after it ends) are no hand-over."""
    handover_search_bins: float = 1.5
    """How far (in time bins) from the bins' boundary a hand-over's exact moment is searched."""
    handover_amplitudes: int = 200
    """Spikes per side whose amplitudes are compared at a hand-over (``amplitude_handover``)."""
    pca_channels: int = 8
    """Channels (largest in either template, shared by both units) used for features."""
    pca_components: int = 5
    min_feature_spikes: int = 10
    """Fewer sampled waveforms than this in either unit: no feature comparison."""
    min_continuity_spikes: int = 30
    """Fewer spikes than this in the chosen time window: continuity falls back to all spikes."""
    density_grid: int = 256
    # drift: the probe's motion from every unit, and positions with it removed (``motion.py``)
    motion_bins: int = 20
    """Time bins in which the probe's displacement is estimated (one value per bin)."""
    motion_min_units: int = 4
    """Fewer units than this: too little to register, no motion is estimated."""
    motion_grid_um: float = 1.0
    """Step of the depth grid on which firing profiles are registered."""
    motion_sigma_um: float = 5.0
    """Width each unit's firing is spread over on that grid. Narrow: a wide kernel blends a
    neuron's old and new row into one peak between them, and the registered motion comes out
    smaller than the real one (on the dev sets, true fragment pairs' raw shift over estimated
    displacement had medians 0.8-1.4 at 5 µm, 1.1-2.0 at 20 µm)."""
    motion_max_um: float = 75.0
    """Largest displacement searched between two time bins."""
    motion_min_correlation: float = 0.3
    """Two time bins whose firing profiles correlate less than this at their best shift say
    nothing about the motion between them (a static recording: no bin pair passes, no motion)."""
    motion_smoothness: float = 1.0
    """Weight tying each time bin's displacement to the next one's (a probe drifts slowly),
    against correlation-weighted registrations (about one per other bin)."""
    motion_from_spikes: bool = True
    """Register the motion from where each unit's sampled spikes sit over its life
    (``motion.spike_offsets``), not only from when units fire at their fixed positions."""
    motion_spike_reach_um: float = 40.0
    """Largest offset of a spike from its unit's template looked for."""
    motion_spike_step_um: float = 2.0
    """Step of the offsets tried per spike (refined between steps)."""
    motion_spike_window_ms: float = 0.4
    """Half-width of the window around the template's peak where a spike is fitted."""
    motion_min_bin_spikes: int = 3
    """Sampled spikes a unit needs in a time bin for its offsets there to count."""
    motion_offset_floor_um: float = 1.0
    """Added to a unit's spread of offsets when weighting it (a unit with a tiny spread is not
    trusted without bound)."""
    motion_min_course_um: float = 3.0
    """A course of the offsets spanning less than this is no motion (a static probe: sampling noise)."""
    motion_max_scale: float = 5.0
    """Largest size of the motion, in times the offsets' course, that is tried."""
    motion_scale_step: float = 0.1
    """Step of the sizes tried."""
    motion_handover_min_gain: float = 2.0
    """Where the hand-overs moved at least this many times the registered motion
    (``motion.handover_gain``), the motion is set to their size: the registration found the
    course, not the size. 0 turns it off. Measured on sorter-made drifting sets (MEArec): on 22 with
    their analyzers (15 on Neuropixels-24) the registered range came out 0.33-1.43 times MEArec's
    drift vector, correlation 0.99-1.00, shortest with tridesclous2; MEArec's vector in its place
    gained 22 same-neuron pairs on ten of them. The hand-over links' median ratio, on the 524 kept
    drifting records: 0.75 / 1.00 / 1.54 (10th / 50th / 90th percentile), 2 or more on 33, all with a
    registered range under 22 µm. Sized at any gain on the 22 sets: 905 -> 928 same-neuron pairs
    merged, 1 -> 1 distinct, the sets at gains 1.2-1.9 losing as much as they gained (+11, -13);
    from 2: 905 -> 930 (four sets: +15, +9, +5, -4), and on 8 drifting dev sets rebuilt from their
    seeds +17 (four sets: +8, +4, +3, +2), none distinct."""
    motion_unsized_below_scale: float = 1.5
    """Where the depth profiles chose a size under this many times the offsets' course
    (``motion._course_scale``, which tries sizes from 1), they did not size the motion: their best
    is about the smallest size tried. The hand-overs then set it from ``motion_unsized_min_gain``.
    Measured on the 28 drifting sorter-made sets of seeds 449-466 with recordings
    (``scripts/motion_check.py``): the ten whose profiles chose under 1.5 registered 0.17-0.58 of
    MEArec's drift vector, their hand-overs' gain 1.73-3.66 (one without links); of the 18 that
    chose 1.75-3.75, 17 registered 0.83-1.50 of it (gain 0.66-1.67), one 0.55 (gain 1.99)."""
    motion_unsized_min_gain: float = 1.5
    """The hand-overs' gain that sizes a motion the profiles left unsized (``motion_unsized_below_scale``).
    It resizes drift_tdc2_s458 (gain 1.87) and drift_tdc2_s464 (1.73) of those 28; on the 77 sets of
    seeds 445-466 with analyzers it changed the merges of one: drift_tdc2_s464, 64 -> 67 same-neuron
    pairs merged, its one distinct pair (107+69) no longer."""
    motion_handover_min_links: int = 5
    """Hand-overs that moved (below) needed before their gain is read."""
    motion_handover_min_displacement_um: float = 3.0
    """A hand-over between whose units' lives the registered motion moved less than this says
    nothing about the size (its ratio is noise)."""
    motion_handover_min_similarity: float = 0.8
    """Hand-over links read for the gain (``handover.handover_links``): the last and first spikes at
    least this alike (the default candidate gate's), ..."""
    motion_handover_max_overlap: float = 0.3
    """... the units' presence over ``motion_bins`` stretches overlapping by less than this, ..."""
    motion_handover_max_gap_fraction: float = 0.1
    """... the later one starting at most this share of the recording after the earlier one ends, ..."""
    motion_handover_spikes: int = 60
    """... each side's mean of this many sampled spikes, the units within ``drift_reach_um``: the
    candidate search's chain links (``CandidateParams``), read here without its similarity knob."""
    carry_margin_um: float = 60.0
    """Contacts this far beyond where a template is carried take part in carrying it (the cubic
    interpolation's triangles and gradients there); farther ones change the carried values by
    under 0.1 % of the template's peak (tests) and cost time."""
    carry_block_channels: int = 48
    """Channels carried together, each block with the contacts near it (``motion.carry_weights``)."""
    drift_min_displacement_um: float = 6.0
    """Below this displacement between two units' lives (about a localization error) the probe
    did not move between them (``drift_moved`` false): their templates are not moved for
    comparison, and the judge does not count their agreement after correction for one neuron
    (without motion, agreement in position is what any two neighbours show). A motion whose
    whole range is below it is not registered (``drift_motion_registered`` false)."""
    drift_floor_um: float = 6.0
    """Localization error of a unit position: the spread of one neuron's fragments' corrected
    positions when the probe does not move during their lives."""
    one_localizer: bool = True
    """Place the two units of a pair by one localizer: their fits where both fits are plausible, both
    templates' centres of mass where either fit was replaced (``ViewParams.location_max_*``). The two
    disagree most beside the probe's outermost column, where a fit runs outward (the distance along
    the plane beyond the edge and the distance from the plane explain the amplitudes alike) and the
    centre of mass is drawn inward: a unit placed by each came out 35-49 µm apart across the probe
    from its own neuron's next fragment (Neuropixels-24, drift_sc2_s450, drift_tdc2_s449). Read by
    the drift numbers (``drift_separation_um`` and what follows from it), the candidate search's reach
    (``AnalyzerView.pair_distances``) and the hand-over links whose depths size the motion. The
    record's ``distance_um`` keeps each unit's own place: the fitted thin hand-over model
    (``judges/models/thin_handover.json``) reads it as it was fitted on, and placed by one localizer
    it moved one pair of one neuron to "two" there (drift_sc2_s461 28+34, 37 -> 21 µm; -2 same-neuron
    pairs on that set, +0 elsewhere). End to end (balanced) on the 25 dev sets with analyzers in
    session 52, for the drift numbers alone: Neuropixels-24 drifting 436 -> 451 same-neuron pairs
    merged, 32-channel drifting 315 -> 319, bursting 166 -> 167, distinct pairs merged 1 -> 1
    (metrics-v48-pl); then also for the reach and the hand-over depths, on the 61 sets of seeds
    445-462 with analyzers in session 53: 1905 -> 1911 same-neuron pairs merged (drifting 1594 ->
    1599, bursting 311 -> 312, all on Neuropixels-24), distinct pairs merged 2 -> 2
    (metrics-v48-pl3). False: each unit by its own (until metrics-v48-hs)."""
    drift_reach_um: float = 75.0
    """Radius within which two distinct neurons' separation is taken as uniform (the reach of
    the drift chains, ``CandidateParams.chain_distance_factor`` times 50 µm)."""
    drift_max_gain: float = 2.5
    """A neuron may drift up to this many times the registered motion before its separation after
    correction counts against one neuron: neurons at other depths (non-rigid drift, or MEArec's
    per-cell drift lengths) move by other amounts than the one rigid motion. Same-neuron fragments'
    raw shift over the registered displacement: 0.51-2.32 (5th-95th percentile, 28 drifting
    sorter-made dev sets, motion from the spikes' offsets); 0.66-2.73 on 27 sets with the motion
    from fixed unit positions, where 2.5 was chosen. 1.5, 2 and 3 give the same F1 within 0.002
    (28 sets, judge with ``drift_max_z`` 1.0)."""
    seed: int = 0
    """Seed of the spike subsampling in feature comparisons (results are reproducible)."""

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


DEFAULT_EVIDENCE_PARAMS = EvidenceParams()


@dataclass(frozen=True)
class EvidenceWorkers:
    """How evidence is spread over processes. Not hashed into any evidence: they change how fast
    the numbers come, never the numbers."""

    max_workers: int = 4
    """Worker processes at most with ``n_workers="auto"`` (and never more than the usable CPUs;
    ``spikemerge run`` asks for ``"auto"`` only when the machine has idle CPUs)."""
    parallel_min_pairs: int = 40
    """With ``n_workers="auto"``, fewer pairs than this in all groups are computed in this process:
    starting workers (about a second each to import scipy) would cost more than they save."""
    pairs_per_job: int = 12
    """Pairs of a group sent to a worker at once: a group of 11 units (55 pairs) is spread over
    every worker instead of keeping one busy while the others wait at the end."""
    in_flight_per_worker: int = 3
    """Jobs handed to each worker ahead of time: enough to keep it busy, few enough that only a
    handful of units' arrays are in memory at once."""


DEFAULT_EVIDENCE_WORKERS = EvidenceWorkers()
