"""AnalyzerView: the one reading of an analyzer that evidence, candidates and figures all share.

Why one view: evidence (the numbers a judge reads) and render (the figures a person looks at)
used to pull spike trains out of the analyzer each their own way, and disagreed on
multi-segment analyzers (one glued the segments end to end, the other left a gap), so a CCG
panel's refractory count was not the evidence's count. Here every consumer reads the same
time axis, the same per-unit spike order and the same sampled waveforms.

What is read, and when:

- the spike vector once (SpikeInterface keeps it in memory), sorted by unit once, so a unit's
  spikes are a slice instead of a mask over every spike;
- ``spike_amplitudes`` once (one float per spike);
- templates, unit locations and the sparsity mask once (per unit, small);
- sampled waveforms per unit, only when a unit is asked for (units in candidate groups), held in
  a small least-recently-used cache. With an analyzer opened by
  :func:`~spikemerge.tools.analyzer.load.open_analyzer` the ``waveforms.npy`` is memory-mapped,
  so a unit's rows are the only part of the file ever read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Hashable

import numpy as np

from ...errors import SpikemergeError
from .rows import FileRows, read_rows

UnitId = Hashable


@dataclass(frozen=True)
class ViewParams:
    """Tunable numbers of the analyzer view. Only the ``location_*`` numbers change results; they reach
    the evidence numbers, which key the cached verdicts, so they need no hash of their own."""

    location_max_offset_um: float = 50.0
    """A ``unit_locations`` position farther than this from the unit's peak channel is taken for a
    failed fit and replaced by the template's centre of mass. Monopolar triangulation (SpikeInterface's
    and spikemerge's default) can run off the probe: on 16 MEArec sets sorted by spykingcircus2 and
    tridesclous2, 0-5 units per 32-channel set (of 25-71) and 3-8 per Neuropixels-24 set (of 23-58)
    landed over 50 µm from their peak channel, up to 719 µm, 57 of the 58 at the fit's bound (1 µm
    from the probe plane); on the static sets the centre of mass was nearer the true soma for 19 of
    24 of them. A neuron seen best on a channel sits within about two channel pitches of it."""
    location_max_outside_um: float = 20.0
    """... and a fit resting on the probe plane (the monopolar fit's lower bound on the distance from
    it, ``location_plane_um``) that lies more than this outside the contacts' extent is taken for a
    failed fit too: the optimizer ran sideways to its bound instead of finding a soma the contacts
    see. On Neuropixels-24 MEArec sets most fits rest on the plane (21-24 of 26-53 units per set), and
    a broad neuron's units came out 40-50 µm beside the outermost column, within the offset above,
    62 µm from their duplicates, which the centre of mass put with them. On nine static sets the
    centre of mass is nearer the soma for only 2 of the 12 fits this adds (those somata lie beside
    the probe), but it keeps one neuron's units together: same-neuron pairs over 20 µm apart 0.12 ->
    0.10 of 147. End to end (balanced) on 20 Neuropixels-24 sets 444 -> 456 same-neuron pairs merged,
    5 -> 5 distinct; on six 32-channel sets 229 -> 230, none (metrics-v48-loc2). ``inf``: off."""
    location_plane_um: float = 1.5
    """Distance from the probe plane at or below which a fit rests on SpikeInterface's bound (1 µm)."""
    segment_gap_s: float = 1.0
    """Silence put between segments on the time axis; wider than every lag window (CCG ±50 ms),
    so no pair of spikes from two segments ever counts as a coincidence."""
    cached_units: int = 16
    """Units whose sampled waveforms stay in memory (least recently used are dropped first)."""


DEFAULT_VIEW_PARAMS = ViewParams()


