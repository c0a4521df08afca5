"""The numbers behind each picture a curator looks at, per pair of units and per group.

Everything here reads a prepared analyzer (see ``analyzer.REQUIRED_EXTENSIONS``) through an
``EvidenceContext`` that extracts each unit's arrays once, and hands plain arrays to the
modules that compute: ``ccg`` (refractory dip, duplicates at the template lag, bursts,
contamination of the merged train), ``waveforms`` (template lag, noise-aware similarity),
``features`` (continuity along the discriminant axis), ``presence`` (hand-overs in time).
Every number is named for what it measures, so the metrics judge, the VLM prompts, the report
and a person read the same thing.
"""

from __future__ import annotations

import warnings
from itertools import combinations
from functools import cached_property, lru_cache
from typing import Any, Hashable, Iterator, Mapping, Sequence

import numpy as np
from threadpoolctl import ThreadpoolController

from ...errors import SpikemergeError
from ..analyzer.view import AnalyzerView, UnitArrays
from ..workers import prepare_worker, usable_cpus, worker_context
from ..judges.base import UnitId
from .ccg import ccg_evidence, contamination_evidence, correlogram, time_differences
from .features import continuity, discriminant_projection
from .handover import chains_from_links, handover_links
from .motion import (Motion, estimate_motion, handover_gain, motion_turns, moved_template_similarity, spike_offsets,
                     trajectory_evidence)
from .params import DEFAULT_EVIDENCE_PARAMS, DEFAULT_EVIDENCE_WORKERS, EvidenceParams, EvidenceWorkers
from .presence import Window, comparison_window, presence_evidence
from .waveforms import amplitude_ratio as _amplitude_ratio
from .waveforms import (footprint_similarity, noise_aware_similarity, overlap_similarity, stretch_similarity,
                        template_lag)

__all__ = ["EvidenceContext", "UnitArrays", "arrays_group_evidence", "correlogram", "group_evidence", "groups_evidence",
           "known_similarity", "pair_evidence", "template_similarity", "time_differences"]