def implausible_locations(fitted: np.ndarray, peak: np.ndarray, contacts: np.ndarray,
                          params: ViewParams = DEFAULT_VIEW_PARAMS) -> np.ndarray:
    """Which ``fitted`` positions (units, 2 or 3: x, y and, for monopolar fits, the distance from the
    probe plane) are not finite, lie more than ``location_max_offset_um`` from the unit's ``peak``
    channel, or rest on the probe plane more than ``location_max_outside_um`` outside the
    ``contacts`` (channels, 2): a localization that ran off the probe."""
    xy = fitted[:, :2]
    offset = np.linalg.norm(xy - peak, axis=1)
    outside = np.max(np.maximum(contacts.min(axis=0) - xy, xy - contacts.max(axis=0)), axis=1)
    on_plane = fitted[:, 2] <= params.location_plane_um if fitted.shape[1] > 2 else np.zeros(len(xy), bool)
    return ~np.isfinite(offset) | (offset > params.location_max_offset_um) | (
        on_plane & (outside > params.location_max_outside_um))


def plausible_locations(fitted: np.ndarray, fallback: np.ndarray, peak: np.ndarray, contacts: np.ndarray,
                        params: ViewParams = DEFAULT_VIEW_PARAMS) -> np.ndarray:
    """``fitted`` (x, y) positions, each replaced by ``fallback``'s where it is implausible
    (:func:`implausible_locations`)."""
    bad = implausible_locations(fitted, peak, contacts, params)
    return np.where(bad[:, None], fallback, fitted[:, :2])


def pairwise_distances(places: np.ndarray) -> np.ndarray:
    """(units, units): the distances between every two of ``places`` (units, 2), in their unit."""
    return np.linalg.norm(places[:, None, :] - places[None, :, :], axis=2)


def native_id(unit_id: Any) -> UnitId:
    """A numpy scalar id as the plain Python value (``np.int64(3)`` -> ``3``)."""
    return unit_id.item() if hasattr(unit_id, "item") else unit_id


class UnitArrays:
    """One unit's arrays, as evidence and figures read them.

    ``waveforms`` may be given as an array or as a function returning it: the view passes a
    function, so a unit whose spike times are all that is looked at (candidate search reads
    every unit's times) never has its waveforms read.

    Attributes
    ----------
    times_s : np.ndarray
        Spike times on the view's time axis (segments end to end, separated by a gap), sorted.
    amplitudes : np.ndarray
        Spike amplitudes in the order of ``times_s``.
    waveforms : np.ndarray
        Random-spike waveforms on ``channels`` (spikes, samples, channels), float32.
    channels : np.ndarray
        Channel indices of the unit's sparsity (all channels for a dense analyzer).
    template : np.ndarray
        Average template on all channels (samples, channels).
    location : np.ndarray
    main_channel : int
    waveform_times_s : np.ndarray or None
        Times of the sampled waveforms (same order, same time axis as ``times_s``).
    """

    def __init__(self, times_s: np.ndarray, amplitudes: np.ndarray,
                 waveforms: np.ndarray | Callable[[], np.ndarray], channels: np.ndarray, template: np.ndarray,
                 location: np.ndarray, main_channel: int, waveform_times_s: np.ndarray | None = None):
        self.times_s = times_s
        self.amplitudes = amplitudes
        self._waveforms = waveforms
        self.channels = channels
        self.template = template
        self.location = location
        self.main_channel = main_channel
        self.waveform_times_s = waveform_times_s

    @property
    def waveforms(self) -> np.ndarray:
        if callable(self._waveforms):
            self._waveforms = self._waveforms()
        return self._waveforms

    @waveforms.setter
    def waveforms(self, value: np.ndarray) -> None:
        self._waveforms = value

    @property
    def num_waveforms(self) -> int:
        """How many sampled waveforms the unit has, without reading them."""
        if self.waveforms_read or self.waveform_times_s is None:
            return len(self.waveforms)
        return int(self.waveform_times_s.size)

    @property
    def waveforms_read(self) -> bool:
        """Whether the waveforms are in memory (False until first asked for, when given lazily)."""
        return not callable(self._waveforms)

    def __repr__(self) -> str:
        return (f"UnitArrays({self.times_s.size} spikes, channels {self.channels.size}, "
                f"waveforms {'read' if self.waveforms_read else 'not read'})")


class AnalyzerView:
    """Per-unit arrays of one analyzer, read once and shared by evidence, candidates and render.

    Parameters
    ----------
    analyzer : SortingAnalyzer
        Holds random_spikes, waveforms, templates and spike_amplitudes (unit_locations is used
        when present, the templates' centre of mass otherwise).
    params : ViewParams
        The time-axis gap and the waveform cache size.

    Notes
    -----
    The time axis: segment ``k`` starts ``segment_gap_s`` after segment ``k - 1`` ends, in whole
    samples, so ``train(u)`` (integer samples) and ``unit(u).times_s`` are the same spikes, and a
    lag computed from either never spans two segments. ``duration_s`` is the axis length (for one
    segment, the recording's duration).
    """

    def __init__(self, analyzer, params: ViewParams = DEFAULT_VIEW_PARAMS):
        self.analyzer = analyzer
        self.params = params
        self.fs = float(analyzer.sampling_frequency)
        self.unit_ids = [native_id(u) for u in analyzer.unit_ids]
        self._index = {u: i for i, u in enumerate(self.unit_ids)}
        self._by_text = {str(u): u for u in self.unit_ids}
        num_segments = analyzer.get_num_segments()
        lengths = np.array([analyzer.get_num_samples(s) for s in range(num_segments)], dtype=np.int64)
        gap = int(round(params.segment_gap_s * self.fs)) if num_segments > 1 else 0
        self.segment_offsets = np.concatenate([[0], np.cumsum(lengths + gap)[:-1]]).astype(np.int64)
        """First sample of each segment on the time axis."""
        self.num_samples_axis = int(lengths.sum() + gap * (num_segments - 1))
        self.duration_s = self.num_samples_axis / self.fs
        self.recording_duration_s = float(lengths.sum() / self.fs)
        self._cache: OrderedDict[UnitId, UnitArrays] = OrderedDict()
        self._cache_lock = threading.Lock()  # figures drawn in a background thread read the view too

    # ------------------------------------------------------------ ids

    def index(self, unit_id: UnitId) -> int:
        """Position of ``unit_id`` in the analyzer (numpy, plain or text form of the id)."""
        key = unit_id if unit_id in self._index else self._by_text.get(str(unit_id))
        if key is None:
            shown = ", ".join(map(str, self.unit_ids[:20])) + (", ..." if len(self.unit_ids) > 20 else "")
            raise SpikemergeError(f"unknown unit id {unit_id!r}: the analyzer's units are {shown}")
        return self._index[key]

    def unit_id(self, unit_id: UnitId) -> UnitId:
        """The analyzer's own (native) id for any form of ``unit_id``."""
        return self.unit_ids[self.index(unit_id)]

    # ------------------------------------------------------------ spikes, read once

    @cached_property
    def _spike_order(self) -> tuple[np.ndarray, np.ndarray]:
        """Spike-vector positions sorted by unit (time order kept within a unit), and unit bounds."""
        spikes = self.analyzer.sorting.to_spike_vector()
        order = np.argsort(spikes["unit_index"], kind="stable")
        bounds = np.searchsorted(spikes["unit_index"][order], np.arange(len(self.unit_ids) + 1))
        return order, bounds

    @cached_property
    def _axis_samples(self) -> np.ndarray:
        """Every spike's sample on the time axis, in spike-vector order (int64)."""
        spikes = self.analyzer.sorting.to_spike_vector()
        return spikes["sample_index"].astype(np.int64) + self.segment_offsets[spikes["segment_index"]]

    @cached_property
    def _amplitudes(self) -> np.ndarray:
        ext = self.analyzer.get_extension("spike_amplitudes")
        if ext is None:
            raise SpikemergeError("the analyzer has no spike_amplitudes: open it with load_analyzer, which computes them")
        return np.asarray(ext.get_data(), dtype=np.float32)

    def spike_rows(self, unit_id: UnitId) -> np.ndarray:
        """Positions of the unit's spikes in the spike vector (and in per-spike extensions), in time order."""
        order, bounds = self._spike_order
        i = self.index(unit_id)
        return order[bounds[i]:bounds[i + 1]]

    @cached_property
    def _unit_sorted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every spike's axis sample, time (s) and amplitude, sorted by unit: a unit's are a slice.

        12 bytes more per spike (30 MB for 2.6 million spikes), read once: candidate search asks
        for every unit's times and amplitudes many times over, and gathering them from the spike
        vector on each ask was a third of its time (measured).
        """
        order, _ = self._spike_order
        samples = self._axis_samples[order]
        arrays = (samples, samples / self.fs, self._amplitudes[order])
        for array in arrays:  # shared by every caller: nobody may change a unit's spikes in place
            array.flags.writeable = False
        return arrays

    def _slice(self, unit_id: UnitId) -> slice:
        _, bounds = self._spike_order
        i = self.index(unit_id)
        return slice(int(bounds[i]), int(bounds[i + 1]))

    def train(self, unit_id: UnitId) -> np.ndarray:
        """The unit's spikes in samples on the time axis, sorted (int64; a read-only view)."""
        return self._unit_sorted[0][self._slice(unit_id)]

    def times_s(self, unit_id: UnitId) -> np.ndarray:
        """The unit's spike times in seconds on the time axis, sorted (a read-only view)."""
        return self._unit_sorted[1][self._slice(unit_id)]

    def amplitudes(self, unit_id: UnitId) -> np.ndarray:
        """The unit's spike amplitudes in the order of ``times_s`` (a read-only view)."""
        return self._unit_sorted[2][self._slice(unit_id)]

    # ------------------------------------------------------------ per-unit tables, read once

    @cached_property
    def _templates_ext(self):
        ext = self.analyzer.get_extension("templates")
        if ext is None:
            raise SpikemergeError("the analyzer has no templates: open it with load_analyzer, which computes them")
        return ext

    @cached_property
    def templates(self) -> np.ndarray:
        """Average templates (units, samples, channels)."""
        return np.asarray(self._templates_ext.get_data(operator="average"))

    @property
    def template_nbefore(self) -> int:
        return int(self._templates_ext.nbefore)

    @cached_property
    def locations(self) -> np.ndarray:
        """Unit positions (µm): the ``unit_locations`` extension, with the templates' centre of mass for
        units it has none for or put implausibly far from their peak channel
        (``ViewParams.location_max_offset_um``) or beside the contacts on the probe plane
        (``location_max_outside_um``); the centre of mass alone without the extension."""
        if self._fitted_locations is None:
            return self.centre_of_mass_locations
        return plausible_locations(self._fitted_locations, self.centre_of_mass_locations, self.peak_channel_locations,
                                   self.channel_locations, self.params)

    @cached_property
    def _fitted_locations(self) -> np.ndarray | None:
        """The ``unit_locations`` extension's positions as fitted (None without it)."""
        if not self.analyzer.has_extension("unit_locations"):
            return None
        extension = self.analyzer.get_extension("unit_locations")
        fitted = np.asarray(extension.get_data(), dtype=float)
        if extension.params.get("method") != "monopolar_triangulation":
            fitted = fitted[:, :2]  # only monopolar triangulation's third number is the distance from the plane
        return fitted

    @cached_property
    def fit_replaced(self) -> np.ndarray:
        """(units,) bool: where ``locations`` holds the centre of mass in place of an implausible fit
        (all False without the ``unit_locations`` extension: then every unit is placed by its centre of mass)."""
        if self._fitted_locations is None:
            return np.zeros(len(self.unit_ids), dtype=bool)
        return implausible_locations(self._fitted_locations, self.peak_channel_locations, self.channel_locations,
                                     self.params)

    def pair_locations(self, unit_a: Any, unit_b: Any) -> tuple[np.ndarray, np.ndarray]:
        """Two units' positions by one localizer: ``locations`` where neither fit was replaced, both
        centres of mass otherwise. A fit and a centre of mass of one place can lie tens of µm apart
        (see ``EvidenceParams.one_localizer``), so a pair is not compared across the two."""
        i, j = self._index[self.unit_id(unit_a)], self._index[self.unit_id(unit_b)]
        if self.fit_replaced[i] or self.fit_replaced[j]:
            return self.centre_of_mass_locations[i], self.centre_of_mass_locations[j]
        return self.locations[i], self.locations[j]

    @cached_property
    def pair_distances(self) -> np.ndarray:
        """(units, units): µm between every two units placed by one localizer, as :meth:`pair_locations`
        places them."""
        either_replaced = self.fit_replaced[:, None] | self.fit_replaced[None, :]
        return np.where(either_replaced, pairwise_distances(self.centre_of_mass_locations),
                        pairwise_distances(self.locations))

    @cached_property
    def centre_of_mass_locations(self) -> np.ndarray:
        """(units, 2): the templates' centre of mass (SpikeInterface's), where ``locations`` falls back to;
        the peak channel's place for a unit whose template is flat (SpikeInterface divides by its sum)."""
        from spikeinterface.postprocessing.localization_tools import compute_center_of_mass

        with np.errstate(invalid="ignore", divide="ignore"):
            centre = np.asarray(compute_center_of_mass(self.analyzer), dtype=float)[:, :2]
        return np.where(np.isfinite(centre).all(axis=1)[:, None], centre, self.peak_channel_locations)

    @cached_property
    def main_channels(self) -> np.ndarray:
        """(units,): the channel index where each unit's template is largest (peak to peak)."""
        return np.argmax(np.ptp(self.templates, axis=1), axis=1)

    @cached_property
    def peak_channel_locations(self) -> np.ndarray:
        """(units, 2): where each unit's template is largest (``main_channels``)."""
        return self.channel_locations[self.main_channels]

    @cached_property
    def sparsity_mask(self) -> np.ndarray:
        """(units, channels) bool: where each unit's waveforms were kept; all True when dense."""
        if self.analyzer.sparsity is None:
            return np.ones((len(self.unit_ids), self.analyzer.get_num_channels()), dtype=bool)
        return np.asarray(self.analyzer.sparsity.mask, dtype=bool)

    @cached_property
    def channel_locations(self) -> np.ndarray:
        return np.asarray(self.analyzer.get_channel_locations(), dtype=float)

    @cached_property
    def channel_ids(self) -> list:
        return list(self.analyzer.channel_ids)

    @property
    def amplitude_unit(self) -> str:
        return "µV" if self.analyzer.return_in_uV else "a.u."

    def channels(self, unit_id: UnitId) -> np.ndarray:
        """Channel indices of the unit's sparsity."""
        return np.flatnonzero(self.sparsity_mask[self.index(unit_id)])

    # ------------------------------------------------------------ waveforms, per unit, on demand

    @cached_property
    def _waveforms_ext(self):
        ext = self.analyzer.get_extension("waveforms")
        if ext is None:
            raise SpikemergeError("the analyzer has no waveforms: open it with load_analyzer, which computes them")
        return ext

    @property
    def waveform_nbefore(self) -> int:
        return int(self._waveforms_ext.nbefore)

    @cached_property
    def _random_unit_index(self) -> np.ndarray:
        """Unit index of every sampled (random) spike, i.e. of every row of ``waveforms``."""
        ext = self.analyzer.get_extension("random_spikes")
        if ext is None:
            raise SpikemergeError("the analyzer has no random_spikes: open it with load_analyzer, which computes them")
        return np.asarray(ext.get_random_spikes()["unit_index"])

    @cached_property
    def _random_axis_samples(self) -> np.ndarray:
        """Sample of every sampled (random) spike on the time axis, in the waveforms' row order."""
        picked = self.analyzer.get_extension("random_spikes").get_random_spikes()
        return picked["sample_index"].astype(np.int64) + self.segment_offsets[picked["segment_index"]]

    @cached_property
    def _random_order(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows of ``waveforms`` sorted by unit (increasing within a unit), and unit bounds: a unit's
        rows are a slice, not a scan of every sampled spike (candidate search asks for every unit's
        arrays, several times over)."""
        order = np.argsort(self._random_unit_index, kind="stable")
        bounds = np.searchsorted(self._random_unit_index[order], np.arange(len(self.unit_ids) + 1))
        return order, bounds

    def waveform_rows(self, unit_id: UnitId) -> np.ndarray:
        """Rows of the unit's sampled waveforms in ``waveforms`` (and in ``random_spikes``), increasing."""
        order, bounds = self._random_order
        i = self.index(unit_id)
        return order[bounds[i]:bounds[i + 1]]

    def waveform_times_s(self, unit_id: UnitId) -> np.ndarray:
        """Times of the unit's sampled waveforms (in their row order) on the time axis."""
        return self._random_axis_samples[self.waveform_rows(unit_id)] / self.fs

    @cached_property
    def noise_levels(self) -> np.ndarray:
        """Noise standard deviation per channel: the ``noise_levels`` extension, else a robust
        estimate from the sampled waveforms' first samples (before any spike)."""
        if self.analyzer.has_extension("noise_levels"):
            return np.asarray(self.analyzer.get_extension("noise_levels").get_data(), dtype=float)
        levels = np.full(self.analyzer.get_num_channels(), np.nan)
        for unit_id in self.unit_ids:
            arrays = self.unit(unit_id)
            if len(arrays.waveforms):
                edge = arrays.waveforms[:, :3, :].reshape(-1, arrays.channels.size)
                mad = np.median(np.abs(edge - np.median(edge, axis=0)), axis=0) / 0.6745
                levels[arrays.channels] = np.fmin(levels[arrays.channels], mad)
        return np.where(np.isfinite(levels), levels, np.nanmedian(levels) if np.isfinite(levels).any() else 1.0)

    def sampled_waveforms(self, unit_id: UnitId) -> np.ndarray:
        """The unit's sampled waveforms (spikes, samples, its sparse channels), float32.

        Only the unit's rows are read (see :mod:`.rows`: positioned reads, not a memory map).
        """
        index = self.index(unit_id)
        rows = self.waveform_rows(unit_id)
        waveforms = read_rows(self._waveforms_ext.data["waveforms"], rows)
        if self.analyzer.sparsity is not None:
            waveforms = waveforms[:, :, : int(self.sparsity_mask[index].sum())]
        return np.asarray(waveforms, dtype=np.float32)

    def waveform_reader(self, unit_id: UnitId) -> FileRows | None:
        """What reads the unit's sampled waveforms (the same array :meth:`sampled_waveforms`
        returns) from another process, when they are in a ``waveforms.npy`` file; None otherwise."""
        index = self.index(unit_id)
        channels = int(self.sparsity_mask[index].sum()) if self.analyzer.sparsity is not None else None
        return FileRows.of(self._waveforms_ext.data["waveforms"], self.waveform_rows(unit_id), channels)

    def unit(self, unit_id: UnitId) -> UnitArrays:
        """Everything about one unit; its sampled waveforms are read when first used, only its rows."""
        key = self.unit_id(unit_id)
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        index = self._index[key]
        template = self.templates[index]
        arrays = UnitArrays(
            times_s=self.times_s(key),
            amplitudes=self.amplitudes(key),
            waveforms=lambda: self.sampled_waveforms(key),
            channels=self.channels(key),
            template=template,
            location=self.locations[index],
            main_channel=int(self.main_channels[index]),
            waveform_times_s=self.waveform_times_s(key),
        )
        with self._cache_lock:
            self._cache[key] = arrays
            while len(self._cache) > max(1, self.params.cached_units):
                self._cache.popitem(last=False)
        return arrays

    def cached_units(self) -> list[UnitId]:
        """Units whose arrays are in memory now (least recently used first)."""
        with self._cache_lock:
            return list(self._cache)

    def units_with_waveforms(self) -> list[UnitId]:
        """Cached units whose sampled waveforms have been read."""
        with self._cache_lock:
            return [u for u, arrays in self._cache.items() if arrays.waveforms_read]