class EvidenceContext(AnalyzerView):
    """Per-unit arrays extracted once from an analyzer, shared by every pair computation.

    The analyzer's one view (:class:`~spikemerge.tools.analyzer.view.AnalyzerView`): render reads
    the same trains, so a CCG panel and these numbers count the same spikes.
    """

    # ---- drift (evidence/motion.py): one motion for the whole probe, estimated once per parameter set
    def motion_for(self, params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> Motion:
        """The probe's rigid motion, registered from every unit's firing over time and depth, and
        sized by the hand-overs where they moved several times as far (:meth:`sized_by_handovers`)."""
        cache = self.__dict__.setdefault("_motions", {})
        key = params.fingerprint()
        if key not in cache:
            offsets = self.spike_offsets(params) if params.motion_from_spikes else None
            motion = estimate_motion([self.times_s(u) for u in self.unit_ids], self.locations, self.duration_s,
                                     params, offsets)
            cache[key] = self.sized_by_handovers(motion, params)
        return cache[key]

    def sized_by_handovers(self, motion: Motion, params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> Motion:
        """``motion`` scaled to the hand-over links' gain (:meth:`handover_gain`) when that reaches
        ``params.motion_handover_min_gain``, or ``params.motion_unsized_min_gain`` for a motion whose
        profile barely registered (``profile_scale`` under ``params.motion_unsized_below_scale``); as
        it is otherwise, or when it is too small to register."""
        if params.motion_handover_min_gain <= 0 or motion.range_um < params.drift_min_displacement_um:
            return motion
        gain, _ = self.handover_gain(motion, params)
        unsized = motion.profile_scale is not None and motion.profile_scale < params.motion_unsized_below_scale
        min_gain = params.motion_unsized_min_gain if unsized else params.motion_handover_min_gain
        return motion.scaled(gain) if gain >= min_gain else motion

    def handover_gain(self, motion: Motion, params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> tuple[float, int]:
        """The hand-over chain links' depth shift over ``motion``'s displacement (``motion.handover_gain``)
        and how many links it rests on, the links read under ``params.motion_handover_*``."""
        links = handover_links(self, params.motion_handover_min_similarity, params.drift_reach_um,
                               params.motion_handover_max_overlap, params.motion_handover_max_gap_fraction,
                               params.motion_bins, params.motion_handover_spikes)
        axis = motion.depth_axis
        handovers = []
        for chain in chains_from_links(links):
            for a, b in zip(chain[:-1], chain[1:]):
                place_a, place_b = self.places(a, b, params)
                handovers.append((self.times_s(a), float(place_a[axis]), self.times_s(b), float(place_b[axis])))
        return handover_gain(handovers, motion, params)

    def places(self, unit_a: UnitId, unit_b: UnitId,
               params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> tuple[np.ndarray, np.ndarray]:
        """Two units' positions for comparing them: by one localizer (:meth:`pair_locations`) under
        ``params.one_localizer``, else each by its own."""
        if params.one_localizer:
            return self.pair_locations(unit_a, unit_b)
        return self.unit(unit_a).location, self.unit(unit_b).location

    def spike_offsets(self, params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS,
                      ) -> list[tuple[np.ndarray, np.ndarray]] | None:
        """Per unit: its sampled spikes' times and depth offsets from its template (``motion.spike_offsets``);
        None without waveforms or a probe to carry templates over."""
        contacts = self.contact_positions
        if contacts is None or not self.analyzer.has_extension("waveforms"):
            return None
        out = []
        for unit_id in self.unit_ids:
            unit = self.unit(unit_id)
            out.append((unit.waveform_times_s,
                        spike_offsets(unit.template, unit.channels, unit.waveforms, contacts, self.fs, params)))
        return out

    def registered_motion(self, params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> Motion | None:
        """The motion under ``params`` if it has been registered (by candidate search or evidence), else None."""
        return self.__dict__.get("_motions", {}).get(params.fingerprint())

    @property
    def motion(self) -> Motion:
        """The motion under the default evidence parameters (:meth:`motion_for`)."""
        return self.motion_for()

    @cached_property
    def probe(self):
        """The probe (None when the analyzer holds a group of probes: no template is moved then)."""
        try:
            return self.analyzer.get_probe()
        except Exception:
            return None

    @cached_property
    def contact_positions(self) -> np.ndarray | None:
        """Where each channel sits, in the order of the template columns, for carrying templates
        over the probe; None without a single probe. Read from the channels, not the probe's
        contact list, whose order need not be the channels'."""
        return None if self.probe is None else self.channel_locations


# ---------------------------------------------------------------- per pair and per group


@lru_cache(maxsize=1)
def _blas_controller() -> ThreadpoolController:
    """Found once: ``threadpool_limits`` scans the loaded libraries on every call (14 ms, 6 s of
    a 450-pair evidence run, measured)."""
    return ThreadpoolController()


def _one_blas_thread():
    return _blas_controller().limit(limits=1)


def _union_lag(a: UnitArrays, b: UnitArrays, fs: float, params: EvidenceParams) -> tuple[np.ndarray, int, float]:
    channels = np.union1d(a.channels, b.channels)
    max_shift = int(round(params.max_lag_ms * fs / 1000.0))
    lag, similarity = template_lag(a.template[:, channels], b.template[:, channels], max_shift)
    return channels, lag, similarity


def template_similarity(ctx: EvidenceContext, unit_a: UnitId, unit_b: UnitId,
                        params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> tuple[float, int]:
    """Cosine similarity of two templates on the union of their channels at their best lag (samples).

    The lag is searched within ``±max_lag_ms`` (real sorters misalign one neuron's units by up
    to ~2 ms); templates are zero-padded, so a large shift is not free.
    """
    ia, ib = ctx.index(unit_a), ctx.index(unit_b)
    channels = ctx.sparsity_mask[ia] | ctx.sparsity_mask[ib]
    max_shift = int(round(params.max_lag_ms * ctx.fs / 1000.0))
    lag, similarity = template_lag(ctx.templates[ia][:, channels], ctx.templates[ib][:, channels], max_shift)
    return similarity, lag


def unit_similarity(a: UnitArrays, b: UnitArrays, fs: float, noise_levels: np.ndarray,
                    params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> dict[str, float]:
    """Template similarity at the best lag, raw and with the noise the spike counts imply removed.

    See :func:`~spikemerge.tools.evidence.waveforms.noise_aware_similarity`; the candidate gate
    uses it so that a low-amplitude unit's noisy template is not read as another shape.
    """
    channels, lag, similarity = _union_lag(a, b, fs, params)
    n_a = a.num_waveforms or a.times_s.size  # counted without reading the waveforms
    n_b = b.num_waveforms or b.times_s.size
    record = noise_aware_similarity(a.template[:, channels], b.template[:, channels], noise_levels[channels],
                                    n_a, n_b, shift=lag)
    overlap = overlap_similarity(a.template[:, channels], b.template[:, channels], lag)
    # burst splits: the smaller unit's spikes are the wider ones (see waveforms.stretch_similarity)
    stretches = np.arange(1.0, params.max_stretch + params.stretch_step / 2, params.stretch_step)
    record.update(stretch_similarity(a.template[:, channels], b.template[:, channels],
                                     int(round(params.max_lag_ms * fs / 1000.0)), stretches,
                                     noise_levels[channels], n_a, n_b))
    record["template_footprint_similarity"] = footprint_similarity(a.template[:, channels], b.template[:, channels])
    return {"template_similarity": similarity, "template_lag_samples": lag, "template_similarity_overlap": overlap,
            **record}


def denoised_similarity(ctx: EvidenceContext, unit_a: UnitId, unit_b: UnitId,
                        params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> dict[str, float]:
    """:func:`unit_similarity` of two units of the analyzer, computed once per view, pair and parameters.

    Candidate search asks again for the same pairs each time it relaxes its threshold, and
    evidence for every pair of a group (:func:`known_similarity`): the widening search behind
    it is a third of candidate search (measured on the lab-scale benchmark).
    """
    key = (unit_a, unit_b, params)  # ids as given: another form of one id only misses the cache
    cache = ctx.__dict__.setdefault("_similarities", {})
    if key not in cache:
        cache[key] = unit_similarity(ctx.unit(unit_a), ctx.unit(unit_b), ctx.fs, ctx.noise_levels, params)
    return dict(cache[key])


def known_similarity(ctx: EvidenceContext, unit_a: UnitId, unit_b: UnitId,
                     params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> dict[str, float] | None:
    """:func:`denoised_similarity` of the pair (in this order) if it was computed already, else None."""
    return ctx.__dict__.get("_similarities", {}).get((unit_a, unit_b, params))


def _on_channels(unit: UnitArrays, channels: np.ndarray) -> np.ndarray:
    positions = np.searchsorted(unit.channels, channels)
    return unit.waveforms[:, :, positions]


def _aligned(wa: np.ndarray, wb: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Waveforms cut so that the same spike lines up: ``b[k] ≈ a[k + lag]``."""
    n = wa.shape[1]
    if lag >= 0:
        return wa[:, lag:], wb[:, : n - lag]
    return wa[:, : n + lag], wb[:, -lag:]


def _subsample(values: np.ndarray, limit: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """At most ``limit`` values, and how many spikes each stands for."""
    if values.size <= limit:
        return values, 1.0
    return values[rng.choice(values.size, limit, replace=False)], values.size / limit


def _meet(times_a: np.ndarray, times_b: np.ndarray, window: Window) -> bool:
    """Whether the units' spikes nearest a hand-over are no further apart across it than they span."""
    if times_a.size == 0 or times_b.size == 0:
        return False
    return window.gap_s(times_a, times_b) <= max(float(np.ptp(times_a)), float(np.ptp(times_b)))


def feature_evidence(a: UnitArrays, b: UnitArrays, lag: int, duration_s: float,
                     params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS, window: Window | None = None) -> dict[str, Any]:
    """Continuity, separation and hand-over shape of two units, in the window where they meet.

    The comparison window (:func:`~spikemerge.tools.evidence.presence.comparison_window`) keeps
    spikes fired while both units are active, or near the hand-over for units that follow each
    other, so that drift does not read as a gap. Continuity is tested twice: on the waveforms'
    discriminant axis (sampled spikes, on the channels both units have, aligned by the lag) and
    on the amplitudes (every spike).
    """
    window = window or comparison_window(a.times_s, b.times_s, duration_s, params)
    record: dict[str, Any] = {"comparison_window": window.kind}
    rng = np.random.default_rng(params.seed)
    if window.kind == "handover":
        # each unit's spikes nearest the hand-overs: close enough in time that drift has not moved
        # the cloud; units that never meet have no continuity to test
        sel_a = window.nearest(a.times_s, 4 * params.handover_spikes)
        sel_b = window.nearest(b.times_s, 4 * params.handover_spikes)
        meets = _meet(a.times_s[sel_a], b.times_s[sel_b], window)
    else:
        sel_a, sel_b, meets = window.mask(a.times_s, "a"), window.mask(b.times_s, "b"), True
    record["units_meet"] = bool(meets)
    amp_a, amp_b = a.amplitudes[sel_a], b.amplitudes[sel_b]
    enough = min(amp_a.size, amp_b.size) >= params.min_continuity_spikes
    sa, wa_amp = _subsample(np.abs(amp_a), 3000, rng)
    sb, wb_amp = _subsample(np.abs(amp_b), 3000, rng)
    amp = continuity(sa, sb, wa_amp, wb_amp, params) if meets and enough else \
        {"continuity_ratio": float("nan"), "continuity_gap_p": 1.0, "continuity_expected": 0.0}
    record.update({f"amplitude_{k}": v for k, v in amp.items()})

    shared = np.intersect1d(a.channels, b.channels)
    record["shared_channels"] = int(shared.size)
    empty = {"pca_dprime": float("nan"), "continuity_ratio": float("nan"), "continuity_gap_p": 1.0,
             "continuity_expected": 0.0, "handover_similarity": float("nan")}
    if shared.size == 0 or len(a.waveforms) < params.min_feature_spikes or len(b.waveforms) < params.min_feature_spikes:
        record.update(empty)
        return record
    power = np.ptp(a.template[:, shared], axis=0) + np.ptp(b.template[:, shared], axis=0)
    shared = shared[np.argsort(power)[::-1][: params.pca_channels]]
    record["shared_channels"] = int(shared.size)
    wa, wb = _aligned(_on_channels(a, shared), _on_channels(b, shared), lag)
    if wa.shape[1] < 4:
        record.update(empty)
        return record
    if a.waveform_times_s is None or b.waveform_times_s is None:
        keep_a, keep_b = np.ones(len(wa), bool), np.ones(len(wb), bool)
    elif window.kind == "handover":
        keep_a = window.nearest(a.waveform_times_s, params.handover_spikes)
        keep_b = window.nearest(b.waveform_times_s, params.handover_spikes)
    else:
        keep_a, keep_b = window.mask(a.waveform_times_s, "a"), window.mask(b.waveform_times_s, "b")
    if keep_a.sum() < params.min_feature_spikes or keep_b.sum() < params.min_feature_spikes:
        if window.kind != "all":
            # too few sampled spikes where the units meet: spikes from elsewhere in a drifting
            # recording would show the drift, not the units, so there is no continuity to test
            meets = False
        keep_a, keep_b = np.ones(len(wa), bool), np.ones(len(wb), bool)
    wa, wb = wa[keep_a], wb[keep_b]
    fa = wa.reshape(len(wa), -1).astype(np.float64)
    fb = wb.reshape(len(wb), -1).astype(np.float64)
    xa, xb, dprime = discriminant_projection(fa, fb, params)
    if window.kind == "handover":  # near the hand-over both units stand for the same stretch of firing
        spikes_a, spikes_b = len(xa), len(xb)
    else:
        spikes_a = max(1, int(window.mask(a.times_s, "a").sum()))
        spikes_b = max(1, int(window.mask(b.times_s, "b").sum()))
    record["pca_dprime"] = dprime
    if meets:
        record.update(continuity(xa, xb, spikes_a / len(xa), spikes_b / len(xb), params))
    else:
        record.update({"continuity_ratio": float("nan"), "continuity_gap_p": 1.0, "continuity_expected": 0.0})
    ma, mb = fa.mean(axis=0), fb.mean(axis=0)
    denom = float(np.linalg.norm(ma) * np.linalg.norm(mb))
    record["handover_similarity"] = float(ma @ mb / denom) if window.kind == "handover" and denom > 0 else float("nan")
    return record


def unit_pair_evidence(unit_a: UnitId, unit_b: UnitId, a: UnitArrays, b: UnitArrays, fs: float, duration_s: float,
                       noise_levels: np.ndarray, params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS,
                       shape: dict[str, float] | None = None) -> dict[str, Any]:
    """Every number for one pair of units from their arrays, in one flat dict (no analyzer needed).

    ``shape``: the pair's :func:`unit_similarity` when already known (candidate search computed
    it from the same arrays), else computed here.
    """
    if shape is None:
        shape = unit_similarity(a, b, fs, noise_levels, params)
    lag = int(shape["template_lag_samples"])
    lag_ms = lag * 1000.0 / fs
    record: dict[str, Any] = {
        "unit_a": unit_a,
        "unit_b": unit_b,
        "num_spikes_a": int(a.times_s.size),
        "num_spikes_b": int(b.times_s.size),
        "template_similarity": shape["template_similarity"],
        "template_similarity_denoised": shape["template_similarity_denoised"],
        "template_difference_chi2": shape["template_difference_chi2"],
        "template_similarity_overlap": shape["template_similarity_overlap"],
        "template_similarity_stretch": shape["template_similarity_stretch"],
        "template_stretch": shape["template_stretch"],
        "template_footprint_similarity": shape["template_footprint_similarity"],
        "template_shift_ms": lag_ms,
        "template_amplitude_ratio": _amplitude_ratio(a.template, b.template),
        "distance_um": float(np.linalg.norm(np.asarray(a.location) - np.asarray(b.location))),
        "same_main_channel": bool(a.main_channel == b.main_channel),
    }
    record.update(ccg_evidence(a.times_s, b.times_s, lag_ms, params))
    record.update(contamination_evidence(a.times_s, b.times_s, duration_s, lag_ms, params))
    window = comparison_window(a.times_s, b.times_s, duration_s, params)  # one for both: hand-overs are searched
    record.update(presence_evidence(a.times_s, a.amplitudes, b.times_s, b.amplitudes, duration_s, params, window))
    with _one_blas_thread():  # small matrices: a multi-threaded BLAS on a busy machine is 100x slower here
        record.update(feature_evidence(a, b, lag, duration_s, params, window))
    return record


def pair_evidence(ctx: EvidenceContext, unit_a: UnitId, unit_b: UnitId,
                  params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> dict[str, Any]:
    """Every number for one pair of units of the analyzer, in one flat dict (with the drift numbers,
    which need the motion of the whole probe)."""
    a, b = ctx.unit(unit_a), ctx.unit(unit_b)
    record = unit_pair_evidence(unit_a, unit_b, a, b, ctx.fs, ctx.duration_s, ctx.noise_levels, params,
                                known_similarity(ctx, unit_a, unit_b, params))
    return _with_drift(ctx, record, params)


def _with_drift(ctx: EvidenceContext, record: dict[str, Any], params: EvidenceParams) -> dict[str, Any]:
    """Add a pair's drift numbers to its record, the pair placed by :meth:`EvidenceContext.places`:
    they need the whole probe's motion and which fits the view replaced, so they are computed where
    the analyzer's view lives (cheap: spike times, locations and two templates), never in a worker
    process."""
    a, b = ctx.unit(record["unit_a"]), ctx.unit(record["unit_b"])
    motion = ctx.motion_for(params)
    location_a, location_b = ctx.places(record["unit_a"], record["unit_b"], params)
    record.update(trajectory_evidence(a.times_s, location_a, b.times_s, location_b, motion, params))
    record["drift_turns"] = motion_turns(a.times_s, b.times_s, motion)
    record["drift_template_similarity"] = float("nan")
    if record["drift_moved"]:
        channels = np.union1d(a.channels, b.channels)
        record["drift_template_similarity"] = moved_template_similarity(
            a.template, b.template, channels, record["drift_displacement_um"], ctx.contact_positions,
            int(round(params.max_lag_ms * ctx.fs / 1000.0)))
    return record


def arrays_group_evidence(unit_ids: Sequence[UnitId], arrays: Sequence[UnitArrays], chains: Sequence[Sequence[UnitId]],
                          fs: float, duration_s: float, noise_levels: np.ndarray,
                          params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS,
                          shapes: Sequence[dict | None] | None = None) -> dict[str, Any]:
    """:func:`group_evidence` from the units' arrays (``arrays[i]`` is ``unit_ids[i]``'s), no analyzer needed,
    without the drift numbers (they need the whole probe's motion: :func:`group_evidence` adds them).

    What a worker process runs: every array it reads arrives with the call. BLAS runs
    single-threaded here: the matrices are small, and on a busy machine a multi-threaded BLAS is
    up to 20 times slower for them (measured: 12 s vs 0.6 s).
    """
    pairs = _pairs_job(unit_ids, arrays, list(combinations(range(len(unit_ids)), 2)), fs, duration_s, noise_levels,
                       params, shapes)
    return {"pairs": pairs, "chains": [list(c) for c in chains], "evidence_params": params.fingerprint()}


def _group_arrays(ctx: EvidenceContext, unit_ids: Sequence[UnitId]) -> list[UnitArrays]:
    """Each unit's arrays with its waveforms read, each unit once (a group may outgrow the view's cache)."""
    arrays = []
    for u in unit_ids:
        unit = ctx.unit(u)
        arrays.append(UnitArrays(unit.times_s, unit.amplitudes, unit.waveforms, unit.channels, unit.template,
                                 unit.location, unit.main_channel, unit.waveform_times_s))
    return arrays


def group_evidence(ctx: EvidenceContext, unit_ids: Sequence[UnitId], chains: Sequence[Sequence[UnitId]] = (),
                   params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS) -> dict[str, Any]:
    """Evidence of a group: one record per pair under ``"pairs"``, the proposed drift chains under ``"chains"``."""
    shapes = [known_similarity(ctx, a, b, params) for a, b in combinations(unit_ids, 2)]
    evidence = arrays_group_evidence(list(unit_ids), _group_arrays(ctx, unit_ids), chains, ctx.fs, ctx.duration_s,
                                     ctx.noise_levels, params, shapes)
    evidence["pairs"] = [_with_drift(ctx, record, params) for record in evidence["pairs"]]
    return evidence


def _evidence_workers(n_workers: int | str, n_pairs: int, settings: EvidenceWorkers) -> int:
    if n_workers == "auto":
        if n_pairs < settings.parallel_min_pairs:
            return 1
        return max(1, min(usable_cpus(), settings.max_workers))
    if not isinstance(n_workers, int) or isinstance(n_workers, bool) or n_workers < 1:
        raise SpikemergeError(f"n_workers must be a positive integer or 'auto', not {n_workers!r}")
    return n_workers


def _pairs_job(unit_ids: Sequence[UnitId], arrays: Sequence[UnitArrays], pairs: Sequence[tuple[int, int]], fs: float,
               duration_s: float, noise_levels: np.ndarray, params: EvidenceParams,
               shapes: Sequence[dict | None] | None = None) -> list[dict[str, Any]]:
    """Records of ``pairs`` (positions in ``unit_ids`` and ``arrays``): the unit of work of a worker process.

    ``shapes[k]``: pair ``k``'s template numbers when candidate search computed them already.
    """
    shapes = shapes if shapes is not None else [None] * len(pairs)
    with _one_blas_thread():
        return [unit_pair_evidence(unit_ids[i], unit_ids[j], arrays[i], arrays[j], fs, duration_s, noise_levels, params,
                                   shape)
                for (i, j), shape in zip(pairs, shapes)]


def _shipped(ctx: EvidenceContext, unit_id: UnitId) -> UnitArrays:
    """A unit's arrays to send to a worker: its waveforms as a file reader when they live in a file
    (the worker reads them from the page cache), else read here."""
    unit = ctx.unit(unit_id)
    reader = ctx.waveform_reader(unit_id) if not unit.waveforms_read else None
    return UnitArrays(unit.times_s, unit.amplitudes, reader if reader is not None else unit.waveforms, unit.channels,
                      unit.template, unit.location, unit.main_channel, unit.waveform_times_s)


def _jobs(units: Sequence[UnitId], per_job: int, ship: Mapping[UnitId, UnitArrays]) -> Iterator[tuple[int, tuple]]:
    """A group's pairs in chunks of ``per_job``, each with only the units it needs: ``(chunk, args)``."""
    pairs = list(combinations(range(len(units)), 2))
    for chunk, begin in enumerate(range(0, len(pairs), per_job)):
        part = pairs[begin:begin + per_job]
        needed = sorted({i for pair in part for i in pair})
        local = {i: n for n, i in enumerate(needed)}
        yield chunk, ([units[i] for i in needed], [ship[units[i]] for i in needed],
                      [(local[i], local[j]) for i, j in part])


def groups_evidence(ctx: EvidenceContext, groups: Mapping[Hashable, tuple[Sequence[UnitId], Sequence[Sequence[UnitId]]]],
                    n_workers: int | str = 1, params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS,
                    settings: EvidenceWorkers = DEFAULT_EVIDENCE_WORKERS) -> Iterator[tuple[Hashable, dict[str, Any]]]:
    """:func:`group_evidence` of many groups, in this process or in worker processes; yields ``(key, evidence)``.

    ``groups`` maps a key to ``(unit_ids, chains)``. With workers, each group's pairs go out in
    chunks of ``settings.pairs_per_job`` (so one large group is spread over every worker, not
    left to one), with the arrays of the units each chunk needs; sampled waveforms kept in a
    ``waveforms.npy`` go as a file position and row list, and the worker reads them itself.
    At most ``settings.in_flight_per_worker`` chunks per worker wait. Groups are yielded as
    their last chunk comes back (not in order), with the same numbers as :func:`group_evidence`
    computes here. Where worker processes cannot start, the remaining groups are computed here
    with a warning.
    """
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    items = {key: (list(units), [list(c) for c in chains]) for key, (units, chains) in groups.items()}
    n_pairs = sum(len(units) * (len(units) - 1) // 2 for units, _ in items.values())
    workers = _evidence_workers(n_workers, n_pairs, settings)
    pool = None
    if workers > 1 and n_pairs > 1:
        try:
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=worker_context(), initializer=prepare_worker)
        except OSError as error:
            warnings.warn(f"computing evidence in this process: worker processes failed ({error})", RuntimeWarning,
                          stacklevel=2)
    if pool is None:
        for key, (units, chains) in items.items():
            yield key, group_evidence(ctx, units, chains, params)
        return

    def finish(key) -> dict[str, Any]:
        chunks = results.pop(key)
        records = [_with_drift(ctx, record, params) for chunk in sorted(chunks) for record in chunks[chunk]]
        return {"pairs": records, "chains": items[key][1], "evidence_params": params.fingerprint()}

    results: dict[Hashable, dict[int, list]] = {}
    left: dict[Hashable, int] = {}
    done: set = set()
    pending: dict = {}

    def collect(finished) -> Iterator[tuple[Hashable, dict[str, Any]]]:
        for future in finished:
            key, chunk = pending.pop(future)
            results[key][chunk] = future.result()
            left[key] -= 1
            if left[key] == 0:
                done.add(key)
                yield key, finish(key)

    try:
        try:
            for key, (units, _) in items.items():
                n = len(units) * (len(units) - 1) // 2
                results[key], left[key] = {}, -(-n // settings.pairs_per_job)
                if n == 0:
                    done.add(key)
                    yield key, finish(key)
                    continue
                ship = {u: _shipped(ctx, u) for u in units}
                for chunk, job in _jobs(units, settings.pairs_per_job, ship):
                    ids, _, local = job
                    shapes = [known_similarity(ctx, ids[i], ids[j], params) for i, j in local]
                    pending[pool.submit(_pairs_job, *job, ctx.fs, ctx.duration_s, ctx.noise_levels, params,
                                        shapes)] = (key, chunk)
                    while len(pending) >= settings.in_flight_per_worker * workers:
                        finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                        yield from collect(finished)
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                yield from collect(finished)
        except (OSError, BrokenProcessPool) as error:
            warnings.warn(f"computing evidence in this process: worker processes failed ({error})", RuntimeWarning,
                          stacklevel=2)
            pool.shutdown(wait=False, cancel_futures=True)
            pool = None
            for key, (units, chains) in items.items():
                if key not in done:
                    yield key, group_evidence(ctx, units, chains, params)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
